"""Contrastive search (Su et al. 2022), batched, with a KV cache and left-padded prompts.

At each step the k most likely next tokens v are candidates, and the chosen one maximises

    (1 - alpha) * p(v | x<t) - alpha * max_j cos(h_v, h_j)

where h_v is the last-layer hidden state of the candidate (one forward step past the prefix) and
h_j runs over the last-layer hidden states of every earlier real position, the prompt included
(left-padding positions are masked out, as transformers masks them).

This matches the ``_contrastive_search`` that shipped in transformers up to 4.55 (the tests pin
4.46.3) token for token, but computes the candidate step differently. transformers repeats each
row's KV cache k times, runs a batch of B*k one-token rows (appending to that k-times larger
cache, a second copy of it), then copies the chosen rows back out, every step; and it computes
the full-vocabulary logits of all B*k candidates. Here the k candidates of a row are fed as k
query positions of that one row, with an attention mask that lets each see the row's unpadded
prefix and itself but not its siblings (all at the same position id): the same arithmetic as k
separate rows, without repeating the cache. Afterwards the chosen candidate's key/value entry
is moved next to the prefix and the other k - 1 are cropped away. The cache is transformers'
``DynamicCache`` whose layers write into buffers allocated once (``bench.runtime.inplace_cache``):
a plain ``DynamicLayer`` concatenates, copying the whole cache every step. Only the chosen candidate's
hidden state goes through the LM head.

k and alpha come from :meth:`ContrastiveSearch.schedule`, fixed here; adaptive contrastive
search (:mod:`decoders.adaptive_contrastive`) overrides it to set them per row and step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Callable, Sequence

from bench.backends.hf_decode import SYNC_EVERY
from bench.decoding import Decoder, RowRNG
from bench.errors import BenchError, check
from bench.registry import at_most_vocabulary, decoder
from bench.runtime import cache_kwargs

if TYPE_CHECKING:
    import torch


MAX_CANDIDATES = 1 << 16
"""Candidates per step are each a forward row: more than this is a typo, refused before loading."""


@decoder(
    "contrastive",
    check_model=at_most_vocabulary("contrastive", "k", "candidates"),
    description="contrastive search: top-k candidates re-ranked by p - similarity to the context",
    sampling=False,
)
def contrastive(
    k: Annotated[int, "number of candidates, >= 1"] = 5,
    alpha: Annotated[float, "degeneration penalty weight, in [0, 1]"] = 0.6,
) -> Decoder:
    check(1 <= k <= MAX_CANDIDATES, f"decoder 'contrastive': k must be in 1..{MAX_CANDIDATES:,}, got {k}")
    check(0.0 <= alpha <= 1.0, f"decoder 'contrastive': alpha must be in [0, 1], got {alpha}")
    return ContrastiveSearch(k, alpha)


class ContrastiveSearch(Decoder):
    """Our own batched contrastive search; see the module docstring."""

    needs = "model"  # the look-ahead needs hidden states, not only logits: the HF backend runs it

    def __init__(self, k: int, alpha: float):
        self.k = k
        self.alpha = alpha

    def generate(
        self,
        model: Any,
        input_ids: "torch.Tensor",
        attention_mask: "torch.Tensor",
        *,
        max_new_tokens: int,
        eos_token_ids: Sequence[int],
        pad_token_id: int,
        rng: RowRNG | None = None,
    ) -> "torch.Tensor":
        """Continue left-padded prompts; return the new tokens [batch, <= max_new_tokens].

        A row that has emitted an EOS emits ``pad_token_id`` afterwards; the loop ends when every
        row has finished or after ``max_new_tokens`` steps. ``rng`` is unused (deterministic).
        """
        import torch

        with torch.inference_mode():
            return self._generate(model, input_ids, attention_mask, max_new_tokens, eos_token_ids, pad_token_id)

    def _generate(self, model, input_ids, attention_mask, max_new_tokens, eos_token_ids, pad_token_id):
        import torch

        batch, prompt_len = input_ids.shape
        if max_new_tokens <= 0:
            return input_ids.new_empty((batch, 0))
        state = _State.start(model, input_ids, attention_mask, max_new_tokens, self.k)
        schedule = self.schedule(batch, state.logits.shape[-1])
        rows = torch.arange(batch, device=input_ids.device)
        eos = torch.tensor(list(eos_token_ids), dtype=torch.long, device=input_ids.device)
        done = torch.zeros(batch, dtype=torch.bool, device=input_ids.device)
        new_tokens = []
        # done.all() waits for the device: off CPU check every few steps (finished rows emit padding).
        check_every = 1 if input_ids.device.type == "cpu" else SYNC_EVERY
        for step in range(max_new_tokens):
            n = state.length  # cached positions so far (prompt, padding included, + generated)
            probs = state.logits.softmax(dim=-1)
            k, alpha = schedule(probs)  # this step's candidates and penalty weight (per row, or one for all)
            # 1. Recall: the k most likely next tokens of every row, with their probabilities.
            top_probs, top_ids = probs.topk(k if isinstance(k, int) else int(k.max()), dim=-1)  # [B, k]
            # 2. Look ahead: run all k candidates of a row in one pass, as k sibling positions
            #    that each see the row's unpadded prefix and themselves, not each other.
            hidden = state.run_candidates(model, top_ids)  # [B, k, H], grows the cache to n + k
            # 3. Degeneration penalty: max cosine similarity with every real earlier position.
            unit = hidden / hidden.norm(dim=-1, keepdim=True)
            cosine = unit @ state.context[:, :n].transpose(1, 2)  # [B, k, n]
            cosine = cosine.masked_fill(~state.real[:, None, :n], torch.finfo(cosine.dtype).min)
            penalty = cosine.max(dim=-1).values  # [B, k]
            # 4. Re-rank: model confidence against the penalty (same expression as transformers).
            score = rerank(top_probs, penalty, k, alpha)
            best = score.max(dim=-1).indices  # [B]; ties go to the more likely candidate
            # 5. Commit: keep the chosen candidate's cache entry, hidden state and next logits.
            state.commit(model, best, hidden[rows, best], unit[rows, best])
            # 6. Emit, padding rows that finished earlier; a row finishes on any EOS token.
            token = top_ids[rows, best].masked_fill(done, pad_token_id)
            done |= torch.isin(token, eos)
            new_tokens.append(token)
            if (step + 1) % check_every == 0 and bool(done.all()):
                break
        return torch.stack(new_tokens, dim=1)


    def schedule(self, batch: int, vocab: int) -> Callable[["torch.Tensor"], tuple[Any, Any]]:
        """Per step, from the next-token probabilities [B, V]: (k, alpha) for every row.

        Contrastive search keeps both fixed (an int and a float). Adaptive contrastive search
        overrides this with a per-row schedule: a [B] tensor of k and a [B] float64 tensor of alpha.
        """
        k = min(self.k, vocab)
        return lambda probs: (k, self.alpha)


def rerank(top_probs: "torch.Tensor", penalty: "torch.Tensor", k: Any, alpha: Any) -> "torch.Tensor":
    """``(1 - alpha) * p - alpha * penalty`` per candidate [B, K]; with per-row k, candidates past a
    row's own k are excluded. Per-row weights are rounded to float32 first, as a Python float is when
    it multiplies a float32 tensor, so a row's scores equal those of a fixed alpha bit for bit."""
    if isinstance(alpha, float):
        return (1.0 - alpha) * top_probs - alpha * penalty
    import torch

    keep, drop = (1.0 - alpha).to(top_probs.dtype)[:, None], alpha.to(top_probs.dtype)[:, None]
    score = keep * top_probs - drop * penalty
    if not isinstance(k, int):
        beyond = torch.arange(score.shape[-1], device=score.device)[None, :] >= k[:, None]
        score = score.masked_fill(beyond, -torch.inf)
    return score


class _State:
    """What the loop carries between steps: the cache, its mask and the context hidden states."""

    def __init__(self, cache, context, real, logits, position, length):
        self.cache = cache
        self.context = context  # [B, prompt + max_new, H] unit-norm last-layer hidden states
        self.real = real  # [B, prompt + max_new] True where context holds a real (unpadded) state
        self.logits = logits  # [B, vocab] float32 next-token logits of the committed prefix
        self.position = position  # [B, 1] position id of the next token
        self.length = length  # positions in the cache and in context

    @classmethod
    def start(cls, model, input_ids, attention_mask, max_new_tokens, max_candidates) -> "_State":
        """Encode the prompts: cache, hidden states of every position, logits of the last."""
        import torch
        from transformers import DynamicCache

        from bench.runtime.inplace_cache import grow_in_place  # imports transformers

        _check_supported(model, input_ids.shape[1] + max_new_tokens)
        batch, prompt_len = input_ids.shape
        cache = DynamicCache()
        # Left padding: real tokens count from 0; pad positions get 1, as transformers' generate does.
        position = (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 1)
        out = model(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position,
            use_cache=True, output_hidden_states=True, logits_to_keep=1, **cache_kwargs(model, cache),
        )
        hidden, logits = out.hidden_states[-1], out.logits[:, -1].float()
        # The loop computes logits of the chosen candidate only, with the bare LM head; models whose
        # logits are more than that (soft-capped, scaled) would silently decode something else.
        if not torch.allclose(_head(model, hidden[:, -1]), logits, rtol=1e-4, atol=1e-4):
            raise BenchError(
                f"decoder 'contrastive': {type(model).__name__}'s logits are not its output embedding "
                "of the last hidden state; this model is not supported"
            )
        for layer in cache.layers:
            if type(layer).__name__ != "DynamicLayer":
                raise BenchError(
                    f"decoder 'contrastive': {type(model).__name__} uses a {type(layer).__name__} cache layer; "
                    "only plain full-attention caches are supported"
                )
        total = prompt_len + max_new_tokens
        grow_in_place(cache, total + max_candidates)
        context = hidden.new_zeros((batch, total, hidden.shape[-1]))
        context[:, :prompt_len] = hidden / hidden.norm(dim=-1, keepdim=True)
        real = torch.zeros((batch, total), dtype=torch.bool, device=input_ids.device)
        real[:, :prompt_len] = attention_mask.bool()
        return cls(cache, context, real, logits, position[:, -1:] + 1, prompt_len)

    def run_candidates(self, model, candidates: "torch.Tensor") -> "torch.Tensor":
        """Last-layer hidden states of k candidates per row, each one step past the prefix."""
        import torch

        batch, k = candidates.shape
        n = self.length
        dtype = self.context.dtype
        # Additive mask [B, 1, k, n + k]: the real prefix positions, then the k x k identity.
        allowed = torch.cat(
            [self.real[:, None, None, :n].expand(batch, 1, k, n),
             torch.eye(k, dtype=torch.bool, device=candidates.device).expand(batch, 1, k, k)],
            dim=-1,
        )
        mask = torch.zeros(allowed.shape, dtype=dtype, device=candidates.device)
        mask.masked_fill_(~allowed, torch.finfo(dtype).min)
        body = _body(model)
        return body(
            input_ids=candidates, attention_mask=mask, position_ids=self.position.expand(batch, k),
            use_cache=True, **cache_kwargs(body, self.cache),
        ).last_hidden_state

    def commit(self, model, best: "torch.Tensor", hidden: "torch.Tensor", unit: "torch.Tensor") -> None:
        """Keep candidate ``best`` of each row: move its key/value to position n, crop the rest."""
        import torch

        n = self.length
        rows = torch.arange(best.shape[0], device=best.device)
        for layer in self.cache.layers:
            layer.keep(n, rows, n + best)
        self.context[:, n] = unit
        self.real[:, n] = True
        self.logits = _head(model, hidden)
        self.position = self.position + 1
        self.length = n + 1


def _check_supported(model, total_length: int) -> None:
    """The candidate pass needs a separate body and head, and full attention that takes a 4D mask."""
    name = type(model).__name__
    config = model.config.get_text_config()
    layer_types = set(getattr(config, "layer_types", None) or ["full_attention"])
    window = getattr(config, "sliding_window", None)
    # Our 4D mask replaces the model's own, so a sliding window that matters would be ignored.
    if layer_types != {"full_attention"} or (window and total_length > window):
        raise BenchError(f"decoder 'contrastive': {name} uses sliding-window or non-attention layers; not supported")
    if _body(model) is model or model.get_output_embeddings() is None:
        raise BenchError(f"decoder 'contrastive': {name} has no separate base model and LM head")
    attention = model.config._attn_implementation
    if attention not in ("eager", "sdpa"):
        raise BenchError(
            f"decoder 'contrastive': attention implementation '{attention}' of {name} is not supported "
            "(the candidate pass needs 'eager' or 'sdpa', which take a custom 4D mask)"
        )


def _body(model):
    """The transformer without its LM head (``model.model`` for Llama, ``.transformer`` for GPT-2)."""
    return model.base_model


def _head(model, hidden: "torch.Tensor") -> "torch.Tensor":
    """Float32 next-token logits of last-layer hidden states [B, H]."""
    import torch

    head = model.get_output_embeddings()
    plain = type(head) is torch.nn.Linear and head.bias is None and head.weight.dtype == torch.float32
    if hidden.device.type == "cpu" and plain:
        # The same products as head(hidden), with the vocabulary as the long side: MKL reads the
        # [V, H] weight about 20% faster this way round at B=16 (GPT-2 head, 2 cores).
        return torch.mm(head.weight, hidden.T).T.contiguous()
    return head(hidden).float()
