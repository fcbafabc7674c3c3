"""Pass/fail of candidate modules, faithful to each benchmark's official harness, run through the hdl sandbox.

Official flows reproduced (one compile and one run per sample, in a fresh [`salv_trl.hdl.sandbox.Sandbox`]):

- **VerilogEval v2** (`scripts/sv-iv-test` rules of its `Makefile.in`, verdicts of `scripts/sv-iv-analyze`):
  `iverilog -Wall -Winfloop -Wno-timescale -g2012 -s tb -o <bin> sample.sv test.sv ref.sv`, then the binary
  under a 30 s timeout (`TIMEOUT` appended to the log when it fires). The log passes when it has the line
  `Mismatches: 0 in N samples` and no line with `error`; otherwise the analyser's failure code is kept
  (`S` syntax, `C` compile, `e` cast, `0` zero-width constant, `n` no sensitivities, `w` declared as wire,
  `m` unknown module, `p` / `c` unbound port, `T` timeout, `r` async reset, `R` runtime mismatch).
- **VerilogEval v1** (`verilog_eval/execution.py`): one file `test + "\\n" + prompt + "\\n" + completion`,
  compiled with the same flags and run with `vvp -n`; passes when stderr is empty, has no `syntax error`, and
  stdout has `Mismatches: 0 in N samples`. A 30 s limit covers compile and run.
- **RTLLM** (`auto_run.py`): the candidate as `<design>.v` beside `testbench.v` (and the testbench's data
  files), compiled with `iverilog -g2012` (the official script uses VCS; compiling is its "syntax success"),
  run under an 8 s timeout; passes when the output contains `Pass` or `pass`. The reference's top module
  (`verified_<x>`) is renamed to the design name the testbench instantiates before it is checked.

Fixes to known harness weaknesses (documented in the metric card): the testbench's own `$display` / `$write`
strings are wrapped in a per-run secret tag that is in no name, and only text between tag pairs can pass a
candidate ([`salv_trl.hdl.testbench.tagged_lines`]), so a candidate cannot print or glue a `Mismatches: 0` or
`Pass`; the testbench's modules (and VerilogEval v2's reference) are renamed per run, so `RefModule` and
`tb.stats1` are out of reach (a candidate that declares a harness module such as `RefModule` still fails to
compile, as it does in the official flows); a VerilogEval pass must compare the reference's number of samples
(a run ended early does not); every candidate is screened ([`salv_trl.hdl.screen.screen`],
[`salv_trl.hdl.parse.outside_reference`]) before it is simulated, and every process runs in the namespace
sandbox.

[`score`] adds a faster route with identical verdicts: for VerilogEval, candidates of one problem are compiled
and simulated together, each with its own renamed copy of the testbench and reference. Random streams are kept
per copy (every `$random` / `$urandom` call gets the copy's own seed variable, which Icarus starts from the
same value as its global seed) and `$finish` becomes a per-copy request, so each copy sees exactly the
stimulus of its own run and a copy that would have ended earlier than the others is not believed. The first
candidate runs alone and its run time bounds the batch size and the batch's time limit; where one copy per run
is all that fits (slow simulations), a copy still runs this way, which spares it the waveform dump (up to a
third of the run time on long testbenches). Batches start longest first. Any candidate whose batched result
could differ from its own run (compiler messages, directives, names of the batch's own scopes, untagged
output, hang, missing summary line) is scored by the per-sample flow instead. Copies do not share a reference:
Icarus orders the processes woken in one time step by all the processes present, so removing a copy's
reference can change how a racy candidate resolves its race (a mutant of `Prob110_fsm2`: 129 mismatches
instead of 131).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import secrets
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

from ..hdl.extract import extract_code
from ..hdl.parse import outside_reference, parse, rename_modules
from ..hdl.sandbox import Sandbox, SandboxLimits, SandboxResult
from ..hdl.screen import screen
from ..hdl.source import VerilogInputError
from ..hdl.testbench import tag_displays, tagged_lines
from ..hdl.verify import Status, VerifyJob, verify_many
from .benchmarks import Problem

__all__ = [
    "OPT_IN_ENV",
    "SampleResult",
    "check_references",
    "harness_of",
    "require_opt_in",
    "score",
    "score_sample",
]

#: Environment variable that must be `"1"` before any model-written code is executed (as
#: `HF_ALLOW_CODE_EVAL`).
OPT_IN_ENV = "SALV_TRL_ALLOW_CODE_EXECUTION"

IVERILOG_FLAGS = ("-Wall", "-Winfloop", "-Wno-timescale", "-g2012")
V2_TIMEOUT = 30.0  # Makefile.in: `timeout 30 ./<sample>`
V1_TIMEOUT = 30.0  # evaluate_functional_correctness default
RTLLM_TIMEOUT = 8.0  # auto_run.py: exec_shell(..., timeout=8)
COMPILE_TIMEOUT = 60.0  # the official flows set none; a hostile candidate must not hold the compiler forever
# Timeouts are enforced as CPU seconds (the simulators are single-threaded, so on an idle machine this is the
# wall clock of the official flows); the wall clock only backs them up, at this multiple, for a loaded
# machine.
WALL_FACTOR = 3.0
BATCH_MARGIN, BATCH_FLOOR = (
    4.0,
    2.0,
)  # a batch's time limit: margin x its expected time, and at least the floor

_MISMATCHES = re.compile(r"^Mismatches: (\d+) in (\d+) samples$")
_HINT = re.compile(r"^Hint: Output '([^']*)' has (no|\d+) mismatch")
_MODULE_DECL = re.compile(r"\b(?:macro)?module\s+([A-Za-z_][\w$]*)")


def require_opt_in() -> None:
    """Raise unless the user opted in to executing model-written code (`SALV_TRL_ALLOW_CODE_EXECUTION=1`)."""
    if os.environ.get(OPT_IN_ENV) != "1":
        raise PermissionError(
            "This metric compiles and simulates model-written Verilog. It runs in a namespace sandbox "
            "(bubblewrap: no host files, no network, an unprivileged uid, resource limits; system tasks "
            "outside an allowlist refused), but you should "
            f"still read the metric card before enabling it. Set {OPT_IN_ENV}=1 to allow it, e.g. "
            f'os.environ["{OPT_IN_ENV}"] = "1" or `export {OPT_IN_ENV}=1`.'
        )


@dataclass
class SampleResult:
    """Verdict for one completion under the benchmark's official harness.

    Args:
        passed (`bool`): The official pass criterion holds.
        status (`str`): The verification engine's vocabulary: `ok` (simulated; `passed` tells the outcome),
            `no_code`, `syntax_error`, `interface_mismatch`, `compile_error`, `runtime_error`, `timeout`,
            `refused`.
        compiled (`bool`): The official syntax criterion (compiled without errors): syntax pass@k counts
            these.
        detail (`str`): The reason, in the harness's words (VerilogEval v2 failure code, mismatch count,
            compiler message, refusal reason, ...).
        signals (`dict[str, dict]`): Per output, where the testbench reports it: `mismatches`, `samples`,
            `correct`.
    """

    passed: bool
    status: str
    compiled: bool
    detail: str = ""
    signals: dict[str, dict] = field(default_factory=dict)

    def __post_init__(self):
        self.status = Status(self.status).value  # the verification engine's vocabulary, nothing else

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> SampleResult:
        return cls(**data)


def harness_of(problem: Problem) -> str:
    """The official harness family of a problem: `verilog-eval-v1`, `verilog-eval-v2`, `rtllm` or `custom`."""
    if problem.benchmark.startswith("verilog-eval-v1"):
        return "verilog-eval-v1"
    if problem.benchmark.startswith("verilog-eval-v2"):
        return "verilog-eval-v2"
    if problem.benchmark.startswith("rtllm"):
        return "rtllm"
    return "custom"


# ------------------------------------------------------------------------------------------------------------
# Candidate code


def candidate_code(problem: Problem, completion: str) -> str | None:
    """The code the official flow would simulate for `completion` (raw model text), or None when there is
    none.

    Code is taken with [`salv_trl.hdl.extract.extract_code`] (as for training). For completion-style problems
    (VerilogEval v1, v2 code-complete) an answer that does not declare the top module is a module body: the
    problem's header is put in front of it, as the official flows do.
    """
    if not completion.strip():
        return None
    found = extract_code(completion)
    code = found.code if found else None
    if problem.interface and (code is None or problem.top not in _MODULE_DECL.findall(code)):
        return problem.interface + "\n" + (code if code is not None else completion)
    return code


def reference_code(problem: Problem) -> str:
    """The reference as a candidate: its top module renamed to the name the testbench instantiates."""
    return _rename_reference(problem.reference, problem.reference_top, problem.top)


# ------------------------------------------------------------------------------------------------------------
# Official per-sample flows


def _limits(timeout: float) -> SandboxLimits:
    """Sandbox limits whose CPU-time cap is the official timeout, so that verdicts do not depend on machine
    load."""
    return SandboxLimits(cpu_seconds=max(1, math.ceil(timeout)))


def _timed_out(result: SandboxResult) -> bool:
    """The official timeout fired: CPU time ran out (SIGXCPU, then SIGKILL at the hard limit) or the
    wall-clock backstop ([`WALL_FACTOR`] times the timeout) did."""
    return result.timed_out or result.returncode in (-signal.SIGXCPU, -signal.SIGKILL)


_RUN = "SALVRUN"  # placeholder of the per-run suffix in the renamed harness texts


@lru_cache(maxsize=4096)
def _rename_reference(reference: str, reference_top: str, top: str) -> str:
    return reference if reference_top == top else rename_modules(reference, {reference_top: top})


def _renamed_harness(problem: Problem) -> tuple[str, str]:
    """(testbench, VerilogEval v2's reference or "") with the harness's modules renamed to `<name>_SALVRUN`,
    so that each run can give them names no candidate can know: it cannot instantiate the reference
    (`RefModule`) nor reach the testbench's counters (`tb.stats1`). Parsed once per problem: [`score`] fills
    this cache in its own thread before its pool starts, so pyslang never runs in the pool.
    """
    reference = problem.reference if harness_of(problem) == "verilog-eval-v2" else ""
    return _rename_harness(problem.testbench, reference, _harness_modules(problem) - {problem.top})


@lru_cache(maxsize=4096)
def _rename_harness(testbench: str, reference: str, names: frozenset[str]) -> tuple[str, str]:
    mapping = {name: f"{name}_{_RUN}" for name in names}
    return rename_modules(testbench, mapping), rename_modules(reference, mapping) if reference else ""


def _harness_modules(problem: Problem) -> frozenset[str]:
    """The modules the official flow compiles beside the candidate: the testbench's, and for VerilogEval v2
    the reference's (`ref.sv`)."""
    names = _declared(problem.testbench)
    return names | _declared(problem.reference) if harness_of(problem) == "verilog-eval-v2" else names


@lru_cache(maxsize=4096)
def _declared(text: str) -> frozenset[str]:
    return frozenset(_MODULE_DECL.findall(text))


def _testbench_lines(output: str, tag: str) -> tuple[list[str], list[str]]:
    """(the testbench's lines, the others); an empty tag: `output` holds the testbench's lines only (a batch
    copy's, separated already)."""
    return tagged_lines(output, tag) if tag else (output.splitlines(), [])


def _redeclared(problem: Problem, code: str) -> SampleResult | None:
    """The official flows fail a candidate that declares one of the harness's modules (`RefModule`, `tb`):
    with the harness renamed for the run, that is decided here, in the words of Icarus."""
    clash = sorted((set(_MODULE_DECL.findall(code)) & _harness_modules(problem)) - {problem.top})
    if not clash:
        return None
    message = f"error: '{clash[0]}' has already been declared in this scope."
    code_ = "C: " if harness_of(problem) == "verilog-eval-v2" else ""
    return SampleResult(False, "compile_error", False, code_ + message)


def _signals(lines: Iterable[str]) -> dict[str, dict]:
    samples = 0
    counts = {}
    for line in lines:
        if match := _HINT.match(line):
            counts[match.group(1)] = 0 if match.group(2) == "no" else int(match.group(2))
        elif match := _MISMATCHES.match(line):
            samples = int(match.group(2))
    return {name: {"mismatches": n, "samples": samples, "correct": n == 0} for name, n in counts.items()}


_V2_CODES = (  # (substring, code) in sv-iv-analyze's order; the first line that matches decides
    ("syntax error", "S"),
    ("error: This assignment requires an explicit cast", "e"),
    ("error: Sized numeric constant must have a size greater than zero", "0"),
    ("warning: always_comb process has no sensitivities", "n"),
    ("found no sensitivities so it will never trigger", "n"),
    ("is declared here as wire", "w"),
    ("Unknown module type", "m"),
    ("Unable to bind wire/reg/memory `clk'", "c"),
    ("TIMEOUT", "T"),
)
_CODE_STATUS = {
    "S": "syntax_error",
    "C": "compile_error",
    "e": "compile_error",
    "0": "compile_error",
    "n": "compile_error",
    "w": "compile_error",
    "m": "interface_mismatch",
    "p": "interface_mismatch",
    "c": "interface_mismatch",
    "T": "timeout",
    "r": "ok",
    "R": "ok",
    ".": "ok",
}


def _v2_code(log: list[str], candidate: str) -> tuple[str, int]:
    """VerilogEval v2's failure code for a log (sv-iv-analyze), and the mismatch count it read."""
    error_c = error_p = no_mismatch = False
    mismatches = 0
    for line in log:
        for needle, code in _V2_CODES:
            if needle in line:
                return code, mismatches
        error_c = error_c or "error" in line
        error_p = error_p or "Unable to bind wire/reg" in line
        if match := _MISMATCHES.match(line):
            mismatches = int(match.group(1))
            no_mismatch = no_mismatch or mismatches == 0
    if error_p:
        return "p", mismatches
    if error_c:
        return "C", mismatches
    if no_mismatch:
        return ".", 0
    if re.search(r"posedge reset|negedge reset|posedge r\)", candidate):
        return "r", mismatches
    return "R", mismatches


def _judge_v2(candidate: str, built: SandboxResult, ran: SandboxResult | None, tag: str) -> SampleResult:
    log = (built.stdout + built.stderr).splitlines()
    tb_lines: list[str] = []
    if ran is not None:
        tb_lines, other = _testbench_lines(ran.stdout + ran.stderr, tag)
        summary = [line for line in tb_lines if _MISMATCHES.match(line)]
        # The testbench's own simulated-time guard prints TIMEOUT and ends the run; with a summary line it is
        # not a failure of the candidate (it fires on the references of Prob082 and Prob141, whose stimulus is
        # longer).
        rest = [
            line for line in tb_lines if not _MISMATCHES.match(line) and not (summary and line == "TIMEOUT")
        ]
        # only the testbench's own lines may carry the summary; the candidate's may still carry errors
        log += other + rest + summary + (["TIMEOUT"] if _timed_out(ran) else [])
    summary = [line for line in tb_lines if _MISMATCHES.match(line)]
    code, mismatches = _v2_code(
        [line for line in log if line in summary or not _MISMATCHES.match(line)], candidate
    )
    if ran is not None and ran.output_exceeded:
        code = "R"
    status = _CODE_STATUS[code]
    if code in "rR" and not summary:
        status = "runtime_error"
    if code == ".":
        detail = ".: pass"
    elif code in "rR" and summary:
        detail = f"{code}: {mismatches} mismatches"
    else:
        detail = f"{code}: {_first_message(log)}"
    return SampleResult(code == ".", status, built.ok, detail, _signals(tb_lines) if summary else {})


def _first_message(log: list[str]) -> str:
    """The most telling line of a log: the first error, else the first timeout, warning or `sorry` line."""
    for needles in (("error",), ("TIMEOUT", "sorry", "warning")):
        for line in log:
            if any(needle in line for needle in needles):
                return line.strip()[:300]
    return log[0].strip()[:300] if log else "no summary line"


def _judge_v1(built: SandboxResult, ran: SandboxResult | None, tag: str) -> SampleResult:
    stderr = built.stderr + (ran.stderr if ran is not None else "")
    tb_lines = _testbench_lines(ran.stdout, tag)[0] if ran is not None else []
    summary = next((m for m in map(_MISMATCHES.match, tb_lines) if m), None)
    if ran is not None and _timed_out(ran) or _timed_out(built):
        return SampleResult(False, "timeout", built.ok, "timed out")
    if "syntax error" in stderr:
        return SampleResult(
            False, "syntax_error", False, "failed: syntax error. " + _first_message(stderr.splitlines())
        )
    if stderr:
        status = "compile_error" if not built.ok or ran is None else "runtime_error"
        if "Unknown module type" in stderr or "is not a port of" in stderr or "Unable to bind" in stderr:
            status = "interface_mismatch"
        return SampleResult(
            False, status, built.ok, "failed: compile error. " + _first_message(stderr.splitlines())
        )
    if summary is None:
        return SampleResult(False, "runtime_error", True, "failed: info string not matched.")
    errors, total = int(summary.group(1)), int(summary.group(2))
    detail = "passed" if errors == 0 else f"failed: {errors} out of {total} samples."
    return SampleResult(errors == 0, "ok", True, detail, _signals(tb_lines))


def _judge_rtllm(built: SandboxResult, ran: SandboxResult | None, tag: str) -> SampleResult:
    if not built.ok:
        log = (built.stdout + built.stderr).splitlines()
        status = "syntax_error" if any("syntax error" in line for line in log) else "compile_error"
        if any("Unknown module type" in line or "is not a port of" in line for line in log):
            status = "interface_mismatch"
        if _timed_out(built):
            status = "timeout"
        return SampleResult(False, status, False, _first_message(log))
    assert ran is not None
    if _timed_out(ran):
        return SampleResult(False, "timeout", True, f"simulation still running after {RTLLM_TIMEOUT:g} s")
    tb_lines, _ = _testbench_lines(ran.stdout + ran.stderr, tag)
    passed = any("Pass" in line or "pass" in line for line in tb_lines)
    last = next((line.strip() for line in reversed(tb_lines) if line.strip()), "no testbench output")
    return SampleResult(passed, "ok" if tb_lines else "runtime_error", True, last[:300])


def _official_files(
    problem: Problem, code: str, tag: str
) -> tuple[dict[str, str], list[str], list[str], float]:
    """Sandbox files, compile argv, run argv and run timeout of the official flow for one candidate."""
    family = harness_of(problem)
    nonce = secrets.token_hex(8)
    testbench, reference = (text.replace(_RUN, nonce) for text in _renamed_harness(problem))
    root = f"tb_{nonce}" if "tb" in _harness_modules(problem) else "tb"  # the official flows' `-s tb`
    if family == "verilog-eval-v2":
        files = {"sample.sv": code, "test.sv": tag_displays(testbench, tag), "ref.sv": reference}
        compile_argv = [
            "iverilog",
            *IVERILOG_FLAGS,
            "-s",
            root,
            "-o",
            "sim",
            "sample.sv",
            "test.sv",
            "ref.sv",
        ]
        return files, compile_argv, ["vvp", "-n", "sim"], V2_TIMEOUT
    if family == "verilog-eval-v1":
        files = {"test.sv": tag_displays(testbench, tag) + "\n" + code}
        compile_argv = ["iverilog", *IVERILOG_FLAGS, "-s", root, "-o", "test.vvp", "test.sv"]
        return files, compile_argv, ["vvp", "-n", "test.vvp"], V1_TIMEOUT
    files = dict(problem.support_files)
    files.update({f"{problem.top}.v": code, "testbench.v": tag_displays(testbench, tag)})
    compile_argv = ["iverilog", "-g2012", "-o", "sim", f"{problem.top}.v", "testbench.v"]
    return files, compile_argv, ["vvp", "-n", "sim"], RTLLM_TIMEOUT


def _run_official(problem: Problem, code: str) -> tuple[SampleResult, float | None]:
    """The official flow for one candidate: its verdict, and the seconds its simulation ran when it ran to the
    end.

    A VerilogEval pass must compare as many samples as the reference's own run: a run ended early (at time 0,
    its `final` block prints `Mismatches: 0 in 0 samples`) is not a pass.
    """
    result, seconds, samples = _official_run(problem, code)
    return _cut_short(problem, result, samples), seconds


def _cut_short(problem: Problem, result: SampleResult, samples: int | None) -> SampleResult:
    if not result.passed or harness_of(problem) not in ("verilog-eval-v1", "verilog-eval-v2"):
        return result
    expected = _reference_samples(problem)
    if samples is None or expected is None or samples == expected:
        return result
    detail = f"R: the run ended early: {samples} of the reference's {expected} samples"
    return SampleResult(False, "runtime_error", True, detail, {})


_REFERENCE_SAMPLES: dict[str, int | None] = {}  # problem key -> samples of the reference's own run


def _reference_samples(problem: Problem) -> int | None:
    """The samples the reference's own run compares (None: the reference fails, nothing to compare)."""
    key = _problem_key(problem, _simulator_version())
    if key not in _REFERENCE_SAMPLES:
        result, _, samples = _official_run(problem, reference_code(problem))
        _REFERENCE_SAMPLES[key] = samples if result.passed else None
    return _REFERENCE_SAMPLES[key]


def _summary_samples(output: str, tag: str) -> int | None:
    lines = _testbench_lines(output, tag)[0]
    found = next((m for m in map(_MISMATCHES.match, lines) if m), None)
    return int(found.group(2)) if found else None


def _official_run(problem: Problem, code: str) -> tuple[SampleResult, float | None, int | None]:
    redeclared = _redeclared(problem, code)
    if redeclared is not None:
        return redeclared, None, None
    tag = secrets.token_hex(16)  # in no name, so the candidate cannot learn it (not even with %m)
    files, compile_argv, run_argv, timeout = _official_files(problem, code, tag)
    with Sandbox(files, _limits(max(timeout, COMPILE_TIMEOUT))) as box:
        built = box.run(compile_argv, COMPILE_TIMEOUT * WALL_FACTOR)
        compiled = built.ok and (box.path / compile_argv[compile_argv.index("-o") + 1]).is_file()
        box.remove(*(name for name in files if name.endswith((".sv", ".v"))))  # the run needs only the binary
        box.limits = _limits(timeout)
        ran = box.run(run_argv, timeout * WALL_FACTOR) if compiled else None
    family = harness_of(problem)
    if family == "verilog-eval-v2":
        result = _judge_v2(code, built, ran, tag)
    elif family == "verilog-eval-v1":
        result = _judge_v1(built, ran, tag)
    else:
        result = _judge_rtllm(built, ran, tag)
    finished = ran is not None and ran.ok and result.status == "ok"
    samples = _summary_samples(ran.stdout + ran.stderr, tag) if ran is not None else None
    return result, ran.elapsed if finished else None, samples


def _precheck(problem: Problem, completion: str) -> tuple[str | None, SampleResult | None]:
    if not isinstance(completion, str):
        return None, SampleResult(
            False, "syntax_error", False, f"a completion must be text, not {type(completion).__name__}"
        )
    try:
        completion.encode("utf-8")
    except UnicodeEncodeError as error:
        return None, SampleResult(
            False, "syntax_error", False, f"not valid text: {error.reason} at {error.start}"
        )
    code = candidate_code(problem, completion)
    if code is None:
        return None, SampleResult(False, "no_code", False, "no Verilog code in the completion")
    reason = screen(code)
    if not reason:
        try:
            outside = outside_reference(
                parse(code, problem.top if problem.top in _MODULE_DECL.findall(code) else None)
            )
        except VerilogInputError:  # no module the front end can read: the official flow decides
            outside = None
        reason = outside and f"reference outside the candidate: {outside}"
    if reason:
        return None, SampleResult(False, "refused", False, reason)
    return code, None


def score_sample(problem: Problem, completion: str) -> SampleResult:
    """Score one completion with the official per-sample flow (one compile + one run in a fresh sandbox).

    Needs the `SALV_TRL_ALLOW_CODE_EXECUTION=1` opt-in.
    """
    require_opt_in()
    if harness_of(problem) == "custom":
        return _score_custom([(problem, completion)])[0]
    code, early = _precheck(problem, completion)
    return early if early is not None else _run_official(problem, code)[0]


def _score_custom(items: Sequence[tuple[Problem, str]]) -> list[SampleResult]:
    """Custom tasks go through the verification engine (reference co-simulation and/or the given
    testbench)."""
    results: list[SampleResult | None] = [None] * len(items)
    jobs, where = [], []
    for index, (problem, completion) in enumerate(items):
        code, early = _precheck(problem, completion)
        if early is not None:
            results[index] = early
            continue
        jobs.append(
            VerifyJob(
                candidate=code,
                reference=problem.reference,
                testbench=problem.testbench or None,
                top=problem.top,
            )
        )
        where.append(index)
    for index, verdict in zip(where, verify_many(jobs, progress=False), strict=True):
        signals = {name: {"mismatches": s.mismatches, "samples": s.samples, "correct": s.correct}
                   for name, s in verdict.signals.items()}  # fmt: skip
        status = str(getattr(verdict.status, "value", verdict.status))
        passed = status == "ok" and bool(signals) and all(s["correct"] for s in signals.values())
        compiled = status not in {"syntax_error", "compile_error", "interface_mismatch", "no_code", "refused"}
        results[index] = SampleResult(passed, status, compiled, verdict.detail, signals)
    return results  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------------------------
# Batched route (VerilogEval): many candidates of one problem in one compile and one run


_SEEDED = re.compile(r"\$(random|urandom)\b(?!\s*\()")
_DUMP = re.compile(r"\$dump\w*\s*(\([^;]*\))?\s*;")
_FINISH = re.compile(r"\$finish\b\s*(\(\s*\d*\s*\))?")
_ASKED = re.compile(r"^SALV_FINISH (\d+)$", re.MULTILINE)


_SLOT, _NONCE = "SALVSLOT", "SALVNONCE"  # placeholders filled in per copy
_COPY_TAG = f"{_NONCE}S{_SLOT}S"  # a copy's tag: the batch's secret, its slot (no tag is a part of another)


@lru_cache(maxsize=1024)
def _batch_template(testbench: str, reference: str, top: str) -> str | None:
    """The harness text of one copy with `SALVSLOT` / `SALVNONCE` placeholders, or None when the problem
    cannot be batched exactly.

    In a copy every module is suffixed `__s<slot>` (the candidate's top name included, as the testbench
    instantiates it), the testbench's display strings are tagged and its dump calls dropped (copies would
    share one file). Each `$random` / `$urandom` call draws from the copy's own seed variable (Icarus starts
    its global seeds at 0, and so do these), and `$finish` becomes a request: the simulation ends when every
    copy has asked, and each copy reports when it asked, so that a copy that ran past its own end is not
    believed. Not batchable: `$urandom_range`, which has no per-copy seed form.
    """
    text = testbench + reference
    if "$urandom_range" in text or _SLOT in text or _NONCE in text:
        return None
    names = set(_MODULE_DECL.findall(testbench)) | set(_MODULE_DECL.findall(reference)) | {top}
    mapping = {name: f"{name}__s{_SLOT}" for name in names}
    try:
        tb = tag_displays(rename_modules(_DUMP.sub("", testbench), mapping), _COPY_TAG)
        ref = rename_modules(reference, mapping) if reference.strip() else ""
    except VerilogInputError:
        return None
    seeds = f"salv_seeds__s{_SLOT}"
    tb = _FINISH.sub(f"{seeds}.request()", tb)
    seeds_module = f"""module {seeds};
  integer r = 0;
  integer u = 0;
  time asked_at = 0;
  reg asked = 0;
  task request;
    if (!asked) begin
      asked = 1;
      asked_at = $time;
      salv_batch.requests = salv_batch.requests + 1;
      if (salv_batch.requests == salv_batch.copies) $finish;
    end
  endtask
  final $display("{_COPY_TAG}SALV_FINISH %0d{_COPY_TAG}", asked_at);
endmodule
"""
    seeded = _SEEDED.sub(lambda m: f"${m.group(1)}({seeds}.{m.group(1)[0]})", tb + "\n" + ref)
    return seeded + "\n" + seeds_module


def _batch(problem: Problem, codes: list[str], seconds_per_copy: float) -> list[SampleResult | None]:
    """Score `codes` (screened candidates of one VerilogEval problem) together; None where a code needs its
    own run.

    The batch may simulate for `BATCH_MARGIN` times the expected time (copies x `seconds_per_copy`, at least
    `BATCH_FLOOR` seconds, at most the official timeout); past that every copy runs alone.
    """
    template = _batch_template(
        problem.testbench, problem.reference if harness_of(problem) == "verilog-eval-v2" else "", problem.top
    )
    results: list[SampleResult | None] = [None] * len(codes)
    if template is None:
        return results
    v2 = harness_of(problem) == "verilog-eval-v2"
    nonce = secrets.token_hex(8)
    files: dict[int, str] = {}
    slots: dict[int, tuple[int, str, str]] = {}  # slot -> (index in codes, tag, code)
    for index, code in enumerate(codes):
        # directives or macros could leak between copies; the batch's own names (`tb__s0`, `salv_batch`) would
        # let a candidate reach into other copies, where its own run has no such scope and fails to compile; a
        # candidate's own `$random` calls draw from the global stream that all copies share
        if "`" in code or re.search(r"__s\d|salv_|\$u?random", code) or _redeclared(problem, code):
            continue
        slot = len(files)
        own = {name: name + f"__s{slot}" for name in set(_MODULE_DECL.findall(code)) | {problem.top}}
        try:
            renamed = rename_modules(code, own)
        except VerilogInputError:
            continue
        tag = f"{nonce}S{slot}S"
        harness = template.replace(_NONCE, nonce).replace(_SLOT, str(slot))
        # official order: v2 compiles sample, test, ref; v1 writes the test before the completion.
        # `resetall gives every copy the default directives (timescale, nettype) the official run starts from.
        files[slot] = "`resetall\n" + (renamed + "\n" + harness if v2 else harness + "\n" + renamed)
        slots[slot] = (index, tag, code)
    for _ in range(2):  # a second try without the copies the compiler spoke about
        if not slots:
            return results
        sources = {f"s{slot}.sv": files[slot] for slot in slots}
        sources["salv_batch.sv"] = (
            f"module salv_batch;\n  integer requests = 0;\n  integer copies = {len(slots)};\nendmodule\n"
        )
        roots = ["-s", "salv_batch"]
        roots += [arg for slot in slots for arg in ("-s", f"tb__s{slot}", "-s", f"salv_seeds__s{slot}")]
        expected = len(slots) * seconds_per_copy
        timeout = min(V2_TIMEOUT if v2 else V1_TIMEOUT, max(BATCH_FLOOR, BATCH_MARGIN * expected))
        with Sandbox(sources, _limits(COMPILE_TIMEOUT)) as box:
            built = box.run(
                ["iverilog", *IVERILOG_FLAGS, *roots, "-o", "sim", *sources], COMPILE_TIMEOUT * WALL_FACTOR
            )
            messages = (built.stdout + built.stderr).splitlines()
            quiet = built.ok and not messages
            box.limits = _limits(timeout)
            ran = box.run(["vvp", "-n", "sim"], timeout * WALL_FACTOR) if quiet else None
        noisy = {int(m.group(1)) for line in messages if (m := re.match(r"s(\d+)\.sv:", line))}
        if messages:
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
        outputs = {slot: "\n".join(_testbench_lines(output, tag)[0]) for slot, (_, tag, _) in slots.items()}
        asked = {slot: int(m.group(1)) for slot, text in outputs.items() if (m := _ASKED.search(text))}
        end = max(asked.values(), default=None)
        for slot, (index, _tag, code) in slots.items():
            lines = _ASKED.sub("", outputs[slot]).strip("\n")
            if asked.get(slot) != end or not re.search(
                r"^Mismatches: \d+ in \d+ samples$", lines, re.MULTILINE
            ):
                continue  # ran past its own end, or no summary line: the official flow decides
            run = SandboxResult(0, lines, "")
            judged = _judge_v2(code, empty, run, "") if v2 else _judge_v1(empty, run, "")
            results[index] = _cut_short(problem, judged, _summary_samples(lines, ""))
        return results
    return results


# ------------------------------------------------------------------------------------------------------------
# Scoring many completions


def score(
    problems: Sequence[Problem],
    predictions: Sequence[Sequence[str]],
    *,
    workers: int | None = None,
    batch_size: int = 32,
    progress: bool = True,
    reuse: bool = True,
) -> list[list[SampleResult]]:
    """Score every completion of every problem under the problem's official harness.

    Identical candidate codes of a problem are simulated once. VerilogEval candidates are simulated
    `batch_size` at a time (see the module docstring); `batch_size=1` runs the official per-sample flow for
    every candidate.

    Args:
        problems (`Sequence[Problem]`): The problems, one per entry of `predictions`.
        predictions (`Sequence[Sequence[str]]`): Raw completions for each problem.
        workers (`int`, *optional*): Parallel sandboxes (default: the CPU count).
        batch_size (`int`, *optional*, defaults to `32`): Candidates per batched simulation.
        progress (`bool`, *optional*, defaults to `True`): Show a progress bar.
        reuse (`bool`, *optional*, defaults to `True`): Reuse verdicts of codes already scored on the same
            problem in this process (simulation is deterministic); the reference self-check makes references
            free this way.

    Returns:
        `list[list[SampleResult]]`: Results in the shape of `predictions`.
    """
    require_opt_in()
    version = _simulator_version() if reuse else ""
    if len(problems) != len(predictions):
        raise ValueError(f"{len(predictions)} prediction lists for {len(problems)} problems")
    results: list[list[SampleResult | None]] = [[None] * len(p) for p in predictions]
    custom = [(i, j) for i, problem in enumerate(problems) if harness_of(problem) == "custom"
              for j in range(len(predictions[i]))]  # fmt: skip
    if custom:
        for (i, j), result in zip(
            custom, _score_custom([(problems[i], predictions[i][j]) for i, j in custom]), strict=True
        ):
            results[i][j] = result
    # distinct screened codes per problem, minus those already scored in this process
    pending: dict[int, list[str]] = {}
    where: dict[tuple[int, str], list[int]] = {}
    for i, problem in enumerate(problems):
        if harness_of(problem) == "custom":
            continue
        key = _problem_key(problem, version) if reuse else ""
        for j, completion in enumerate(predictions[i]):
            code, early = _precheck(problem, completion)
            if early is not None:
                results[i][j] = early
            elif reuse and (key, code) in _VERDICTS:
                results[i][j] = _VERDICTS[key, code]
            else:
                if (i, code) not in where:
                    pending.setdefault(i, []).append(code)
                where.setdefault((i, code), []).append(j)
    verdicts: dict[tuple[int, str], SampleResult] = {}
    from tqdm.auto import tqdm

    bar = tqdm(total=len(where), desc="simulating", unit="completion", disable=not progress)

    def alone(item: tuple[int, str]) -> tuple[SampleResult, float | None]:
        outcome = _run_official(problems[item[0]], item[1])
        bar.update(1)
        return outcome

    def probe(i: int) -> float | None:
        # Candidates run alone until one simulates to the end: its run time sizes the batches of the others
        # and bounds how long they may take, so that a batch stuck on a hanging copy is given up early.
        for code in pending[i]:
            verdicts[i, code], seconds = alone((i, code))
            if seconds is not None:
                return seconds
        return None

    def batch(job: tuple[int, list[str], float]) -> None:
        i, codes, seconds = job
        for code, found in zip(codes, _batch(problems[i], codes, seconds), strict=True):
            if found is not None:
                verdicts[i, code] = found
                bar.update(1)

    batchable = [
        i
        for i, codes in pending.items()
        if batch_size > 1 and len(codes) > 2 and harness_of(problems[i]).startswith("verilog-eval")
    ]
    for i in pending:  # pyslang parses the harness here, never in the pool's threads
        _renamed_harness(problems[i])
        reference_code(problems[i])
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        jobs = []
        for i, seconds in zip(batchable, pool.map(probe, batchable), strict=True):
            if seconds is None:
                continue
            limit = V2_TIMEOUT if harness_of(problems[i]) == "verilog-eval-v2" else V1_TIMEOUT
            # as many copies as fit in the official timeout with the margin, so a batch is never cut short
            size = min(batch_size, max(1, int(limit // (BATCH_MARGIN * max(seconds, 1e-3)))))
            rest = [code for code in pending[i] if (i, code) not in verdicts]
            # a copy alone too: one compile and one run as the official flow, without its waveform dump
            jobs += [(i, rest[k : k + size], seconds) for k in range(0, len(rest), size)]
        # longest first, so that the slow problems' runs do not end up alone at the tail of the pool
        list(pool.map(batch, sorted(jobs, key=lambda job: len(job[1]) * job[2], reverse=True)))
        singles = [(i, code) for i, codes in pending.items() for code in codes if (i, code) not in verdicts]
        for item, (verdict, _) in zip(singles, pool.map(alone, singles), strict=True):
            verdicts[item] = verdict
    bar.close()
    for (i, code), verdict in verdicts.items():
        if reuse:
            if len(_VERDICTS) > 200_000:  # bound the memory a long-lived process spends on it
                _VERDICTS.clear()
            _VERDICTS[_problem_key(problems[i], version), code] = verdict
        for j in where[i, code]:
            results[i][j] = verdict
    return results  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------------------------
# Reference self-check


_VERDICTS: dict[tuple[str, str], SampleResult] = {}  # (problem key, code) -> verdict, for `score(reuse=True)`


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


def _problem_key(problem: Problem, version: str) -> str:
    payload = json.dumps(
        [
            harness_of(problem),
            version,
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
    scorer: Callable[..., list[list[SampleResult]]] = score,
) -> dict[str, SampleResult]:
    """Score each problem's own reference under its harness: the problems whose reference fails are
    unscorable.

    Results are cached on disk (`$SALV_TRL_CACHE` or `~/.cache/salv_trl/reference_checks`), keyed by the
    problem's files, the harness and the simulator version, so they are not recomputed on every evaluation.

    Returns:
        `dict[str, SampleResult]`: task id -> the reference's result.
    """
    version = _simulator_version()
    directory = _cache_dir()
    results: dict[str, SampleResult] = {}
    todo = []
    for problem in problems:
        path = directory / f"{_problem_key(problem, version)}.json"
        if cache and path.is_file():
            try:
                results[problem.task_id] = SampleResult.from_dict(json.loads(path.read_text()))
                continue
            except (OSError, ValueError, TypeError):
                pass
        todo.append((problem, path))
    if todo:
        wrapped = [f"```verilog\n{reference_code(problem)}\n```" for problem, _ in todo]
        scored = scorer([p for p, _ in todo], [[w] for w in wrapped], workers=workers, progress=progress)
        for (problem, path), (result,) in zip(todo, scored, strict=True):
            results[problem.task_id] = result
            if cache:
                directory.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(json.dumps(result.to_dict()))
                tmp.replace(path)
    return results


def simulator_available() -> bool:
    """Whether Icarus Verilog (`iverilog`, `vvp`) is on PATH."""
    return bool(shutil.which("iverilog") and shutil.which("vvp"))
