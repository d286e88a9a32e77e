"""Static vocabulary reweighting: the ablation of "Beyond Temperature" (Li et al. 2026).

Does hyperfitting act as a fixed preference for some tokens? This decoder runs on the *base*
model and adds ``alpha`` times one fixed logit offset to its logits at every step. The offset is
measured once, in :meth:`StaticReweight.calibrate`, on the same contexts as the
``entropy-matched`` control: the first ``calib_prompts`` prompts, each continued greedily for
``calib_tokens`` tokens by the hyperfitted model. At every calibration position both models'
logits are compared:

* the rank rise of a token is its rank under the base model minus its rank under the hyperfitted
  model (rank 1 = top); the ``top_k`` tokens with the largest mean rise are selected
  (``top_k`` is capped at the vocabulary size);
* the offset of a selected token is its mean logit change (hyperfitted minus base); every other
  token gets 0. Logits are only defined up to a constant per position, so each position's logits
  are centred (their mean over the vocabulary subtracted) before the change is taken; otherwise
  that arbitrary constant would leak into the offset as a boost of the selected tokens.

With ``alpha = 0`` the decoder is the base model itself: greedy (``greedy=true``) picks the same
tokens as ``greedy``, sampling the same tokens as ``temperature:t=T`` with the same seeds.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any

from bench.decoding import EngineParams, LogitsDecoder
from bench.errors import BenchError, check
from bench.registry import decoder
from decoders.entropy_matched import MAX_CALIB_PROMPTS, MAX_CALIB_TOKENS  # one bound for both

if TYPE_CHECKING:
    import torch

POSITION_CHUNK = 256
"""Calibration positions ranked at once (ranking materialises [positions, vocab] int64 tensors)."""


def ranks(logits: "torch.Tensor") -> "torch.Tensor":
    """Rank of every token per row, 1 = highest logit; ties share the better rank's order by index."""
    import torch

    order = logits.argsort(dim=-1, descending=True, stable=True)
    out = torch.empty_like(order)
    out.scatter_(-1, order, torch.arange(1, logits.size(-1) + 1, device=logits.device).expand_as(order))
    return out


def rank_and_logit_change(base_logits: "torch.Tensor", hyper_logits: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor"]:
    """Per token, the mean rank rise and the mean centred logit change over all rows (positions)."""
    import torch

    check(base_logits.shape == hyper_logits.shape,
          f"static-reweight: logits of shape {tuple(base_logits.shape)} and {tuple(hyper_logits.shape)} differ")
    vocab = base_logits.size(-1)
    rise = torch.zeros(vocab, dtype=torch.float64, device=base_logits.device)
    change = torch.zeros(vocab, dtype=torch.float64, device=base_logits.device)
    for start in range(0, base_logits.size(0), POSITION_CHUNK):
        b = base_logits[start : start + POSITION_CHUNK].double()
        h = hyper_logits[start : start + POSITION_CHUNK].double()
        rise += (ranks(b) - ranks(h)).double().sum(dim=0)
        change += ((h - h.mean(-1, keepdim=True)) - (b - b.mean(-1, keepdim=True))).sum(dim=0)
    n = base_logits.size(0)
    return rise / n, change / n


def static_offset(base_logits: "torch.Tensor", hyper_logits: "torch.Tensor", top_k: int) -> tuple["torch.Tensor", "torch.Tensor"]:
    """The offset vector [vocab] (float32) and the ids of the ``top_k`` tokens whose rank rises most."""
    import torch

    rise, change = rank_and_logit_change(base_logits, hyper_logits)
    k = min(top_k, rise.numel())
    chosen = rise.argsort(descending=True, stable=True)[:k]
    offset = torch.zeros_like(change)
    offset[chosen] = change[chosen]
    return offset.float(), chosen


class StaticReweight(LogitsDecoder):
    """Base-model logits plus ``alpha * offset`` (a fixed logit bias); greedy or sampled at temperature ``t``."""

    calibrates = True

    def __init__(self, alpha: float, top_k: int, t: float, greedy: bool, calib_prompts: int, calib_tokens: int):
        super().__init__(None)
        self.alpha, self.top_k, self.t, self.greedy = alpha, top_k, t, greedy
        self.calib_prompts, self.calib_tokens = calib_prompts, calib_tokens
        self.offset: "torch.Tensor | None" = None
        self.chosen: "torch.Tensor | None" = None

    def calibrate(self, base: Any, reference: Any, prompts: list[Any]) -> dict[str, Any]:
        """Measure the offset on the reference (hyperfitted) model's greedy calibration contexts."""
        from decoders.entropy_matched import continuation_logits
        from decoders.greedy import greedy

        check(len(prompts) > 0, "decoder 'static-reweight': no prompts to calibrate on")
        texts = [p.text for p in prompts[: self.calib_prompts]]
        outs = reference.continue_batch(texts, greedy(), max_new_tokens=self.calib_tokens, seeds=[0] * len(texts))
        contexts = [o.token_ids for o in outs]
        base_logits = continuation_logits(base, texts, contexts)
        hyper_logits = continuation_logits(reference, texts, contexts)
        if base_logits.size(-1) != hyper_logits.size(-1):
            raise BenchError(f"decoder 'static-reweight': the base model has {base_logits.size(-1)} logits per "
                             f"position, the hyperfitted model {hyper_logits.size(-1)}")
        self.offset, self.chosen = static_offset(base_logits, hyper_logits, self.top_k)
        return {"reweight_tokens": int(self.chosen.numel()), "calibration_positions": int(base_logits.size(0)),
                "offset_l2": round(float(self.offset.norm()), 6),
                "offset_mean_selected": round(float(self.offset[self.chosen].mean()), 6)}

    def with_alpha(self, alpha: float) -> "StaticReweight":
        """A copy with another ``alpha`` that shares the calibrated offset (for sweeps)."""
        check(alpha >= 0 and math.isfinite(alpha), f"decoder 'static-reweight': alpha must be >= 0, got {alpha}")
        other = StaticReweight(alpha, self.top_k, self.t, self.greedy, self.calib_prompts, self.calib_tokens)
        other.offset, other.chosen = self.offset, self.chosen
        return other

    def features(self) -> frozenset[str]:
        return frozenset({"logit_bias", "temperature"} if self.greedy or self.t != 1.0 else {"logit_bias"})

    def engine_params(self) -> EngineParams:
        if self.offset is None:
            raise RuntimeError("static-reweight: calibrate() must run before decoding")
        # alpha * offset is computed once, as before; then the temperature decoder's own steps, so
        # alpha = 0 matches it token for token.
        return EngineParams(temperature=0.0 if self.greedy else self.t, logit_bias=self.alpha * self.offset)



@decoder(
    "static-reweight",
    description="base model plus alpha x a fixed logit offset toward the tokens hyperfitting promotes (ablation)",
    sampling=True,
    requires=("hyperfit",),
    requires_help="give a hyperfitted checkpoint (make one with 'bench hyperfit'); the offset is measured against it",
)
def static_reweight(
    alpha: Annotated[float, "scale of the offset, >= 0 (0 = the base model)"] = 0.1,
    top_k: Annotated[int, "tokens whose rank rises most that get an offset (capped at the vocabulary)"] = 500,
    t: Annotated[float, "sampling temperature, > 0"] = 1.0,
    greedy: Annotated[bool, "argmax instead of sampling"] = False,
    calib_prompts: Annotated[int, "prompts used to measure the offset"] = 32,
    calib_tokens: Annotated[int, "greedy tokens per calibration prompt"] = 64,
) -> StaticReweight:
    check(alpha >= 0 and math.isfinite(alpha), f"decoder 'static-reweight': alpha must be >= 0 and finite, got {alpha}")
    check(top_k >= 1, f"decoder 'static-reweight': top_k must be >= 1, got {top_k}")
    check(t > 0 and math.isfinite(t), f"decoder 'static-reweight': temperature t must be > 0 and finite, got {t}")
    check(1 <= calib_prompts <= MAX_CALIB_PROMPTS and 1 <= calib_tokens <= MAX_CALIB_TOKENS,
          f"decoder 'static-reweight': calib_prompts must be in 1..{MAX_CALIB_PROMPTS:,} and calib_tokens in "
          f"1..{MAX_CALIB_TOKENS:,}, got {calib_prompts} and {calib_tokens}")
    return StaticReweight(alpha, top_k, t, greedy, calib_prompts, calib_tokens)
