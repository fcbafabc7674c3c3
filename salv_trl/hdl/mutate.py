"""Single-output mutants: change the driver of exactly one output (an operator, a constant, a condition).

Used to test signal-level verification (a mutant of output `o` must be judged wrong on `o` and right on the
others), and to make negative examples for data pipelines and evaluation.

A mutation site must lie in the *exclusive* part of the output's driver: the statements in the output's core
slice ([`salv_trl.hdl.slicing.slice_signals`]) that no other output's core slice contains. A change there can
only reach the mutated output. Outputs whose whole driver is shared (e.g. a counter register that also feeds
a flag output) get no mutants.

```python
>>> from salv_trl.hdl.mutate import mutants
>>> text = "module m(input [3:0] a, b, output [3:0] s, d); assign s = a + b; assign d = a - b; endmodule"
>>> [(m.output, m.kind, m.description) for m in mutants(text)]
[('s', 'operator', "'+' -> '-'"), ('d', 'operator', "'-' -> '+'")]

```
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from pyslang import syntax as pysyntax

from .parse import find_nodes
from .slicing import slice_signals
from .source import load_source

__all__ = ["Mutant", "mutants", "MUTATION_KINDS"]

Kind = pysyntax.SyntaxKind
MUTATION_KINDS = ("operator", "constant", "condition")

_OPERATOR_SWAP = {
    "+": "-",
    "-": "+",
    "*": "+",
    "&": "|",
    "|": "&",
    "^": "|",
    "~^": "^",
    "^~": "^",
    "&&": "||",
    "||": "&&",
    "==": "!=",
    "!=": "==",
    "===": "!==",
    "!==": "===",
    "<": ">=",
    ">=": "<",
    ">": "<=",
    "<=": ">",
    "<<": ">>",
    ">>": "<<",
    "<<<": ">>>",
    ">>>": "<<<",
}
_BINARY_KINDS = tuple(
    getattr(Kind, name)
    for name in (
        "AddExpression",
        "SubtractExpression",
        "MultiplyExpression",
        "BinaryAndExpression",
        "BinaryOrExpression",
        "BinaryXorExpression",
        "BinaryXnorExpression",
        "LogicalAndExpression",
        "LogicalOrExpression",
        "EqualityExpression",
        "InequalityExpression",
        "CaseEqualityExpression",
        "CaseInequalityExpression",
        "LessThanExpression",
        "LessThanEqualExpression",
        "GreaterThanExpression",
        "GreaterThanEqualExpression",
        "LogicalShiftLeftExpression",
        "LogicalShiftRightExpression",
        "ArithmeticShiftLeftExpression",
        "ArithmeticShiftRightExpression",
    )
)
_HEX_FLIP = str.maketrans("0123456789abcdefABCDEF", "1032547698badcfeBADCFE")


@dataclass(frozen=True)
class Mutant:
    """A mutated text and what changed.

    Attributes:
        text: the whole mutated source.
        output: the output whose driver was changed.
        kind: "operator", "constant" or "condition".
        description: the edit, e.g. `"'+' -> '-'"`.
        span: `[start, end)` character span of the edited text in the *original* source.
    """

    text: str
    output: str
    kind: str
    description: str
    span: tuple[int, int]


def mutants(
    text: str,
    top: str | None = None,
    *,
    per_output: int | None = None,
    kinds: tuple[str, ...] = MUTATION_KINDS,
    seed: int = 0,
) -> list[Mutant]:
    """Single-output mutants of the top module of `text`, output by output in port order.

    Args:
        text: Verilog source.
        top: its top module (inferred when None).
        per_output: at most this many mutants per output, drawn with `seed` (None: all sites).
        kinds: which mutation kinds to produce.
        seed: seed of the draw when `per_output` limits the count.

    Raises:
        VerilogInputError: the text cannot be parsed at all.
    """
    slices = slice_signals(text, top)
    sites = _sites(text, kinds)
    found: list[Mutant] = []
    for output, piece in slices.items():
        others = [span for name, other in slices.items() if name != output for span in other.core_spans]
        exclusive = _subtract(piece.core_spans, others)
        chosen = [site for site in sites if any(a <= site[0] and site[1] <= b for a, b in exclusive)]
        if per_output is not None and len(chosen) > per_output:
            chosen = sorted(random.Random(f"{seed}:{output}").sample(chosen, per_output))
        for start, end, replacement, kind in chosen:
            description = f"{text[start:end]!r} -> {replacement!r}"
            found.append(
                Mutant(text[:start] + replacement + text[end:], output, kind, description, (start, end))
            )
    return found


def _subtract(spans: list[tuple[int, int]], removed: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of `spans` that no span of `removed` covers."""
    result = []
    for start, end in spans:
        pieces = [(start, end)]
        for r_start, r_end in removed:
            pieces = [
                part
                for a, b in pieces
                for part in ((a, min(b, r_start)), (max(a, r_end), b))
                if part[0] < part[1]
            ]
        result += pieces
    return result


def _sites(text: str, kinds: tuple[str, ...]) -> list[tuple[int, int, str, str]]:
    """Every single edit the mutation kinds allow: (start, end, replacement, kind), in source order."""
    source = load_source(text)
    root = source.tree.root
    sites = []
    if "operator" in kinds:
        for node in find_nodes(root, *_BINARY_KINDS):
            start, end = source.span(node.operatorToken)
            swapped = _OPERATOR_SWAP.get(text[start:end])
            if swapped:
                sites.append((start, end, swapped, "operator"))
    if "constant" in kinds:
        for node in find_nodes(root, Kind.IntegerVectorExpression):
            start, end = source.span(node.value)
            digits = text[start:end]
            if digits and digits[-1] in "0123456789abcdefABCDEF":
                sites.append((end - 1, end, digits[-1].translate(_HEX_FLIP), "constant"))
        for node in find_nodes(root, Kind.IntegerLiteralExpression):
            start, end = source.span(node)
            if text[start:end].isdigit():
                sites.append((start, end, str(int(text[start:end]) ^ 1), "constant"))
    if "condition" in kinds:
        for node in find_nodes(root, Kind.ConditionalExpression, Kind.ConditionalStatement):
            predicate = node.predicate
            start, end = source.span(predicate)
            if end > start:
                sites.append((start, end, f"!({text[start:end]})", "condition"))
    return sorted(set(sites))
