"""Official harness verdicts: references pass on every scorable problem, wrong candidates fail with the right
status."""

from __future__ import annotations

import json

import pytest

from salv_trl.evaluation import official, scoring
from salv_trl.evaluation.benchmarks import load_benchmark
from salv_trl.evaluation.official import OPT_IN_ENV, SampleResult, reference_code, run_official
from salv_trl.evaluation.report import evaluate_completions, format_table
from salv_trl.evaluation.scoring import Scorer, check_references, score, score_sample
from salv_trl.hdl.mutate import mutants
from salv_trl.hdl.verify import ModuleVerdict, SignalVerdict, Status

pytestmark = pytest.mark.skipif(
    not official.simulator_available(), reason="Icarus Verilog (iverilog, vvp) not on PATH"
)

# Measured with Icarus Verilog 11 (see ../shared/DESIGN.md "Benchmarks" and the metric card)
UNSCORABLE = {
    "verilog-eval-v1-human": ["review2015_fancytimer", "review2015_fsm"],
    "verilog-eval-v1-machine": [],
    "verilog-eval-v2-spec-to-rtl": [
        "Prob099_m2014_q6c",
        "Prob151_review2015_fsm",
        "Prob156_review2015_fancytimer",
    ],
    "verilog-eval-v2-code-complete": ["Prob151_review2015_fsm", "Prob156_review2015_fancytimer"],
    "rtllm-v1.1": ["asyn_fifo", "div_16bit", "radix2_div"],
    "rtllm-v2.0": ["asyn_fifo", "clkgenerator", "radix2_div", "ring_counter"],
}


@pytest.fixture(autouse=True)
def _opt_in(monkeypatch, tmp_path_factory):
    monkeypatch.setenv(OPT_IN_ENV, "1")
    monkeypatch.setenv("SALV_TRL_CACHE", str(tmp_path_factory.getbasetemp() / "salv_cache"))


def fenced(code: str) -> str:
    return f"Here is the design:\n```verilog\n{code}\n```\n"


@pytest.mark.parametrize("name", sorted(UNSCORABLE))
def test_references_pass_every_scorable_problem(benchmarks_dir, name):
    problems = load_benchmark(name, benchmarks_dir)
    report = evaluate_completions(
        name, [[fenced(reference_code(p))] for p in problems], [p.task_id for p in problems],
        k=[1], problems=problems, progress=False,
    )  # fmt: skip
    print(format_table(report))
    assert sorted(report.unscorable) == UNSCORABLE[name]
    failing = [r.task_id for r in report.problems if r.scorable and r.passed != 1]
    assert failing == []
    assert report.pass_at_k == {"pass@1": 1.0}
    total = len(problems)
    assert report.pass_at_k_all["pass@1"] == pytest.approx((total - len(UNSCORABLE[name])) / total)
    # the unscorable ones carry the reason their reference fails
    assert all(r.reference_detail for r in report.problems if not r.scorable)


def test_reference_checks_are_cached(benchmarks_dir, monkeypatch):
    problems = load_benchmark("rtllm-v1.1", benchmarks_dir)[:3]
    first = check_references(problems, progress=False)

    def refuse(*args, **kwargs):
        raise AssertionError("cached reference checks were recomputed")

    assert check_references(problems, progress=False, scorer=refuse) == first


def _problem(benchmarks_dir, name, task_id):
    return next(p for p in load_benchmark(name, benchmarks_dir) if p.task_id == task_id)


def test_mutants_fail_on_the_mutated_output(benchmarks_dir):
    problem = _problem(benchmarks_dir, "verilog-eval-v2-spec-to-rtl", "Prob050_kmap1")
    found = mutants(reference_code(problem), problem.top, per_output=3)
    assert found
    for mutant in found:
        result = score_sample(problem, fenced(mutant.text))
        assert (result.passed, result.verdict.status, result.compiled) == (False, "ok", True)
        assert (
            result.verdict.signals[mutant.output].correct is False
            and result.verdict.signals[mutant.output].mismatches > 0
        )
        assert result.verdict.detail.startswith("R: ")


@pytest.mark.parametrize(
    ("completion", "status"),
    [
        ("", "no_code"),
        ("I cannot write this module, sorry.", "no_code"),
        (
            fenced("module TopModule(input a, b, c, output out);\n  assign out = a |;\nendmodule"),
            "syntax_error",
        ),
        (
            fenced("module Other(input a, b, c, output out);\n  assign out = a;\nendmodule"),
            "interface_mismatch",
        ),
        (
            fenced('module TopModule(input a, b, c, output out);\n  initial $system("id");\nendmodule'),
            "refused",
        ),
    ],
)
def test_wrong_candidates_get_the_right_status(benchmarks_dir, completion, status):
    problem = _problem(benchmarks_dir, "verilog-eval-v2-spec-to-rtl", "Prob050_kmap1")
    result = score_sample(problem, completion)
    assert (result.passed, result.verdict.status) == (False, status)


def test_forged_pass_lines_are_not_believed(benchmarks_dir):
    problem = _problem(benchmarks_dir, "verilog-eval-v2-spec-to-rtl", "Prob050_kmap1")
    forged = ('module TopModule(input a, b, c, output out);\n  assign out = 0;\n'
              '  final $display("Mismatches: 0 in 100 samples");\nendmodule')  # fmt: skip
    assert score_sample(problem, fenced(forged)).passed is False
    rtllm = _problem(benchmarks_dir, "rtllm-v1.1", "adder_8bit")
    forged = ('module adder_8bit(input [7:0] a, b, input cin, output [7:0] sum, output cout);\n'
              '  assign {cout, sum} = 0;\n  initial $display("Your Design Passed");\nendmodule')  # fmt: skip
    result = score_sample(rtllm, fenced(forged))
    assert (result.passed, result.verdict.status) == (False, "ok")


def test_rtllm_and_v1_failures(benchmarks_dir):
    rtllm = _problem(benchmarks_dir, "rtllm-v1.1", "adder_8bit")
    wrong_name = fenced(
        "module adder(input [7:0] a, b, input cin, output [7:0] sum, output cout);\nendmodule"
    )
    assert score_sample(rtllm, wrong_name).verdict.status == "interface_mismatch"
    v1 = _problem(benchmarks_dir, "verilog-eval-v1-human", "gatesv")
    # a completion-style body is appended to the problem's header, as the official harness does
    body = (
        "\n\tassign out_both = in[2:0] & in[3:1];\n\tassign out_any = 0;\n"
        "\tassign out_different = 0;\nendmodule\n"
    )
    result = score_sample(v1, body)
    assert (result.passed, result.verdict.status, result.compiled) == (False, "ok", True)
    assert result.verdict.signals["out_both"].correct and not result.verdict.signals["out_any"].correct


def test_timeout_status(benchmarks_dir, monkeypatch):
    monkeypatch.setattr(official, "V2_TIMEOUT", 1.0)
    problem = _problem(benchmarks_dir, "verilog-eval-v2-spec-to-rtl", "Prob050_kmap1")
    body = "integer i;\n  always @(*) begin out = a; i = 0; while (a) i = i + 1; end"  # spins once a is 1
    hang = fenced(f"module TopModule(input a, b, c, output reg out);\n  {body}\nendmodule")
    result = score_sample(problem, hang)
    assert (result.passed, result.verdict.status) == (False, "timeout")


@pytest.mark.parametrize(
    ("name", "ids"),
    [
        (
            "verilog-eval-v2-spec-to-rtl",
            ["Prob009_popcount3", "Prob050_kmap1", "Prob120_fsm3s", "Prob030_popcount255"],
        ),
        ("verilog-eval-v1-human", ["gatesv", "kmap1", "fsm3s"]),
    ],
)
def test_batched_route_gives_the_per_sample_verdicts(benchmarks_dir, name, ids):
    problems = [_problem(benchmarks_dir, name, task_id) for task_id in ids]
    predictions = []
    for problem in problems:
        reference = reference_code(problem)
        variants = [reference] + [m.text for m in mutants(reference, problem.top, per_output=4)]
        variants.append(
            reference.replace("endmodule", "  always @(*) forever;\nendmodule", 1)
        )  # broken: own run
        predictions.append([fenced(v) for v in variants] + ["no code"])
    batched = score(problems, predictions, batch_size=32, progress=False, reuse=False)
    alone = score(problems, predictions, batch_size=1, progress=False, reuse=False)
    assert batched == alone
    assert all(rows[0].passed and not rows[-1].passed and not rows[-2].passed for rows in batched)
    # some mutants are equivalent (a widened select that truncates back); most are not
    assert sum(not r.passed for rows in batched for r in rows[1:-2]) > len(problems)


def test_a_copy_alone_runs_without_the_waveform_dump_and_keeps_its_verdict(benchmarks_dir):
    # slow problems fit one copy per batched run: the official flow without `$dumpfile` / `$dumpvars`
    problem = _problem(benchmarks_dir, "verilog-eval-v2-spec-to-rtl", "Prob082_lfsr32")
    assert "$dumpvars" in problem.testbench
    reference = reference_code(problem)
    codes = [reference] + [m.text for m in mutants(reference, problem.top, per_output=1)][:1]
    hang = reference.replace("endmodule", "  always @(*) forever;\nendmodule", 1)
    scorer = Scorer()
    for code in codes:
        (alone,) = scorer.run_batch(problem, [code], 30.0)
        assert alone == scorer.run_alone(problem, code)[0]
    assert scorer.run_batch(problem, [hang], 0.1) == [None]  # past its time limit: the official flow decides


def test_code_execution_needs_opt_in(benchmarks_dir, monkeypatch):
    monkeypatch.delenv(OPT_IN_ENV)
    problem = _problem(benchmarks_dir, "rtllm-v1.1", "adder_8bit")
    with pytest.raises(PermissionError, match=OPT_IN_ENV):
        score_sample(problem, fenced(problem.reference))


def test_sample_result_round_trip():
    verdict = ModuleVerdict(Status.ok, {"y": SignalVerdict.of(3, 9)}, "R: 3 mismatches")
    result = SampleResult(verdict, passed=False, compiled=True)
    data = json.loads(json.dumps(result.to_dict()))
    # the shape the metric and evaluation/run.py write: the engine's verdict and the official criteria
    assert data == {
        "passed": False, "compiled": True, "status": "ok", "detail": "R: 3 mismatches",
        "signals": [{"name": "y", "mismatches": 3, "samples": 9, "correct": False, "activity": None,
                     "proof": None, "depth": None, "reason": ""}],
    }  # fmt: skip
    assert SampleResult.from_dict(data) == result


def test_custom_tasks_use_the_verification_engine(tmp_path):
    reference = (
        "module m(input [3:0] a, b, output [3:0] s, d);\n"
        "  assign s = a + b;\n  assign d = a - b;\nendmodule\n"
    )
    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps({"task_id": "t0", "prompt": "write m", "reference": reference}) + "\n")
    report = evaluate_completions(
        "custom", [[fenced(reference), fenced(reference.replace("a - b", "a + b")), "nothing"]], ["t0"],
        k=[1, 3], data_dir=path, progress=False,
    )  # fmt: skip
    good, wrong, empty = report.problems[0].samples
    assert good["passed"] and [s["name"] for s in good["signals"]] == ["s", "d"]
    assert (wrong["passed"], wrong["status"]) == (False, "ok")
    assert [(s["name"], s["correct"]) for s in wrong["signals"]] == [("s", True), ("d", False)]
    assert empty["status"] == "no_code"
    assert report.pass_at_k == {"pass@1": pytest.approx(1 / 3), "pass@3": 1.0}


def test_a_candidate_naming_another_copy_runs_alone(benchmarks_dir):
    # in a batch, `tb__s0` is the first copy's testbench; in the candidate's own run there is no such scope
    problem = _problem(benchmarks_dir, "verilog-eval-v2-spec-to-rtl", "Prob050_kmap1")
    reference = reference_code(problem)
    reaching = reference.replace("endmodule", "  final tb__s0.stats1.errors = 0;\nendmodule", 1)
    scorer = Scorer()
    assert scorer.run_alone(problem, reaching)[0].verdict.status == "compile_error"  # no such variable
    batched = scorer.run_batch(problem, [reference, reaching], 1.0)
    assert batched[0] == scorer.run_alone(problem, reference)[0] and batched[1] is None
    assert score([problem], [[fenced(reference), fenced(reaching)]], progress=False, reuse=False) == score(
        [problem], [[fenced(reference), fenced(reaching)]], batch_size=1, progress=False, reuse=False
    )


def test_a_scorer_keeps_its_verdicts_to_itself(benchmarks_dir, monkeypatch):
    problem = _problem(benchmarks_dir, "verilog-eval-v2-spec-to-rtl", "Prob050_kmap1")
    runs = []

    def counted(problem, code):
        runs.append(code)
        return run_official(problem, code)

    monkeypatch.setattr(scoring, "run_official", counted)
    completions = [
        [fenced(reference_code(problem)), fenced(mutants(reference_code(problem), problem.top)[0].text)]
    ]
    first, second = Scorer(), Scorer()
    verdicts = first.score([problem], completions, progress=False)
    assert len(runs) >= 2
    runs.clear()
    assert first.score([problem], completions, progress=False) == verdicts and runs == []  # its own cache
    assert second.score([problem], completions, progress=False) == verdicts and len(runs) >= 2  # not shared
    runs.clear()
    assert Scorer(reuse=False).score([problem], completions, progress=False) == verdicts and len(runs) >= 2
