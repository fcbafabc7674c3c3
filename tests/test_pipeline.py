"""A reduced run of the whole reproduction pipeline (recipes/tiny/reproduce.py): synthetic tasks → SFT →
sample → verify → pairs (three ways) → DPO (three variants) → scoring with the metric's `custom` config."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from huggingface_hub import ModelCard

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.timeout(1200)  # about 4 min alone; a hang guard with room for a busy 2-core machine
@pytest.mark.skipif(shutil.which("iverilog") is None, reason="iverilog not installed")
def test_reduced_pipeline_end_to_end_and_its_rerun(tmp_path):
    config = yaml.safe_load((ROOT / "recipes" / "tiny" / "config_quick.yaml").read_text())
    # A short SFT cannot learn the family (nothing it writes would simulate): it learns 10 three-output corpus
    # tasks instead, and samples them at temperature 1 (`train_on_corpus`), which gives the pairs that let the
    # DPO stage, the scoring and the model cards run.
    config.update(
        output_dir=str(tmp_path / "run"),
        tasks={
            "sft": 10,
            "dev": 3,
            "train": 10,
            "test": 3,
            "train_on_corpus": True,
            "shape": {"min_outputs": 3, "max_outputs": 3},
        },
        sft_overrides={
            "max_steps": 220,
            "logging_steps": 50,
            "pass_rate_steps": 100,
            "pass_rate_max_new_tokens": 260,
        },
        dpo_overrides={
            "max_steps": 2,
            "logging_steps": 1,
            "per_device_train_batch_size": 2,
            "pass_rate_steps": 1,
        },
        sample={**config["sample"], "n": 8, "max_new_tokens": 260, "temperature": 1.0},
        verify={"vectors": 30},
        eval={"n": 2},
    )
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    command = [sys.executable, str(ROOT / "recipes" / "tiny" / "reproduce.py"), "--config", str(path)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run = tmp_path / "run"
    results = json.loads((run / "results.json").read_text())["results"]
    assert [r["seed"] for r in results] == [0]
    result = results[0]
    # SFT measured its greedy pass rate on the dev tasks every 100 steps and stopped at the configured target
    # or at max_steps, whichever came first
    sft_config = yaml.safe_load((ROOT / config["recipes"]["sft_config"]).read_text())
    sft = result["sft"]
    measured = sorted({*range(100, sft["steps"] + 1, 100), sft["steps"]})  # every 100 steps, and at the end
    assert [step for step, _ in sft["dev_pass_rates"]] == measured
    assert sft["max_steps"] == 220 and sft["dev_pass_rate"] == sft["dev_pass_rates"][-1][1]
    reached = [rate >= sft_config["stop_at_pass_rate"] for _, rate in sft["dev_pass_rates"]]
    assert not any(reached[:-1])
    rollouts = result["pair_stats"]["rollouts"]
    assert rollouts["rollouts"] == 10 * 8 and rollouts["fully_correct"] > 0
    scores = result["scores"]
    trained = [variant for variant in ("module", "nomask", "signal", "core") if variant in scores]
    assert trained, "no DPO variant trained: the reduced run made no pairs"
    for variant in ("module", "nomask", "signal", "core"):
        # A variant is trained and scored exactly when its pair set is not empty.
        assert (variant in scores) == (result["pair_stats"][variant]["pairs"] > 0)
    for score in scores.values():
        assert 0.0 <= score["pass@1"] <= 1.0 and 0.0 <= score["signal_pass"] <= 1.0
        assert sum(score["status_counts"].values()) == 3 * 2 and len(score["task_pass"]) == 3
    assert (run / "curves_seed0.png").stat().st_size > 0
    table = (run / "table.md").read_text()
    labels = (
        "SFT",
        "module-level DPO",
        "signal pairs, no mask",
        "signal-aware DPO",
        "signal-aware DPO, core spans",
    )
    for label in labels:
        assert f"| {label} |" in table and f"| {label} |" in done.stdout
    assert (
        "% with 95% bootstrap CIs over tasks" in table and "| signal-aware DPO − module-level DPO |" in table
    )
    assert f"| 0 | {sft['steps']} / 220 |" in table
    # a row per model with its test samples by verdict status
    assert f"| 0 | SFT | {scores['sft']['status_counts'].get('ok', 0)} |" in table
    # progress: a line per measurement while SFT runs
    assert "sft: {'eval_pass_rate'" in done.stdout
    # each produced model's card carries its scores (model-index) and the whole comparison table
    for variant in trained:
        card = ModelCard.load(run / "seed0" / f"dpo-{variant}" / "README.md")
        values = {r.metric_type: r.metric_value for r in card.data.eval_results}
        assert values["pass@1"] == pytest.approx(100 * scores[variant]["pass@1"])
        assert table.splitlines()[4] in card.text and "reproduce.py --config" in card.text

    # The same configuration run again on the same machine gives the same figures: everything after SFT is
    # redone (sampling, verification, pairs, the DPO runs, scoring) and compared.
    for stage in (run / "seed0").iterdir():
        if stage.name.startswith(("rollouts", "pairs-", "dpo-", "eval-")):
            shutil.rmtree(stage)
    again = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    rerun = json.loads((run / "results.json").read_text())["results"][0]
    assert rerun["scores"] == result["scores"] and rerun["pair_stats"] == result["pair_stats"]
    assert rerun["final_logs"] == result["final_logs"]


def test_full_mode_is_the_quick_mode_at_the_size_the_comparison_needs():
    from salv_trl.reproduction.pipeline import load_config

    quick = load_config(ROOT / "recipes" / "tiny" / "config_quick.yaml")
    full = load_config(ROOT / "recipes" / "tiny" / "config_full.yaml")
    assert len(full["seeds"]) >= 3 and quick["seeds"] == [0]
    assert full["tasks"]["test"] >= 200 and full["tasks"]["train"] >= 400 and full["tasks"]["grid"] > 0
    assert full["eval"]["n"] >= 10 and full["sample"]["n"] >= 8 and len(full["dpo_grid"]) >= 2
    # the grid tunes the module-level baseline only, on settings the variants' configs share
    assert all(
        set(point) <= {"learning_rate", "beta", "loss_type", "loss_weights"} for point in full["dpo_grid"]
    )
    assert full["dpo_overrides"] == {} and quick["dpo_overrides"] in full["dpo_grid"]  # the grid's choice
    same = {"seeds", "output_dir", "tasks", "dpo_grid", "dpo_overrides"}
    assert {k: v for k, v in full.items() if k not in same} == {
        k: v for k, v in quick.items() if k not in same
    }


def test_rollout_stats_count_what_passes_by_the_library_rule(tmp_path):
    from datasets import Dataset

    from salv_trl.data.hub import save_config
    from salv_trl.data.rollouts import VERIFIED_ROLLOUT_FEATURES
    from salv_trl.reproduction.pipeline import rollout_stats

    def row(index: int, status: str, correct: list[bool]) -> dict:
        signals = [
            {"name": f"y{i}", "mismatches": 0 if right else 3, "samples": 10, "correct": right}
            for i, right in enumerate(correct)
        ]
        verdict = {"status": status, "detail": "", "signals": signals}
        return {"task_id": "t", "prompt": "p", "completion": "c", "sample_index": index, "verdict": verdict,
                "code_offset": None, "slices": [], "slice_error": None, "verify_settings": None}  # fmt: skip

    rows = [row(0, "ok", [True, True]), row(1, "ok", [True, False]), row(2, "ok", [False, False]),
            row(3, "syntax_error", [])]  # fmt: skip
    save_config(Dataset.from_list(rows, features=VERIFIED_ROLLOUT_FEATURES), tmp_path, "rollouts")
    assert rollout_stats(tmp_path) == {
        "rollouts": 4,
        "fully_correct": 1,
        "failing_with_a_correct_output": 1,
        "statuses": {"ok": 3, "syntax_error": 1},
    }


def test_equal_grid_scores_tie_and_per_signal_pass_decides():
    from salv_trl.reproduction.pipeline import best_grid_point

    # the full run's grid 0 and 1: 359 passing samples each, summed in a different order
    tied = [
        {"pass@1": 0.35900000000000015, "signal_pass": 0.6812},
        {"pass@1": 0.35900000000000004, "signal_pass": 0.6816},
    ]
    assert best_grid_point(tied) == 1
    assert best_grid_point([{"pass@1": 0.3, "signal_pass": 0.7}, {"pass@1": 0.3, "signal_pass": 0.7}]) == 0
    assert best_grid_point([{"pass@1": 0.2, "signal_pass": 0.9}, {"pass@1": 0.3, "signal_pass": 0.1}]) == 1
