"""The one bootstrap behind every interval and p-value decbench prints.

The unit of resampling is the *prompt*: a resample draws prompts with replacement and every sample
of a drawn prompt comes along (with ``--samples-per-prompt`` > 1 the samples of one prompt are not
independent, and resampling records gave intervals 27% too narrow). With several seeds, seeds are
drawn too (:func:`two_way_counts`). Intervals are percentile intervals; a p-value inverts the
interval of a difference (:func:`two_sided_p`) and comes with its Monte Carlo error.

Callers: the repetition scorer (:func:`bench.scorers.repetition.bootstrap_ci`), perplexity and
coherence (:func:`prompt_bootstrap`), ``bench compare``, multi-seed leaderboard rows, the judge's
win rate and the analysis means (:func:`bootstrap_mean`, :func:`bootstrap_ratio`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

N_BOOT = 1000
MAX_N_BOOT = 1_000_000
"""The most bootstrap replicates a command accepts: a Monte Carlo error of p near 0.0002 at p = 0.05,
and hours of work beyond that (a typo with more digits would never finish)."""
"""Replicates of an interval."""
N_BOOT_P = 20_000
"""Replicates of a p-value: Monte Carlo error 0.002 near p = 0.05, where decisions are made (0.006 at
p = 0.5, 0.027 with the former 1,000); ``bench compare`` prints the error beside every p."""
LEVEL = 0.95
GATHER_BUDGET = 20_000_000
"""Most cells one batch of replicates may gather (replicates x widest per-record array)."""


@dataclass(frozen=True)
class Estimate:
    """A mean over prompts with its percentile bootstrap interval and the number of prompts."""

    value: float
    """The estimate on all prompts."""
    low: float
    """Lower end of the interval."""
    high: float
    """Upper end of the interval."""
    n: int
    """Prompts (units) the estimate rests on."""

    def fmt(self, digits: int = 3) -> str:
        if np.isnan(self.value):
            return "n/a"
        return f"{self.value:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def unit_index(prompt_ids: Sequence[str]) -> tuple[np.ndarray, int]:
    """Each record's prompt as an index (prompts numbered in order of first appearance), and the count."""
    order: dict[str, int] = {}
    index = np.array([order.setdefault(pid, len(order)) for pid in prompt_ids], dtype=np.int64)
    return index, len(order)


def resample_counts(rng: np.random.Generator, batch: int, n_units: int) -> np.ndarray:
    """How often each unit is drawn, for ``batch`` resamples of ``n_units`` units with replacement.

    Drawn as 32-bit integers: numpy draws bounded int64 and int32 values below 2**32 from the same
    32-bit stream, so the counts equal those of ``rng.integers(0, n_units, (batch, n_units))`` (and
    of every earlier decbench) at half the memory traffic; counted row by row (int32).
    """
    dtype = np.int32 if n_units < 2**31 else np.int64
    draws = rng.integers(0, n_units, size=(batch, n_units), dtype=dtype)
    counts = np.empty((batch, n_units), dtype=np.int32)
    for row, drawn in zip(counts, draws):
        row[:] = np.bincount(drawn, minlength=n_units)
    return counts


BLOCK_ROWS = 64
"""Replicates per block of :func:`count_blocks`: one bit each of a 64-bit word (see
:func:`bench.scorers.repetition.bit_counts`)."""


def count_blocks(rng: np.random.Generator, n_boot: int, width: int, n_units: int,
                 rows: int = BLOCK_ROWS) -> Iterator[np.ndarray]:
    """The draw counts of ``n_boot`` resamples in blocks of ``rows`` replicates (the last one shorter).

    The random stream is drawn batch by batch exactly as :func:`batch_sizes` has always cut it (a
    batch whose size times ``n_units`` is odd leaves half of a 64-bit draw unused), so the
    replicates, and every interval, equal those of earlier versions under the same seed; only the
    grouping into blocks is new. Each block overwrites the previous one (no new memory per block):
    use it, or copy it, before asking for the next.
    """
    block = np.empty((min(rows, n_boot), n_units), dtype=np.int32)
    filled = 0
    for size in batch_sizes(n_boot, width):
        counts = resample_counts(rng, size, n_units)
        while len(counts):
            take = min(len(counts), len(block) - filled)
            block[filled: filled + take] = counts[:take]
            filled, counts = filled + take, counts[take:]
            if filled == len(block):
                yield block  # the same array each time: a block is used before the next is asked for
                filled = 0
    if filled:
        yield block[:filled]


def batch_sizes(n_boot: int, width: int) -> Iterator[int]:
    """Replicates per batch so that a batch gathers at most :data:`GATHER_BUDGET` cells."""
    step = max(1, min(n_boot, GATHER_BUDGET // max(width, 1)))
    for start in range(0, n_boot, step):
        yield min(step, n_boot - start)


def percentile_interval(values: np.ndarray, level: float = LEVEL, centre: float | None = None) -> tuple[float, float]:
    """The ``level`` central percentile range of the finite replicate values (NaN, NaN if none).

    With ``centre``, the range is first shifted so that the replicates' mean is ``centre`` (for
    statistics whose replicates are biased, such as corpus distinct-n).
    """
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return math.nan, math.nan
    tail = (1 - level) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    if centre is not None:
        shift = centre - values.mean()
        low, high = low + shift, high + shift
    return float(low), float(high)


def two_sided_p(diffs: np.ndarray) -> float:
    """Twice the smaller share of replicate differences on either side of 0, ``min(1, 2(1+k)/(1+B))``.

    p < alpha exactly when the (1 - alpha) percentile interval excludes 0.
    """
    diffs = np.asarray(diffs, dtype=float)
    diffs = diffs[~np.isnan(diffs)]
    tail = min(np.sum(diffs <= 0), np.sum(diffs >= 0))
    return float(min(1.0, 2 * (1 + tail) / (1 + len(diffs))))


def p_error(p: float, n_boot: int) -> float:
    """Monte Carlo standard error of a bootstrap p-value from ``n_boot`` replicates."""
    share = min(p / 2, 0.5)  # p is twice a tail share
    return 2 * math.sqrt(share * (1 - share) / max(n_boot, 1))


def prompt_bootstrap(prompt_ids: Sequence[str], stat: Callable[[np.ndarray], float], n_boot: int = N_BOOT,
                     seed: int = 0, level: float = LEVEL) -> list[float]:
    """Percentile interval of ``stat(record indices)`` over resamples of prompts (all their samples)."""
    index, n_units = unit_index(prompt_ids)
    if not n_units:
        return [math.nan, math.nan]
    members = [np.flatnonzero(index == u) for u in range(n_units)]
    rng = np.random.default_rng(seed)
    values = [stat(np.concatenate([members[g] for g in rng.integers(0, n_units, size=n_units)]))
              for _ in range(n_boot)]
    return list(percentile_interval(np.array(values, dtype=float), level))


def bootstrap_mean(values: Sequence[float], n_boot: int = N_BOOT, seed: int = 0, level: float = LEVEL) -> Estimate:
    """Mean of the per-prompt ``values`` (NaN ones dropped) with a percentile bootstrap interval."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, x.size, size=(n_boot, x.size))
    low, high = percentile_interval(x[draws].mean(axis=1), level)
    return Estimate(float(x.mean()), low, high, int(x.size))


def bootstrap_ratio(num: Sequence[float], den: Sequence[float], n_boot: int = N_BOOT, seed: int = 0,
                    level: float = LEVEL) -> Estimate:
    """A pooled ratio sum(num) / sum(den) over prompts, resampling prompts (rows with den 0 still count)."""
    a, b = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    if b.sum() == 0:
        return Estimate(math.nan, math.nan, math.nan, int(a.size))
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, a.size, size=(n_boot, a.size))
    with np.errstate(invalid="ignore", divide="ignore"):
        samples = a[draws].sum(axis=1) / b[draws].sum(axis=1)
    low, high = percentile_interval(samples, level)
    return Estimate(float(a.sum() / b.sum()), low, high, int(a.size))


def seed_mean_replicates(per_seed: list[Callable[[np.ndarray], dict[str, np.ndarray]]], n_prompts: int,
                         n_boot: int, seed: int, width: int) -> dict[str, np.ndarray]:
    """Replicates of the mean over seeds, resampling prompts *and* seeds (a two-way bootstrap).

    ``per_seed[s](prompt_counts)`` gives seed s's metrics for a batch of prompt draws (the same
    prompts for every seed, which share their prompts). Each replicate also draws seeds with
    replacement and averages the drawn seeds' values, so the interval holds both sources of noise.
    """
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {}
    n_seeds = len(per_seed)
    for size in batch_sizes(n_boot, width):
        counts = resample_counts(rng, size, n_prompts)
        seed_weights = resample_counts(rng, size, n_seeds).astype(float) / n_seeds
        values = [f(counts) for f in per_seed]
        for name in set.intersection(*(set(v) for v in values)):
            stacked = np.stack([v[name] for v in values], axis=1)  # (batch, seeds)
            with np.errstate(invalid="ignore"):
                parts.setdefault(name, []).append((stacked * seed_weights).sum(axis=1))
    return {k: np.concatenate(v) for k, v in parts.items()}
