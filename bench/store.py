"""The run store: one folder per run identity, with fixed file names.

    <out>/<run_id>/header.json        the full spec, package versions, git commit, device
    <out>/<run_id>/generations.jsonl  one record per (prompt, sample), appended as they finish
    <out>/<run_id>/scores.json        metrics of a finished run, with the digest of the records they describe
    <out>/<run_id>/.lock              held by the one process writing the run
    <out>/<run_id>/columns/           the records as columns, a cache (:mod:`bench.column_segments`)

Records are appended and flushed batch by batch, so a run killed at any moment (even kill -9)
resumes where it stopped: complete lines are kept, a torn last line is dropped, and only the
missing (prompt id, sample index) pairs are generated again.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterable, Iterator

from bench.errors import BenchError
from bench.record_check import check_record  # noqa: F401  (re-exported: bench.store.check_record)
from bench.runtime import git_commit, package_versions, write_json_atomic
from bench.runtime.threads import current as current_threads
from bench.specs import RunSpec

HEADER = "header.json"
GENERATIONS = "generations.jsonl"
SCORES = "scores.json"
LOCK = ".lock"
FORMAT = 2
"""header.json's format. 2: the spec has content fingerprints and Hub commits, and a lock guards
each run. Headers without ``format`` (1) are read the same way; missing fields take their defaults."""


_LAST_KEYS: dict[str, tuple[Any, set[tuple[str, int]]]] = {}
"""The done keys of the run read last, with the (size, mtime, inode) of its file then."""

_HELD: set[str] = set()
"""Run folders whose lock this process holds (a second flock on a new descriptor would wait forever)."""


@contextmanager
def lock_run(path: Path, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold the exclusive lock of the run folder ``path`` (an ``fcntl`` lock on its ``.lock`` file).

    One process writes a run at a time: another one asking waits here (``on_wait`` is called once
    when it has to) until the holder is done or dead, since the kernel drops the lock of a killed
    process. Local file systems only: NFS may not honour the lock. Re-entrant within a process.
    """
    key = str(Path(path).resolve())
    if key in _HELD:
        yield
        return
    with open(path / LOCK, "a+b") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        _HELD.add(key)
        try:
            yield
        finally:
            _HELD.discard(key)
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _say_waiting(run_id: str) -> Callable[[], None]:
    return lambda: print(f"run {run_id} is being written by another process; waiting for it", file=sys.stderr)


def read_records(path: Path, *, repair: bool = False, skip_bad: bool = False) -> list[dict[str, Any]]:
    """Read a JSONL file of records; a torn final line (a killed writer, a full disk) is dropped, and
    cut off if ``repair`` so that the next append starts on a fresh line.

    A complete line that is not a JSON object (invalid UTF-8 included) is an error naming it, or
    skipped with ``skip_bad`` (a cache, where a lost entry only costs asking again).
    """
    return _read_records(path, repair=repair, skip_bad=skip_bad)[0]


def _read_records(path: Path, *, repair: bool = False, skip_bad: bool = False) -> tuple[list[dict[str, Any]], str]:
    """The records of a JSONL file and the sha256 of the complete lines they came from."""
    numbered, digest = _read_numbered(path, repair=repair, skip_bad=skip_bad)
    return [record for _, record in numbered], digest


def _read_numbered(path: Path, *, repair: bool = False,
                   skip_bad: bool = False) -> tuple[list[tuple[int, dict[str, Any]]], str]:
    """(line number, record) of each complete line of a JSONL file, and the digest of those lines."""
    if not path.exists():
        return [], hashlib.sha256().hexdigest()
    if path.is_dir():
        raise BenchError(f"{path} is a folder, not a JSONL file")
    data = path.read_bytes()
    records, good_end = [], 0
    for number, (start, line) in enumerate(_lines_with_offsets(data), start=1):
        if not line.endswith(b"\n"):
            break  # torn last line: the writer died mid-record
        good_end = start + len(line)
        try:
            record = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError):
            record = None  # ValueError: an integer of thousands of digits; RecursionError: deep nesting
        if isinstance(record, dict):
            records.append((number, record))
        elif not (skip_bad or not line.strip()):
            raise BenchError(f"{path}: line {number} is not a JSON object; the file was edited or corrupted")
    if repair and good_end < len(data):
        with open(path, "r+b") as f:
            f.truncate(good_end)
    return records, hashlib.sha256(data[:good_end]).hexdigest()


def cut_torn_tail(path: Path) -> None:
    """Cut a torn last line (a killed writer) so that the next append starts on a fresh line; only
    the file's tail is read."""
    if not path.is_file():
        return
    with open(path, "r+b") as f:
        end = f.seek(0, os.SEEK_END)
        pos = end
        while pos > 0:
            start = max(0, pos - (1 << 16))
            f.seek(start)
            block = f.read(pos - start)
            newline = block.rfind(b"\n")
            if newline >= 0:
                good_end = start + newline + 1
                break
            pos = start
        else:
            good_end = 0
        if good_end < end:
            f.truncate(good_end)
    # the keys read before the cut stay right (a torn line holds no record): keep them for the new size
    held = _LAST_KEYS.get(str(path.parent.resolve()))
    if held is not None and held[0] is not None and held[0][0] == end:
        stat = path.stat()
        _LAST_KEYS[str(path.parent.resolve())] = ((stat.st_size, stat.st_mtime_ns, stat.st_ino), held[1])


def append_lines(path: Path, text: str | bytes) -> int:
    """Append whole lines and fsync them; when the write fails (a full disk) the file is cut back to
    its previous end, so no partial line is left for the next append to merge with.

    Unbuffered on purpose: a buffered file would retry the failed write when asked to truncate.
    An interrupt (Ctrl-C) is not undone: what reached the file is a whole record or a torn tail
    that the next open drops. Returns the byte the lines were written at.
    """
    data = text.encode("utf-8") if isinstance(text, str) else text
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        end = os.lseek(fd, 0, os.SEEK_END)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError:
            try:
                os.ftruncate(fd, end)
            except OSError:
                pass  # the reader drops a torn last line anyway
            raise
    finally:
        os.close(fd)
    return end


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
    _hash_checked: bool = field(default=False, repr=False, compare=False)
    _snapshot: Any = field(default=None, repr=False, compare=False)
    """(size, mtime, inode) of the generations file and what :meth:`snapshot` read from it."""
    _memo: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """Per name, (size, mtime, inode) of the generations file and what was computed from it."""
    _segments: Any = field(default=None, repr=False, compare=False)
    """The :class:`bench.record_columns.SegmentWriter` of the records this process appends."""

    @property
    def run_id(self) -> str:
        return self.path.name

    def header(self) -> dict[str, Any]:
        """The run's header, checked: one line naming the file when it is unreadable (truncated,
        edited), from a newer decbench, or not the header of this folder's run id."""
        path = self.path / HEADER
        try:
            header = json.loads(path.read_bytes().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError):
            header = None
        if not (isinstance(header, dict) and isinstance(header.get("spec"), dict) and "expected_records" in header):
            raise BenchError(f"{path} is truncated or corrupted; delete the folder {self.path} to regenerate the run")
        version = header.get("format", 1)
        if type(version) is not int or version < 1:
            raise BenchError(f"{path}: 'format' is {str(version)[:40]!r}, not a format version; the file was edited")
        if version > FORMAT:
            raise BenchError(f"{path} has format {version}, written by a newer decbench (this one reads up to "
                             f"{FORMAT}); upgrade decbench to read it")
        expected = header["expected_records"]
        if type(expected) is not int or expected < 0:
            raise BenchError(f"{path}: 'expected_records' is {str(expected)[:40]!r}, not a count; the file was edited")
        if not self._hash_checked:
            self._check_identity(header, path)
        return header

    def _check_identity(self, header: dict[str, Any], path: Path) -> None:
        """The header's spec must hash to the folder's name: else its records are some other run's."""
        try:
            spec_id = RunSpec.from_dict(header["spec"]).run_id
        except (KeyError, TypeError, ValueError, AttributeError, RecursionError):
            raise BenchError(f"{path} holds no valid run spec; delete the folder {self.path} "
                             "to regenerate the run") from None
        if spec_id != self.run_id or header.get("run_id", spec_id) != self.run_id:
            raise BenchError(f"{path}: its spec has run id {spec_id}, not its folder's {self.run_id} "
                             "(edited by hand, or the folder was renamed); restore it or delete the folder")
        self._hash_checked = True

    def spec(self) -> RunSpec:
        try:
            return RunSpec.from_dict(self.header()["spec"])
        except (KeyError, TypeError, ValueError, AttributeError):
            raise BenchError(f"{self.path / HEADER} holds no valid run spec; delete the folder {self.path} "
                             "to regenerate the run") from None

    def records(self) -> list[dict[str, Any]]:
        """The run's records, one per (prompt id, sample index): the first one written of each."""
        return self.snapshot()[0]

    def snapshot(self) -> tuple[list[dict[str, Any]], str]:
        """(records, digest of the generations file they were read from), so that scores can say
        which records they were computed from. Duplicate keys (two writers before there was a lock)
        keep their first record: the same key always has the same seed and text."""
        path = self.path / GENERATIONS
        try:
            stat = path.stat()
            stat_key = (stat.st_size, stat.st_mtime_ns, stat.st_ino)
        except FileNotFoundError:
            stat_key = None
        if stat_key is not None and self._snapshot is not None and self._snapshot[0] == stat_key:
            return self._snapshot[1]  # the file is as it was read: no second parse of a large run
        numbered, digest = _read_numbered(path)
        seen: set[tuple[str, int]] = set()
        unique = []
        for number, r in numbered:
            check_record(r, self.run_id, f"{path}: line {number}")
            key = (r["prompt_id"], r["sample_index"])
            if key not in seen:
                seen.add(key)
                unique.append(r)
        if stat_key is not None:
            self._snapshot = (stat_key, (unique, digest))
        return unique, digest

    def _stat_key(self) -> tuple[int, int, int] | None:
        try:
            stat = (self.path / GENERATIONS).stat()
        except FileNotFoundError:
            return None
        return (stat.st_size, stat.st_mtime_ns, stat.st_ino)

    def _cached(self, name: str, compute: Callable[[], Any]) -> Any:
        """``compute()``, kept while the generations file keeps its size, mtime and inode."""
        key = self._stat_key()
        held = self._memo.get(name)
        if key is not None and held is not None and held[0] == key:
            return held[1]
        value = compute()
        if key is not None:
            self._memo[name] = (key, value)
        return value

    def digest(self) -> str:
        """sha256 of the generations file's complete lines, hashed without parsing them."""
        from bench.record_columns import file_digest

        return self._cached("digest", lambda: file_digest(self.path / GENERATIONS))

    def columns(self) -> Any:
        """The records as :class:`bench.record_columns.RecordColumns` (one streaming parse)."""
        from bench.record_columns import read_columns

        held = self._memo.pop("columns", None)  # read by record_count just before: used once, then let go
        if held is not None and held[0] == self._stat_key():
            return held[1]
        return read_columns(self.path / GENERATIONS, self.run_id, self.spec().generation.max_new_tokens)

    def scored_count(self) -> int | None:
        """Distinct records counted by the scores' summary when the scores describe these very
        records (same digest of the file's bytes), else None: a finished run is not parsed again."""
        cached = self.scores() if (self.path / GENERATIONS).exists() else None
        summary = cached.get("summary") if cached else None
        if isinstance(summary, dict) and type(summary.get("n")) is int and cached.get("records") == self.digest():
            return summary["n"]
        return None

    def record_count(self) -> int:
        """Distinct (prompt id, sample index) records (:meth:`scored_count` when it knows)."""
        counted = self.scored_count()
        if counted is not None:
            return counted
        # parsed once for both: the columns wait here for the scoring that follows (see columns)
        key, columns = self._stat_key(), self.columns()
        self._memo["columns"] = (key, columns)
        return columns.summary["n"]

    def scores(self) -> dict[str, Any] | None:
        """The cached scores, or None when absent or unreadable (they are recomputed from the records)."""
        f = self.path / SCORES
        try:
            scores = json.loads(f.read_bytes().decode("utf-8")) if f.exists() else None
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError):
            return None
        return scores if isinstance(scores, dict) and "generations" in scores else None

    def is_complete(self) -> bool:
        header = self.header()
        return self.record_count() >= header["expected_records"]

    def done_keys(self) -> set[tuple[str, int]]:
        """The (prompt id, sample index) pairs stored, every record checked as it is read but none
        kept (resuming a half-done million-record run must not hold its records)."""
        if self._snapshot is not None and self._snapshot[0] == self._stat_key():
            return {(r["prompt_id"], r["sample_index"]) for r in self._snapshot[1][0]}
        from bench.record_columns import read_keys

        key, path = self._stat_key(), str(self.path.resolve())
        held = _LAST_KEYS.get(path)
        if key is not None and held is not None and held[0] == key:
            return held[1]  # read moments ago by another RunDir of this run (pending, then generate)
        keys = read_keys(self.path / GENERATIONS, self.run_id)
        _LAST_KEYS.clear()  # only the last run read is kept
        if key is not None:
            _LAST_KEYS[path] = (key, keys)
        return keys

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
        """Create the run folder with its header, or reopen it after checking it holds the same spec."""
        run = RunDir(self.root / spec.run_id)
        header_path = run.path / HEADER
        if header_path.exists():
            header = run.header()
            if RunSpec.from_dict(header["spec"]).identity() != spec.identity():
                raise BenchError(f"{run.path} holds a different run (its header.json does not match); use another --out")
            cut_torn_tail(run.path / GENERATIONS)  # the records themselves are read (and checked) by done_keys
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
                "threads": current_threads(),  # speed only: provenance, not identity
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            },
        )
        return run

    def append(self, run: RunDir, records: list[dict[str, Any]]) -> None:
        """Append records and force them to disk before returning; every
        :data:`~bench.column_segments.SEGMENT_RECORDS` of them also become a columnar segment."""
        from bench.record_columns import SegmentWriter

        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
        start = append_lines(run.path / GENERATIONS, data)
        if run._segments is None:
            run._segments = SegmentWriter(run.path / GENERATIONS, run.run_id)
        run._segments.appended(start, data, records)

    def runs(self) -> list[RunDir]:
        if not self.root.is_dir():
            return []
        return [RunDir(p) for p in sorted(self.root.iterdir()) if (p / HEADER).is_file()]
