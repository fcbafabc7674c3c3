"""A [`~transformers.TrainerCallback`] that measures a benchmark's pass rate, by simulation, while a model
trains."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from transformers import Trainer, TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.utils import logging

from ..data.benchmarks import Problem
from .official import require_opt_in, simulator_available
from .scoring import Scorer

logger = logging.get_logger(__name__)


@contextmanager
def _random_states_kept(device: torch.device) -> Iterator[None]:
    """Restore Python's, NumPy's and torch's random states (CPU, and `device`'s) on exit: decoding seeds them,
    and measuring must not change the training that follows."""
    import random

    import numpy as np

    python_state, numpy_state = random.getstate(), np.random.get_state()
    on_cpu = device.type == "cpu"  # torch's CPU generator is always forked; an accelerator's only when named
    try:
        with torch.random.fork_rng(
            devices=[] if on_cpu else [device], device_type=None if on_cpu else device.type
        ):
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


class PassRateCallback(TrainerCallback):
    r"""
    Every `freq` optimizer steps, and once more at the end of training, decode one greedy completion per
    problem with the model being trained, score the completions with the problem's official harness (the
    path of the `verilog_pass_at_k` metric: [`salv_trl.evaluation.report.evaluate_completions`], in the
    sandbox) and log their pass rate as `eval_pass_rate`. With `stop_at`, training stops at the first
    measurement that reaches it.

    Stopping at a pass rate sizes a run by what the model can do instead of by a step count: how many steps a
    small model needs before it starts getting modules right varies a lot with the seed, so a fixed schedule
    leaves one seed hopeless and over-trains another. Note that `max_steps` still shapes the learning-rate
    schedule (a cosine schedule decays over `max_steps`, not over the steps actually run).

    Usage, with a tiny model and synthetic tasks (a file of held-out `custom` tasks, then SFT on others):

    ```python
    >>> import os, tempfile
    >>> from unittest import mock
    >>> from trl import SFTConfig, SFTTrainer
    >>> from salv_trl.evaluation import load_benchmark
    >>> from salv_trl.evaluation.callback import PassRateCallback
    >>> from salv_trl.synthetic import generate_tasks, sft_dataset, tasks_dataset
    >>> from salv_trl.tiny import tiny_qwen2, train_tokenizer

    >>> folder = tempfile.TemporaryDirectory()
    >>> dev_tasks = os.path.join(folder.name, "dev_tasks.jsonl")
    >>> _ = tasks_dataset(generate_tasks(2, split="test")).to_json(dev_tasks)
    >>> problems = load_benchmark("custom", dev_tasks)
    >>> train = generate_tasks(2, split="train")
    >>> tokenizer = train_tokenizer([task.prompt + task.completion for task in train], vocab_size=400)
    >>> tokenizer.chat_template = None  # plain prompts, as in `sft_dataset`: the callback decodes them alike
    >>> trainer = SFTTrainer(
    ...     model=tiny_qwen2(tokenizer),
    ...     args=SFTConfig(
    ...         folder.name, max_steps=1, save_strategy="no", report_to="none",
    ...         use_cpu=True, bf16=False,  # on CPU: trl turns bf16 on by default
    ...     ),
    ...     train_dataset=sft_dataset(train),
    ...     processing_class=tokenizer,
    ... )
    >>> # the opt-in to simulating model-written code (usually `export SALV_TRL_ALLOW_CODE_EXECUTION=1`)
    >>> with mock.patch.dict(os.environ, {"SALV_TRL_ALLOW_CODE_EXECUTION": "1"}):  # doctest: +ELLIPSIS
    ...     callback = PassRateCallback(trainer, problems, freq=100, stop_at=0.5, max_new_tokens=32)
    ...     trainer.add_callback(callback)
    ...     _ = trainer.train()
    {'train_runtime': ...}
    >>> [log["eval_pass_rate"] for log in trainer.state.log_history if "eval_pass_rate" in log]
    [0.0]
    >>> folder.cleanup()

    ```

    The callback would measure every 100 steps and stop training at a pass rate of 50%; this run is one step
    long, so it measures once, at the end: from nearly random weights, no module works yet.

    Args:
        trainer ([`~transformers.Trainer`]):
            The trainer the callback is attached to; its `processing_class` must be the model's tokenizer.
        problems (`Sequence[Problem]`):
            The problems to decode, from [`salv_trl.evaluation.load_benchmark`] (any benchmark, or `custom`
            tasks). Use problems the model is neither trained nor scored on: with `stop_at` they steer
            training.
        freq (`int`, *optional*, defaults to `100`):
            Measure every this many optimizer steps.
        stop_at (`float`, *optional*):
            Stop training once the pass rate is at least this (a fraction, 0 to 1).
        max_new_tokens (`int`, *optional*, defaults to `1024`):
            Token budget of each completion.
        batch_size (`int`, *optional*, defaults to `16`):
            Prompts per `generate` call.
        workers (`int`, *optional*):
            Parallel simulation sandboxes (default: the CPU count).

    Each process decodes its share of the problems and the main process simulates them (DDP, and DeepSpeed
    ZeRO-3 through its gathered parameters: both with 2 processes in tests/test_recipes.py). FSDP is refused:
    every forward pass of a wrapped layer gathers its shards from all processes, so the processes would have
    to decode in lockstep, which greedy decoding of different problems (different lengths) does not.
    Simulating model-written Verilog needs Icarus Verilog and the `SALV_TRL_ALLOW_CODE_EXECUTION=1` opt-in:
    without them the callback refuses to be created, before any training step. A measurement in which no
    problem is scorable (every reference fails its own harness) is an error on every process.
    """

    def __init__(
        self,
        trainer: Trainer,
        problems: Sequence[Problem],
        freq: int = 100,
        stop_at: float | None = None,
        max_new_tokens: int = 1024,
        batch_size: int = 16,
        workers: int | None = None,
    ):
        from accelerate.utils import DistributedType

        require_opt_in()
        if not simulator_available():
            raise RuntimeError("PassRateCallback simulates with Icarus Verilog: install iverilog (and vvp)")
        if trainer.accelerator.distributed_type == DistributedType.FSDP:
            raise ValueError("PassRateCallback does not support FSDP; use DDP or DeepSpeed")
        if not problems:
            raise ValueError("PassRateCallback needs at least one problem")
        if freq < 1:
            raise ValueError(f"freq must be positive, got {freq}")
        if stop_at is not None and not 0 < stop_at <= 1:
            raise ValueError(f"stop_at is a pass rate in (0, 1], got {stop_at}")
        systems = {p.system_prompt for p in problems}
        if len(systems) > 1:
            raise ValueError(f"the problems have {len(systems)} different system messages")
        self.trainer = trainer
        self.problems = list(problems)
        self.system = systems.pop() or None
        self.freq = freq
        self.stop_at = stop_at
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.scorer = Scorer(workers)  # greedy completions often repeat between measurements: scored once
        self._measured_step = -1

    def pass_rate(self, args: TrainingArguments) -> float:
        """Decode every problem greedily (each process its share), score on the main process, and return the
        pass rate on every process (or raise the main process's error on every process)."""
        from accelerate.utils import broadcast_object_list, gather_object
        from trl.models import unwrap_model_for_generation

        from salv_trl.data.sampling import sample_completions

        from .report import evaluate_completions

        accelerator = self.trainer.accelerator
        with (
            _random_states_kept(accelerator.device),
            accelerator.split_between_processes([p.prompt for p in self.problems]) as prompts,
            unwrap_model_for_generation(
                self.trainer.model_wrapped,
                accelerator,
                gradient_checkpointing_kwargs=args.gradient_checkpointing_kwargs,
            ) as unwrapped,
        ):
            completions = sample_completions(
                unwrapped, self.trainer.processing_class, prompts, n=1, temperature=0.0,
                max_new_tokens=self.max_new_tokens, seed=args.seed, batch_size=self.batch_size,
                progress=False, system=self.system,
            )  # fmt: skip
        completions = gather_object(completions)
        outcome: list[tuple[float | None, str | None]] = [(None, None)]
        if accelerator.is_main_process:
            try:
                report = evaluate_completions(
                    self.problems[0].benchmark,
                    completions,
                    [p.task_id for p in self.problems],
                    problems=self.problems,
                    progress=False,
                    scorer=self.scorer,
                )
                if "pass@1" not in report.pass_at_k:
                    raise ValueError(f"no problem is scorable: {', '.join(report.unscorable)}")
                # the metric's rule: a problem whose reference fails its own harness is left out
                if report.unscorable:
                    logger.warning(
                        "pass rate leaves out unscorable problems: %s", ", ".join(report.unscorable)
                    )
                outcome = [(report.pass_at_k["pass@1"], None)]
            except Exception as error:  # raised below on every process, not only here
                outcome = [(None, f"{type(error).__name__}: {error}")]
        rate, error = broadcast_object_list(outcome)[0]
        if error is not None:
            raise RuntimeError(f"PassRateCallback could not score the completions: {error}")
        return rate

    def _measure(self, args: TrainingArguments, state: TrainerState, control: TrainerControl) -> float:
        self._measured_step = state.global_step
        model = self.trainer.model_wrapped
        was_training = model.training
        # In eval mode trl's `log` leaves this step's train metrics to the trainer's own log entry.
        model.eval()
        try:
            rate = self.pass_rate(args)
            # `Trainer.log` clears `should_log`: keep it, so that the trainer still logs its loss this step
            should_log = control.should_log
            self.trainer.log({"eval_pass_rate": rate})
            control.should_log = should_log
        finally:
            model.train(was_training)
        return rate

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs
    ) -> TrainerControl:
        if state.global_step % self.freq:
            return control
        rate = self._measure(args, state, control)
        if self.stop_at is not None and rate >= self.stop_at:
            control.should_training_stop = True
            self.trainer.accelerator.print(
                f"Pass rate {rate:.3f} at step {state.global_step} reached {self.stop_at}: training stops."
            )
        return control

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs
    ) -> TrainerControl:
        # the final model is measured even when `max_steps` is not a multiple of `freq`
        if state.global_step != self._measured_step:
            self._measure(args, state, control)
        self.scorer.close()
        return control
