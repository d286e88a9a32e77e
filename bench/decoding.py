"""What a decoder is to a backend, and the per-record random streams that make sampling reproducible.

A decoder turns next-token logits into next tokens, one row per record. Sampling draws one
uniform number per row and step from that record's own generator, seeded from
(seed, prompt id, sample index), so a record's text does not depend on the batch it ran in or on
whether the run was interrupted.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    import torch


def record_seed(seed: int, prompt_id: str, sample_index: int) -> int:
    """A 63-bit seed for one record, stable across processes and platforms."""
    digest = hashlib.sha256(f"{seed}\x1f{prompt_id}\x1f{sample_index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class RowRNG:
    """One CPU generator per batch row; ``uniform()`` draws the next number of every row."""

    def __init__(self, seeds: Sequence[int]):
        import torch

        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]

    def uniform(self) -> "torch.Tensor":
        import torch

        # 1 - U[0,1) lies in (0, 1]: a zero would select a zero-probability token at index 0.
        return torch.cat([1.0 - torch.rand(1, generator=g, dtype=torch.float64) for g in self.generators])

    def select(self, rows: "torch.Tensor") -> "RowRNG":
        """The generators of a subset of rows (for backends that drop finished rows)."""
        sub = RowRNG.__new__(RowRNG)
        sub.generators = [self.generators[i] for i in rows.tolist()]
        return sub


def sample_from_probs(probs: "torch.Tensor", rng: RowRNG) -> "torch.Tensor":
    """Inverse-CDF sampling, one row per record: the token where the cumulative mass passes u."""
    import torch

    cdf = probs.double().cumsum(dim=-1)
    u = rng.uniform().to(cdf.device) * cdf[:, -1]
    index = torch.searchsorted(cdf, u.unsqueeze(-1)).squeeze(-1)
    return index.clamp(max=probs.size(-1) - 1)


class Decoder:
    """Base class of decoders the generic loop runs.

    ``select`` receives float32 logits of shape [batch, vocab] for the next position and returns
    the chosen token ids, shape [batch]. Decoders that need more than logits (contrastive search)
    set ``custom_loop`` and implement ``generate`` against the backend instead.
    """

    sampling: bool = False
    custom_loop: bool = False

    def select(self, logits: "torch.Tensor", rng: RowRNG) -> "torch.Tensor":
        raise NotImplementedError

    def generate(
        self,
        model: Any,
        input_ids: "torch.Tensor",
        attention_mask: "torch.Tensor",
        *,
        max_new_tokens: int,
        eos_token_ids: Sequence[int],
        pad_token_id: int,
        rng: RowRNG,
    ) -> "torch.Tensor":  # pragma: no cover - overridden by custom-loop decoders
        """Continue left-padded prompts; return new tokens [batch, <= max_new_tokens], pad after EOS."""
        raise NotImplementedError


class Greedy(Decoder):
    """Argmax of the logits."""

    def select(self, logits: "torch.Tensor", rng: RowRNG) -> "torch.Tensor":
        return logits.argmax(dim=-1)


class Sampler(Decoder):
    """Sample from softmax(warped logits); the warpers are transformers' own logits warpers."""

    sampling = True

    def __init__(self, warpers: Sequence[Any]):
        self.warpers = list(warpers)

    def select(self, logits: "torch.Tensor", rng: RowRNG) -> "torch.Tensor":
        import torch

        warped = logits
        for warp in self.warpers:
            warped = warp(None, warped)
        probs = warped.softmax(dim=-1)
        token = sample_from_probs(probs, rng)
        # A temperature so small that logits / t overflows (t=1e-39) gives NaN probabilities; the
        # limit of sampling as t -> 0 is the argmax, so those rows take it (the draw is still made,
        # keeping every row's random stream in step).
        broken = ~torch.isfinite(probs).all(dim=-1)
        return torch.where(broken, logits.argmax(dim=-1), token) if broken.any() else token
