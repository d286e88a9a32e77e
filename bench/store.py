"""The run store: one folder per run identity, with fixed file names.

    <out>/<run_id>/header.json        the full spec, package versions, git commit, device
    <out>/<run_id>/generations.jsonl  one record per (prompt, sample), appended as they finish
    <out>/<run_id>/scores.json        metrics of a finished run (written by the runner)

Records are appended and flushed batch by batch, so a run killed at any moment (even kill -9)
resumes where it stopped: complete lines are kept, a torn last line is dropped, and only the
missing (prompt id, sample index) pairs are generated again.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from bench.errors import BenchError
from bench.specs import RunSpec

HEADER = "header.json"
GENERATIONS = "generations.jsonl"
SCORES = "scores.json"


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for pkg in ("decbench", "torch", "transformers", "tokenizers", "peft", "vllm"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return versions


def write_json_atomic(path: Path, data: Any) -> None:
    """Write to a temporary file and rename, so readers never see half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk must not leave an empty .tmp behind
        raise


def read_records(path: Path, *, repair: bool = False, skip_bad: bool = False) -> list[dict[str, Any]]:
    """Read a JSONL file of records; a torn final line (a killed writer, a full disk) is dropped, and
    cut off if ``repair`` so that the next append starts on a fresh line.

    A complete line that is not a JSON object (invalid UTF-8 included) is an error naming it, or
    skipped with ``skip_bad`` (a cache, where a lost entry only costs asking again).
    """
    if not path.exists():
        return []
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
        except (UnicodeDecodeError, json.JSONDecodeError):
            record = None
        if isinstance(record, dict):
            records.append(record)
        elif not (skip_bad or not line.strip()):
            raise BenchError(f"{path}: line {number} is not a JSON object; the file was edited or corrupted")
    if repair and good_end < len(data):
        with open(path, "r+b") as f:
            f.truncate(good_end)
    return records


def append_lines(path: Path, text: str) -> None:
    """Append whole lines and fsync them; when the write fails (a full disk) the file is cut back to
    its previous end, so no partial line is left for the next append to merge with.

    Unbuffered on purpose: a buffered file would retry the failed write when asked to truncate.
    An interrupt (Ctrl-C) is not undone: what reached the file is a whole record or a torn tail
    that the next open drops.
    """
    data = text.encode("utf-8")
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
        """The run's header; one line naming the file when it is unreadable (truncated, edited)."""
        path = self.path / HEADER
        try:
            header = json.loads(path.read_bytes().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            header = None
        if not (isinstance(header, dict) and isinstance(header.get("spec"), dict) and "expected_records" in header):
            raise BenchError(f"{path} is truncated or corrupted; delete the folder {self.path} to regenerate the run")
        return header

    def spec(self) -> RunSpec:
        try:
            return RunSpec.from_dict(self.header()["spec"])
        except (KeyError, TypeError, ValueError, AttributeError):
            raise BenchError(f"{self.path / HEADER} holds no valid run spec; delete the folder {self.path} "
                             "to regenerate the run") from None

    def records(self) -> list[dict[str, Any]]:
        return read_records(self.path / GENERATIONS)

    def scores(self) -> dict[str, Any] | None:
        """The cached scores, or None when absent or unreadable (they are recomputed from the records)."""
        f = self.path / SCORES
        try:
            scores = json.loads(f.read_bytes().decode("utf-8")) if f.exists() else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None
        return scores if isinstance(scores, dict) and "generations" in scores else None

    def is_complete(self) -> bool:
        header = self.header()
        return len(self.done_keys()) >= header["expected_records"]

    def done_keys(self) -> set[tuple[str, int]]:
        return {(r["prompt_id"], r["sample_index"]) for r in self.records()}


class RunStore:
    """The ``--out`` folder: creates, reopens and lists runs."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def open(self, spec: RunSpec, *, expected_records: int, device: str, resolved: dict[str, Any]) -> RunDir:
        """Create the run folder with its header, or reopen it after checking it holds the same spec."""
        run = RunDir(self.root / spec.run_id)
        header_path = run.path / HEADER
        if header_path.exists():
            header = run.header()
            if RunSpec.from_dict(header["spec"]).identity() != spec.identity():
                raise BenchError(f"{run.path} holds a different run (its header.json does not match); use another --out")
            read_records(run.path / GENERATIONS, repair=True)
            return run
        run.path.mkdir(parents=True, exist_ok=True)
        write_json_atomic(
            header_path,
            {
                "run_id": spec.run_id,
                "spec": spec.to_dict(),
                "expected_records": expected_records,
                "resolved": resolved,
                "versions": package_versions(),
                "git_commit": _git_commit(),
                "device": device,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            },
        )
        return run

    def append(self, run: RunDir, records: list[dict[str, Any]]) -> None:
        """Append records and force them to disk before returning."""
        append_lines(run.path / GENERATIONS, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))

    def runs(self) -> list[RunDir]:
        if not self.root.is_dir():
            return []
        return [RunDir(p) for p in sorted(self.root.iterdir()) if (p / HEADER).is_file()]
