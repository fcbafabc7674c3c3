"""What random co-simulation misses, and what formal equivalence costs, per benchmark, on references' mutants.

Candidates are the single-output mutants of every benchmark reference (`salv_trl.hdl.mutate`, one per output):
each is wrong, if at all, on exactly the mutated output. Every candidate is judged by random co-simulation at
200 and at 1000 vectors and by the formal check (`method="formal"`: Yosys + ABC, counterexamples replayed in
the simulator), and the script prints, per benchmark, on the mutated output:

- **random false positives**: among mutants with a replayed formal counterexample (wrong for sure), the share
  random co-simulation calls correct;
- **random mismatch, formal proved**: mutants where simulation sees a mismatch and formal claims a proof
  (must be 0: it would be an unsound proof);
- how many mutated outputs each method leaves untested / unknown;

then seconds per candidate of `random` (1000 vectors), `formal` and `both`, measured side by side in this run
over the same candidates and workers. (The reset rate's default is measured by `bench_reset.py`.)

    python benchmarks/bench_formal.py [--every 1] [--workers 2] [--timeout 6]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from conftest import simulatable_designs  # noqa: E402

from salv_trl.hdl.formal import DEFAULT_DEPTH  # noqa: E402
from salv_trl.hdl.mutate import mutants  # noqa: E402
from salv_trl.hdl.source import VerilogInputError  # noqa: E402
from salv_trl.hdl.testbench import RESET_EVERY  # noqa: E402
from salv_trl.hdl.verify import Proof, Status, VerifyJob, verify_many  # noqa: E402


def suite(name: str) -> str:
    return name.split("/")[0]


def mutant_jobs(every: int) -> tuple[list[VerifyJob], list[tuple[str, str]]]:
    jobs, where = [], []
    designs = simulatable_designs()[::every]
    for design in designs:
        try:
            found = mutants(design.text, design.top, per_output=1)
        except VerilogInputError:
            continue
        for mutant in found:
            jobs.append(VerifyJob(mutant.text, design.text, top=design.top))
            where.append((design.name, mutant.output))
    return jobs, where


def judged(jobs, workers, timeout, **settings):
    start = time.perf_counter()
    runs = [replace(job, **settings) for job in jobs]
    verdicts = verify_many(runs, workers=workers, progress=False, timeout=timeout)
    return verdicts, (time.perf_counter() - start) / max(1, len(jobs))


def rates(where, random, formal) -> dict[str, Counter]:
    table: dict[str, Counter] = defaultdict(Counter)
    for (name, output), r, f in zip(where, random, formal, strict=True):
        if r.status != Status.ok or f.status != Status.ok:
            continue
        row, mine, proof = table[suite(name)], r.signals[output], f.signals[output]
        row["mutants"] += 1
        row["formal_counterexample"] += proof.proof == Proof.counterexample
        row["random_correct_formal_cex"] += mine.correct and proof.proof == Proof.counterexample
        row["random_mismatch"] += mine.mismatches > 0
        row["random_mismatch_formal_proved"] += mine.mismatches > 0 and proof.proof == Proof.proved
        row["random_untested"] += mine.untested
        row["formal_unknown"] += proof.proof == Proof.unknown
        row["formal_bounded"] += proof.proof == Proof.proved_bounded
    return table


def self_equivalence(workers: int, timeout: float) -> tuple[Counter, Counter]:
    """Per suite and result, the outputs of every reference checked formally against itself; and why the
    unknown ones are unknown."""
    designs = simulatable_designs()
    jobs = [VerifyJob(d.text, d.text, top=d.top, vectors=20, method="formal") for d in designs]
    verdicts = verify_many(jobs, workers=workers, progress=False, timeout=timeout)
    results, reasons = Counter(), Counter()
    for design, verdict in zip(designs, verdicts, strict=True):
        for signal in verdict.signals.values():
            results[suite(design.name), signal.proof.value] += 1
            if signal.proof == Proof.unknown:
                reasons[signal.reason.split(":")[0][:70]] += 1
    return results, reasons


def judge_arguments(doc: str) -> argparse.ArgumentParser:
    """A parser with the options every formal-side benchmark takes (`--workers`, `--timeout`)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=6.0, help="seconds per simulator step / tool run")
    return parser


def main() -> None:
    parser = judge_arguments(__doc__)
    parser.add_argument("--every", type=int, default=1, help="use every N-th reference (default: all)")
    args = parser.parse_args()

    jobs, where = mutant_jobs(args.every)
    print(
        f"{len(jobs)} single-output mutants of {len({n for n, _ in where})} references; formal depth "
        f"{DEFAULT_DEPTH}, reset_every {RESET_EVERY}, timeout {args.timeout:g} s, {args.workers} workers"
    )
    random200, _ = judged(jobs, args.workers, args.timeout, vectors=200)
    random1000, t_random = judged(jobs, args.workers, args.timeout, vectors=1000)
    formal, t_formal = judged(jobs, args.workers, args.timeout, method="formal")
    both, t_both = judged(jobs, args.workers, args.timeout, method="both")

    for vectors, random in ((200, random200), (1000, random1000)):
        print(f"\nrandom at {vectors} vectors against formal, on the mutated output:")
        print(
            "| benchmark | mutants | formal cex | random says correct (of formal cex) | random mismatch |"
            " random mismatch, formal proved | random untested | formal unknown | formal bounded |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for name, row in sorted(rates(where, random, formal).items()):
            cex = row["formal_counterexample"]
            missed = row["random_correct_formal_cex"]
            share = f"{missed} ({100 * missed / max(1, cex):.1f}%)"
            print(
                f"| {name} | {row['mutants']} | {cex} | {share} | {row['random_mismatch']} |"
                f" {row['random_mismatch_formal_proved']} | {row['random_untested']} |"
                f" {row['formal_unknown']} | {row['formal_bounded']} |"
            )

    print("\nseconds per candidate, same candidates and workers:")
    print("| random (1000 vectors) | formal | both |\n|---|---|---|")
    print(f"| {t_random:.3f} | {t_formal:.3f} | {t_both:.3f} |")
    agree = sum(
        f.signals.get(o) is not None
        and b.signals.get(o) is not None
        and f.signals[o].proof == b.signals[o].proof
        for (_, o), f, b in zip(where, formal, both, strict=True)
        if f.status == b.status == Status.ok
    )
    print(f"formal and both give the same proof on {agree} mutated outputs")

    results, reasons = self_equivalence(args.workers, args.timeout)
    print("\nformal self-equivalence of every reference (outputs):")
    print("| benchmark | proved | proved_bounded | unknown |\n|---|---|---|---|")
    for name in sorted({name for name, _ in results}):
        row = [results[name, proof.value] for proof in (Proof.proved, Proof.proved_bounded, Proof.unknown)]
        print(f"| {name} | " + " | ".join(map(str, row)) + " |")
    print("unknown, by reason:")
    for reason, count in reasons.most_common():
        print(f"  {count:>4}  {reason}")


if __name__ == "__main__":
    main()
