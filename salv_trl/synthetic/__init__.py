"""Seeded synthetic multi-output Verilog tasks for end-to-end runs on CPU (see `salv_trl.synthetic.tasks`)."""

from __future__ import annotations

from .tasks import (
    TOP,
    Expression,
    OutputSpec,
    ResetSpec,
    SyntheticTask,
    generate_tasks,
    random_task,
    sft_dataset,
    tasks_dataset,
)

__all__ = [
    "TOP",
    "Expression",
    "OutputSpec",
    "ResetSpec",
    "SyntheticTask",
    "generate_tasks",
    "random_task",
    "sft_dataset",
    "tasks_dataset",
]
