"""Task sets: `task_id, prompt, reference[, testbench, top]`, from files, the Hub, the authors' seed release,
or a benchmark checkout in its original layout.

A task's top module, where the task does not name it, is the reference's top by one rule ([`task_top`]),
the one the verification engine and the benchmark loaders both use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from datasets import Dataset, Features, Value

from ..hdl.parse import choose_top, module_syntax
from ..hdl.source import load_source
from .hub import config_file, load_rows, local_or_hub

__all__ = [
    "SEED_COLUMNS",
    "TASK_FEATURES",
    "Task",
    "load_tasks",
    "normalize_tasks",
    "task_top",
]

TASK_FEATURES = Features(
    {
        "task_id": Value("string"),
        "prompt": Value("string"),
        "reference": Value("string"),
        "testbench": Value("string"),
        "top": Value("string"),
    }
)

#: Column names of the QiMeng-SALV seed release, and the task columns they are.
SEED_COLUMNS = {"problem_id": "task_id", "instruction": "prompt", "gold_code": "reference"}


@dataclass(frozen=True)
class Task:
    """One task: a row of the tasks schema ([`TASK_FEATURES`]).

    Args:
        task_id (`str`): Unique id.
        prompt (`str`): The user message.
        reference (`str`): The reference design (Verilog text).
        testbench (`str`, *optional*): A testbench that judges the candidate; without one, candidates are
            judged by random co-simulation against the reference.
        top (`str`, *optional*): The candidate's top module name; where it is not given, the reference's top
            ([`task_top`]).
    """

    task_id: str
    prompt: str
    reference: str
    testbench: str | None = None
    top: str | None = None

    def to_row(self) -> dict[str, str | None]:
        """The task as a row of the tasks schema (empty `testbench` / `top` as `None`)."""
        return {
            "task_id": self.task_id,
            "prompt": self.prompt,
            "reference": self.reference,
            "testbench": self.testbench or None,
            "top": self.top or None,
        }


def task_top(reference: str, top: str | None = None) -> str:
    """The top module of a reference: `top` where the reference declares it, else the first module that no
    other instantiates, testbench-like modules left out ([`salv_trl.hdl.parse.choose_top`], the rule of the
    verification engine).

    ```python
    >>> task_top("module leaf(input a, output y); assign y = a; endmodule\\n"
    ...          "module root(input a, output y); leaf u(a, y); endmodule")
    'root'

    ```

    Raises:
        VerilogInputError: the reference declares no module.
    """
    source = load_source(reference)  # the syntax nodes below live as long as it does
    return choose_top(module_syntax(source), prefer=top).name


def normalize_tasks(dataset: Dataset) -> Dataset:
    """Task columns in the canonical schema: seed-format names renamed, optional columns filled with `None`,
    others (e.g. the seed release's `port_names`) dropped.

    Raises:
        ValueError: a required column is missing or a task id repeats.
    """
    dataset = dataset.rename_columns({k: v for k, v in SEED_COLUMNS.items() if k in dataset.column_names})
    missing = [c for c in ("task_id", "prompt", "reference") if c not in dataset.column_names]
    if missing:
        raise ValueError(
            f"task set lacks column(s) {', '.join(missing)}; "
            "expected task_id, prompt, reference[, testbench, top] "
            f"or the seed format problem_id, instruction, gold_code[, port_names, testbench] "
            f"(columns found: {', '.join(dataset.column_names)})"
        )
    ids = [str(t) for t in dataset["task_id"]]
    repeated = sorted({t for t in ids if ids.count(t) > 1}) if len(set(ids)) != len(ids) else []
    if repeated:
        raise ValueError(f"task ids must be unique; repeated: {', '.join(repeated[:5])}")
    rows = {
        "task_id": ids,
        "prompt": dataset["prompt"],
        "reference": dataset["reference"],
        "testbench": dataset["testbench"] if "testbench" in dataset.column_names else [None] * len(dataset),
        "top": dataset["top"] if "top" in dataset.column_names else [None] * len(dataset),
    }
    # Empty strings mean "absent" in csv/jsonl exports; the verifier expects None there.
    for column in ("testbench", "top"):
        rows[column] = [value or None for value in rows[column]]
    return Dataset.from_dict(rows, features=TASK_FEATURES)


def _benchmark_tasks(name: str, data_dir: str | os.PathLike) -> Dataset:
    from .benchmarks import load_benchmark

    # Signal-level verdicts come from random co-simulation against the reference (the paper's 1000 vectors):
    # benchmark testbenches judge whole modules (RTLLM prints one pass/fail line), so they stay with
    # evaluation.
    rows = [{**problem.to_row(), "testbench": None} for problem in load_benchmark(name, data_dir)]
    return normalize_tasks(Dataset.from_list(rows))


def load_tasks(
    source: str | os.PathLike,
    *,
    benchmark: str | None = None,
    split: str = "train",
    config: str | None = None,
) -> Dataset:
    """Load a task set.

    Args:
        source (`str` or `Path`): One of
            - a `.jsonl` / `.json` / `.parquet` / `.csv` file of tasks (canonical or seed-format columns),
            - a salv-trl dataset folder (its `tasks` config),
            - a benchmark checkout in its original layout, with `benchmark` naming it (see
              `salv_trl.data.benchmarks.load_benchmark`); judged by random co-simulation against
              the references, so the benchmark's own testbenches are left out,
            - a Hub dataset repository id.
        benchmark (`str`, *optional*): Benchmark name when `source` is a benchmark folder.
        split (`str`, defaults to `"train"`): Split to read from a Hub dataset.
        config (`str`, *optional*): Config to read from a Hub dataset.

    Returns:
        `datasets.Dataset` with the columns of `TASK_FEATURES`.
    """
    if benchmark is not None:
        return _benchmark_tasks(benchmark, Path(source))
    location = local_or_hub(source)
    if isinstance(location, Path) and location.is_dir() and not config_file(location, "tasks").is_file():
        raise ValueError(f"{location} is neither a salv-trl dataset folder nor given with --benchmark NAME")
    return normalize_tasks(load_rows(location, folder_config="tasks", config=config, split=split))
