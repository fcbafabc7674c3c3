"""Testbenches: random co-simulation generated from a reference alone, and parsers of given testbenches.

**Random co-simulation** ([`random_testbench`]) instantiates the reference and any number of candidates side
by side, drives every input with seeded random values at full width (signed and wide vectors included,
parameters at their defaults) and counts, per candidate and per output, the samples where the candidate
differs from the reference. Comparison is bitwise with `(ref ^ ref ^ ref) !== (ref ^ cand ^ ref)`: an X or Z
in the reference is a don't-care (VerilogEval's rule, extended to Z: an undriven reference output constrains
nothing), an X/Z in the candidate where the reference is known is a mismatch.

- Combinational designs (no input used in an edge event): apply a vector, compare 7 time units later;
  `vectors` samples.
- Sequential designs: clocks are the inputs used in edge events whose names look like clocks (else all
  edge-event inputs that are not resets); resets are inputs named like resets (`rst`, `reset`, `areset`,
  `clr`, ...), active low when named so (`rst_n`, `resetn`, `nrst`, ...) or used with `negedge`, asynchronous
  when used in an edge event. Reset is held for the first two cycles, asserted again in the middle cycle (so
  that every run checks what a reset does to registers that hold values: asynchronous against synchronous,
  the reset values), and at random moments (on about one cycle in `reset_every`, default 64; 0: never after
  the first two cycles, the middle one included). Each cycle: falling edge
  at t, inputs change at t+2, compare at t+4, rising edge at t+5, compare at t+9 (the points just before each
  clock edge, where VerilogEval's testbenches sample); `2 * vectors` samples.

**Coverage**: at every sample the testbench also records, per output, whether the reference's value had a
known bit and whether it ever differed from its first such value. An output that never took a known value
(undriven, Z) or never moved under the stimulus (a counter that no run reaches) constrained nothing that the
run can vouch for: the verdict calls it untested, not correct ([`Coverage`]).

**Directed stimulus** (`directed=`): the same testbench with the inputs of each cycle given instead of drawn
(reset asserted in cycle 0 as in the formal model, then as given); it replays a formal counterexample in the
simulator ([`salv_trl.hdl.formal`]).

**A verdict channel the candidate cannot write** ([`tag_displays`], [`tagged_lines`]): every string the
harness prints is wrapped in a per-run secret tag, `<tag>text<tag>`, and only text between a pair of tags is
read as the harness's. The tag is a random string that appears in no name (module and instance names carry a
different random suffix, which a candidate may learn with `%m` at run time but cannot use: hierarchical
references are resolved at compile time), so a candidate cannot print a harness line, and whatever it prints
around, before or inside a harness line (a `$write` without newline, a glued `Pass`) stays outside the tags
and is ignored. Each `(candidate, output)` line must appear exactly once with the expected number of samples,
and the run must end with exactly one end line, so a run that ended early fails ([`parse_random_output`]).

**Given testbenches** ([`parse_given_output`]): the original release's `<signal> error ctn: <N>` lines, and
VerilogEval v2's `Hint: Output '<name>' has N mismatches.` / `has no mismatches.` with `Mismatches: N in M
samples`, read from the tagged lines only. Each signal line and the summary line must appear exactly once,
every judged output must have its line, and the sample count must be the reference's own (a run cut short
fails).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "Coverage",
    "RandomRunOutput",
    "ResetSpec",
    "StimulusPlan",
    "plan_stimulus",
    "random_testbench",
    "parse_random_output",
    "parse_given_output",
    "TestbenchOutputError",
    "reference_constants",
    "tag_displays",
    "tagged_lines",
]

_CLOCK_NAME = re.compile(r"clk|clock|^ck$|_ck$", re.IGNORECASE)
_RESET_NAME = re.compile(r"rst|reset|^clr|clear|^ar$", re.IGNORECASE)
_ACTIVE_LOW = re.compile(r"(_n|_b|_l|n|b)$|^n_?(rst|reset)|^(rst|reset)n", re.IGNORECASE)
RESET_EVERY = 64  # a reset pulse on about one cycle in this many: measured in benchmarks/bench_reset.py
# The random stimulus's rules, by version: a verdict records the one that made it (2: reset also pulses in
# the middle cycle). Raise it with any change to what the random testbench drives.
STIMULUS = 2
_CONSTANT_EVERY = 4  # a data input takes one of the reference's constants on about one vector in this many
_LITERAL = re.compile(r"\b(\d+)?\s*'[sS]?([bBoOdDhH])\s*([0-9a-fA-F_]+)\b|(?<![\w'$.])(\d+)\b")
_RADIX = {"b": 2, "o": 8, "d": 10, "h": 16}


class TestbenchOutputError(ValueError):
    """The simulation output is not what the harness prints: missing, duplicated or forged verdict lines."""

    __test__ = False  # not a pytest class


_DISPLAY_STRING = re.compile(r'(\$(?:display|write|strobe|monitor)[bho]?\s*\(\s*")((?:[^"\\\n]|\\.)*)"')


def tag_displays(text: str, tag: str) -> str:
    """Wrap every string that `text` (trusted harness code) prints with
    `$display`/`$write`/`$strobe`/`$monitor` in `tag`: `"<tag>...<tag>"`, with a pair around each `\\n` escape
    too, so each printed line of the harness's own text is delimited by tags. `tag` must be letters and digits
    (it must not change a format string)."""
    if not re.fullmatch(r"[A-Za-z0-9]{16,}", tag):
        raise ValueError("tag must be at least 16 letters or digits")

    def wrap(match: re.Match) -> str:
        body = re.sub(
            r"\\.", lambda e: f"{tag}\\n{tag}" if e.group(0) == "\\n" else e.group(0), match.group(2)
        )
        return f'{match.group(1)}{tag}{body}{tag}"'

    return _DISPLAY_STRING.sub(wrap, text)


def tagged_lines(output: str, tag: str) -> tuple[list[str], list[str]]:
    """(the harness's lines: on each output line that carries `tag`, the text between pairs of tags joined;
    the other lines). Text outside the pairs is someone else's and is dropped, as is an unpaired tag's tail.
    """
    ours, others = [], []
    for line in output.splitlines():
        if tag in line:
            parts = line.split(tag)
            ours.append("".join(parts[i] for i in range(1, len(parts) - 1, 2)))
        else:
            others.append(line)
    return ours, others


@dataclass(frozen=True)
class ResetSpec:
    """An inferred reset input: its name, whether it is active low, whether it acts asynchronously."""

    name: str
    active_low: bool
    asynchronous: bool

    @property
    def active(self) -> str:
        return "1'b0" if self.active_low else "1'b1"

    @property
    def inactive(self) -> str:
        return "1'b1" if self.active_low else "1'b0"


@dataclass(frozen=True)
class StimulusPlan:
    """How each input of a design is driven: clocks, resets, and the random data inputs."""

    clocks: tuple[str, ...]
    resets: tuple[ResetSpec, ...]
    data: tuple[str, ...]

    @property
    def sequential(self) -> bool:
        return bool(self.clocks)


def plan_stimulus(inputs: Sequence[str], edge_events: Mapping[str, Iterable[str]]) -> StimulusPlan:
    """Classify input names into clocks, resets and data from names and their use in edge events.

    Args:
        inputs: the design's input port names.
        edge_events: input name -> {"posedge", "negedge"} it is used with in event controls.

    Example:
    ```python
    >>> plan = plan_stimulus(["clk", "rst_n", "d"], {"clk": {"posedge"}, "rst_n": {"negedge"}})
    >>> plan.clocks, plan.resets, plan.data
    (('clk',), (ResetSpec(name='rst_n', active_low=True, asynchronous=True),), ('d',))

    ```
    """
    edged = {name: set(edges) for name, edges in edge_events.items() if name in inputs and edges}
    reset_names = [n for n in inputs if _RESET_NAME.search(n) and not _CLOCK_NAME.search(n)]
    clocks = [n for n in inputs if n in edged and _CLOCK_NAME.search(n) and n not in reset_names]
    if not clocks:  # an edge-triggered design whose clock is not named like one
        clocks = [n for n in inputs if n in edged and n not in reset_names]
    resets = []
    if clocks:
        for name in reset_names:
            edges = edged.get(name, set())
            active_low = edges == {"negedge"} or (edges != {"posedge"} and bool(_ACTIVE_LOW.search(name)))
            resets.append(ResetSpec(name, active_low, bool(edges)))
    driven = set(clocks) | {r.name for r in resets}
    return StimulusPlan(tuple(clocks), tuple(resets), tuple(n for n in inputs if n not in driven))


def reference_constants(text: str, limit: int = 64) -> tuple[int, ...]:
    """Distinct integer literals of a reference (first `limit`), used as directed stimulus.

    Random full-width vectors almost never hit the exact values a design compares against (a 16-bit scan
    code, a terminal count); driving them now and then reaches those branches.
    """
    found: dict[int, None] = {}
    for match in _LITERAL.finditer(text):
        _, radix, digits, decimal = match.groups()
        try:
            value = int(decimal) if decimal else int(digits.replace("_", ""), _RADIX[radix.lower()])
        except ValueError:
            continue
        for near in (value, value - 1, value + 1):
            if near >= 0:
                found.setdefault(near, None)
        if len(found) >= limit:
            break
    return tuple(found)[:limit]


def _decl(kind: str, width: int, signed: bool, name: str) -> str:
    vector = f" [{width - 1}:0]" if width > 1 else ""
    return f"  {kind}{' signed' if signed else ''}{vector} {name};"


def _random_value(width: int, seed_var: str) -> str:
    words = max(1, (width + 31) // 32)
    parts = ", ".join(f"$random({seed_var})" for _ in range(words))
    return "{" + parts + "}"


def random_testbench(
    ports: Sequence,
    plan: StimulusPlan,
    reference_module: str,
    candidate_modules: Sequence[str],
    *,
    nonce: str,
    tag: str,
    vectors: int = 1000,
    seed: int = 0,
    constants: Sequence[int] = (),
    reset_every: int = RESET_EVERY,
    directed: Sequence[Mapping[str, int]] | None = None,
) -> str:
    """Verilog source of a co-simulation testbench (top module `salv_tb_<nonce>`).

    Args:
        ports: the reference's ports (objects with `name`, `direction`, `width`, `signed`).
        plan: how inputs are driven ([`plan_stimulus`]).
        reference_module: module name of the reference top.
        candidate_modules: module names of the candidates' tops (already renamed to unique names).
        nonce: per-run random hexadecimal string in the harness's module and instance names.
        tag: per-run secret ([`tag_displays`]) around every line the harness prints; never part of a name.
        vectors: input vectors (combinational) or clock cycles (sequential).
        seed: seed of the stimulus; the same seed gives the same stimulus whatever the candidates.
        constants: values (e.g. [`reference_constants`]) that data inputs take on about one vector in four.
        reset_every: a random reset pulse on about one cycle in this many, besides the middle cycle's (a power
            of two; 0: only the first two cycles). Rarer pulses let deep counters reach their upper states.
        directed: instead of random values, the inputs (data and resets) of each cycle, name -> value;
            `vectors` is then their number, and reset is asserted in cycle 0 whatever is given.
    """
    if not re.fullmatch(r"[0-9a-f]{8,}", nonce):
        raise ValueError("nonce must be at least 8 lowercase hexadecimal digits")
    if reset_every < 0 or reset_every & (reset_every - 1):
        raise ValueError(f"reset_every must be 0 or a power of two, not {reset_every}")
    if directed is not None:
        vectors = len(directed)
    inputs = [p for p in ports if p.direction == "input"]
    outputs = [p for p in ports if p.direction == "output"]
    lines = ["`timescale 1ns/1ps", f"module salv_tb_{nonce};", "  integer seed_var, cycle, samples;"]
    lines += [_decl("reg", p.width, p.signed, f"in_{p.name}") for p in inputs]
    for who in ["ref", *(f"c{k}" for k in range(len(candidate_modules)))]:
        lines += [_decl("wire", p.width, p.signed, f"{who}_{p.name}") for p in outputs]
    errors = [[f"err_{k}_{j}" for j in range(len(outputs))] for k in range(len(candidate_modules))]
    if outputs and candidate_modules:
        lines.append("  integer " + ", ".join(name for row in errors for name in row) + ";")
    # Coverage of each output: the reference's first value with a known bit, whether one was seen, and
    # whether the value ever moved from it.
    lines += [_decl("reg", p.width, p.signed, f"first_{j}") for j, p in enumerate(outputs)]
    if outputs:
        lines.append("  integer " + ", ".join(f"seen_{j}, moved_{j}" for j in range(len(outputs))) + ";")

    def instance(module: str, label: str, who: str) -> str:
        conns = [f".{p.name}(in_{p.name})" for p in inputs] + [f".{p.name}({who}_{p.name})" for p in outputs]
        return f"  {module} salv_{label}_{nonce} (" + ", ".join(conns) + ");"

    lines.append(instance(reference_module, "ref", "ref"))
    lines += [instance(m, f"c{k}", f"c{k}") for k, m in enumerate(candidate_modules)]

    compare = ["samples = samples + 1;"]
    for j, p in enumerate(outputs):
        ref = f"ref_{p.name}"
        compare.append(
            f"if ((|(~({ref} ^ {ref}))) === 1'b1) begin if (seen_{j} == 0) begin first_{j} = {ref}; "
            f"seen_{j} = 1; end else if ({ref} !== first_{j}) moved_{j} = 1; end"
        )
    for k in range(len(candidate_modules)):
        for j, p in enumerate(outputs):
            ref, cand, count = f"ref_{p.name}", f"c{k}_{p.name}", errors[k][j]
            compare.append(
                f"if (({ref} ^ {ref} ^ {ref}) !== ({ref} ^ {cand} ^ {ref})) {count} = {count} + 1;"
            )
    if directed is None:
        data = [_drive(name, _width(inputs, name), constants) for name in plan.data]
    else:
        data = [_directed(directed, plan, inputs)]

    # Progress lines (flushed) let the harness tell a long batch from a hung one; the parser ignores them.
    every = max(1, vectors // 16)
    progress = f'if (cycle % {every} == 0) begin $display("P %0d", cycle); $fflush; end'
    body = [f"seed_var = {int(seed) & 0x7FFFFFFF};", "samples = 0;"]
    body += [f"{name} = 0;" for row in errors for name in row]
    body += [f"seen_{j} = 0; moved_{j} = 0;" for j in range(len(outputs))]
    if plan.sequential:
        body += [f"in_{c} = 1'b0;" for c in plan.clocks]
        body += ["cycle = 0;"] + data if directed is not None else data
        body += [f"in_{r.name} = {r.active};" for r in plan.resets]
        body += [f"for (cycle = 0; cycle < {vectors}; cycle = cycle + 1) begin", "  " + progress, "  #2;"]
        body += ["  " + d for d in data]
        if plan.resets and directed is not None:  # the formal model's reset: asserted in cycle 0 only
            body.append("  if (cycle == 0) begin")
            body += [f"    in_{r.name} = {r.active};" for r in plan.resets]
            body.append("  end")
        elif plan.resets:
            # Hold reset for two cycles, pulse it in the middle cycle (a run of 200 cycles at one pulse in 256
            # would often never reset a register holding a value: found by the tiny reproduction, where
            # asynchronous resets for synchronous ones passed) and at random moments. Whether a cycle draws
            # (`||` may skip it) depends only on the cycle's number: the same stimulus for every candidate.
            pulse = (
                f"cycle == {vectors // 2} || ($random(seed_var) & {reset_every - 1}) == 0"
                if reset_every
                else "$random(seed_var) & 0"
            )
            body.append(f"  if (cycle < 2 || {pulse}) begin")
            body += [f"    in_{r.name} = {r.active};" for r in plan.resets]
            body.append("  end else begin")
            body += [f"    in_{r.name} = {r.inactive};" for r in plan.resets]
            body.append("  end")
        body += ["  #2;"] + ["  " + c for c in compare]
        body += ["  #1;"] + [f"  in_{c} = 1'b1;" for c in plan.clocks]
        body += ["  #4;"] + ["  " + c for c in compare]
        body += ["  #1;"] + [f"  in_{c} = 1'b0;" for c in plan.clocks]
        body.append("end")
    else:
        body += [f"for (cycle = 0; cycle < {vectors}; cycle = cycle + 1) begin", "  " + progress]
        # Compare 7 units after the change: off the multiples of 5 where free-running generators toggle.
        body += ["  " + d for d in data] + ["  #7;"] + ["  " + c for c in compare] + ["  #3;", "end"]
    for k in range(len(candidate_modules)):
        for j in range(len(outputs)):
            body.append(f'$display("%0d %0d %0d %0d", {k}, {j}, {errors[k][j]}, samples);')
    body += [f'$display("R %0d %0d %0d", {j}, seen_{j}, moved_{j});' for j in range(len(outputs))]
    body.append('$display("END");')
    body.append("$finish;")
    lines += ["  initial begin"] + ["    " + b for b in body] + ["  end", "endmodule", ""]
    return tag_displays("\n".join(lines), tag)


def _drive(name: str, width: int, constants: Sequence[int]) -> str:
    """A statement giving input `name` a random value, or now and then one of the `constants` that fit."""
    random_value = f"in_{name} = {_random_value(width, 'seed_var')};"
    fitting = [c for c in constants if c < (1 << width)]
    if not fitting:
        return random_value
    cases = " ".join(f"{i}: in_{name} = {width}'d{c};" for i, c in enumerate(fitting))
    pick = f"$unsigned($random(seed_var)) % {len(fitting) * _CONSTANT_EVERY}"
    return f"case ({pick}) {cases} default: {random_value} endcase"


def _directed(directed: Sequence[Mapping[str, int]], plan: StimulusPlan, inputs: Sequence) -> str:
    """A `case (cycle)` statement giving every data and reset input its value of each cycle."""
    driven = [*plan.data, *(r.name for r in plan.resets)]
    arms = []
    for cycle, values in enumerate(directed):
        sets = " ".join(f"in_{n} = {_width(inputs, n)}'d{int(values.get(n, 0))};" for n in driven)
        arms.append(f"{cycle}: begin {sets} end")
    return "case (cycle) " + " ".join(arms) + " default: ; endcase"


def _width(ports: Sequence, name: str) -> int:
    return next(p.width for p in ports if p.name == name)


@dataclass(frozen=True)
class Coverage:
    """What a run saw of one reference output: a known bit at some sample, and a change of value."""

    known: bool
    moved: bool

    @property
    def active(self) -> bool:
        """The output took known values and moved: a run that matched it constrained something."""
        return self.known and self.moved


@dataclass(frozen=True)
class RandomRunOutput:
    """A [`random_testbench`] run's report: per candidate, output name -> (mismatches, samples); per output,
    the reference's [`Coverage`]."""

    counts: list[dict[str, tuple[int, int]]]
    coverage: dict[str, Coverage]


def parse_random_output(
    output: str, tag: str, candidates: int, outputs: Sequence[str], samples: int
) -> RandomRunOutput:
    """The [`RandomRunOutput`] of a [`random_testbench`] run, read from what it printed.

    Args:
        output: what the simulation printed.
        tag: the run's tag.
        candidates, outputs: how many candidates, and the output names, the testbench judged.
        samples: the samples every line must report (`vectors`, or `2 * vectors` for sequential designs).

    Raises:
        TestbenchOutputError: when any expected line is missing or appears twice, reports another sample
            count, or the end line is not there exactly once (the run died or was ended early).
    """
    seen: dict[tuple[int, int], tuple[int, int]] = {}
    coverage: dict[int, Coverage] = {}
    ends = 0
    pattern = re.compile(r"(\d+) (\d+) (\d+) (\d+)")
    for line in tagged_lines(output, tag)[0]:
        if line == "END":
            ends += 1
            continue
        if line.startswith("P "):
            continue
        if match := re.fullmatch(r"R (\d+) ([01]) ([01])", line):
            j = int(match.group(1))
            if j in coverage or j >= len(outputs):
                raise TestbenchOutputError(f"duplicate or unexpected coverage line {line[:80]!r}")
            coverage[j] = Coverage(match.group(2) == "1", match.group(3) == "1")
            continue
        match = pattern.fullmatch(line)
        if not match:
            raise TestbenchOutputError(f"malformed harness line {line[:80]!r}")
        k, j, errors, counted = map(int, match.groups())
        if (k, j) in seen or k >= candidates or j >= len(outputs):
            raise TestbenchOutputError(f"duplicate or unexpected harness line {line[:80]!r}")
        if counted != samples:
            raise TestbenchOutputError(f"the run compared {counted} samples, not {samples}: it was cut short")
        seen[(k, j)] = (errors, counted)
    if ends != 1:
        raise TestbenchOutputError("the simulation did not finish" if ends == 0 else "duplicate end line")
    if len(seen) != candidates * len(outputs) or len(coverage) != len(outputs):
        missing = candidates * len(outputs) - len(seen) + len(outputs) - len(coverage)
        raise TestbenchOutputError(f"{missing} verdict or coverage lines missing")
    return RandomRunOutput(
        [{name: seen[(k, j)] for j, name in enumerate(outputs)} for k in range(candidates)],
        {name: coverage[j] for j, name in enumerate(outputs)},
    )


_ERROR_CTN = re.compile(r"^\s*(\S+) error ctn: (\d+)\s*$")
_HINT = re.compile(r"^Hint: Output '([^']*)' has (no|\d+) mismatch")
_SUMMARY = re.compile(r"^Mismatches: (\d+) in (\d+) samples\s*$")


def parse_given_output(
    output: str, tag: str, outputs: Sequence[str], samples: int | None = None
) -> dict[str, tuple[int, int]]:
    """Output name -> (mismatches, samples) from a given testbench's output (seed or VerilogEval v2 format).

    Only the testbench's own lines count (its strings tagged with [`tag_displays`]). Samples are taken from
    VerilogEval's `Mismatches: N in M samples` line; they are 0 where the testbench does not report them (seed
    format). Lines about names outside `outputs` are ignored.

    Args:
        output: what the simulation printed.
        tag: the tag the testbench's strings were wrapped in.
        outputs: the outputs judged: each must have its line.
        samples: the sample count of the reference's own run, which the summary line must repeat (None: the
            reference's run itself, or a format without a summary line).

    Raises:
        TestbenchOutputError: an output without its line, a signal line or the summary line twice, or another
            sample count than the reference's.
    """
    counts: dict[str, int] = {}
    summaries = []
    for line in tagged_lines(output, tag)[0]:
        match = _ERROR_CTN.match(line) or _HINT.match(line)
        if match:
            name, value = match.groups()
            if name not in outputs:
                continue
            if name in counts:
                raise TestbenchOutputError(f"verdict line for {name!r} appears twice")
            counts[name] = 0 if value == "no" else int(value)
        elif match := _SUMMARY.match(line):
            summaries.append((int(match.group(1)), int(match.group(2))))
    if len(summaries) > 1:
        raise TestbenchOutputError("the summary line appears twice")
    missing = [name for name in outputs if name not in counts]
    if missing:
        raise TestbenchOutputError(f"no verdict line for {', '.join(missing)} in the testbench output")
    counted = summaries[0][1] if summaries else 0
    if samples is not None and counted != samples:
        raise TestbenchOutputError(f"the run compared {counted} samples, the reference's run {samples}")
    return {name: (count, counted) for name, count in counts.items()}
