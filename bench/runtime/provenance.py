"""Where a result came from (git commit, package versions), and writing JSON so no reader sees half."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import Any

_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read once: a temporary file is created 0600, the written file gets the usual mode

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


def write_json_atomic(path: str | os.PathLike, data: Any, *, sort_keys: bool = False) -> None:
    """Write JSON to a fresh temporary file beside ``path``, force it to disk, and rename it over ``path``.

    Readers see the old file or the new one, never half of one, and two processes writing the same
    file at once each rename a complete file of their own (a shared temporary name would not).
    """
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(data, indent=2, sort_keys=sort_keys) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
