"""`PassRateCallback`: the pass rate it logs is the simulated one, and training stops when it is reached."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from salv_trl.evaluation import load_benchmark
from salv_trl.evaluation.callback import PassRateCallback
from salv_trl.evaluation.harness import OPT_IN_ENV, simulator_available
from salv_trl.synthetic import generate_tasks

ROOT = Path(__file__).resolve().parents[1]
requires_simulator = pytest.mark.skipif(not simulator_available(), reason="iverilog not installed")


def write_tasks(path: Path, tasks) -> Path:
    path.write_text("".join(json.dumps(t.row()) + "\n" for t in tasks))
    return path


@requires_simulator
def test_training_stops_at_the_first_measurement_that_reaches_the_pass_rate(tmp_path, monkeypatch):
    """A tiny model memorises task A only: its greedy answer passes A and fails B, so the pass rate on [A, B]
    climbs from 0 to exactly 1/2, and training stops at that measurement, long before `max_steps`."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from salv_trl.tiny import tiny_qwen2, train_tokenizer

    monkeypatch.setenv(OPT_IN_ENV, "1")
    learned, other = generate_tasks(2, split="train", seed=0)
    tokenizer = train_tokenizer([t.prompt + t.completion for t in (learned, other)] * 4, vocab_size=400)
    tokenizer.chat_template = None  # plain prompts, as trained: the callback decodes exactly what SFT saw
    rows = Dataset.from_list([{"prompt": learned.prompt, "completion": learned.completion}] * 32)
    max_steps = 400
    args = SFTConfig(
        output_dir=str(tmp_path / "out"), max_steps=max_steps, learning_rate=1e-2,
        per_device_train_batch_size=8, use_cpu=True, bf16=False, gradient_checkpointing=False,
        save_strategy="no", report_to="none", logging_steps=1000, disable_tqdm=True, seed=0,
    )  # fmt: skip
    model = tiny_qwen2(tokenizer)
    trainer = SFTTrainer(model=model, args=args, train_dataset=rows, processing_class=tokenizer)
    problems = load_benchmark("custom", str(write_tasks(tmp_path / "tasks.jsonl", [learned, other])))
    tokens = len(tokenizer(learned.completion)["input_ids"])
    callback = PassRateCallback(
        trainer, problems, eval_steps=20, stop_at=0.5, max_new_tokens=tokens + 8, workers=1
    )
    trainer.add_callback(callback)
    trainer.train()

    rates = [(h["step"], h["eval_pass_rate"]) for h in trainer.state.log_history if "eval_pass_rate" in h]
    assert [step for step, _ in rates] == list(range(20, 20 * len(rates) + 1, 20))
    assert rates[0][1] == 0.0  # 20 steps from random weights: no module yet
    assert all(rate < 0.5 for _, rate in rates[:-1])
    assert rates[-1][1] == 0.5  # A passes, B (another module) fails
    assert trainer.state.global_step == rates[-1][0] < max_steps

    # decoding seeds the random generators; measuring gives them back as they were, so training goes on as if
    # nothing had been measured
    states = (random.getstate(), np.random.get_state()[1].tolist(), torch.get_rng_state())
    callback.pass_rate(trainer.args)
    assert random.getstate() == states[0] and np.random.get_state()[1].tolist() == states[1]
    assert torch.equal(torch.get_rng_state(), states[2])


def test_bad_settings_are_refused_before_training(monkeypatch, tmp_path):
    tasks = write_tasks(tmp_path / "tasks.jsonl", generate_tasks(1, split="train"))
    problems = load_benchmark("custom", str(tasks))
    trainer = SimpleNamespace()
    monkeypatch.delenv(OPT_IN_ENV, raising=False)
    with pytest.raises(PermissionError, match=OPT_IN_ENV):
        PassRateCallback(trainer, problems)
    monkeypatch.setenv(OPT_IN_ENV, "1")
    with pytest.raises(ValueError, match="stop_at"):
        PassRateCallback(trainer, problems, stop_at=50)
    with pytest.raises(ValueError, match="eval_steps"):
        PassRateCallback(trainer, problems, eval_steps=0)
    with pytest.raises(ValueError, match="at least one problem"):
        PassRateCallback(trainer, [])

    sys.path.insert(0, str(ROOT / "recipes"))
    from recipe_utils import RecipeArguments, add_pass_rate_callback

    # a stopping rule without problems to measure it on is an error, not a silently ignored option
    with pytest.raises(ValueError, match="pass_rate_benchmark"):
        add_pass_rate_callback(trainer, RecipeArguments(dataset_name="x", stop_at_pass_rate=0.5))
