"""Contrastive decoding (Li et al. 2023), in the parametrisation of O'Brien & Lewis (2023).

At each step, with the expert's and the amateur's next-token log-probabilities ``le`` and ``la``
(same prompt, same prefix, same vocabulary), the next token is

    argmax_v  (1 + beta) * le(v) - beta * la(v)   over  V_head = {v : p_e(v) >= alpha * max_w p_e(w)}

and every token outside ``V_head`` (the plausibility constraint) is excluded.

Why this formulation. Li et al. (2023, eq. 3-4) score ``log p_e - log p_a`` under the same
``alpha`` constraint; their released code (XiangLi1999/ContrastiveDecoding, ``generation_utils``)
computes ``log_softmax(expert) - st_coef * log_softmax(amateur) / student_temperature`` with the
constraint applied as ``EntrPLogitsWarper(relative_top=0.1)`` and beam search (5 beams).
O'Brien & Lewis (2023, Algorithm 1) rewrote it as ``(1 + beta) s_e - beta s_a`` with the same
alpha mask, which names the amateur's weight with one parameter, and decode greedily; the issue
asks for ``alpha=0.1, beta=0.5``, their recommended values. Per row, ``(1 + beta) le - beta la``
differs from the same expression on raw logits by a constant (the two log-normalisers), so the
argmax is the same whether one reads O'Brien & Lewis's ``s`` as logits or log-probabilities.
Li et al.'s score is the limit ``beta -> inf`` up to scale; their released runs weighted the
amateur by 2 (``student_temperature=0.5``), which ``beta`` cannot express. Greedy search, not
beam search: the decoder is deterministic and one row per record, as O'Brien & Lewis ran it.

Both models run in lockstep with their own KV cache over the same left-padded batch. The amateur
comes from ``--amateur PATH`` (see :mod:`bench.amateur`); the generation step sets
:attr:`ContrastiveDecoding.amateur` before decoding.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any, Sequence

from bench.decoding import Decoder, RowRNG
from bench.runtime.forward import cache_kwargs
from bench.errors import BenchError, check
from bench.registry import decoder

if TYPE_CHECKING:
    import torch


def contrastive_scores(expert_logits: "torch.Tensor", amateur_logits: "torch.Tensor", alpha: float,
                       beta: float) -> "torch.Tensor":
    """``(1 + beta) log p_e - beta log p_a`` on the plausible tokens, ``-inf`` elsewhere; [B, V] float32."""
    expert = expert_logits.float().log_softmax(dim=-1)
    amateur = amateur_logits.float().log_softmax(dim=-1)
    # p_e >= alpha * max p_e, in log space (alpha = 0 keeps every token: log 0 = -inf).
    cutoff = expert.max(dim=-1, keepdim=True).values + (math.log(alpha) if alpha > 0 else -math.inf)
    score = (1.0 + beta) * expert - beta * amateur
    return score.masked_fill(expert < cutoff, -math.inf)


class ContrastiveDecoding(Decoder):
    """Greedy search on the contrastive score; needs the expert model and the amateur model."""

    needs = "model"  # two models' logits per step: only the HF backend has them

    def __init__(self, alpha: float, beta: float):
        self.alpha = alpha
        self.beta = beta
        self.amateur: Any = None
        """The amateur model (a transformers causal LM), set by the generation step from ``--amateur``."""

    def generate(self, model: Any, input_ids: "torch.Tensor", attention_mask: "torch.Tensor", *,
                 max_new_tokens: int, eos_token_ids: Sequence[int], pad_token_id: int,
                 rng: RowRNG | None = None) -> "torch.Tensor":
        """Continue left-padded prompts; new tokens [batch, <= max_new_tokens], pad after EOS."""
        import torch

        if self.amateur is None:
            raise BenchError("decoder 'contrastive-decoding' needs --amateur PATH (a small model with the same tokenizer)")
        eos = torch.tensor(list(eos_token_ids), device=input_ids.device)
        expert, amateur = _Lockstep(model, input_ids, attention_mask), _Lockstep(self.amateur, input_ids, attention_mask)
        done = torch.zeros(input_ids.size(0), dtype=torch.bool, device=input_ids.device)
        new_tokens = []
        with torch.inference_mode():
            for _ in range(max_new_tokens):
                score = contrastive_scores(expert.logits, amateur.logits.to(expert.logits.device), self.alpha, self.beta)
                token = score.argmax(dim=-1).masked_fill(done, pad_token_id)
                new_tokens.append(token)
                done |= torch.isin(token, eos)
                if bool(done.all()):
                    break
                expert.feed(token)
                amateur.feed(token)
        if not new_tokens:
            return input_ids.new_zeros(input_ids.size(0), 0)
        return torch.stack(new_tokens, dim=1)


class _Lockstep:
    """One model's KV cache over the shared left-padded batch, and its latest next-token logits."""

    def __init__(self, model: Any, input_ids: "torch.Tensor", attention_mask: "torch.Tensor"):
        from transformers import DynamicCache

        self.model = model
        device = next(model.parameters()).device
        self.mask = attention_mask.to(device)
        self.cache = DynamicCache(config=model.config)
        # Real tokens count positions from 0; pad positions get 1, as transformers' generate does.
        positions = (self.mask.cumsum(-1) - 1).masked_fill(self.mask == 0, 1)
        self.position = positions[:, -1:]
        self.logits = self._run(input_ids.to(device), positions)

    def _run(self, ids: "torch.Tensor", positions: "torch.Tensor") -> "torch.Tensor":
        out = self.model(input_ids=ids, attention_mask=self.mask, position_ids=positions,
                         use_cache=True, logits_to_keep=1, **cache_kwargs(self.model, self.cache))
        return out.logits[:, -1, :].float()

    def feed(self, token: "torch.Tensor") -> None:
        """Append one token per row and compute the next logits."""
        import torch

        token = token.to(self.mask.device)
        self.mask = torch.cat([self.mask, self.mask.new_ones(self.mask.size(0), 1)], dim=-1)
        self.position = self.position + 1
        self.logits = self._run(token.unsqueeze(-1), self.position)


@decoder(
    "contrastive-decoding",
    description="contrastive decoding (Li et al. 2023; O'Brien & Lewis 2023): greedy on (1+beta) log p_expert - "
                "beta log p_amateur over tokens with p_expert >= alpha * max p_expert; defaults from O'Brien & Lewis",
    sampling=False,
    requires=("amateur",),
    requires_help="give a small model with the same tokenizer as --model, e.g. --amateur PATH",
)
def contrastive_decoding(
    alpha: Annotated[float, "plausibility: keep tokens with p_expert >= alpha * max p_expert, in [0, 1]"] = 0.1,
    beta: Annotated[float, "amateur penalty weight, >= 0 (0 = greedy on the expert)"] = 0.5,
) -> ContrastiveDecoding:
    check(0.0 <= alpha <= 1.0, f"decoder 'contrastive-decoding': alpha must be in [0, 1], got {alpha}")
    check(beta >= 0.0 and math.isfinite(beta), f"decoder 'contrastive-decoding': beta must be >= 0 and finite, got {beta}")
    return ContrastiveDecoding(alpha, beta)
