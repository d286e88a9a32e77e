"""Win rate with a bootstrap interval and an exact two-sided sign test."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def sign_test(wins: int, losses: int) -> float:
    """Exact two-sided binomial p-value of ``wins`` vs ``losses`` under p = 1/2 (ties dropped)."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def summarize(outcomes: list[str], n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict[str, Any]:
    """Counts, A's win rate (ties count half) with a percentile bootstrap interval, and the sign test.

    ``outcomes`` holds ``a``, ``b``, ``tie`` or ``invalid`` per pair; invalid pairs are counted
    and left out of the rate.
    """
    wins_a, wins_b = outcomes.count("a"), outcomes.count("b")
    ties, invalid = outcomes.count("tie"), outcomes.count("invalid")
    valid = wins_a + wins_b + ties
    out: dict[str, Any] = {"pairs": len(outcomes), "wins_a": wins_a, "wins_b": wins_b, "ties": ties,
                           "invalid": invalid, "valid": valid}
    if valid == 0:
        out.update(win_rate_a=math.nan, ci=[math.nan, math.nan], sign_test_p=1.0)
        return out
    scores = np.array([1.0] * wins_a + [0.0] * wins_b + [0.5] * ties)
    rng = np.random.default_rng(seed)
    means = scores[rng.integers(0, valid, size=(n_boot, valid))].mean(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    out.update(win_rate_a=float(scores.mean()), ci=[float(low), float(high)], level=level,
               sign_test_p=sign_test(wins_a, wins_b))
    return out
