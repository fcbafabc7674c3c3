"""A [`~transformers.TrainerCallback`] that measures a benchmark's pass rate, by simulation, while a model
trains."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from transformers import Trainer, TrainerCallback
from transformers.utils import logging

from .benchmarks import Problem
from .harness import require_opt_in

logger = logging.get_logger(__name__)


@contextmanager
def _random_states_kept() -> Iterator[None]:
    """Restore Python's, NumPy's and torch's random states on exit: decoding seeds them, and measuring must
    not change the training that follows."""
    import random

    import numpy as np
    import torch

    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=range(torch.cuda.device_count())):
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


class PassRateCallback(TrainerCallback):
    r"""
    Every `eval_steps` optimizer steps, decode one greedy completion per problem with the model being
    trained, score the completions with the problem's official harness (the path of the `verilog_pass_at_k`
    metric: [`salv_trl.evaluation.report.evaluate_completions`], in the sandbox) and log their pass rate as
    `eval_pass_rate`. With `stop_at`, training stops at the first measurement that reaches it.

    Stopping at a pass rate sizes a run by what the model can do instead of by a step count: how many steps a
    small model needs before it starts getting modules right varies a lot with the seed, so a fixed schedule
    leaves one seed hopeless and over-trains another.

    Usage:
    ```python
    >>> from salv_trl.evaluation import load_benchmark
    >>> trainer = SFTTrainer(...)
    >>> problems = load_benchmark("custom", "dev_tasks.jsonl")
    >>> trainer.add_callback(PassRateCallback(trainer, problems, eval_steps=100, stop_at=0.5))
    ```

    Args:
        trainer ([`~transformers.Trainer`]):
            The trainer the callback is attached to; its `processing_class` must be the model's tokenizer.
        problems (`Sequence[Problem]`):
            The problems to decode, from [`salv_trl.evaluation.load_benchmark`] (any benchmark, or `custom`
            tasks). Use problems the model is neither trained nor scored on: with `stop_at` they steer
            training.
        eval_steps (`int`, *optional*, defaults to `100`):
            Measure every this many optimizer steps.
        stop_at (`float`, *optional*):
            Stop training once the pass rate is at least this (a fraction, 0 to 1).
        max_new_tokens (`int`, *optional*, defaults to `1024`):
            Token budget of each completion.
        batch_size (`int`, *optional*, defaults to `16`):
            Prompts per `generate` call.
        workers (`int`, *optional*):
            Parallel simulation sandboxes (default: the CPU count).

    Simulating model-written Verilog needs the `SALV_TRL_ALLOW_CODE_EXECUTION=1` opt-in; without it the
    callback refuses to be created, before any training step.
    """

    def __init__(
        self,
        trainer: Trainer,
        problems: Sequence[Problem],
        eval_steps: int = 100,
        stop_at: float | None = None,
        max_new_tokens: int = 1024,
        batch_size: int = 16,
        workers: int | None = None,
    ):
        require_opt_in()
        if not problems:
            raise ValueError("PassRateCallback needs at least one problem")
        if eval_steps < 1:
            raise ValueError(f"eval_steps must be positive, got {eval_steps}")
        if stop_at is not None and not 0 < stop_at <= 1:
            raise ValueError(f"stop_at is a pass rate in (0, 1], got {stop_at}")
        systems = {p.system_prompt for p in problems}
        if len(systems) > 1:
            raise ValueError(f"the problems have {len(systems)} different system messages")
        self.trainer = trainer
        self.problems = list(problems)
        self.system = systems.pop() or None
        self.eval_steps = eval_steps
        self.stop_at = stop_at
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.workers = workers
        self._last_step = -1

    def pass_rate(self, args) -> float:
        """Decode every problem greedily (each process its share), score on the main process, and return the
        pass rate on every process."""
        from accelerate.utils import broadcast_object_list, gather_object
        from trl.models import unwrap_model_for_generation

        from salv_trl.data.sampling import sample_completions

        from .report import evaluate_completions

        accelerator = self.trainer.accelerator
        model = self.trainer.model_wrapped
        was_training = model.training
        model.eval()
        try:
            with (
                _random_states_kept(),
                accelerator.split_between_processes([p.prompt for p in self.problems]) as prompts,
                unwrap_model_for_generation(
                    model, accelerator, gradient_checkpointing_kwargs=args.gradient_checkpointing_kwargs
                ) as unwrapped,
            ):
                completions = sample_completions(
                    unwrapped, self.trainer.processing_class, prompts, n=1, temperature=0.0,
                    max_new_tokens=self.max_new_tokens, seed=args.seed, batch_size=self.batch_size,
                    progress=False, system=self.system,
                )  # fmt: skip
        finally:
            model.train(was_training)
        completions = gather_object(completions)
        rate = [None]
        if accelerator.is_main_process:
            report = evaluate_completions(
                self.problems[0].benchmark,
                completions,
                [p.task_id for p in self.problems],
                problems=self.problems,
                workers=self.workers,
                progress=False,
            )
            # the metric's rule: a problem whose reference fails its own harness is left out
            if report.unscorable:
                logger.warning("pass rate leaves out unscorable problems: %s", ", ".join(report.unscorable))
            rate = [report.pass_at_k.get("pass@1", 0.0)]
        return broadcast_object_list(rate)[0]

    def on_step_end(self, args, state, control, **kwargs):
        # a step can end twice (gradient accumulation edge cases): measure it once
        if state.global_step % self.eval_steps or state.global_step == self._last_step:
            return control
        self._last_step = state.global_step
        rate = self.pass_rate(args)
        self.trainer.log({"eval_pass_rate": rate})
        if self.stop_at is not None and rate >= self.stop_at:
            control.should_training_stop = True
            self.trainer.accelerator.print(
                f"Pass rate {rate:.3f} at step {state.global_step} reached {self.stop_at}: training stops."
            )
        return control
