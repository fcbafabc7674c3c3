"""Resumable stage output: append-only jsonl shards with one key per row.

A long stage (sampling, verification) writes each finished row at once to a shard of its own process, flushed
line by line. After an interruption, `kill -9` included, the rows already written are read back (a torn last
line is ignored), their keys say which work is done, and the re-run writes the rest to a new shard. When the
stage is complete, its rows are compacted into one `datasets.Dataset`; the first row written for a key wins,
so no row is duplicated even when two runs overlapped.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["ShardStore"]

Key = tuple


class ShardStore:
    """Keyed rows in append-only jsonl shards under `directory`.

    Args:
        directory (`str` or `Path`): Folder of the shards (created on first write).
        key (`Callable[[dict], tuple]`): The row's identity, e.g. `lambda r: (r["task_id"],
            r["sample_index"])`.
    """

    def __init__(self, directory: str | os.PathLike, key: Callable[[dict], Key]):
        self.directory = Path(directory)
        self.key = key
        self._handle: IO[str] | None = None

    def _shards(self) -> list[Path]:
        return sorted(self.directory.glob("part-*.jsonl")) if self.directory.is_dir() else []

    def rows(self) -> Iterator[dict]:
        """Every complete row written so far, once per key (the first written wins), shard by shard."""
        seen: set[Key] = set()
        for shard in self._shards():
            with shard.open(encoding="utf-8") as handle:
                for line in handle:
                    if not line.endswith("\n"):  # torn by a kill mid-write: never a complete row
                        break
                    row = json.loads(line)
                    key = self.key(row)
                    if key not in seen:
                        seen.add(key)
                        yield row

    def done(self) -> set[Key]:
        """Keys of the rows already written."""
        return {self.key(row) for row in self.rows()}

    def write(self, rows: Iterable[dict]) -> None:
        """Append rows to this process's shard, each flushed to the OS as soon as it is written."""
        if self._handle is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            name = f"part-{time.time_ns():020d}-{os.getpid()}.jsonl"
            self._handle = (self.directory / name).open("a", encoding="utf-8")
        for row in rows:
            self._handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            self._handle.flush()

    def close(self) -> None:
        """Close this process's shard (rows stay on disk until `clear`)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def clear(self) -> None:
        """Delete the shards, once their rows are safely compacted elsewhere."""
        self.close()
        for shard in self._shards():
            shard.unlink()
        if self.directory.is_dir() and not any(self.directory.iterdir()):
            self.directory.rmdir()

    def __enter__(self) -> ShardStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
