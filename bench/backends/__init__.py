"""Generation backends: a small registry from ``--backend`` names to their classes.

A backend has ``.device``, ``.encode(texts)``, ``.decode(ids)`` and
``.continue_batch(prompts, decoder, *, max_new_tokens, seeds)`` (see :mod:`bench.backends.hf`),
plus two class-level hooks used at plan time:

* ``version(options)``: the library or protocol version that goes into the run identity;
* ``check_plan(options, decoders)``: every check that can fail on user input (the decoder is one
  this backend cannot run, the server or GPUs are not there), raising :class:`BenchError`.

Classes are imported lazily: listing backends must not import torch, vllm or httpx.
"""

from __future__ import annotations

import importlib
from typing import Any

from bench.errors import BenchError

BACKENDS: dict[str, str] = {
    "hf": "bench.backends.hf:HFBackend",
    "vllm": "bench.backends.vllm:VLLMBackend",
    "openai": "bench.backends.openai:OpenAIBackend",
}
"""``--backend`` name -> ``module:Class``."""


def backend_class(name: str) -> Any:
    """The class registered under ``name``; a one-line error for unknown names."""
    if name not in BACKENDS:
        raise BenchError(f"unknown backend '{name}' (choose from {', '.join(BACKENDS)})")
    module, _, cls = BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def backend_version(name: str, options: Any = None) -> str:
    """The version string recorded as ``RunSpec.backend_version`` for runs of this backend."""
    cls = backend_class(name)
    if name == "hf":
        return cls.version()
    return cls.version(options)


def plan_backend(options: Any, decoders: list[Any], skipped: list[tuple[str, str]],
                 dtype: str) -> tuple[list[Any], str, str]:
    """Plan-time checks of ``options.backend``: (decoders to run, backend version, dtype of the run).

    Decoders the backend cannot run are refused with one line when named explicitly; under
    ``--decoder all`` they are moved to ``skipped`` with the reason instead.
    """
    name = getattr(options, "backend", "hf")
    cls = backend_class(name)
    if name == "hf":
        return decoders, cls.version(), dtype
    from bench.backends.requests import refusal

    if any(d.strip().lower() == "all" for d in options.decoders):
        explicit = {d.partition(":")[0].strip().lower().replace("_", "-") for d in options.decoders}
        keep = []
        for spec in decoders:
            reason = refusal(spec, name) if spec.name not in explicit else None
            if reason:
                skipped.append((spec.name, reason))
            else:
                keep.append(spec)
        decoders = keep
    cls.check_plan(options, decoders)
    return decoders, cls.version(options), cls.run_dtype(options, dtype)


def model_files(options: Any, model: str) -> tuple[Any, Any]:
    """(tokenizer, config) of ``model`` for plan-time checks.

    A model behind an OpenAI-compatible server may not exist locally: then both are None and the
    prompt-length check is left to the server. A model loaded here must not be pickle weights only
    (see :func:`bench.runtime.check_weights`): refused now, before anything is generated.
    """
    from bench.runtime import check_weights, load_config, load_tokenizer

    if getattr(options, "backend", "hf") == "openai":
        try:
            return load_tokenizer(model, options.revision), load_config(model, options.revision)
        except BenchError:
            return None, None
    files = load_tokenizer(model, options.revision), load_config(model, options.revision)
    check_weights(model, options.revision)
    return files


def load_backend(options: Any, model: str, hyperfit: str | None) -> Any:
    """Construct the non-HF backend chosen by ``options.backend`` for ``model`` (and a hyperfit checkpoint)."""
    return backend_class(options.backend).from_options(options, model, hyperfit)
