"""Bootstrap intervals over prompts, and the participation ratio of a covariance."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:
    import torch

N_BOOT = 1000
LEVEL = 0.95


@dataclass(frozen=True)
class Estimate:
    """A mean over prompts with its percentile bootstrap interval and the number of prompts."""

    value: float
    low: float
    high: float
    n: int

    def fmt(self, digits: int = 3) -> str:
        if np.isnan(self.value):
            return "n/a"
        return f"{self.value:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def _interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    samples = samples[~np.isnan(samples)]
    if samples.size == 0:
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_mean(values: Sequence[float], n_boot: int = N_BOOT, seed: int = 0, level: float = LEVEL) -> Estimate:
    """Mean of the per-prompt ``values`` (NaN ones dropped) with a percentile bootstrap interval."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, x.size, size=(n_boot, x.size))
    low, high = _interval(x[draws].mean(axis=1), level)
    return Estimate(float(x.mean()), low, high, int(x.size))


def bootstrap_ratio(num: Sequence[float], den: Sequence[float], n_boot: int = N_BOOT, seed: int = 0,
                    level: float = LEVEL) -> Estimate:
    """A pooled ratio sum(num) / sum(den) over prompts, resampling prompts (rows with den 0 still count)."""
    a, b = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    if b.sum() == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), int(a.size))
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, a.size, size=(n_boot, a.size))
    with np.errstate(invalid="ignore", divide="ignore"):
        samples = a[draws].sum(axis=1) / b[draws].sum(axis=1)
    low, high = _interval(samples, level)
    return Estimate(float(a.sum() / b.sum()), low, high, int(a.size))


def participation_ratio_of_cov(cov: np.ndarray) -> float:
    """(sum of eigenvalues)^2 / sum of eigenvalues^2 = trace(C)^2 / ||C||_F^2 for a symmetric C."""
    cov = np.asarray(cov, dtype=float)
    frob = float((cov * cov).sum())
    return float(np.trace(cov) ** 2 / frob) if frob > 0 else float("nan")


def participation_ratio(x: np.ndarray) -> float:
    """Participation ratio of the covariance of the rows of ``x`` [samples, dims]."""
    x = np.asarray(x, dtype=float)
    return participation_ratio_of_cov(np.cov(x, rowvar=False))


class Covariance:
    """Streaming covariance of vectors (float64 sums on the vectors' device)."""

    def __init__(self) -> None:
        self.n = 0
        self.total: "torch.Tensor | None" = None
        self.outer: "torch.Tensor | None" = None

    def add(self, x: "torch.Tensor") -> None:
        """Add the rows of ``x`` [samples, dims]."""
        x = x.double()
        if self.total is None:
            self.total = x.new_zeros(x.size(-1))
            self.outer = x.new_zeros(x.size(-1), x.size(-1))
        self.n += x.size(0)
        self.total += x.sum(0)
        self.outer += x.T @ x

    def cov(self) -> np.ndarray:
        if self.n < 2 or self.total is None:
            return np.full((1, 1), np.nan)
        mean = self.total / self.n
        cov = (self.outer - self.n * torch_outer(mean)) / (self.n - 1)
        return cov.cpu().numpy()

    def participation_ratio(self) -> float:
        return participation_ratio_of_cov(self.cov())


def torch_outer(v: "torch.Tensor") -> "torch.Tensor":
    return v.unsqueeze(1) * v.unsqueeze(0)
