"""Scoring many completions under their problems' official harnesses ([`salv_trl.evaluation.official`]): a
[`Scorer`] holds the pool of sandboxes and the verdicts already known.

Besides the official per-sample flow, a faster route with identical verdicts: for VerilogEval, candidates of
one problem are compiled and simulated together, each with its own renamed copy of the testbench and
reference ([`salv_trl.hdl.batch`]), so each copy sees exactly the stimulus of its own run and a copy that
would have ended earlier than the others is not believed. The first candidate runs alone and its run time
bounds the batch size and the batch's time limit; where one copy per run is all that fits (slow simulations),
a copy still runs this way, which spares it the waveform dump (up to a third of the run time on long
testbenches). Batches start longest first. Any candidate whose batched result could differ from its own run
(compiler messages, directives, names of the batch's own scopes, untagged output, hang, missing summary line)
is scored by the per-sample flow instead. Copies do not share a reference: Icarus orders the processes woken
in one time step by all the processes present, so removing a copy's reference can change how a racy candidate
resolves its race (a mutant of `Prob110_fsm2`: 129 mismatches instead of 131).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import secrets
import subprocess
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

from ..data.benchmarks import Problem
from ..hdl.batch import batch_files, copies_named, copy_source, copy_tag, copy_template, finish_time
from ..hdl.sandbox import Sandbox, SandboxResult
from ..progress import advance
from . import official
from .official import (
    COMPILE_TIMEOUT,
    IVERILOG_FLAGS,
    WALL_FACTOR,
    SampleResult,
    cut_short,
    harness_of,
    judge_v1,
    judge_v2,
    limits,
    precheck,
    redeclared,
    reference_code,
    renamed_harness,
    require_opt_in,
    run_official,
    score_custom,
    split_testbench_lines,
    summary_samples,
)

__all__ = ["Scorer", "check_references", "score", "score_sample"]

# A batch's time limit: margin x its expected time, and at least the floor.
BATCH_MARGIN = 4.0
BATCH_FLOOR = 2.0
MAX_CACHED = 200_000  # verdicts a scorer keeps: bounds the memory a long-lived one spends on them


class Scorer:
    """Scores completions under each problem's official harness, on a pool of sandboxes.

    Simulation is deterministic, so a scorer keeps the verdicts it has given (per problem, its files, the
    harness and the simulator version, and the candidate's code) and the reference's sample count of each
    VerilogEval problem it has run; a long-lived scorer (one per training run's pass-rate callback, one per
    evaluation) does not simulate a code twice. Use it as a context manager, or call [`close`], to stop its
    pool.

    Args:
        workers (`int`, *optional*): Parallel sandboxes (default: the CPU count).
        reuse (`bool`, *optional*, defaults to `True`): Reuse the verdicts of codes this scorer has scored on
            the same problem (the reference self-check then makes references free).
    """

    def __init__(self, workers: int | None = None, reuse: bool = True):
        self.workers = workers or os.cpu_count() or 1
        self.reuse = reuse
        self._verdicts: dict[tuple[str, str], SampleResult] = {}  # (problem key, code) -> verdict
        self._reference_samples: dict[str, int | None] = {}  # problem key -> samples of the reference's run
        self._pool: ThreadPoolExecutor | None = None

    def __enter__(self) -> Scorer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Stop the pool's threads (a later call starts a new pool); the verdicts are kept."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    @property
    def pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.workers)
        return self._pool

    def score(
        self,
        problems: Sequence[Problem],
        predictions: Sequence[Sequence[str]],
        *,
        batch_size: int = 32,
        progress: bool = True,
    ) -> list[list[SampleResult]]:
        """Score every completion of every problem under the problem's official harness.

        Identical candidate codes of a problem are simulated once. VerilogEval candidates are simulated
        `batch_size` at a time (see the module docstring); `batch_size=1` runs the official per-sample flow
        for every candidate.

        Args:
            problems (`Sequence[Problem]`): The problems, one per entry of `predictions`.
            predictions (`Sequence[Sequence[str]]`): Raw completions for each problem.
            batch_size (`int`, *optional*, defaults to `32`): Candidates per batched simulation.
            progress (`bool`, *optional*, defaults to `True`): Show a progress bar.

        Returns:
            `list[list[SampleResult]]`: Results in the shape of `predictions`.
        """
        require_opt_in()
        if len(problems) != len(predictions):
            raise ValueError(f"{len(predictions)} prediction lists for {len(problems)} problems")
        results: list[list[SampleResult | None]] = [[None] * len(p) for p in predictions]
        custom = [(i, j) for i, problem in enumerate(problems) if harness_of(problem) == "custom"
                  for j in range(len(predictions[i]))]  # fmt: skip
        if custom:
            for (i, j), result in zip(
                custom, score_custom([(problems[i], predictions[i][j]) for i, j in custom]), strict=True
            ):
                results[i][j] = result
        # distinct screened codes per problem, minus those this scorer has scored already
        keys = {i: _problem_key(problem) if self.reuse else "" for i, problem in enumerate(problems)}
        pending: dict[int, list[str]] = {}
        where: dict[tuple[int, str], list[int]] = {}
        for i, problem in enumerate(problems):
            if harness_of(problem) == "custom":
                continue
            for j, completion in enumerate(predictions[i]):
                code, early = precheck(problem, completion)
                if early is not None:
                    results[i][j] = early
                elif self.reuse and (keys[i], code) in self._verdicts:
                    results[i][j] = self._verdicts[keys[i], code]
                else:
                    if (i, code) not in where:
                        pending.setdefault(i, []).append(code)
                    where.setdefault((i, code), []).append(j)
        from tqdm.auto import tqdm

        with tqdm(total=len(where), desc="simulating", unit="completion", disable=not progress) as bar:
            verdicts = self._simulate(problems, pending, batch_size, functools.partial(advance, bar))
        for (i, code), verdict in verdicts.items():
            if self.reuse:
                if len(self._verdicts) > MAX_CACHED:
                    self._verdicts.clear()
                self._verdicts[keys[i], code] = verdict
            for j in where[i, code]:
                results[i][j] = verdict
        return results  # type: ignore[return-value]

    def score_sample(self, problem: Problem, completion: str) -> SampleResult:
        """Score one completion with the official per-sample flow (one compile and one run in a fresh
        sandbox)."""
        require_opt_in()
        if harness_of(problem) == "custom":
            return score_custom([(problem, completion)])[0]
        code, early = precheck(problem, completion)
        return early if early is not None else self.run_alone(problem, code)[0]

    def _simulate(
        self, problems: Sequence[Problem], pending: dict[int, list[str]], batch_size: int, done: Callable
    ) -> dict[tuple[int, str], SampleResult]:
        """The verdicts of the `pending` codes of each problem: batched where the problem allows, else alone;
        `done(n)` is called as `n` more are known."""
        verdicts: dict[tuple[int, str], SampleResult] = {}
        batchable = [
            i
            for i, codes in pending.items()
            if batch_size > 1 and len(codes) > 2 and harness_of(problems[i]).startswith("verilog-eval")
        ]
        for i in pending:  # pyslang parses the harness here, never in the pool's threads
            renamed_harness(problems[i])
            reference_code(problems[i])
        jobs = []
        probes = self.pool.map(self._probe, [problems[i] for i in batchable], [pending[i] for i in batchable])
        for i, (found, seconds) in zip(batchable, probes, strict=True):
            verdicts.update({(i, code): verdict for code, verdict in found.items()})
            done(len(found))
            if seconds is None:
                continue
            limit = (
                official.V2_TIMEOUT if harness_of(problems[i]) == "verilog-eval-v2" else official.V1_TIMEOUT
            )
            # as many copies as fit in the official timeout with the margin, so a batch is never cut short
            size = min(batch_size, max(1, int(limit // (BATCH_MARGIN * max(seconds, 1e-3)))))
            rest = [code for code in pending[i] if (i, code) not in verdicts]
            # a copy alone too: one compile and one run as the official flow, without its waveform dump
            jobs += [(i, rest[k : k + size], seconds) for k in range(0, len(rest), size)]
        # longest first, so that the slow problems' runs do not end up alone at the tail of the pool
        jobs.sort(key=lambda job: len(job[1]) * job[2], reverse=True)
        batched = self.pool.map(
            self.run_batch,
            [problems[i] for i, _, _ in jobs],
            [codes for _, codes, _ in jobs],
            [s for *_, s in jobs],
        )
        for (i, codes, _), found in zip(jobs, batched, strict=True):
            known = {
                (i, code): verdict for code, verdict in zip(codes, found, strict=True) if verdict is not None
            }
            verdicts.update(known)
            done(len(known))
        singles = [(i, code) for i, codes in pending.items() for code in codes if (i, code) not in verdicts]
        alone = self.pool.map(
            self.run_alone, [problems[i] for i, _ in singles], [code for _, code in singles]
        )
        for item, (verdict, _) in zip(singles, alone, strict=True):
            verdicts[item] = verdict
            done(1)
        return verdicts

    def _probe(self, problem: Problem, codes: Sequence[str]) -> tuple[dict[str, SampleResult], float | None]:
        """Candidates run alone until one simulates to the end: its run time sizes the batches of the others
        and bounds how long they may take, so that a batch stuck on a hanging copy is given up early. Returns
        the verdicts found and that run time (None: none ran to the end)."""
        found = {}
        for code in codes:
            found[code], seconds = self.run_alone(problem, code)
            if seconds is not None:
                return found, seconds
        return found, None

    def run_alone(self, problem: Problem, code: str) -> tuple[SampleResult, float | None]:
        """The official flow for one screened candidate: its verdict, and the seconds its simulation ran when
        it ran to the end."""
        run = run_official(problem, code)
        return cut_short(problem, run.result, run.samples, self.reference_samples), run.seconds

    def reference_samples(self, problem: Problem) -> int | None:
        """The samples the reference's own run compares (None: the reference fails, nothing to compare)."""
        key = _problem_key(problem)
        if key not in self._reference_samples:
            run = run_official(problem, reference_code(problem))
            self._reference_samples[key] = run.samples if run.result.passed else None
        return self._reference_samples[key]

    def run_batch(
        self, problem: Problem, codes: list[str], seconds_per_copy: float
    ) -> list[SampleResult | None]:
        """Score `codes` (screened candidates of one VerilogEval problem) together; None where a code needs
        its own run.

        The batch may simulate for `BATCH_MARGIN` times the expected time (copies x `seconds_per_copy`, at
        least `BATCH_FLOOR` seconds, at most the official timeout); past that every copy runs alone.
        """
        v2 = harness_of(problem) == "verilog-eval-v2"
        template = copy_template(problem.testbench, problem.reference if v2 else "", problem.top)
        results: list[SampleResult | None] = [None] * len(codes)
        if template is None:
            return results
        nonce = secrets.token_hex(8)
        files: dict[int, str] = {}
        slots: dict[int, tuple[int, str, str]] = {}  # slot -> (index in codes, tag, code)
        for index, code in enumerate(codes):
            if redeclared(problem, code):
                continue
            slot = len(files)
            # official order: v2 compiles sample, test, ref; v1 writes the test before the completion
            source = copy_source(template, code, problem.top, slot, nonce, code_first=v2)
            if source is not None:
                files[slot] = source
                slots[slot] = (index, copy_tag(nonce, slot), code)
        for _ in range(2):  # a second try without the copies the compiler spoke about
            if not slots:
                return results
            sources, roots = batch_files({slot: files[slot] for slot in slots})
            expected = len(slots) * seconds_per_copy
            timeout = min(
                official.V2_TIMEOUT if v2 else official.V1_TIMEOUT, max(BATCH_FLOOR, BATCH_MARGIN * expected)
            )
            with Sandbox(sources, limits(COMPILE_TIMEOUT)) as box:
                built = box.run(
                    ["iverilog", *IVERILOG_FLAGS, *roots, "-o", "sim", *sources],
                    COMPILE_TIMEOUT * WALL_FACTOR,
                )
                messages = (built.stdout + built.stderr).splitlines()
                quiet = built.ok and not messages
                box.limits = limits(timeout)
                ran = box.run(["vvp", "-n", "sim"], timeout * WALL_FACTOR) if quiet else None
            if messages:
                noisy = copies_named(messages)
                if not noisy:
                    return results
                slots = {slot: value for slot, value in slots.items() if slot not in noisy}
                continue
            if ran is None or not ran.ok:
                return results
            output = ran.stdout + ran.stderr
            if any(line.strip() and nonce not in line for line in output.splitlines()):
                return results  # something besides the testbenches spoke: every copy runs alone
            empty = SandboxResult(0, "", "")
            finished = {
                slot: finish_time("\n".join(split_testbench_lines(output, tag)[0]))
                for slot, (_, tag, _) in slots.items()
            }
            end = max((asked for asked, _ in finished.values() if asked is not None), default=None)
            for slot, (index, _tag, code) in slots.items():
                asked, lines = finished[slot]
                if asked != end or not re.search(r"^Mismatches: \d+ in \d+ samples$", lines, re.MULTILINE):
                    continue  # ran past its own end, or no summary line: the official flow decides
                run = SandboxResult(0, lines, "")
                judged = judge_v2(code, empty, run, "") if v2 else judge_v1(empty, run, "")
                results[index] = cut_short(
                    problem, judged, summary_samples(lines, ""), self.reference_samples
                )
            return results
        return results


def score(
    problems: Sequence[Problem],
    predictions: Sequence[Sequence[str]],
    *,
    workers: int | None = None,
    batch_size: int = 32,
    progress: bool = True,
    reuse: bool = True,
) -> list[list[SampleResult]]:
    """Score every completion of every problem under the problem's official harness, with a [`Scorer`] of its
    own (see [`Scorer.score`]; `reuse=False` simulates every distinct code of a problem).

    Returns:
        `list[list[SampleResult]]`: Results in the shape of `predictions`.
    """
    with Scorer(workers, reuse=reuse) as scorer:
        return scorer.score(problems, predictions, batch_size=batch_size, progress=progress)


def score_sample(problem: Problem, completion: str) -> SampleResult:
    """Score one completion with the official per-sample flow (one compile + one run in a fresh sandbox).

    Needs the `SALV_TRL_ALLOW_CODE_EXECUTION=1` opt-in.
    """
    with Scorer(workers=1) as scorer:
        return scorer.score_sample(problem, completion)


# ------------------------------------------------------------------------------------------------------------
# Reference self-check


@lru_cache(maxsize=1)
def _simulator_version() -> str:
    try:
        return subprocess.run(
            ["iverilog", "-V"], capture_output=True, text=True, timeout=30
        ).stdout.splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"


def _cache_dir() -> Path:
    root = os.environ.get("SALV_TRL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "salv_trl"
    )
    return Path(root) / "reference_checks"


def _problem_key(problem: Problem) -> str:
    """What a verdict on `problem` depends on: its harness, files and the simulator."""
    payload = json.dumps(
        [
            harness_of(problem),
            _simulator_version(),
            problem.reference,
            problem.testbench,
            problem.top,
            problem.reference_top,
            sorted(problem.support_files.items()),
        ]
    )
    return hashlib.sha256(payload.encode("utf-8", errors="surrogatepass")).hexdigest()


def check_references(
    problems: Sequence[Problem],
    *,
    workers: int | None = None,
    cache: bool = True,
    progress: bool = True,
    scorer: Callable[..., list[list[SampleResult]]] | None = None,
) -> dict[str, SampleResult]:
    """Score each problem's own reference under its harness: the problems whose reference fails are
    unscorable.

    Results are cached on disk (`$SALV_TRL_CACHE` or `~/.cache/salv_trl/reference_checks`), keyed by the
    problem's files, the harness and the simulator version, so they are not recomputed on every evaluation.

    Args:
        scorer (`Callable`, *optional*): Scores the references, called as `scorer(problems, predictions,
            progress=...)` (e.g. a [`Scorer`]'s `score`); defaults to [`score`] with `workers`.

    Returns:
        `dict[str, SampleResult]`: task id -> the reference's result.
    """
    scorer = scorer or functools.partial(score, workers=workers)
    directory = _cache_dir()
    results: dict[str, SampleResult] = {}
    todo = []
    for problem in problems:
        path = directory / f"{_problem_key(problem)}.json"
        if cache and path.is_file():
            try:
                results[problem.task_id] = SampleResult.from_dict(json.loads(path.read_text()))
                continue
            except (OSError, ValueError, TypeError, KeyError):
                pass
        todo.append((problem, path))
    if todo:
        wrapped = [f"```verilog\n{reference_code(problem)}\n```" for problem, _ in todo]
        scored = scorer([p for p, _ in todo], [[w] for w in wrapped], progress=progress)
        for (problem, path), (result,) in zip(todo, scored, strict=True):
            results[problem.task_id] = result
            if cache:
                directory.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(json.dumps(result.to_dict()))
                tmp.replace(path)
    return results
