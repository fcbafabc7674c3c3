"""The resumable pipeline stages over a dataset folder: tasks → `sample` → rollouts → `verify` → rollouts with
verdicts and slices → `pairs`.

Each stage streams finished rows into append-only shards under `<folder>/.work/<stage>/`, then compacts them into its
config (one parquet file, written atomically) and regenerates the card. Re-running a stage after an interruption
picks up the shards, does only the missing work, and neither loses nor duplicates rows; re-running a finished stage
does nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from datasets import Dataset, Features, List, Value
from tqdm.auto import tqdm

from .hub import config_file, load_config, save_config, update_build_info
from .pairs import PAIR_FEATURES, PairOptions, build_pairs, mask_share
from .sampling import rollout_key, sample_rollouts
from .shards import ShardStore

__all__ = ["ROLLOUT_FEATURES", "VERIFIED_ROLLOUT_FEATURES", "compact", "pairs_stage", "sample_stage", "save_tasks"]

ROLLOUT_FEATURES = Features(
    {
        "task_id": Value("string"),
        "prompt": Value("string"),
        "completion": Value("string"),
        "sample_index": Value("int32"),
    }
)
_SPANS = List(List(Value("int64")))
VERIFIED_ROLLOUT_FEATURES = Features(
    {
        **ROLLOUT_FEATURES,
        "verdict": {
            "status": Value("string"),
            "detail": Value("string"),
            "signals": List(
                {
                    "name": Value("string"),
                    "mismatches": Value("int64"),
                    "samples": Value("int64"),
                    "correct": Value("bool"),
                }
            ),
        },
        # Character offset of the extracted code in the completion; None when the completion has no code.
        "code_offset": Value("int64"),
        # Per-output slices of the extracted code, shifted to offsets into the completion.
        "slices": List({"signal": Value("string"), "spans": _SPANS, "core_spans": _SPANS}),
        "slice_error": Value("string"),
    }
)


def work_store(folder: str | os.PathLike, stage: str, key: Callable[[dict], tuple]) -> ShardStore:
    """The shard store of `stage` in a dataset folder."""
    return ShardStore(Path(folder) / ".work" / stage, key)


def compact(
    store: ShardStore, order: Sequence[tuple], features: Features, folder: str | os.PathLike, config: str
) -> Dataset:
    """Turn a complete shard store into `config` of `folder`, rows in `order` of keys, then delete the shards.

    Raises:
        RuntimeError: some key of `order` has no row (the stage is not finished).
    """
    rows = {store.key(row): row for row in store.rows()}
    missing = [key for key in order if key not in rows]
    if missing:
        raise RuntimeError(f"{len(missing)} rows missing from {store.directory}, e.g. {missing[0]}")
    dataset = Dataset.from_list([rows[key] for key in order], features=features)
    save_config(dataset, folder, config)
    store.clear()
    return dataset


def save_tasks(tasks: Dataset, folder: str | os.PathLike, source: str) -> None:
    """Write the task set as the folder's `tasks` config (unless the same rows are already there)."""
    if config_file(folder, "tasks").is_file() and load_config(folder, "tasks").to_list() == tasks.to_list():
        return
    update_build_info(folder, "tasks", {"source": source, "tasks": len(tasks)})
    save_config(tasks, folder, "tasks")


def sample_stage(
    folder: str | os.PathLike,
    generate: Callable[[list[str]], list[list[str]]],
    *,
    n: int,
    batch_size: int,
    info: dict[str, Any],
    progress: bool = True,
) -> Dataset:
    """Sample `n` rollouts per task of the folder's `tasks` config into its `rollouts` config.

    Args:
        folder (`str` or `Path`): Dataset folder with a `tasks` config.
        generate (`Callable[[list[str]], list[list[str]]]`): Prompts to `n` completions each.
        n (`int`): Completions per task.
        batch_size (`int`): Tasks per `generate` call.
        info (`dict`): How the completions are sampled (model, backend, settings), recorded for the card.
        progress (`bool`, defaults to `True`): Show progress bars.

    Returns:
        The `rollouts` config, one row per task and sample index, in task order.
    """
    tasks = load_config(folder, "tasks").to_list()
    order = [(t["task_id"], i) for t in tasks for i in range(n)]
    if config_file(folder, "rollouts").is_file():
        existing = load_config(folder, "rollouts")
        if sorted(map(rollout_key, existing.select_columns(["task_id", "sample_index"]).to_list())) == sorted(order):
            return existing
    store = work_store(folder, "sample", rollout_key)
    with store:
        sample_rollouts(tasks, generate, store, n=n, batch_size=batch_size, progress=progress)
    update_build_info(folder, "sample", info)
    return compact(store, order, ROLLOUT_FEATURES, folder, "rollouts")


def pairs_stage(
    folder: str | os.PathLike,
    options: PairOptions,
    *,
    tokenizer=None,
    tokenizer_name: str | None = None,
    progress: bool = True,
) -> Dataset:
    """Build the `pairs` config from the folder's verified `rollouts` config (a pure function of the rollouts, so
    an interrupted run is simply redone; the config file is replaced atomically).

    Args:
        folder (`str` or `Path`): Dataset folder with verified rollouts.
        options ([`PairOptions`]): Pair construction switches.
        tokenizer (*optional*): Fast tokenizer to count the masked-in share in tokens (characters otherwise).
        tokenizer_name (`str`, *optional*): Its name, for the card.
        progress (`bool`, defaults to `True`): Show a progress bar.
    """
    rollouts = load_config(folder, "rollouts")
    if "verdict" not in rollouts.column_names:
        raise ValueError(f"the rollouts of {folder} are not verified yet: run `salv-trl verify --dataset {folder}`")
    pairs = build_pairs(tqdm(rollouts, desc="pairs", unit="rollout", disable=not progress), options)
    dataset = Dataset.from_list(pairs, features=PAIR_FEATURES)
    share = mask_share(pairs, tokenizer)
    if tokenizer_name:
        share["unit"] = f"tokens ({tokenizer_name})"
    update_build_info(folder, "pairs", {**options.to_dict(), "stats": {"pairs": len(pairs), "mask_share": share}})
    save_config(dataset, folder, "pairs")
    return dataset
