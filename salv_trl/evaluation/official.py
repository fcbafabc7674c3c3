"""Pass/fail of one candidate module, faithful to each benchmark's official harness, run in the hdl sandbox.

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
- **custom** task sets: the verification engine ([`salv_trl.hdl.verify`]) judges against the reference (and
  the task's testbench, if any); a candidate passes when every output is correct.

Fixes to known harness weaknesses (documented in the metric card): the testbench's own `$display` / `$write`
strings are wrapped in a per-run secret tag that is in no name, and only text between tag pairs can pass a
candidate ([`salv_trl.hdl.testbench.tagged_lines`]), so a candidate cannot print or glue a `Mismatches: 0` or
`Pass`; the testbench's modules (and VerilogEval v2's reference) are renamed per run, so `RefModule` and
`tb.stats1` are out of reach (a candidate that declares a harness module such as `RefModule` still fails to
compile, as it does in the official flows); a VerilogEval pass must compare the reference's number of samples
(a run ended early does not, [`cut_short`]); every candidate is screened ([`salv_trl.hdl.screen.screen`],
[`salv_trl.hdl.parse.outside_reference`]) before it is simulated, and every process runs in the namespace
sandbox.

The verdict of a candidate is a [`SampleResult`]: the verification engine's
[`~salv_trl.hdl.verify.ModuleVerdict`] (status, per-output verdicts, detail) and the official criteria.
"""

from __future__ import annotations

import math
import os
import re
import secrets
import shutil
import signal
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ..data.benchmarks import Problem
from ..hdl.extract import declared_modules, extract_code
from ..hdl.parse import outside_reference, parse, rename_modules
from ..hdl.sandbox import Sandbox, SandboxLimits, SandboxResult
from ..hdl.screen import screen
from ..hdl.source import VerilogInputError
from ..hdl.testbench import tag_displays, tagged_lines
from ..hdl.verify import ModuleVerdict, SignalVerdict, Status, VerifyJob, verify_many

__all__ = [
    "OPT_IN_ENV",
    "OfficialRun",
    "SampleResult",
    "candidate_code",
    "cut_short",
    "harness_of",
    "judge_v1",
    "judge_v2",
    "precheck",
    "reference_code",
    "require_opt_in",
    "run_official",
    "score_custom",
    "simulator_available",
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

_MISMATCHES = re.compile(r"^Mismatches: (\d+) in (\d+) samples$")
_HINT = re.compile(r"^Hint: Output '([^']*)' has (no|\d+) mismatch")


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


def simulator_available() -> bool:
    """Whether Icarus Verilog (`iverilog`, `vvp`) is on PATH."""
    return bool(shutil.which("iverilog") and shutil.which("vvp"))


@dataclass
class SampleResult:
    """Verdict for one completion under the benchmark's official harness.

    Args:
        verdict ([`~salv_trl.hdl.verify.ModuleVerdict`]): The verification engine's verdict: its `status`
            (`ok`: simulated, `no_code`, `syntax_error`, `interface_mismatch`, `compile_error`,
            `runtime_error`, `timeout`, `refused`), per-output verdicts where the testbench reports them, and
            the `detail` in the harness's words (VerilogEval v2 failure code, mismatch count, compiler
            message, refusal reason, ...).
        passed (`bool`): The official pass criterion holds. Not always `verdict.passed`: an RTLLM testbench
            reports no outputs, and a VerilogEval run that ends early fails with every output correct.
        compiled (`bool`): The official syntax criterion (compiled without errors): syntax pass@k counts
            these.
    """

    verdict: ModuleVerdict
    passed: bool
    compiled: bool

    @classmethod
    def of(
        cls,
        passed: bool,
        status: str,
        compiled: bool,
        detail: str = "",
        signals: dict[str, SignalVerdict] | None = None,
    ) -> SampleResult:
        """A result from the official criteria and the verdict's parts (`status`: the engine's vocabulary)."""
        return cls(ModuleVerdict(Status(status), signals or {}, detail), passed, compiled)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form: `passed`, `compiled`, and the verdict's `status`, `detail`, `signals` as the
        verification engine writes them ([`~salv_trl.hdl.verify.ModuleVerdict.to_dict`])."""
        return {"passed": self.passed, "compiled": self.compiled, **self.verdict.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SampleResult:
        """Inverse of [`to_dict`]."""
        return cls(ModuleVerdict.from_dict(data), data["passed"], data["compiled"])


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
    if problem.interface and (code is None or problem.top not in declared_modules(code)):
        return problem.interface + "\n" + (code if code is not None else completion)
    return code


def reference_code(problem: Problem) -> str:
    """The reference as a candidate: its top module renamed to the name the testbench instantiates."""
    return _rename_reference(problem.reference, problem.reference_top, problem.top)


def precheck(problem: Problem, completion: str) -> tuple[str | None, SampleResult | None]:
    """(the candidate's code, None), or (None, its verdict) when it is decided before any simulation: not
    text, no code, or refused by the screen."""
    if not isinstance(completion, str):
        return None, SampleResult.of(
            False, "syntax_error", False, f"a completion must be text, not {type(completion).__name__}"
        )
    try:
        completion.encode("utf-8")
    except UnicodeEncodeError as error:
        return None, SampleResult.of(
            False, "syntax_error", False, f"not valid text: {error.reason} at {error.start}"
        )
    code = candidate_code(problem, completion)
    if code is None:
        return None, SampleResult.of(False, "no_code", False, "no Verilog code in the completion")
    reason = screen(code)
    if not reason:
        try:
            outside = outside_reference(
                parse(code, problem.top if problem.top in declared_modules(code) else None)
            )
        except VerilogInputError:  # no module the front end can read: the official flow decides
            outside = None
        reason = outside and f"reference outside the candidate: {outside}"
    if reason:
        return None, SampleResult.of(False, "refused", False, reason)
    return code, None


# ------------------------------------------------------------------------------------------------------------
# Official per-sample flows


def limits(timeout: float) -> SandboxLimits:
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


def renamed_harness(problem: Problem) -> tuple[str, str]:
    """(testbench, VerilogEval v2's reference or "") with the harness's modules renamed to `<name>_SALVRUN`,
    so that each run can give them names no candidate can know: it cannot instantiate the reference
    (`RefModule`) nor reach the testbench's counters (`tb.stats1`). Parsed once per problem: the scorer fills
    this cache in its own thread before its pool starts, so pyslang never runs in the pool.
    """
    reference = problem.reference if harness_of(problem) == "verilog-eval-v2" else ""
    return _rename_harness(problem.testbench, reference, harness_modules(problem) - {problem.top})


@lru_cache(maxsize=4096)
def _rename_harness(testbench: str, reference: str, names: frozenset[str]) -> tuple[str, str]:
    mapping = {name: f"{name}_{_RUN}" for name in names}
    return rename_modules(testbench, mapping), rename_modules(reference, mapping) if reference else ""


def harness_modules(problem: Problem) -> frozenset[str]:
    """The modules the official flow compiles beside the candidate: the testbench's, and for VerilogEval v2
    the reference's (`ref.sv`)."""
    names = _declared(problem.testbench)
    return names | _declared(problem.reference) if harness_of(problem) == "verilog-eval-v2" else names


_declared = lru_cache(maxsize=4096)(declared_modules)  # the harness texts, read once per problem


def split_testbench_lines(output: str, tag: str) -> tuple[list[str], list[str]]:
    """(the testbench's lines, the others); an empty tag: `output` holds the testbench's lines only (a batch
    copy's, separated already)."""
    return tagged_lines(output, tag) if tag else (output.splitlines(), [])


def redeclared(problem: Problem, code: str) -> SampleResult | None:
    """The official flows fail a candidate that declares one of the harness's modules (`RefModule`, `tb`):
    with the harness renamed for the run, that is decided here, in the words of Icarus."""
    clash = sorted((declared_modules(code) & harness_modules(problem)) - {problem.top})
    if not clash:
        return None
    message = f"error: '{clash[0]}' has already been declared in this scope."
    code_ = "C: " if harness_of(problem) == "verilog-eval-v2" else ""
    return SampleResult.of(False, "compile_error", False, code_ + message)


def _signals(lines: Iterable[str]) -> dict[str, SignalVerdict]:
    samples = 0
    counts = {}
    for line in lines:
        if match := _HINT.match(line):
            counts[match.group(1)] = 0 if match.group(2) == "no" else int(match.group(2))
        elif match := _MISMATCHES.match(line):
            samples = int(match.group(2))
    return {name: SignalVerdict.of(n, samples) for name, n in counts.items()}


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


def judge_v2(candidate: str, built: SandboxResult, ran: SandboxResult | None, tag: str) -> SampleResult:
    """VerilogEval v2's verdict on a compile (`built`) and run (`ran`, None when it did not run) of
    `candidate`; `tag` marks the testbench's lines ("": `ran` holds only those)."""
    log = (built.stdout + built.stderr).splitlines()
    tb_lines: list[str] = []
    if ran is not None:
        tb_lines, other = split_testbench_lines(ran.stdout + ran.stderr, tag)
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
    return SampleResult.of(code == ".", status, built.ok, detail, _signals(tb_lines) if summary else {})


def _first_message(log: list[str]) -> str:
    """The most telling line of a log: the first error, else the first timeout, warning or `sorry` line."""
    for needles in (("error",), ("TIMEOUT", "sorry", "warning")):
        for line in log:
            if any(needle in line for needle in needles):
                return line.strip()[:300]
    return log[0].strip()[:300] if log else "no summary line"


def judge_v1(built: SandboxResult, ran: SandboxResult | None, tag: str) -> SampleResult:
    """VerilogEval v1's verdict on a compile (`built`) and run (`ran`, None when it did not run); `tag` marks
    the testbench's lines ("": `ran` holds only those)."""
    stderr = built.stderr + (ran.stderr if ran is not None else "")
    tb_lines = split_testbench_lines(ran.stdout, tag)[0] if ran is not None else []
    summary = next((m for m in map(_MISMATCHES.match, tb_lines) if m), None)
    if ran is not None and _timed_out(ran) or _timed_out(built):
        return SampleResult.of(False, "timeout", built.ok, "timed out")
    if "syntax error" in stderr:
        return SampleResult.of(
            False, "syntax_error", False, "failed: syntax error. " + _first_message(stderr.splitlines())
        )
    if stderr:
        status = "compile_error" if not built.ok or ran is None else "runtime_error"
        if "Unknown module type" in stderr or "is not a port of" in stderr or "Unable to bind" in stderr:
            status = "interface_mismatch"
        return SampleResult.of(
            False, status, built.ok, "failed: compile error. " + _first_message(stderr.splitlines())
        )
    if summary is None:
        return SampleResult.of(False, "runtime_error", True, "failed: info string not matched.")
    errors, total = int(summary.group(1)), int(summary.group(2))
    detail = "passed" if errors == 0 else f"failed: {errors} out of {total} samples."
    return SampleResult.of(errors == 0, "ok", True, detail, _signals(tb_lines))


def _judge_rtllm(built: SandboxResult, ran: SandboxResult | None, tag: str) -> SampleResult:
    if not built.ok:
        log = (built.stdout + built.stderr).splitlines()
        status = "syntax_error" if any("syntax error" in line for line in log) else "compile_error"
        if any("Unknown module type" in line or "is not a port of" in line for line in log):
            status = "interface_mismatch"
        if _timed_out(built):
            status = "timeout"
        return SampleResult.of(False, status, False, _first_message(log))
    assert ran is not None
    if _timed_out(ran):
        return SampleResult.of(False, "timeout", True, f"simulation still running after {RTLLM_TIMEOUT:g} s")
    tb_lines, _ = split_testbench_lines(ran.stdout + ran.stderr, tag)
    passed = any("Pass" in line or "pass" in line for line in tb_lines)
    last = next((line.strip() for line in reversed(tb_lines) if line.strip()), "no testbench output")
    return SampleResult.of(passed, "ok" if tb_lines else "runtime_error", True, last[:300])


def _official_files(
    problem: Problem, code: str, tag: str
) -> tuple[dict[str, str], list[str], list[str], float]:
    """Sandbox files, compile argv, run argv and run timeout of the official flow for one candidate."""
    family = harness_of(problem)
    nonce = secrets.token_hex(8)
    testbench, reference = (text.replace(_RUN, nonce) for text in renamed_harness(problem))
    root = f"tb_{nonce}" if "tb" in harness_modules(problem) else "tb"  # the official flows' `-s tb`
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


@dataclass
class OfficialRun:
    """One candidate's official flow: its verdict before [`cut_short`], the seconds its simulation ran when it
    ran to the end, and the samples its summary line counts (VerilogEval)."""

    result: SampleResult
    seconds: float | None
    samples: int | None


def summary_samples(output: str, tag: str) -> int | None:
    """The samples the testbench's `Mismatches: N in M samples` line counts, if it printed one."""
    lines = split_testbench_lines(output, tag)[0]
    found = next((m for m in map(_MISMATCHES.match, lines) if m), None)
    return int(found.group(2)) if found else None


def run_official(problem: Problem, code: str) -> OfficialRun:
    """The official flow for one screened candidate: one compile and one run in a fresh sandbox."""
    clash = redeclared(problem, code)
    if clash is not None:
        return OfficialRun(clash, None, None)
    tag = secrets.token_hex(16)  # in no name, so the candidate cannot learn it (not even with %m)
    files, compile_argv, run_argv, timeout = _official_files(problem, code, tag)
    with Sandbox(files, limits(max(timeout, COMPILE_TIMEOUT))) as box:
        built = box.run(compile_argv, COMPILE_TIMEOUT * WALL_FACTOR)
        compiled = built.ok and (box.path / compile_argv[compile_argv.index("-o") + 1]).is_file()
        box.remove(*(name for name in files if name.endswith((".sv", ".v"))))  # the run needs only the binary
        box.limits = limits(timeout)
        ran = box.run(run_argv, timeout * WALL_FACTOR) if compiled else None
    family = harness_of(problem)
    if family == "verilog-eval-v2":
        result = judge_v2(code, built, ran, tag)
    elif family == "verilog-eval-v1":
        result = judge_v1(built, ran, tag)
    else:
        result = _judge_rtllm(built, ran, tag)
    finished = ran is not None and ran.ok and result.verdict.status == Status.ok
    samples = summary_samples(ran.stdout + ran.stderr, tag) if ran is not None else None
    return OfficialRun(result, ran.elapsed if finished else None, samples)


def cut_short(
    problem: Problem,
    result: SampleResult,
    samples: int | None,
    reference_samples: Callable[[Problem], int | None],
) -> SampleResult:
    """A VerilogEval pass must compare as many samples (`samples`) as the reference's own run
    (`reference_samples(problem)`, asked only then; None: the reference fails, nothing to compare): a run
    ended early (at time 0, its `final` block prints `Mismatches: 0 in 0 samples`) is not a pass."""
    if not result.passed or harness_of(problem) not in ("verilog-eval-v1", "verilog-eval-v2"):
        return result
    expected = reference_samples(problem)
    if samples is None or expected is None or samples == expected:
        return result
    detail = f"R: the run ended early: {samples} of the reference's {expected} samples"
    return SampleResult.of(False, "runtime_error", True, detail)


# ------------------------------------------------------------------------------------------------------------
# Custom task sets


_NOT_COMPILED = {
    Status.syntax_error,
    Status.compile_error,
    Status.interface_mismatch,
    Status.no_code,
    Status.refused,
}


def score_custom(items: Sequence[tuple[Problem, str]]) -> list[SampleResult]:
    """Custom tasks go through the verification engine (reference co-simulation and/or the given
    testbench)."""
    results: list[SampleResult | None] = [None] * len(items)
    jobs, where = [], []
    for index, (problem, completion) in enumerate(items):
        code, early = precheck(problem, completion)
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
        compiled = verdict.status not in _NOT_COMPILED
        results[index] = SampleResult(verdict, verdict.passed, compiled)
    return results  # type: ignore[return-value]
