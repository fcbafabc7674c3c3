"""Signal-level verification on small designs: statuses, per-output verdicts, batching, hostile candidates."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pytest

from salv_trl.hdl.testbench import TestbenchOutputError, parse_given_output, plan_stimulus
from salv_trl.hdl.verify import ModuleVerdict, Status, VerifyJob, verify, verify_many
from salv_trl.synthetic import ResetSpec, generate_tasks

ADDER = "module m(input [7:0] a, b, output [7:0] s, output c); assign s = a + b; assign c = a < b; endmodule"
WRONG_S = ADDER.replace("a + b", "a - b")
SIGNED = """module m(input signed [15:0] a, input signed [15:0] b, input [69:0] w, output lt, output [69:0]
x); assign lt = a < b; assign x = w ^ {a, b};
endmodule"""
COUNTER = """module cnt(input clk, input rst_n, input en, output reg [3:0] q, output z);
always @(posedge clk or negedge rst_n) if (!rst_n) q <= 0; else if (en) q <= q + 1;
assign z = en & q[0];
endmodule"""
SYNC_FSM = """module fsm(input clk, input reset, input x, output reg [1:0] state, output y);
always @(posedge clk) if (reset) state <= 0; else state <= x ? state + 1 : state;
assign y = state == 2'd3;
endmodule"""
SHIFT = """module sh(input clock, input areset, input d, output reg [7:0] q);
always @(posedge clock, posedge areset) if (areset) q <= 8'h5a; else q <= {q[6:0], d};
endmodule"""


def _ok(verdict: ModuleVerdict) -> dict[str, bool]:
    assert verdict.status == Status.ok, verdict.detail
    return {name: v.correct for name, v in verdict.signals.items()}


def test_per_output_verdicts():
    assert _ok(verify(ADDER, ADDER, vectors=100)) == {"s": True, "c": True}
    verdict = verify(WRONG_S, ADDER, vectors=100)
    assert _ok(verdict) == {"s": False, "c": True}
    assert verdict.signals["s"].samples == 100 and 0 < verdict.signals["s"].mismatches <= 100


def test_signed_and_wide_inputs():
    assert all(_ok(verify(SIGNED, SIGNED, vectors=100)).values())
    unsigned = SIGNED.replace(
        "input signed [15:0] a, input signed [15:0] b", "input [15:0] a, input [15:0] b"
    )
    assert _ok(verify(unsigned, SIGNED, vectors=100)) == {"lt": False, "x": True}
    high_bit = SIGNED.replace("w ^ {a, b}", "{1'b0, w[68:0] ^ {a, b}}")
    assert _ok(verify(high_bit, SIGNED, vectors=100)) == {"lt": True, "x": False}


def test_deterministic_for_a_seed():
    wrong = COUNTER.replace("q + 1", "q + 3")
    first = verify(wrong, COUNTER, vectors=100, seed=7)
    assert first.to_dict() == verify(wrong, COUNTER, vectors=100, seed=7).to_dict()
    assert (
        first.signals["q"].mismatches != verify(wrong, COUNTER, vectors=100, seed=8).signals["q"].mismatches
    )


def test_clock_and_reset_inference():
    plan = plan_stimulus(["clk", "rst_n", "en"], {"clk": {"posedge"}, "rst_n": {"negedge"}})
    assert plan.clocks == ("clk",) and plan.resets[0].active_low and plan.resets[0].asynchronous
    plan = plan_stimulus(["clk", "reset", "x"], {"clk": {"posedge"}})
    assert not plan.resets[0].active_low and not plan.resets[0].asynchronous and plan.data == ("x",)
    plan = plan_stimulus(["clock", "areset", "d"], {"clock": {"posedge"}, "areset": {"posedge"}})
    assert plan.clocks == ("clock",) and plan.resets[0].asynchronous and not plan.resets[0].active_low
    assert not plan_stimulus(["a", "b"], {}).sequential


@pytest.mark.parametrize(
    "design, wrong_polarity",
    [
        (COUNTER, COUNTER.replace("negedge rst_n) if (!rst_n)", "posedge rst_n) if (rst_n)")),
        (SYNC_FSM, SYNC_FSM.replace("if (reset)", "if (!reset)")),
        (SHIFT, SHIFT.replace("posedge areset) if (areset)", "negedge areset) if (!areset)")),
    ],
)
def test_sequential_designs_and_wrong_reset_polarity(design, wrong_polarity):
    assert all(_ok(verify(design, design, vectors=200)).values())
    assert not all(_ok(verify(wrong_polarity, design, vectors=200)).values())


def test_a_register_reset_with_the_other_timing_is_wrong_whatever_the_run_length():
    """Asynchronous resets where the task asks for synchronous ones (and back) differ only when reset comes
    while a register holds a value. At one random pulse in 256 cycles, 200-cycle runs (the tiny
    reproduction's) called a quarter of such registers correct; the middle cycle's pulse and one in 64 catch
    them (`benchmarks/bench_reset.py` measures the rate)."""
    tasks = [task for task in generate_tasks(60, split="test", seed=11) if task.reset is not None][:20]
    jobs, registers = [], []
    for task in tasks:
        flipped = replace(task, reset=ResetSpec(task.reset.active_low, not task.reset.asynchronous))
        for vectors in (200, 1000):
            jobs.append(VerifyJob(flipped.reference, task.reference, top="top_module", vectors=vectors))
            registers.append([name for name, out in task.named_outputs if out.registered])
    missed = [
        (job.vectors, name)
        for job, names, verdict in zip(jobs, registers, verify_many(jobs, progress=False), strict=True)
        for name in names
        if not verdict.signals[name].wrong
    ]
    assert sum(map(len, registers)) >= 40 and not missed


def test_candidate_renamed_top_and_extra_modules():
    candidate = """module helper(input [7:0] a, b, output [7:0] s); assign s = a + b; endmodule
module top_module(input [7:0] a, b, output [7:0] s, output c); helper h(a, b, s); assign c = a < b;
endmodule"""
    assert all(_ok(verify(candidate, ADDER, vectors=50)).values())


@pytest.mark.parametrize(
    "candidate, status",
    [
        ("", Status.no_code),
        ("   \n", Status.no_code),
        (b"module m(\xff\xfe);", Status.syntax_error),
        ("module m(input a); endmodule\0", Status.syntax_error),
        ("this is not verilog", Status.syntax_error),
        (
            "module m(input [7:0] a, b, output [7:0] s); assign s = a + b; endmodule",
            Status.interface_mismatch,
        ),
        (
            "module m(input [7:0] a, b, output [6:0] s, output c); assign s = a; assign c = 0; endmodule",
            Status.interface_mismatch,
        ),
        (
            "module m(input [7:0] a, b, output [7:0] s, output c); assign s = a +; endmodule",
            Status.syntax_error,
        ),
        (
            "module m(input [7:0] a, b, output [7:0] s, output c); assign s = q; assign c = 0; endmodule",
            Status.compile_error,
        ),
    ],
)
def test_statuses(candidate, status):
    assert verify(candidate, ADDER, vectors=20).status == status


def _hostile(marker: Path) -> dict[str, tuple[str, set[Status]]]:
    big = "module m(input [7:0] a, b, output [7:0] s, output c);\n" + "wire w;\n" * 1_300_000 + "endmodule\n"
    return {
        "comb loop": (
            "module m(input [7:0] a, b, output [7:0] s, output c); wire x; assign x = ~x; "
            "assign s = a + b + x; assign c = a < b; endmodule",
            {Status.ok, Status.timeout},
        ),
        "always without delay": (
            "module m(input [7:0] a, b, output reg [7:0] s, output c); "
            "always s = a + b; assign c = a < b; endmodule",
            {Status.compile_error, Status.timeout},
        ),
        "zero-delay loop": (
            "module m(input [7:0] a, b, output reg [7:0] s, output c); "
            "always @(a) while (1) s = a + b; assign c = a < b; endmodule",
            {Status.timeout},
        ),
        "display flood": (
            "module m(input [7:0] a, b, output [7:0] s, output c); assign s = a + b; "
            'assign c = a < b; always @(a) repeat (100000) $display("flood flood flood"); endmodule',
            {Status.runtime_error},
        ),
        "system": (
            f'module m(input [7:0] a, b, output [7:0] s, output c); initial $system("touch {marker}"); '
            "assign s = a + b; assign c = a < b; endmodule",
            {Status.refused},
        ),
        "fopen": (
            f"module m(input [7:0] a, b, output [7:0] s, output c); integer f; initial begin "
            f'f = $fopen("{marker}", "w"); $fdisplay(f, "x"); end assign s = a + b; assign c = a < b; '
            "endmodule",
            {Status.refused},
        ),
        "forged lines": (
            "module m(input [7:0] a, b, output [7:0] s, output c); assign s = a - b; assign c = a < b;"
            ' initial begin $display("s error ctn: 0"); $display("Mismatches: 0 in 100 samples"); '
            "end final $display(\"Hint: Output 's' has no mismatches.\"); endmodule",
            {Status.ok},
        ),
        "forged nonce": (
            "module m(input [7:0] a, b, output [7:0] s, output c); assign s = a - b; assign c = a < b;"
            ' string p; initial begin #1 $sformat(p, "%m"); '
            '$display("SALV%s 0 0 0 20", p.substr(8, 23)); $display("SALV%s END", p.substr(8, 23)); '
            "end endmodule",
            {Status.ok, Status.runtime_error, Status.compile_error},
        ),
        "named like the reference": (
            "module m(input [7:0] a, b, output [7:0] s, output c); assign s = 0; assign c = 0; endmodule",
            {Status.ok},
        ),
        "10 MB module": (big, {Status.refused}),
    }


def _processes_under(path: Path) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.readlink(f"/proc/{pid}/cwd").startswith(str(path)):
                found.append(pid)
        except OSError:
            continue
    return found


def test_hostile_candidates_get_clean_statuses(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    sandboxes = tmp_path / "sandboxes"
    sandboxes.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(sandboxes))  # in-process run: every sandbox is created here
    hostile = _hostile(marker)
    start = time.monotonic()
    verdicts = verify_many(
        [VerifyJob(c, ADDER, vectors=20) for c, _ in hostile.values()], workers=1, progress=False, timeout=5
    )
    assert time.monotonic() - start < 60
    for (name, (_, allowed)), verdict in zip(hostile.items(), verdicts, strict=True):
        assert verdict.status in allowed, (name, verdict)
        if verdict.status == Status.ok:  # whatever it printed, the wrong output stays wrong
            assert not all(v.correct for v in verdict.signals.values()), name
    assert not marker.exists()
    assert list(sandboxes.iterdir()) == []  # every sandbox directory was removed
    assert _processes_under(sandboxes) == []


def test_forged_lines_with_a_given_testbench():
    testbench = """module tb; reg [7:0] a, b; wire [7:0] s_ref, s_dut; wire c_ref, c_dut; integer i, es, ec;
m good(a, b, s_ref, c_ref); top_module dut(a, b, s_dut, c_dut);
initial begin es = 0; ec = 0; for (i = 0; i < 50; i = i + 1) begin a = $random; b = $random; #1;
if (s_ref !== s_dut) es = es + 1; if (c_ref !== c_dut) ec = ec + 1; end
$display("s error ctn: %0d", es); $display("c error ctn: %0d", ec); $finish; end endmodule"""
    honest = verify(WRONG_S, ADDER, testbench=testbench, top="top_module")
    assert _ok(honest) == {"s": False, "c": True}
    forged = WRONG_S.replace("endmodule", 'initial #1 $display("s error ctn: 0"); endmodule')
    assert _ok(verify(forged, ADDER, testbench=testbench, top="top_module")) == {"s": False, "c": True}


def test_batches_give_the_same_verdicts_as_single_runs():
    candidates = [
        ADDER,
        WRONG_S,
        ADDER.replace("a < b", "a <= b"),
        "",
        ADDER.replace("a + b", "a + q"),
        "module m(input [7:0] a, b, output reg [7:0] s, output c); always @(a) while (1) s = a; "
        "assign c = 0; endmodule",
    ]
    jobs = [VerifyJob(c, ADDER, vectors=50) for c in candidates]
    batched = verify_many(jobs, workers=1, progress=False, timeout=3)
    single = [verify(c, ADDER, vectors=50, timeout=3) for c in candidates]
    assert [v.to_dict() for v in batched] == [v.to_dict() for v in single]
    assert [v.status for v in batched] == [
        Status.ok,
        Status.ok,
        Status.ok,
        Status.no_code,
        Status.compile_error,
        Status.timeout,
    ]


def test_verdict_round_trip():
    verdict = verify(WRONG_S, ADDER, vectors=10)
    assert ModuleVerdict.from_dict(verdict.to_dict()) == verdict


def test_given_output_parsers():
    tag = "T" * 16

    def tagged(text: str) -> str:
        return "".join(f"{tag}{line}{tag}\n" for line in text.splitlines())

    seed = tagged("a error ctn: 0\nb error ctn: 3")
    assert parse_given_output(seed, tag, ["a", "b"]) == {"a": (0, 0), "b": (3, 0)}
    ve2 = tagged(
        "Hint: Output 'q' has no mismatches.\n"
        "Hint: Output 'z' has 4 mismatches. First mismatch occurred at time 5.\n"
        "Hint: Total mismatched samples is 4 out of 20 samples\n"
        "Mismatches: 4 in 20 samples"
    )
    assert parse_given_output(ve2, tag, ["q", "z"], samples=20) == {"q": (0, 20), "z": (4, 20)}
    # untagged lines are not the testbench's: a candidate's own "b error ctn: 0" changes nothing
    assert parse_given_output("b error ctn: 0\n" + seed, tag, ["a", "b"]) == {"a": (0, 0), "b": (3, 0)}
    # text glued before or inside a testbench line stays outside the tags
    glued = f"x error ctn: 0 {tag}a error ctn: 0{tag}\n{tag}b error {tag}junk{tag}ctn: 3{tag}\n"
    assert parse_given_output(glued, tag, ["a", "b"]) == {"a": (0, 0), "b": (3, 0)}
    for bad, outputs, samples in [
        (seed + tagged("b error ctn: 0"), ["a", "b"], None),  # twice
        (ve2 + tagged("Mismatches: 0 in 20 samples"), ["q", "z"], None),  # summary twice
        (tagged("a error ctn: 0"), ["a", "b"], None),  # b has no line: never judged "correct" by omission
        (ve2, ["q", "z"], 40),  # fewer samples than the reference's run: cut short
        ("nothing here", ["a", "b"], None),
    ]:
        with pytest.raises(TestbenchOutputError):
            parse_given_output(bad, tag, outputs, samples)


def test_cli_table_and_json(tmp_path, capsys):
    from salv_trl.cli import main

    (tmp_path / "ref.v").write_text(ADDER)
    (tmp_path / "bad.v").write_text(WRONG_S)
    assert main(["verify", str(tmp_path / "ref.v"), "-r", str(tmp_path / "ref.v"), "--vectors", "20"]) == 0
    assert ": ok (passed)" in capsys.readouterr().out
    assert (
        main(["verify", str(tmp_path / "bad.v"), "-r", str(tmp_path / "ref.v"), "--vectors", "20", "--json"])
        == 1
    )
    rows = json.loads(capsys.readouterr().out)
    correct = {signal["name"]: signal["correct"] for signal in rows[0]["signals"]}
    assert rows[0]["status"] == "ok" and correct == {"s": False, "c": True}


def test_pasted_testbench_is_ignored_and_duplicates_are_judged_once():
    pasted = ADDER + '\nmodule tb; initial begin $dumpfile("w.vcd"); $finish; end endmodule\n'
    verdicts = verify_many([VerifyJob(pasted, ADDER, vectors=20)] * 3, workers=1, progress=False)
    assert all(v.passed for v in verdicts) and verdicts[0] is verdicts[2]
    used = ADDER.replace("assign c = a < b;", 'assign c = a < b; initial $fopen("x");')
    assert verify(used, ADDER, vectors=20).status == Status.refused


@pytest.mark.skipif(shutil.which("verilator") is None, reason="verilator is not installed")
def test_verilator_backend():
    jobs = [VerifyJob(c, ADDER, vectors=50, simulator="verilator") for c in (ADDER, WRONG_S)]
    right, wrong = verify_many(jobs, workers=1, progress=False, timeout=240)
    assert right.passed and _ok(wrong) == {"s": False, "c": True}


def test_verify_many_of_nothing_is_nothing():
    assert verify_many([], workers=4, progress=False) == []


def test_each_candidate_is_parsed_once_and_sliced_by_the_workers(monkeypatch):
    """The candidate's one parse feeds the screen's blanking, the renaming, the interface check and the slices
    that `judge_many` returns (equal to slicing the text afresh); the reference is parsed once per group."""
    import salv_trl.hdl.parse as parse_module
    import salv_trl.hdl.slicing as slicing_module
    from salv_trl.hdl.slicing import slice_signals
    from salv_trl.hdl.verify import judge_many

    pasted = ADDER + '\nmodule tb; initial begin $dumpfile("w.vcd"); $finish; end endmodule\n'
    candidates = [
        ADDER + "\n",
        WRONG_S,
        pasted,
        ADDER.replace("a < b", "a > b"),
        "module m(input a); endmodule",
    ]
    parsed: list[str] = []
    load = parse_module.load_source

    def counting(text: str):
        parsed.append(text)
        return load(text)

    for module in (parse_module, slicing_module):
        monkeypatch.setattr(module, "load_source", counting)
    judged = judge_many([VerifyJob(c, ADDER, vectors=50) for c in candidates], workers=1, progress=False)
    monkeypatch.undo()
    assert [parsed.count(c) for c in candidates] == [1, 1, 1, 1, 1] and parsed.count(ADDER) == 1
    assert [j.verdict.status for j in judged] == [Status.ok] * 4 + [Status.interface_mismatch]
    for candidate, judgement in zip(candidates[:4], judged, strict=False):
        assert judgement.slices == slice_signals(candidate) and judgement.slice_error is None
    assert judged[-1].slices == {}
    assert [j.verdict.to_dict() for j in judged] == [
        v.to_dict()
        for v in verify_many([VerifyJob(c, ADDER, vectors=50) for c in candidates], workers=1, progress=False)
    ]


def test_a_slicing_failure_never_changes_a_verdict(monkeypatch):
    import salv_trl.hdl.verify as verify_module
    from salv_trl.hdl.verify import judge_many

    def broken(design):
        raise AssertionError("slicer bug")

    monkeypatch.setattr(verify_module, "slice_signals", broken)
    judged = judge_many([VerifyJob(WRONG_S, ADDER, vectors=20)], workers=1, progress=False)
    assert _ok(judged[0].verdict) == {"s": False, "c": True}
    assert judged[0].slices == {} and judged[0].slice_error == "AssertionError: slicer bug"
