"""Output paths checked before anything is spent, and faults while writing turned into one line.

Every command that writes (``run --out``, ``leaderboard --out``, ``compare --csv``, ``judge
--cache/--out``, ``hyperfit --out``, ``analyze --out``) calls :func:`writable_dir` or
:func:`writable_file` on its outputs at plan time, so that a path under a regular file, a folder
where a file is due, or a read-only place is refused before a model is loaded or a request is paid.

Neither ever writes into what a command reads or what ``bench run`` owns (:func:`check_not_protected`):
a path inside a run folder (its records, header, scores or anything beside them), a run store's
own ``leaderboard.csv``, or one of the command's inputs. ``bench compare A B --csv
A/generations.jsonl`` replaced the records with a table; now it is one line and exit 2.
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


RUN_FILES = ("header.json", "generations.jsonl")
"""A folder holding either is a run folder: only ``bench run`` writes there."""
STORE_FILES = ("leaderboard.csv",)
"""Files a run store keeps beside its run folders, rewritten by every ``bench run``."""


def run_folder_of(path: Path) -> Path | None:
    """The run folder ``path`` is (or lies inside), or None."""
    for folder in (path, *path.parents):
        if any((folder / name).is_file() for name in RUN_FILES):
            return folder
    return None


def is_store(folder: Path) -> bool:
    """``folder`` holds at least one run folder."""
    try:
        return any(child.is_dir() and any((child / n).is_file() for n in RUN_FILES) for child in folder.iterdir())
    except OSError:
        return False


def check_not_protected(path: str | Path, option: str, inputs: tuple[str | Path, ...] = ()) -> None:
    """Refuse, in one line, an output path inside a run folder, a store's own file, or an input."""
    p = Path(path).expanduser().resolve()
    run = run_folder_of(p)
    if run is not None:
        raise BenchError(f"{option} {path}: that is inside the run folder {run}, whose files only 'bench run' "
                         "writes; give a path outside it")
    if p.name in STORE_FILES and is_store(p.parent):
        raise BenchError(f"{option} {path}: that is the run store's own {p.name}, rewritten by every 'bench run'; "
                         "give another path")
    for given in inputs:
        source = Path(str(given).split("#")[0]).expanduser().resolve()
        if p == source:  # inside an input folder is fine unless it is a run (checked above)
            raise BenchError(f"{option} {path}: that is an input of this command ({given}); give another path")


def writable_dir(path: str | Path, option: str, inputs: tuple[str | Path, ...] = ()) -> Path:
    """``path`` is an existing writable folder or can be made one, and not a protected place
    (:func:`check_not_protected`); a one-line error otherwise."""
    p = Path(path)
    if str(path) == "":
        raise BenchError(f"{option}: give a folder")
    check_not_protected(p, option, inputs)
    if p.exists():
        if not p.is_dir():
            raise BenchError(f"{option} {path}: that is a file, not a folder")
        if not os.access(p, os.W_OK | os.X_OK):
            raise BenchError(f"{option} {path}: the folder is not writable")
        return p
    _check_ancestors(p, option)
    return p


def writable_file(path: str | Path, option: str, inputs: tuple[str | Path, ...] = ()) -> Path:
    """``path`` can be written as a file (it may exist) and is not a protected place
    (:func:`check_not_protected`); a one-line error otherwise."""
    p = Path(path)
    if str(path) == "" or p.name in ("", ".", ".."):
        raise BenchError(f"{option}: give a file name")
    check_not_protected(p, option, inputs)
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
