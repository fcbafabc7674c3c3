"""Wall time to score VerilogEval v2 spec-to-rtl with n=20 (3120 completions): batched route vs the
official flow.

Completions per problem: the reference and single-output mutants of it (salv_trl.hdl.mutate), cycled to 20,
each with its own trailing comment so that all 20 texts differ (no help from de-duplication). Both routes run
through the sandbox with the same number of workers, in the same run; the verdicts must be identical.

    SALV_TRL_ALLOW_CODE_EXECUTION=1 python benchmarks/bench_eval.py \\
        [--data-dir ../shared/benchmarks] [--n 20]
"""

from __future__ import annotations

import argparse
import collections
import os
import time
from pathlib import Path

from salv_trl.evaluation.benchmarks import load_benchmark
from salv_trl.evaluation.official import OPT_IN_ENV, reference_code
from salv_trl.evaluation.scoring import score
from salv_trl.hdl.mutate import mutants
from salv_trl.hdl.sandbox import UNSAFE_ENV
from salv_trl.hdl.source import VerilogInputError


def completions(problem, n: int, seed: int) -> list[str]:
    reference = reference_code(problem)
    try:
        variants = [m.text for m in mutants(reference, problem.top, per_output=n, seed=seed)]
    except VerilogInputError:
        variants = []
    pool = [reference] + variants
    return [f"```verilog\n{pool[i % len(pool)]}\n// sample {i}\n```" for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"
    parser.add_argument("--data-dir", default=os.environ.get("SALV_TRL_BENCHMARKS", str(default)))
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--isolation-sample", type=int, default=312, help="completions timed with and without isolation"
    )
    args = parser.parse_args()
    # the completions are the benchmark's own references and their mutants
    os.environ.setdefault(OPT_IN_ENV, "1")

    problems = load_benchmark("verilog-eval-v2-spec-to-rtl", args.data_dir)
    predictions = [completions(p, args.n, args.seed) for p in problems]
    total = sum(map(len, predictions))
    print(f"VerilogEval v2 spec-to-rtl: {len(problems)} problems x {args.n} = {total} completions, "
          f"{args.workers} workers, {os.cpu_count()} CPUs")  # fmt: skip

    start = time.perf_counter()
    batched = score(problems, predictions, workers=args.workers, batch_size=args.batch_size, reuse=False)
    batched_s = time.perf_counter() - start
    start = time.perf_counter()
    official = score(problems, predictions, workers=args.workers, batch_size=1, reuse=False)
    official_s = time.perf_counter() - start

    flat_b = [r for rows in batched for r in rows]
    flat_o = [r for rows in official for r in rows]
    differing = [
        (p.task_id, j)
        for p, rb, ro in zip(problems, batched, official, strict=True)
        for j, (b, o) in enumerate(zip(rb, ro, strict=True))
        if b != o
    ]
    statuses = collections.Counter(r.verdict.status.value for r in flat_o)
    print(
        f"verdicts: {sum(r.passed for r in flat_o)} pass, "
        f"{len(flat_o) - sum(r.passed for r in flat_o)} fail; "
        f"statuses {dict(sorted(statuses.items()))}"
    )
    print(
        "identical verdicts (status, pass, detail, per-output counts): "
        f"{len(flat_b) - len(differing)}/{len(flat_b)}"
    )
    for task_id, j in differing[:10]:
        print(f"  differs: {task_id} sample {j}")
    print(f"{'route':<40}{'wall s':>10}{'ms/completion':>16}")
    print(
        f"{'official per-sample flow (batch_size=1)':<40}"
        f"{official_s:>10.1f}{1000 * official_s / total:>16.1f}"
    )
    print(
        f"{f'batched (batch_size={args.batch_size})':<40}{batched_s:>10.1f}{1000 * batched_s / total:>16.1f}"
    )
    print(f"speed-up: {official_s / batched_s:.2f}x (target >= 2x)")

    # what isolation costs: the official flow on a subset, with and without namespace isolation
    subset = [rows[: max(1, args.isolation_sample // len(problems))] for rows in predictions]
    count = sum(map(len, subset))
    runs = []
    for unsafe in (False, True):
        if unsafe:
            os.environ[UNSAFE_ENV] = "1"  # read when each sandbox opens
        start = time.perf_counter()
        scored = score(problems, subset, workers=args.workers, batch_size=1, reuse=False, progress=False)
        runs.append(([r for rows in scored for r in rows], time.perf_counter() - start))
        os.environ.pop(UNSAFE_ENV, None)
    (isolated, isolated_s), (bare, bare_s) = runs
    same = sum(a == b for a, b in zip(isolated, bare, strict=True))
    print(
        f"isolation overhead: {1000 * (isolated_s - bare_s) / count:.1f} ms per completion "
        f"({count} completions, official flow, {args.workers} workers); identical verdicts {same}/{count}"
    )


if __name__ == "__main__":
    main()
