"""Completions made elsewhere (vLLM on a cluster, an API model, another project's outputs) as the `rollouts`
config of a dataset folder, joined to their tasks.

The folder is the one `salv-trl sample` writes (configs `tasks` and `rollouts`, the card, the build record),
so `salv-trl verify`, `salv-trl pairs` and `--push-to-hub` work on it unchanged. Its card says where the
completions came from.

A completion row has `task_id` and `completion`, optionally `prompt` and `sample_index`:

- plain: `completion` (and `prompt`) are text;
- chat: `completion` is a list of messages (`role`, `content`) ending with the assistant's answer; messages
  before it, or a `prompt` of messages, hold the system and user turns. The rollouts then record a chat
  prompt format, and `pairs` writes conversational rows whose spans index the assistant message.

Without `prompt`, the task's prompt is the rollout's prompt; without `sample_index`, rows are numbered per
task in the order they come, and a row that repeats an earlier one exactly (same task, prompt and completion)
cannot be told from a copy: it is counted as a duplicate and kept once.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datasets import Dataset

from .hub import config_file, load_config, save_config, update_build_info
from .rollouts import ROLLOUT_FEATURES
from .sampling import PromptFormat
from .stages import save_tasks

__all__ = ["ImportReport", "import_rollouts"]

_SHOWN = 5  # examples named in a message


@dataclass
class ImportReport:
    """What an import read, kept and skipped.

    Args:
        rows (`int`): Completion rows read.
        imported (`int`): Rollouts written.
        tasks (`int`): Tasks with at least one imported rollout.
        chat (`bool`): The completions were chat messages.
        unknown_tasks (`Counter`): Skipped rows per task id that the task set does not have.
        empty (`list[int]`): Row numbers (0-based) of skipped empty completions.
        duplicates (`int`): Skipped rows that repeat an earlier row.
        tasks_without_rollouts (`int`): Tasks of the task set that got no completion.
    """

    rows: int = 0
    imported: int = 0
    tasks: int = 0
    chat: bool = False
    unknown_tasks: Counter = field(default_factory=Counter)
    empty: list[int] = field(default_factory=list)
    duplicates: int = 0
    tasks_without_rollouts: int = 0

    def skipped(self) -> dict[str, int]:
        """Skipped rows by reason."""
        return {
            "unknown_task": sum(self.unknown_tasks.values()),
            "empty": len(self.empty),
            "duplicate": self.duplicates,
        }

    def messages(self) -> list[str]:
        """One line per reason rows were skipped, with a count and examples, and the tasks left without
        completions."""
        lines = []
        if self.unknown_tasks:
            names = ", ".join(list(self.unknown_tasks)[:_SHOWN])
            lines.append(
                f"skipped {sum(self.unknown_tasks.values())} rows of {len(self.unknown_tasks)} task ids the "
                f"task set does not have (e.g. {names})"
            )
        if self.empty:
            rows = ", ".join(map(str, self.empty[:_SHOWN]))
            lines.append(f"skipped {len(self.empty)} empty completions (rows {rows})")
        if self.duplicates:
            lines.append(f"skipped {self.duplicates} duplicate rows (a repeat of an earlier row)")
        if self.tasks_without_rollouts:
            lines.append(f"{self.tasks_without_rollouts} tasks of the task set have no completion (left out)")
        return lines


def _messages(value: Any, what: str, row: int) -> list[dict[str, str]]:
    if not isinstance(value, list) or not all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
        for m in value
    ):
        raise ValueError(f"row {row}: {what} must be a list of messages with `role` and `content`")
    return value


def _chat_turns(messages: list[dict[str, str]], row: int) -> tuple[str | None, str | None]:
    """The system message and the user prompt of the messages before the answer."""
    roles = [m["role"] for m in messages]
    if roles.count("user") > 1 or set(roles) - {"system", "user"}:
        raise ValueError(
            f"row {row}: the prompt must be at most a system and one user message, got roles {roles} "
            "(multi-turn conversations cannot be imported)"
        )
    by_role = {m["role"]: m["content"] for m in messages}
    return by_role.get("system"), by_role.get("user")


def _read_row(row: dict[str, Any], index: int, chat: bool) -> tuple[str | None, str | None, str]:
    """(system, prompt, completion text) of a completion row; `None` where the row does not give them."""
    completion, prompt, system = row["completion"], row.get("prompt"), None
    if chat:
        messages = _messages(completion, "`completion`", index)
        if not messages or messages[-1]["role"] != "assistant":
            raise ValueError(f"row {index}: a chat `completion` must end with the assistant's message")
        system, prompt_text = _chat_turns(messages[:-1], index)
        if isinstance(prompt, list):
            system, prompt_text = _chat_turns(_messages(prompt, "`prompt`", index), index)
        prompt = prompt_text if prompt_text is not None else prompt
        completion = messages[-1]["content"]
    if prompt is not None and not isinstance(prompt, str):
        raise ValueError(f"row {index}: `prompt` must be text or a list of messages")
    if completion is not None and not isinstance(completion, str):
        raise ValueError(f"row {index}: `completion` must be text or a list of messages")
    return system, prompt, completion or ""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _collect(
    rows: list[dict], task_rows: dict[str, dict], indexed: bool, report: ImportReport
) -> tuple[list[dict], str | None]:
    """The rollout rows to write, in task then sample order as `sample` writes them, and the one system
    message of their prompts; skipped rows are counted in `report`."""
    kept: dict[tuple, dict] = {}  # (task_id, sample_index) or, without sample indices, the row's content
    systems: set[str | None] = set()
    for index, row in enumerate(rows):
        system, prompt, completion = _read_row(row, index, report.chat)
        task_id = str(row["task_id"])
        if task_id not in task_rows:
            report.unknown_tasks[task_id] += 1
            continue
        if not completion.strip():
            report.empty.append(index)
            continue
        rollout = {
            "task_id": task_id,
            "prompt": task_rows[task_id]["prompt"] if prompt is None else prompt,
            "completion": completion,
            "sample_index": row["sample_index"] if indexed else None,
        }
        if indexed and (not isinstance(rollout["sample_index"], int) or rollout["sample_index"] < 0):
            raise ValueError(
                f"row {index}: `sample_index` must be an integer >= 0, got {row['sample_index']!r}"
            )
        key = (task_id, rollout["sample_index"]) if indexed else (task_id, rollout["prompt"], completion)
        if key in kept:
            if kept[key] != rollout:
                raise ValueError(
                    f"row {index}: task {task_id!r} sample {rollout['sample_index']} appears twice with "
                    "different contents"
                )
            report.duplicates += 1
            continue
        kept[key] = rollout
        systems.add(system)
    if len(systems) > 1:
        raise ValueError(
            f"the completions come with {len(systems)} different system messages; one import records one "
            "prompt format: import each system message's rows into its own folder"
        )
    if not kept:
        raise ValueError("no completion left to import: " + "; ".join(report.messages() or ["no rows"]))
    by_task: dict[str, list[dict]] = {}
    for rollout in kept.values():
        by_task.setdefault(rollout["task_id"], []).append(rollout)
    ordered = []
    for task_id in task_rows:
        group = by_task.get(task_id, [])
        if not indexed:
            group = [{**rollout, "sample_index": i} for i, rollout in enumerate(group)]
        ordered += sorted(group, key=lambda r: r["sample_index"])
    report.imported, report.tasks = len(ordered), len(by_task)
    report.tasks_without_rollouts = len(task_rows) - len(by_task)
    return ordered, systems.pop()


def import_rollouts(
    completions: Dataset,
    tasks: Dataset,
    folder: str | os.PathLike,
    *,
    source: str,
    tasks_source: str,
    model: str | None = None,
) -> ImportReport:
    """Write completions made elsewhere as the `tasks` and `rollouts` configs of a dataset folder.

    Rows of unknown tasks, empty completions and repeats of an earlier row are skipped and counted in the
    report. Importing the same rows again changes nothing (verdicts already made stay).

    Args:
        completions (`datasets.Dataset`): Rows with `task_id`, `completion` (text or messages) and optionally
            `prompt` (text or messages) and `sample_index`.
        tasks (`datasets.Dataset`): The task set ([`salv_trl.data.tasks.load_tasks`]).
        folder (`str` or `Path`): Dataset folder to write.
        source (`str`): Where the completions came from (a path or a Hub id), for the card.
        tasks_source (`str`): Where the tasks came from, for the card.
        model (`str`, *optional*): The model that wrote the completions, for the card.

    Returns:
        [`ImportReport`]: rows read, imported and skipped.

    Raises:
        ValueError: a required column is missing, a row is malformed, a `(task_id, sample_index)` repeats
            with another completion, no row is left to import, or `folder` holds other rollouts already.
    """
    missing = [c for c in ("task_id", "completion") if c not in completions.column_names]
    if missing:
        raise ValueError(
            f"the completions lack column(s) {', '.join(missing)}; expected task_id, completion (text or "
            f"messages)[, prompt, sample_index] (columns found: {', '.join(completions.column_names)})"
        )
    task_rows = {t["task_id"]: t for t in tasks.to_list()}
    rows = completions.to_list()
    report = ImportReport(rows=len(rows), chat=any(isinstance(row["completion"], list) for row in rows))
    ordered, system = _collect(rows, task_rows, "sample_index" in completions.column_names, report)
    dataset = Dataset.from_list(ordered, features=ROLLOUT_FEATURES)

    folder = Path(folder)
    if config_file(folder, "rollouts").is_file():
        existing = load_config(folder, "rollouts").select_columns(list(ROLLOUT_FEATURES))
        if existing.to_list() == dataset.to_list():
            return report  # imported before: the rows, and any verdicts made since, stay
        raise ValueError(f"{folder} already holds other rollouts: import into a new folder")
    imported_tasks = {r["task_id"] for r in ordered}
    used = [i for i, task_id in enumerate(task_rows) if task_id in imported_tasks]
    save_tasks(tasks.select(used), folder, source=tasks_source)
    info: dict[str, Any] = {
        "source": source,
        "format": "chat" if report.chat else "plain",
        "prompt_format": PromptFormat(report.chat, system).to_dict(),
        "rows_read": report.rows,
        "skipped": report.skipped(),
    }
    if Path(source).is_file():
        info["source_sha256"] = _sha256(Path(source))
    if model:
        info["model"] = model
    update_build_info(folder, "import", info, replaces=("sample",))
    save_config(dataset, folder, "rollouts")
    return report
