"""The pyslang front end: diagnostics, top module, interface, bad inputs, module renaming."""

from __future__ import annotations

import pytest
from conftest import reference_designs, requires_benchmarks

from salv_trl.hdl.parse import module_spans, parse, rename_modules
from salv_trl.hdl.source import VerilogInputError, load_source, uses_macros

DESIGN = """`define W 4
module tb; reg clk; dut u(.c(clk)); initial $finish; endmodule
module dut #(parameter N = `W, localparam K = N*2) (input c, input rst, input signed [N-1:0] d,
    output reg [0:3] q, output y);
  inner i(.ck(c), .r(rst));
  assign y = d[0];
  always @(posedge c) q <= d + K;
endmodule
module inner(input ck, input r); reg z; always @(negedge ck or posedge r) z <= 1; endmodule
"""


def test_interface_parameters_and_edges():
    design = parse(DESIGN)
    assert design.top == "dut"
    assert design.modules == ["tb", "dut", "inner"]
    ports = {port.name: port for port in design.interface.ports}
    assert [port.name for port in design.interface.ports] == ["c", "rst", "d", "q", "y"]
    assert (ports["d"].width, ports["d"].signed, ports["d"].msb, ports["d"].lsb) == (4, True, 3, 0)
    assert (ports["q"].direction, ports["q"].msb, ports["q"].lsb) == ("output", 0, 3)
    assert [p.name for p in design.interface.outputs] == ["q", "y"]
    assert [(p.name, p.default, p.value, p.local) for p in design.interface.parameters] == [
        ("N", "`W", 4, False),
        ("K", "N*2", 8, True),
    ]
    assert design.interface.edge_events == {"c": {"posedge", "negedge"}, "rst": {"posedge"}}
    assert not design.errors


def test_explicit_top_and_unknown_top():
    assert parse(DESIGN, top="inner").interface.inputs[0].name == "ck"
    with pytest.raises(VerilogInputError, match="not found"):
        parse(DESIGN, top="nope")


def test_testbench_never_top_even_first_and_alone_candidate():
    text = (
        "module test_top; top_m u(); endmodule\nmodule helper(input a, output b); assign b=a; endmodule\n"
        "module top_m(input a, output b); helper h(a, b); endmodule"
    )
    assert parse(text).top == "top_m"


def test_non_ansi_ports():
    design = parse(
        "module m(a, b, y); input [7:0] a; input b; output reg y; always @* y = a[0] & b; endmodule"
    )
    assert [(p.name, p.direction, p.width) for p in design.interface.ports] == [
        ("a", "input", 8),
        ("b", "input", 1),
        ("y", "output", 1),
    ]


def test_diagnostics_have_line_column_severity():
    design = parse("module m(input a, output y);\n  assign y = a\nendmodule\n")
    assert design.errors
    error = design.errors[0]
    assert error.severity == "error" and error.line >= 2 and error.column >= 1 and error.message


def test_unicode_offsets_are_characters():
    text = "// héllo ✓ ünïcode\nmodule m(input a, output y);\n  assign y = a\nendmodule\n"
    error = parse(text).errors[0]
    assert error.line in (3, 4)
    spans = module_spans(text)["m"]
    assert (
        text[spans.start : spans.end].startswith("module m")
        and text[spans.end - 9 : spans.end] == "endmodule"
    )
    assert text[spans.name_start : spans.name_end] == "m"


def test_verilog_2001_keywords_as_names_fall_back():
    design = parse("module m(input [3:0] logic, output [3:0] int);\n  assign int = logic;\nendmodule\n")
    assert not design.errors
    assert [p.name for p in design.interface.ports] == ["logic", "int"]
    assert any("Verilog-2005" in warning for warning in design.warnings)


def test_fallback_keeps_locations_exact():
    text = "module m(input bit, output y);\n  assign y = bit\nendmodule\n"
    error = parse(text).errors[0]
    assert (error.line, error.column) == (2, len("  assign y = bit") + 1)  # just after `bit`


@pytest.mark.timeout(20)
@pytest.mark.parametrize("path", ["/dev/zero", "/etc/passwd", "<stdin>"])
def test_include_directives_are_blanked_not_followed(path):
    quoted = path if path.startswith("<") else f'"{path}"'
    text = f"`include {quoted}\nmodule m(input a, output y); assign y = a; endmodule\n"
    design = parse(text)
    assert design.top == "m" and not design.errors
    assert any("include" in warning for warning in design.warnings)
    assert module_spans(text)["m"].start == text.index("module")


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty"),
        ("  \n\t", "empty"),
        ("module m(input a, output y);\0 assign y = a; endmodule", "NUL"),
        (
            "module m(input a, output y); assign y = " + "(" * 3000 + "a" + ")" * 3000 + "; endmodule",
            "nested",
        ),
        ("module m(input a, output reg y); always @* " + "if (a) " * 3000 + "y = a; endmodule", "nested"),
        ("// only a comment\n", "no module"),
        ("module m(input a, output y); assign y = a; endmodule\udcff", "Unicode"),
    ],
)
def test_bad_inputs_raise_clear_errors(text, message):
    with pytest.raises(VerilogInputError, match=message):
        parse(text)


def test_load_source_refuses_non_text():
    with pytest.raises(VerilogInputError):
        load_source(b"module m; endmodule")  # type: ignore[arg-type]


def test_rename_modules_renames_declarations_and_instances_only():
    text = (
        'module a(input x); // module a here\n  b u(); initial $display("a b"); endmodule : a\n'
        "module b; a q(.x(1'b0)); endmodule\n"
    )
    renamed = rename_modules(text, {"a": "a_1", "b": "B"})
    assert renamed == (
        'module a_1(input x); // module a here\n  B u(); initial $display("a b"); endmodule : a_1\n'
        "module B; a_1 q(.x(1'b0)); endmodule\n"
    )
    assert parse(renamed).modules == ["a_1", "B"]
    with pytest.raises(VerilogInputError):
        rename_modules(text, {"a": "not valid"})


@requires_benchmarks
def test_every_reference_parses_cleanly():
    failures = []
    for design in reference_designs():
        parsed = parse(design.text, top=design.top)
        if parsed.errors or not parsed.interface.outputs:
            failures.append((design.name, [str(e) for e in parsed.errors[:2]]))
    assert not failures, failures


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    "text",
    [
        "`define A1 x x\n"
        + "".join(f"`define A{i + 1} `A{i} `A{i}\n" for i in range(1, 40))
        + "module m(input a, output y); assign y = `A40; endmodule",
        "`define D(x) x x\nmodule m(input a, output y); assign y = "
        + "`D(" * 60
        + "a"
        + ")" * 60
        + "; endmodule",
        "`define D(x) x x\nmodule m(input a, output y); assign y = "
        + "`D(" * 15
        + "a+" * 200_000
        + "a"
        + ")" * 15
        + "; endmodule",
    ],
    ids=["chained", "nested_arguments", "long_argument"],
)
def test_macro_bombs_are_refused_not_expanded(text):
    with pytest.raises(VerilogInputError, match="macros would expand"):
        parse(text)


def test_ordinary_macros_are_accepted():
    text = (
        "`define MAX(a, b) ((a) > (b) ? (a) : (b))\n`define W 4\n"
        "module m(input [`W-1:0] a, b, c, output [`W-1:0] y);\n"
        "  assign y = `MAX(`MAX(a, b), `MAX(b, c));\nendmodule\n"
    )
    assert not parse(text).errors


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("`timescale 1ns/1ps\n`default_nettype none\nmodule m; endmodule\n`resetall", False),
        ("module m; endmodule", False),
        ("`define W 4\nmodule m; endmodule", True),
        ("module m; wire [`W:0] a; endmodule", True),
        ("`timescale$x 1ns/1ps", True),  # `$` continues a name: this is a macro, not `timescale
        ("`timescalex", True),
        ("` timescale", True),  # a backtick that starts no name at all
    ],
)
def test_a_text_uses_macros_unless_every_backtick_starts_a_plain_directive(text, expected):
    """One rule, read by the screen (whether to expand before screening again) and the parser (whether a
    location may lie inside a macro expansion)."""
    assert uses_macros(text) is expected
    assert load_source(text).macros is expected
