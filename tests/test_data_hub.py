"""Dataset folders: save → load round trip of all three configs, the generated card, and the upload (mocked at
the Hub boundary, never the network)."""

from __future__ import annotations

from pathlib import Path

import pytest
from datasets import Dataset, load_dataset
from huggingface_hub import DatasetCard, DatasetCardData

from salv_trl.cli import main
from salv_trl.data.hub import (
    CONFIGS,
    config_file,
    load_config,
    push_to_hub,
    render_card,
    save_config,
    update_build_info,
)
from salv_trl.data.pairs import PAIR_FEATURES, PairOptions, build_pairs
from salv_trl.data.rollouts import VERIFIED_ROLLOUT_FEATURES, VerifySettings
from salv_trl.data.tasks import TASK_FEATURES

REFERENCE = "module top(input a, b, output y, z);\n  assign y = a & b;\n  assign z = a | b;\nendmodule\n"


def _rollout(index, status, correct=None, completion=None):
    completion = completion or f"Answer {index}\n```verilog\n{REFERENCE}```\n"
    return {
        "task_id": "t0",
        "prompt": "Write it.",
        "completion": completion,
        "sample_index": index,
        "verdict": {
            "status": status,
            "detail": "",
            "signals": [
                {"name": n, "mismatches": 0 if ok else 2, "samples": 8, "correct": ok}
                for n, ok in (correct or {}).items()
            ],
        },
        "code_offset": 21 if status != "no_code" else None,
        "slices": [
            {"signal": "y", "spans": [[21, 50], [60, 75]], "core_spans": [[60, 75]]},
            {"signal": "z", "spans": [[21, 50], [78, 93]], "core_spans": [[78, 93]]},
        ]
        if status == "ok"
        else [],
        "slice_error": None,
        "verify_settings": '{"seed": 3, "simulator": "icarus", "timeout": 10.0, "vectors": 500}',
    }


@pytest.fixture()
def folder(tmp_path) -> Path:
    tasks = Dataset.from_list(
        [{"task_id": "t0", "prompt": "Write it.", "reference": REFERENCE, "testbench": None, "top": "top"}],
        features=TASK_FEATURES,
    )
    rollouts = [
        _rollout(0, "ok", {"y": True, "z": True}),
        _rollout(1, "ok", {"y": True, "z": False}),
        _rollout(2, "compile_error"),
        _rollout(3, "no_code", completion="No idea."),
    ]
    pairs = build_pairs(rollouts, PairOptions())
    update_build_info(tmp_path, "sample", {"model": "tiny/model", "n": 4, "temperature": 1.0, "top_p": 0.95})
    update_build_info(tmp_path, "verify", {"simulator": "icarus", "vectors": 1000, "seed": 0})
    update_build_info(
        tmp_path,
        "pairs",
        {
            **PairOptions().to_dict(),
            "stats": {"mask_share": {"unit": "characters", "chosen": 0.25, "rejected": 0.5}},
        },
    )
    save_config(tasks, tmp_path, "tasks")
    save_config(Dataset.from_list(rollouts, features=VERIFIED_ROLLOUT_FEATURES), tmp_path, "rollouts")
    save_config(Dataset.from_list(pairs, features=PAIR_FEATURES), tmp_path, "pairs")
    return tmp_path


def _load(path, config, tmp_path):
    # A private cache: datasets keys local folders by name, and the test must read what is on disk now.
    return load_dataset(str(path), config, split="train", cache_dir=str(tmp_path / "hf-cache"))


def test_round_trip_of_all_configs(folder, tmp_path):
    for config in CONFIGS:
        written = load_config(folder, config)
        loaded = _load(folder, config, tmp_path)
        assert loaded.features == written.features
        assert loaded.to_list() == written.to_list() and len(loaded) > 0
    rollouts = _load(folder, "rollouts", tmp_path)
    assert rollouts[3]["code_offset"] is None and rollouts[0]["slices"][1]["core_spans"] == [[78, 93]]
    pairs = _load(folder, "pairs", tmp_path)
    # A trainer given the folder (or Hub id) without a config name gets the pairs
    assert _load(folder, None, tmp_path).to_list() == pairs.to_list()
    # A stage re-run in the same folder: load_dataset (same cache) sees the new rows, not its cached copy.
    save_config(pairs.select([0]), folder, "pairs")
    assert len(_load(folder, "pairs", tmp_path)) == 1
    assert sorted(pairs["kind"]) == ["no_code", "signal"] and pairs.features == PAIR_FEATURES


def test_card_is_generated_from_the_data_and_validates(folder):
    card = DatasetCard.load(folder / "README.md")
    assert isinstance(card.data, DatasetCardData)
    data = card.data.to_dict()
    assert [c["config_name"] for c in data["configs"]] == list(CONFIGS)
    assert data["configs"][2]["data_files"] == [{"split": "train", "path": "pairs/train-*"}]
    assert data["size_categories"] == ["n<1K"] and "verilog" in data["tags"]
    sizes = {info["config_name"]: info["splits"][0]["num_examples"] for info in data["dataset_info"]}
    assert sizes == {"tasks": 1, "rollouts": 4, "pairs": 2}
    # The YAML round-trips through huggingface_hub's card classes unchanged.
    assert DatasetCard(str(card)).data.to_dict() == data
    text = card.text
    assert "tiny/model" in text and '`simulator`: "icarus"' in text and "`vectors`: 1000" in text
    for status, count in (("ok", 2), ("compile_error", 1), ("no_code", 1)):
        assert f"| {status} | {count} |" in text
    assert "| signal | 1 |" in text and "| no_code | 1 |" in text
    assert "characters masked in" in text and "chosen 25.0%" in text
    assert "Output signals judged: 4 (3 correct, 1 wrong)" in text
    # the settings the stored verdicts were made with, read from the rows (not from the last run's record)
    # the rows' record predates `method`, `reset_every`, `depth` and `stimulus`: defaults, and the first rules
    made_with = VerifySettings(vectors=500, seed=3, stimulus=1).describe()
    assert made_with.startswith("vectors 500, seed 3, simulator icarus, timeout 10.0, method random")
    assert f"Verdicts made with: {made_with} (4 rollouts)." in text


def test_push_to_hub_uploads_configs_then_card(folder, tmp_path, monkeypatch):
    """The upload is mocked where the network starts: a fake repository folder receives the uploads."""
    repo = tmp_path / "fake-hub-repo"
    calls = []

    def fake_dataset_push(
        self, repo_id, config_name="default", split=None, private=None, token=None, **kwargs
    ):
        calls.append(("data", repo_id, config_name, split))
        self.to_parquet(str(repo / config_name / f"{split}-00000-of-00001.parquet"))

    def fake_card_push(self, repo_id, repo_type=None, token=None, **kwargs):
        calls.append(("card", repo_id, repo_type))
        self.validate = None  # the Hub's validation endpoint is network; the YAML is checked below instead
        (repo / "README.md").write_text(str(self), encoding="utf-8")

    monkeypatch.setattr(Dataset, "push_to_hub", fake_dataset_push)
    monkeypatch.setattr(DatasetCard, "push_to_hub", fake_card_push)
    push_to_hub(folder, "someone/salv-data")
    assert calls == [("data", "someone/salv-data", c, "train") for c in CONFIGS] + [
        ("card", "someone/salv-data", "dataset")
    ]
    card = DatasetCard.load(repo / "README.md")
    assert 'load_dataset("someone/salv-data", "pairs", split="train")' in card.text
    for config in CONFIGS:  # the repository loads exactly as the folder does
        assert _load(repo, config, tmp_path).to_list() == _load(folder, config, tmp_path).to_list()
    calls.clear()  # the verbs upload the same way after their stage
    assert main(["pairs", str(folder), "--push-to-hub", "someone/salv-data", "--no-progress"]) == 0
    assert [c[0] for c in calls] == ["data"] * 3 + ["card"]
    with pytest.raises(ValueError, match="no 'pairs'"):
        config_file(folder, "pairs").unlink()
        push_to_hub(folder, "someone/salv-data", configs=["pairs"])


def test_unknown_config_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown config"):
        config_file(tmp_path, "preferences")
    assert "Signal-aware" in str(render_card(tmp_path))  # an empty folder still renders
