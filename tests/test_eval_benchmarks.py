"""Benchmark loaders: counts, ids, tops and official prompt formats, read from ../shared/benchmarks."""

from __future__ import annotations

import json
import re

import pytest

from salv_trl.data.tasks import Task, task_top
from salv_trl.evaluation.benchmarks import BENCHMARKS, load_benchmark
from salv_trl.hdl.parse import parse

COUNTS = {
    "verilog-eval-v1-human": 156,
    "verilog-eval-v1-machine": 143,
    "verilog-eval-v2-spec-to-rtl": 156,
    "verilog-eval-v2-code-complete": 156,
    "rtllm-v1.1": 29,
    "rtllm-v2.0": 50,
}


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_counts_and_unique_ids(benchmarks_dir, name):
    problems = load_benchmark(name, benchmarks_dir)
    assert len(problems) == COUNTS[name]
    assert len({p.task_id for p in problems}) == len(problems)
    for problem in problems:
        assert problem.prompt and problem.reference and problem.testbench and problem.top
        assert problem.reference_top in problem.reference


def test_v2_ids_and_prompts(benchmarks_dir):
    spec = load_benchmark("verilog-eval-v2-spec-to-rtl", benchmarks_dir)
    assert (
        spec[0].task_id == "Prob001_zero"
        and spec[0].top == "TopModule"
        and spec[0].reference_top == "RefModule"
    )
    assert spec[0].prompt.startswith("\nQuestion:\n") and spec[0].prompt.endswith("\nAnswer:\n")
    assert "Enclose your code with [BEGIN] and [DONE]" in spec[0].prompt
    assert (
        spec[0].system_prompt
        == "You are a Verilog RTL designer that only writes code using correct Verilog syntax."
    )
    explained = load_benchmark("verilog-eval-v2-spec-to-rtl", benchmarks_dir, explain=True, rules=True)
    assert "[BEGIN]" not in explained[0].prompt and "additional rules" in explained[0].prompt
    complete = load_benchmark("verilog-eval-v2-code-complete", benchmarks_dir)
    lines = complete[9].prompt.splitlines()
    header = lines.index("module TopModule (")
    assert all(line.startswith("//") for line in lines[1 : header - 1]) and complete[9].interface.strip()
    with pytest.raises(FileNotFoundError, match="in-context examples"):
        load_benchmark("verilog-eval-v2-spec-to-rtl", benchmarks_dir, examples=1)


def test_v1_prompt_is_description_then_header(benchmarks_dir):
    problem = load_benchmark("verilog-eval-v1-human", benchmarks_dir)[0]
    assert problem.task_id == "gatesv" and problem.top == "top_module"
    assert problem.prompt.endswith(problem.interface) and problem.description in problem.prompt
    assert problem.reference.startswith(problem.interface) and "endmodule" in problem.reference


def test_rtllm_tops_renames_and_support_files(benchmarks_dir):
    v11 = {p.task_id: p for p in load_benchmark("rtllm-v1.1", benchmarks_dir)}
    assert v11["adder_8bit"].top == "adder_8bit" and v11["adder_8bit"].reference_top == "verified_adder_8bit"
    assert v11["adder_pipe_64bit"].reference_top == "verified_adder_64bit"
    assert set(v11["asyn_fifo"].support_files) == {"rempty.txt", "tdata.txt", "wfull.txt"}
    assert v11["adder_8bit"].prompt.startswith("Please act as a professional verilog designer.")
    v20 = {p.task_id: p for p in load_benchmark("rtllm-v2.0", benchmarks_dir / "RTLLM-v2.0")}
    # the folder is misspelt; the testbench instantiates the description's module name
    assert v20["fixed_point_substractor"].top == "fixed_point_subtractor"


def test_custom_tasks_file(tmp_path):
    # the second top comes first, its submodule after it: the last module declared is not the top
    adder = (
        "module adder(input [3:0] a, b, output [3:0] s);\n  half h(.a(a), .b(b), .s(s));\nendmodule\n"
        "module half(input [3:0] a, b, output [3:0] s);\n  assign s = a + b;\nendmodule\n"
    )
    rows = [
        {"task_id": "t0", "prompt": "p", "reference": "module m(input a, output y); assign y = a; endmodule"},
        {"task_id": "t1", "prompt": "p", "reference": adder},
    ]
    path = tmp_path / "tasks.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    problem, two_modules = load_benchmark("custom", path)
    assert problem.top == "m" and problem.testbench == "" and problem.benchmark == "custom"
    # the top training takes (the verification engine's rule), as a task row
    assert two_modules.top == two_modules.reference_top == parse(adder).top == "adder"
    assert isinstance(two_modules, Task) and two_modules.to_row()["top"] == "adder"
    path.write_text(json.dumps({"task_id": "t1", "prompt": "p"}))
    with pytest.raises(ValueError, match="reference or testbench"):
        load_benchmark("custom", path)


def test_errors_are_clear(tmp_path, monkeypatch):
    monkeypatch.delenv("SALV_TRL_BENCHMARKS", raising=False)
    with pytest.raises(ValueError, match="data_dir"):
        load_benchmark("rtllm-v1.1")
    with pytest.raises(ValueError, match="unknown benchmark"):
        load_benchmark("humaneval", tmp_path)
    with pytest.raises(FileNotFoundError, match="no checkout"):
        load_benchmark("rtllm-v1.1", tmp_path)
    assert "custom" in BENCHMARKS


def _official_reference_top(problem) -> str:
    """The reference module each official harness needs, by the benchmark's own naming convention."""
    if problem.benchmark.startswith("verilog-eval-v1"):
        return "top_module"
    if problem.benchmark.startswith("verilog-eval-v2"):
        return "RefModule"
    # RTLLM: the design name the testbench instantiates, else the reference's one `verified_<x>` module
    declared = re.findall(r"^\s*module\s+(\w+)", problem.reference, re.MULTILINE)
    if problem.top in declared:
        return problem.top
    (verified,) = [name for name in declared if name.startswith("verified_")]
    return verified


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_the_one_top_rule_finds_the_reference_the_official_harness_needs(benchmarks_dir, name):
    # evaluation and training derive a reference's top by one rule (`task_top`, the verification engine's
    # `choose_top`); on every benchmark problem it is the module the official harness renames and simulates
    for problem in load_benchmark(name, benchmarks_dir):
        official = _official_reference_top(problem)
        assert task_top(problem.reference) == official == problem.reference_top, problem.task_id
