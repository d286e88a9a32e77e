"""DoLa (Chuang et al. 2024): greedy on the final layer's log-probabilities minus an early layer's.

At each step the early ("premature") layer is, among the candidate layers, the one whose
next-token distribution (the LM head applied to its hidden state) is furthest from the final
layer's in Jensen-Shannon divergence. Tokens whose final-layer probability is below 0.1 times
the top token's are excluded (the adaptive plausibility constraint); the others score
log p_final - log p_early, then the repetition penalty (Keskar et al. 2019) applies and the
argmax is emitted.

Pinned token for token to transformers 4.46.3's ``generate(dola_layers=..., do_sample=False)``
(``_dola_decoding``; transformers 5 moved DoLa to remote code), including its choice of
candidate layers for ``high`` and ``low`` and its skipping of the embedding layer when the
embeddings are tied. One deliberate difference: 4.46.3 picks the early layer by the divergence
averaged over the whole batch, so a record's text depends on its batch neighbours; here each row
picks its own (what the paper defines), so records do not depend on batching or resumption.
At batch size 1 the two are the same computation. The repetition penalty counts a row's real
tokens only (4.46.3 also penalises the pad id in padded rows).
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


def parse_layers(layers: str) -> str | list[int]:
    """``high``, ``low`` or explicit indices joined by ``+`` (``0+2+4``; 0 is the embeddings)."""
    if layers in ("high", "low"):
        return layers
    parts = layers.split("+")
    check(all(p.strip().isdigit() for p in parts),
          f"decoder 'dola': layers must be high, low or layer indices joined by '+' (e.g. 0+2+4), got '{layers}'")
    return [int(p) for p in parts]


def _check_layers(spec: Any, config: Any) -> None:
    """Plan-time: explicit layers must be below the model's number of layers (the final one)."""
    layers = parse_layers(spec.kwargs["layers"])
    final = getattr(config.get_text_config() if hasattr(config, "get_text_config") else config,
                    "num_hidden_layers", None)
    if isinstance(layers, list) and final is not None and max(layers) >= final:
        raise BenchError(f"decoder 'dola': layer {max(layers)} is not an early layer of this model "
                         f"(it has {final} layers; choose indices 0..{final - 1})")


@decoder(
    "dola",
    description="DoLa (Chuang et al. 2024): greedy on final minus early-layer log-probs; layers=high and "
                "repetition_penalty=1.2 as the paper and transformers recommend (1.0 = generate's default)",
    sampling=False,
    check_model=_check_layers,
)
def dola(
    layers: Annotated[str, "candidate early layers: high, low, or indices joined by '+' (0 = embeddings)"] = "high",
    repetition_penalty: Annotated[float, "divides positive / multiplies negative scores of seen tokens, >= 1"] = 1.2,
) -> Decoder:
    chosen = parse_layers(layers)
    check(repetition_penalty >= 1.0 and math.isfinite(repetition_penalty),
          f"decoder 'dola': repetition_penalty must be >= 1 and finite, got {repetition_penalty}")
    return DoLa(chosen, repetition_penalty)


def candidate_layers(layers: str | list[int], final_layer: int, tied: bool) -> list[int]:
    """The early layers to contrast, by 4.46.3's rules (``_dola_decoding``)."""
    if isinstance(layers, list):
        return [i for i in layers if i < final_layer]
    # With tied embeddings the embedding layer's logits say nothing: start at 2 (1 or 0 when shallow).
    start = 0 if not tied else 2 if final_layer > 2 else 1 if final_layer == 2 else 0
    if layers == "low":
        if start == final_layer // 2:
            return [start]
        return list(range(start, final_layer // 2, 2)) if final_layer <= 40 else list(range(start, 20, 2))
    return list(range(final_layer // 2, final_layer, 2)) if final_layer <= 40 else list(
        range(final_layer - 20, final_layer, 2))


class DoLa(Decoder):
    """Our own batched DoLa with a KV cache; see the module docstring."""

    needs = "model"  # it reads every layer's hidden state: the HF backend runs it

    def __init__(self, layers: str | list[int], repetition_penalty: float):
        self.layers = layers
        self.repetition_penalty = repetition_penalty

    def generate(self, model: Any, input_ids: "torch.Tensor", attention_mask: "torch.Tensor", *,
                 max_new_tokens: int, eos_token_ids: Sequence[int], pad_token_id: int,
                 rng: RowRNG | None = None) -> "torch.Tensor":
        """New tokens [batch, <= max_new_tokens], pad after EOS. ``rng`` is unused (deterministic)."""
        import torch

        with torch.inference_mode():
            return self._generate(model, input_ids, attention_mask, max_new_tokens, eos_token_ids, pad_token_id)

    def _generate(self, model, input_ids, attention_mask, max_new_tokens, eos_token_ids, pad_token_id):
        import torch
        from transformers import DynamicCache

        batch, device = input_ids.shape[0], input_ids.device
        config = model.config.get_text_config()
        layers = candidate_layers(self.layers, config.num_hidden_layers,
                                  bool(getattr(model.config, "tie_word_embeddings", False)))
        head = model.get_output_embeddings()
        if not layers or head is None:
            raise BenchError(f"decoder 'dola': {type(model).__name__} has no early layer to contrast or no LM head")
        eos = torch.tensor(list(eos_token_ids), dtype=torch.long, device=device)
        # Tokens each row has seen (its real prompt tokens, then what it generates), for the penalty.
        seen = torch.zeros((batch, head.out_features), dtype=torch.bool, device=device)
        real = attention_mask.bool()
        seen[torch.arange(batch, device=device)[:, None].expand_as(input_ids)[real], input_ids[real]] = True
        cache = DynamicCache(config=model.config)
        position = (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 1)
        step_input, step_position = input_ids, position
        done = torch.zeros(batch, dtype=torch.bool, device=device)
        new_tokens = []
        for _ in range(max_new_tokens):
            # 1. One forward step, keeping every layer's hidden state of the last position.
            out = model(input_ids=step_input, attention_mask=attention_mask, position_ids=step_position,
                        use_cache=True, output_hidden_states=True, logits_to_keep=1, **cache_kwargs(model, cache))
            final = out.logits[:, -1].float()
            early = torch.stack([head(out.hidden_states[i][:, -1]) for i in layers])  # [layers, B, vocab]
            # 2. Each row's early layer: the candidate furthest from the final layer (JS divergence).
            base = early[0] if len(layers) == 1 else early[_furthest(final, early), torch.arange(batch, device=device)]
            # 3. Contrast under the plausibility constraint, then the repetition penalty; greedy.
            scores = _penalise(_contrast(final, base), seen, self.repetition_penalty)
            token = scores.argmax(dim=-1).masked_fill(done, pad_token_id)
            # 4. Emit; a row finishes on any EOS token and pads afterwards.
            new_tokens.append(token)
            seen[torch.arange(batch, device=device), token] |= ~done
            done |= torch.isin(token, eos)
            if bool(done.all()):
                break
            step_input, step_position = token[:, None], step_position[:, -1:] + 1
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones((batch, 1))], dim=-1)
        if not new_tokens:
            return input_ids.new_empty((batch, 0))
        return torch.stack(new_tokens, dim=1)


def _furthest(final: "torch.Tensor", early: "torch.Tensor") -> "torch.Tensor":
    """Index [B] of the early layer whose distribution is furthest from the final one, per row
    (4.46.3's ``_dola_select_contrast`` steps 2-5, without its average over the batch)."""
    import torch.nn.functional as F

    average = 0.5 * (F.softmax(final, dim=-1)[None] + F.softmax(early, dim=-1))
    kl_final = F.kl_div(F.log_softmax(final, dim=-1)[None], average, reduction="none").mean(-1)
    kl_early = F.kl_div(F.log_softmax(early, dim=-1), average, reduction="none").mean(-1)
    return (0.5 * (kl_final + kl_early)).argmax(dim=0)


def _contrast(final: "torch.Tensor", base: "torch.Tensor") -> "torch.Tensor":
    """log p_final - log p_early on the tokens within 0.1 x the top final probability; -inf elsewhere
    (4.46.3's ``_relative_top_filter`` with relative_top 0.1, the early side floored at -1e-3)."""
    import torch

    final, base = final.log_softmax(dim=-1), base.log_softmax(dim=-1)
    top = final.max(dim=-1).values
    threshold = torch.minimum(top, top + math.log(0.1))[:, None]
    implausible = final < threshold
    return final.masked_fill(implausible, -float("inf")) - base.masked_fill(implausible, -1e-3)


def _penalise(scores: "torch.Tensor", seen: "torch.Tensor", penalty: float) -> "torch.Tensor":
    """transformers' RepetitionPenaltyLogitsProcessor over the tokens each row has seen."""
    import torch

    if penalty == 1.0:
        return scores
    return torch.where(seen, torch.where(scores < 0, scores * penalty, scores / penalty), scores)
