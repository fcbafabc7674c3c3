"""How often the random testbench should pulse reset: the `reset_every` default, measured both ways.

A rare reset lets counters reach their upper states; a frequent one checks what reset does to registers that
hold values. Per reset rate (a pulse on about one cycle in `reset_every`, besides the first two cycles and
the middle one), at 200 vectors (the data pipeline's tiny reproduction) and 1000 (the default), it prints:

- **reset bugs missed**: synthetic tasks with registers (`salv_trl.synthetic`) against the same task with
  the other reset timing (asynchronous for synchronous and back), a bug a small model makes often; the truth
  is the formal check's per output (`method="formal"`: a counterexample replayed in the simulator); the
  figure is the share of outputs with a counterexample that random co-simulation calls correct;
- **outputs moved**: the benchmark references with a reset judged against themselves; how many of their
  outputs the stimulus moves at all (an output that never moves is untested).

    python benchmarks/bench_reset.py [--tasks 150] [--workers 2] [--timeout 6]
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from conftest import simulatable_designs  # noqa: E402

from salv_trl.hdl.parse import parse  # noqa: E402
from salv_trl.hdl.source import VerilogInputError  # noqa: E402
from salv_trl.hdl.testbench import RESET_EVERY, plan_stimulus  # noqa: E402
from salv_trl.hdl.verify import Proof, VerifyJob, verify_many  # noqa: E402
from salv_trl.synthetic import ResetSpec, generate_tasks  # noqa: E402

RESET_RATES = (16, 32, 64, 128, 256, 1024)
VECTORS = (200, 1000)


def reset_timing_mutants(count: int) -> tuple[list[VerifyJob], list[list[str]]]:
    """Candidate = the task with its reset's timing flipped; with the registered outputs of each."""
    jobs, registers = [], []
    for task in generate_tasks(4 * count, split="test", seed=11):
        if task.reset is None:
            continue
        flipped = replace(task, reset=ResetSpec(task.reset.active_low, not task.reset.asynchronous))
        jobs.append(VerifyJob(flipped.reference, task.reference, top="top_module"))
        registers.append([name for name, out in task.named_outputs if out.registered])
        if len(jobs) == count:
            break
    return jobs, registers


def sequential_references() -> list[VerifyJob]:
    jobs = []
    for design in simulatable_designs():
        try:
            interface = parse(design.text, prefer_top=design.top).interface
        except VerilogInputError:
            continue
        if plan_stimulus([p.name for p in interface.inputs], interface.edge_events).resets:
            jobs.append(VerifyJob(design.text, design.text, top=design.top))
    return jobs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=150, help="synthetic tasks with registers")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=6.0, help="seconds per simulator step / tool run")
    args = parser.parse_args()
    judge = dict(workers=args.workers, progress=False, timeout=args.timeout)

    mutants, registers = reset_timing_mutants(args.tasks)
    formal = verify_many([replace(job, method="formal") for job in mutants], **judge)
    wrong = [
        [
            name
            for name in names
            if verdict.signals.get(name) and verdict.signals[name].proof == Proof.counterexample
        ]
        for names, verdict in zip(registers, formal, strict=True)
    ]
    references = sequential_references()
    print(
        f"{len(mutants)} synthetic tasks with the other reset timing: {sum(map(len, registers))} registered "
        f"outputs, {sum(map(len, wrong))} with a formal counterexample; {len(references)} benchmark "
        f"references with a reset (self-check); default reset_every {RESET_EVERY}"
    )
    print("| vectors | reset_every | reset bugs missed by random | outputs moved (benchmarks) |")
    print("|---|---|---|---|")
    for vectors in VECTORS:
        for rate in RESET_RATES:
            random = verify_many([replace(j, vectors=vectors, reset_every=rate) for j in mutants], **judge)
            missed = sum(
                verdict.signals[name].correct
                for names, verdict in zip(wrong, random, strict=True)
                for name in names
                if name in verdict.signals
            )
            moved = Counter()
            for verdict in verify_many(
                [replace(j, vectors=vectors, reset_every=rate) for j in references], **judge
            ):
                moved["outputs"] += len(verdict.signals)
                moved["moved"] += sum(bool(s.activity) for s in verdict.signals.values())
            total = sum(map(len, wrong))
            print(
                f"| {vectors} | {rate} | {missed} of {total} ({100 * missed / max(1, total):.1f}%) |"
                f" {moved['moved']} of {moved['outputs']} |"
            )


if __name__ == "__main__":
    main()
