"""Sort-free top-p (bench.nucleus) keeps the nucleus transformers' TopPLogitsWarper keeps."""

from __future__ import annotations

import pytest
import torch
from transformers.generation.logits_process import TopPLogitsWarper

from bench.decoding import RowRNG
from bench.nucleus import TopPFilter, nucleus_mask
from bench.specs import build_decoder, parse_decoder


def sorted_nucleus(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """The textbook nucleus, by sorting, with float64 mass: the top tokens until the mass reaches top_p."""
    values = probs.double().sort(-1, descending=True).values
    needed = (values.cumsum(-1) < top_p).sum(-1, keepdim=True) + 1
    return probs.double() >= values.gather(1, needed.clamp(max=probs.size(-1)) - 1)


@pytest.mark.parametrize("top_p", [0.1, 0.5, 0.9, 0.95, 0.999])
def test_same_tokens_as_sorting(top_p: float) -> None:
    gen = torch.Generator().manual_seed(0)
    for scale in (0.3, 1.0, 3.0, 10.0):
        logits = torch.randn(8, 5000, generator=gen) * scale
        ours = TopPFilter(top_p)(None, logits)
        assert torch.equal(~ours.isinf(), sorted_nucleus(logits.softmax(-1), top_p))
        assert torch.equal(ours[~ours.isinf()], logits[~ours.isinf()])  # kept logits untouched
        # transformers' warper sums in float32, so at most the boundary token may differ
        theirs = TopPLogitsWarper(top_p)(None, logits.clone())
        assert int((ours.isinf() != theirs.isinf()).sum(-1).max()) <= 1


@pytest.mark.parametrize("top_p", [0.5, 0.99, 0.999, 0.9999])
def test_the_nucleus_is_the_smallest_set_of_enough_mass(top_p: float) -> None:
    gen = torch.Generator().manual_seed(1)
    probs = (torch.randn(16, 3000, generator=gen) * 2).softmax(-1)
    keep = nucleus_mask(probs, top_p)
    wide = probs.double()
    kept_mass = (wide * keep).sum(-1)
    assert bool((kept_mass >= top_p).all())
    smallest_kept = probs.masked_fill(~keep, float("inf")).min(-1, keepdim=True).values
    assert bool((probs[~keep] < smallest_kept.expand_as(probs)[~keep]).all())  # a threshold: kept >= dropped
    without_smallest = (wide * (probs > smallest_kept)).sum(-1)
    assert bool((without_smallest < top_p).all())  # dropping the smallest kept value loses too much


def test_degenerate_distributions() -> None:
    one_hot = torch.zeros(1, 10)
    one_hot[0, 3] = 1.0
    assert nucleus_mask(one_hot, 0.9).nonzero().tolist() == [[0, 3]]
    uniform = torch.full((2, 7), 1 / 7)
    assert bool(nucleus_mask(uniform, 0.5).all())  # tied at the threshold: all kept
    with_zeros = torch.tensor([[0.0, 0.6, 0.0, 0.4]])
    assert nucleus_mask(with_zeros, 0.99).tolist() == [[False, True, False, True]]
    assert nucleus_mask(with_zeros, 0.01).tolist() == [[False, True, False, False]]


def test_nan_probabilities_do_not_break_the_filter() -> None:
    """Overflowing logits (a tiny temperature) give NaN probabilities, of either sign."""
    probs = torch.tensor([[float("nan"), 0.5, 0.5], [-float("nan"), -float("nan"), 1.0]])
    assert nucleus_mask(probs, 0.9).shape == (2, 3)
    dec = build_decoder(parse_decoder("top-p:p=0.9,t=1e-39"))
    logits = torch.tensor([[1.0, 3.0, 2.0], [5.0, -1.0, 0.0]])
    assert dec.select(logits, RowRNG([1, 2])).tolist() == [1, 0]


def test_top_p_sampling_sorts_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The full-vocabulary sort was a quarter of a sampled CPU step; the decoder must not sort."""

    def refuse(*args, **kwargs):
        raise AssertionError("top-p sorted the vocabulary")

    dec = build_decoder(parse_decoder("top-p:p=0.9"))
    logits = torch.randn(4, 1000)
    monkeypatch.setattr(torch, "sort", refuse)
    monkeypatch.setattr(torch.Tensor, "sort", refuse)
    monkeypatch.setattr(torch, "argsort", refuse)
    assert dec.select(logits, RowRNG(range(4))).shape == (4,)
