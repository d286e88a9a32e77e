"""A run's records read once, in one streaming pass, into the compact columns scoring needs.

A million records as dicts take gigabytes; scoring needs far less of them: each continuation's
words (as integer ids), its token ids (one flat array), its prompt, the suite's reference per
prompt, and a few per-record shares (empty, whitespace runs, wordless, short) and the token
digest the leaderboard shows. :func:`read_columns` parses the JSONL line by line, keeps the
first record of each (prompt id, sample index), checks each record as
:func:`bench.record_check.check_record` does, and returns those columns in (prompt id, sample index)
order, the order every score has always been computed in.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

import bench.column_segments as segments
from bench.errors import BenchError

CHUNK = 50_000
"""Records turned into word ids at a time (their word lists are the transient peak)."""


@dataclass
class RecordColumns:
    """The scoring view of a run's records (see the module docstring)."""

    prompt_ids: list[str]
    """Per record, in (prompt id, sample index) order."""
    words: Any
    """:class:`bench.scorers.repetition.WordColumns` of the continuations."""
    tokens: Any
    """:class:`bench.scorers.repetition.TokenColumns`, or None when a record has no token ids."""
    references: dict[str, str]
    """The first non-empty reference of each prompt."""
    summary: dict[str, Any]
    """``n`` records, ``n_prompts``, ``tokens_sha`` and ``lengths_known`` and the degeneracy counts (:class:`Shares`)."""
    digest: str
    """sha256 of the complete lines the records came from."""


def complete_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, line) of each complete line; a torn last line (no newline) is not yielded."""
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            if line.endswith(b"\n"):
                yield number, line


def file_digest(path: Path) -> str:
    """sha256 of the file's complete lines (what :func:`bench.store._read_numbered` digests), unparsed."""
    h = hashlib.sha256()
    if not path.exists():
        return h.hexdigest()
    with open(path, "rb") as f:
        tail = b""
        while block := f.read(1 << 23):
            data = tail + block
            cut = data.rfind(b"\n") + 1
            h.update(data[:cut])
            tail = data[cut:]
    return h.hexdigest()


def _record(line: bytes, number: int, path: Path, run_id: str) -> dict[str, Any] | None:
    from bench.record_check import check_record

    try:
        record = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError):
        record = None
    if not isinstance(record, dict):
        if not line.strip():
            return None
        raise BenchError(f"{path}: line {number} is not a JSON object; the file was edited or corrupted")
    ids = record.get("token_ids")
    if isinstance(ids, list) and set(map(type, ids)) <= {int}:
        record["token_ids"] = []  # checked here at C speed; check_record would test each id in Python
        check_record(record, run_id, f"{path}: line {number}")
        record["token_ids"] = ids
    else:
        check_record(record, run_id, f"{path}: line {number}")
    return record


def buffered_lines(path: Path, offset: int, lines_before: int,
                   run_id: str) -> Iterator[tuple[bytes, dict[str, Any] | None]]:
    """(line, checked record or None for a blank line) of each complete line from byte ``offset``
    (``lines_before`` lines precede it, for the line numbers of errors)."""
    with open(path, "rb") as f:
        f.seek(offset)
        for number, line in enumerate(f, start=lines_before + 1):
            if line.endswith(b"\n"):
                yield line, _record(line, number, path, run_id)


def read_keys(path: Path, run_id: str) -> set[tuple[str, int]]:
    """The (prompt id, sample index) of every record of ``path``, each checked (see :func:`_record`);
    those of valid :mod:`bench.column_segments` come from the segments (checked when they were made)."""
    import gc

    keys: set[tuple[str, int]] = set()
    if path.is_dir():
        raise BenchError(f"{path} is a folder, not a JSONL file")
    if not path.exists():
        return keys
    paused = gc.isenabled()
    gc.disable()  # as in read_columns
    try:
        chain = segments.valid_chain(path)
        for seg in segments.load_chain(chain):
            keys.update(zip(seg.prompt_ids, seg.sample_index.tolist()))
        for _, r in buffered_lines(path, chain.end, chain.lines, run_id):
            if r is not None:
                keys.add((r["prompt_id"], r["sample_index"]))
    finally:
        if paused:
            gc.enable()
    return keys


def token_text(ids: list[int] | None, where: str) -> str | None:
    """The ids as ``"1 2 3"`` (the line :func:`bench.leaderboard.tokens_sha` digests; smaller than bytes)."""
    if ids is None:
        return None
    if ids and not (-(1 << 63) <= min(ids) and max(ids) < 1 << 63):
        raise BenchError(f"{where}: this record has token_ids beyond 64 bits; the file was edited or corrupted")
    return str(ids)[1:-1].replace(",", "")


def read_columns(path: Path, run_id: str, max_new_tokens: int | None) -> RecordColumns:
    """Read ``path`` (a run's generations.jsonl) into :class:`RecordColumns` in one pass.

    The cyclic garbage collector is paused meanwhile: a million rows of strings hold no cycles, and
    its passes over them grow with every row (they took most of the time of a million-record read)."""
    import gc

    paused = gc.isenabled()
    gc.disable()
    try:
        return _read_columns(path, run_id, max_new_tokens)
    finally:
        if paused:
            gc.enable()


def _read_columns(path: Path, run_id: str, max_new_tokens: int | None) -> RecordColumns:
    """Columns built segment by segment in file order (no record's text outlives its segment), then
    put in (prompt id, sample index) order by one permutation of the arrays. The valid
    :mod:`bench.column_segments` are read as they are; the lines after them are parsed, and each
    full segment's worth of them written as one for the next reader."""
    pids: list[str] = []
    indices: list[int] = []
    references: dict[str, str] = {}
    chunks = _Chunks(max_new_tokens)
    chain = segments.Chain([], 0, 0, hashlib.sha256())
    if path.exists():
        if path.is_dir():
            raise BenchError(f"{path} is a folder, not a JSONL file")
        chain = segments.valid_chain(path)

    def take(seg: Any) -> None:
        pids.extend(seg.prompt_ids)
        indices.extend(seg.sample_index.tolist())
        for pid, ref in seg.references.items():
            references.setdefault(pid, ref)
        chunks.add(seg)

    for seg in segments.load_chain(chain):
        take(seg)
    h, start, at = chain.sha, chain.end, chain.end
    batch = _Batch()
    for line, r in (buffered_lines(path, chain.end, chain.lines, run_id) if path.exists() else ()):
        h.update(line)
        at += len(line)
        batch.add(r, f"{path}: line {chain.lines + batch.lines + 1}")
        if len(batch.pids) >= segments.SEGMENT_RECORDS:
            seg = batch.segment()
            segments.write_segment(path.parent / segments.SEGMENTS, start, at, h.digest(), seg)
            take(seg)
            chain.lines += batch.lines
            start, batch = at, _Batch()
    if batch.lines:
        take(batch.segment())
    # stable: of two records of a key (two writers before there was a lock), the first written is kept
    order = sorted(range(len(pids)), key=lambda i: (pids[i], indices[i]))
    order = [i for k, i in enumerate(order) if k == 0 or (pids[i], indices[i]) != (pids[order[k - 1]], indices[order[k - 1]])]
    return chunks.finish(order, [pids[i] for i in order], [indices[i] for i in order], references, h.hexdigest())


class _Batch:
    """The fields of parsed records that make a segment (:func:`build_segment`)."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.token_texts: list[str | None] = []
        self.pids: list[str] = []
        self.indices: list[int] = []
        self.refs: dict[str, str] = {}
        self.lines = 0

    def add(self, r: dict[str, Any] | None, where: str) -> None:
        self.lines += 1
        if r is None:
            return
        if r.get("reference"):
            self.refs.setdefault(r["prompt_id"], r["reference"])
        self.texts.append(r["continuation"])
        self.token_texts.append(token_text(r.get("token_ids"), where))
        self.pids.append(r["prompt_id"])
        self.indices.append(r["sample_index"])

    def segment(self) -> Any:
        return build_segment(self.texts, self.token_texts, self.pids, self.indices, self.refs, self.lines)


def token_array(text: str) -> np.ndarray:
    """Token ids written as ``"1 2 3"`` (several records' joined by spaces) as one array: int32
    whenever every id fits (an empty one too: one int64 part would widen a whole column)."""
    part = np.fromstring(text, dtype=np.int64, sep=" ")
    small = not len(part) or (-(1 << 31) <= part.min() and part.max() < 1 << 31)
    return part.astype(np.int32) if small else part


class _Chunks:
    """Word ids, token ids and degenerate counts of the records' segments, as they are read."""

    def __init__(self, max_new_tokens: int | None):
        from bench.scorers.repetition import WordColumnsBuilder

        self.words = WordColumnsBuilder()
        self.max_new_tokens = max_new_tokens
        self.token_parts: list[Any] = []
        self.token_counts: list[Any] = []
        self.with_ids = True
        self.shares = [0, 0, 0]  # empty, blank and wordless counts (short ones from the token counts)

    def add(self, seg: Any) -> None:
        self.words.add_ids(seg.vocab, seg.word_ids, seg.word_lengths)
        self.shares = [a + b for a, b in zip(self.shares, seg.shares)]
        self.with_ids = self.with_ids and seg.token_ids is not None
        if self.with_ids:
            self.token_parts.append(seg.token_ids)
            self.token_counts.append(seg.token_counts)
        else:
            self.token_parts, self.token_counts = [], []

    def finish(self, order: list[int], pids: list[str], indices: list[int], references: dict[str, str],
               digest: str) -> RecordColumns:
        from bench.scorers.repetition import TokenColumns, WordColumns

        perm = np.asarray(order, dtype=np.int64)
        words = self.words.build()
        words = WordColumns(_permute_segments(words.ids, words.lengths, perm), words.lengths[perm], words.vocab_size)
        tokens, sha = None, "unavailable"
        if self.with_ids:
            counts = np.concatenate(self.token_counts) if self.token_counts else np.zeros(0, dtype=np.int64)
            flat = np.concatenate(self.token_parts) if self.token_parts else np.zeros(0, dtype=np.int32)
            self.token_parts = []  # the parts go before the permuted copy is made
            if len(flat) != int(counts.sum()):
                raise BenchError("token ids did not read back as integers; the generations file was edited or corrupted")
            tokens = TokenColumns(_permute_segments(flat, counts, perm), counts[perm])
            del flat
            sha = _tokens_sha(pids, indices, tokens)
        short = int((tokens.lengths < self.max_new_tokens / 4).sum()) if tokens is not None and self.max_new_tokens else 0
        empty, blank, wordless = self.shares
        summary = {"n": len(pids), "n_prompts": len(set(pids)), "tokens_sha": sha, "lengths_known": tokens is not None,
                   "empty": empty, "blank": blank, "wordless": wordless, "short": short}
        return RecordColumns(pids, words, tokens, references, summary, digest)


def _permute_segments(values: Any, lengths: Any, perm: Any) -> Any:
    """The ragged segments of ``values`` (``lengths`` each) in the order ``perm``, gathered a slice
    of segments at a time (a million segments' gather index would be as large as the values)."""
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1])) if len(lengths) else np.zeros(0, dtype=np.int64)
    new_lengths = lengths[perm]
    out = np.empty(int(new_lengths.sum()), dtype=values.dtype)
    at = 0
    for first in range(0, len(perm), CHUNK):
        part, sizes = perm[first: first + CHUNK], new_lengths[first: first + CHUNK]
        offsets = np.concatenate(([0], np.cumsum(sizes)[:-1]))
        index = np.repeat(starts[part] - offsets, sizes)
        index += np.arange(len(index), dtype=np.int64)
        out[at: at + len(index)] = values[index]
        at += len(index)
    return out


def _tokens_sha(pids: list[str], indices: list[int], tokens: Any) -> str:
    """:func:`bench.leaderboard.tokens_sha` of the ordered records, line for line."""
    sha = hashlib.sha256()
    ends = np.cumsum(tokens.lengths) if len(tokens.lengths) else tokens.lengths
    for start in range(0, len(pids), CHUNK):
        stop = min(start + CHUNK, len(pids))
        first = int(ends[start - 1]) if start else 0
        ids = tokens.ids[first: int(ends[stop - 1]) if stop else 0].tolist()
        at = 0
        for k in range(start, stop):
            n = int(tokens.lengths[k])
            sha.update(f"{pids[k]}\t{indices[k]}\t{' '.join(map(str, ids[at: at + n]))}\n".encode())
            at += n
    return sha.hexdigest()


class Shares:
    """Counts of degenerate continuations (:func:`bench.leaderboard.degeneracy` from counts)."""

    def __init__(self, max_new_tokens: int | None):
        self.max_new_tokens = max_new_tokens
        self.n = self.empty = self.blank = self.wordless = self.short = 0
        self.token_counts: list[int] = []

    def add(self, texts: list[str], token_counts: list[int]) -> None:
        from bench.degenerate import few_words, whitespace_degenerate

        for text, count in zip(texts, token_counts):
            self.n += 1
            empty = not text.strip()
            blank = whitespace_degenerate(text)
            self.empty += empty
            self.blank += blank
            self.wordless += (not blank) and few_words(text)
            if self.max_new_tokens:
                self.short += count < self.max_new_tokens / 4
        self.token_counts.extend(token_counts)

    def counts(self) -> dict[str, int]:
        return {"empty": self.empty, "blank": self.blank, "wordless": self.wordless, "short": self.short}


def build_segment(texts: list[str], token_texts: list[str | None], prompt_ids: list[str], sample_index: list[int],
                  references: dict[str, str], lines: int) -> segments.Segment:
    """A :class:`~bench.column_segments.Segment` from the fields of parsed (and checked) records,
    token ids written as ``"1 2 3"``."""
    vocab: dict[str, int] = {}
    lengths = np.empty(len(texts), dtype=np.int64)
    words: list[str] = []
    for i, text in enumerate(texts):
        split = text.split()
        lengths[i] = len(split)
        words.extend(split)
    # ``setdefault`` with a running counter: a word's id is its rank of first occurrence
    ids = np.fromiter(map(vocab.setdefault, words, itertools.count()), dtype=np.int64, count=len(words))
    dense = np.zeros(max(len(words), 1), dtype=np.int32)
    dense[np.fromiter(vocab.values(), dtype=np.int64, count=len(vocab))] = np.arange(len(vocab), dtype=np.int32)
    shares = Shares(None)
    shares.add(texts, [0] * len(texts))
    counts = shares.counts()
    tokens = counts_of = None
    if all(t is not None for t in token_texts):
        counts_of = np.fromiter((t.count(" ") + 1 if t else 0 for t in token_texts), dtype=np.int64,
                                count=len(token_texts))
        tokens = token_array(" ".join(t for t in token_texts if t))
    return segments.Segment(list(prompt_ids), np.asarray(sample_index, dtype=np.int64), list(vocab), dense[ids],
                            lengths, tokens, counts_of, dict(references),
                            (counts["empty"], counts["blank"], counts["wordless"]), lines)


class SegmentWriter:
    """Turns the batches a writer appends into segments (:data:`SEGMENT_RECORDS` records each).

    It starts where the valid segments end: lines already in the file beyond them (the last
    stretch of a killed writer) are parsed once into the first segment's buffer. A batch that was not
    appended right after the previous one (another writer) resets it: nothing stale is written."""

    def __init__(self, gens: Path, run_id: str):
        self.gens, self.run_id = gens, run_id
        self.end: int | None = None  # where the buffered stretch ends (None: not started)

    def _start(self) -> None:
        """Take the file as it is now: from where the valid segments end, every line beyond them
        (this batch's included) is parsed into the buffer, full segments written on the way."""
        chain = segments.valid_chain(self.gens)
        self.sha, self.start, self.end = chain.sha, chain.end, chain.end
        self.batch = _Batch()
        for line, record in buffered_lines(self.gens, chain.end, chain.lines, self.run_id):
            self.sha.update(line)
            self.end += len(line)
            self.batch.add(record, str(self.gens))
            self._write_if_full()

    def appended(self, start: int, data: bytes, records: list[dict[str, Any]]) -> None:
        """``records``, serialised as ``data``, were appended to the file at byte ``start``."""
        if self.end is None and start == 0:  # a new file: nothing before this batch to parse
            self.sha, self.start, self.end, self.batch = hashlib.sha256(), 0, 0, _Batch()
        if self.end != start:  # the first batch after stored lines, or someone else's lines in between
            self._start()
            return
        self.sha.update(data)
        self.end += len(data)
        for r in records:
            self.batch.add(r, str(self.gens))
        self._write_if_full()

    def _write_if_full(self) -> None:
        if len(self.batch.pids) >= segments.SEGMENT_RECORDS:
            segments.write_segment(self.gens.parent / segments.SEGMENTS, self.start, self.end, self.sha.digest(),
                                   self.batch.segment())
            self.start, self.batch = self.end, _Batch()
