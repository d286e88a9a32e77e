"""Verdicts cached in an append-only JSONL, keyed by (judge, template version, prompt, both continuations).

Each verdict is appended and flushed as soon as it arrives, so an interrupted run keeps every
verdict it paid for and the next run asks only for the missing ones. A torn last line (a killed
writer) is ignored on reading.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any


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
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines(keepends=True):
                if not line.endswith("\n"):
                    break  # torn last line
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(entry, dict) and "key" in entry:
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
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
            self._entries[entry["key"]] = entry
