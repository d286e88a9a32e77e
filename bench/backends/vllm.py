"""The vLLM backend: the offline ``vllm.LLM`` engine with one ``SamplingParams`` per record.

Prompts are tokenized with the model's HF tokenizer and given to vLLM as token ids, so both
backends continue exactly the same ids; every record's request carries its own seed
(``record_seed``), so sampled records are reproducible and do not depend on batching. Decoders
run from their own :class:`bench.decoding.EngineParams` (temperature, top-k, top-p, min-p; T* of
entropy-matched in global mode is calibrated on the HF backend before the run). Decoders that
use a logit bias or a per-step transform, or need the model itself, are refused at plan time from
their declaration (``--backend hf`` runs them).

greedy-hyperfit: a PEFT adapter runs as a ``LoRARequest`` on the base engine (started with LoRA
enabled whenever ``--hyperfit`` is an adapter, so base and adapter runs share one engine); a full
checkpoint is loaded as the engine's model.

vLLM is imported only inside this backend's methods: planning and tests of the request mapping
work without it.

Not yet run against a real vLLM (none could be installed where this was written): check first
the ``llm.generate(inputs, params_list, lora_request=...)`` call, the ``{"prompt_token_ids": ...}``
input form, and whether returned ``token_ids`` include the EOS id (handled either way);
``tests/test_backends.py``'s gpu-marked tests do.
"""

from __future__ import annotations

import gc
import json
from pathlib import Path
from typing import Any, ClassVar, Sequence

from bench.backends.base import Capabilities, Continuation, refusal
from bench.backends.hf import eos_ids
from bench.decoding import Declaration, EngineParams
from bench.errors import BenchError
from bench.runtime import check_weights, load_config, load_tokenizer

_ENGINE: dict[str, Any] = {}
"""The one live engine (vLLM takes a fixed share of GPU memory per engine): key -> ``LLM``."""


def is_adapter(path: str | None) -> bool:
    return bool(path) and (Path(path) / "adapter_config.json").is_file()


def gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except ImportError:  # pragma: no cover - torch is a dependency
        return 0


def check_resources(tensor_parallel_size: int, gpu_memory_utilization: float, gpus: int) -> None:
    """One-line errors for a tensor-parallel size the machine cannot hold, or a bad memory fraction."""
    if tensor_parallel_size < 1:
        raise BenchError(f"--tensor-parallel-size must be >= 1, got {tensor_parallel_size}")
    if not 0 < gpu_memory_utilization <= 1:
        raise BenchError(f"--gpu-memory-utilization must be in (0, 1], got {gpu_memory_utilization}")
    if tensor_parallel_size > gpus:
        raise BenchError(f"--backend vllm with --tensor-parallel-size {tensor_parallel_size} needs "
                         f"{tensor_parallel_size} CUDA GPU(s); this machine has {gpus}")


def sampling_kwargs(params: EngineParams, *, seed: int, max_new_tokens: int, stop_token_ids: Sequence[int]) -> dict[str, Any]:
    """Keyword arguments of ``vllm.SamplingParams`` for one record."""
    kwargs: dict[str, Any] = {"n": 1, "max_tokens": max_new_tokens, "temperature": params.temperature,
                              "stop_token_ids": list(stop_token_ids), "skip_special_tokens": True}
    if not params.greedy:
        kwargs["seed"] = int(seed) % (1 << 63)
        if params.top_p < 1.0:
            kwargs["top_p"] = params.top_p
        if params.top_k > 0:
            kwargs["top_k"] = params.top_k
        if params.min_p > 0:
            kwargs["min_p"] = params.min_p
    return kwargs


def split_output(token_ids: Sequence[int], finish_reason: str | None, eos: set[int]) -> Continuation:
    """A vLLM completion as a Continuation: EOS excluded, ``eos`` or ``length``."""
    ids = list(token_ids)
    for i, t in enumerate(ids):
        if t in eos:
            return Continuation(ids[:i], "eos")
    return Continuation(ids, "length" if finish_reason == "length" else "eos")


class VLLMBackend:
    """Continues batches of prompts with a vLLM engine (optionally through a LoRA adapter)."""

    name: ClassVar[str] = "vllm"
    capabilities: ClassVar[Capabilities] = Capabilities(
        model_decoders=False, features=frozenset({"temperature", "top_k", "top_p", "min_p"}))
    model_options: ClassVar[frozenset[str]] = frozenset({"revision", "dtype"})

    def __init__(self, model_name: str, *, revision: str | None = None, dtype: str = "auto",
                 tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.9, lora_path: str | None = None,
                 enable_lora: bool = False):
        self.device = "cuda"
        self.tokenizer = load_tokenizer(model_name, revision)
        self.llm = _engine(model_name, revision=revision, dtype=dtype, tensor_parallel_size=tensor_parallel_size,
                           gpu_memory_utilization=gpu_memory_utilization, enable_lora=enable_lora or bool(lora_path),
                           lora_rank=_lora_rank(lora_path))
        self.lora = _lora_request(lora_path) if lora_path else None
        # The same stop ids as the HF backend: the tokenizer's EOS and the model's (generation) config.
        self.eos_token_ids = eos_ids(self.tokenizer, _ConfigHolder(model_name, revision))

    # -- plan-time hooks -------------------------------------------------------------------------
    @classmethod
    def version(cls, options: Any = None) -> str:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("vllm")
        except PackageNotFoundError:
            raise BenchError("--backend vllm needs vLLM, which is not installed here: pip install 'decbench[vllm]' "
                             "on a CUDA machine, or use --backend hf") from None

    @classmethod
    def run_dtype(cls, options: Any) -> str:
        return "bfloat16" if options.dtype == "auto" else options.dtype

    @classmethod
    def refusal(cls, decl: Declaration) -> str | None:
        return refusal(decl, cls.name, cls.capabilities)

    @classmethod
    def check_plan(cls, options: Any, decls: list[Declaration]) -> None:
        check_resources(options.tensor_parallel_size, options.gpu_memory_utilization, gpu_count())
        cls.version(options)  # installed?

    @classmethod
    def model_files(cls, options: Any, model: str) -> tuple[Any, Any]:
        files = load_tokenizer(model, options.revision), load_config(model, options.revision)
        check_weights(model, options.revision)  # vLLM would load pickle weights too
        return files

    @classmethod
    def load(cls, options: Any, model: Any, hyperfit: str | None) -> "VLLMBackend":
        from dataclasses import replace

        scoped = replace(options, dtype=dict(model.args).get("dtype", options.dtype))
        common = dict(revision=model.revision, dtype=cls.run_dtype(scoped),
                      tensor_parallel_size=options.tensor_parallel_size,
                      gpu_memory_utilization=options.gpu_memory_utilization)
        if hyperfit and not is_adapter(hyperfit):
            return cls(hyperfit, **common)  # a full hyperfitted checkpoint is the engine's model
        return cls(model.name, lora_path=hyperfit, enable_lora=is_adapter(options.hyperfit), **common)

    # -- the backend interface -------------------------------------------------------------------
    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.tokenizer(t)["input_ids"] for t in texts]

    def decode(self, token_ids: Sequence[int]) -> str:
        return self.tokenizer.decode(token_ids, skip_special_tokens=True)

    def continue_batch(self, prompts: Sequence[str], decoder: Any, *, max_new_tokens: int,
                       seeds: Sequence[int]) -> list[Continuation]:
        from vllm import SamplingParams

        params = decoder.engine_params()
        requests = [SamplingParams(**sampling_kwargs(params, seed=s, max_new_tokens=max_new_tokens,
                                                     stop_token_ids=self.eos_token_ids)) for s in seeds]
        inputs = [{"prompt_token_ids": ids} for ids in self.encode(prompts)]
        outputs = self.llm.generate(inputs, requests, use_tqdm=False, lora_request=self.lora)
        eos = set(self.eos_token_ids)
        return [split_output(o.outputs[0].token_ids, o.outputs[0].finish_reason, eos) for o in outputs]


class _ConfigHolder:
    """The ``.config`` and ``.generation_config`` that :func:`eos_ids` reads, without loading weights."""

    def __init__(self, model_name: str, revision: str | None):
        from transformers import GenerationConfig

        self.config = load_config(model_name, revision)
        try:
            self.generation_config = GenerationConfig.from_pretrained(model_name, revision=revision)
        except OSError:  # no generation_config.json: the model config's EOS is used
            self.generation_config = None


def _engine(model: str, *, revision: str | None, dtype: str, tensor_parallel_size: int,
            gpu_memory_utilization: float, enable_lora: bool, lora_rank: int) -> Any:
    """The engine for these settings, replacing (and freeing) any other live engine."""
    key = json.dumps([model, revision, dtype, tensor_parallel_size, gpu_memory_utilization, enable_lora])
    if key in _ENGINE:
        return _ENGINE[key]
    if _ENGINE:
        _ENGINE.clear()  # vLLM reserves its memory share up front: drop the old engine first
        gc.collect()
        try:
            import torch

            torch.cuda.empty_cache()
        except Exception:  # pragma: no cover - best effort
            pass
    from vllm import LLM

    kwargs: dict[str, Any] = dict(model=model, revision=revision, dtype=dtype, seed=0,
                                  tensor_parallel_size=tensor_parallel_size,
                                  gpu_memory_utilization=gpu_memory_utilization)
    if enable_lora:
        # vLLM accepts a fixed menu of ranks (8, 16, 32, ...): round the adapter's rank up to one.
        kwargs.update(enable_lora=True, max_loras=1, max_lora_rank=1 << max(3, (max(lora_rank, 1) - 1).bit_length()))
    try:
        _ENGINE[key] = LLM(**kwargs)
    except (OSError, ValueError) as exc:
        raise BenchError(f"vLLM cannot load '{model}': {str(exc).strip().splitlines()[0]}") from None
    return _ENGINE[key]


def _lora_rank(path: str | None) -> int:
    if not is_adapter(path):
        return 0
    return int(json.loads((Path(path) / "adapter_config.json").read_text()).get("r", 8))


def _lora_request(path: str) -> Any:
    from vllm.lora.request import LoRARequest

    return LoRARequest("hyperfit", 1, str(Path(path).resolve()))
