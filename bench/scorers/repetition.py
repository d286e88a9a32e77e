"""Repetition, diversity, distinct-n, length and token type-token ratio of a set of continuations.

All rates are fractions in [0, 1] (the papers print percent: multiply by 100). A metric that is
undefined for the input (no n-grams of that order at all, no non-empty token sequence) is NaN.

Words are ``text.split()``: runs of non-whitespace in Python's sense, after stripping. This is the
tokenization of the contrastive-search literature, whose reference implementation is
``simctg.evaluation.measure_repetition_and_diversity`` (PyPI ``simctg==0.7``). ``rep-n`` and
``diversity`` reproduce it exactly, quirks included:

* ``rep-n = 1 - sum_t U_n(t) / sum_t C_n(t)``, where ``U_n(t)`` is the number of *distinct* word
  n-grams within text ``t`` (unique counts are per text, then summed over the corpus) and
  ``C_n(t) = max(0, W_t - n)`` is its n-gram count. SimCTG's loop ``while end_idx < len(tokens)``
  never reaches the last n-gram of a text, hence ``W_t - n`` and not ``W_t - n + 1``: both counts
  are those of the text without its last word.
* ``diversity = (1 - r2/100)(1 - r3/100)(1 - r4/100)`` with ``rn = round(100 * rep-n, 2)``: SimCTG
  rounds rep-n to 2 decimals *in percent* before multiplying. The ``rep-n`` values we return are
  not rounded; ``round(100 * rep-n, 2)`` is bit-for-bit SimCTG's number.

The other metrics:

* ``distinct-n`` (Li et al., 2016), corpus level: the number of distinct word n-grams in the union
  over all continuations divided by the total number of word n-grams, ``sum_t max(0, W_t - n + 1)``
  (every n-gram, the last one included). Li et al. divide by the number of words instead; we follow
  the common n-gram-count form, so distinct-1 is the corpus type-token ratio of words.
* ``length-words``: mean of ``len(text.strip().split())`` over all continuations (the "gen length"
  of SimCTG's evaluation scripts).
* with token ids only: ``length-tokens`` (mean token count over all continuations), ``ttr`` (mean
  over continuations of unique token ids / token count) and ``ttr-last96`` (the same over each
  continuation's last 96 token ids; shorter ones use all of theirs), the token-level repetition
  measure of the hyperfitting work. Empty continuations are skipped by both TTRs (their ratio is
  0/0) but count in ``length-tokens``.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.errors import BenchError

REP_ORDERS = (2, 3, 4)
DISTINCT_ORDERS = (1, 2, 3, 4)
TTR_WINDOW = 96


@dataclass
class _WordStats:
    """Per-text and corpus-level word n-gram counts of one corpus."""

    lengths: np.ndarray
    """Words per text."""
    rep_unique: dict[int, np.ndarray]
    """Per text, distinct n-grams of the text without its last word (SimCTG's count)."""
    distinct_unique: dict[int, int]
    """Distinct n-grams in the whole corpus."""
    plans: dict[int, "_DistinctPlan"]
    """Per order, what a resample's distinct-n count needs; filled for the bootstrap only."""
    matrices: dict[bool, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    """:func:`_matrices`, made at the first resample."""

    def rep_total(self, n: int) -> np.ndarray:
        return np.maximum(self.lengths - n, 0)

    def distinct_total(self, n: int) -> np.ndarray:
        return np.maximum(self.lengths - n + 1, 0)


def _check_texts(texts: Sequence[str]) -> None:
    if isinstance(texts, str):
        raise BenchError("texts must be a list of strings, not one string")
    if len(texts) == 0:
        raise BenchError("no texts to score")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise BenchError(f"text {i} is a {type(text).__name__}, not a string")


@dataclass
class WordColumns:
    """A corpus's words as dense integer ids (0 .. vocabulary - 1), one flat array, and words per text.

    Built chunk by chunk (:meth:`add`), so a million texts never live as lists of strings at once.
    """

    ids: np.ndarray
    lengths: np.ndarray
    vocab_size: int

    @classmethod
    def of(cls, texts: Sequence[str]) -> "WordColumns":
        builder = WordColumnsBuilder()
        builder.add(texts)
        return builder.build()


class WordColumnsBuilder:
    """Maps words to ids chunk by chunk (the vocabulary is shared by all chunks)."""

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}
        self.chunks: list[np.ndarray] = []
        self.lengths: list[np.ndarray] = []
        self.seen = 0

    def add(self, texts: Sequence[str]) -> None:
        words: list[str] = []
        lengths = np.empty(len(texts), dtype=np.int64)
        for i, text in enumerate(texts):
            split = text.split()
            lengths[i] = len(split)
            words.extend(split)
        # the position of a word's first occurrence (``setdefault`` with a running counter is the
        # fastest exact mapping in CPython); made dense in :meth:`build`
        dtype = np.int32 if self.seen + len(words) < 1 << 31 else np.int64
        first = np.fromiter(map(self.vocab.setdefault, words, itertools.count(self.seen)), dtype=dtype,
                            count=len(words))
        self.seen += len(words)
        self.chunks.append(first)
        self.lengths.append(lengths)

    def add_ids(self, vocab: Sequence[str], ids: np.ndarray, lengths: np.ndarray) -> None:
        """:meth:`add` of texts already turned into ids into their own ``vocab`` (in order of first
        occurrence), as :mod:`bench.column_segments` keeps them: the ids come out the same."""
        # a new word's value: a position past every earlier one, in its order of first occurrence here
        first = np.fromiter(map(self.vocab.setdefault, vocab, itertools.count(self.seen)), dtype=np.int64,
                            count=len(vocab))
        dtype = np.int32 if self.seen + max(len(ids), len(vocab)) < 1 << 31 else np.int64
        self.chunks.append(first.astype(dtype)[ids])
        self.seen += max(len(ids), len(vocab))
        self.lengths.append(np.asarray(lengths, dtype=np.int64))

    def build(self) -> WordColumns:
        lengths = np.concatenate(self.lengths) if self.lengths else np.zeros(0, dtype=np.int64)
        dense = np.zeros(max(self.seen, 1), dtype=np.int32)
        dense[np.fromiter(self.vocab.values(), dtype=np.int64, count=len(self.vocab))] = np.arange(
            len(self.vocab), dtype=np.int32)  # vocab values are in order of first occurrence
        ids = np.empty(self.seen, dtype=np.int32)
        at = 0
        while self.chunks:  # chunk by chunk, each let go once mapped
            first = self.chunks.pop(0)
            ids[at: at + len(first)] = dense[first]
            at += len(first)
        return WordColumns(ids, lengths, len(self.vocab))


def _word_stats(words: WordColumns, bootstrap: bool = False, prompt_index: np.ndarray | None = None,
                n_prompts: int | None = None) -> _WordStats:
    """Count word n-grams with exact integer keys instead of string n-grams (the speed-up over SimCTG).

    Order by order, a key per n-gram position (the previous order's key times the vocabulary size
    plus the last word, made dense again before it could pass 2**62) joined with its text, sorted
    once: the distinct (n-gram, text) pairs then give the corpus's distinct n-grams, each text's
    distinct n-grams (SimCTG's count leaves out the text's last n-gram, which is dropped where it
    occurs nowhere else in its text) and, with ``bootstrap``, the plan of the resampled distinct-n.
    """
    lengths = words.lengths
    n_texts = len(lengths)
    vocab = max(words.vocab_size, 1)
    ends = np.cumsum(lengths)
    stats = _WordStats(lengths, {}, {}, {})
    gram, bound = words.ids.astype(np.int64), vocab  # keys of the n-grams starting at each position
    for n in DISTINCT_ORDERS:
        if n > 1:
            if bound > (1 << 62) // (vocab * max(n_texts, 1)):
                gram, bound = _dense(gram)
            gram = gram[:-1] * vocab + words.ids[n - 1:]  # garbage where the n-gram does not fit
            bound *= vocab
        fits = np.ones(len(gram), dtype=bool)  # the n-gram at a position fits inside its text
        for back in range(1, n):  # not at a text's last n - 1 positions
            tail = ends[lengths >= back] - back
            fits[tail[tail < len(gram)]] = False
        pairs = gram[fits]
        del fits
        pairs *= n_texts
        # each text holds max(0, length - n + 1) n-grams, in text order: their texts without a per-word array
        _add_text_index(pairs, np.maximum(lengths - n + 1, 0))
        pairs.sort()
        if n in REP_ORDERS:
            # SimCTG leaves out each text's last n-gram: it goes when it occurs nowhere else in its text
            has = np.flatnonzero(lengths >= n)
            last = gram[ends[has] - n] * n_texts + has
            drop = has[_occurs_once(pairs, last)]
            del has, last
        if n == DISTINCT_ORDERS[-1]:
            del gram  # the last order's plan is the largest: make room for it
        new = np.empty(len(pairs), dtype=bool)
        new[:1] = True
        np.not_equal(pairs[1:], pairs[:-1], out=new[1:])
        distinct = pairs[new]
        del pairs, new
        texts = (distinct % n_texts).astype(np.int32)
        if n in REP_ORDERS:
            stats.rep_unique[n] = np.bincount(texts, minlength=n_texts)
            stats.rep_unique[n][drop] -= 1
        distinct //= n_texts  # now the n-gram of each distinct pair, sorted
        gram_new = np.empty(len(distinct), dtype=bool)
        gram_new[:1] = True
        np.not_equal(distinct[1:], distinct[:-1], out=gram_new[1:])
        del distinct
        stats.distinct_unique[n] = int(gram_new.sum())
        if bootstrap:
            stats.plans[n] = _distinct_plan(gram_new, texts, stats.distinct_total(n), n_texts, prompt_index, n_prompts)
        del texts, gram_new
    return stats


def _occurs_once(ordered: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Whether each of ``keys`` (every one present in the sorted ``ordered``) occurs there once.

    The keys are looked up in sorted order: a million lookups into 60M keys then walk the array
    forwards instead of jumping about it (1.6 s a pass in random order, measured at 1M texts)."""
    order = np.argsort(keys, kind="stable")
    ordered_keys = keys[order]
    first = np.searchsorted(ordered, ordered_keys, side="left")
    after = first + 1
    once = np.ones(len(keys), dtype=bool)
    inside = after < len(ordered)
    once[inside] = ordered[after[inside]] != ordered_keys[inside]
    out = np.empty(len(keys), dtype=bool)
    out[order] = once
    return out


TEXT_INDEX_CHUNK = 1 << 16
"""Texts whose index is added to the n-gram keys at a time (:func:`_add_text_index`; 16 MB at 64 n-grams a text)."""


def _add_text_index(pairs: np.ndarray, per_text: np.ndarray) -> None:
    """``pairs += repeat(arange(texts), per_text)`` in place, a chunk of texts at a time: the repeated
    index of every n-gram never exists whole (154 MB beside the keys for the 38M words of a million texts)."""
    dtype = np.int32 if len(per_text) < 1 << 31 else np.int64
    at = 0
    for first in range(0, len(per_text), TEXT_INDEX_CHUNK):
        sizes = per_text[first: first + TEXT_INDEX_CHUNK]
        index = np.repeat(np.arange(first, first + len(sizes), dtype=dtype), sizes)
        pairs[at: at + len(index)] += index
        at += len(index)


def _dense(keys: np.ndarray) -> tuple[np.ndarray, int]:
    """Replace each key by its rank among the distinct keys; also return the number of distinct keys."""
    order = np.argsort(keys)
    ordered = keys[order]
    new = np.empty(len(keys), dtype=bool)
    new[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
    dense = np.empty(len(keys), dtype=np.int64)
    dense[order] = np.cumsum(new) - 1
    return dense, max(int(new.sum()), 1)


def _rate(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


def _word_metrics(stats: _WordStats) -> dict[str, float]:
    out: dict[str, float] = {}
    rounded = []
    for n in REP_ORDERS:
        unique, total = int(stats.rep_unique[n].sum()), int(stats.rep_total(n).sum())
        rep = 1 - (unique / total) if total else math.nan
        out[f"rep-{n}"] = rep
        # exactly SimCTG's arithmetic: percent rounded to 2 decimals, then back to a fraction
        rounded.append(round(rep * 100, 2))
    r2, r3, r4 = rounded
    out["diversity"] = (1 - r2 / 100) * (1 - r3 / 100) * (1 - r4 / 100)
    for n in DISTINCT_ORDERS:
        out[f"distinct-{n}"] = _rate(stats.distinct_unique[n], int(stats.distinct_total(n).sum()))
    out["length-words"] = float(stats.lengths.sum()) / len(stats.lengths)
    return out


@dataclass
class TokenColumns:
    """Every continuation's token ids in one flat array, and ids per continuation."""

    ids: np.ndarray
    lengths: np.ndarray

    @classmethod
    def of(cls, token_ids: Sequence[Sequence[int]], n_texts: int) -> "TokenColumns":
        """Checked: one sequence per text, integers only (bools and floats are refused)."""
        if len(token_ids) != n_texts:
            raise BenchError(f"token_ids has {len(token_ids)} sequences for {n_texts} texts")
        lengths = np.fromiter(map(len, token_ids), dtype=np.int64, count=n_texts)
        for i, seq in enumerate(token_ids):
            kinds = set(map(type, seq))  # C-speed, unlike a Python test per id
            if not all(issubclass(k, (int, np.integer)) and not issubclass(k, (bool, np.bool_)) for k in kinds):
                raise BenchError(f"token_ids[{i}] must contain only integers")
        try:
            ids = np.fromiter(itertools.chain.from_iterable(token_ids), dtype=np.int64, count=int(lengths.sum()))
        except OverflowError:
            raise BenchError("token_ids hold an integer beyond 64 bits") from None
        return cls(ids, lengths)


def _distinct_per_segment(values: np.ndarray, segment: np.ndarray, n_segments: int) -> np.ndarray:
    """How many distinct values each segment (``segment``: non-decreasing ids) holds."""
    if not len(values):
        return np.zeros(n_segments, dtype=np.int64)
    dense = values.astype(np.int64) - int(values.min())  # int32 ids: their range may not fit in int32
    width = int(dense.max()) + 1
    if width > (1 << 62) // max(n_segments, 1):
        dense, width = _dense(dense)
    keys = np.sort(segment.astype(np.int64) * width + dense)
    new = np.empty(len(keys), dtype=bool)
    new[0] = True
    np.not_equal(keys[1:], keys[:-1], out=new[1:])
    return np.bincount(keys[new] // width, minlength=n_segments)


TOKEN_SLICE = 1 << 16
"""Continuations whose tokens :func:`_token_arrays` counts at a time."""


def _token_arrays(tokens: TokenColumns) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per continuation: token count, TTR and last-96 TTR (NaN for empty continuations).

    Continuations are independent here, so they are counted a slice of texts at a time: the sort
    keys of a million continuations never exist at once."""
    counts = tokens.lengths
    n_texts = len(counts)
    ends = np.cumsum(counts)
    distinct, distinct_tail = np.zeros(n_texts, dtype=np.int64), np.zeros(n_texts, dtype=np.int64)
    step = TOKEN_SLICE
    for first in range(0, n_texts, step):
        last = min(first + step, n_texts)
        lo, hi = (int(ends[first - 1]) if first else 0), int(ends[last - 1]) if last else 0
        part = counts[first:last]
        segment = np.repeat(np.arange(last - first, dtype=np.int64), part)
        from_end = np.repeat(ends[first:last], part) - np.arange(lo, hi, dtype=np.int64)  # 1 for the last id
        tail = from_end <= TTR_WINDOW
        ids = tokens.ids[lo:hi]
        distinct[first:last] = _distinct_per_segment(ids, segment, last - first)
        distinct_tail[first:last] = _distinct_per_segment(ids[tail], segment[tail], last - first)
    with np.errstate(divide="ignore", invalid="ignore"):
        ttr = np.where(counts > 0, distinct / counts, math.nan)
        ttr_last = np.where(counts > 0, distinct_tail / np.minimum(counts, TTR_WINDOW), math.nan)
    return counts, ttr, ttr_last


def _nanmean(values: np.ndarray) -> float:
    kept = values[~np.isnan(values)]
    return float(kept.mean()) if len(kept) else math.nan


def _token_metrics(tokens: tuple[np.ndarray, np.ndarray, np.ndarray]) -> dict[str, float]:
    counts, ttr, ttr_last = tokens
    return {"length-tokens": float(counts.mean()), "ttr": _nanmean(ttr), "ttr-last96": _nanmean(ttr_last)}


def score_texts(texts: list[str], token_ids: list[list[int]] | None = None) -> dict[str, float]:
    """Score a corpus of continuations (prompts excluded); see the module docstring for definitions.

    Returns ``rep-2``, ``rep-3``, ``rep-4``, ``diversity``, ``distinct-1`` .. ``distinct-4`` and
    ``length-words``; with ``token_ids`` (one list per text) also ``length-tokens``, ``ttr`` and
    ``ttr-last96``. Raises :class:`BenchError` for an empty corpus or mistyped input.
    """
    _check_texts(texts)
    tokens = TokenColumns.of(token_ids, len(texts)) if token_ids is not None else None
    return score_columns(WordColumns.of(texts), tokens)


def score_columns(words: WordColumns, tokens: TokenColumns | None = None) -> dict[str, float]:
    """:func:`score_texts` of a corpus already turned into columns."""
    if not len(words.lengths):
        raise BenchError("no texts to score")
    out = _word_metrics(_word_stats(words))
    if tokens is not None:
        out.update(_token_metrics(_token_arrays(tokens)))
    return out


# ---------------------------------------------------------------------------------------------
# Bootstrap confidence intervals

@dataclass
class _DistinctPlan:
    """distinct-n of a resample = exclusive @ present + shared n-grams hit by a present text + sure hits."""

    exclusive: np.ndarray
    """Per text, distinct n-grams found in no other text."""
    shared_text: np.ndarray
    """Texts containing each shared n-gram (n-grams in two or more texts), grouped by n-gram."""
    group_starts: np.ndarray
    """Start of each n-gram's group in ``shared_text``."""
    total: np.ndarray
    """Per text, n-gram count."""
    sure: int = 0
    """Shared n-grams in so many prompts that no resample can miss them (see :data:`MISS_BOUND`)."""


MISS_BOUND = 1e-15
"""The n-grams of the most prompts are counted as hit by every resample, without a look at which
prompts it drew, as long as the chance that one resample misses any of them is at most this (so at
most 1e-9 over :data:`MISS_BOUND_REPLICATES` resamples). An n-gram in ``k`` of ``P`` prompts is
missed by a resample with probability ``((P - k) / P) ** P``, below ``exp(-k)``: the n-grams shared by
most prompts (the bulk of the work at 100k records: every text holds the common words) are then
free, and intervals equal the exact computation's, under the same seed, but for that chance."""
MISS_BOUND_REPLICATES = 1_000_000
"""Replicates the bound is sized for (``bench compare``'s ``--n-boot`` at most)."""


def _distinct_plan(group_new: np.ndarray, texts: np.ndarray, total: np.ndarray, n_texts: int,
                   prompt_index: np.ndarray | None = None, n_prompts: int | None = None) -> _DistinctPlan:
    """The plan of one order from its distinct (n-gram, text) pairs sorted by n-gram then text:
    ``texts`` and ``group_new`` (True where a new n-gram starts)."""
    single = group_new & np.r_[group_new[1:], True]  # an n-gram in one text only
    exclusive = np.bincount(texts[single], minlength=n_texts)
    shared_text, shared_new = texts[~single], group_new[~single]
    del single
    starts = np.flatnonzero(shared_new)
    del shared_new
    sure = 0
    if len(starts) and n_prompts and n_prompts > 1:
        sure_groups = _sure_groups(starts, shared_text, prompt_index, n_prompts)
        sure = int(sure_groups.sum())
        if sure:
            sizes = np.diff(np.append(starts, len(shared_text)))
            shared_text = shared_text[np.repeat(~sure_groups, sizes)]
            kept_sizes = sizes[~sure_groups]
            starts = np.cumsum(np.r_[0, kept_sizes[:-1]]) if len(kept_sizes) else starts[:0]
    return _DistinctPlan(exclusive, shared_text, starts, total, sure)


def _sure_groups(starts: np.ndarray, texts: np.ndarray, prompt_index: np.ndarray | None,
                 n_prompts: int) -> np.ndarray:
    """Which shared n-grams (groups of ``texts`` beginning at ``starts``) every resample hits (see
    :data:`MISS_BOUND`)."""
    sizes = np.diff(np.append(starts, len(texts)))
    if prompt_index is None or (n_prompts == len(prompt_index) and bool((prompt_index == np.arange(n_prompts)).all())):
        k = sizes  # one text a prompt: an n-gram's prompts are its texts
    else:
        group = np.repeat(np.arange(len(starts), dtype=np.int64), sizes)
        pairs = group * n_prompts + prompt_index[texts]  # sorted already when a prompt's texts are adjacent
        if len(pairs) > 1 and not (pairs[1:] >= pairs[:-1]).all():
            pairs.sort()  # (np.unique's hash path is several times slower)
        distinct = pairs[np.r_[True, pairs[1:] != pairs[:-1]]]  # distinct (n-gram, prompt)
        k = np.bincount(distinct // n_prompts, minlength=len(starts))
        del group, pairs, distinct
    with np.errstate(divide="ignore"):  # log(0) = -inf when k = P: such an n-gram is never missed
        miss = np.exp(n_prompts * np.log1p(-np.minimum(k, n_prompts) / n_prompts))
    order = np.argsort(-k, kind="stable")
    # the cumulative chance grows as k falls: the sure n-grams are a prefix of the order
    sure = np.zeros(len(starts), dtype=bool)
    sure[order[: int((np.cumsum(miss[order]) <= MISS_BOUND).sum())]] = True
    return sure


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


_BITS16 = ((np.arange(1 << 16)[:, None] >> np.arange(16)) & 1).astype(np.float64)
"""Bit i of every 16-bit value (a 65536 x 16 table), as floats: the histogram's product with it is
then one BLAS call (numpy multiplies integer matrices without BLAS: 8 ms a call), exact while the
counts stay below 2**53."""
_QUARTER_OFFSETS = np.arange(4, dtype=np.intp) << 16
GATHER_CELLS = 1 << 22
"""Cells of shared n-grams gathered at a time (32 MB of 64-bit masks)."""


def bit_counts(words: np.ndarray, rows: int) -> np.ndarray:
    """For each bit position r < ``rows`` (at most 64), how many of the 64-bit ``words`` have bit r set."""
    if len(words) < 1 << 14:
        bits = np.unpackbits(words.astype("<u8").view(np.uint8).reshape(-1, 8), axis=1, bitorder="little")
        return bits.sum(axis=0, dtype=np.int64)[:rows]
    # one histogram of the four 16-bit quarters of every word (quarter j counted at j * 65536 +
    # value), then the bits of each value: a pass over the words, not 64
    quarters = np.ascontiguousarray(words, dtype="<u8").view("<u2").reshape(-1, 4).astype(np.intp)
    quarters += _QUARTER_OFFSETS
    hist = np.bincount(quarters.ravel(), minlength=4 << 16).reshape(4, 1 << 16)
    return (hist.astype(np.float64) @ _BITS16).ravel()[:rows].astype(np.int64)


def _present_masks(present: np.ndarray) -> np.ndarray:
    """Per text, a 64-bit word whose bit r says whether resample r (row r of ``present``, at most 64) drew it."""
    packed = np.zeros((8, present.shape[1]), dtype=np.uint8)
    packed[: (len(present) + 7) // 8] = np.packbits(present, axis=0, bitorder="little")
    return np.ascontiguousarray(packed.T).view("<u8").ravel()


def _shared_hits(masks: np.ndarray, plan: _DistinctPlan, rows: int) -> np.ndarray:
    """Per resample, how many shared n-grams at least one of its drawn texts holds.

    Bit-parallel: a group's OR over its texts' masks says, for 64 resamples at once, whether the
    n-gram was drawn; the same numbers as looking each resample up on its own. The groups are taken
    :data:`GATHER_CELLS` cells at a time."""
    starts, cells = plan.group_starts, len(plan.shared_text)
    hits = np.zeros(rows, dtype=np.int64)
    first = 0
    while first < len(starts):
        last = max(int(np.searchsorted(starts, starts[first] + GATHER_CELLS, side="left")), first + 1)
        lo, hi = int(starts[first]), int(starts[last]) if last < len(starts) else cells
        hits += bit_counts(np.bitwise_or.reduceat(masks[plan.shared_text[lo:hi]], starts[first:last] - lo), rows)
        first = last
    return hits


def _matrices(stats: _WordStats, tokens: tuple[np.ndarray, np.ndarray, np.ndarray] | None) -> tuple[np.ndarray, np.ndarray]:
    """Per text, as two float64 matrices: what the count-weighted sums need (rep-n's distinct and
    total n-grams, words, and with tokens their count, TTRs and whether there are any), and what the
    drawn-once sums of distinct-n need (exclusive and total n-grams of each order). Made once."""
    key = tokens is not None
    if key not in stats.matrices:
        weighted = [stats.rep_unique[n] for n in REP_ORDERS] + [stats.rep_total(n) for n in REP_ORDERS] + [stats.lengths]
        if tokens is not None:
            token_counts, ttr, ttr_last = tokens
            weighted += [token_counts, np.nan_to_num(ttr), np.nan_to_num(ttr_last), token_counts > 0]
        orders = sorted(stats.plans)
        drawn = [stats.plans[n].exclusive for n in orders] + [stats.plans[n].total for n in orders]
        stats.matrices[key] = (np.column_stack(weighted).astype(np.float64),
                               np.column_stack(drawn).astype(np.float64) if drawn else np.zeros((len(stats.lengths), 0)))
    return stats.matrices[key]


def _batch_metrics(stats: _WordStats, tokens: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
                   counts: np.ndarray) -> dict[str, np.ndarray]:
    """Every corpus-level metric for a batch of resamples given as per-text draw counts."""
    return _batch_metrics_many([(stats, tokens)], counts)[0]


def _stack(mats: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[list[np.ndarray], np.ndarray, list[int]]:
    """The :func:`_matrices` of corpora for one block's products: each corpus's count-weighted
    matrix on its own (its TTR columns are fractions, whose sums BLAS may add in another order beside
    other columns: 20 of 1000 TTR replicates of a 100k-record compare came out 3e-16 apart), the
    drawn-once matrices side by side (whole numbers: their sums are exact in any order), and where
    each corpus's drawn columns end."""
    drawn = mats[0][1] if len(mats) == 1 else np.hstack([d for _, d in mats])
    return [w for w, _ in mats], drawn, np.cumsum([d.shape[1] for _, d in mats]).tolist()


def _batch_metrics_many(sides: Sequence[tuple[_WordStats, tuple[np.ndarray, np.ndarray, np.ndarray] | None]],
                        counts: np.ndarray, stacked: Any = None) -> list[dict[str, np.ndarray]]:
    """:func:`_batch_metrics` of corpora whose texts are drawn by the same per-text ``counts``.

    Every sum over texts of a batch is one matrix product of its draw counts (or of whether each
    text was drawn) with the corpora's :func:`_matrices` (``stacked``, :func:`_stack`, made here when
    not given), a few rows at a time (their float64 copy, made once for all corpora,
    stays small); distinct-n adds the shared n-grams the drawn texts hold, 64 resamples per pass,
    from one set of draw masks. Each corpus gets exactly the numbers it gets alone."""
    weighted_ms, drawn_m, d_ends = stacked or _stack([_matrices(stats, tokens) for stats, tokens in sides])
    n_rows, n_texts = counts.shape
    step = max(1, (1 << 22) // max(n_texts, 1))  # float64 copies of at most 32 MB
    weighted = [np.empty((n_rows, w.shape[1])) for w in weighted_ms]
    drawn_all = np.empty((n_rows, drawn_m.shape[1]))
    for i in range(0, n_rows, step):
        block = counts[i: i + step]
        as_float = block.astype(np.float64)
        for k, weighted_m in enumerate(weighted_ms):
            weighted[k][i: i + step] = as_float @ weighted_m
        del as_float
        drawn_all[i: i + step] = (block > 0).astype(np.float64) @ drawn_m
    drawn = [drawn_all[:, a:b] for a, b in zip([0, *d_ends[:-1]], d_ends)]
    unique = [d[:, : len(stats.plans)] + np.array([stats.plans[n].sure for n in sorted(stats.plans)], dtype=np.float64)
              for d, (stats, _) in zip(drawn, sides)]

    def add_hits(k: int, i: int, masks: np.ndarray) -> None:
        stats = sides[k][0]
        for j, n in enumerate(sorted(stats.plans)):
            if len(stats.plans[n].group_starts):
                unique[k][i: i + 64, j] += _shared_hits(masks, stats.plans[n], min(64, n_rows - i))

    if any(len(p.group_starts) for stats, _ in sides for p in stats.plans.values()):
        for i in range(0, n_rows, 64):
            masks = _present_masks(counts[i: i + 64] > 0)
            for k in range(len(sides)):
                add_hits(k, i, masks)
    return [_finish(stats, tokens, w, d, u, n_texts)
            for (stats, tokens), w, d, u in zip(sides, weighted, drawn, unique)]


def _finish(stats: _WordStats, tokens: Any, weighted: np.ndarray, drawn: np.ndarray, unique: np.ndarray,
            n_texts: int) -> dict[str, np.ndarray]:
    """The metrics from a batch's sums: count-weighted (``weighted``), drawn-once (``drawn``), distinct n-grams."""
    out: dict[str, np.ndarray] = {}
    diversity = np.ones(len(weighted))
    for k, n in enumerate(REP_ORDERS):
        rep = 1 - _ratio(weighted[:, k], weighted[:, len(REP_ORDERS) + k])
        out[f"rep-{n}"] = rep
        diversity = diversity * (1 - rep)  # unrounded, unlike the point estimate
    out["diversity"] = diversity
    out["length-words"] = weighted[:, 2 * len(REP_ORDERS)] / n_texts
    if tokens is not None:
        token_sum, ttr_sum, last_sum, nonempty = (weighted[:, 2 * len(REP_ORDERS) + 1 + j] for j in range(4))
        out["length-tokens"] = token_sum / n_texts
        out["ttr"], out["ttr-last96"] = _ratio(ttr_sum, nonempty), _ratio(last_sum, nonempty)
    # distinct-n: each drawn text once (see bootstrap_ci), so numerator and denominator use `present`
    orders = sorted(stats.plans)
    for k, n in enumerate(orders):
        out[f"distinct-{n}"] = _ratio(unique[:, k], drawn[:, len(orders) + k])
    return out


def _layouts(corpora: Sequence["CorpusResampler"]) -> list[tuple[list[int], list[Any], Any]]:
    """The corpora grouped by prompt layout (which corpus, its per-text counts, the stacked
    matrices of the group), made once for every block of draws."""
    out = []
    todo = list(range(len(corpora)))
    while todo:
        first = corpora[todo[0]]
        group = [k for k in todo if corpora[k].identity == first.identity
                 and np.array_equal(corpora[k].prompt_index, first.prompt_index)]
        sides = [(corpora[k].stats, corpora[k].tokens) for k in group]
        out.append((group, sides, _stack([_matrices(stats, tokens) for stats, tokens in sides])))
        todo = [k for k in todo if k not in group]
    return out


def replicate_together(corpora: Sequence["CorpusResampler"], prompt_counts: np.ndarray,
                       layouts: list[tuple[list[int], list[Any], Any]] | None = None) -> list[dict[str, np.ndarray]]:
    """``[c.replicate(prompt_counts) for c in corpora]``, the same numbers, with the per-text work
    shared by corpora whose texts belong to the same prompts (``bench compare``'s two sides): one
    float copy of the counts, one product for all of them and one set of draw masks."""
    out: list[dict[str, np.ndarray] | None] = [None] * len(corpora)
    for group, sides, stacked in layouts or _layouts(corpora):
        first = corpora[group[0]]
        counts = prompt_counts if first.identity else prompt_counts[:, first.prompt_index]
        for k, result in zip(group, _batch_metrics_many(sides, counts, stacked)):
            out[k] = result
    return out  # type: ignore[return-value]


SCORING_THREADS = 2
"""Blocks of draws :func:`replicate_blocks` scores side by side (the machines this was measured on have 2 cores)."""
SCORING_MEMORY = 1 << 27
"""The most bytes of draw counts :func:`replicate_blocks` holds at once (128 MB: blocks of 64 draws
of up to 131,072 prompts on two threads); larger blocks are scored one after the other."""


def replicate_blocks(corpora: Sequence["CorpusResampler"], blocks: Iterator[np.ndarray],
                     threads: int = SCORING_THREADS) -> Iterator[list[dict[str, np.ndarray]]]:
    """:func:`replicate_together` of each block of draw counts, in the order of ``blocks``.

    The blocks come from one random stream, drawn here in order; each is copied and scored on one
    of ``threads`` threads, whole (numpy lets go of the interpreter in the gathers and products),
    unless the copies in flight would pass :data:`SCORING_MEMORY`. BLAS is held to one thread
    meanwhile: a product split by rows and columns, never along its sums, gives the same numbers,
    and BLAS threads spinning beside ours cost more than they give (measured on a 100k-record
    compare: whole blocks on two threads 24.6 s, the n-gram passes of each block split over two
    threads 30.8 s)."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    blocks = iter(blocks)
    first = next(blocks, None)
    if first is None:
        return
    layouts = _layouts(corpora)
    with threadpool_limits(limits=1, user_api="blas"):
        if threads <= 1 or first.nbytes * (threads + 3) > SCORING_MEMORY:
            yield replicate_together(corpora, first, layouts)
            for block in blocks:
                yield replicate_together(corpora, block, layouts)
            return
        with ThreadPoolExecutor(max_workers=threads) as pool:
            waiting: deque[Any] = deque([pool.submit(replicate_together, corpora, first.copy(), layouts)])
            for block in blocks:  # the generator reuses its buffer: each block is copied
                waiting.append(pool.submit(replicate_together, corpora, block.copy(), layouts))
                while len(waiting) > threads + 1:  # blocks drawn ahead while these are scored
                    yield waiting.popleft().result()
            while waiting:
                yield waiting.popleft().result()


class CorpusResampler:
    """Every corpus metric of a set of texts, recomputed cheaply for resamples of their prompts.

    Per-text counts are computed once; a replicate is then a few matrix products over the draw
    counts of each prompt (all samples of a drawn prompt come along), and for distinct-n one
    bit-parallel pass over the n-grams shared by several texts per 64 replicates. Used by
    :func:`bootstrap_ci`, ``bench compare`` and multi-seed leaderboard rows.
    """

    def __init__(self, texts: list[str] | None, token_ids: list[list[int]] | None,
                 prompt_ids: Sequence[str] | None = None, *, exact: bool = False,
                 columns: tuple[WordColumns, TokenColumns | None] | None = None):
        from bench.stats import unit_index

        if columns is None:
            _check_texts(texts)
            columns = (WordColumns.of(texts), TokenColumns.of(token_ids, len(texts)) if token_ids is not None else None)
        words, token_columns = columns
        n_texts = len(words.lengths)
        if not n_texts:
            raise BenchError("no texts to score")
        ids = list(prompt_ids) if prompt_ids is not None else [str(i) for i in range(n_texts)]
        if len(ids) != n_texts:
            raise BenchError(f"{len(ids)} prompt ids for {n_texts} texts")
        self.prompt_index, self.n_prompts = unit_index(ids)
        self.identity = bool(self.n_prompts == n_texts and np.array_equal(self.prompt_index, np.arange(n_texts)))
        """One text per prompt, in prompt order: draw counts need no expansion to texts."""
        # exact: every shared n-gram looked up in every resample (the reference the shortcut is tested against)
        self.stats = _word_stats(words, True, self.prompt_index, None if exact else self.n_prompts)
        self.tokens = _token_arrays(token_columns) if token_columns is not None else None
        self.point = _word_metrics(self.stats)
        """The metrics of the whole corpus."""
        if self.tokens is not None:
            self.point.update(_token_metrics(self.tokens))
        self.width = max(max(len(p.shared_text) for p in self.stats.plans.values()), n_texts, 1)
        """The widest per-record array a replicate gathered in decbench before 2026-12 (it sizes the
        batches the random stream is drawn in, which :func:`bench.stats.count_blocks` keeps)."""

    def replicate(self, prompt_counts: np.ndarray) -> dict[str, np.ndarray]:
        """Metrics for a batch of resamples given as per-prompt draw counts ``(batch, n_prompts)``."""
        counts = prompt_counts if self.identity else prompt_counts[:, self.prompt_index]
        return _batch_metrics(self.stats, self.tokens, counts)


def bootstrap_ci(
    texts: list[str] | None,
    token_ids: list[list[int]] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    prompt_ids: Sequence[str] | None = None,
    exact: bool = False,
    corpus: CorpusResampler | None = None,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals for every metric of :func:`score_texts`.

    Each resample draws the prompts with replacement (``prompt_ids``, one per text: all samples of
    a drawn prompt come along; without them each text is its own prompt) and recomputes the
    corpus-level metrics from per-text counts computed once; a text drawn k times weighs k times.
    The interval is the ``level`` central percentile range of the resampled values
    (:mod:`bench.stats`). ``corpus``: the texts already prepared (then ``texts`` is not read).

    Two departures, both deliberate:

    * ``diversity`` is the product of *unrounded* ``1 - rep-n`` inside the bootstrap (SimCTG
      rounds rep-n to 2 decimals in percent first).
    * ``distinct-n`` is not a mean over texts: a duplicated text adds n-grams but no new distinct
      ones, so literal resamples (about 63% distinct texts) give values far below the estimate
      (distinct-4 about 0.58 for a corpus at 0.90) and the interval would not even contain it.
      We therefore count each drawn text once (a corpus of the distinct drawn texts) and centre
      the percentile range on the point estimate: ``estimate + (q_low - m, q_high - m)``, ``m``
      the mean of the resampled values. Corpus-level distinct-n also grows as corpora shrink, so
      read these intervals as approximate spreads, not exact coverage.

    Undefined resample values (NaN) are ignored; a metric undefined in every resample gets
    ``(nan, nan)``.
    """
    from bench.stats import count_blocks, percentile_interval

    if not isinstance(n_boot, int) or n_boot < 1:
        raise BenchError(f"n_boot must be a positive integer, got {n_boot!r}")
    if not 0 < level < 1:
        raise BenchError(f"level must be in (0, 1), got {level!r}")
    if corpus is None:
        _check_texts(texts)
        corpus = CorpusResampler(texts, token_ids, prompt_ids, exact=exact)
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = defaultdict(list)
    for (metrics,) in replicate_blocks([corpus], count_blocks(rng, n_boot, corpus.width, corpus.n_prompts)):
        for name, values in metrics.items():
            parts[name].append(values)
    return {name: percentile_interval(np.concatenate(chunks), level,
                                      corpus.point[name] if name.startswith("distinct-") else None)
            for name, chunks in parts.items()}
