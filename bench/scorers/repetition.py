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
from collections.abc import Sequence
from dataclasses import dataclass

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
    incidence: dict[int, tuple[np.ndarray, np.ndarray]]
    """Per order, the sorted distinct (n-gram id, text index) pairs; filled for the bootstrap only."""

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


def _word_ids(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, int, int]:
    """All words of the corpus as integer ids, words per text, an id bound and the vocabulary size.

    Ids are the position of a word's first occurrence (``setdefault`` with a running counter is
    the fastest exact mapping in CPython), so they are unique per word but not dense: every id is
    below the number of words.
    """
    words: list[str] = []
    lengths = np.empty(len(texts), dtype=np.int64)
    for i, text in enumerate(texts):
        split = text.split()
        lengths[i] = len(split)
        words.extend(split)
    vocab: dict[str, int] = {}
    ids = np.fromiter(map(vocab.setdefault, words, itertools.count()), dtype=np.int64, count=len(words))
    return ids, lengths, max(len(words), 1), len(vocab)


def _dense(keys: np.ndarray) -> tuple[np.ndarray, int]:
    """Replace each key by its rank among the distinct keys; also return the number of distinct keys."""
    order = np.argsort(keys)
    ordered = keys[order]
    new = np.empty(len(keys), dtype=bool)
    new[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
    dense = np.empty(len(keys), dtype=np.int64)
    dense[order] = np.cumsum(new) - 1
    return dense, int(new.sum())


def _distinct_sorted(keys: np.ndarray) -> np.ndarray:
    """The distinct values of ``keys``, sorted (``np.unique`` without its slower hash path)."""
    ordered = np.sort(keys)
    if len(ordered) == 0:
        return ordered
    keep = np.empty(len(ordered), dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


def _word_stats(texts: Sequence[str], incidence: bool = False) -> _WordStats:
    """Count word n-grams with integer keys instead of string n-grams (the speed-up over SimCTG).

    An n-gram's dense id comes from the pair (id of its first n-1 words, id of its last word),
    ranked among the corpus's distinct pairs order by order, so keys stay below
    (number of words) squared and cannot overflow int64 below three billion words.
    """
    ids, lengths, id_bound, vocab_size = _word_ids(texts)
    n_texts = len(lengths)
    text_of = np.repeat(np.arange(n_texts, dtype=np.int64), lengths)
    # words from each position to the end of its text, that position included
    room = np.repeat(np.cumsum(lengths), lengths) - np.arange(len(ids), dtype=np.int64)
    stats = _WordStats(lengths, {}, {}, {})
    gram = ids  # id of the n-gram starting at each position (garbage where it does not fit)
    n_distinct = vocab_size
    for n in DISTINCT_ORDERS:
        starts = np.flatnonzero(room >= n)
        if n > 1:
            dense, n_distinct = _dense(gram[starts] * id_bound + ids[starts + n - 1])
            gram = np.zeros(len(ids), dtype=np.int64)
            gram[starts] = dense
        stats.distinct_unique[n] = n_distinct if len(starts) else 0
        width = max(n_distinct, 1)
        if n in REP_ORDERS:
            inner = np.flatnonzero(room > n)  # SimCTG skips each text's last n-gram
            pairs = _distinct_sorted(text_of[inner] * width + gram[inner])
            stats.rep_unique[n] = np.bincount(pairs // width, minlength=n_texts)
        if incidence:
            pairs = _distinct_sorted(gram[starts] * n_texts + text_of[starts])
            stats.incidence[n] = (pairs // n_texts, pairs % n_texts)
    return stats


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


def _token_arrays(token_ids: Sequence[Sequence[int]], n_texts: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per continuation: token count, TTR and last-96 TTR (NaN for empty continuations)."""
    if len(token_ids) != n_texts:
        raise BenchError(f"token_ids has {len(token_ids)} sequences for {n_texts} texts")
    counts = np.empty(n_texts, dtype=np.int64)
    ttr = np.full(n_texts, math.nan)
    ttr_last = np.full(n_texts, math.nan)
    for i, seq in enumerate(token_ids):
        seq = list(seq)
        if not all(isinstance(t, (int, np.integer)) and not isinstance(t, bool) for t in seq):
            raise BenchError(f"token_ids[{i}] must contain only integers")
        counts[i] = len(seq)
        if seq:
            ttr[i] = len(set(seq)) / len(seq)
            tail = seq[-TTR_WINDOW:]
            ttr_last[i] = len(set(tail)) / len(tail)
    return counts, ttr, ttr_last


def _nanmean(values: np.ndarray) -> float:
    kept = values[~np.isnan(values)]
    return float(kept.mean()) if len(kept) else math.nan


def score_texts(texts: list[str], token_ids: list[list[int]] | None = None) -> dict[str, float]:
    """Score a corpus of continuations (prompts excluded); see the module docstring for definitions.

    Returns ``rep-2``, ``rep-3``, ``rep-4``, ``diversity``, ``distinct-1`` .. ``distinct-4`` and
    ``length-words``; with ``token_ids`` (one list per text) also ``length-tokens``, ``ttr`` and
    ``ttr-last96``. Raises :class:`BenchError` for an empty corpus or mistyped input.
    """
    _check_texts(texts)
    out = _word_metrics(_word_stats(texts))
    if token_ids is not None:
        counts, ttr, ttr_last = _token_arrays(token_ids, len(texts))
        out["length-tokens"] = float(counts.mean())
        out["ttr"] = _nanmean(ttr)
        out["ttr-last96"] = _nanmean(ttr_last)
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


def _distinct_plan(stats: _WordStats, n: int, n_texts: int, prompt_index: np.ndarray | None = None,
                   n_prompts: int | None = None) -> _DistinctPlan:
    grams, text = stats.incidence[n]
    texts_per_gram = np.bincount(grams) if len(grams) else np.zeros(0, dtype=np.int64)
    shared = texts_per_gram[grams] > 1
    exclusive = np.bincount(text[~shared], minlength=n_texts)
    shared_grams, shared_text = grams[shared], text[shared]  # sorted by n-gram: incidence pairs are
    sure = 0
    if len(shared_grams) and n_prompts and n_prompts > 1:
        keep, sure = _drop_sure_hits(shared_grams, shared_text, prompt_index, n_prompts)
        shared_grams, shared_text = shared_grams[keep], shared_text[keep]
    starts = np.flatnonzero(np.r_[True, shared_grams[1:] != shared_grams[:-1]]) if len(shared_grams) else shared_grams
    return _DistinctPlan(exclusive, shared_text, starts, stats.distinct_total(n), sure)


def _drop_sure_hits(grams: np.ndarray, texts: np.ndarray, prompt_index: np.ndarray | None,
                    n_prompts: int) -> tuple[np.ndarray, int]:
    """Which (n-gram, text) cells to keep, and how many n-grams every resample hits (see :data:`MISS_BOUND`)."""
    prompts = prompt_index[texts] if prompt_index is not None else texts
    pairs = _distinct_sorted(grams * n_prompts + prompts)  # distinct (n-gram, prompt)
    per_gram = np.bincount(pairs // n_prompts)
    ids = np.flatnonzero(per_gram)
    k = per_gram[ids]
    with np.errstate(divide="ignore"):  # log(0) = -inf when k = P: such an n-gram is never missed
        miss = np.exp(n_prompts * np.log1p(-np.minimum(k, n_prompts) / n_prompts))
    order = np.argsort(-k, kind="stable")
    # the cumulative chance grows as k falls: the sure n-grams are a prefix of the order
    sure_ids = ids[order[: int((np.cumsum(miss[order]) <= MISS_BOUND).sum())]]
    is_sure = np.zeros(int(grams.max()) + 1, dtype=bool)
    is_sure[sure_ids] = True
    return ~is_sure[grams], len(sure_ids)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _batch_metrics(
    stats: _WordStats,
    plans: dict[int, _DistinctPlan],
    tokens: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
    counts: np.ndarray,
) -> dict[str, np.ndarray]:
    """Every corpus-level metric for a batch of resamples given as per-text draw counts."""
    weights = counts.astype(np.float64)
    n_texts = counts.shape[1]
    out: dict[str, np.ndarray] = {}
    diversity = np.ones(len(counts))
    for n in REP_ORDERS:
        rep = 1 - _ratio(weights @ stats.rep_unique[n], weights @ stats.rep_total(n))
        out[f"rep-{n}"] = rep
        diversity = diversity * (1 - rep)  # unrounded, unlike the point estimate
    out["diversity"] = diversity
    # distinct-n: each drawn text once (see bootstrap_ci), so numerator and denominator use `present`
    present = counts > 0
    drawn = present.astype(np.float64)
    for n, plan in plans.items():
        unique = drawn @ plan.exclusive + plan.sure
        if len(plan.group_starts):
            hit = np.logical_or.reduceat(present[:, plan.shared_text], plan.group_starts, axis=1)
            unique = unique + hit.sum(axis=1)
        out[f"distinct-{n}"] = _ratio(unique, drawn @ plan.total)
    out["length-words"] = weights @ stats.lengths / n_texts
    if tokens is not None:
        token_counts, ttr, ttr_last = tokens
        out["length-tokens"] = weights @ token_counts / n_texts
        nonempty = (token_counts > 0).astype(np.float64)
        out["ttr"] = _ratio(weights @ np.nan_to_num(ttr), weights @ nonempty)
        out["ttr-last96"] = _ratio(weights @ np.nan_to_num(ttr_last), weights @ nonempty)
    return out


class CorpusResampler:
    """Every corpus metric of a set of texts, recomputed cheaply for resamples of their prompts.

    Per-text counts are computed once; a replicate is then a few matrix products over the draw
    counts of each prompt (all samples of a drawn prompt come along). Used by :func:`bootstrap_ci`,
    ``bench compare`` and multi-seed leaderboard rows.
    """

    def __init__(self, texts: list[str], token_ids: list[list[int]] | None, prompt_ids: Sequence[str] | None = None,
                 *, exact: bool = False):
        from bench.stats import unit_index

        _check_texts(texts)
        self.point = score_texts(texts, token_ids)
        """The metrics of the whole corpus."""
        ids = list(prompt_ids) if prompt_ids is not None else [str(i) for i in range(len(texts))]
        if len(ids) != len(texts):
            raise BenchError(f"{len(ids)} prompt ids for {len(texts)} texts")
        self.prompt_index, self.n_prompts = unit_index(ids)
        self.stats = _word_stats(texts, incidence=True)
        self.tokens = _token_arrays(token_ids, len(texts)) if token_ids is not None else None
        # exact: every shared n-gram looked up in every resample (the reference the shortcut is tested against)
        self.plans = {n: _distinct_plan(self.stats, n, len(texts), self.prompt_index, None if exact else self.n_prompts)
                      for n in DISTINCT_ORDERS}
        self.width = max(max(len(p.shared_text) for p in self.plans.values()), len(texts), 1)
        """The widest per-record array a replicate gathers (sizes the batches)."""

    def replicate(self, prompt_counts: np.ndarray) -> dict[str, np.ndarray]:
        """Metrics for a batch of resamples given as per-prompt draw counts ``(batch, n_prompts)``."""
        return _batch_metrics(self.stats, self.plans, self.tokens, prompt_counts[:, self.prompt_index])


def bootstrap_ci(
    texts: list[str],
    token_ids: list[list[int]] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    prompt_ids: Sequence[str] | None = None,
    exact: bool = False,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals for every metric of :func:`score_texts`.

    Each resample draws the prompts with replacement (``prompt_ids``, one per text: all samples of
    a drawn prompt come along; without them each text is its own prompt) and recomputes the
    corpus-level metrics from per-text counts computed once; a text drawn k times weighs k times.
    The interval is the ``level`` central percentile range of the resampled values
    (:mod:`bench.stats`).

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
    from bench.stats import batch_sizes, percentile_interval, resample_counts

    _check_texts(texts)
    if not isinstance(n_boot, int) or n_boot < 1:
        raise BenchError(f"n_boot must be a positive integer, got {n_boot!r}")
    if not 0 < level < 1:
        raise BenchError(f"level must be in (0, 1), got {level!r}")
    corpus = CorpusResampler(texts, token_ids, prompt_ids, exact=exact)
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = defaultdict(list)
    for size in batch_sizes(n_boot, corpus.width):
        for name, values in corpus.replicate(resample_counts(rng, size, corpus.n_prompts)).items():
            parts[name].append(values)
    return {name: percentile_interval(np.concatenate(chunks), level,
                                      corpus.point[name] if name.startswith("distinct-") else None)
            for name, chunks in parts.items()}
