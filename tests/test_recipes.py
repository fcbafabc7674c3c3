"""`accelerate launch recipes/dpo.py` on CPU: tiny assets, LoRA adapter, model card, kill -9 and resume, 2
processes (DDP, DeepSpeed ZeRO-3) training as one, and the accelerate configs read by accelerate's parser."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
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
ACCELERATE_CONFIGS = ROOT / "recipes" / "accelerate_configs"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def launch_two(config: str) -> list[str]:
    """`accelerate launch` of 2 processes with one of the recipes' accelerate configs. (`--cpu` would run one
    process whatever `--num_processes` says: accelerate's simple launcher.)"""
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    return [
        *ACCELERATE, "--config_file", str(ACCELERATE_CONFIGS / f"{config}.yaml"), "--num_processes", "2",
        "--mixed_precision", "no", "--main_process_ip", "127.0.0.1", "--main_process_port", str(port),
    ]  # fmt: skip


def dpo_command(tmp_path: Path, output: str, *extra: str, launch: list[str] = LAUNCH_ONE) -> list[str]:
    return [
        *launch, str(ROOT / "recipes" / "dpo.py"), "--config", str(TINY_CONFIG),
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


def history(path: Path) -> list[dict]:
    return json.loads((path / "trainer_state.json").read_text())["log_history"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("recipe")
    run(dpo_command(tmp_path, "full"))
    return tmp_path


@pytest.fixture(scope="module")
def measure_pass_rate(uninterrupted) -> list[str]:
    """Recipe options that measure the greedy pass rate of 2 synthetic tasks every 2 steps."""
    if shutil.which("iverilog") is None:
        pytest.skip("iverilog not installed: the pass rate is measured by simulation")
    tasks = uninterrupted / "dev_tasks.jsonl"
    tasks.write_text("".join(json.dumps(t.row()) + "\n" for t in generate_tasks(2, split="train")))
    return ["--pass_rate_benchmark", "custom", "--pass_rate_data_dir", str(tasks), "--pass_rate_steps", "2",
            "--pass_rate_max_new_tokens", "48"]  # fmt: skip


# One optimizer step sees the same 8 rows in the same order either way: 2 processes x 2 accumulated batches of
# 2 (accelerate deals the sampler's batches out in turn), or 1 process x 4 x 2.
SAME_STEPS = ("--max_steps", "4", "--save_strategy", "no", "--logging_steps", "1")


@pytest.fixture(scope="module")
def one_process(uninterrupted, measure_pass_rate):
    options = (*SAME_STEPS, "--gradient_accumulation_steps", "4", *measure_pass_rate)
    run(dpo_command(uninterrupted, "one-process", *options), SALV_TRL_ALLOW_CODE_EXECUTION="1")
    return uninterrupted / "one-process"


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
def test_measuring_the_pass_rate_while_training_leaves_the_training_unchanged(
    uninterrupted, measure_pass_rate
):
    run(dpo_command(uninterrupted, "measured", *measure_pass_rate), SALV_TRL_ALLOW_CODE_EXECUTION="1")
    # the recipe saves its log history beside the adapter: a measurement every 2 of the 6 steps, and the
    # trainer's own entries (loss, rewards) on the same steps all still there
    logged = history(uninterrupted / "measured")
    assert [h["step"] for h in logged if "eval_pass_rate" in h] == [2, 4, 6]
    assert [h["step"] for h in logged if "loss" in h and "rewards/margins" in h] == [2, 4, 6]
    # and the adapter is bit for bit the one trained without measuring
    measured, full = adapter(uninterrupted / "measured"), adapter(uninterrupted / "full")
    assert measured.keys() == full.keys()
    for name in full:
        assert (measured[name] == full[name]).all(), name


# What 2 processes on CPU need besides the config: DDP runs over gloo with the tiny config's `use_cpu: true`;
# DeepSpeed needs `use_cpu: false` and `ddp_backend: gloo` (`salv_trl.recipes.check_launch` says why).
TWO_PROCESSES = {"ddp": (), "zero3": ("--use_cpu", "false", "--ddp_backend", "gloo")}


@pytest.mark.slow  # `accelerate launch` runs
@pytest.mark.parametrize("config", sorted(TWO_PROCESSES))
def test_two_processes_train_as_one(one_process, measure_pass_rate, config):
    """2 processes (gloo) with `recipes/accelerate_configs/{ddp,zero3}.yaml` end with the loss and the adapter
    of one process within 1e-6 (float32; only the order of the sums differs), and `PassRateCallback` measures
    the same pass rates at the same steps (each process decodes half of the tasks)."""
    if config == "zero3" and importlib.util.find_spec("deepspeed") is None:
        pytest.skip("DeepSpeed is not installed (pip install 'salv-trl[deepspeed]')")
    options = (*SAME_STEPS, "--gradient_accumulation_steps", "2", *measure_pass_rate, *TWO_PROCESSES[config])
    output = one_process.parent / config
    run(dpo_command(one_process.parent, config, *options, launch=launch_two(config)),
        SALV_TRL_ALLOW_CODE_EXECUTION="1")  # fmt: skip
    one, two = history(one_process), history(output)
    # the processes split the rows: one step is half of the 16 rows' epoch, as with one process of 4 x 2
    assert (
        [h["epoch"] for h in two if "loss" in h]
        == [h["epoch"] for h in one if "loss" in h]
        == [0.5, 1.0, 1.5, 2.0]
    )
    for key in ("loss", "eval_pass_rate"):
        steps = [(h["step"], h[key]) for h in one if key in h]
        assert [s for s, _ in steps] == ([1, 2, 3, 4] if key == "loss" else [2, 4])
        assert [h["step"] for h in two if key in h] == [s for s, _ in steps]
        assert [h[key] for h in two if key in h] == pytest.approx([v for _, v in steps], abs=1e-6), key
    weights, reference = adapter(output), adapter(one_process)
    assert weights.keys() == reference.keys()
    assert any(name.endswith("lora_B.weight") and w.abs().max() > 1e-4 for name, w in reference.items())
    for name in reference:
        assert (weights[name] - reference[name]).abs().max() <= 1e-6, name


def test_fsdp_on_cpu_is_refused_with_the_reason(tmp_path, monkeypatch):
    """An FSDP launch on a machine without an accelerator stops before the model loads, saying why, instead of
    failing inside accelerate or training as plain DDP; so do DeepSpeed with `use_cpu` and processes that do
    not see each other."""
    from salv_trl.recipes import check_launch
    from salv_trl.trainer import SignalAwareDPOConfig

    args = SignalAwareDPOConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    check_launch(args)  # one process, no distributed config: fine
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    with pytest.raises(ValueError, match="FSDP needs an accelerator"):
        check_launch(args)
    monkeypatch.delenv("ACCELERATE_USE_FSDP")
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    with pytest.raises(ValueError, match="DeepSpeed on CPU needs `use_cpu: false` and `ddp_backend: gloo`"):
        check_launch(args)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="accelerate launched 2 processes but each sees 1"):
        check_launch(args)


@pytest.mark.parametrize(
    ("config", "flag"), [("ddp", "multi_gpu"), ("fsdp", "use_fsdp"), ("zero3", "use_deepspeed")]
)
def test_accelerate_configs_pass_accelerate_launch_validation(config, flag):
    """Each config as `accelerate launch` reads and validates it before launching anything."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    parsed = launch_command_parser().parse_args(
        ["--config_file", str(ACCELERATE_CONFIGS / f"{config}.yaml"), "x.py"]
    )
    args, defaults, _ = _validate_launch_command(parsed)
    assert getattr(args, flag) and args.mixed_precision == "bf16" and args.num_processes == 8
    if config == "fsdp":
        assert args.fsdp_auto_wrap_policy == "TRANSFORMER_BASED_WRAP" and args.fsdp_use_orig_params  # PEFT
    if config == "zero3":
        assert args.zero_stage == 3


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
