"""The participation ratio of a covariance; bootstrap intervals come from :mod:`bench.stats`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


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
