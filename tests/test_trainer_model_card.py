"""salv_trl.model_card: valid Hub metadata, model-index from results, the evaluation table, the template
shipped in the package, and the trainer's card."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from datasets import Dataset
from huggingface_hub import ModelCard

from salv_trl.model_card import TEMPLATE, render_model_card
from salv_trl.tiny import tiny_preference_rows, tiny_qwen2, train_tokenizer
from salv_trl.trainer import SignalAwareDPOConfig, SignalAwareDPOTrainer

ROOT = Path(__file__).resolve().parents[1]


def test_card_with_results_has_model_index_and_table():
    card = render_model_card(
        "me/coder-salv",
        base_model="Qwen/Qwen2.5-Coder-7B-Instruct",
        datasets=["me/pairs"],
        hyperparameters={"signal_mask": "full", "beta": 0.1, "lora_r": 8},
        results={"RTLLM v1.1": {"pass@5": 72.4, "pass@1": 62.6}, "VerilogEval v2": {"pass@1": 50.0}},
    )
    reloaded = ModelCard(str(card))  # parses and validates the metadata
    values = {(r.dataset_name, r.metric_type): r.metric_value for r in reloaded.data.eval_results}
    assert values == {
        ("RTLLM v1.1", "pass@1"): 62.6,
        ("RTLLM v1.1", "pass@5"): 72.4,
        ("VerilogEval v2", "pass@1"): 50.0,
    }
    assert (
        reloaded.data.base_model == "Qwen/Qwen2.5-Coder-7B-Instruct" and reloaded.data.library_name == "peft"
    )
    assert "| RTLLM v1.1 | 62.6 | 72.4 |" in card.text and "| VerilogEval v2 | 50.0 | – |" in card.text
    assert "ablation" in card.text and "arXiv:2510.19296" in card.text


def test_card_without_results_or_hyperparameters():
    card = render_model_card("tiny", method="rejection-sampled SFT")
    assert card.data.eval_results is None and "model-index" not in str(card)
    assert (
        "Not evaluated yet" in card.text and "rejection sampling" in card.text and "DPO loss" not in card.text
    )
    assert card.data.library_name == "transformers"


def test_only_hub_ids_are_linked_and_listed_as_datasets(tmp_path):
    local = tmp_path / "pairs"
    local.mkdir()
    card = render_model_card("tiny", datasets=["me/pairs", "outputs/tiny-qwen2/pairs", str(local)])
    assert card.data.datasets == ["me/pairs"]
    assert "(https://huggingface.co/datasets/me/pairs)" in card.text
    assert "`outputs/tiny-qwen2/pairs`" in card.text and f"`{local}`" in card.text
    assert "datasets/outputs" not in card.text


def test_card_evaluation_notes_follow_the_table():
    notes = "| model | pass@1 |\n|---|---|\n| SFT | 12.5 |"
    card = render_model_card("tiny", results={"synthetic": {"pass@1": 20.0}}, evaluation_notes=notes)
    assert card.text.index("| synthetic | 20.0 |") < card.text.index(notes)
    assert notes not in render_model_card("tiny").text


def test_template_is_read_from_the_package_alone(tmp_path):
    # the package without the repository around it, as a wheel installs it
    shutil.copytree(ROOT / "salv_trl", tmp_path / "salv_trl", ignore=shutil.ignore_patterns("__pycache__"))
    script = (
        "from salv_trl.model_card import TEMPLATE, render_model_card; render_model_card('x'); print(TEMPLATE)"
    )
    run = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(run.stdout.strip()) == tmp_path / "salv_trl" / "templates" / "model_card.md"


def test_top_level_template_links_to_the_package():
    assert (ROOT / "model_card.md").is_symlink() and (ROOT / "model_card.md").samefile(TEMPLATE)


def test_trainer_writes_the_salv_card(tmp_path):
    rows = tiny_preference_rows(2)
    tokenizer = train_tokenizer([r["prompt"] + r["chosen"] + r["rejected"] for r in rows], vocab_size=300)
    args = SignalAwareDPOConfig(
        str(tmp_path / "tiny-salv"), beta=0.25, report_to="none", use_cpu=True, bf16=False
    )
    trainer = SignalAwareDPOTrainer(
        model=tiny_qwen2(tokenizer),
        ref_model=tiny_qwen2(tokenizer),
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
    )
    trainer.create_model_card(dataset_name="me/pairs", tags="extra")
    card = ModelCard.load(tmp_path / "tiny-salv" / "README.md")
    assert card.data.model_name == "tiny-salv" and card.data.datasets == ["me/pairs"]
    assert {"salv", "signal-aware-dpo", "extra"} <= set(card.data.tags)
    assert card.data.base_model is None  # built from a config: no Hub id to link
    assert "| beta | 0.25 |" in card.text and "| signal_mask | signal |" in card.text
