"""Plan-time checks of ``bench run`` that must fail before anything is generated or written.

Each check here was once a failure found only after hours of work (a pickle-only second model
after the first model's runs, MAUVE with too few references after generating everything) or an
option silently ignored (a NaN memory fraction on the HF backend).
"""

from __future__ import annotations

import math
from typing import Any

from bench.errors import BenchError
from bench.runtime.devices import check_device


def check_options(options: Any) -> None:
    """Numeric options that have no valid reading, whatever the backend (validated everywhere)."""
    from bench.outputs import writable_dir

    check_device(options.device)
    tps, gmu = options.tensor_parallel_size, options.gpu_memory_utilization
    if not isinstance(tps, int) or tps < 1:
        raise BenchError(f"--tensor-parallel-size must be >= 1, got {tps}")
    if gmu is not None and not (isinstance(gmu, (int, float)) and math.isfinite(gmu) and 0 < gmu <= 1):
        raise BenchError(f"--gpu-memory-utilization must be in (0, 1], got {gmu}")
    kv = getattr(options, "kv_cache_gib", None)
    if kv is not None and not (isinstance(kv, (int, float)) and math.isfinite(kv) and kv > 0):
        raise BenchError(f"--kv-cache-gib must be > 0, got {kv}")
    if options.backend != "vllm" and (tps != 1 or gmu is not None or kv is not None
                                      or getattr(options, "enforce_eager", False)):
        raise BenchError("--tensor-parallel-size, --gpu-memory-utilization, --kv-cache-gib and --enforce-eager "
                         "apply to --backend vllm only")
    if options.generation.log_probs and options.backend == "fake":
        raise BenchError("--log-probs needs the model's weights (traces come from the HF model); "
                         "the fake backend has none")
    if options.generation.log_probs_from == "server" and options.backend != "openai":
        raise BenchError(f"--log-probs-from server takes the traces from an OpenAI-compatible server's answer; "
                         f"--backend {options.backend} computes them with the model (--log-probs alone)")
    if options.generation.log_probs and options.backend == "openai" and options.generation.log_probs_from == "model":
        from bench.model_args import parse_model
        from bench.runtime import load_config

        for model in options.models:  # traces are the local HF model's: it must load here
            name = parse_model(model).name
            try:
                load_config(name, options.revision)
            except BenchError:
                raise BenchError(f"--log-probs computes traces with the local weights of --model, but '{name}' "
                                 "does not load here; pass a local copy, or --log-probs-from server") from None
    writable_dir(options.out, "--out")


def check_suites_for_scores(options: Any, suites: list[tuple[Any, list[Any]]]) -> None:
    """``--score mauve`` needs enough references in every suite, known before generating."""
    if "mauve" not in {s.strip().lower() for s in options.scores}:
        return
    from bench.scorers.mauve import MIN_SAMPLES

    for spec, prompts in suites:
        refs = sum(1 for p in prompts if p.reference)
        if refs < MIN_SAMPLES:
            raise BenchError(f"--score mauve needs at least {MIN_SAMPLES} prompts with a reference; suite "
                             f"'{spec.name if spec.name != 'jsonl' else spec.source}' has {refs} in this subset")


def check_models(options: Any) -> None:
    """Every ``--model`` loads under the pickle rule, checked for all of them before the first runs."""
    if options.backend in ("openai", "fake"):  # the server loads the weights, or nothing does
        return
    from bench.model_args import parse_model
    from bench.runtime import check_weights

    for text in options.models:
        request = parse_model(text)
        check_weights(request.name, request.get("revision") or options.revision)
