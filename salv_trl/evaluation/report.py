"""Evaluate completions on a benchmark: official verdicts, reference self-check, pass@k and syntax pass@k.

This is the work behind the `verilog_pass_at_k` metric module and `evaluation/run.py`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field

from ..data.benchmarks import Problem, load_benchmark
from .pass_at_k import mean_pass_at_k
from .scoring import Scorer, check_references

__all__ = ["EvaluationReport", "ProblemReport", "evaluate_completions", "format_table"]


@dataclass
class ProblemReport:
    """Results of one problem.

    Args:
        task_id (`str`): The problem id.
        n (`int`): Completions scored.
        passed (`int`): Completions that pass the official criterion.
        compiled (`int`): Completions that compile (syntax pass).
        scorable (`bool`): The problem's own reference passes under the installed simulator.
        reference_detail (`str`): Why the reference fails, when it does.
        samples (`list[dict]`): One [`~salv_trl.evaluation.official.SampleResult`] dict per completion
            (`passed`, `compiled`, and the verdict's `status`, `detail`, `signals`).
    """

    task_id: str
    n: int
    passed: int
    compiled: int
    scorable: bool
    reference_detail: str = ""
    samples: list[dict] = field(default_factory=list)


@dataclass
class EvaluationReport:
    """pass@k figures of a benchmark run, with per-problem results.

    Args:
        benchmark (`str`): The benchmark.
        pass_at_k (`dict[str, float]`): pass@k over the scorable problems (unscorable ones excluded).
        pass_at_k_all (`dict[str, float]`): pass@k over all problems given, unscorable ones counted as failed.
        syntax_pass_at_k (`dict[str, float]`): pass@k of the syntax criterion (compiles), over the scorable
            problems.
        unscorable (`list[str]`): Problems whose reference fails under the installed simulator.
        problems (`list[ProblemReport]`): Per-problem results, in input order.
        status_counts (`dict[str, int]`): Completions per status.
    """

    benchmark: str
    pass_at_k: dict[str, float]
    pass_at_k_all: dict[str, float]
    syntax_pass_at_k: dict[str, float]
    unscorable: list[str]
    problems: list[ProblemReport]
    status_counts: dict[str, int]

    def to_dict(self, per_problem: bool = True) -> dict:
        """Flat metric dict (`pass@1`, `pass@1_all`, `syntax_pass@1`, ...) plus details."""
        result = {**self.pass_at_k}
        result.update({f"{key}_all": value for key, value in self.pass_at_k_all.items()})
        result.update({f"syntax_{key}": value for key, value in self.syntax_pass_at_k.items()})
        result.update(
            benchmark=self.benchmark,
            num_problems=len(self.problems),
            num_scorable=len(self.problems) - len(self.unscorable),
            unscorable=list(self.unscorable),
            status_counts=dict(self.status_counts),
        )
        if per_problem:
            result["per_problem"] = [asdict(problem) for problem in self.problems]
        return result


def evaluate_completions(
    benchmark: str,
    predictions: Sequence[Sequence[str]],
    references: Sequence[str],
    *,
    k: Sequence[int] = (1,),
    data_dir: str | os.PathLike | None = None,
    problems: Sequence[Problem] | None = None,
    workers: int | None = None,
    batch_size: int = 32,
    progress: bool = True,
    scorer: Scorer | None = None,
) -> EvaluationReport:
    """Score raw completions on a benchmark and compute pass@k.

    Args:
        benchmark (`str`): Benchmark name (see [`salv_trl.evaluation.BENCHMARKS`]).
        predictions (`Sequence[Sequence[str]]`): For each problem, its raw completions (model text).
        references (`Sequence[str]`): The problem id of each entry of `predictions`.
        k (`Sequence[int]`, *optional*, defaults to `(1,)`): The k values; a k above some problem's number of
            completions is not reported.
        data_dir (`str` or `os.PathLike`, *optional*): Benchmark location (see [`load_benchmark`]).
        problems (`Sequence[Problem]`, *optional*): Already loaded problems (skips loading).
        workers (`int`, *optional*): Parallel sandboxes.
        batch_size (`int`, *optional*, defaults to `32`): Candidates per batched simulation
            (1: per-sample flow).
        progress (`bool`, *optional*, defaults to `True`): Progress bars.
        scorer ([`~salv_trl.evaluation.scoring.Scorer`], *optional*): Scores the references and the
            completions, with the verdicts it already knows (default: a new one with `workers`).

    Returns:
        [`EvaluationReport`]
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} prediction lists for {len(references)} references")
    if isinstance(k, int):
        k = [k]
    by_id = {problem.task_id: problem for problem in (problems or load_benchmark(benchmark, data_dir))}
    unknown = [task_id for task_id in references if task_id not in by_id]
    if unknown:
        raise ValueError(f"unknown {benchmark} problem ids: {', '.join(map(str, unknown[:5]))}")
    chosen = [by_id[task_id] for task_id in references]
    # one scorer for both: the self-check's verdicts make the references among the completions free
    with nullcontext(scorer) if scorer is not None else Scorer(workers) as engine:
        checks = check_references(
            list({p.task_id: p for p in chosen}.values()), progress=progress, scorer=engine.score
        )
        results = engine.score(
            chosen, [list(p) for p in predictions], batch_size=batch_size, progress=progress
        )
    reports = []
    status_counts: dict[str, int] = {}
    for problem, samples in zip(chosen, results, strict=True):
        check = checks[problem.task_id]
        for sample in samples:
            status = sample.verdict.status.value
            status_counts[status] = status_counts.get(status, 0) + 1
        reports.append(
            ProblemReport(
                task_id=problem.task_id,
                n=len(samples),
                passed=sum(s.passed for s in samples),
                compiled=sum(s.compiled for s in samples),
                scorable=check.passed,
                reference_detail=""
                if check.passed
                else f"{check.verdict.status.value}: {check.verdict.detail}",
                samples=[s.to_dict() for s in samples],
            )
        )
    scorable = [r for r in reports if r.scorable]
    return EvaluationReport(
        benchmark=benchmark,
        pass_at_k=mean_pass_at_k(((r.n, r.passed) for r in scorable), k),
        pass_at_k_all=mean_pass_at_k(((r.n, r.passed if r.scorable else 0) for r in reports), k),
        syntax_pass_at_k=mean_pass_at_k(((r.n, r.compiled) for r in scorable), k),
        unscorable=[r.task_id for r in reports if not r.scorable],
        problems=reports,
        status_counts=dict(sorted(status_counts.items())),
    )


def format_table(report: EvaluationReport) -> str:
    """The pass@k table as text: both figures (unscorable excluded / counted as failed) and syntax pass@k."""
    ks = sorted(
        {key for key in report.pass_at_k_all} | {key for key in report.pass_at_k}, key=lambda s: int(s[5:])
    )
    scorable = len(report.problems) - len(report.unscorable)
    lines = [
        f"{report.benchmark}: {len(report.problems)} problems, {scorable} scorable",
        f"{'metric':<56}" + "".join(f"{key:>10}" for key in ks),
    ]
    rows = (
        (f"pass@k (scorable problems, n={scorable})", report.pass_at_k),
        (f"pass@k (all problems, unscorable = failed, n={len(report.problems)})", report.pass_at_k_all),
        ("syntax pass@k (scorable problems)", report.syntax_pass_at_k),
    )
    for name, values in rows:
        lines.append(
            f"{name:<56}" + "".join(f"{values[key]:>10.4f}" if key in values else f"{'-':>10}" for key in ks)
        )
    if report.unscorable:
        lines.append(
            "unscorable (reference fails under the installed simulator): " + ", ".join(report.unscorable)
        )
    lines.append("statuses: " + ", ".join(f"{name}={count}" for name, count in report.status_counts.items()))
    return "\n".join(lines)
