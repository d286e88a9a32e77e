"""Top-p (nucleus) filtering without sorting the vocabulary.

transformers' ``TopPLogitsWarper`` sorts every row's logits each step; on a CPU at batch 16 with
GPT-2's 50257 tokens that sort was a quarter of a sampled step (cProfile of
benchmarks/bench_generation.py's setting), more than the LM head. The nucleus is only a
threshold: keep the tokens whose probability is at least the largest ``tau`` for which the mass of
those tokens still reaches ``p`` (the smallest set of mass >= p, as the warper keeps; tokens tied
at ``tau`` are all kept). That threshold is found by a radix select on the probabilities' bit
patterns (non-negative float32 values order like their int32 bits): three passes of 11, 10 and 10
bits, each a weighted histogram (``scatter_add_`` of float64 mass) over one digit of the tokens still
in range, whose cumulative mass from the top picks the digit. Every pass is a fixed number of
full-vocabulary operations with no host sync, so it runs the same on CPU and GPU.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

DIGITS = ((20, 11), (10, 10), (0, 10))
"""(shift, width) of the radix passes over a float32's 31 value bits, most significant first."""


def nucleus_mask(probs: "torch.Tensor", top_p: float) -> "torch.Tensor":
    """True for the tokens [batch, vocab] of each row's nucleus of mass >= ``top_p`` (float32 probs)."""
    import torch

    # >= 0 for non-negative floats; a NaN (logits overflowed: the caller falls back to the argmax)
    # may carry the sign bit, which would make a negative histogram index
    bits = probs.float().contiguous().view(torch.int32).long().clamp(min=0)
    wide = probs.double()
    batch = probs.size(0)
    threshold = bits.new_zeros(batch, 1)
    above = wide.new_zeros(batch, 1)  # mass of the tokens above the digits chosen so far
    in_range = None
    for shift, width in DIGITS:
        high = bits >> shift
        digit = high & ((1 << width) - 1)
        weights = wide if in_range is None else wide.where(in_range, 0.0)
        mass = wide.new_zeros(batch, 1 << width).scatter_add_(1, digit, weights)
        before = mass.cumsum(-1) - mass  # mass of the smaller digits
        total = mass.sum(-1, keepdim=True)
        # Mass with this digit or a larger one: non-increasing in the digit, so the reachable digits
        # form a prefix; take its last one (digit 0 when rounding leaves none).
        reach = (above + (total - before) >= top_p).sum(-1, keepdim=True)
        chosen = (reach - 1).clamp(min=0)
        above = above + total - before.gather(1, chosen) - mass.gather(1, chosen)
        threshold = threshold | (chosen << shift)
        in_range = high == (threshold >> shift)
    return bits >= threshold


class TopPFilter:
    """A drop-in for ``TopPLogitsWarper`` (same call signature): logits outside the nucleus -> -inf."""

    def __init__(self, top_p: float):
        self.top_p = top_p

    def __call__(self, input_ids: Any, scores: "torch.Tensor") -> "torch.Tensor":
        keep = nucleus_mask(scores.softmax(dim=-1), self.top_p)
        return scores.masked_fill(~keep, float("-inf"))
