"""The sample viewer's data: the runs' records read one at a time into compact columns.

A store of a million records does not fit in one page, nor its records in memory as dicts. Each
record is read from ``generations.jsonl`` line by line, validated as the store validates it, and
kept as a few integers (the counts its metrics are ratios of), a decoder, a finish reason, a
degenerate flag and its text. The page (:mod:`bench.publish.view`) gets those integers as one
binary column file to filter on, and the texts in chunk files it loads when it shows or searches
them (:func:`write_data`).
"""

from __future__ import annotations

import array
import base64
import hashlib
import itertools
import json
import re
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from bench.errors import BenchError
from bench.store import GENERATIONS, RunDir, check_record

COUNT_COLUMNS = ("words", "rep2_unique", "rep4_unique", "distinct2_unique", "tokens", "token_types")
"""Per continuation, the integers its shown metrics are computed from (see :func:`metrics_of`)."""
CHUNK_RECORDS = 2000
CHUNK_CHARS = 600_000
"""A chunk file closes at the first prompt boundary past either size: small enough to load in a few
milliseconds for one page, few enough (500 at a million records) for a search to go through."""


def iter_records(run: RunDir) -> Iterator[dict[str, Any]]:
    """The run's records one at a time, checked as :meth:`RunDir.snapshot` checks them: a torn last
    line is dropped, the first record of each (prompt id, sample index) is kept."""
    path = run.path / GENERATIONS
    if path.is_dir():
        raise BenchError(f"{path} is a folder, not a JSONL file")
    if not path.exists():
        return
    seen: set[tuple[str, int]] = set()
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            if not line.endswith(b"\n"):
                break  # torn last line: the writer died mid-record (or is writing it now)
            try:
                record = json.loads(line)
            except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError):
                record = None
            if not isinstance(record, dict):
                if line.strip():
                    raise BenchError(f"{path}: line {number} is not a JSON object; the file was edited or corrupted")
                continue
            check_record(record, run.run_id, f"{path}: line {number}")
            key = (record["prompt_id"], record["sample_index"])
            if key not in seen:
                seen.add(key)
                yield record


def continuation_counts(text: str, token_ids: list[int] | None) -> tuple[tuple[int, ...], list[str]]:
    """(the :data:`COUNT_COLUMNS` of one continuation, its words).

    As :func:`bench.scorers.repetition.score_texts` counts one text: rep-n's distinct n-grams are
    those of the text without its last word (SimCTG's loop), distinct-2's those of the whole text.
    """
    w = text.split()
    ids = token_ids or ()
    bigrams = set(zip(w[:-1], w[1:-1]))
    distinct2 = len(bigrams) + (len(w) > 1 and (w[-2], w[-1]) not in bigrams)  # plus the last one, if new
    return (len(w), len(bigrams), len(set(zip(w[:-1], w[1:-1], w[2:-1], w[3:-1]))), distinct2, len(ids),
            len(set(ids))), w


def _ratio(num: int, den: int) -> float:
    return num / den if den > 0 else float("nan")


def metrics_of(counts: tuple[int, ...]) -> dict[str, float]:
    """The shown metrics from :func:`continuation_counts`, with score_texts's arithmetic (the page's
    script does the same division)."""
    words, u2, u4, d2, tokens, types = counts
    return {"rep-2": 1 - _ratio(u2, words - 2), "rep-4": 1 - _ratio(u4, words - 4),
            "distinct-2": _ratio(d2, words - 1), "ttr": _ratio(types, tokens),
            "length-words": float(words), "length-tokens": float(tokens)}


def _degenerate_test() -> Callable[[str, list[str]], bool]:
    """``degeneracy([record])`` flags a continuation when it is whitespace-degenerate or has few
    words; the same test without a pass over every character in Python (whitespace is what
    ``str.split`` drops). tests/test_view.py holds the two equal."""
    from bench.leaderboard import MIN_WORDS, WHITESPACE_RUN, WHITESPACE_SHARE

    run = re.compile(r"\s{%d,}" % WHITESPACE_RUN)
    word = re.compile(r"[^\W_]+")

    def degenerate(text: str, words: list[str]) -> bool:
        if not words or run.search(text):
            return True
        if len(text) - sum(map(len, words)) >= WHITESPACE_SHARE * len(text):
            return True
        return sum(1 for _ in itertools.islice(word.finditer(text), MIN_WORDS)) < MIN_WORDS

    return degenerate


def _trace(trace: Any) -> list[Any] | None:
    """What the page needs of a ``--log-probs`` trace: pieces, log-probs, entropies, ranks, and the
    entropy's sign and the top size for a server's bounded traces."""
    if not isinstance(trace, dict) or not trace.get("pieces"):
        return None
    bound = "≥" if trace.get("entropy") == "lower-bound" else "="
    below = f"below the top {trace.get('top_logprobs', '')}".rstrip()
    return [trace["pieces"], trace.get("log_probs") or [], trace.get("entropies") or [], trace.get("ranks") or [],
            bound, below]


class Collected:
    """Every record of the runs as columns, one row per continuation, in reading order."""

    def __init__(self) -> None:
        self.counts = [array.array("q") for _ in COUNT_COLUMNS]
        self.run = array.array("q")
        self.prompt = array.array("q")  # index into prompt_keys
        self.sample = array.array("q")
        self.finish = array.array("q")  # index into finishes
        self.degenerate = array.array("b")
        self.texts: list[str] = []
        self.traces: dict[int, list[Any]] = {}
        self.prompt_keys: dict[tuple[str, str], int] = {}
        self.prompt_data: list[tuple[str, str | None]] = []  # (prompt, reference), the first run's
        self.finishes: dict[str, int] = {}
        self.per_run: list[int] = []
        """Records read per run (the count that says whether a run is complete)."""

    def read(self, runs: list[RunDir], suites: list[str]) -> None:
        is_degenerate = _degenerate_test()
        for r, (run, suite) in enumerate(zip(runs, suites)):
            before = len(self.texts)
            for rec in iter_records(run):
                self.add(r, suite, rec, is_degenerate)
            self.per_run.append(len(self.texts) - before)

    def add(self, run: int, suite: str, rec: dict[str, Any], is_degenerate: Callable[[str, list[str]], bool]) -> None:
        text = rec["continuation"]
        counts, words = continuation_counts(text, rec.get("token_ids"))
        for column, value in zip(self.counts, counts):
            column.append(value)
        key = (suite, rec["prompt_id"])
        p = self.prompt_keys.get(key)
        if p is None:
            p = self.prompt_keys[key] = len(self.prompt_data)
            ref = rec.get("reference")
            self.prompt_data.append((str(rec.get("prompt", "")), None if ref is None else str(ref)))
        finish = str(rec.get("finish_reason") or "")
        self.run.append(run)
        self.prompt.append(p)
        self.sample.append(rec["sample_index"])
        self.finish.append(self.finishes.setdefault(finish, len(self.finishes)))
        self.degenerate.append(is_degenerate(text, words))
        trace = _trace(rec.get("trace"))
        if trace is not None:
            self.traces[len(self.texts)] = trace
        self.texts.append(text)

    def order(self, run_rank: list[int]) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
        """(record order on the page, each prompt's rank, the prompt keys by rank): prompts by (suite,
        prompt id), and within one the runs in ``run_rank`` order, each run's samples by index."""
        keys = sorted(self.prompt_keys)
        rank = np.empty(len(keys), dtype=np.int64)
        rank[[self.prompt_keys[k] for k in keys]] = np.arange(len(keys))
        prompt_rank = rank[np.frombuffer(self.prompt, dtype=np.int64)] if len(self.prompt) else np.zeros(0, np.int64)
        runs = np.asarray(run_rank, dtype=np.int64)[np.frombuffer(self.run, dtype=np.int64)] if len(self.run) \
            else np.zeros(0, np.int64)
        order = np.lexsort((np.frombuffer(self.sample, dtype=np.int64), runs, prompt_rank))
        return order, prompt_rank, keys


def _narrow(values: np.ndarray) -> np.ndarray:
    """The smallest unsigned type that holds ``values`` (the page reads each column in its own)."""
    top = int(values.max()) if len(values) else 0
    for dtype in (np.uint8, np.uint16, np.uint32):
        if top <= np.iinfo(dtype).max:
            return values.astype(dtype)
    raise BenchError(f"a count of {top} is too large for the viewer")


def pack_columns(columns: dict[str, np.ndarray]) -> tuple[str, dict[str, list[Any]]]:
    """The columns as one base64 string, and where each lies in it: name -> [byte offset, type, length].

    Offsets are multiples of 4 so the page can view each column as a typed array without copying."""
    parts, layout, offset = [], {}, 0
    for name, values in columns.items():
        values = _narrow(values)
        data = values.astype(values.dtype.newbyteorder("<"), copy=False).tobytes()
        layout[name] = [offset, {1: "u8", 2: "u16", 4: "u32"}[values.dtype.itemsize], len(values)]
        pad = -len(data) % 4
        parts.append(data + b"\0" * pad)
        offset += len(data) + pad
    return base64.b64encode(b"".join(parts)).decode("ascii"), layout


def js_call(name: str, *args: Any) -> str:
    """``VIEW.name(args);`` with the arguments as JSON: ASCII, and no ``<`` that could end a script."""
    text = ",".join(json.dumps(a, ensure_ascii=True, separators=(",", ":")) for a in args)
    return f"VIEW.{name}(" + text.replace("<", "\\u003c") + ");\n"


def chunk_bounds(prompt_start: np.ndarray, texts_len: np.ndarray) -> list[int]:
    """The first prompt of each chunk, and the number of prompts last (see :data:`CHUNK_RECORDS`)."""
    bounds, records, chars = [0], 0, 0
    n_prompts = len(prompt_start) - 1
    for p in range(n_prompts):
        lo, hi = int(prompt_start[p]), int(prompt_start[p + 1])
        records += hi - lo
        chars += int(texts_len[hi] - texts_len[lo])
        if (records >= CHUNK_RECORDS or chars >= CHUNK_CHARS) and p + 1 < n_prompts:
            bounds.append(p + 1)
            records = chars = 0
    bounds.append(n_prompts)
    return bounds


class DataWriter:
    """Writes the data files into a folder and keeps a digest of all of them (the folder's name)."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.digest = folder, hashlib.sha256()
        folder.mkdir(parents=True)

    def write(self, name: str, text: str) -> None:
        data = text.encode("ascii")
        self.digest.update(name.encode() + b"\0" + data)
        with open(self.folder / name, "wb") as f:
            f.write(data)


def write_data(writer: DataWriter, col: Collected, run_rank: list[int], run_decoder: list[int],
               verdicts: Callable[[tuple[str, str]], tuple[str, str]] | None) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Write the chunk files (``c<k>.js``) and the column file (``index.js``); return the page's
    metadata (without the labels, which the caller adds) and the prompt keys in page order.

    ``verdicts(key)``: a prompt's (verdict tokens, verdict HTML), or None without ``--judged``."""
    order, prompt_rank, keys = col.order(run_rank)
    n = len(order)
    prompt_start = np.searchsorted(prompt_rank[order], np.arange(len(keys) + 1))
    finishes = sorted(col.finishes)
    finish_map = np.zeros(max(len(finishes), 1), dtype=np.int64)
    for name, i in col.finishes.items():
        finish_map[i] = finishes.index(name)
    ints = lambda a: np.frombuffer(a, dtype=np.int64) if len(a) else np.zeros(0, np.int64)  # noqa: E731
    columns = {"decoder": np.asarray(run_decoder, dtype=np.int64)[ints(col.run)][order],
               "finish": finish_map[ints(col.finish)][order],
               "degenerate": np.frombuffer(col.degenerate, dtype=np.int8).astype(np.int64)[order] if n else np.zeros(0),
               **{name: ints(values)[order] for name, values in zip(COUNT_COLUMNS, col.counts)},
               "prompt_start": prompt_start}
    lengths = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, col.texts), dtype=np.int64, count=n)[order], out=lengths[1:])
    bounds = chunk_bounds(prompt_start, lengths)
    suites = sorted({suite for suite, _ in keys})
    suite_index = {s: i for i, s in enumerate(suites)}
    samples = ints(col.sample)
    for k in range(len(bounds) - 1):
        p0, p1 = bounds[k], bounds[k + 1]
        rows = order[prompt_start[p0]:prompt_start[p1]].tolist()
        prompts = []
        for key in keys[p0:p1]:
            text, ref = col.prompt_data[col.prompt_keys[key]]
            tokens, block = verdicts(key) if verdicts else ("", "")
            prompts.append([suite_index[key[0]], key[1], text, ref, tokens, block])
        traces = {str(j): col.traces[i] for j, i in enumerate(rows) if i in col.traces} if col.traces else {}
        writer.write(f"c{k}.js", js_call("chunk", k, {"p": prompts, "t": [col.texts[i] for i in rows],
                                                        "s": samples[rows].tolist(), "x": traces}))
    packed, layout = pack_columns(columns)
    writer.write("index.js", js_call("index", packed))
    return {"n": n, "prompts": len(keys), "chunks": bounds, "layout": layout, "finishes": finishes,
            "suites": suites}, keys
