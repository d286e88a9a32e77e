"""Where a result came from (git commit, package versions), and writing JSON so no reader sees half."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

PACKAGES = ("decbench", "torch", "transformers", "tokenizers", "peft", "vllm")
"""Packages whose versions are recorded with every run and checkpoint (those installed)."""


def git_commit() -> str | None:
    """The commit of the decbench checkout this code runs from; None outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def package_versions() -> dict[str, str]:
    """Python's version and those of :data:`PACKAGES` that are installed."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for pkg in PACKAGES:
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return versions


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``<path>.<pid>.tmp`` and rename it over ``path``; a failed write (a full
    disk) removes the temporary file and leaves the old ``path`` as it was."""
    target = Path(path)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | os.PathLike, data: Any, *, sort_keys: bool = False) -> None:
    """Write JSON to ``<path>.tmp`` and rename it over ``path``: readers see the old file or the new
    one, never half of one. A failed write (a full disk) removes the temporary file.

    Writers of the same file must not overlap (the run store writes under the run's lock).
    """
    target = Path(path)
    tmp = target.with_suffix(target.suffix + ".tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=sort_keys) + "\n", encoding="utf-8")
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
