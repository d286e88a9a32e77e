"""Verdicts cached in an append-only JSONL, keyed by (judge, template version, prompt, both continuations).

Each verdict is appended and forced to disk as soon as it arrives, so an interrupted run keeps
every verdict it paid for and the next run asks only for the missing ones. The file is treated as
the run store treats generations (:func:`bench.store.read_records`): a torn last line (a killed
writer, a full disk, possibly cut inside a UTF-8 character) is cut off when the cache is opened,
so the next verdict starts on a fresh line instead of merging into an invalid one; a complete line
that is not valid (an old merged line) is skipped.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

from bench.store import append_lines, read_records


def verdict_key(judge: str, template: str, prompt: str, first: str, second: str) -> str:
    """sha256 of the identifying fields; order matters (first is shown as A)."""
    blob = json.dumps([judge, template, prompt, first, second], ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class VerdictCache:
    """Thread-safe read-all-then-append cache of verdict entries."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._entries: dict[str, dict[str, Any]] = {}
        for entry in read_records(self.path, repair=True, skip_bad=True):
            if isinstance(entry.get("key"), str):
                self._entries[entry["key"]] = entry

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> dict[str, Any] | None:
        return self._entries.get(key)

    def put(self, entry: dict[str, Any]) -> None:
        """Append one entry (must hold ``key``) and flush it to disk."""
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            append_lines(self.path, line)
            self._entries[entry["key"]] = entry
