"""`accelerate launch recipes/dpo.py` on CPU: tiny assets, LoRA adapter, model card, kill -9 and resume,
2 processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from huggingface_hub import ModelCard
from safetensors.torch import load_file

from salv_trl.synthetic import generate_tasks

ROOT = Path(__file__).resolve().parents[1]
ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch"]
# `accelerate launch` of one CPU process, with no accelerate config file to read
LAUNCH_ONE = [*ACCELERATE, "--cpu", "--num_processes", "1", "--num_machines", "1", "--mixed_precision", "no",
              "--dynamo_backend", "no"]  # fmt: skip
TINY_CONFIG = ROOT / "recipes" / "tiny-qwen2" / "dpo" / "config_cpu.yaml"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def dpo_command(tmp_path: Path, output: str, *extra: str, processes: int = 1) -> list[str]:
    return [
        *ACCELERATE, "--cpu", "--num_processes", str(processes), "--num_machines", "1",
        "--mixed_precision", "no",
        "--dynamo_backend", "no", "--main_process_port", str(29500 + os.getpid() % 1000 + processes),
        str(ROOT / "recipes" / "dpo.py"), "--config", str(TINY_CONFIG),
        "--model_name_or_path", str(tmp_path / "model"), "--dataset_name", str(tmp_path / "pairs"),
        "--tiny_rows", "16", "--output_dir", str(tmp_path / output), "--max_steps", "6", "--save_steps", "2",
        "--logging_steps", "2", "--disable_tqdm", "true", *extra,
    ]  # fmt: skip


def run(command: list[str], **env: str) -> None:
    env = {**ENV, **env}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def adapter(path: Path) -> dict:
    return load_file(path / "adapter_model.safetensors")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("recipe")
    run(dpo_command(tmp_path, "full"))
    return tmp_path


@pytest.mark.slow  # `accelerate launch` runs
def test_tiny_config_builds_assets_trains_a_lora_adapter_and_renders_the_card(uninterrupted):
    config = yaml.safe_load(TINY_CONFIG.read_text())
    assert config["make_tiny"] and config["use_peft"] and config["use_cpu"]
    out = uninterrupted / "full"
    assert (uninterrupted / "model" / "config.json").is_file()
    assert (uninterrupted / "pairs" / "train.jsonl").is_file()
    weights = adapter(out)
    assert weights and all("lora_" in name for name in weights)
    card = ModelCard.load(out / "README.md")
    assert card.data.library_name == "peft" and "salv" in card.data.tags
    assert (
        "2510.19296" in card.text
        and "| signal_mask | signal |" in card.text
        and "| lora_r | 8 |" in card.text
    )
    # the card's hyperparameters, also as JSON beside the weights (what the tiny reproduction reads back)
    hyperparameters = json.loads((out / "training_hyperparameters.json").read_text())
    assert hyperparameters["signal_mask"] == "signal" and hyperparameters["lora_r"] == 8


@pytest.mark.slow  # `accelerate launch` runs
def test_kill_9_then_resume_ends_with_the_same_adapter(uninterrupted):
    tmp_path = uninterrupted
    checkpoint = tmp_path / "killed" / "checkpoint-2"
    process = subprocess.Popen(
        dpo_command(tmp_path, "killed"),
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not (
            (checkpoint / "trainer_state.json").is_file() and (checkpoint / "rng_state.pth").is_file()
        ):
            assert process.poll() is None, "the run ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint after 300 s"
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert not (tmp_path / "killed" / "adapter_model.safetensors").exists(), (
        "killed after the end of training"
    )

    run(dpo_command(tmp_path, "killed", "--resume_from_checkpoint", str(checkpoint)))
    resumed, full = adapter(tmp_path / "killed"), adapter(tmp_path / "full")
    assert resumed.keys() == full.keys()
    for name in full:
        assert (resumed[name] == full[name]).all(), name


@pytest.mark.slow  # `accelerate launch` runs
@pytest.mark.skipif(shutil.which("iverilog") is None, reason="iverilog not installed")
def test_measuring_the_pass_rate_while_training_leaves_the_training_unchanged(uninterrupted):
    tasks = uninterrupted / "dev_tasks.jsonl"
    tasks.write_text("".join(json.dumps(t.row()) + "\n" for t in generate_tasks(2, split="train")))
    measure = ["--pass_rate_benchmark", "custom", "--pass_rate_data_dir", str(tasks)]
    run(
        dpo_command(
            uninterrupted, "measured", *measure, "--pass_rate_steps", "2", "--pass_rate_max_new_tokens", "48"
        ),
        SALV_TRL_ALLOW_CODE_EXECUTION="1",
    )
    # the recipe saves its log history beside the adapter: a measurement every 2 of the 6 steps, and the
    # trainer's own entries (loss, rewards) on the same steps all still there
    history = json.loads((uninterrupted / "measured" / "trainer_state.json").read_text())["log_history"]
    assert [h["step"] for h in history if "eval_pass_rate" in h] == [2, 4, 6]
    assert [h["step"] for h in history if "loss" in h and "rewards/margins" in h] == [2, 4, 6]
    # and the adapter is bit for bit the one trained without measuring
    measured, full = adapter(uninterrupted / "measured"), adapter(uninterrupted / "full")
    assert measured.keys() == full.keys()
    for name in full:
        assert (measured[name] == full[name]).all(), name


@pytest.mark.slow  # `accelerate launch` runs
def test_two_processes(uninterrupted):
    run(dpo_command(uninterrupted, "ddp", "--max_steps", "2", "--save_strategy", "no", processes=2))
    assert adapter(uninterrupted / "ddp")


@pytest.mark.slow  # `accelerate launch` runs
def test_sft_recipe_on_the_chosen_completions(uninterrupted):
    config = ROOT / "recipes" / "tiny-qwen2" / "sft" / "config_cpu.yaml"
    run(
        [
            *LAUNCH_ONE,
            str(ROOT / "recipes" / "sft.py"),
            "--config",
            str(config),
            "--model_name_or_path",
            str(uninterrupted / "model"),
            "--dataset_name",
            str(uninterrupted / "pairs"),
            "--output_dir",
            str(uninterrupted / "sft"),
            "--max_steps",
            "2",
            "--disable_tqdm",
            "true",
        ]  # fmt: skip
    )
    card = ModelCard.load(uninterrupted / "sft" / "README.md")
    assert "rejection-sampled SFT" in card.text and "beta" not in card.text
    assert (uninterrupted / "sft" / "model.safetensors").is_file()


def test_load_any_dataset_reads_every_local_layout(tmp_path):
    from datasets import Dataset, DatasetDict

    from salv_trl.recipes import load_any_dataset

    rows = Dataset.from_list([{"prompt": "p", "chosen": "c", "rejected": "r", "chosen_spans": [[0, 1]]}] * 3)
    rows.to_json(tmp_path / "pairs.jsonl")
    rows.to_parquet(tmp_path / "pairs.parquet")
    (tmp_path / "folder").mkdir()
    rows.to_json(tmp_path / "folder" / "train.jsonl")
    rows.save_to_disk(tmp_path / "saved")
    DatasetDict(train=rows, test=rows).save_to_disk(tmp_path / "saved_dict")
    for name in ("pairs.jsonl", "pairs.parquet", "folder", "saved", "saved_dict"):
        dataset = load_any_dataset(str(tmp_path / name))
        assert dataset["train"]["chosen_spans"] == [[[0, 1]]] * 3, name
    with pytest.raises(ValueError, match="unknown data file type"):
        (tmp_path / "pairs.txt").write_text("x")
        load_any_dataset(str(tmp_path / "pairs.txt"))


def test_recipe_scripts_import_the_package_without_path_hacks():
    scripts = sorted((ROOT / "recipes").rglob("*.py"))
    assert {"dpo.py", "sft.py", "reproduce.py"} <= {script.name for script in scripts}
    for script in scripts:
        source = script.read_text()
        assert "sys.path" not in source and "E402" not in source, script


@pytest.mark.parametrize(
    ("script", "option"),
    [("dpo.py", "--signal_mask"), ("sft.py", "--stop_at_pass_rate")],
)
def test_recipes_launch_from_any_directory(tmp_path, script, option):
    command = [*LAUNCH_ONE, str(ROOT / "recipes" / script), "--help"]
    result = subprocess.run(command, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and option in result.stdout, result.stdout[-3000:] + result.stderr[-3000:]


def test_tiny_reproduction_runs_from_any_directory(tmp_path):
    command = [sys.executable, str(ROOT / "recipes" / "tiny" / "reproduce.py"), "--help"]
    result = subprocess.run(command, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and "--seeds" in result.stdout, result.stderr[-3000:]
