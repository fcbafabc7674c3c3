"""Formal per-output equivalence of a candidate and a reference, with Yosys and ABC, in the sandbox.

Random co-simulation can only say "no mismatch in the samples drawn"; this module says, output by output,
[`Proof.proved`] (equal on every input sequence from reset), [`Proof.proved_bounded`] (equal for the first
`depth` cycles from reset, no induction found), [`Proof.counterexample`] (an input sequence on which they
differ), or [`Proof.unknown`] with the reason. [`salv_trl.hdl.verify`] replays every counterexample in the
simulator and keeps it only if the simulator shows the mismatch too, so a modelling difference between Yosys
and Icarus can cost a verdict (`unknown`), never produce a wrong "wrong".

**The model.** A miter module (generated here, trusted) instantiates the reference and the candidate (both
already renamed by the verifier) on shared inputs and has, per output `o`, a `bad` output that is 1 when
the two differ (`!==`) and, for sequential designs, a `moved` output that is 1 when the reference's `o`
changed since the previous cycle. Yosys reads the three files (macros reset between them), elaborates
(`proc`, `flatten`, `memory`, `async2sync`) and writes one AIGER model; ABC then checks each `bad` output on
its own: `pdr` (IC3, an unbounded proof or a counterexample of any depth), and when it decides nothing in
its time, `bmc3` up to `depth` cycles. A bounded result counts as evidence only when the reference's output
can move within the bound (`moved` reachable); otherwise the output is untested there too.

**Sequential designs** follow the random route's stimulus plan ([`plan_stimulus`]): the one clock is the
implicit clock of every flip-flop (each model step is one cycle), every reset is asserted in the first
cycle (the polarity the plan infers; asynchronous resets act at once through `async2sync`) and free after.
Registers without a reset or an initial value start at arbitrary values, and inputs are always defined (the
simulator never drives X). Outputs are compared from the first cycle where an asynchronous reset or `initial`
values define the reference's registers there, otherwise from the first clock edge on (before it the
simulator's reference is X). Designs the model cannot represent
faithfully are `unknown`, never proved: more than one clock, flip-flops on another signal or edge than the
clock's, a clock used as data, latches, asynchronous set/reset flip-flops that survive `async2sync`.

**What it cannot see**: an X or Z in the reference is a value like any other (two-valued model), so an
undriven reference output or a reference that assigns `'x` gives counterexamples the simulator does not
confirm, hence `unknown`; the random route's coverage names such outputs untested.

**Untrusted code**: Yosys parses and elaborates model output, and ABC reads the model made from it; both run
in a [`Sandbox`] with the same limits as the simulator. Verdicts are read from ABC's own report lines and
counterexample files; the model holds no names of the candidate's (no symbol table).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from pyslang import syntax as pysyntax

from .parse import ParsedDesign, find_nodes
from .sandbox import Sandbox, SandboxLimits
from .testbench import StimulusPlan

__all__ = [
    "Proof",
    "FormalResult",
    "FormalError",
    "DEFAULT_DEPTH",
    "formal_problem",
    "unmodelled_code",
    "prove_outputs",
]

DEFAULT_DEPTH = 40  # cycles of bounded model checking when no unbounded proof is found; see the README


class Proof(str, Enum):
    """A formal per-output result."""

    proved = "proved"
    proved_bounded = "proved_bounded"
    counterexample = "counterexample"
    unknown = "unknown"


@dataclass(frozen=True)
class FormalResult:
    """One output's formal result.

    Args:
        proof: the [`Proof`].
        depth: the bound reached (`proved_bounded`) or the counterexample's length in cycles.
        reason: why `unknown`.
        activity: `proved_bounded` only: the reference's output can change within the bound.
        stimulus: `counterexample` only: the inputs of each cycle, name -> value, for the replay.
    """

    proof: Proof
    depth: int | None = None
    reason: str = ""
    activity: bool | None = None
    stimulus: tuple[dict[str, int], ...] | None = None

    @property
    def shows_correct(self) -> bool:
        """A proof, or a bounded proof within which the reference's output moves."""
        return self.proof == Proof.proved or (self.proof == Proof.proved_bounded and bool(self.activity))


class FormalError(RuntimeError):
    """The formal model could not be built or checked; the message is the reason of an `unknown`."""


_TOOLS = ("yosys", "yosys-abc")


def formal_problem() -> str | None:
    """Why formal verification cannot run here (the tools are missing), else None."""
    missing = [tool for tool in _TOOLS if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not found: install the Debian package 'yosys'"
    return None


# Timing the simulator honours and synthesis drops: a delayed output is another circuit in simulation.
_TIMING = (
    pysyntax.SyntaxKind.DelayControl,
    pysyntax.SyntaxKind.Delay3,
    pysyntax.SyntaxKind.CycleDelay,
    pysyntax.SyntaxKind.OneStepDelay,
    pysyntax.SyntaxKind.WaitStatement,
    pysyntax.SyntaxKind.WaitForkStatement,
    pysyntax.SyntaxKind.WaitOrderStatement,
)


# Code Yosys reads differently from the simulator: its predefined macros (`YOSYS`, `SYNTHESIS`), synthesis
# pragmas in comments (`translate_off`, `parallel_case`, ...) and attributes.
_SYNTHESIS_ONLY = re.compile(
    r"`(?:ifdef|ifndef|elsif)\s+(?:YOSYS|SYNTHESIS)\b|\b(?:synopsys|synthesis|pragma|translate_off|translate_on"
    r"|parallel_case|full_case)\b|\(\*(?!\s*\))"
)


def unmodelled_code(design: ParsedDesign) -> str | None:
    """Why `design` holds code the formal model would read otherwise than the simulator, else None.

    Yosys ignores delays and `wait`, defines `YOSYS` and `SYNTHESIS`, and obeys synthesis pragmas and
    attributes (`translate_off`, `parallel_case`, `(* init *)`): a candidate could show it one circuit and
    the simulator another. Such designs are `unknown`, never proved.
    """
    for module in design.syntax:
        if find_nodes(module.node, *_TIMING):
            return f"delays or wait statements in {module.name!r}, which the formal model ignores"
    if design.source is not None and (found := _SYNTHESIS_ONLY.search(design.source.text)):
        return f"{found.group(0)!r}: code Yosys would read differently from the simulator"
    return None


def prove_outputs(
    reference: str,
    reference_module: str,
    candidate: str,
    candidate_module: str,
    ports: Sequence,
    plan: StimulusPlan,
    edges: dict[str, set[str]],
    *,
    depth: int = DEFAULT_DEPTH,
    timeout: float = 20.0,
) -> dict[str, FormalResult]:
    """Output name -> [`FormalResult`] of `candidate_module` against `reference_module`.

    Args:
        reference, candidate: Verilog texts, their modules already renamed apart (the verifier's).
        reference_module, candidate_module: the two tops.
        ports: the reference's ports (`name`, `direction`, `width`, `signed`); the candidate has the same.
        plan: the stimulus plan (clocks, resets) of the reference.
        edges: input name -> the edges it is used with in the reference.
        depth: cycles of bounded model checking.
        timeout: wall-clock seconds for Yosys; per output, ABC's IC3 gets a third of it and bounded checking
            half (once for the output, once for its activity).

    Raises:
        FormalError: the model cannot be built or is not one the checker represents faithfully.
    """
    if problem := formal_problem():
        raise FormalError(problem)
    if len(plan.clocks) > 1:
        raise FormalError(f"several clocks ({', '.join(plan.clocks)})")
    clock = plan.clocks[0] if plan.clocks else None
    negedge = clock is not None and edges.get(clock) == {"negedge"}
    outputs = [p for p in ports if p.direction == "output"]
    miter = _miter(ports, plan, reference_module, candidate_module, negedge)
    files = {"ref.v": reference, "cand.v": candidate, "miter.v": miter, "model.ys": _YOSYS_SCRIPT}
    limits = SandboxLimits(cpu_seconds=max(10, int(timeout) * 2))
    with Sandbox(files, limits) as box:
        built = box.run(["yosys", "-q", "-s", "model.ys"], timeout)
        if not built.ok:
            raise FormalError(_tool_failure("yosys", built))
        module = _elaborated(_read(box, "structure.json"))
        _check_structure(module, clock, negedge)
        index = _read_map(_read(box, "model.map"))
        positions = _output_positions(box, index)
        if clock is not None and not _compare_from_reset(module, plan):
            positions = {
                **positions,
                **{f"salv_bad_{j}": positions.get(f"salv_late_{j}") for j in range(len(outputs))},
            }
        return {
            port.name: _check_output(box, index, positions, j, clock is not None, ports, depth, timeout)
            for j, port in enumerate(outputs)
        }


_YOSYS_SCRIPT = """\
read_verilog -sv ref.v
verilog_defines -reset
read_verilog -sv cand.v
verilog_defines -reset
read_verilog -sv miter.v
hierarchy -check -top salv_miter
proc
flatten
memory
opt_clean
async2sync
write_json structure.json
setundef -undriven -anyseq
opt -fast -nodffe -nosdff
dffunmap
techmap
opt_clean
aigmap
opt_clean
write_aiger -zinit -map model.map model.aig
"""


def _miter(ports: Sequence, plan: StimulusPlan, reference: str, candidate: str, negedge: bool) -> str:
    """The miter: per output `salv_bad_<j>` (the two differ) and, if sequential, `salv_late_<j>` (they differ
    after the first clock edge) and `salv_moved_<j>` (the reference's output changed)."""
    inputs = [p for p in ports if p.direction == "input"]
    outputs = [p for p in ports if p.direction == "output"]
    sequential = bool(plan.clocks)
    heads = [f"input {_range(p)}{p.name}" for p in inputs]
    heads += [f"output salv_bad_{j}" for j in range(len(outputs))]
    if sequential:
        heads += [f"output salv_{kind}_{j}" for kind in ("late", "moved") for j in range(len(outputs))]
    lines = ["module salv_miter(" + ", ".join(heads) + ");"]
    connect = {p.name: p.name for p in inputs}
    if sequential:
        edge = "negedge" if negedge else "posedge"
        lines += ["  reg salv_first = 1'b1;", f"  always @({edge} {plan.clocks[0]}) salv_first <= 1'b0;"]
        for reset in plan.resets:  # asserted in the first cycle, as the random route does
            lines.append(f"  wire salv_rst_{reset.name} = salv_first ? {reset.active} : {reset.name};")
            connect[reset.name] = f"salv_rst_{reset.name}"
    for who, module in (("r", reference), ("c", candidate)):
        lines += [f"  wire {_range(p)}{who}_{p.name};" for p in outputs]
        conns = [f".{name}({wire})" for name, wire in connect.items()]
        conns += [f".{p.name}({who}_{p.name})" for p in outputs]
        lines.append(f"  {module} salv_{who} (" + ", ".join(conns) + ");")
    for j, p in enumerate(outputs):
        lines.append(f"  assign salv_bad_{j} = r_{p.name} !== c_{p.name};")
        if sequential:  # the same from the first clock edge on (see `_compare_from_reset`)
            lines.append(f"  assign salv_late_{j} = !salv_first && (r_{p.name} !== c_{p.name});")
        if sequential:
            edge = "negedge" if negedge else "posedge"
            lines += [
                f"  reg {_range(p)}salv_prev_{j};",
                f"  always @({edge} {plan.clocks[0]}) salv_prev_{j} <= r_{p.name};",
                f"  assign salv_moved_{j} = !salv_first && (salv_prev_{j} !== r_{p.name});",
            ]
    return "\n".join(lines + ["endmodule", ""])


def _range(port) -> str:
    return f"{'signed ' if port.signed else ''}[{port.width - 1}:0] " if port.width > 1 else ""


def _read(box: Sandbox, name: str) -> str:
    try:
        return (box.path / name).read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise FormalError(f"the model was not written ({name}: {type(error).__name__})") from error


def _tool_failure(tool: str, result) -> str:
    if result.timed_out:
        return f"{tool} timed out"
    if result.output_exceeded:
        return f"{tool} printed too much"
    output = result.stderr + result.stdout
    if "contains 'x' or 'z' bits" in output:
        return "X or Z constants in the design: the two-valued model cannot represent them"
    errors = [line for line in output.splitlines() if "ERROR" in line]
    message = errors[-1].strip() if errors else f"exit status {result.returncode}"
    return f"{tool} failed: {message[:300]}"


# Cells a flip-flop may be after `async2sync` and `opt -nodffe -nosdff`; anything else with a clock (latches,
# asynchronous set/reset, clock-enable forms the two-valued model would not treat the same) is refused.
_FLIP_FLOPS = {"$dff", "$dffe", "$sdff", "$sdffe", "$sdffce", "$ff"}
_UNSUPPORTED = re.compile(r"^\$(dlatch|adlatch|sr|dffsr|aldff|adff|mem|fsm|print|check|assert|assume)")


def _elaborated(structure: str) -> dict:
    try:
        return json.loads(structure)["modules"]["salv_miter"]
    except (ValueError, KeyError, TypeError) as error:
        raise FormalError("the elaborated model is unreadable") from error


def _compare_from_reset(module: dict, plan: StimulusPlan) -> bool:
    """Whether outputs are compared from the first cycle, before any clock edge: only where something defines
    the reference's registers there (an asynchronous reset, or `initial` values). Otherwise the simulator's
    reference is X before the first edge, constraining nothing, while the model's registers start arbitrary:
    comparing there would only give counterexamples the simulator cannot confirm."""
    if any(reset.asynchronous for reset in plan.resets):
        return True
    return any(
        name.startswith("salv_r.") and "init" in net.get("attributes", {})
        for name, net in module.get("netnames", {}).items()
    )


def _check_structure(module: dict, clock: str | None, negedge: bool) -> None:
    """Refuse designs whose flip-flops the one-clock, one-step-per-cycle model would misrepresent."""
    ports = module.get("ports", {})
    clock_bits = set(ports[clock]["bits"]) if clock in ports else set()
    for cell in module.get("cells", {}).values():
        kind = cell.get("type", "")
        if _UNSUPPORTED.match(kind):
            raise FormalError(f"unsupported construct after elaboration: {kind}")
        connections = cell.get("connections", {})
        for port, bits in connections.items():
            if port != "CLK" and clock_bits & set(bits):
                raise FormalError("the clock is used as data")
        if "CLK" not in connections:
            continue
        if kind not in _FLIP_FLOPS:
            raise FormalError(f"unsupported clocked cell {kind}")
        polarity = int(str(cell.get("parameters", {}).get("CLK_POLARITY", "1")), 2)
        if set(connections["CLK"]) != clock_bits or not clock_bits or polarity == negedge:
            raise FormalError("a flip-flop on another clock or edge than the design's clock")


def _read_map(text: str) -> dict[str, list[tuple[int, str, int]]]:
    """`write_aiger -map` lines by kind: (index, name, bit)."""
    index: dict[str, list[tuple[int, str, int]]] = {}
    for line in text.splitlines():
        kind, number, bit, name = line.split(maxsplit=3)
        index.setdefault(kind, []).append((int(number), name, int(bit)))
    return index


def _output_positions(box: Sandbox, index) -> dict[str, int | None]:
    """Miter output name -> its output number in the model, or None where it is the constant 0.

    `write_aiger -map` names outputs by number but leaves out constant ones, and of two outputs merged into
    one net names only one number; the model's output lines (their literals) tell them apart. A name left
    out is taken for the constant 0 only if every output number left out is the constant 0 or a copy of a
    named one.
    """
    try:
        with (box.path / "model.aig").open("rb") as model:
            header = model.readline().split()
            latches, count = int(header[3]), int(header[4])
            for _ in range(latches):
                model.readline()
            literals = [int(model.readline().split()[0]) for _ in range(count)]
    except (OSError, IndexError, ValueError) as error:
        raise FormalError("the model is unreadable (model.aig)") from error
    named = {name: number for number, name, _ in index.get("output", [])}
    unnamed = set(range(count)) - set(named.values())
    copies = {literals[n] for n in named.values() if n < count}
    if any(n >= count for n in named.values()) or any(literals[n] not in copies | {0} for n in unnamed):
        raise FormalError("the model's outputs are not the miter's")
    return named


_PROVED = re.compile(r"^Property proved\.", re.MULTILINE)
_ASSERTED = re.compile(r"^Output 0 of miter \S+ was asserted in frame (\d+)\.", re.MULTILINE)
_NONE_ASSERTED = re.compile(r"^No output asserted in (\d+) frames\.", re.MULTILINE)


def _check_output(
    box: Sandbox,
    index: dict[str, list[tuple[int, str, int]]],
    positions: dict[str, int | None],
    j: int,
    sequential: bool,
    ports: Sequence,
    depth: int,
    timeout: float,
) -> FormalResult:
    # IC3 gets a third of the budget: it decides most outputs in well under a second, and the rest (deep
    # counters) are left to bounded checking.
    pdr_seconds, bmc_seconds = max(1, int(timeout / 3)), max(1, int(timeout / 2))
    bad, moved = positions.get(f"salv_bad_{j}"), positions.get(f"salv_moved_{j}")
    if bad is None:  # the constant 0: the two never differ
        return FormalResult(Proof.proved)
    report = _abc(box, f"cone -O {bad} -s -a; pdr -T {pdr_seconds}; write_cex -a cex.txt", timeout)
    if isinstance(report, FormalResult):
        return report
    if _PROVED.search(report):
        return FormalResult(Proof.proved)
    if not (found := _ASSERTED.search(report)):
        report = _abc(
            box, f"cone -O {bad} -s -a; bmc3 -F {depth} -T {bmc_seconds}; write_cex -a cex.txt", timeout
        )
        if isinstance(report, FormalResult):
            return report
        found = _ASSERTED.search(report)
    if found:
        frames = int(found.group(1)) + 1
        try:
            stimulus = _stimulus(box, index, ports, frames)
        except FormalError as error:
            return FormalResult(Proof.unknown, reason=str(error))
        return FormalResult(Proof.counterexample, frames, stimulus=stimulus)
    bounded = _NONE_ASSERTED.search(report)
    if not bounded or int(bounded.group(1)) < depth:
        return FormalResult(Proof.unknown, reason=f"no proof and no counterexample within {bmc_seconds} s")
    if not sequential:  # no state: the first frame is every input there is
        return FormalResult(Proof.proved)
    activity = False  # `moved` is the constant 0 when the reference's output is a constant
    if moved is not None:
        cover = _abc(box, f"cone -O {moved} -s -a; bmc3 -F {depth} -T {bmc_seconds}", timeout)
        activity = isinstance(cover, str) and bool(_ASSERTED.search(cover))
    return FormalResult(Proof.proved_bounded, depth, activity=activity)


def _abc(box: Sandbox, commands: str, timeout: float) -> str | FormalResult:
    """ABC's report on `model.aig` after `commands`, or the `unknown` its failure means."""
    box.remove("cex.txt")
    result = box.run(["yosys-abc", "-c", f"read_aiger model.aig; {commands}"], timeout + 5)
    if not result.ok:
        return FormalResult(Proof.unknown, reason=_tool_failure("abc", result))
    return result.stdout


def _stimulus(box: Sandbox, index, ports: Sequence, frames: int) -> tuple[dict[str, int], ...]:
    """The counterexample's input values per cycle (AIGER witness: a line of initial latch values, then one
    line of input bits per frame); only the design's own inputs, by name."""
    lines = _read(box, "cex.txt").replace("# DONE", "").split("\n")[1 : frames + 1]
    if len(lines) != frames:
        raise FormalError("the counterexample file is incomplete")
    names = {p.name for p in ports if p.direction == "input"}
    steps = []
    for line in lines:
        values = dict.fromkeys(names, 0)
        for number, name, bit in index.get("input", []):
            if name in names and number < len(line) and line[number] == "1":
                values[name] |= 1 << bit
        steps.append(values)
    return tuple(steps)
