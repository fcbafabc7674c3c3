"""How sound a verified rollout folder's per-output verdicts are: its stored random verdicts against formal.

A random sample of the simulated rollouts of a folder written by `salv-trl verify` (e.g. a seed of the tiny
reproduction, `outputs/tiny/full-seed0/seed0/rollouts`) is judged again by formal equivalence per output
(`method="formal"`: Yosys + ABC, counterexamples replayed in the simulator), and the script prints how many
outputs the stored verdicts call correct that have a counterexample, how many they call wrong that formal
proves, and how many passing rollouts have a counterexample on some output.

    python benchmarks/bench_rollouts_formal.py ROLLOUTS TASKS [--sample 400] [--workers 2] [--timeout 6]
"""

from __future__ import annotations

import argparse
import random
from collections import Counter

from salv_trl.data.hub import load_config
from salv_trl.data.tasks import load_tasks
from salv_trl.hdl.extract import extract_code
from salv_trl.hdl.verify import ModuleVerdict, Proof, Status, VerifyJob, verify_many


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("rollouts", help="a verified rollouts folder")
    parser.add_argument("tasks", help="its tasks (a file, folder or Hub id that salv-trl reads)")
    parser.add_argument("--sample", type=int, default=400, help="simulated rollouts to check (seeded)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=6.0, help="seconds per simulator step / tool run")
    args = parser.parse_args()

    tasks = {row["task_id"]: row for row in load_tasks(args.tasks)}
    rows = [row for row in load_config(args.rollouts, "rollouts") if row["verdict"]["status"] == Status.ok]
    random.Random(0).shuffle(rows)
    rows = rows[: args.sample]
    jobs = [
        VerifyJob(
            extract_code(row["completion"]).code,
            tasks[row["task_id"]]["reference"],
            top=tasks[row["task_id"]]["top"],
            method="formal",
        )
        for row in rows
    ]
    counts = Counter()
    for row, formal in zip(
        rows, verify_many(jobs, workers=args.workers, progress=False, timeout=args.timeout), strict=True
    ):
        stored = ModuleVerdict.from_dict(row["verdict"])
        for name, signal in stored.signals.items():
            proof = formal.signals[name].proof if name in formal.signals else None
            kind = "correct" if signal.correct else "wrong" if signal.wrong else "untested"
            counts[kind] += 1
            counts[kind, proof] += 1
        counts["passed"] += stored.passed
        counts["passed, a counterexample"] += stored.passed and any(
            s.proof == Proof.counterexample for s in formal.signals.values()
        )
    print(f"{len(rows)} simulated rollouts of {args.rollouts} (a seeded sample): stored verdicts vs formal")
    for kind in ("correct", "wrong", "untested"):
        by_proof = ", ".join(
            f"{proof.value if proof else 'not judged'} {counts[kind, proof]}"
            for proof in (*Proof, None)
            if counts[kind, proof]
        )
        print(f"  outputs called {kind}: {counts[kind]} ({by_proof})")
    print(f"  passing rollouts: {counts['passed']}, with a counterexample on some output: "
          f"{counts['passed, a counterexample']}")  # fmt: skip


if __name__ == "__main__":
    main()
