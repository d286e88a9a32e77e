"""Columnar segments beside a run's ``generations.jsonl``: its records already turned into columns.

    <run>/columns/<start>-<end>.npz   the records of bytes [start, end) of generations.jsonl

The JSONL stays the durable, resumable log; a segment is a cache of what
:func:`bench.record_columns.read_columns` makes of a stretch of its lines (each continuation's
words as ids into the segment's own vocabulary, its token ids, its prompt id and sample index, the
prompts' references and the degenerate counts). Each segment holds the sha256 of the file's bytes
from the start to its end, so it is used only while the file still begins with exactly the bytes it
was made from: an edit, a cut (kill -9 and a resume) or another writer's lines make it stale, and
those lines are parsed, and checked, again. Segments are numpy ``.npz`` files of plain arrays, read
with ``allow_pickle=False``.

They are written :data:`SEGMENT_RECORDS` records at a time, by the writer as batches are
appended (:class:`bench.record_columns.SegmentWriter`) and by a reader that had to parse that many
lines, so runs smaller than that never get a ``columns/`` folder, and a run killed mid-way has at
most that many records to parse again. A segment that cannot be written (a read-only store, a full disk) is simply not written.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from bench.errors import BenchError

SEGMENTS = "columns"
SEGMENT_RECORDS = 16_384
"""Records per segment (the last, shorter stretch of a run stays in the JSONL only)."""
FORMAT = 1
_NAME = re.compile(r"^(\d{13})-(\d{13})\.npz$")
_READ = 1 << 23


@dataclass
class Segment:
    """The columns of a stretch of records, in file order."""

    prompt_ids: list[str]
    sample_index: np.ndarray
    vocab: list[str]
    """The stretch's distinct words, in order of first occurrence."""
    word_ids: np.ndarray
    """Every word of every continuation, as an index into ``vocab``."""
    word_lengths: np.ndarray
    token_ids: np.ndarray | None
    """Flat token ids (None when a record has none)."""
    token_counts: np.ndarray | None
    references: dict[str, str]
    """The first non-empty reference of each prompt in the stretch."""
    shares: tuple[int, int, int]
    """Empty, blank and wordless continuations (:class:`bench.record_columns.Shares`)."""
    lines: int
    """Lines of the file the stretch spans (blank ones included), for the line numbers of later errors."""


def _text_array(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def _text(array: np.ndarray) -> str:
    return array.tobytes().decode("utf-8")


def write_segment(folder: Path, start: int, end: int, prefix_sha: bytes, seg: Segment) -> None:
    """Write ``seg`` as the segment of bytes [start, end) (atomically; silently not when the folder
    cannot be written)."""
    arrays = {
        "meta": np.array([FORMAT, start, end, len(seg.prompt_ids), seg.lines, *seg.shares], dtype=np.int64),
        "prefix_sha": np.frombuffer(prefix_sha, dtype=np.uint8),
        "prompt_ids": _text_array("".join(seg.prompt_ids)),
        "prompt_id_lengths": np.fromiter(map(len, seg.prompt_ids), dtype=np.int64, count=len(seg.prompt_ids)),
        "sample_index": seg.sample_index,
        "vocab": _text_array(" ".join(seg.vocab)),  # words hold no whitespace: split() gives them back
        "word_ids": seg.word_ids,
        "word_lengths": seg.word_lengths,
        "references": _text_array(json.dumps(seg.references, ensure_ascii=False)),
    }
    if seg.token_ids is not None:
        arrays["token_ids"], arrays["token_counts"] = seg.token_ids, seg.token_counts
    path = folder / f"{start:013d}-{end:013d}.npz"
    tmp = folder / f".{path.name}.{os.getpid()}.tmp"
    try:
        folder.mkdir(exist_ok=True)
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except OSError:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass


def _load(path: Path, names: tuple[str, ...] | None = None) -> tuple[dict[str, np.ndarray], int] | None:
    """The arrays of a segment file (only ``names``, when given) and its end, or None when it is
    unreadable or of another format."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in (names or z.files)}
        meta = arrays["meta"]
        if int(meta[0]) != FORMAT:
            return None
        return arrays, int(meta[2])
    except (OSError, ValueError, KeyError, IndexError, zipfile.BadZipFile, EOFError):
        return None


def _segment(arrays: dict[str, np.ndarray]) -> Segment:
    meta = arrays["meta"]
    joined = _text(arrays["prompt_ids"])
    ends = itertools.accumulate(arrays["prompt_id_lengths"].tolist())
    starts = itertools.chain((0,), itertools.accumulate(arrays["prompt_id_lengths"].tolist()))
    pids = [joined[a:b] for a, b in zip(starts, ends)]
    tokens = arrays.get("token_ids")
    return Segment(pids, arrays["sample_index"], _text(arrays["vocab"]).split(), arrays["word_ids"],
                   arrays["word_lengths"], tokens, arrays.get("token_counts") if tokens is not None else None,
                   json.loads(_text(arrays["references"])), (int(meta[5]), int(meta[6]), int(meta[7])), int(meta[4]))


@dataclass
class Chain:
    """The valid segments from the file's start (:func:`valid_chain`), where they end, and the
    sha256 of the file's bytes up to there (to be continued over the lines that follow)."""

    segments: list[Path]
    end: int
    lines: int
    sha: Any


def valid_chain(gens: Path) -> Chain:
    """The segments that describe the file's first bytes, one after the other from byte 0.

    Each candidate's bytes are hashed once (the prefix hash is carried from one to the next); of two
    candidates starting at the same byte, the longer one that still matches is taken."""
    sha, at, lines, chosen = hashlib.sha256(), 0, 0, []
    folder = gens.parent / SEGMENTS
    try:
        names = [(int(m[1]), int(m[2]), folder / m[0]) for m in map(_NAME.match, os.listdir(folder)) if m]
        size = gens.stat().st_size
    except OSError:
        return Chain([], 0, 0, sha)
    by_start: dict[int, list[tuple[int, Path]]] = {}
    for start, end, path in names:
        if start < end <= size:
            by_start.setdefault(start, []).append((end, path))
    with open(gens, "rb") as f:
        while at in by_start:
            for end, path in sorted(by_start.pop(at), reverse=True):
                loaded = _load(path, ("meta", "prefix_sha"))  # the columns are read by load_chain
                if loaded is None or loaded[1] != end:
                    continue
                arrays, _ = loaded
                trial = sha.copy()
                f.seek(at)
                for block in _blocks(f, end - at):
                    trial.update(block)
                if trial.digest() == arrays["prefix_sha"].tobytes():
                    chosen.append(path)
                    sha, at, lines = trial, end, lines + int(arrays["meta"][4])
                    break
            else:
                break
    return Chain(chosen, at, lines, sha)


def _blocks(f: Any, n: int) -> Iterator[bytes]:
    while n > 0:
        block = f.read(min(_READ, n))
        if not block:
            return
        n -= len(block)
        yield block


def load_chain(chain: Chain) -> Iterator[Segment]:
    """The segments of a :func:`valid_chain`, one at a time."""
    for path in chain.segments:
        loaded = _load(path)
        if loaded is None:
            raise BenchError(f"{path} was removed or changed while it was read; run the command again")
        yield _segment(loaded[0])
