"""Output paths checked before anything is spent, and faults while writing turned into one line.

Every command that writes (``run --out``, ``leaderboard --out``, ``compare --csv``, ``judge
--cache/--out``, ``hyperfit --out``, ``analyze --out``) calls :func:`writable_dir` or
:func:`writable_file` on its outputs at plan time, so that a path under a regular file, a folder
where a file is due, or a read-only place is refused before a model is loaded or a request is paid.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from bench.errors import BenchError


def _check_ancestors(path: Path, option: str) -> None:
    """Every existing ancestor must be a folder, and the nearest one writable."""
    parent = path.parent
    while not parent.exists():
        if parent.is_symlink():
            raise BenchError(f"{option} {path}: {parent} is a broken link")
        parent = parent.parent
    if not parent.is_dir():
        raise BenchError(f"{option} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BenchError(f"{option} {path}: {parent} is not writable")


def writable_dir(path: str | Path, option: str) -> Path:
    """``path`` is an existing writable folder or can be made one; a one-line error otherwise."""
    p = Path(path)
    if str(path) == "":
        raise BenchError(f"{option}: give a folder")
    if p.exists():
        if not p.is_dir():
            raise BenchError(f"{option} {path}: that is a file, not a folder")
        if not os.access(p, os.W_OK | os.X_OK):
            raise BenchError(f"{option} {path}: the folder is not writable")
        return p
    _check_ancestors(p, option)
    return p


def writable_file(path: str | Path, option: str) -> Path:
    """``path`` can be written as a file (it may exist); a one-line error otherwise."""
    p = Path(path)
    if str(path) == "" or p.name in ("", ".", ".."):
        raise BenchError(f"{option}: give a file name")
    if p.is_dir():
        raise BenchError(f"{option} {path}: that is a folder, not a file")
    if p.exists():
        if not os.access(p, os.W_OK):
            raise BenchError(f"{option} {path}: the file is not writable")
        return p
    _check_ancestors(p, option)
    return p


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the file system is full (or over quota)."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def disk_full_message(exc: OSError, where: str | Path | None = None, kept: str | None = None) -> str:
    """``no space left on <where> (<kept>; rerun to resume)``: what the user needs, in one line."""
    place = where or exc.filename or "the device"
    return f"no space left on {place} ({kept or 'everything written so far is kept'}; rerun to resume)"
