"""How often the random testbench should pulse reset: the `reset_every` default, measured both ways.

A rare reset lets counters reach their upper states; a frequent one checks what reset does to registers that
hold values. Per reset rate (a pulse on about one cycle in `reset_every`, besides the first two cycles and
the middle one), at 200 vectors (the data pipeline's tiny reproduction) and 1000 (the default), it prints:

- **reset bugs missed**: synthetic tasks with registers (`salv_trl.synthetic`) against the same task with
  the other reset timing (asynchronous for synchronous and back), a bug a small model makes often; the truth
  is the formal check's per output (`method="formal"`: a counterexample replayed in the simulator); the
  figure is the share of outputs with a counterexample that random co-simulation calls correct;
- **benchmark bugs missed**: the single-output mutants of the benchmark references with a reset
  (`bench_formal.py`'s), with a formal counterexample on the mutated output: the share random co-simulation
  calls correct. A frequent reset keeps counters from their upper states, where such bugs may hide while
  the output still moves;
- **outputs moved**: the benchmark references with a reset judged against themselves; how many of their
  outputs the stimulus moves at all (an output that never moves is untested).

A random run that does not simulate (time-out, harness error) counts as missing its outputs.

    python benchmarks/bench_reset.py [--tasks 150] [--workers 2] [--timeout 6]
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from bench_formal import judge_arguments, mutant_jobs  # noqa: E402
from conftest import simulatable_designs  # noqa: E402

from salv_trl.hdl.parse import parse  # noqa: E402
from salv_trl.hdl.source import VerilogInputError  # noqa: E402
from salv_trl.hdl.testbench import RESET_EVERY, plan_stimulus  # noqa: E402
from salv_trl.hdl.verify import ModuleVerdict, Proof, VerifyJob, verify_many  # noqa: E402
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


def counterexamples(outputs: list[list[str]], formal: list[ModuleVerdict]) -> list[list[str]]:
    """Of each candidate's `outputs`, those with a formal counterexample (replayed in the simulator)."""
    return [
        [
            name
            for name in names
            if verdict.signals.get(name) and verdict.signals[name].proof == Proof.counterexample
        ]
        for names, verdict in zip(outputs, formal, strict=True)
    ]


def missed(wrong: list[list[str]], random: list[ModuleVerdict]) -> str:
    """How many of the `wrong` outputs random co-simulation does not show wrong (called correct, or not
    simulated at all), of how many."""
    count = sum(
        not (name in verdict.signals and verdict.signals[name].wrong)
        for names, verdict in zip(wrong, random, strict=True)
        for name in names
    )
    total = sum(map(len, wrong))
    return f"{count} of {total} ({100 * count / max(1, total):.1f}%)"


def main() -> None:
    parser = judge_arguments(__doc__)
    parser.add_argument("--tasks", type=int, default=150, help="synthetic tasks with registers")
    args = parser.parse_args()
    judge = dict(workers=args.workers, progress=False, timeout=args.timeout)

    references = sequential_references()
    flipped, registers = reset_timing_mutants(args.tasks)
    texts = {job.reference for job in references}
    bench_jobs, where = mutant_jobs(1)
    bench = [
        (job, [output]) for job, (_, output) in zip(bench_jobs, where, strict=True) if job.reference in texts
    ]
    candidates = {
        "reset": (flipped, registers),
        "bench": ([job for job, _ in bench], [outputs for _, outputs in bench]),
    }
    wrong = {
        kind: counterexamples(outputs, verify_many([replace(j, method="formal") for j in jobs], **judge))
        for kind, (jobs, outputs) in candidates.items()
    }
    print(
        f"{len(flipped)} synthetic tasks with the other reset timing: {sum(map(len, registers))} registered "
        f"outputs, {sum(map(len, wrong['reset']))} with a formal counterexample; {len(bench)} single-output "
        f"mutants of the {len(references)} benchmark references with a reset, "
        f"{sum(map(len, wrong['bench']))} with a formal counterexample; default reset_every {RESET_EVERY}"
    )
    print(
        "| vectors | reset_every | reset bugs missed | benchmark bugs missed | outputs moved (benchmarks) |"
    )
    print("|---|---|---|---|---|")
    for vectors in VECTORS:
        for rate in RESET_RATES:
            settings = dict(vectors=vectors, reset_every=rate)
            random = {
                kind: verify_many([replace(j, **settings) for j in jobs], **judge)
                for kind, (jobs, _) in candidates.items()
            }
            moved = Counter()
            for verdict in verify_many([replace(j, **settings) for j in references], **judge):
                moved["outputs"] += len(verdict.signals)
                moved["moved"] += sum(bool(s.activity) for s in verdict.signals.values())
            print(
                f"| {vectors} | {rate} | {missed(wrong['reset'], random['reset'])} |"
                f" {missed(wrong['bench'], random['bench'])} | {moved['moved']} of {moved['outputs']} |"
            )


if __name__ == "__main__":
    main()
