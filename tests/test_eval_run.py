"""evaluation/run.py end to end with a tiny Qwen2 built from a config (no download); the metric module via
evaluate."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from salv_trl.evaluation.benchmarks import load_benchmark
from salv_trl.evaluation.official import OPT_IN_ENV, reference_code, simulator_available

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(
    not simulator_available(), reason="Icarus Verilog (iverilog, vvp) not on PATH"
)


def _run_module():
    spec = importlib.util.spec_from_file_location("evaluation_run", ROOT / "evaluation" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tiny_model_dir(tmp_path, benchmarks_dir):
    from salv_trl.tiny import tiny_qwen2, train_tokenizer

    texts = [p.prompt + p.reference for p in load_benchmark("rtllm-v1.1", benchmarks_dir)]
    tokenizer = train_tokenizer(texts, vocab_size=400)
    model = tiny_qwen2(tokenizer)
    model.save_pretrained(tmp_path / "tiny")
    tokenizer.save_pretrained(tmp_path / "tiny")
    return tmp_path / "tiny"


def test_run_end_to_end_with_tiny_model(tiny_model_dir, benchmarks_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(OPT_IN_ENV, "1")
    monkeypatch.setenv("SALV_TRL_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    code = _run_module().main([
        "--model", str(tiny_model_dir), "--benchmark", "rtllm-v1.1", "--data-dir", str(benchmarks_dir),
        "--problems", "adder_8bit", "radix2_div", "--n", "2", "--temperature", "1.0", "--max-new-tokens", "8",
        "--k", "1", "2", "5", "--engine", "transformers", "--output-dir", str(out),
        "--model-card", "--no-progress",
    ])  # fmt: skip
    assert code == 0
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    results = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [(s["task_id"], s["sample_index"]) for s in samples] == [
        ("adder_8bit", 0),
        ("adder_8bit", 1),
        ("radix2_div", 0),
        ("radix2_div", 1),
    ]
    assert len(results) == 4 and all(not r["passed"] and r["status"] for r in results)
    assert [r["scorable"] for r in results] == [True, True, False, False]  # radix2_div's reference fails
    summary = json.loads((out / "summary.json").read_text())
    assert (
        summary["pass@1"] == 0.0 and summary["pass@2"] == 0.0 and "pass@5" not in summary
    )  # n < k: not reported
    assert summary["unscorable"] == ["radix2_div"] and summary["settings"]["n"] == 2
    printed = capsys.readouterr().out
    assert (
        "pass@k (scorable problems, n=1)" in printed
        and "unscorable = failed" in printed
        and "radix2_div" in printed
    )
    assert "pass@1" in (out / "README.md").read_text()


def test_run_refuses_without_opt_in(tiny_model_dir, benchmarks_dir, tmp_path, monkeypatch):
    monkeypatch.delenv(OPT_IN_ENV, raising=False)
    with pytest.raises(PermissionError, match=OPT_IN_ENV):
        _run_module().main(["--model", str(tiny_model_dir), "--benchmark", "rtllm-v1.1", "--data-dir",
                            str(benchmarks_dir), "--output-dir", str(tmp_path / "o")])  # fmt: skip


def test_metric_module_loads_and_computes(benchmarks_dir, tmp_path, monkeypatch):
    import evaluate

    monkeypatch.setenv(OPT_IN_ENV, "1")
    monkeypatch.setenv("SALV_TRL_CACHE", str(tmp_path / "cache"))
    metric = evaluate.load(
        str(ROOT / "evaluation" / "verilog_pass_at_k"), "rtllm-v1.1", data_dir=str(benchmarks_dir)
    )
    problems = {p.task_id: p for p in load_benchmark("rtllm-v1.1", benchmarks_dir)}
    good = f"```verilog\n{reference_code(problems['adder_8bit'])}\n```"
    result = metric.compute(
        predictions=[[good, "no code", good], ["", "", ""]],
        references=["adder_8bit", "counter_12"],
        k=[1, 3, 4],
    )
    # adder_8bit: c=2 of n=3 -> pass@1 = 2/3, pass@3 = 1; counter_12: 0
    assert result["pass@1"] == pytest.approx((2 / 3 + 0) / 2) and result["pass@3"] == pytest.approx(0.5)
    assert "pass@4" not in result and result["syntax_pass@1"] == pytest.approx(1 / 3)
    assert result["status_counts"] == {"no_code": 4, "ok": 2}
    # data_dir given to compute wins over the one given to load
    with pytest.raises(FileNotFoundError):
        metric.compute(predictions=[[good]], references=["adder_8bit"], data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="unknown benchmark"):
        evaluate.load(str(ROOT / "evaluation" / "verilog_pass_at_k"), "humaneval")


def test_custom_metric_loads_without_data_dir_and_scores_a_tasks_file(tmp_path, monkeypatch):
    """`data_dir` is optional at load time (evaluate's own cache folder must not be taken for the
    benchmark's)."""
    import evaluate

    monkeypatch.setenv(OPT_IN_ENV, "1")
    reference = (
        "module m(input [3:0] a, b, output [3:0] s, d);\n"
        "  assign s = a + b;\n  assign d = a - b;\nendmodule\n"
    )
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps({"task_id": "t0", "prompt": "write m", "reference": reference}) + "\n")
    metric = evaluate.load(str(ROOT / "evaluation" / "verilog_pass_at_k"), "custom")
    wrong = reference.replace("a - b", "a + b")
    result = metric.compute(
        predictions=[[f"```verilog\n{reference}```", f"```verilog\n{wrong}```"]], references=["t0"], k=[1],
        data_dir=str(tasks),
    )  # fmt: skip
    assert result["pass@1"] == pytest.approx(0.5)


def test_run_samples_verilog_eval_v2_after_its_system_message(
    tiny_model_dir, benchmarks_dir, tmp_path, monkeypatch
):
    """The v2 protocol: the benchmark's official system message reaches the sampler (and its chat
    template)."""
    import salv_trl.data.sampling as sampling

    calls = []

    def fake_sample_completions(model, tokenizer, prompts, **kwargs):
        calls.append((list(prompts), kwargs["system"]))
        return [["no code"] * kwargs["n"] for _ in prompts]

    monkeypatch.setattr(sampling, "sample_completions", fake_sample_completions)
    monkeypatch.setenv(OPT_IN_ENV, "1")
    monkeypatch.setenv("SALV_TRL_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    assert _run_module().main([
        "--model", str(tiny_model_dir), "--benchmark", "verilog-eval-v2-spec-to-rtl",
        "--data-dir", str(benchmarks_dir),
        "--problems", "1", "--engine", "transformers", "--output-dir", str(out), "--no-progress",
    ]) == 0  # fmt: skip
    [problem] = load_benchmark("verilog-eval-v2-spec-to-rtl", benchmarks_dir)[:1]
    assert problem.system_prompt and calls == [([problem.prompt], problem.system_prompt)]
    assert json.loads((out / "summary.json").read_text())["settings"]["system"] == problem.system_prompt
