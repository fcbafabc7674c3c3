"""Single-output mutants: one output's driver changes, and only where no other output depends on it."""

from __future__ import annotations

import pytest

from salv_trl.hdl.mutate import mutants
from salv_trl.hdl.parse import parse
from salv_trl.hdl.verify import Status, VerifyJob, verify_many

DESIGN = """module m(input clk, input [3:0] a, b, output reg [3:0] q, output z, output [3:0] s);
wire [3:0] t = a + b;
always @(posedge clk) if (a > b) q <= q + 4'd1;
assign z = q == 0;
assign s = a[0] ? t ^ 4'b0011 : 4'hf;
endmodule"""


def test_mutants_only_touch_the_exclusive_driver_of_their_output():
    found = mutants(DESIGN)
    assert {m.output for m in found} == {"z", "s"}  # q's driver is shared with z, so q gets none
    for mutant in found:
        start, end = mutant.span
        assert mutant.text[:start] == DESIGN[:start]
        assert mutant.text != DESIGN and mutant.kind in ("operator", "constant", "condition")
        parse(mutant.text)  # every mutant still parses
    z_edits = {m.description for m in found if m.output == "z"}
    assert z_edits == {"'==' -> '!='", "'0' -> '1'"}
    assert {m.kind for m in found if m.output == "s"} == {"operator", "constant", "condition"}


def test_per_output_limit_is_seeded():
    first = mutants(DESIGN, per_output=1, seed=3)
    assert first == mutants(DESIGN, per_output=1, seed=3)
    assert len(first) == 2 and {m.output for m in first} == {"z", "s"}


def test_kinds_filter():
    assert all(m.kind == "condition" for m in mutants(DESIGN, kinds=("condition",)))


def test_mutants_are_caught_on_their_output():
    jobs = [VerifyJob(m.text, DESIGN, vectors=200) for m in mutants(DESIGN)]
    for mutant, verdict in zip(mutants(DESIGN), verify_many(jobs, workers=1, progress=False), strict=True):
        assert verdict.status == Status.ok
        wrong = {name for name, v in verdict.signals.items() if v.wrong}
        assert wrong in (set(), {mutant.output}), (mutant.description, wrong)


def test_unparseable_text_raises():
    with pytest.raises(ValueError):
        mutants("")
