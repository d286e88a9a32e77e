"""Adaptive contrastive search (Garces Arias et al. 2024): k and alpha set each step from the entropy.

Contrastive search (:mod:`decoders.contrastive`) with a fixed number of candidates k and penalty
weight alpha; here both follow the model's uncertainty, as in the authors' published code
(YecanLee/Adaptive-Contrastive-Search, ``story_generation/utils_acs.py``: ``adaptive_k``,
``adaptive_alpha``, ``k_update``, ``alpha_update``). Per row and step, with ``H`` the entropy (nats)
of the next-token distribution over the whole vocabulary of size V:

    c_k   = (H - median of this row's earlier H) / log V
    k     = round(10 * sigma_q(c_k) + 5)                       in [5, 15]
    H_k   = entropy of the k most likely probabilities, renormalised
    c_a   = (H_k - median of this row's earlier H_k) / log k
    alpha = round(sigma_q(c_a), 2)                             in [0, 1]

where ``sigma_q(c) = sigmoid(q/2 * log((1 + c) / (1 - c)))``, computed in the equal closed form
``(1+c)^(q/2) / ((1+c)^(q/2) + (1-c)^(q/2))`` that stays finite at ``c = +-1``. ``c_a`` can pass
+-1 (the ``H_k`` history holds entropies of other k, up to log 15, while the scale is this step's
log k); the published expression is then nan (log of a negative number) and so is its alpha; here
c is clamped to [-1, 1], which gives the limit, alpha = 0 or 1. At a row's first
step there is no history and the median is the value itself (``c = 0``: k = 10, alpha = 0.5).
Rounding is half to even, as numpy's. The candidates are then re-ranked exactly as contrastive
search does, with this step's k and alpha.

Two deliberate differences from the published script, both for records that depend on nothing
but their own prompt: the history behind each median is the row's own (the script keeps one
module-level list over every prompt it ever generated, batch size 1), and the batch is scored per
row (the script reads row 0). ``q`` defaults to the authors' configuration file
(``configs/adaptive_contrastive_base.yaml``: ``q: 1``); their README's example uses ``q = 8``.

Batched rows may want different k at the same step: the step runs the largest k among the rows
and masks, in each row, the candidates past its own k (see :func:`decoders.contrastive.rerank`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any, Callable

from bench.errors import check
from bench.registry import decoder
from decoders.contrastive import ContrastiveSearch

if TYPE_CHECKING:
    import torch

K_MIN, K_SPAN = 5, 10
"""k = K_MIN + round(K_SPAN * sigma): the published ``* 10 + 5``, so k is in [5, 15]."""


def entropy(probs: "torch.Tensor") -> "torch.Tensor":
    """Entropy in nats of each row of probabilities [B, N] (renormalised, as scipy's), float64 [B]."""
    p = probs.double()
    p = p / p.sum(dim=-1, keepdim=True)
    return -(p * p.clamp_min(1e-300).log()).where(p > 0, p.new_zeros(())).sum(dim=-1)


def median(history: "torch.Tensor") -> "torch.Tensor":
    """numpy's median of each row [B, T] (the mean of the two middle values when T is even)."""
    ordered = history.sort(dim=-1).values
    t = ordered.shape[-1]
    return (ordered[:, (t - 1) // 2] + ordered[:, t // 2]) / 2


def squash(centered: "torch.Tensor", q: float) -> "torch.Tensor":
    """sigmoid(q/2 * log((1 + c) / (1 - c))) for c in [-1, 1], in closed form."""
    c = centered.clamp(-1.0, 1.0)
    up, down = (1 + c) ** (q / 2), (1 - c) ** (q / 2)
    return up / (up + down)


def centered(value: "torch.Tensor", history: list["torch.Tensor"], scale: "torch.Tensor | float") -> "torch.Tensor":
    """(value - median of the earlier values) / scale; 0 at the first step (no history yet)."""
    if not history:
        return value.new_zeros(value.shape)
    import torch

    return (value - median(torch.stack(history, dim=-1))) / scale


class AdaptiveSchedule:
    """The per-row k and alpha of one batch, step after step; keeps each row's entropy history."""

    def __init__(self, q: float, vocab: int):
        self.q = q
        self.k_max = min(K_MIN + K_SPAN, vocab)
        self.log_vocab = math.log(vocab)
        self.entropies: list["torch.Tensor"] = []
        self.top_entropies: list["torch.Tensor"] = []

    def __call__(self, probs: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor"]:
        """(k [B] long, alpha [B] float64) for next-token probabilities [B, V]."""
        import torch

        h = entropy(probs)
        k = torch.round(K_SPAN * squash(centered(h, self.entropies, self.log_vocab), self.q) + K_MIN).long()
        k = k.clamp(max=self.k_max)
        top = probs.topk(self.k_max, dim=-1).values
        top = top.masked_fill(torch.arange(self.k_max, device=top.device)[None, :] >= k[:, None].to(top.device), 0.0)
        h_k = entropy(top)
        log_k = torch.log(k.double()).clamp_min(1e-12)  # k = 1 only with a one-token vocabulary
        alpha = torch.round(squash(centered(h_k, self.top_entropies, log_k), self.q) * 100) / 100
        self.entropies.append(h)
        self.top_entropies.append(h_k)
        return k.to(probs.device), alpha.to(probs.device)


class AdaptiveContrastiveSearch(ContrastiveSearch):
    """Contrastive search whose k and alpha come from :class:`AdaptiveSchedule` at every step."""

    def __init__(self, q: float):
        super().__init__(K_MIN + K_SPAN, 0.5)
        self.q = q

    def schedule(self, batch: int, vocab: int) -> Callable[["torch.Tensor"], tuple[Any, Any]]:
        return AdaptiveSchedule(self.q, vocab)


@decoder(
    "adaptive-contrastive",
    description="adaptive contrastive search (Garces Arias et al. 2024): contrastive search with k in [5, 15] and "
                "alpha in [0, 1] set each step from the entropy; q from the authors' configuration",
    sampling=False,
)
def adaptive_contrastive(
    q: Annotated[float, "steepness of the entropy-to-(k, alpha) mapping, > 0"] = 1.0,
) -> AdaptiveContrastiveSearch:
    check(q > 0 and math.isfinite(q), f"decoder 'adaptive-contrastive': q must be > 0 and finite, got {q}")
    return AdaptiveContrastiveSearch(q)
