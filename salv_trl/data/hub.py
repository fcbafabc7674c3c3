"""Dataset folders laid out like a Hub dataset repository, their dataset card, and the upload.

A salv-trl dataset folder holds up to three configs, each one parquet file, exactly where
`Dataset.push_to_hub` puts them in a repository, and a `README.md` card whose YAML lists the configs:

```
out/
  README.md                              card generated from the data (+ `configs:` for load_dataset)
  salv_trl_build.json                    how each stage was run (model, sampling, simulator, pairs, stats)
  tasks/train-00000-of-00001.parquet
  rollouts/train-00000-of-00001.parquet
  pairs/train-00000-of-00001.parquet
```

so `datasets.load_dataset("out", "pairs", split="train")` and `load_dataset("user/repo", "pairs",
split="train")` give the same rows.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from statistics import mean
from typing import Any

import pyarrow.parquet as pq
from datasets import (
    Dataset,
    DatasetDict,
    DatasetInfo,
    List,
    SplitDict,
    SplitInfo,
    load_dataset,
    load_from_disk,
)
from datasets.info import DatasetInfosDict
from huggingface_hub import DatasetCard, DatasetCardData

from .rollouts import settings_counts, verdict_settings

__all__ = [
    "CONFIGS",
    "FILE_BUILDERS",
    "build_info",
    "config_file",
    "file_builder",
    "load_config",
    "load_rows",
    "local_or_hub",
    "push_to_hub",
    "render_card",
    "save_config",
    "saved_to_disk",
    "update_build_info",
    "write_card",
]

#: The configs of a salv-trl dataset, in pipeline order.
CONFIGS = ("tasks", "rollouts", "pairs")
#: Data file suffix → the `datasets` builder that reads it.
FILE_BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
# `owner/name`: the only shape of source that is looked up on the Hub.
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
_BUILD_FILE = "salv_trl_build.json"
_INTRO = (
    "Built with [salv-trl](https://github.com/salv-trl/salv-trl), which implements *QiMeng-SALV: "
    "Signal-Aware Learning for Verilog Code Generation* (arXiv 2510.19296): model samples for Verilog "
    "tasks are simulated against each task's reference output signal by output signal; for two samples "
    "where an output is correct in one and wrong in the other, the correct one is *chosen*, the other "
    "*rejected*, and `chosen_spans` / `rejected_spans` give the `[start, end)` character offsets of that "
    "output's backward dependency slice in each completion: the only tokens the signal-aware DPO loss counts."
)
_CITATION = """## Citation

```bibtex
@article{qimeng-salv,
  title={QiMeng-SALV: Signal-Aware Learning for Verilog Code Generation},
  journal={arXiv preprint arXiv:2510.19296},
  year={2025}
}
```"""
_SPLIT = "train"


def config_file(folder: str | os.PathLike, config: str) -> Path:
    """Where `config`'s parquet file lives in a dataset folder (where `push_to_hub` puts it in a repo)."""
    if config not in CONFIGS:
        raise ValueError(f"unknown config {config!r}; expected one of {', '.join(CONFIGS)}")
    return Path(folder) / config / f"{_SPLIT}-00000-of-00001.parquet"


def local_or_hub(source: str | os.PathLike) -> Path | str:
    """Where a data source is: the local `Path` when it exists, else the Hub id when `source` is shaped like
    one (`owner/name`, no data file suffix, and no local folder for `owner`: `data/salvv` is a typo of a local
    folder, not a Hub id). Anything else fails at once, without a Hub round trip.

    ```python
    >>> local_or_hub("you/verilog-pairs")
    'you/verilog-pairs'
    >>> local_or_hub("./no/such/folder")
    Traceback (most recent call last):
    ...
    ValueError: ./no/such/folder not found: no such file or folder (and not a Hub dataset id, owner/name)

    ```

    Raises:
        ValueError: `source` neither exists here nor looks like a Hub dataset id.
    """
    path = Path(source).expanduser()
    if path.exists():
        return path
    text = str(source)
    if (
        _HUB_ID.fullmatch(text)
        and path.suffix.lower() not in FILE_BUILDERS
        and not Path(text.split("/")[0]).is_dir()
    ):
        return text
    raise ValueError(f"{source} not found: no such file or folder (and not a Hub dataset id, owner/name)")


def load_config(source: str | os.PathLike, config: str, split: str = _SPLIT) -> Dataset:
    """Load one config of a dataset folder (read as is, in memory) or of a Hub dataset repository
    (`datasets.load_dataset`; see [`local_or_hub`])."""
    location = local_or_hub(source)
    if isinstance(location, str):
        return load_dataset(location, config, split=split)
    path = config_file(source, config)
    if not path.is_file():
        raise ValueError(f"{source} has no {config!r} config yet (run the stage that builds it first)")
    # Not load_dataset: its cache keys a local folder by name, so a rewritten config could be read stale.
    return Dataset(pq.read_table(path))


def file_builder(path: Path) -> str:
    """The `datasets` builder that reads the data file at `path` ([`FILE_BUILDERS`], by its suffix).

    Raises:
        ValueError: the suffix is not one of a data file.
    """
    builder = FILE_BUILDERS.get(path.suffix.lower())
    if builder is None:
        raise ValueError(f"{path}: unknown data file type (expected one of {', '.join(FILE_BUILDERS)})")
    return builder


def saved_to_disk(path: Path) -> bool:
    """Whether `path` is a folder written by `Dataset.save_to_disk` or `DatasetDict.save_to_disk`."""
    return any((path / marker).is_file() for marker in ("dataset_dict.json", "state.json"))


def load_rows(
    source: str | os.PathLike,
    *,
    folder_config: str | None = None,
    config: str | None = None,
    split: str = _SPLIT,
) -> Dataset:
    """One split of rows from anywhere: a data file ([`FILE_BUILDERS`]), a salv-trl dataset folder (its
    `folder_config`), a folder written by `save_to_disk`, a folder of data files, or a Hub dataset id
    ([`local_or_hub`]: a missing local path fails at once).

    Args:
        source (`str` or `Path`): Where the rows are.
        folder_config (`str`, *optional*): The config to read when `source` is a salv-trl dataset folder.
        config (`str`, *optional*): Dataset configuration of a Hub dataset or a folder of data files.
        split (`str`, defaults to `"train"`): The split (a data file is one `train` split).
    """
    location = local_or_hub(source)
    if isinstance(location, str):
        return load_dataset(location, config, split=split)
    if location.is_file():
        return load_dataset(file_builder(location), data_files=str(location), split="train")
    if folder_config is not None and config_file(location, folder_config).is_file():
        return load_config(location, folder_config)
    if saved_to_disk(location):
        saved = load_from_disk(str(location))
        return saved[split] if isinstance(saved, DatasetDict) else saved
    return load_dataset(str(location), config, split=split)


def build_info(folder: str | os.PathLike) -> dict[str, Any]:
    """The folder's record of how each stage was run (empty when none ran yet)."""
    path = Path(folder) / _BUILD_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def update_build_info(
    folder: str | os.PathLike, stage: str, info: dict[str, Any], *, replaces: Sequence[str] = ()
) -> None:
    """Record how `stage` was run, and forget the records of the stages it `replaces` (e.g. `import` and
    `sample`, which both make the rollouts); the card is written from this record and the data."""
    record = {name: value for name, value in build_info(folder).items() if name not in replaces}
    record[stage] = info
    path = Path(folder) / _BUILD_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write_text(path, json.dumps(record, indent=2, sort_keys=True) + "\n")


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def save_config(dataset: Dataset, folder: str | os.PathLike, config: str) -> Path:
    """Write `dataset` as `config` of the folder (atomically: a kill leaves the old file or the new one) and
    regenerate the card."""
    path = config_file(folder, config)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    dataset.to_parquet(str(tmp))
    os.replace(tmp, path)
    write_card(folder)
    return path


def _size_category(rows: int) -> str:
    for limit, name in (
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
    ):
        if rows < limit:
            return name
    return "1M<n<10M"


def _table(header: tuple[str, ...], rows: list[tuple]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _settings(info: dict[str, Any]) -> str:
    return "\n".join(
        f"- `{key}`: {json.dumps(value)}" for key, value in sorted(info.items()) if key != "stats"
    )


def _rollout_section(rollouts: Dataset, verify_record: dict[str, Any] | None) -> str:
    statuses = Counter((v or {}).get("status", "unverified") for v in rollouts["verdict"])
    verdicts = [s for v in rollouts["verdict"] if v for s in v["signals"]]
    correct = sum(s["correct"] for s in verdicts)
    text = "### Rollouts per status\n\n" + _table(("status", "rollouts"), sorted(statuses.items()))
    if verdicts:
        wrong = len(verdicts) - correct
        text += f"\n\nOutput signals judged: {len(verdicts)} ({correct} correct, {wrong} wrong)."
    # The settings of the verdicts as stored, row by row: what the figures above were judged with.
    rows = rollouts.select_columns([c for c in ("verdict", "verify_settings") if c in rollouts.column_names])
    rows = rows.to_list()
    made_with = settings_counts(rows, verdict_settings(rows, verify_record))
    if made_with:
        text += (
            "\n\nVerdicts made with: "
            + "; ".join(f"{described} ({count} rollouts)" for described, count in sorted(made_with.items()))
            + "."
        )
    return text


def _pair_section(pairs: Dataset, stats: dict[str, Any]) -> str:
    kind = pairs["kind"] if "kind" in pairs.column_names else ["signal"] * len(pairs)
    kinds = Counter(kind)
    signals = [len(s) for s, k in zip(pairs["signals"], kind, strict=True) if k == "signal"]
    text = f"### Pairs\n\n{len(pairs)} pairs from {len(set(pairs['task_id']))} tasks.\n\n"
    if isinstance(pairs.features["prompt"], List):
        text += (
            "Rows are conversational: `prompt` holds the messages the completions were sampled with (chat "
            "template), `chosen` / `rejected` one assistant message each; the spans index its content.\n\n"
        )
    text += _table(("kind", "pairs"), sorted(kinds.items()))
    if signals:
        per = Counter(signals)
        text += f"\n\nContrast signals per signal pair: mean {mean(signals):.2f}, max {max(signals)}.\n\n"
        text += _table(("contrast signals", "signal pairs"), sorted(per.items()))
    share = stats.get("mask_share")
    if share:
        text += (
            f"\n\nShare of completion {share['unit']} masked in (trained on): "
            f"chosen {share['chosen']:.1%}, rejected {share['rejected']:.1%} "
            f"(mean over {share.get('over', 'pairs')})."
        )
    return text


def render_card(folder: str | os.PathLike, repo_id: str | None = None) -> DatasetCard:
    """The dataset card of a folder, written from its data and its build record.

    Args:
        folder (`str` or `Path`): A salv-trl dataset folder.
        repo_id (`str`, *optional*): Hub repository name to show in the usage snippet.

    Returns:
        `huggingface_hub.DatasetCard` with `configs` metadata for every config present.
    """
    folder = Path(folder)
    info = build_info(folder)
    present = [c for c in CONFIGS if config_file(folder, c).is_file()]
    data = {c: load_config(folder, c) for c in present}
    largest = max((len(d) for d in data.values()), default=0)
    card_data = DatasetCardData(
        pretty_name="Signal-aware Verilog preference data (salv-trl)",
        task_categories=["text-generation"],
        language=["en", "code"],
        tags=["verilog", "hardware-description-language", "dpo", "preference", "salv-trl", "qimeng-salv"],
        size_categories=[_size_category(largest)],
        # `pairs` is the default config: what a trainer loads from the folder or Hub id without naming one
        configs=[
            {"config_name": c, "data_files": [{"split": _SPLIT, "path": f"{c}/{_SPLIT}-*"}]}
            | ({"default": True} if c == "pairs" else {})
            for c in present
        ],
        license=info.get("license"),
    )
    # Sizes per config, as push_to_hub records them. They also key datasets' cache of a local folder: without
    # them, `load_dataset(folder, config)` after a stage re-ran in the same folder could return the old rows.
    sizes = DatasetInfosDict()
    for config, dataset in data.items():
        nbytes, download_size = dataset.data.nbytes, config_file(folder, config).stat().st_size
        splits = SplitDict()
        splits.add(SplitInfo(name=_SPLIT, num_bytes=nbytes, num_examples=len(dataset)))
        sizes[config] = DatasetInfo(
            features=dataset.features, splits=splits, download_size=download_size, dataset_size=nbytes
        )
    sizes.to_dataset_card_data(card_data)
    name = repo_id or "<this repository>"
    body = [
        "# Signal-aware Verilog preference data",
        _INTRO,
        "## Configs\n\n"
        + _table(
            ("config", "rows", "columns"), [(c, len(d), ", ".join(d.column_names)) for c, d in data.items()]
        ),
        "## Usage\n\n```python\nfrom datasets import load_dataset\n\n"
        f'pairs = load_dataset("{name}", "pairs", split="train")\n```',
    ]
    built = [
        f"### {stage}\n\n{_settings(info[stage])}"
        for stage in ("tasks", "sample", "import", "verify", "pairs")
        if stage in info
    ]
    if built:
        body.append("## How it was built\n\n" + "\n\n".join(built))
    stats = []
    if "rollouts" in data and "verdict" in data["rollouts"].column_names:
        stats.append(_rollout_section(data["rollouts"], info.get("verify")))
    if "pairs" in data:
        stats.append(_pair_section(data["pairs"], info.get("pairs", {}).get("stats", {})))
    if stats:
        body.append("## Statistics\n\n" + "\n\n".join(stats))
    body.append(_CITATION)
    return DatasetCard(f"---\n{card_data.to_yaml()}\n---\n\n" + "\n\n".join(body) + "\n")


def write_card(folder: str | os.PathLike, repo_id: str | None = None) -> Path:
    """Regenerate the folder's `README.md` from its data."""
    path = Path(folder) / "README.md"
    _atomic_write_text(path, str(render_card(folder, repo_id)))
    return path


def push_to_hub(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    configs: list[str] | None = None,
    private: bool | None = None,
    token: str | None = None,
) -> None:
    """Upload a dataset folder's configs with `Dataset.push_to_hub`, then its card.

    Each config goes to `<config>/train-*.parquet` of the repository, as in the folder, so the repository
    loads exactly as the folder does. The card is pushed last so its `configs` metadata lists every config
    uploaded.

    Args:
        folder (`str` or `Path`): A salv-trl dataset folder.
        repo_id (`str`): Hub dataset repository, e.g. `"user/salv-verilog-pairs"`.
        configs (`list[str]`, *optional*): Which configs to upload; all present by default.
        private (`bool`, *optional*): Create the repository private.
        token (`str`, *optional*): Hub token; the cached login by default.
    """
    present = [c for c in CONFIGS if config_file(folder, c).is_file()]
    for config in configs or present:
        if config not in present:
            raise ValueError(f"{folder} has no {config!r} config to push")
        load_config(folder, config).push_to_hub(
            repo_id, config_name=config, split=_SPLIT, private=private, token=token
        )
    render_card(folder, repo_id).push_to_hub(repo_id, repo_type="dataset", token=token)
