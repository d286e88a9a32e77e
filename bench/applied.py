"""What a backend really applies for a decoder, recorded in the run header (issue 25, part 1).

The tools our users know drop or override sampling settings silently (a model's
``generation_config`` defaults applied behind the user's back, a setting an engine ignores). A
decbench run header says, under ``resolved``:

- ``applied``: the backend's own account of the decoding step: the HF backend's chain of logits
  steps in order (bias, transform, transformers' warpers, the draw), the ``SamplingParams`` sent to
  vLLM, the body of an ``openai`` request (no key is ever in it), or, for a model decoder, the
  decoding loop that runs it;
- ``model_sampling_defaults``: the sampling settings the model's ``generation_config.json`` ships
  (temperature, top_p, top_k, repetition_penalty, ...), with ``"applied": false``: decbench never
  applies them, and ``bench run`` prints one notice line when a model ships any.

A setting a backend would drop is refused at plan time (:func:`bench.backends.base.refusal`), so
what is recorded here is what ran. The record's seed varies per record and is written as such.
"""

from __future__ import annotations

import json
from typing import Any

PER_RECORD_SEED = "the record's seed"
SAMPLING_KEYS = ("do_sample", "temperature", "top_p", "top_k", "min_p", "typical_p", "epsilon_cutoff",
                 "eta_cutoff", "repetition_penalty", "no_repeat_ngram_size", "num_beams", "length_penalty",
                 "penalty_alpha")
"""``generation_config`` fields that change what ``generate()`` would pick."""


def model_sampling_defaults(name: str, revision: str | None = None) -> dict[str, Any]:
    """The sampling fields of a local (or cached) model's ``generation_config.json``; {} if none."""
    from bench.runtime import model_dir

    try:
        folder = model_dir(name, revision)
    except Exception:  # a served or fake model's name: there is no folder to read
        return {}
    path = folder / "generation_config.json" if folder is not None else None
    if path is None or not path.is_file():
        return {}
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(config, dict):
        return {}
    return {k: config[k] for k in SAMPLING_KEYS if k in config}


def defaults_notice(model: str, defaults: dict[str, Any]) -> str:
    shown = ", ".join(f"{k}={v}" for k, v in defaults.items())
    return (f"{model} ships sampling defaults in its generation_config.json ({shown}); decbench does not "
            "apply them: each decoder runs with its own settings only (recorded in each run header)")


def applied_settings(backend: Any, decoder: Any, max_new_tokens: int) -> dict[str, Any]:
    """The backend's account of what it runs for ``decoder`` (see the module docstring)."""
    describe = getattr(backend, "applied", None)
    if describe is not None:
        return describe(decoder, max_new_tokens)
    return {"backend": getattr(backend, "name", type(backend).__name__), "decoder": type(decoder).__name__}


def logits_steps(decoder: Any) -> list[str]:
    """A logits decoder's steps in the order the HF backend applies them (:meth:`LogitsDecoder.select`)."""
    own = getattr(decoder, "steps", None)
    if own is not None:
        return own()
    params = decoder.engine_params()
    steps = []
    if params.logit_bias is not None:
        steps.append(f"add a fixed logit bias over {params.logit_bias.numel()} tokens")
    if params.transform is not None:
        steps.append(f"transform: {_describe(params.transform)}")
    if params.greedy:
        return steps + ["argmax"]
    steps += [_describe(w) for w in decoder.warpers()]
    return steps + [f"softmax, then one draw (inverse CDF) from {PER_RECORD_SEED}"]


def _describe(step: Any) -> str:
    """``TopKLogitsWarper(top_k=50)``: a step's class and its numeric settings."""
    if hasattr(step, "describe"):
        return step.describe()
    fields = {k: v for k, v in vars(step).items() if not k.startswith("_") and isinstance(v, (int, float, str))}
    return f"{type(step).__name__}(" + ", ".join(f"{k}={v}" for k, v in fields.items()) + ")"
