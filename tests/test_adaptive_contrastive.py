"""Adaptive contrastive search: the authors' formulas, ranges, and equality with contrastive search
when the uncertainty is held fixed."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.errors import BenchError
from bench.specs import build_decoder, parse_decoder
from decoders import adaptive_contrastive as acs

PROMPTS = ["Once upon a time", "The cat sat on the mat and", "Tim", "She saw a bird in the sky and she"]


def published_step(probs: np.ndarray, var_list: list[float], var_k_list: list[float], q: float) -> tuple[int, float]:
    """The published ``adaptive_k`` / ``adaptive_alpha`` (utils_acs.py), transcribed for one row
    with numpy, including their history update; scipy's entropy is -sum p log p of p / sum p."""
    def ent(p):
        p = np.asarray(p, dtype=np.float64)
        p = p / p.sum()
        return float(-(p[p > 0] * np.log(p[p > 0])).sum())

    def update(value, value_max, history):
        threshold = value if not history else np.median(history)
        c = (value - threshold) / value_max
        # alpha's history mixes entropies of other k, so |c| can pass 1, where the published
        # expression is nan (log of a negative number); the decoder takes the limit, 0 or 1.
        if abs(c) >= 1:
            return 1.0 if c > 0 else 0.0
        arg = (q / 2) * np.log((1 + c) / (1 - c))
        return np.exp(arg) / (1 + np.exp(arg))

    var_out = ent(probs)
    k = int(np.round(update(var_out, math.log(len(probs)), var_list) * 10 + 5, 0))
    probs_k = sorted(probs.tolist(), reverse=True)[:k]
    var_out_k = ent(probs_k)
    alpha = float(np.round(update(var_out_k, math.log(k), var_k_list), 2))
    var_list.append(var_out)
    var_k_list.append(var_out_k)
    return k, alpha


@pytest.mark.parametrize("q", [1.0, 2.0, 8.0])
def test_schedule_matches_the_published_formulas_and_stays_in_range(q: float) -> None:
    """Rows with their own histories, 12 steps of random distributions of several sharpnesses."""
    import torch

    gen = torch.Generator().manual_seed(int(q))
    rows, vocab = 4, 64
    schedule = acs.AdaptiveSchedule(q, vocab)
    histories = [([], []) for _ in range(rows)]
    seen_k, seen_alpha = set(), set()
    for step in range(12):
        sharpness = torch.tensor([0.3, 1.0, 3.0, 8.0])[torch.randperm(rows, generator=gen)][:, None]
        probs = (torch.randn(rows, vocab, generator=gen) * sharpness).softmax(-1)
        k, alpha = schedule(probs)
        for r in range(rows):
            expected_k, expected_alpha = published_step(probs[r].double().numpy(), *histories[r], q)
            assert (int(k[r]), float(alpha[r])) == (expected_k, pytest.approx(expected_alpha, abs=1e-12)), (step, r)
        assert ((5 <= k) & (k <= 15)).all() and ((0 <= alpha) & (alpha <= 1)).all()
        seen_k.update(k.tolist())
        seen_alpha.update(alpha.tolist())
    assert len(seen_k) > 2 and len(seen_alpha) > 2  # the schedule moves
    assert {0.0} < seen_alpha  # a clamped step was among them


def test_schedule_by_hand() -> None:
    """c = 0.5 with q = 1: sigma = sqrt(3) / (sqrt(3) + 1) = 0.634, k = round(11.34) = 11."""
    import torch

    assert float(acs.squash(torch.tensor([0.5], dtype=torch.float64), 1.0)) == pytest.approx(3 ** 0.5 / (3 ** 0.5 + 1))
    assert float(acs.squash(torch.tensor([0.5], dtype=torch.float64), 8.0)) == pytest.approx(81 / 82)
    assert acs.squash(torch.tensor([-1.0, 1.0], dtype=torch.float64), 8.0).tolist() == [0.0, 1.0]  # finite at the ends
    assert acs.median(torch.tensor([[3.0, 1.0, 2.0, 10.0]])).tolist() == [2.5]  # numpy's median, not torch's lower one
    # A uniform first step: no history, c = 0, k = 10 and alpha = 0.5.
    k, alpha = acs.AdaptiveSchedule(1.0, 64)(torch.full((1, 64), 1 / 64))
    assert (int(k), float(alpha)) == (10, 0.5)


@pytest.fixture(scope="module")
def stories(stories260k: str):
    from transformers import AutoModelForCausalLM

    from bench.backends.hf import HFBackend, load_tokenizer

    model = AutoModelForCausalLM.from_pretrained(stories260k).eval()
    return HFBackend(stories260k, device="cpu", dtype="float32", model=model, tokenizer=load_tokenizer(stories260k))


def run(backend, spec: str, prompts=PROMPTS, tokens: int = 24) -> list[list[int]]:
    return [o.token_ids for o in backend.continue_batch(prompts, build_decoder(parse_decoder(spec)),
                                                        max_new_tokens=tokens, seeds=[0] * len(prompts))]


@pytest.mark.parametrize("c,k,alpha", [(0.0, 10, 0.5), (0.5, 11, 0.63), (-0.6, 8, 0.33)])
def test_fixed_uncertainty_equals_contrastive_at_the_implied_k_and_alpha(stories, monkeypatch, c, k, alpha) -> None:
    """With the centred entropy held at c (q = 1), every step uses k = round(10 sigma(c) + 5) and
    alpha = round(sigma(c), 2); the tokens must be contrastive search's at those values."""
    import torch

    monkeypatch.setattr(acs, "centered", lambda value, history, scale: torch.full_like(value, c))
    assert run(stories, "adaptive-contrastive:q=1") == run(stories, f"contrastive:k={k},alpha={alpha}")


def test_adaptive_differs_from_fixed_and_is_batch_invariant(stories) -> None:
    batched = run(stories, "adaptive-contrastive")
    assert batched != run(stories, "contrastive:k=10,alpha=0.5")
    assert batched == [run(stories, "adaptive-contrastive", [p])[0] for p in PROMPTS]


def test_bad_q() -> None:
    with pytest.raises(BenchError, match="q must be > 0"):
        parse_decoder("adaptive-contrastive:q=0")


@pytest.mark.parametrize("backend", ["vllm", "openai", "fake"])
@pytest.mark.parametrize("text", ["adaptive-contrastive", "contrastive-decoding"])
def test_refused_at_plan_time_where_the_model_is_not_at_hand(text: str, backend: str) -> None:
    from bench.backends import backend_class
    from bench.specs import declare

    reason = backend_class(backend).refusal(declare(parse_decoder(text)))
    assert "needs the model itself" in reason and "--backend hf" in reason
    assert backend_class("hf").refusal(declare(parse_decoder(text))) is None
