"""The HF backend's decoding loop for logits decoders, with a dynamic or a static (compiled) KV cache.

Prompts arrive left-padded. Each step runs the model on one new token per row, turns the float32
next-token logits into tokens with ``decoder.select``, and pads rows that have finished. Greedy is
token-equal to ``model.generate`` (tests/test_generation.py; on CUDA benchmarks/gpu_check.py).

Two ways to call the model:

* :class:`DynamicSteps` (default): transformers' ``DynamicCache`` grows by one position per step,
  written in place into buffers allocated after the prompt pass (``bench.runtime.inplace_cache``);
  the attention mask is a view of one preallocated buffer too, so nothing is copied to grow either.
* :class:`StaticSteps` (``compile=True``): a ``StaticCache`` of fixed length (prompt + new tokens)
  and a decode step with fixed shapes, so ``torch.compile`` can compile it once per batch shape and,
  on CUDA, replay it as a CUDA graph (``mode="reduce-overhead"``): one launch per step instead of
  hundreds. The prompt pass (``prefill``) runs uncompiled, as its length varies.

Host syncs: ``done.all()`` makes the host wait for the device. On CPU that costs nothing and the
loop checks every step; on an accelerator it checks every :data:`SYNC_EVERY` steps. Rows that
finished in between only emit padding, which :func:`bench.backends.hf.split_continuations` cuts
at the first EOS, so the records are the same.
"""

from __future__ import annotations

from bench.runtime.forward import cache_kwargs

from typing import TYPE_CHECKING, Any, Sequence

from bench.decoding import Decoder, RowRNG

if TYPE_CHECKING:
    import torch

SYNC_EVERY = 8
"""Steps between ``done.all()`` checks on an accelerator (every step on CPU)."""


class DynamicSteps:
    """Model calls on a growing ``DynamicCache``."""

    def __init__(self, model: Any, input_ids: "torch.Tensor", attention_mask: "torch.Tensor", max_new_tokens: int):
        from transformers import DynamicCache

        self.model, self.input_ids = model, input_ids
        self.prompt_len = input_ids.size(1)
        self.cache = DynamicCache(config=model.config)
        self.mask = self._mask_buffer(attention_mask, self.prompt_len + max_new_tokens, fill=1)
        # Positions count real tokens only; pad positions get 1, as transformers' generate does.
        self.positions = (attention_mask.cumsum(-1) - 1).masked_fill(attention_mask == 0, 1)
        self.length = self.prompt_len  # positions in the cache after the next call

    def _mask_buffer(self, attention_mask: "torch.Tensor", capacity: int, fill: int) -> "torch.Tensor":
        """The prompts' mask followed by ``fill`` up to ``capacity`` positions."""
        mask = attention_mask.new_full((attention_mask.size(0), capacity), fill)
        mask[:, :attention_mask.size(1)] = attention_mask
        return mask

    def prefill(self) -> "torch.Tensor":
        """Next-token logits [batch, vocab] (float32) after the prompts."""
        from bench.runtime.inplace_cache import grow_in_place

        logits = self._call(self.input_ids, self.positions)
        grow_in_place(self.cache, self.mask.size(1))  # later steps write in place instead of concatenating
        return logits

    def next(self, token: "torch.Tensor") -> "torch.Tensor":
        """Feed one token per row; the next-token logits."""
        self.positions = self.positions[:, -1:] + 1
        self.length += 1
        return self._call(token.unsqueeze(-1), self.positions)

    def _call(self, input_ids: "torch.Tensor", positions: "torch.Tensor") -> "torch.Tensor":
        out = self.model(input_ids=input_ids, attention_mask=self.mask[:, :self.length], position_ids=positions,
                         use_cache=True, logits_to_keep=1, **cache_kwargs(self.model, self.cache))
        return out.logits[:, -1, :].float()  # fp32, as generate uses


class StaticSteps(DynamicSteps):
    """Model calls on a ``StaticCache`` with fixed shapes; the one-token step compiled."""

    def __init__(self, model: Any, input_ids: "torch.Tensor", attention_mask: "torch.Tensor", max_new_tokens: int,
                 compile: bool = True):
        super().__init__(model, input_ids, attention_mask, max_new_tokens)
        self.cuda = input_ids.device.type == "cuda"
        needed = self.prompt_len + max_new_tokens
        capacity = -(-needed // STATIC_ROUNDING) * STATIC_ROUNDING
        limit = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
        if isinstance(limit, int) and capacity > limit:  # never longer than the model's context
            capacity = max(needed, limit)
        self.cache = static_cache(model, input_ids.size(0), capacity)
        # Positions not generated yet are masked (0) until their token exists; the buffer keeps its shape.
        self.mask = self._mask_buffer(attention_mask, capacity, fill=0)
        self.step = compiled_step(model) if compile else _one_step

    def prefill(self) -> "torch.Tensor":
        import torch

        cache_position = torch.arange(self.prompt_len, device=self.input_ids.device)
        out = self.model(input_ids=self.input_ids, attention_mask=self.mask, position_ids=self.positions,
                         cache_position=cache_position, use_cache=True, logits_to_keep=1,
                         **cache_kwargs(self.model, self.cache))
        return out.logits[:, -1, :].float()

    def next(self, token: "torch.Tensor") -> "torch.Tensor":
        import torch

        self.mask[:, self.length] = 1
        self.positions = self.positions[:, -1:] + 1
        cache_position = torch.full((1,), self.length, dtype=torch.long, device=token.device)
        self.length += 1
        if self.cuda:
            torch.compiler.cudagraph_mark_step_begin()  # the previous step's outputs may be overwritten
        # clone: a CUDA graph's output buffer is reused by its next replay
        return self.step(self.model, token.unsqueeze(-1), self.mask, self.positions, self.cache, cache_position).clone()


STATIC_ROUNDING = 256
"""The static cache's length is rounded up to a multiple of this, so batches whose prompts differ a
little in length share one compiled step (each new shape compiles again)."""

_COMPILED: dict[str, Any] = {}
_LAST_CACHE: dict[str, Any] = {}


def static_cache(model: Any, batch: int, capacity: int) -> Any:
    """A ``StaticCache`` for ``batch`` rows of ``capacity`` positions, reset; the previous batch's
    when the shape is the same (a CUDA graph keeps reading the same buffers: a new cache would
    record a new graph)."""
    from transformers import StaticCache

    key = (id(model), batch, capacity)
    if _LAST_CACHE.get("key") == key:
        cache = _LAST_CACHE["cache"]
        cache.reset()
        return cache
    cache = StaticCache(config=model.config, max_cache_len=capacity)
    _LAST_CACHE.update(key=key, cache=cache)
    return cache



def compiled_step(model: Any) -> Any:
    """The compiled one-token step (one per device type; torch.compile caches per model and shape)."""
    import torch

    kind = next(model.parameters()).device.type
    if kind not in _COMPILED:
        _COMPILED[kind] = torch.compile(_one_step, dynamic=False,
                                        mode="reduce-overhead" if kind == "cuda" else None)
    return _COMPILED[kind]


def _one_step(model: Any, input_ids: "torch.Tensor", mask: "torch.Tensor", positions: "torch.Tensor", cache: Any,
              cache_position: "torch.Tensor") -> "torch.Tensor":
    # cache_kwargs reads an lru-cached name: a constant to torch.compile after the first call.
    out = model(input_ids=input_ids, attention_mask=mask, position_ids=positions, cache_position=cache_position,
                use_cache=True, logits_to_keep=1, **cache_kwargs(model, cache))
    return out.logits[:, -1, :].float()


def decode_loop(
    model: Any,
    input_ids: "torch.Tensor",
    attention_mask: "torch.Tensor",
    decoder: Decoder,
    *,
    max_new_tokens: int,
    eos_token_ids: Sequence[int],
    pad_token_id: int,
    rng: RowRNG,
    compile: bool = False,
    static: bool | None = None,
    check_every: int | None = None,
) -> "torch.Tensor":
    """Continue left-padded prompts with ``decoder.select``; new tokens [batch, steps], pad after EOS.

    ``compile``: a static cache and a compiled step (:class:`StaticSteps`) instead of the dynamic
    cache; ``static`` (default: ``compile``) the static cache alone. ``check_every``: steps between
    checks that every row has finished (default: 1 on CPU, :data:`SYNC_EVERY` elsewhere).
    """
    import torch

    batch, device = input_ids.size(0), input_ids.device
    if max_new_tokens <= 0:
        return input_ids.new_zeros(batch, 0)
    if static if static is not None else compile:
        steps = StaticSteps(model, input_ids, attention_mask, max_new_tokens, compile=compile)
    else:
        steps = DynamicSteps(model, input_ids, attention_mask, max_new_tokens)
    check_every = check_every or (1 if device.type == "cpu" else SYNC_EVERY)
    eos = torch.tensor(list(eos_token_ids), device=device)
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    tokens = input_ids.new_full((batch, max_new_tokens), pad_token_id)
    logits = steps.prefill()
    for step in range(max_new_tokens):
        token = decoder.select(logits, rng).masked_fill(done, pad_token_id)  # finished rows only pad
        tokens[:, step] = token
        done |= torch.isin(token, eos)
        if step + 1 == max_new_tokens or ((step + 1) % check_every == 0 and bool(done.all())):
            break
        logits = steps.next(token)  # feed the chosen token back
    return tokens[:, :step + 1]
