"""Signal-level verification: judge a candidate module against a reference, output signal by output signal.

```python
>>> from salv_trl.hdl.verify import verify
>>> ref = "module m(input [3:0] a, b, output [3:0] s, c); assign s = a + b; assign c = a < b; endmodule"
>>> cand = ref.replace("a + b", "a - b")
>>> verdict = verify(cand, ref, vectors=100)
>>> verdict.status.value, {name: v.correct for name, v in verdict.signals.items()}
('ok', {'s': False, 'c': True})

```

Route of a candidate:

1. text checks: empty → `no_code`; not UTF-8 or NUL characters → `syntax_error`; too large → `refused`;
2. pyslang front end: no module → `syntax_error`; modules the top does not reach (e.g. a pasted testbench) are
   blanked out, then a [`screen`] refusal or a name that reaches out of the candidate → `refused`; ports that
   differ from the reference (names, directions, widths) → `interface_mismatch`;
3. every module of the candidate is renamed to a unique name (`salv_c<k>_<nonce>_<name>`), so it can neither
   collide with nor replace a reference module (a candidate module called `RefModule` is just another one);
4. simulation in a [`Sandbox`]: with a given testbench (its modules and the reference's renamed for the run,
   its instance of the task's top pointed at the candidate, its strings tagged; a run must compare the
   reference's own number of samples) or with a random co-simulation testbench generated from the reference
   alone ([`salv_trl.hdl.testbench`]). The simulator's refusal → `syntax_error` (its message says "syntax
   error") or `compile_error`; wall-clock timeout → `timeout`; crash, output flood, missing or forged verdict
   lines → `runtime_error`; otherwise `ok` with one [`SignalVerdict`] per reference output;
5. with `method="formal"` or `"both"`, each output of an `ok` candidate is also checked formally
   ([`salv_trl.hdl.formal`]: proved, proved for a bound, counterexample or unknown); every counterexample is
   replayed in the simulator as a directed stimulus and kept only if the mismatch shows there too.

**Per-output verdicts** are `correct` (shown correct), `wrong` (shown wrong) or `untested` (neither):

- random co-simulation shows an output correct only if no sample mismatched **and** the reference's output
  took known values and moved under the stimulus (an undriven output, or a counter no run reaches, is
  untested: matching it constrained nothing);
- a given testbench shows it correct when it reports no mismatch;
- formal shows it correct with a proof, or with a bounded proof within which the reference's output moves;
  a replayed counterexample shows it wrong. A mismatch the simulator saw is never overridden: Yosys reads
  Verilog as synthesis does (sensitivity lists, X sources, multiple drivers, `parallel_case` mean other
  things to it), and the simulator's reading is the one every harness uses. `"both"` keeps the random
  verdict and lets formal refine it; `"formal"` keeps only the simulation's mismatches and judges the rest
  by formal alone (the simulator still compiles and runs the candidate, which decides its status, and
  replays counterexamples).

A module `passed` when no output is wrong and at least one is correct; its untested outputs are named in
[`ModuleVerdict.untested`] and are never contrast signals.

[`verify_many`] judges many jobs over all cores. Candidates of the same reference and settings are simulated
together, several per compile and run (the stimulus depends on the reference and the seed only, so a
candidate's verdict does not depend on its batch); a batch that fails to compile, times out or prints bad
lines is re-run one candidate at a time, so one hostile candidate never changes another's verdict.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from ..progress import advance
from .formal import DEFAULT_DEPTH, FormalError, FormalResult, Proof, prove_outputs, unmodelled_code
from .parse import ParsedDesign, module_syntax, outside_reference, parse, rename_modules
from .sandbox import SandboxLimits, die_with_parent, require_isolation
from .screen import MAX_CHARS, screen
from .simulators import Simulation, simulate
from .slicing import SignalSlice, slice_signals
from .source import VerilogInputError, load_source
from .testbench import (
    RESET_EVERY,
    StimulusPlan,
    TestbenchOutputError,
    parse_given_output,
    parse_random_output,
    plan_stimulus,
    random_testbench,
    reference_constants,
    tag_displays,
)

__all__ = [
    "Status",
    "Proof",
    "METHODS",
    "SignalVerdict",
    "ModuleVerdict",
    "Judgement",
    "VerifyJob",
    "verify",
    "verify_many",
    "judge_many",
]

GIVEN_TESTBENCH_FLAGS = ("-Wall", "-Winfloop", "-Wno-timescale")  # VerilogEval's official iverilog flags
METHODS = ("random", "formal", "both")


class Status(str, Enum):
    """How far a candidate got: only `ok` carries per-signal verdicts."""

    ok = "ok"
    no_code = "no_code"
    syntax_error = "syntax_error"
    interface_mismatch = "interface_mismatch"
    compile_error = "compile_error"
    runtime_error = "runtime_error"
    timeout = "timeout"
    refused = "refused"


@dataclass(frozen=True)
class SignalVerdict:
    """One output's result.

    Args:
        mismatches: samples where the candidate differed from the reference in simulation.
        samples: samples compared (0: not simulated, or not reported by the testbench).
        correct: shown correct (see the module docstring); not correct is `wrong` or `untested`.
        activity: random co-simulation: the reference's output took known values and moved (None: not
            measured, e.g. a given testbench).
        proof: the formal result (None: not checked formally).
        depth: `proved_bounded`: the bound in cycles; `counterexample`: its length.
        reason: why the formal result is `unknown`.
    """

    mismatches: int
    samples: int
    correct: bool
    activity: bool | None = None
    proof: Proof | None = None
    depth: int | None = None
    reason: str = ""

    @classmethod
    def of(cls, mismatches: int, samples: int, activity: bool | None = None) -> SignalVerdict:
        """A simulation's verdict: correct without mismatches, unless the reference's output never moved."""
        return cls(mismatches, samples, mismatches == 0 and activity is not False, activity)

    def refined(self, formal: FormalResult) -> SignalVerdict:
        """This verdict with a formal result: a counterexample makes it wrong; a proof (or a bounded proof in
        which the reference's output moves) makes an output without mismatches correct."""
        correct = (
            self.mismatches == 0
            and formal.proof != Proof.counterexample
            and (self.correct or formal.shows_correct)
        )
        return replace(self, correct=correct, proof=formal.proof, depth=formal.depth, reason=formal.reason)

    @property
    def wrong(self) -> bool:
        """Shown wrong: a mismatch in simulation, or a counterexample the simulator confirmed."""
        return self.mismatches > 0 or self.proof == Proof.counterexample

    @property
    def untested(self) -> bool:
        """Neither shown correct nor shown wrong."""
        return not self.correct and not self.wrong

    @property
    def proven(self) -> bool:
        """Shown correct or wrong by formal: correct with a (bounded) proof, or a confirmed counterexample."""
        if self.correct:
            return self.proof in (Proof.proved, Proof.proved_bounded)
        return self.proof == Proof.counterexample


@dataclass
class ModuleVerdict:
    """A candidate's verdict: its status, per-output verdicts when simulated, and a human-readable detail."""

    status: Status
    signals: dict[str, SignalVerdict] = field(default_factory=dict)
    detail: str = ""

    @property
    def passed(self) -> bool:
        """Judged (`ok`), no output wrong, and at least one shown correct (untested ones are named in
        [`untested`])."""
        verdicts = self.signals.values()
        return (
            self.status == Status.ok
            and not any(v.wrong for v in verdicts)
            and any(v.correct for v in verdicts)
        )

    @property
    def untested(self) -> list[str]:
        """Outputs neither shown correct nor shown wrong."""
        return [name for name, verdict in self.signals.items() if verdict.untested]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, also the `verdict` column of verified rollout datasets: `{"status", "detail",
        "signals": [{"name", "mismatches", "samples", "correct", "activity", "proof", "depth", "reason"},
        ...]}` (a list, so that every row has the same Arrow type)."""
        return {
            "status": self.status.value,
            "detail": self.detail,
            "signals": [
                {
                    "name": name,
                    "mismatches": v.mismatches,
                    "samples": v.samples,
                    "correct": v.correct,
                    "activity": v.activity,
                    "proof": v.proof.value if v.proof else None,
                    "depth": v.depth,
                    "reason": v.reason,
                }
                for name, v in self.signals.items()
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModuleVerdict:
        """Inverse of [`to_dict`] (rows written before coverage and proofs existed read as unmeasured)."""
        signals = {
            s["name"]: SignalVerdict(
                s["mismatches"],
                s["samples"],
                s["correct"],
                s.get("activity"),
                Proof(s["proof"]) if s.get("proof") else None,
                s.get("depth"),
                s.get("reason") or "",
            )
            for s in data.get("signals") or []
        }
        return cls(Status(data["status"]), signals, data.get("detail") or "")


@dataclass
class Judgement:
    """A verdict, and the slices of the judged module's outputs ([`judge_many`]; simulated candidates only).

    Args:
        verdict: the candidate's [`ModuleVerdict`].
        slices: output name -> [`~salv_trl.hdl.slicing.SignalSlice`] of the module judged (the task's top when
            the candidate defines it, else its own top), with spans into the candidate's text; empty when the
            candidate was not simulated or could not be sliced.
        slice_error: why a simulated candidate could not be sliced, else None.
    """

    verdict: ModuleVerdict
    slices: dict[str, SignalSlice] = field(default_factory=dict)
    slice_error: str | None = None


@dataclass
class VerifyJob:
    """Arguments of one [`verify`] call, for [`verify_many`]."""

    candidate: str | bytes
    reference: str
    testbench: str | None = None
    top: str | None = None
    vectors: int = 1000
    seed: int = 0
    simulator: str = "icarus"
    method: str = "random"
    reset_every: int = RESET_EVERY
    depth: int = DEFAULT_DEPTH

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, not {self.method!r}")

    def group_key(self) -> tuple:
        return (
            self.reference,
            self.testbench,
            self.top,
            self.vectors,
            self.seed,
            self.simulator,
            self.method,
            self.reset_every,
            self.depth,
        )


def verify(
    candidate: str | bytes,
    reference: str,
    *,
    testbench: str | None = None,
    top: str | None = None,
    vectors: int = 1000,
    seed: int = 0,
    simulator: str = "icarus",
    method: str = "random",
    reset_every: int = RESET_EVERY,
    depth: int = DEFAULT_DEPTH,
    timeout: float = 10.0,
) -> ModuleVerdict:
    """Judge `candidate` against `reference`, output by output.

    Args:
        candidate: the candidate's Verilog text (untrusted).
        reference: the reference module(s); its top module defines the interface and the outputs judged.
        testbench: a testbench to use instead of random co-simulation. It instantiates the reference and the
            candidate under the task's top name (`top`; VerilogEval v2: reference `RefModule`, candidate
            `TopModule`) and prints per-output lines in the seed (`<signal> error ctn: <N>`) or VerilogEval v2
            (`Hint: Output '<name>' has N mismatches.`) format.
        top: the task's top module name: the candidate module judged. None: the reference's top module name if
            the candidate defines it, else the candidate's own top.
        vectors: random input vectors (combinational) or clock cycles (sequential).
        seed: stimulus seed; verdicts are deterministic for a seed.
        simulator: `"icarus"` (default) or `"verilator"`.
        method: `"random"` (simulation), `"formal"` (outputs judged by formal alone) or `"both"` (formal
            refines the random verdicts).
        reset_every: random route: a reset pulse in the middle cycle and on about one cycle in this many (a
            power of two; 0: never after the first two cycles).
        depth: formal: cycles of bounded model checking when no unbounded proof is found.
        timeout: wall-clock seconds for each simulator step (compile, run) and each formal tool run.

    Raises:
        VerilogInputError: the reference itself cannot be parsed, or fails to compile and run on its own.
    """
    job = VerifyJob(
        candidate, reference, testbench, top, vectors, seed, simulator, method, reset_every, depth
    )
    return _verify_group([job], batch_size=1, timeout=timeout, slices=False)[0].verdict


def verify_many(
    jobs: Sequence[VerifyJob],
    workers: int | None = None,
    progress: bool = True,
    *,
    batch_size: int = 16,
    timeout: float = 10.0,
) -> list[ModuleVerdict]:
    """Judge many jobs in parallel; results in input order.

    Args:
        jobs: the verification jobs.
        workers: worker processes (None: twice the cores, as compile and run are latency-bound; 1: in this
        process). progress: show a tqdm progress bar.
        batch_size: most candidates simulated in one compile + run (1: one simulation per candidate).
        timeout: wall-clock seconds for each simulator step.

    A job whose reference is unusable gets a `runtime_error` verdict whose detail starts with "harness:"; it
    never affects the other jobs.
    """
    judged = _judge_all(jobs, workers, progress, batch_size, timeout, slices=False)
    return [judgement.verdict for judgement in judged]


def judge_many(
    jobs: Sequence[VerifyJob],
    workers: int | None = None,
    progress: bool = True,
    *,
    batch_size: int = 16,
    timeout: float = 10.0,
) -> list[Judgement]:
    """[`verify_many`], and the output slices of every simulated candidate, computed by the same workers from
    the parse its verification made (so slicing runs in parallel and never parses a candidate again)."""
    return _judge_all(jobs, workers, progress, batch_size, timeout, slices=True)


def _judge_all(
    jobs: Sequence[VerifyJob],
    workers: int | None,
    progress: bool,
    batch_size: int,
    timeout: float,
    slices: bool,
) -> list[Judgement]:
    from tqdm.auto import tqdm

    require_isolation()  # a clear error now, not one harness error per job
    # Twice the cores: the simulators spend much of their wall time waiting on their own sub-processes.
    workers = workers or 2 * (os.cpu_count() or 1)
    # Identical jobs are judged once (verdicts are deterministic): sampled completions often repeat.
    first_of: dict[tuple, int] = {}
    groups: dict[tuple, list[int]] = {}
    for index, job in enumerate(jobs):
        key = (job.candidate, *job.group_key())
        if key not in first_of:
            first_of[key] = index
            groups.setdefault(job.group_key(), []).append(index)
    # Full batches, unless there are too few of them to keep every worker busy.
    full = sum(-(-len(indices) // batch_size) for indices in groups.values())
    chunks = []
    for indices in groups.values():
        size = batch_size if full >= workers else max(1, min(batch_size, -(-len(indices) // workers)))
        chunks += [indices[i : i + size] for i in range(0, len(indices), size)]
    results: list[Judgement | None] = [None] * len(jobs)
    bar = tqdm(total=len(first_of), desc="verify", unit="cand", disable=not progress)

    def store(chunk: list[int], judged: list[Judgement]) -> None:
        for index, judgement in zip(chunk, judged, strict=True):
            results[index] = judgement
        advance(bar, len(chunk))

    if workers == 1 or len(chunks) <= 1:
        for chunk in chunks:
            store(chunk, _verify_chunk([jobs[i] for i in chunk], batch_size, timeout, slices))
    else:
        pool = ProcessPoolExecutor(
            min(workers, len(chunks)), initializer=die_with_parent, initargs=(os.getpid(),)
        )
        with pool:
            futures = {
                pool.submit(_verify_chunk, [jobs[i] for i in chunk], batch_size, timeout, slices): tuple(
                    chunk
                )
                for chunk in chunks
            }
            for future, chunk in futures.items():
                try:
                    judged = future.result()
                except Exception as error:  # a dead worker: only its own chunk is lost
                    judged = [Judgement(_harness_error(error))] * len(chunk)
                store(list(chunk), judged)
    bar.close()
    return [results[first_of[(job.candidate, *job.group_key())]] for job in jobs]  # type: ignore[misc]


def _harness_error(error: BaseException) -> ModuleVerdict:
    return ModuleVerdict(Status.runtime_error, detail=f"harness: {type(error).__name__}: {error}")


def _verify_chunk(jobs: list[VerifyJob], batch_size: int, timeout: float, slices: bool) -> list[Judgement]:
    try:
        return _verify_group(jobs, batch_size, timeout, slices)
    except (VerilogInputError, OSError) as error:
        return [Judgement(_harness_error(error))] * len(jobs)


@dataclass
class _Candidate:
    """A candidate that passed the text and interface checks, with its modules renamed."""

    text: str
    module: str  # its top's name after renaming
    design: ParsedDesign  # its parse, which slicing reuses


@dataclass
class _Reference:
    design: ParsedDesign
    outputs: list[str]
    text: str  # its modules renamed for this run, so that no candidate can name them
    module: str  # its top's name in `text`
    plan: StimulusPlan  # how its inputs are driven (random route, replays, the formal model's reset)
    constants: tuple[int, ...]  # its literals, directed stimulus of the random route


def _load_reference(job: VerifyJob, nonce: str) -> _Reference:
    # With a given testbench the task's top may be the candidate's name only (VerilogEval v2: TopModule).
    design = parse(job.reference, prefer_top=job.top if job.testbench is None else None)
    outputs = [p.name for p in design.interface.outputs]
    if not outputs:
        raise VerilogInputError(f"reference module {design.top!r} has no outputs to judge")
    mapping = {name: f"salv_r{nonce}_{name}" for name in design.modules}
    interface = design.interface
    plan = plan_stimulus([p.name for p in interface.inputs], interface.edge_events)
    text = rename_modules(design, mapping)
    return _Reference(design, outputs, text, mapping[design.top], plan, reference_constants(job.reference))


def _verify_group(jobs: list[VerifyJob], batch_size: int, timeout: float, slices: bool) -> list[Judgement]:
    """Verdicts of jobs that share reference and settings: shared front-end work, batched simulation."""
    first = jobs[0]
    # Names carry `nonce` (a candidate may learn it at run time with %m, too late to name anything); the lines
    # the harness prints carry `tag`, which appears in no name.
    nonce, tag = secrets.token_hex(8), secrets.token_hex(16)
    reference = _load_reference(first, nonce)
    verdicts: list[ModuleVerdict | None] = [None] * len(jobs)
    ready: list[tuple[int, _Candidate]] = []
    for index, job in enumerate(jobs):
        prepared = _prepare(job.candidate, reference, first, index, nonce)
        if isinstance(prepared, ModuleVerdict):
            verdicts[index] = prepared
        else:
            ready.append((index, prepared))
    if first.testbench is not None:
        if ready:
            given = _GivenTestbench.prepare(reference, first, nonce, tag)
            samples = _reference_samples(reference, first, given, nonce, timeout)
        for index, candidate in ready:
            verdicts[index] = _run_given(candidate, reference, first, given, timeout, samples)
    else:
        for start in range(0, len(ready), batch_size):
            batch = ready[start : start + batch_size]
            for (index, _), verdict in zip(
                batch, _run_batch([c for _, c in batch], reference, first, (nonce, tag), timeout), strict=True
            ):
                verdicts[index] = verdict
    if first.method != "random":
        for index, candidate in ready:
            if verdicts[index].status == Status.ok:  # type: ignore[union-attr]
                verdicts[index] = _with_formal(
                    verdicts[index], candidate, reference, first, (nonce, tag), timeout
                )
    judged = [Judgement(verdict) for verdict in verdicts]  # type: ignore[arg-type]
    if slices:
        for index, candidate in ready:
            if judged[index].verdict.status == Status.ok:
                judged[index] = _sliced(judged[index].verdict, candidate.design)
    return judged


def _sliced(verdict: ModuleVerdict, design: ParsedDesign) -> Judgement:
    try:
        return Judgement(verdict, slice_signals(design))
    except Exception as error:  # whatever goes wrong in slicing is reported, and never touches a verdict
        return Judgement(verdict, slice_error=f"{type(error).__name__}: {error}")


_BLAMED = re.compile(r"^cand(\d+)\.v:\d+:.*(?:error|sorry)", re.MULTILINE)


def _run_batch(
    batch: list[_Candidate], reference: _Reference, job: VerifyJob, keys: tuple[str, str], timeout: float
):
    """Verdicts of a batch; a failed batch is re-run without the candidates the compiler blamed, or singly."""
    if len(batch) == 1:
        outcome = _run_random(batch, reference, job, keys, timeout)
        if isinstance(outcome, ModuleVerdict):
            _check_reference_alone(outcome, reference, job, keys, timeout)
            return [outcome]
        return outcome
    # A batch gets each candidate's share of time (the work grows with the instances: K + 1 against 2 alone),
    # and is declared hung as soon as its progress lines stop for half a timeout; its candidates are then
    # re-run alone.
    outcome = _run_random(
        batch, reference, job, keys, timeout * (len(batch) + 1) / 2, idle=max(0.5, timeout / 2)
    )
    if not isinstance(outcome, ModuleVerdict):
        return outcome
    blamed = set()
    if outcome.status in (Status.compile_error, Status.syntax_error):
        blamed = {int(k) for k in _BLAMED.findall(outcome.detail) if int(k) < len(batch)}
    if not blamed or len(blamed) == len(batch):
        return [_run_batch([c], reference, job, keys, timeout)[0] for c in batch]
    rest = [k for k in range(len(batch)) if k not in blamed]
    results = dict(
        zip(rest, _run_batch([batch[k] for k in rest], reference, job, keys, timeout), strict=True)
    )
    results.update({k: _run_batch([batch[k]], reference, job, keys, timeout)[0] for k in sorted(blamed)})
    return [results[k] for k in range(len(batch))]


def _prepare(raw: str | bytes, reference: _Reference, job: VerifyJob, index: int, nonce: str):
    """The candidate parsed once (the parse every later step reuses), screened, checked and renamed; or the
    verdict that stops it before simulation."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            return ModuleVerdict(Status.syntax_error, detail=f"not UTF-8 text: {error}")
    if not raw or not raw.strip():
        return ModuleVerdict(Status.no_code, detail="empty candidate")
    if "\0" in raw:
        return ModuleVerdict(Status.syntax_error, detail="NUL character in the candidate")
    if len(raw) > MAX_CHARS:  # refused before any parsing
        return ModuleVerdict(Status.refused, detail=screen(raw))
    try:
        design = parse(raw, prefer_top=job.top or reference.design.top)
        text, modules = design.design_only()
    except VerilogInputError as error:
        return ModuleVerdict(Status.syntax_error, detail=str(error))
    # The screen lexes the text itself, on purpose: a second reading, independent of the parser's.
    reason = _blanked_directive(raw, text) or screen(text)
    if not reason and (outside := outside_reference(design, text)):
        reason = f"reference outside the candidate: {outside}"
    if reason:
        return ModuleVerdict(Status.refused, detail=reason)
    mismatch = _interface_mismatch(design, reference.design)
    if mismatch:
        return ModuleVerdict(Status.interface_mismatch, detail=mismatch)
    mapping = {m: f"salv_c{index}_{nonce}_{m}" for m in modules}
    try:
        text = rename_modules(design, mapping, within=(text, modules))
    except VerilogInputError as error:
        return ModuleVerdict(Status.syntax_error, detail=str(error))
    return _Candidate(text, mapping[design.top], design)


def _blanked_directive(raw: str, text: str) -> str | None:
    """Why a candidate is refused when blanking its unreached modules removed a compiler directive, else None.

    Every later step reads the one parse of the text as written, but the simulator compiles the blanked
    text: a `` `define `` (or `` `ifdef ``...) inside a blanked module would make it preprocess differently,
    and show the simulator code (an upward reference, a second top module) that the checks never saw.
    """
    if raw.count("`") == text.count("`"):  # blanking turns every character it removes into a space
        return None
    offset = next(m.start() for m in re.finditer("`", raw) if text[m.start()] != "`")
    line = raw.count("\n", 0, offset) + 1
    return f"compiler directive inside a module the top does not reach (line {line})"


def _interface_mismatch(candidate: ParsedDesign, reference: ParsedDesign) -> str | None:
    want = {p.name: p for p in reference.interface.ports}
    have = {p.name: p for p in candidate.interface.ports}
    missing = sorted(set(want) - set(have))
    extra = sorted(set(have) - set(want))
    if missing or extra:
        return f"ports of {candidate.top!r} differ from the reference: missing {missing}, unexpected {extra}"
    for name, port in want.items():
        other = have[name]
        if (other.direction, other.width) != (port.direction, port.width):
            return (
                f"port {name!r} is {other.direction} [{other.width}] in the candidate, "
                f"{port.direction} [{port.width}] in the reference"
            )
    return None


_HARNESS_NAME = re.compile(r"salv_(tb|ref|[rh][0-9a-f]{16}|c\d+)_(?:[0-9a-f]{16}(_?))?")


def _scrub(message: str) -> str:
    """Simulator messages with the harness's nonce names put back as the user wrote them."""
    return _HARNESS_NAME.sub(
        lambda m: (
            ""
            if m.group(2) or m.group(1)[0] in "rh"
            else {"tb": "tb", "ref": "reference"}.get(m.group(1), "candidate")
        ),
        message,
    )


# A compiler line about the reference's file (`ref.v` / `ref.sv`) that is not an error: the reference's own
# warnings, the same for every candidate, which would otherwise open each candidate's compile-error detail.
_REFERENCE_NOTE = re.compile(r"^ref\.s?v:\d+:(?!.*\b(?:error|sorry)\b).*\n?", re.MULTILINE | re.IGNORECASE)


def _failure(sim: Simulation, limits: SandboxLimits) -> ModuleVerdict | None:
    """The verdict of a simulation that did not produce an output to parse, else None."""
    step = sim.compile if sim.run is None else sim.run
    message = _scrub(_REFERENCE_NOTE.sub("", step.stderr + step.stdout).strip())
    if step.timed_out:
        return ModuleVerdict(
            Status.timeout, detail=f"{'compile' if sim.run is None else 'simulation'} timed out"
        )
    if step.output_exceeded:
        return ModuleVerdict(Status.runtime_error, detail=f"output exceeded {limits.output_bytes} bytes")
    if sim.run is None:
        status = Status.syntax_error if re.search(r"syntax error", message, re.I) else Status.compile_error
        return ModuleVerdict(status, detail=message[-2000:])
    if step.returncode != 0:
        return ModuleVerdict(
            Status.runtime_error, detail=f"simulator exited with {step.returncode}: {message[-2000:]}"
        )
    return None


_DEFINE = re.compile(r"`define\s+([A-Za-z_][A-Za-z0-9_$]*)")


def _separator(previous: list[str]) -> str:
    """Directives that undo what earlier files set (timescale, default_nettype, macros) before the next file.

    Icarus compiles all files as one stream and does not support `` `undefineall ``, so one candidate's
    `` `timescale `` or `` `define `` would otherwise change how the next candidate of its batch compiles.
    """
    macros = sorted({name for text in previous for name in _DEFINE.findall(text)})
    return "`resetall\n`timescale 1ns/1ps\n" + "".join(f"`undef {name}\n" for name in macros)


def _run_random(
    candidates: list[_Candidate],
    reference: _Reference,
    job: VerifyJob,
    keys: tuple[str, str],
    timeout: float,
    idle: float | None = None,
    directed: tuple[dict[str, int], ...] | None = None,
):
    """Verdicts of candidates simulated together, or one verdict that stands for the whole batch's failure.

    With `directed`, the inputs of each cycle are given instead of random (a counterexample's replay).
    """
    nonce, tag = keys
    interface, plan = reference.design.interface, reference.plan
    modules = [c.module for c in candidates]
    tb = random_testbench(
        interface.ports,
        plan,
        reference.module,
        modules,
        nonce=nonce,
        tag=tag,
        vectors=job.vectors,
        seed=job.seed,
        constants=reference.constants,
        reset_every=job.reset_every,
        directed=directed,
    )
    sources = {"tb.v": tb, "sep_ref.v": _separator([tb]), "ref.v": reference.text}
    for k, candidate in enumerate(candidates):  # each file starts from the same compiler-directive state
        sources[f"sep{k}.v"] = _separator([reference.text] + [c.text for c in candidates[:k]])
        sources[f"cand{k}.v"] = candidate.text
    limits = SandboxLimits()
    sim = simulate(
        sources,
        top=f"salv_tb_{nonce}",
        simulator=job.simulator,
        compile_timeout=max(timeout, 30),
        run_timeout=timeout,
        run_idle_timeout=idle,
        limits=limits,
    )
    failed = _failure(sim, limits)
    if failed:
        return failed
    try:
        samples = (len(directed) if directed else job.vectors) * (2 if plan.sequential else 1)
        run = parse_random_output(
            sim.run.stdout + sim.run.stderr, tag, len(candidates), reference.outputs, samples
        )
    except TestbenchOutputError as error:
        return ModuleVerdict(Status.runtime_error, detail=str(error))
    return [
        ModuleVerdict(
            Status.ok,
            {n: SignalVerdict.of(*c[n], activity=run.coverage[n].active) for n in reference.outputs},
        )
        for c in run.counts
    ]


def _with_formal(
    verdict: ModuleVerdict,
    candidate: _Candidate,
    reference: _Reference,
    job: VerifyJob,
    keys: tuple[str, str],
    timeout: float,
) -> ModuleVerdict:
    """`verdict` with every output checked formally; counterexamples the simulator does not confirm are
    `unknown`. With `method="formal"` only the simulation's mismatches are kept (never its "correct")."""
    interface = reference.design.interface
    try:
        if unmodelled := unmodelled_code(candidate.design) or unmodelled_code(reference.design):
            raise FormalError(unmodelled)
        results = prove_outputs(
            reference.text,
            reference.module,
            candidate.text,
            candidate.module,
            interface.ports,
            reference.plan,
            interface.edge_events,
            depth=job.depth,
            timeout=timeout,
        )
    except FormalError as error:
        results = {name: FormalResult(Proof.unknown, reason=_scrub(str(error))) for name in reference.outputs}
    signals = {}
    for name in reference.outputs:
        result = results[name]
        if result.proof == Proof.counterexample and not _replay_shows(
            result, name, candidate, reference, job, keys, timeout
        ):
            result = FormalResult(
                Proof.unknown,
                reason="a counterexample the simulator does not confirm (X in the reference there: undriven, "
                "or registers without reset or initial value; or the two readings of the code differ)",
            )
        simulated = verdict.signals[name]
        if job.method == "formal":  # the simulation's mismatches stand; correct only from formal
            simulated = SignalVerdict(simulated.mismatches, simulated.samples, False)
        signals[name] = simulated.refined(result)
    return ModuleVerdict(verdict.status, signals, verdict.detail)


def _replay_shows(
    result: FormalResult,
    name: str,
    candidate: _Candidate,
    reference: _Reference,
    job: VerifyJob,
    keys: tuple[str, str],
    timeout: float,
) -> bool:
    """Whether the simulator, driven with the counterexample's inputs, shows output `name` differ."""
    replay = _run_random([candidate], reference, job, keys, timeout, directed=result.stimulus)
    return not isinstance(replay, ModuleVerdict) and replay[0].signals[name].mismatches > 0


def _check_reference_alone(
    failure: ModuleVerdict, reference: _Reference, job: VerifyJob, keys: tuple[str, str], timeout: float
) -> None:
    """Raise when a failure is the reference's own (it does not simulate even without any candidate)."""
    if failure.status in (Status.compile_error, Status.syntax_error, Status.runtime_error):
        alone = _run_random([], reference, job, keys, timeout)
        if isinstance(alone, ModuleVerdict):
            raise VerilogInputError(f"the reference does not simulate on its own: {alone.detail[:500]}")


@dataclass(frozen=True)
class _GivenTestbench:
    """A given testbench prepared once for a run: its modules renamed (nothing can name them), its instance of
    the task's top renamed to `slot` (each candidate's own name goes there), its printed strings wrapped in
    `tag`."""

    text: str
    slot: str
    tag: str

    @classmethod
    def prepare(cls, reference: _Reference, job: VerifyJob, nonce: str, tag: str) -> _GivenTestbench:
        modules = {module.name for module in module_syntax(load_source(job.testbench))}
        slot = f"salv_top_{nonce}"
        mapping = {name: f"salv_h{nonce}_{name}" for name in modules - {job.top}}
        mapping[job.top or reference.design.top] = slot
        mapping[reference.design.top] = reference.module
        return cls(tag_displays(rename_modules(job.testbench, mapping), tag), slot, tag)


def _reference_samples(
    reference: _Reference, job: VerifyJob, given: _GivenTestbench, nonce: str, timeout: float
) -> int | None:
    """The sample count of the reference's own run through the given testbench, which every candidate's run
    must repeat (a run cut short compares fewer samples)."""
    as_candidate = _prepare(job.reference, reference, job, 10**6, nonce)  # an index no candidate has
    if isinstance(as_candidate, _Candidate):
        verdict = _run_given(as_candidate, reference, job, given, timeout, samples=None)
    else:
        verdict = as_candidate
    if verdict.status != Status.ok:
        raise VerilogInputError(
            f"the reference does not pass through the testbench on its own: {verdict.detail[:300]}"
        )
    return next(iter(verdict.signals.values())).samples or None


def _run_given(
    candidate: _Candidate,
    reference: _Reference,
    job: VerifyJob,
    given: _GivenTestbench,
    timeout: float,
    samples: int | None,
) -> ModuleVerdict:
    # VerilogEval's order: the candidate first, then the testbench and the reference.
    testbench = given.text.replace(given.slot, candidate.module)
    sources = {"cand.sv": candidate.text, "tb.sv": testbench, "ref.sv": reference.text}
    limits = SandboxLimits()
    # No `-s`: the simulator elaborates every root, which is the testbench whatever it is called.
    sim = simulate(
        sources,
        simulator=job.simulator,
        flags=GIVEN_TESTBENCH_FLAGS if job.simulator == "icarus" else (),
        compile_timeout=max(timeout, 30),
        run_timeout=max(timeout, 30),
        limits=limits,
    )
    failed = _failure(sim, limits)
    if failed:
        return failed
    try:
        counts = parse_given_output(sim.run.stdout + sim.run.stderr, given.tag, reference.outputs, samples)
    except TestbenchOutputError as error:
        return ModuleVerdict(Status.runtime_error, detail=str(error))
    return ModuleVerdict(Status.ok, {name: SignalVerdict.of(*value) for name, value in counts.items()})
