"""Candidates per second, slicing included: the batched engine vs one compile + one run per candidate.

The per-candidate route is what the original release does (one `iverilog` and one `vvp` per candidate), and
slices each simulated candidate afterwards, in the parent process, from a fresh parse (how salv-trl's data
pipeline sliced before [`judge_many`] returned the slices). The batched engine ([`judge_many`]) simulates up
to `--batch-size` candidates of the same reference in one compile and one run, and its workers slice each
simulated candidate from the parse its verification made. It runs a second time without namespace isolation
(`SALV_TRL_UNSAFE_NO_ISOLATION=1`) to measure what isolation costs per candidate.
All routes judge the same candidates (each benchmark reference and its mutants) with the same stimulus, over
the same worker processes, and must give identical verdicts and slices. A route takes under a second here, so
each runs `--repeats` times, the routes taking turns (a busy spell of the shared machine hits all of them),
and the figures are the median runs' (the speed-up is also given per round, as a range).

Where the time goes: both routes run once more in this process (one worker); the CPU time of every sandboxed
process (`iverilog`, `vvp`, `iverilog -E`) is set against this process's own (Python: parsing, screening,
renaming, testbench generation, slicing), per candidate.

    python benchmarks/bench_verify.py [--designs 40] [--per-reference 8] [--vectors 1000] [--workers N]
    [--timeout 2] [--repeats 5]

With `--ray [ADDRESS]` it measures the data pipeline's two routes instead (see [`ray_throughput`]).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from conftest import simulatable_designs  # noqa: E402

from salv_trl.hdl.mutate import mutants  # noqa: E402
from salv_trl.hdl.parse import parse  # noqa: E402
from salv_trl.hdl.sandbox import UNSAFE_ENV  # noqa: E402
from salv_trl.hdl.slicing import slice_signals  # noqa: E402
from salv_trl.hdl.source import VerilogInputError  # noqa: E402
from salv_trl.hdl.verify import Judgement, Status, VerifyJob, judge_many, verify_many  # noqa: E402


def candidate_jobs(designs: int, per_reference: int, vectors: int) -> list[VerifyJob]:
    """`per_reference` distinct candidates per task, as a sampler gives a fixed number of completions per
    prompt: the reference itself and its single-output mutants, for the first `designs` references (spread
    over the suites) that have that many distinct mutants."""
    eligible = []
    for design in simulatable_designs():
        texts = list(
            dict.fromkeys([design.text] + [m.text for m in mutants(design.text, design.top, per_output=4)])
        )
        if len(texts) >= per_reference:
            eligible.append((design, texts[:per_reference]))
    chosen = eligible[:: max(1, len(eligible) // designs)][:designs]
    return [VerifyJob(text, d.text, top=d.top, vectors=vectors) for d, texts in chosen for text in texts]


def per_candidate_flow(jobs: list[VerifyJob], workers: int, timeout: float) -> list[Judgement]:
    """One simulation per candidate, then, as the data pipeline did before: each task's top from a parse of
    its reference, and each simulated candidate sliced in this process from a fresh parse."""
    verdicts = verify_many(jobs, workers=workers, progress=False, batch_size=1, timeout=timeout)
    tops = {job.reference: job.top or parse(job.reference).top for job in jobs}
    judged = []
    for job, verdict in zip(jobs, verdicts, strict=True):
        judgement = Judgement(verdict)
        if verdict.status == Status.ok:
            try:
                try:
                    judgement.slices = slice_signals(job.candidate, tops[job.reference])
                except VerilogInputError:
                    judgement.slices = slice_signals(job.candidate)
            except VerilogInputError as error:
                judgement.slice_error = f"{type(error).__name__}: {error}"
        judged.append(judgement)
    return judged


def batched_flow(jobs: list[VerifyJob], workers: int, timeout: float, batch_size: int) -> list[Judgement]:
    return judge_many(jobs, workers=workers, progress=False, batch_size=batch_size, timeout=timeout)


def time_split(flow, jobs: list[VerifyJob], *args) -> tuple[float, float]:
    """CPU seconds per candidate spent by the sandboxed processes (`iverilog`, `vvp`, `iverilog -E`, and
    bubblewrap around them) and by this process (Python), running `flow` here with one worker. CPU time, not
    wall time, so that a busy machine does not move the split."""
    before, children = time.process_time(), _children_cpu()
    flow(jobs, 1, *args)
    python, inside = time.process_time() - before, _children_cpu() - children
    return inside / len(jobs), python / len(jobs)


def _children_cpu() -> float:
    times = os.times()
    return times.children_user + times.children_system


def ray_throughput(jobs: list[VerifyJob], args: argparse.Namespace) -> None:
    """`--ray [ADDRESS]`: the same candidates as rollouts of a dataset (each in a fenced block), judged by the
    local pool ([`judge_rollouts`], `--workers` processes) and as Ray tasks of `--chunk-size` rollouts
    ([`judge_rollouts_ray`], what `salv-trl verify --ray` runs) on a fresh local Ray instance of `--workers`
    CPUs, or on the cluster at ADDRESS. Ray runs twice: first with the start of its worker processes (each
    imports salv-trl), then with them warm. Verdicts and slices must be identical."""
    import ray

    from salv_trl.data.rollouts import VerifySettings, judge_rollouts, judge_rollouts_ray

    references = list(dict.fromkeys((job.reference, job.top) for job in jobs))
    tasks = {str(i): {"reference": text, "top": top} for i, (text, top) in enumerate(references)}
    task_of = {reference: task_id for task_id, reference in zip(tasks, references, strict=True)}
    rows = [
        {"task_id": task_of[job.reference, job.top], "prompt": "", "sample_index": index,
         "completion": f"```verilog\n{job.candidate}```"}
        for index, job in enumerate(jobs)
    ]  # fmt: skip
    settings = VerifySettings(vectors=args.vectors, timeout=args.timeout)
    local = f"local pool ({args.workers} workers)"
    start = time.perf_counter()
    results = {local: judge_rollouts(rows, tasks, settings, workers=args.workers, progress=False)}
    timings = {local: time.perf_counter() - start}
    if args.ray == "local":
        ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
    else:
        ray.init(address=args.ray, log_to_driver=False)
    cpus = ray.cluster_resources().get("CPU", 0)
    for run in ("worker processes starting", "warm"):
        name = f"Ray, {cpus:g} CPUs, chunks of {args.chunk_size}, {run}"
        start = time.perf_counter()
        chunks = judge_rollouts_ray(rows, tasks, settings, chunk_size=args.chunk_size)
        results[name] = sorted(
            (row for chunk in chunks for row in chunk), key=lambda row: row["sample_index"]
        )
        timings[name] = time.perf_counter() - start
    ray.shutdown()
    same = sum(len({repr(judged[i]) for judged in results.values()}) == 1 for i in range(len(rows)))
    print(f"{len(rows)} rollouts of {len(tasks)} tasks, {args.vectors} vectors, slicing included")
    for name, seconds in timings.items():
        print(f"  {name:<58} {seconds:7.2f} s  {len(rows) / seconds:7.1f} rollouts/s")
    print(
        f"  throughput, warm Ray / local pool: {timings[local] / list(timings.values())[-1]:.2f}x"
        f"  identical rows (all three): {same}/{len(rows)}"
    )
    if same != len(rows):
        sys.exit("verdicts or slices differ between the routes")


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
    parser.add_argument(
        "--ray", metavar="ADDRESS", nargs="?", const="local", help="Ray tasks against the local pool instead"
    )
    parser.add_argument("--chunk-size", type=int, default=8, help="rollouts per Ray task (with --ray)")
    parser.add_argument("--repeats", type=int, default=5, help="rounds of the three routes, taking turns")
    args = parser.parse_args()
    if not simulatable_designs():
        sys.exit("benchmark references not found (../shared/benchmarks)")
    jobs = candidate_jobs(args.designs, args.per_reference, args.vectors)
    if args.ray is not None:
        ray_throughput(jobs, args)
        return
    single_name, batched_name = "per-candidate (1 compile + 1 run each)", "batched engine"
    unsafe = "batched engine, no isolation (limits only)"
    routes = {
        single_name: (per_candidate_flow, (args.timeout,)),
        batched_name: (batched_flow, (args.timeout, args.batch_size)),
        unsafe: (batched_flow, (args.timeout, args.batch_size)),
    }
    rounds: dict[str, list[float]] = {name: [] for name in routes}
    runs: list[list[Judgement]] = []
    for _ in range(args.repeats):
        for name, (flow, flow_args) in routes.items():
            if name == unsafe:
                os.environ[UNSAFE_ENV] = "1"  # read when each sandbox opens
            start = time.perf_counter()
            runs.append(flow(jobs, args.workers, *flow_args))
            rounds[name].append(time.perf_counter() - start)
            os.environ.pop(UNSAFE_ENV, None)
    same = [
        all(
            run[i].verdict.to_dict() == runs[0][i].verdict.to_dict() and run[i].slices == runs[0][i].slices
            for run in runs
        )
        for i in range(len(jobs))
    ]
    timings = {name: statistics.median(seconds) for name, seconds in rounds.items()}
    print(
        f"{len(jobs)} distinct candidates of {len(jobs) // args.per_reference} references,"
        f" {args.vectors} vectors, {args.workers} workers, timeout {args.timeout:g} s, slicing included;"
        f" median of {args.repeats} rounds"
    )
    for name, seconds in timings.items():
        print(f"  {name:<44} {seconds:7.2f} s  {len(jobs) / seconds:8.1f} candidates/s")
    # Paired within a round: the two routes of one round ran back to back.
    overheads = [(b - u) / len(jobs) for b, u in zip(rounds[batched_name], rounds[unsafe], strict=True)]
    per_round = [s / b for s, b in zip(rounds[single_name], rounds[batched_name], strict=True)]
    print(
        f"  speed-up of the batched engine: {timings[single_name] / timings[batched_name]:.2f}x"
        f" (rounds: {min(per_round):.2f}x to {max(per_round):.2f}x)"
        f"   identical verdicts and slices (all routes and rounds): {sum(same)}/{len(jobs)}"
    )
    print(
        f"  isolation overhead: {1000 * statistics.median(overheads):.1f} ms per candidate (batched,"
        f" {args.workers} workers; rounds: {1000 * min(overheads):.1f} to {1000 * max(overheads):.1f} ms)"
    )
    print("Where the time goes (CPU time per candidate, one worker in this process):")
    for name in (single_name, batched_name):
        flow, flow_args = routes[name]
        inside, python = time_split(flow, jobs, *flow_args)
        print(
            f"  {name:<44} {1000 * inside:7.1f} ms in iverilog/vvp  {1000 * python:6.1f} ms in Python"
            f"  ({100 * inside / (inside + python):.0f}% in the simulator)"
        )
    if not all(same):
        sys.exit("verdicts or slices differ between the routes")


if __name__ == "__main__":
    main()
