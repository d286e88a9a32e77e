"""The run store: one folder per run identity, with fixed file names.

    <out>/<run_id>/header.json        the full spec, package versions, git commit, device
    <out>/<run_id>/generations.jsonl  one record per (prompt, sample), appended as they finish
    <out>/<run_id>/scores.json        metrics of a finished run, with the digest of the records they describe
    <out>/<run_id>/.lock              held by the one process writing the run

Records are appended and flushed batch by batch, so a run killed at any moment (even kill -9)
resumes where it stopped: complete lines are kept, a torn last line is dropped, and only the
missing (prompt id, sample index) pairs are generated again. JSON files are replaced atomically,
so a reader sees a whole old file or a whole new one.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterable, Iterator

from bench.errors import BenchError
from bench.runtime import git_commit, package_versions, write_json_atomic
from bench.specs import RunSpec

HEADER = "header.json"
GENERATIONS = "generations.jsonl"
SCORES = "scores.json"
LOCK = ".lock"
FORMAT = 2
"""header.json's format. 2: the spec has content fingerprints and Hub commits, and a lock guards
each run. Headers without ``format`` (1) are read the same way; missing fields take their defaults."""


@contextmanager
def lock_run(path: Path, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold the exclusive lock of the run folder ``path`` (an ``fcntl`` lock on its ``.lock`` file).

    One process writes a run at a time: another one asking waits here (``on_wait`` is called once
    when it has to) until the holder is done or dead, since the kernel drops the lock of a killed
    process. Local file systems only: NFS may not honour the lock.
    """
    with open(path / LOCK, "a+b") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _say_waiting(run_id: str) -> Callable[[], None]:
    return lambda: print(f"run {run_id} is being written by another process; waiting for it", file=sys.stderr)


def read_records(path: Path, *, repair: bool = False) -> list[dict[str, Any]]:
    """Read a generations file; a torn final line (a killed writer) is dropped, and cut off if ``repair``."""
    return _read_records(path, repair=repair)[0]


def _read_records(path: Path, *, repair: bool = False) -> tuple[list[dict[str, Any]], str]:
    """The records of a generations file and the sha256 of the complete lines they came from."""
    if not path.exists():
        return [], hashlib.sha256().hexdigest()
    data = path.read_bytes()
    records, good_end = [], 0
    for start, line in _lines_with_offsets(data):
        if not line.endswith(b"\n"):
            break  # torn last line: the writer died mid-record
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise BenchError(f"{path}: line {len(records) + 1} is not valid JSON; the file was edited or corrupted") from None
        good_end = start + len(line)
    if repair and good_end < len(data):
        with open(path, "r+b") as f:
            f.truncate(good_end)
    return records, hashlib.sha256(data[:good_end]).hexdigest()


def _lines_with_offsets(data: bytes) -> Iterable[tuple[int, bytes]]:
    start = 0
    while start < len(data):
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end + 1
        yield start, data[start:end]
        start = end


@dataclass
class RunDir:
    """A run folder in the store."""

    path: Path

    @property
    def run_id(self) -> str:
        return self.path.name

    def header(self) -> dict[str, Any]:
        return json.loads((self.path / HEADER).read_text())

    def spec(self) -> RunSpec:
        return RunSpec.from_dict(self.header()["spec"])

    def records(self) -> list[dict[str, Any]]:
        """The run's records, one per (prompt id, sample index): the first one written of each."""
        return self.snapshot()[0]

    def snapshot(self) -> tuple[list[dict[str, Any]], str]:
        """(records, digest of the generations file they were read from), so that scores can say
        which records they were computed from. Duplicate keys (two writers before there was a lock)
        keep their first record: the same key always has the same seed and text."""
        records, digest = _read_records(self.path / GENERATIONS)
        seen: set[tuple[str, int]] = set()
        unique = []
        for r in records:
            key = (r["prompt_id"], r["sample_index"])
            if key not in seen:
                seen.add(key)
                unique.append(r)
        return unique, digest

    def scores(self) -> dict[str, Any] | None:
        f = self.path / SCORES
        return json.loads(f.read_text()) if f.exists() else None

    def is_complete(self) -> bool:
        header = self.header()
        return len(self.done_keys()) >= header["expected_records"]

    def done_keys(self) -> set[tuple[str, int]]:
        return {(r["prompt_id"], r["sample_index"]) for r in self.records()}

    def lock(self) -> ContextManager[None]:
        """Context manager holding this run's lock (see :func:`lock_run`)."""
        return lock_run(self.path, _say_waiting(self.run_id))


class RunStore:
    """The ``--out`` folder: creates, reopens and lists runs."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    @contextmanager
    def writing(self, spec: RunSpec, *, expected_records: int, device: str,
                resolved: dict[str, Any]) -> Iterator[RunDir]:
        """:meth:`open` the run and hold its lock for the block: one writer per run.

        A second process writing the same run waits for the first, then finds its records stored
        and generates only what is still missing (nothing, when the first one finished).
        """
        path = self.root / spec.run_id
        path.mkdir(parents=True, exist_ok=True)
        with lock_run(path, _say_waiting(spec.run_id)):
            yield self.open(spec, expected_records=expected_records, device=device, resolved=resolved)

    def open(self, spec: RunSpec, *, expected_records: int, device: str, resolved: dict[str, Any]) -> RunDir:
        """Create the run folder with its header, or reopen it after checking it holds the same spec.

        Writers call it through :meth:`writing`, which holds the run's lock."""
        run = RunDir(self.root / spec.run_id)
        header_path = run.path / HEADER
        if header_path.exists():
            header = json.loads(header_path.read_text())
            if RunSpec.from_dict(header["spec"]).identity() != spec.identity():
                raise BenchError(f"{run.path} holds a different run (its header.json does not match); use another --out")
            read_records(run.path / GENERATIONS, repair=True)
            return run
        run.path.mkdir(parents=True, exist_ok=True)
        write_json_atomic(
            header_path,
            {
                "format": FORMAT,
                "run_id": spec.run_id,
                "spec": spec.to_dict(),
                "expected_records": expected_records,
                "resolved": resolved,
                "versions": package_versions(),
                "git_commit": git_commit(),
                "device": device,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            },
        )
        return run

    def append(self, run: RunDir, records: list[dict[str, Any]]) -> None:
        """Append records and force them to disk before returning."""
        with open(run.path / GENERATIONS, "a", encoding="utf-8") as f:
            f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
            f.flush()
            os.fsync(f.fileno())

    def runs(self) -> list[RunDir]:
        if not self.root.is_dir():
            return []
        return [RunDir(p) for p in sorted(self.root.iterdir()) if (p / HEADER).is_file()]
