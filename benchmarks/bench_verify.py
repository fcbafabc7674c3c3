"""Candidates per second: the batched verification engine vs one compile + one run per candidate.

The per-candidate route is what the original release does (one `iverilog` and one `vvp` per candidate); the
batched engine simulates up to `--batch-size` candidates of the same reference in one compile and one run. The
batched engine runs a second time without namespace isolation (`SALV_TRL_UNSAFE_NO_ISOLATION=1`) to measure
what isolation costs per candidate.
Both judge the same candidates (each benchmark reference and its mutants) with the same stimulus, over the
same worker processes, and must give identical verdicts.

    python benchmarks/bench_verify.py [--designs 40] [--per-reference 8] [--vectors 1000] [--workers N]
    [--timeout 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from conftest import reference_designs  # noqa: E402

from salv_trl.hdl.mutate import mutants  # noqa: E402
from salv_trl.hdl.sandbox import UNSAFE_ENV  # noqa: E402
from salv_trl.hdl.verify import VerifyJob, verify_many  # noqa: E402

UNSIMULATABLE = {"ve2/Prob151_review2015_fsm", "ve2/Prob156_review2015_fancytimer"}


def candidate_jobs(designs: int, per_reference: int, vectors: int) -> list[VerifyJob]:
    """`per_reference` distinct candidates per task, as a sampler gives a fixed number of completions per
    prompt: the reference itself and its single-output mutants, for the first `designs` references (spread
    over the suites) that have that many distinct mutants."""
    eligible = []
    for design in reference_designs():
        if design.name in UNSIMULATABLE:
            continue
        texts = list(
            dict.fromkeys([design.text] + [m.text for m in mutants(design.text, design.top, per_output=4)])
        )
        if len(texts) >= per_reference:
            eligible.append((design, texts[:per_reference]))
    chosen = eligible[:: max(1, len(eligible) // designs)][:designs]
    return [VerifyJob(text, d.text, top=d.top, vectors=vectors) for d, texts in chosen for text in texts]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--designs", type=int, default=40)
    parser.add_argument("--per-reference", type=int, default=8)
    parser.add_argument("--vectors", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--workers", type=int, default=2 * (os.cpu_count() or 1), help="default: the engine's"
    )
    parser.add_argument(
        "--timeout", type=float, default=2.0, help="per simulator step (the original release: 1 s)"
    )
    args = parser.parse_args()
    if not reference_designs():
        sys.exit("benchmark references not found (../shared/benchmarks)")
    jobs = candidate_jobs(args.designs, args.per_reference, args.vectors)
    timings = {}
    results = {}
    unsafe = "batched engine, no isolation (limits only)"
    for name, batch_size in (
        ("per-candidate (1 compile + 1 run each)", 1),
        ("batched engine", args.batch_size),
        (unsafe, args.batch_size),
    ):
        if name == unsafe:
            os.environ[UNSAFE_ENV] = "1"  # read when each sandbox opens
        start = time.perf_counter()
        results[name] = verify_many(
            jobs, workers=args.workers, progress=False, batch_size=batch_size, timeout=args.timeout
        )
        timings[name] = time.perf_counter() - start
        os.environ.pop(UNSAFE_ENV, None)
    single, batched, bare = (results[name] for name in timings)
    same = [a.to_dict() == b.to_dict() == c.to_dict() for a, b, c in zip(single, batched, bare, strict=True)]
    print(
        f"{len(jobs)} distinct candidates of {len(jobs) // args.per_reference} references,"
        f" {args.vectors} vectors, {args.workers} workers, timeout {args.timeout:g} s"
    )
    for name, seconds in timings.items():
        print(f"  {name:<40} {seconds:7.2f} s  {len(jobs) / seconds:8.1f} candidates/s")
    names = list(timings)
    overhead = (timings[names[1]] - timings[names[2]]) / len(jobs)
    print(
        f"  speed-up: {timings[names[0]] / timings[names[1]]:.2f}x"
        f"   identical verdicts (all three routes): {sum(same)}/{len(jobs)}"
    )
    print(f"  isolation overhead: {1000 * overhead:.1f} ms per candidate (batched, {args.workers} workers)")
    if not all(same):
        sys.exit("verdicts differ between the two routes")


if __name__ == "__main__":
    main()
