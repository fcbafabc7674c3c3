"""salv_trl.model_card: valid Hub metadata, model-index from results, the evaluation table."""

from __future__ import annotations

from huggingface_hub import ModelCard

from salv_trl.model_card import render_model_card


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
