"""`salv-trl import`: completions made elsewhere → the `tasks` and `rollouts` configs of a dataset folder, the
folder `salv-trl sample` writes, ready for `salv-trl verify --dataset` and `salv-trl pairs`.

Example:

```bash
salv-trl import completions.jsonl --tasks tasks.jsonl --output data/imported
salv-trl import answers.parquet --benchmark rtllm-v1.1 --data-dir ../benchmarks --output data/rtllm \\
    --model my-org/my-model
salv-trl import you/verilog-answers --tasks you/verilog-tasks --output data/hub-answers
```
COMPLETIONS rows have `task_id` and `completion` (text, or chat messages ending with the assistant's answer),
optionally `prompt` and `sample_index`. Rows of unknown tasks, empty completions and repeated rows are
skipped, each reason counted and reported.
"""

from __future__ import annotations

import argparse
import sys

from . import _dataset_options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "completions",
        help="completions: a .jsonl/.json/.parquet/.csv file, a dataset folder, or a Hub dataset id",
    )
    tasks = parser.add_argument_group("tasks: --tasks SOURCE, or --benchmark NAME --data-dir DIR")
    tasks.add_argument("--tasks", help="task file, salv-trl dataset folder, or Hub dataset id")
    tasks.add_argument("--benchmark", help="benchmark name (e.g. rtllm-v1.1), read from --data-dir")
    tasks.add_argument("--data-dir", help="the benchmark checkout, in its original layout")
    parser.add_argument("--output", required=True, help="dataset folder to write (tasks + rollouts configs)")
    parser.add_argument("--model", help="the model that wrote the completions, recorded in the card")
    parser.add_argument(
        "--split", default="train", help="split of a Hub or folder dataset (default: %(default)s)"
    )
    _dataset_options.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from ..data.hub import load_rows, local_or_hub
    from ..data.importing import import_rollouts
    from ..data.tasks import load_tasks

    if (args.tasks is None) == (args.benchmark is None):
        raise ValueError("give the tasks: --tasks SOURCE, or --benchmark NAME --data-dir DIR")
    if (args.benchmark is None) != (args.data_dir is None):
        raise ValueError("--benchmark and --data-dir go together")
    for source in (args.completions, args.tasks or args.data_dir):  # a typo fails before any loading
        local_or_hub(source)
    tasks = load_tasks(args.data_dir, benchmark=args.benchmark) if args.benchmark else load_tasks(args.tasks)
    completions = load_rows(args.completions, folder_config="rollouts", split=args.split)
    report = import_rollouts(
        completions,
        tasks,
        args.output,
        source=args.completions,
        tasks_source=args.benchmark or args.tasks,
        model=args.model,
    )
    for line in report.messages():
        print(f"salv-trl import: {line}", file=sys.stderr)
    kind = "chat" if report.chat else "plain"
    print(f"{report.imported} rollouts of {report.tasks} tasks ({kind} format) in {args.output}")
    _dataset_options.push(args, args.output)
    return 0
