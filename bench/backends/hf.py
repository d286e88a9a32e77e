"""The Hugging Face transformers backend: the reference implementation of every decoder.

Prompts are left-padded into a batch and continued with a KV cache. Our own loop (not
``model.generate``) is used so that every decoder, including those that need more than logits,
runs on the same code path; greedy is checked token for token against ``model.generate``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Sequence

from bench.backends.base import Capabilities, Continuation, refusal
from bench.backends.hf_decode import decode_loop
from bench.decoding import ENGINE_FEATURES, Declaration, Decoder, RowRNG
from bench.runtime import (cache_kwargs, check_weights, load_config, load_model, load_tokenizer, resolve_device,
                           resolve_dtype)

if TYPE_CHECKING:
    import torch


def eos_ids(tokenizer: Any, model: Any) -> list[int]:
    """Every id that ends a text: the generation config's EOS ids and the tokenizer's."""
    ids: set[int] = set()
    for source in (getattr(model, "generation_config", None), model.config):
        value = getattr(source, "eos_token_id", None) if source is not None else None
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return sorted(ids)


def split_continuations(tokens: "torch.Tensor", eos_token_ids: Sequence[int]) -> list[Continuation]:
    """Cut each row at its first EOS; rows without EOS ran to the length limit."""
    eos = set(int(e) for e in eos_token_ids)
    result = []
    for row in tokens.tolist():
        for i, t in enumerate(row):
            if t in eos:
                result.append(Continuation(row[:i], "eos"))
                break
        else:
            result.append(Continuation(row, "length"))
    return result


class HFBackend:
    """A loaded model and tokenizer that continue batches of prompts: runs every decoder."""

    name: ClassVar[str] = "hf"
    capabilities: ClassVar[Capabilities] = Capabilities(
        model_decoders=True, features=frozenset(ENGINE_FEATURES), one_filter=False)
    model_options: ClassVar[frozenset[str]] = frozenset(
        {"revision", "dtype", "device_map", "attn_implementation", "quantization", "chat_template"})

    def __init__(self, model_name: str, *, revision: str | None = None, device: str = "auto", dtype: str = "auto",
                 model: Any = None, tokenizer: Any = None, chat: Any = None, compile: bool = False):
        self.device = resolve_device(device)
        self.compile = compile  # logits decoders on a static cache with a compiled step (hf_decode)
        self.dtype = resolve_dtype(dtype, self.device)
        self.chat = chat
        """A :class:`bench.model_args.ChatTemplate` that renders every prompt, or None."""
        self.tokenizer = tokenizer or load_tokenizer(model_name, revision)
        self.model = model if model is not None else load_model(
            model_name, revision=revision, dtype=self.dtype, device=self.device
        )
        self.eos_token_ids = eos_ids(self.tokenizer, self.model)

    # -- plan time ---------------------------------------------------------------------------------
    @classmethod
    def version(cls, options: Any = None) -> str:
        import transformers

        return transformers.__version__

    @classmethod
    def run_dtype(cls, options: Any) -> str:
        return resolve_dtype(options.dtype, resolve_device(options.device))

    @classmethod
    def refusal(cls, decl: Declaration) -> str | None:
        return refusal(decl, cls.name, cls.capabilities)

    @classmethod
    def check_plan(cls, options: Any, decls: list[Declaration]) -> None:
        return None

    @classmethod
    def model_files(cls, options: Any, model: str) -> tuple[Any, Any]:
        files = load_tokenizer(model, options.revision), load_config(model, options.revision)
        check_weights(model, options.revision)  # pickle-only weights are refused before anything runs
        return files

    @classmethod
    def load(cls, options: Any, model: Any, hyperfit: str | None) -> "HFBackend":
        """``model`` (a ModelSpec, with its model arguments), or the hyperfitted checkpoint
        ``hyperfit`` over it (full model or PEFT adapter; loading arguments other than the dtype
        do not apply to a checkpoint)."""
        from bench.model_args import loading_kwargs

        device = resolve_device(options.device)
        dtype = resolve_dtype(dict(model.args).get("dtype", options.dtype), device)
        tokenizer = load_tokenizer(model.name, model.revision)
        if hyperfit is None:
            extra = loading_kwargs(model.args)
            weights = load_model(model.name, revision=model.revision, dtype=dtype, extra=extra,
                                 device=None if "device_map" in extra else device)
            if "device_map" in extra:
                device = str(weights.device)  # inputs go where the first layers were placed
        else:
            from bench.hyperfit.checkpoint import load_hyperfit

            weights, _ = load_hyperfit(hyperfit, model.name, dtype=dtype, device=device)
        return cls(model.name, revision=model.revision, device=device, dtype=dtype, model=weights.eval(),
                   tokenizer=tokenizer, chat=model.chat, compile=getattr(options, "compile", False))

    # -- run time ----------------------------------------------------------------------------------
    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        if self.chat is not None:
            return [self.chat.ids(self.tokenizer, t) for t in texts]
        return [self.tokenizer(t)["input_ids"] for t in texts]

    def decode(self, token_ids: Sequence[int]) -> str:
        return self.tokenizer.decode(token_ids, skip_special_tokens=True)

    def applied(self, decoder: Decoder, max_new_tokens: int) -> dict[str, Any]:
        """What this backend runs for ``decoder`` (recorded in the run header; see :mod:`bench.applied`)."""
        from bench.applied import logits_steps

        base = {"backend": "hf", "max_new_tokens": max_new_tokens, "stop_token_ids": list(self.eos_token_ids),
                "generate() called": False}
        if decoder.needs == "model":
            return {**base, "loop": f"{type(decoder).__name__}.generate, decbench's own, over the model's forward"}
        return {**base, "loop": "decbench's decode loop over the model's forward", "steps": logits_steps(decoder)}

    def continue_batch(
        self, prompts: Sequence[str], decoder: Decoder, *, max_new_tokens: int, seeds: Sequence[int]
    ) -> list[Continuation]:
        """Continue each prompt; ``seeds`` gives each row its own random stream."""
        import torch

        if self.chat is not None:  # the template's ids, left-padded like the plain path
            batch = self.tokenizer.pad({"input_ids": self.encode(prompts)}, padding=True, return_tensors="pt")
        else:
            batch = self.tokenizer(list(prompts), return_tensors="pt", padding=True)
        batch = batch.to(self.device)
        args = dict(
            max_new_tokens=max_new_tokens,
            eos_token_ids=self.eos_token_ids,
            pad_token_id=self.tokenizer.pad_token_id,
            rng=RowRNG(seeds),
        )
        with torch.inference_mode():
            if decoder.needs == "model":
                tokens = decoder.generate(self.model, batch["input_ids"], batch["attention_mask"], **args)
            else:
                tokens = decode_loop(self.model, batch["input_ids"], batch["attention_mask"], decoder, **args,
                                     compile=self.compile)
        return split_continuations(tokens.cpu(), self.eos_token_ids)
