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
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


def read_records(path: Path, *, repair: bool = False) -> list[dict[str, Any]]:
    """Read a generations file; a torn final line (a killed writer) is dropped, and cut off if ``repair``."""
    if not path.exists():
        return []
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
    return records


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
        return read_records(self.path / GENERATIONS)

    def scores(self) -> dict[str, Any] | None:
        f = self.path / SCORES
        return json.loads(f.read_text()) if f.exists() else None

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
            header = json.loads(header_path.read_text())
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
        with open(run.path / GENERATIONS, "a", encoding="utf-8") as f:
            f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
            f.flush()
            os.fsync(f.fileno())

    def runs(self) -> list[RunDir]:
        if not self.root.is_dir():
            return []
        return [RunDir(p) for p in sorted(self.root.iterdir()) if (p / HEADER).is_file()]
