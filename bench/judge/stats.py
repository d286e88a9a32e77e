"""Win rate with a bootstrap interval and an exact two-sided sign test."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bench.stats import bootstrap_mean, prompt_bootstrap


def sign_test(wins: int, losses: int) -> float:
    """Exact two-sided binomial p-value of ``wins`` vs ``losses`` under p = 1/2 (ties dropped)."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def summarize(outcomes: list[str], n_boot: int = 2000, seed: int = 0, level: float = 0.95,
              prompt_ids: list[str] | None = None) -> dict[str, Any]:
    """Counts, A's win rate (ties count half) with a percentile bootstrap interval, and the sign test.

    ``outcomes`` holds ``a``, ``b``, ``tie`` or ``invalid`` per pair; invalid pairs are counted
    and left out of the rate. With ``prompt_ids`` (one per outcome) the interval resamples prompts,
    all pairs of a prompt together (several samples per prompt are not independent).
    """
    wins_a, wins_b = outcomes.count("a"), outcomes.count("b")
    ties, invalid = outcomes.count("tie"), outcomes.count("invalid")
    valid = wins_a + wins_b + ties
    out: dict[str, Any] = {"pairs": len(outcomes), "wins_a": wins_a, "wins_b": wins_b, "ties": ties,
                           "invalid": invalid, "valid": valid}
    if valid == 0:
        out.update(win_rate_a=math.nan, ci=[math.nan, math.nan], sign_test_p=1.0)
        return out
    points = {"a": 1.0, "b": 0.0, "tie": 0.5}
    valid_at = [i for i, o in enumerate(outcomes) if o in points]
    scores = np.array([points[outcomes[i]] for i in valid_at])
    if prompt_ids is None:
        rate = bootstrap_mean(scores, n_boot, seed, level)
        ci = [rate.low, rate.high]
    else:
        ci = prompt_bootstrap([prompt_ids[i] for i in valid_at], lambda idx: float(scores[idx].mean()),
                              n_boot, seed, level)
    out.update(win_rate_a=float(scores.mean()), ci=ci, level=level,
               sign_test_p=sign_test(wins_a, wins_b))
    return out
