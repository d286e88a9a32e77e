"""Generation backends: ``--backend`` names, and the plan-time questions every backend answers.

Each backend implements :class:`bench.backends.base.Backend`. Planning goes through the three
functions here and never names a backend: which decoders it can run (from their declarations),
its version and dtype for the run identity, and the tokenizer and config for prompt-length
checks. Classes are imported lazily: listing backends must not import torch, vllm or httpx.
"""

from __future__ import annotations

import importlib
from typing import Any

from bench.errors import BenchError

BACKENDS: dict[str, str] = {
    "hf": "bench.backends.hf:HFBackend",
    "vllm": "bench.backends.vllm:VLLMBackend",
    "openai": "bench.backends.openai:OpenAIBackend",
    "fake": "bench.backends.fake:FakeBackend",
}
"""``--backend`` name -> ``module:Class``."""


def backend_class(name: str) -> Any:
    """The class registered under ``name``; a one-line error for unknown names."""
    if name not in BACKENDS:
        raise BenchError(f"unknown backend '{name}' (choose from {', '.join(BACKENDS)})")
    module, _, cls = BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def plan_backend(options: Any, decoders: list[Any], skipped: list[tuple[str, str]]) -> tuple[list[Any], str, str]:
    """Plan-time checks of ``options.backend``: (decoders to run, backend version, dtype of the run).

    A decoder the backend cannot run is refused with one line when it was named; under
    ``--decoder all`` it is moved to ``skipped`` with the reason instead.
    """
    from bench.specs import declare

    cls = backend_class(getattr(options, "backend", "hf"))
    explicit = {d.partition(":")[0].strip().lower().replace("_", "-") for d in options.decoders}
    keep = []
    for spec in decoders:
        reason = cls.refusal(declare(spec))
        if reason is None:
            keep.append(spec)
        elif spec.name in explicit:
            raise BenchError(reason)
        else:
            skipped.append((spec.name, reason))
    cls.check_plan(options, [declare(s) for s in keep])
    return keep, cls.version(options), cls.run_dtype(options)


def model_files(options: Any, model: str) -> tuple[Any, Any]:
    """(tokenizer, config) of ``model`` for plan-time checks, as ``options.backend`` sees it."""
    return backend_class(getattr(options, "backend", "hf")).model_files(options, model)


def load_backend(options: Any, model: Any, hyperfit: str | None, kind: str | None = None) -> Any:
    """The backend ``kind`` (default ``options.backend``) for ``model`` (a :class:`bench.specs.ModelSpec`,
    or a bare name taking ``--revision``) and a hyperfit checkpoint."""
    if isinstance(model, str):
        from bench.specs import ModelSpec

        model = ModelSpec(model, options.revision)
    return backend_class(kind or options.backend).load(options, model, hyperfit)
