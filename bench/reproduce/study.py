"""A study folder and its stages: each stage runs once, keeps its result, and is never redone.

Layout (fixed names)::

    DIR/settings.json        every setting, the versions, the settings' digest
    DIR/stages/NAME.json     a finished stage's result (its presence means: done)
    DIR/checkpoints/         the hyperfits (``bench hyperfit`` folders; each resumes by epoch)
    DIR/runs/                the run store of every decode (``bench run``'s; resumes by record)
    DIR/work/                per-item results of the mechanism and intervention stages, the judge's verdicts
    DIR/tables/*.csv         each table, written as soon as its stage ends
    DIR/report.md, report.html, DIR/plots/

A killed study is continued by the same command: finished stages are read back, the stage that was
running continues from its stores (epochs, records, items), and nothing finished is recomputed.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.reproduce.settings import Settings

STAGES = ("hyperfit", "decode", "score", "judge", "mechanism", "intervention", "statistics")


def write_json(path: Path, value: Any) -> None:
    """Write atomically: a kill leaves the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value, indent=1, sort_keys=True, default=_plain) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _plain(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON: {type(value).__name__}")


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise BenchError(f"{path}: unreadable ({e}); delete it to redo that part of the study") from None


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for name in ("torch", "transformers", "peft", "numpy", "mauve-text"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "not installed"
    from bench.runtime.provenance import git_commit

    out["decbench_commit"] = git_commit() or "unknown"
    return out


class Study:
    """One study folder: its settings, its stages' results and where each part is kept."""

    def __init__(self, out: str | Path, settings: Settings, preset: str, log: Callable[[str], None],
                 data_dir: str | None = None):
        self.out, self.settings, self.preset, self.log = Path(out), settings, preset, log
        self.data_dir = data_dir
        """Where registered suites are read (``--data-dir``; not a setting: it moves no number)."""
        self.results: dict[str, Any] = {}
        self.timings: dict[str, float] = {}

    def path(self, *parts: str) -> Path:
        return self.out.joinpath(*parts)

    def open(self) -> None:
        """Write ``settings.json``, or check that the folder holds this very study."""
        path = self.path("settings.json")
        if path.exists():
            old = read_json(path)
            if old.get("key") != self.settings.key():
                mine = self.settings.as_json()
                differs = sorted(k for k in mine if old.get("settings", {}).get(k) != mine[k])
                raise BenchError(f"--out {self.out} holds a study with other settings ({', '.join(differs[:4]) or 'version'} "
                                 "differ); choose another --out or give the same options")
            self.timings = dict(old.get("stage_seconds", {}))
        self._write_settings()
        for name in STAGES:
            done = self.path("stages", f"{name}.json")
            if done.exists():
                self.results[name] = read_json(done)
        self._forget_other_judge()

    def _forget_other_judge(self) -> None:
        """A judge given, changed or dropped since the judge stage ran redoes that stage and the statistics
        (the verdict cache keeps every verdict paid for); the other stages do not depend on the judge."""
        now = self.settings.judge()
        if "judge" in self.results:
            stale = self.results["judge"].get("configured") != now
        else:  # a study from before the judge stage: its statistics stand unless a judge is now given
            stale = now is not None
        if not stale:
            return
        for name in ("judge", "statistics"):
            if self.results.pop(name, None) is not None:
                self.log(f"stage {name}: the judge differs from the one it ran with; redone")
            self.path("stages", f"{name}.json").unlink(missing_ok=True)

    def _write_settings(self) -> None:
        write_json(self.path("settings.json"), {
            "study": "beyond-temperature", "preset": self.preset, "key": self.settings.key(),
            "settings": self.settings.as_json(), "versions": versions(), "stage_seconds": self.timings,
            "threads": _threads()})

    def run(self, name: str, fn: Callable[["Study"], Any]) -> Any:
        """The stage's result: read back when it finished before, else computed and kept."""
        if name in self.results:
            self.log(f"stage {name}: done before ({self.timings.get(name, 0):.0f} s), kept")
            return self.results[name]
        self.log(f"stage {name}: running")
        start = time.perf_counter()
        result = fn(self)
        self.timings[name] = round(self.timings.get(name, 0.0) + time.perf_counter() - start, 1)
        write_json(self.path("stages", f"{name}.json"), result)
        self.results[name] = result
        self._write_settings()
        self.log(f"stage {name}: finished in {self.timings[name]:.0f} s")
        return result


def _threads() -> int | None:
    from bench.runtime.threads import current

    return current()
