"""Per-output slices, construct by construct: kept and dropped statements, renders that simulate alike."""

from __future__ import annotations

import gc
import random
import shutil

import pytest

from salv_trl.hdl.parse import parse
from salv_trl.hdl.slicing import slice_signals
from salv_trl.hdl.source import VerilogInputError

# name -> (text, top, {output: (substrings kept in the render, substrings dropped from it)})
CASES: dict[str, tuple[str, str | None, dict[str, tuple[list[str], list[str]]]]] = {
    "assign_and_intermediate": (
        """module m(input a, b, c, output y, output z);
  wire t = a & b;
  wire u;
  assign u = ~c;
  assign y = t | a;
  assign z = u;
endmodule""",
        None,
        {
            "y": (["wire t = a & b;", "assign y"], ["assign u", "wire u", "assign z"]),
            "z": (["assign u = ~c;", "wire u;", "assign z"], ["wire t", "assign y"]),
        },
    ),
    "comb_case_keeps_all_labels": (
        """module m(input [1:0] sel, input [3:0] a, b, output reg [3:0] y, output reg v);
  always @(*) begin
    v = 1'b0;
    case (sel)
      2'd0: y = a;
      2'd1: begin y = b; v = 1'b1; end
      2'd2: v = 1'b1;
      default: y = 4'd0;
    endcase
  end
endmodule""",
        None,
        {
            "y": (["2'd0: y = a;", "y = b;", "2'd2: ;", "default: y = 4'd0;"], ["v = 1'b0", "v = 1'b1"]),
            "v": (["v = 1'b0;", "2'd0: ;", "v = 1'b1;", "2'd2: v = 1'b1;", "default: ;"], ["y = a", "y = b"]),
        },
    ),
    "clocked_with_async_reset": (
        """module m(input clk, rst, en, input [3:0] d, output reg [3:0] q, output reg [3:0] n);
  always @(posedge clk or posedge rst)
    if (rst) begin
      q <= 4'd0;
      n <= 4'd0;
    end else if (en) begin
      q <= d;
      n <= n + 4'd1;
    end
endmodule""",
        None,
        {
            "q": (
                ["always @(posedge clk or posedge rst)", "q <= 4'd0;", "else if (en)", "q <= d;"],
                ["n <="],
            ),
            "n": (["n <= 4'd0;", "n <= n + 4'd1;"], ["q <="]),
        },
    ),
    "concatenation_lvalue": (
        """module m(input [3:0] a, b, output [3:0] s, output c, output p);
  assign {c, s} = a + b;
  assign p = ^a;
endmodule""",
        None,
        {
            "s": (["assign {c, s} = a + b;"], ["assign p"]),
            "c": (["assign {c, s}"], ["assign p"]),
            "p": (["assign p = ^a;"], ["assign {c, s}"]),
        },
    ),
    "bit_and_part_selects": (
        """module m(input a, b, input [7:0] d, output y, output [3:0] z, output w);
  wire [1:0] t;
  assign t[0] = a;
  assign t[1] = b;
  assign y = t[1];
  assign z = d[7:4];
  assign w = d[0];
endmodule""",
        None,
        {
            "y": (["assign t[0] = a;", "assign t[1] = b;", "assign y"], ["assign z", "assign w"]),
            "z": (["assign z = d[7:4];"], ["assign t[0]", "assign w"]),
        },
    ),
    "submodule_sliced_through_ports": (
        """module top(input i1, i2, clk, output o1, output o2);
  wire p, q;
  two u (.a(i1), .b(i2), .clk(clk), .x(p), .y(q));
  assign o1 = p;
  assign o2 = ~q;
endmodule
module two(input a, b, clk, output x, output reg y);
  assign x = ~a;
  always @(posedge clk) y <= b;
endmodule""",
        "top",
        {
            "o1": (["two u", "module two", "assign o1 = p;", "assign x = ~a;"], ["assign o2", "y <= b"]),
            "o2": (
                ["two u", "module two", "assign o2 = ~q;", "always @(posedge clk) y <= b;"],
                ["assign o1", "assign x"],
            ),
        },
    ),
    "ordered_connections_and_param_override": (
        """module top #(parameter W = 4) (input [W-1:0] a, b, output [W-1:0] s, output [W-1:0] d);
  localparam K = 1;
  addsub #(.N(W), .SUB(0)) add (a, b, s);
  addsub #(W, K) sub (a, b, d);
endmodule
module addsub #(parameter N = 2, parameter SUB = 0) (input [N-1:0] x, y, output [N-1:0] r);
  assign r = SUB ? x - y : x + y;
endmodule""",
        "top",
        {
            "s": (["addsub #(.N(W), .SUB(0)) add"], ["sub (a, b, d)", "localparam K"]),
            "d": (["localparam K = 1;", "addsub #(W, K) sub"], ["add (a, b, s)"]),
        },
    ),
    "generate_loop": (
        """module m(input [3:0] a, input b, output [3:0] y, output z);
  genvar i;
  generate
    for (i = 0; i < 4; i = i + 1) begin : g
      assign y[i] = ~a[i];
    end
  endgenerate
  assign z = b;
endmodule""",
        None,
        {
            "y": (["genvar i;", "for (i = 0; i < 4; i = i + 1)", "assign y[i] = ~a[i];"], ["assign z"]),
            "z": (["assign z = b;"], ["genvar", "generate", "assign y[i]"]),
        },
    ),
    "generate_if_on_parameter": (
        """module m #(parameter INV = 1) (input a, b, output y, output z);
  if (INV) begin : inv
    assign y = ~a;
  end else begin : pass
    assign y = a;
  end
  assign z = b;
endmodule""",
        None,
        {
            "y": (["if (INV)", "assign y = ~a;", "assign y = a;"], ["assign z"]),
            "z": (["assign z = b;"], ["if (INV)"]),
        },
    ),
    "function_and_task": (
        """module m(input clk, input [3:0] a, b, output [3:0] y, output reg [3:0] q, output reg r);
  function [3:0] inc(input [3:0] v);
    inc = v + 4'd1;
  endfunction
  task clear;
    begin q <= 4'd0; end
  endtask
  assign y = inc(a);
  always @(posedge clk) begin
    if (b == 4'd0) clear; else q <= b;
    r <= a[0];
  end
endmodule""",
        None,
        {
            "y": (["function [3:0] inc", "assign y = inc(a);"], ["task clear", "q <= b"]),
            "q": (["task clear", "clear;", "q <= b;"], ["function [3:0] inc", "r <= a[0]"]),
            "r": (["r <= a[0];"], ["task clear", "q <= b"]),
        },
    ),
    "parameters_and_localparams": (
        """module m(a, b, y, z);
  parameter W = 4;
  localparam K = 3;
  localparam J = 5;
  input [W-1:0] a, b;
  output [W-1:0] y;
  output [W-1:0] z;
  assign y = a + K;
  assign z = b + J;
endmodule""",
        None,
        {
            "y": (
                ["parameter W = 4;", "localparam K = 3;", "input [W-1:0] a, b;", "assign y"],
                ["localparam J", "assign z"],
            ),
            "z": (["localparam J = 5;", "assign z"], ["localparam K", "assign y"]),
        },
    ),
    "define_macros": (
        """`define ADD(x, y) ((x) + (y))
`define ASG(o, i) assign o = i;
module m(input [3:0] a, b, c, output [3:0] y, output [3:0] z, output [3:0] w);
  assign y = `ADD(a, b);
  `ASG(z, c)
  assign w = c;
endmodule""",
        None,
        {
            "y": (["`define ADD", "assign y = `ADD(a, b);", "`ASG(z, c)"], ["assign w"]),
            "w": (["assign w = c;"], ["assign y"]),
        },
    ),
    "for_loop_in_always": (
        """module m(input [3:0] a, input b, output reg [3:0] y, output reg z);
  integer i;
  always @* begin
    for (i = 0; i < 4; i = i + 1)
      y[i] = a[3 - i];
    z = b;
  end
endmodule""",
        None,
        {
            "y": (["integer i;", "for (i = 0; i < 4; i = i + 1)", "y[i] = a[3 - i];"], ["z = b"]),
            "z": (["z = b;"], ["integer i", "for ("]),
        },
    ),
    "gates_and_non_ansi": (
        """module m(a, b, y, z);
  input a, b;
  output y, z;
  wire n;
  and g1 (n, a, b);
  not g2 (y, n);
  or g3 (z, a, b);
endmodule""",
        None,
        {"y": (["and g1 (n, a, b);", "not g2 (y, n);"], ["or g3"]), "z": (["or g3 (z, a, b);"], ["and g1"])},
    ),
    "blocking_temporaries_and_statement_order": (
        """module m(input clk, input [3:0] a, b, output reg [3:0] q, output reg [3:0] p);
  reg [3:0] t;
  always @(posedge clk) begin
    t = a ^ b;
    q <= t;
    t = a & b;
    p <= t;
  end
endmodule""",
        None,
        {
            "q": (["t = a ^ b;", "q <= t;", "t = a & b;"], ["p <= t"]),
            "p": (["t = a & b;", "p <= t;"], ["q <="]),
        },
    ),
    "systemverilog_fsm": (
        """module TopModule(input clk, input reset, input in, output logic out, output logic [1:0] st);
  typedef enum logic [1:0] {A, B, C} state_t;
  state_t state, next;
  always_comb begin
    next = state;
    unique case (state)
      A: if (in) next = B;
      B: if (in) next = C; else next = A;
      default: next = A;
    endcase
  end
  always_ff @(posedge clk) begin
    if (reset) state <= A;
    else state <= next;
  end
  assign out = (state == C);
  assign st = in ? 2'd1 : 2'd2;
endmodule""",
        None,
        {
            "out": (
                ["typedef enum", "state_t state, next;", "unique case (state)", "state <= next;"],
                ["assign st"],
            ),
            "st": (["assign st"], ["typedef enum", "always_comb", "always_ff"]),
        },
    ),
    "block_locals_and_foreach": (
        """module TopModule(input [7:0] a, output logic [3:0] cnt, output logic par);
  always_comb begin
    int i;
    cnt = 0;
    for (i = 0; i < 8; i++) cnt = cnt + a[i];
  end
  always_comb begin : p
    logic t;
    t = 0;
    foreach (a[k]) t ^= a[k];
    par = t;
  end
endmodule""",
        None,
        {
            "cnt": (["int i;", "for (i = 0; i < 8; i++) cnt = cnt + a[i];"], ["logic t", "par = t"]),
            "par": (["logic t;", "foreach (a[k]) t ^= a[k];", "par = t;"], ["int i", "cnt = 0"]),
        },
    ),
    "control_flow_in_generate": (
        """module m(input clk, input [3:0] a, output reg [3:0] y, output reg z);
  for (genvar g = 0; g < 1; g = g + 1) begin : blk
    always @(posedge clk) begin : body
      integer i;
      y <= 4'd0;
      for (i = 0; i < 4; i = i + 1) begin
        if (a[i]) disable body;
        y <= y + 4'd1;
      end
    end
  end
  always @(posedge clk) z <= a[0];
endmodule""",
        None,
        {
            "y": (["begin : blk", "integer i;", "if (a[i]) disable body;", "y <= y + 4'd1;"], ["z <="]),
            "z": (["z <= a[0];"], ["begin : blk", "disable"]),
        },
    ),
    "timing_controls_inside_a_block": (
        """module m(input clk, input [3:0] d, output reg [3:0] a, output reg [3:0] b);
  always begin
    @(posedge clk) a <= d;
    @(posedge clk) b <= d;
    @(negedge clk) a <= ~d;
  end
endmodule""",
        None,
        {
            "a": (["@(posedge clk) a <= d;", "@(posedge clk) ;", "@(negedge clk) a <= ~d;"], ["b <="]),
            "b": (["@(posedge clk) ;", "@(posedge clk) b <= d;", "@(negedge clk) ;"], ["a <="]),
        },
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_construct_slices(case):
    text, top, expected = CASES[case]
    slices = slice_signals(text, top)
    for output, (kept, dropped) in expected.items():
        rendered = slices[output].render()
        for fragment in kept:
            assert fragment in rendered, (output, fragment, rendered)
        for fragment in dropped:
            assert fragment not in rendered, (output, fragment, rendered)
        assert not parse(rendered, top=top).errors, rendered
        interface, original = parse(rendered, top=top).interface, parse(text, top=top).interface
        assert interface.ports == original.ports
        assert [p for p in interface.parameters if not p.local] == [
            p for p in original.parameters if not p.local
        ]


@pytest.mark.parametrize("case", sorted(CASES))
def test_spans_are_sorted_disjoint_and_cover_core(case):
    text, top, _ = CASES[case]
    for output, piece in slice_signals(text, top).items():
        assert piece.spans == sorted(piece.spans)
        assert all(
            start < end <= next_start
            for (start, end), (next_start, _) in zip(piece.spans, piece.spans[1:], strict=False)
        )
        assert all(0 <= start < end <= len(text) for start, end in piece.spans)
        for start, end in piece.core_spans:
            assert any(s <= start and end <= e for s, e in piece.spans), (start, end)
        covered = "".join(text[s:e] for s, e in piece.spans)
        assert text[piece.spans[0][0] :].startswith(("module", "`define")) and covered.endswith("endmodule")
        assert output not in piece.depends_on


def test_slicing_leaves_no_reference_cycles():
    # What a slice builds is freed as soon as it is dropped: the collector never has to find it (a judge that
    # slices every candidate would otherwise trigger collections over the whole heap).
    gc.collect()
    gc.disable()
    try:
        for case in CASES.values():
            slice_signals(parse(case[0], top=case[1]))
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_core_spans_text():
    text, _, _ = CASES["assign_and_intermediate"]
    slices = slice_signals(text)
    assert [text[s:e] for s, e in slices["z"].core_spans] == ["assign u = ~c;", "assign z = u;"]
    assert [text[s:e] for s, e in slices["y"].core_spans] == ["wire t = a & b;", "assign y = t | a;"]
    assert slices["y"].depends_on == ("a", "b", "t")
    assert slices["z"].depends_on == ("c", "u")


def test_child_port_dependencies_are_precise():
    text, top, _ = CASES["submodule_sliced_through_ports"]
    slices = slice_signals(text, top)
    assert slices["o1"].depends_on == ("i1", "p")
    assert slices["o2"].depends_on == ("clk", "i2", "q")
    core = "".join(text[s:e] for s, e in slices["o1"].core_spans)
    assert "assign x = ~a;" in core and "y <= b" not in core


def test_child_used_for_two_ports_keeps_both_slices():
    text = CASES["submodule_sliced_through_ports"][0]
    text = text.replace("assign o2 = ~q;", "assign o2 = ~q;\n  assign o3 = p ^ q;")
    text = text.replace("output o2);", "output o2, output o3);")
    rendered = slice_signals(text, "top")["o3"].render()
    assert "assign x = ~a;" in rendered and "y <= b;" in rendered and "assign o2" not in rendered


def test_over_approximations_are_warned():
    slices = slice_signals(CASES["define_macros"][0])
    assert any("macro" in warning for warning in slices["y"].warnings)
    text = "module m(input a, output y, output z); blackbox u(.i(a), .o(y)); assign z = a; endmodule"
    slices = slice_signals(text)
    assert any("blackbox" in warning for warning in slices["y"].warnings)
    assert "blackbox u" in slices["y"].render() and "blackbox" not in slices["z"].render()
    assert (
        "never driven"
        in slice_signals("module m(input a, output y, output z); assign z = a; endmodule")["y"].warnings[-1]
    )


def test_testbench_and_unrelated_modules_left_out_of_render():
    text = (
        CASES["submodule_sliced_through_ports"][0] + "\nmodule tb; top dut(); initial $finish; endmodule\n"
        "module spare(input a, output b); assign b = a; endmodule\n"
    )
    slices = slice_signals(text)
    rendered = slices["o1"].render()
    assert "module top" in rendered and "module two" in rendered
    assert "module tb" not in rendered and "module spare" not in rendered


def test_unicode_spans_are_character_offsets():
    text = "// größe ✓\nmodule m(input a, b, output y, output z); // ü\n"
    text += "  assign y = a;\n  assign z = b;\nendmodule\n"
    slices = slice_signals(text)
    assert [text[s:e] for s, e in slices["z"].core_spans] == ["assign z = b;"]


def test_syntax_errors_give_best_effort_slices_with_a_warning():
    slices = slice_signals("module m(input a, output y, output z); assign y = a\n assign z = a; endmodule")
    assert set(slices) == {"y", "z"}
    assert any("syntax errors" in warning for warning in slices["y"].warnings)


@pytest.mark.parametrize("text", ["", "\0", "// nothing here\n"])
def test_bad_input_raises(text):
    with pytest.raises(VerilogInputError):
        slice_signals(text)


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="Icarus Verilog (iverilog) is not installed")
def test_construct_renders_simulate_like_the_original():
    from salv_trl.hdl.verify import VerifyJob, verify_many

    jobs, keys = [], []
    for case, (text, top, _) in sorted(CASES.items()):
        for output, piece in slice_signals(text, top).items():
            jobs.append(VerifyJob(piece.render(), text, top=top, vectors=200))
            keys.append((case, output))
    verdicts = verify_many(jobs, workers=2, progress=False)
    failures = [
        (key, verdict.status.value, verdict.detail[:200])
        for key, verdict in zip(keys, verdicts, strict=True)
        if verdict.status.value != "ok" or not verdict.signals[key[1]].correct
    ]
    assert not failures, failures


@pytest.mark.parametrize("kind", ["else_if_chain", "nested_blocks", "nested_generate"])
def test_deep_nesting_never_crashes(kind):
    depth = 1000
    if kind == "else_if_chain":
        body = "if (a) y = 0; " + "else if (a) y = 1; " * depth
        text = f"module m(input a, output reg y); always @* begin {body} end endmodule"
    elif kind == "nested_blocks":
        text = "module m(input a, output reg y); always @* " + "begin " * depth + "y = a; " + "end " * depth
        text += "endmodule"
    else:
        text = "module m(input a, output y); " + "if (1) begin " * depth + "assign y = a; " + "end " * depth
        text += "endmodule"
    try:
        rendered = slice_signals(text)["y"].render()
    except VerilogInputError as error:
        assert "nested too deeply" in str(error)
    else:
        assert rendered.count("y = ") >= 1


def test_mutated_text_never_crashes():
    rng = random.Random(0)
    fragments = [
        "begin",
        "end",
        "if (",
        "else",
        "case (a)",
        "endcase",
        "assign",
        ";",
        "(",
        ")",
        "{",
        "}",
        ",",
        "`define X",
        "`X",
        "generate",
        "module",
        "endmodule",
        "function",
        ".a(",
        "#(",
        "input",
        "output",
        "wire",
        "reg",
        "genvar",
        "sub u1",
        ".*",
        "@(posedge",
    ]
    texts = [text for text, _, _ in CASES.values()]
    for _ in range(300):
        text = rng.choice(texts)
        for _ in range(rng.randint(1, 4)):
            position = rng.randrange(len(text))
            if rng.random() < 0.5:
                text = text[:position] + rng.choice(fragments) + " " + text[position:]
            else:
                text = text[:position] + text[position + rng.randint(1, 20) :]
        try:
            for piece in slice_signals(text).values():
                piece.render()
        except VerilogInputError:
            pass


def test_spans_include_the_define_directives_the_slice_uses():
    text = (
        "`define ADD(x, y) ((x) + \\\n   (y))\n`define W 4\n`define UNUSED 1\n`define TWO (`W/2)\n"
        "module m(input [`W-1:0] a, b, output [3:0] y, output [3:0] z);\n"
        "  assign y = `ADD(a, b) + `TWO;\n  assign z = a;\nendmodule\n"
    )
    slices = slice_signals(text)
    covered_y = "\n".join(text[s:e] for s, e in slices["y"].spans)
    covered_z = "\n".join(text[s:e] for s, e in slices["z"].spans)
    assert "`define ADD(x, y) ((x) + \\\n   (y))" in covered_y and "`define TWO" in covered_y
    assert "`define W 4" in covered_y and "`define W 4" in covered_z  # through `TWO, and the port list
    assert "UNUSED" not in covered_y and "`define ADD" not in covered_z and "`define TWO" not in covered_z


def test_recursive_instantiation_is_an_over_approximation_not_a_crash():
    slices = slice_signals(
        "module m(input a, output y, output z); m u(.a(a), .y(y)); assign z = a; endmodule"
    )
    assert "m u(" in slices["y"].render() and any("recursive" in warning for warning in slices["y"].warnings)
    assert "m u(" not in slices["z"].render()
