"""The prepared GPU check, `benchmarks/gpu/bench_7b.py`, in its CPU smoke mode (`--tiny`): the script that is
run on a GPU machine cannot rot between those runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_runs_tiny_on_cpu(tmp_path):
    output = tmp_path / "bench.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = [
        sys.executable,
        str(ROOT / "benchmarks" / "gpu" / "bench_7b.py"),
        "--tiny",
        "--output",
        str(output),
    ]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = json.loads(output.read_text())
    signal, dpo = figures["train"]
    assert (signal["arm"], dpo["arm"]) == ("SignalAwareDPOTrainer", "DPOTrainer")
    recipe = yaml.safe_load(
        (ROOT / "recipes" / "Qwen2.5-Coder-7B-Instruct" / "dpo" / "config_salv.yaml").read_text()
    )
    for arm in (signal, dpo):
        assert arm["steps"] == 2 and arm["median_step_s"] > 0 and arm["tokens_per_s"] > 0
        assert arm["lora"] == {
            "r": recipe["lora_r"],
            "alpha": recipe["lora_alpha"],
            "targets": recipe["lora_target_modules"],
        }
        assert 0 < arm["trainable_parameters"] < arm["parameters"]
    # the same pairs in both arms, every sequence (chosen and rejected) cut at max_length
    assert signal["tokens_per_step"] == dpo["tokens_per_step"] == 2 * signal["max_length"]
    # the signal-aware loss sees part of the completion, plain DPO all of it
    assert 0 < signal["signal_token_share"] < 1 and dpo["signal_token_share"] is None
    generation = figures["generate"]
    assert generation["tokens_per_s"] > 0 and generation["new_tokens"] > 0
    assert "step time, signal-aware / DPO" in result.stdout
