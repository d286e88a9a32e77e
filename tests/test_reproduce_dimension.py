"""The participation-ratio bootstrap is exact: each resample's PR equals the PR of the resampled
tokens' covariance, computed from scratch."""

from __future__ import annotations

import numpy as np
import pytest

from bench.analysis.stats import participation_ratio
from bench.reproduce.dimension import MAX_UNITS, PromptMoments, delta_dim_replicates, units


def _prompts(seed: int, n: int, dim: int = 6) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(int(rng.integers(2, 9)), dim)) * np.arange(1, dim + 1) for _ in range(n)]


def test_every_resample_equals_the_direct_computation() -> None:
    xs = _prompts(0, 7)
    moments = PromptMoments.of(xs)
    counts = np.random.default_rng(1).multinomial(7, [1 / 7] * 7, size=5)
    for row, value in zip(counts, moments.ratio(counts)):
        drawn = np.concatenate([x for x, k in zip(xs, row) for _ in range(k)])
        assert value == pytest.approx(participation_ratio(drawn), rel=1e-10)


def test_delta_dim_pairs_the_prompts_and_averages_the_seeds() -> None:
    base = [PromptMoments.of(_prompts(s, 6)) for s in (0, 1)]
    other = [PromptMoments.of([x * np.linspace(1, 0.2, 6) for x in _prompts(s, 6)]) for s in (0, 1)]
    delta, reps, pr_b, pr_o = delta_dim_replicates(base, other, 200, 0)
    ones = np.ones((1, 6))
    assert pr_b == pytest.approx(np.mean([m.ratio(ones)[0] for m in base]))
    assert delta == pytest.approx(pr_o - pr_b) and delta > 0  # evened-out scales: more effective dimensions
    assert reps.shape == (200,) and np.isfinite(reps).all()
    again = delta_dim_replicates(base, other, 200, 0)[1]
    assert np.array_equal(reps, again)
    same = delta_dim_replicates(base, base, 50, 0)
    assert same[0] == 0 and np.allclose(same[1], 0)


def test_many_prompts_are_grouped_into_units() -> None:
    xs = _prompts(2, MAX_UNITS + 9, dim=4)
    grouped = units(xs)
    assert len(grouped) == MAX_UNITS and sum(len(g) for g in grouped) == sum(len(x) for x in xs)
    assert PromptMoments.of(xs).ratio(np.ones((1, MAX_UNITS)))[0] == pytest.approx(
        participation_ratio(np.concatenate(xs)), rel=1e-10)
