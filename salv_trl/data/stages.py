"""The resumable pipeline stages over a dataset folder: tasks → `sample` → rollouts → `verify` → rollouts with
verdicts and slices → `pairs`.

Each stage streams finished rows into append-only shards under `<folder>/.work/<stage>/`, then compacts them
into its config (one parquet file, written atomically) and regenerates the card. Re-running a stage after an
interruption picks up the shards, does only the missing work, and neither loses nor duplicates rows;
re-running a finished stage does nothing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from datasets import Dataset, Features
from tqdm.auto import tqdm

from ..progress import advance
from .hub import build_info, config_file, load_config, save_config, update_build_info
from .pairs import PairOptions, build_pairs, mask_share, pair_features
from .rollouts import (
    ROLLOUT_FEATURES,
    VERIFIED_ROLLOUT_FEATURES,
    VerifySettings,
    judge_rollouts,
    judge_rollouts_ray,
    settings_counts,
    verdict_settings,
)
from .sampling import PromptFormat, rollout_key, sample_rollouts
from .shards import ShardStore

__all__ = [
    "compact",
    "dataset_folder",
    "pairs_stage",
    "prompt_format",
    "sample_stage",
    "save_tasks",
    "verify_stage",
    "work_store",
]

logger = logging.getLogger(__name__)


def dataset_folder(folder: str | os.PathLike) -> Path:
    """`folder` as a local dataset folder that exists (a stage reads and writes it in place).

    Raises:
        ValueError: there is no such folder (a typo is reported at once, never looked up on the Hub).
    """
    path = Path(folder)
    if path.is_file():
        raise ValueError(
            f"{folder} is a file, not a dataset folder: make one with "
            f"`salv-trl import {folder} --tasks TASKS --output FOLDER`"
        )
    if not path.is_dir():
        raise ValueError(f"{folder}: no such dataset folder")
    return path


def prompt_format(folder: str | os.PathLike) -> PromptFormat:
    """How the folder's rollouts were prompted, as recorded by the stage that made them (`sample` or
    `import`); plain text when neither recorded it."""
    info = build_info(folder)
    return PromptFormat.from_dict((info.get("sample") or info.get("import") or {}).get("prompt_format"))


def work_store(folder: str | os.PathLike, stage: str, key: Callable[[dict], tuple]) -> ShardStore:
    """The shard store of `stage` in a dataset folder."""
    return ShardStore(Path(folder) / ".work" / stage, key)


def compact(
    store: ShardStore,
    order: Sequence[tuple],
    features: Features,
    folder: str | os.PathLike,
    config: str,
    kept: Sequence[dict] = (),
) -> Dataset:
    """Turn a complete shard store, with the `kept` rows that needed no work, into `config` of `folder`, rows
    in `order` of keys, then delete the shards.

    Raises:
        RuntimeError: some key of `order` has no row (the stage is not finished).
    """
    rows = {store.key(row): row for row in kept}
    for row in store.rows():
        rows.setdefault(store.key(row), row)
    missing = [key for key in order if key not in rows]
    if missing:
        raise RuntimeError(f"{len(missing)} rows missing from {store.directory}, e.g. {missing[0]}")
    dataset = _dataset([rows[key] for key in order], features)
    save_config(dataset, folder, config)
    store.clear()
    if not any(store.directory.parent.iterdir()):  # the folder's `.work/`, once no stage has shards left
        store.directory.parent.rmdir()
    return dataset


def _dataset(rows: list[dict], features: Features) -> Dataset:
    """Rows as a Dataset with `features`, also when there are none (from_list([]) would have no columns)."""
    if not rows:
        return Dataset.from_dict({name: [] for name in features}, features=features)
    return Dataset.from_list(rows, features=features)


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
        info (`dict`): How the completions are sampled (model, backend, settings), recorded for the card; its
            `prompt_format` ([`PromptFormat.to_dict`]) tells `pairs` how the prompts were rendered.
        progress (`bool`, defaults to `True`): Show progress bars.

    Returns:
        The `rollouts` config, one row per task and sample index, in task order.
    """
    tasks = load_config(folder, "tasks").to_list()
    order = [(t["task_id"], i) for t in tasks for i in range(n)]
    if config_file(folder, "rollouts").is_file():
        existing = load_config(folder, "rollouts")
        if sorted(map(rollout_key, existing.select_columns(["task_id", "sample_index"]).to_list())) == sorted(
            order
        ):
            return existing
    store = work_store(folder, "sample", rollout_key)
    with store:
        sample_rollouts(tasks, generate, store, n=n, batch_size=batch_size, progress=progress)
    update_build_info(folder, "sample", info, replaces=("import",))
    return compact(store, order, ROLLOUT_FEATURES, folder, "rollouts")


def verify_stage(
    folder: str | os.PathLike,
    settings: VerifySettings | None = None,
    *,
    workers: int | None = None,
    chunk_size: int = 256,
    use_ray: bool = False,
    progress: bool = True,
) -> Dataset:
    """Verify and slice the folder's `rollouts` config in place (verdict, code offset, per-output slices, and
    the settings of the verdict).

    Rows are judged in chunks; each finished chunk is stored at once, so an interrupted run loses at most the
    chunks in flight and a re-run judges only the rest. Settings are part of a verdict: rows judged with
    other settings (another seed, more vectors, ...) are judged again, with a warning that says how many.

    Args:
        folder (`str` or `Path`): Dataset folder with `tasks` and `rollouts` configs.
        settings ([`VerifySettings`], *optional*): Simulation settings.
        workers (`int`, *optional*): Local verification processes (all cores by default); ignored with Ray.
        chunk_size (`int`, defaults to `256`): Rollouts per stored chunk (and per Ray task).
        use_ray (`bool`, defaults to `False`): Judge the chunks as Ray tasks on the cluster `ray.init`
            connected to.
        progress (`bool`, defaults to `True`): Show a progress bar.
    """
    settings = settings or VerifySettings()
    folder = dataset_folder(folder)
    rollouts = load_config(folder, "rollouts")
    rows = rollouts.to_list()
    stored = verdict_settings(rows, build_info(folder).get("verify"))
    if all(s == settings for s in stored):
        return rollouts  # already verified with these settings
    others = settings_counts(rows, stored, other_than=settings)
    for described, count in others.items():
        logger.warning(
            "%d rollouts of %s were verified with other settings (%s): verifying them again with %s",
            count,
            folder,
            described,
            settings.describe(),
        )
    target = settings.to_json()
    kept = [{**row, "verify_settings": target} for row, s in zip(rows, stored, strict=True) if s == settings]
    store = work_store(folder, "verify", lambda row: (*rollout_key(row), row.get("verify_settings")))
    done = store.done()
    todo = [
        {column: row[column] for column in ROLLOUT_FEATURES}
        for row, s in zip(rows, stored, strict=True)
        if s != settings and (*rollout_key(row), target) not in done
    ]
    tasks = {t["task_id"]: t for t in load_config(folder, "tasks").to_list()}
    bar = tqdm(
        total=len(rows), initial=len(rows) - len(todo), desc="verify", unit="rollout", disable=not progress
    )
    with store:
        if use_ray:
            chunks = judge_rollouts_ray(todo, tasks, settings, chunk_size=chunk_size)
        else:
            chunks = (
                judge_rollouts(todo[i : i + chunk_size], tasks, settings, workers=workers, progress=False)
                for i in range(0, len(todo), chunk_size)
            )
        for chunk in chunks:
            store.write(chunk)
            advance(bar, len(chunk))
    bar.close()
    update_build_info(folder, "verify", {**settings.to_dict(), "backend": "ray" if use_ray else "local"})
    order = [(*rollout_key(row), target) for row in rows]
    return compact(store, order, VERIFIED_ROLLOUT_FEATURES, folder, "rollouts", kept=kept)


def pairs_stage(
    folder: str | os.PathLike,
    options: PairOptions,
    *,
    output: str | os.PathLike | None = None,
    tokenizer=None,
    tokenizer_name: str | None = None,
    progress: bool = True,
) -> Dataset:
    """Build the `pairs` config from the folder's verified `rollouts` config (a pure function of the rollouts,
    so an interrupted run is simply redone; the config file is replaced atomically).

    Rows are conversational when the stage that made the rollouts (`sample` or `import`) recorded a chat
    template in its `prompt_format`, so that trl trains on the text the completions were sampled from; plain
    otherwise.

    Args:
        folder (`str` or `Path`): Dataset folder with verified rollouts.
        options ([`PairOptions`]): Pair construction switches.
        output (`str` or `Path`, *optional*): Dataset folder to write the `pairs` config to, with the build
            record of the rollouts it comes from (so pairs of several modes can sit side by side); `folder`
            by default.
        tokenizer (*optional*): Fast tokenizer to count the masked-in share in tokens (characters otherwise).
        tokenizer_name (`str`, *optional*): Its name, for the card.
        progress (`bool`, defaults to `True`): Show a progress bar.
    """
    folder = dataset_folder(folder)
    output = Path(output) if output is not None else folder
    if output.resolve() != folder.resolve() and config_file(output, "rollouts").is_file():
        raise ValueError(f"{output} holds rollouts of its own: write the pairs to a new folder")
    rollouts = load_config(folder, "rollouts")
    if "verdict" not in rollouts.column_names:
        raise ValueError(
            f"the rollouts of {folder} are not verified yet: run `salv-trl verify --dataset {folder}`"
        )
    rollout_format = prompt_format(folder)
    pairs = build_pairs(
        tqdm(rollouts, desc="pairs", unit="rollout", disable=not progress), options, rollout_format
    )
    dataset = _dataset(pairs, pair_features(rollout_format))
    # Whole-sequence pairs are trivially 100% masked in; the share that says something is that of signal
    # pairs.
    signal_pairs = [p for p in pairs if p["kind"] == "signal"]
    share = {
        **mask_share(signal_pairs or pairs, tokenizer),
        "over": "signal pairs" if signal_pairs else "all pairs",
    }
    if tokenizer_name:
        share["unit"] = f"tokens ({tokenizer_name})"
    record = {
        **options.to_dict(),
        "conversational": rollout_format.chat_template,
        "stats": {"pairs": len(pairs), "mask_share": share},
    }
    if output.resolve() != folder.resolve():
        for stage, info in build_info(folder).items():  # how the rollouts were made, for the output's card
            if stage != "pairs":
                update_build_info(output, stage, info)
        record["rollouts"] = str(folder)
    update_build_info(output, "pairs", record)
    save_config(dataset, output, "pairs")
    return dataset
