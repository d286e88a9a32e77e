"""Participation ratios with a bootstrap over prompts, exact for every resample.

The participation ratio of the hidden-state covariance C over all tokens of a set of prompts is
``PR = tr(C)^2 / ||C||_F^2``. A resample draws prompts with replacement (weights ``w_p``, the draw
counts); with per-prompt sums ``s_p = sum_t x_t``, outer sums ``S_p = sum_t x_t x_t^T`` and token
counts ``n_p``, the resample's ``M = sum_p w_p S_p``, ``m = sum_p w_p s_p``, ``N = sum_p w_p n_p``
give ``(N - 1) C = M - m m^T / N``, so

* ``tr((N-1)C) = sum_p w_p tr(S_p) - (m.m) / N``
* ``||(N-1)C||^2 = w^T G w - 2 sum_pqr w_p w_q w_r s_q^T S_p s_r / N + (m.m)^2 / N^2``

with ``G_pq = <S_p, S_q>``. Both need only P x P and P x P x P tables, computed once, so a
replicate costs O(P^3), not a pass over the tokens: Delta Dim gets an interval without storing
a covariance per resample.

The tables grow as P^3, so past :data:`MAX_UNITS` prompts the resampled unit is a fixed group of
prompts (prompt i in group i mod G): at 300 prompts a resample draws 64 groups of 4-5 prompts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


MAX_UNITS = 64
"""Most resampling units of a participation-ratio bootstrap (P^3 tables: 2 MB each at 64)."""


def units(states: list[np.ndarray]) -> list[np.ndarray]:
    """The prompts' states as at most :data:`MAX_UNITS` units (prompt i joins unit i mod G)."""
    if len(states) <= MAX_UNITS:
        return states
    return [np.concatenate(states[g::MAX_UNITS]) for g in range(MAX_UNITS)]


@dataclass(frozen=True)
class PromptMoments:
    """Per-prompt moments of one layer's states (float64)."""

    n: np.ndarray
    """[P] tokens per prompt."""
    trace: np.ndarray
    """[P] tr(S_p) = sum of squared norms."""
    gram: np.ndarray
    """[P, P] <S_p, S_q>."""
    sums_dot: np.ndarray
    """[P, P] s_p . s_q."""
    triple: np.ndarray
    """[P, P, P] s_q^T S_p s_r, indexed [p, q, r]."""

    @staticmethod
    def of(states: list[np.ndarray]) -> "PromptMoments":
        """From each prompt's states [tokens, dim], grouped into at most :data:`MAX_UNITS` units."""
        states = units(states)
        sums = np.stack([x.sum(0, dtype=np.float64) for x in states])
        outer = [x.astype(np.float64).T @ x.astype(np.float64) for x in states]
        flat = np.stack([o.ravel() for o in outer])
        triple = np.stack([sums @ o @ sums.T for o in outer])
        return PromptMoments(np.array([len(x) for x in states], dtype=float), np.einsum("pii->p", np.stack(outer)),
                             flat @ flat.T, sums @ sums.T, triple)

    def ratio(self, weights: np.ndarray) -> np.ndarray:
        """PR for each row of ``weights`` [B, P] (draw counts of the prompts)."""
        w = np.atleast_2d(np.asarray(weights, dtype=float))
        n = w @ self.n
        mm = np.einsum("bp,pq,bq->b", w, self.sums_dot, w)
        trace = w @ self.trace - mm / n
        frob = (np.einsum("bp,pq,bq->b", w, self.gram, w)
                - 2 * np.einsum("bp,bq,br,pqr->b", w, w, w, self.triple, optimize=True) / n + mm ** 2 / n ** 2)
        with np.errstate(invalid="ignore", divide="ignore"):
            return trace ** 2 / frob


def delta_dim_replicates(base: list[PromptMoments], other: list[PromptMoments], n_boot: int,
                         seed: int) -> tuple[float, np.ndarray, float, float]:
    """Delta Dim = mean over pairs of PR(other) - PR(base), on all prompts and for ``n_boot``
    resamples of the prompts (the same draws for every pair: the pairs share their prompts).

    Returns (delta, replicates, pr_base, pr_other), the PRs being means over pairs."""
    from bench.stats import resample_counts

    n_prompts = len(base[0].n)
    ones = np.ones((1, n_prompts))
    pr_b = float(np.mean([m.ratio(ones)[0] for m in base]))
    pr_o = float(np.mean([m.ratio(ones)[0] for m in other]))
    counts = resample_counts(np.random.default_rng(seed), n_boot, n_prompts).astype(float)
    reps = np.mean([o.ratio(counts) - b.ratio(counts) for b, o in zip(base, other)], axis=0)
    return pr_o - pr_b, reps, pr_b, pr_o
