"""`PassRateCallback`: the pass rate it logs is the simulated one, and training stops when it is reached."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from salv_trl.evaluation import load_benchmark
from salv_trl.evaluation.callback import PassRateCallback
from salv_trl.evaluation.official import OPT_IN_ENV, simulator_available
from salv_trl.synthetic import generate_tasks

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
        save_strategy="no", report_to="none", logging_steps=20, disable_tqdm=True, seed=0,
    )  # fmt: skip
    model = tiny_qwen2(tokenizer)
    trainer = SFTTrainer(model=model, args=args, train_dataset=rows, processing_class=tokenizer)
    problems = load_benchmark("custom", str(write_tasks(tmp_path / "tasks.jsonl", [learned, other])))
    tokens = len(tokenizer(learned.completion)["input_ids"])
    callback = PassRateCallback(trainer, problems, freq=20, stop_at=0.5, max_new_tokens=tokens + 8, workers=1)
    trainer.add_callback(callback)
    trainer.train()

    history = trainer.state.log_history
    rates = [(h["step"], h["eval_pass_rate"]) for h in history if "eval_pass_rate" in h]
    assert [step for step, _ in rates] == list(range(20, 20 * len(rates) + 1, 20))
    # the trainer's own log entries (loss, with trl's train metrics) are all there, on the same steps, and the
    # measurements do not take the train metrics over
    train_logs = [h for h in history if "loss" in h]
    assert [h["step"] for h in train_logs] == [step for step, _ in rates]
    assert all("mean_token_accuracy" in h for h in train_logs)
    assert not any("mean_token_accuracy" in h for h in history if "eval_pass_rate" in h)
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

    # a measurement with nothing to score is an error, not a pass rate of 0
    broken = [
        replace(
            problems[0], task_id="broken", reference="module top_module(output y); assign y = ; endmodule"
        )
    ]
    with pytest.raises(RuntimeError, match="no problem is scorable: broken"):
        PassRateCallback(trainer, broken, max_new_tokens=4, workers=1).pass_rate(trainer.args)


@requires_simulator
def test_bad_settings_are_refused_before_training(monkeypatch, tmp_path):
    from accelerate.utils import DistributedType

    tasks = write_tasks(tmp_path / "tasks.jsonl", generate_tasks(1, split="train"))
    problems = load_benchmark("custom", str(tasks))
    trainer = SimpleNamespace(accelerator=SimpleNamespace(distributed_type=DistributedType.NO))
    monkeypatch.delenv(OPT_IN_ENV, raising=False)
    with pytest.raises(PermissionError, match=OPT_IN_ENV):
        PassRateCallback(trainer, problems)
    monkeypatch.setenv(OPT_IN_ENV, "1")
    with pytest.raises(ValueError, match="stop_at"):
        PassRateCallback(trainer, problems, stop_at=50)
    with pytest.raises(ValueError, match="freq"):
        PassRateCallback(trainer, problems, freq=0)
    with pytest.raises(ValueError, match="at least one problem"):
        PassRateCallback(trainer, [])
    fsdp = SimpleNamespace(accelerator=SimpleNamespace(distributed_type=DistributedType.FSDP))
    with pytest.raises(ValueError, match="FSDP"):
        PassRateCallback(fsdp, problems)
    monkeypatch.setattr("salv_trl.evaluation.callback.simulator_available", lambda: False)
    with pytest.raises(RuntimeError, match="iverilog"):
        PassRateCallback(trainer, problems)

    from salv_trl.recipes import RecipeArguments

    # the recipes' options are checked when parsed, before any model loads; an option that would be ignored is
    # an error
    with pytest.raises(ValueError, match="need pass_rate_benchmark"):
        RecipeArguments(dataset_name="x", stop_at_pass_rate=0.5)
    with pytest.raises(ValueError, match="need pass_rate_benchmark"):
        RecipeArguments(dataset_name="x", pass_rate_data_dir=str(tasks))
    with pytest.raises(ValueError, match="fraction"):
        RecipeArguments(dataset_name="x", pass_rate_benchmark="custom", stop_at_pass_rate=30)
