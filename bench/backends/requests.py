"""Map a decoder to the sampling parameters of a serving engine (vLLM, OpenAI-compatible servers).

Engines take a fixed menu: temperature (0 = greedy), top-p, top-k and a seed per request. A
decoder runs on an engine only when it is exactly that menu: ``greedy``, ``temperature``,
``top-p``, ``top-k`` and ``entropy-matched`` in global mode (one calibrated temperature T*, read
from the decoder after :meth:`calibrate` ran on the HF backend). Everything else (contrastive
search, per-step entropy matching, a logit offset over the vocabulary) needs the HF backend's
own decoding loop and is refused at plan time, never silently run another way.

Both the temperature and the nucleus are applied in the same order as transformers' warpers
(temperature first), so the engine samples from the same distribution as the HF backend; the
random streams differ, so sampled texts differ between backends (the backend is part of the
run identity).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.errors import BenchError
from bench.registry import get_decoder
from bench.specs import DecoderSpec, build_decoder


@dataclass(frozen=True)
class SamplingRequest:
    """What one request asks the engine for, besides the prompt, the seed and the length."""

    temperature: float
    """0 means greedy (argmax)."""
    top_p: float = 1.0
    """Nucleus mass; 1 disables it."""
    top_k: int = -1
    """Candidates kept; -1 disables it (vLLM's convention)."""

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


ENGINE_DECODERS = ("greedy", "temperature", "top-p", "top-k", "entropy-matched (mode=global)")
"""What engine backends can run, for error messages."""


def refusal(spec: DecoderSpec, backend: str) -> str | None:
    """Why ``backend`` cannot run the decoder ``spec`` (one line), or None when it can.

    Judged from the registered decoder and an uncalibrated instance, so it works at plan time.
    """
    info = get_decoder(spec.name)
    kwargs = spec.kwargs
    if info.name == "entropy-matched":
        if kwargs.get("mode") != "global":
            return (f"decoder '{spec.label}' solves a temperature at every step, which --backend {backend} "
                    "cannot do; run it with --backend hf (or use mode=global)")
        return None
    if info.runs_on_hyperfit and backend == "openai":
        return (f"decoder '{spec.name}' runs on the --hyperfit checkpoint, which an OpenAI-compatible server "
                "does not load; serve that checkpoint and run 'greedy' on it, or use --backend hf or vllm")
    decoder = build_decoder(spec)
    try:
        sampling_request(decoder)
    except BenchError:
        return (f"decoder '{spec.name}' cannot run on --backend {backend} (engines run only "
                f"{', '.join(ENGINE_DECODERS)}); run it with --backend hf")
    return None


def check_decoders(specs: list[DecoderSpec], backend: str) -> None:
    """Raise the first refusal among ``specs`` as a one-line :class:`BenchError`."""
    for spec in specs:
        reason = refusal(spec, backend)
        if reason:
            raise BenchError(reason)


def sampling_request(decoder: Any) -> SamplingRequest:
    """The engine parameters equivalent to a built (and, if needed, calibrated) decoder."""
    from bench.decoding import Greedy, Sampler

    if type(decoder) is Greedy:
        return SamplingRequest(0.0)
    if type(decoder) is Sampler:
        return _from_warpers(decoder.warpers)
    if type(decoder).__name__ == "EntropyMatched" and getattr(decoder, "mode", None) == "global":
        t = getattr(decoder, "temperature", None)
        if t is None:
            raise RuntimeError("entropy-matched: calibrate() must run before its temperature is sent to an engine")
        return SamplingRequest(float(t))
    raise BenchError(f"{type(decoder).__name__} has no equivalent in engine sampling parameters")


def _from_warpers(warpers: list[Any]) -> SamplingRequest:
    from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    temperature, top_p, top_k = 1.0, 1.0, -1
    seen_filter = False
    for w in warpers:
        if type(w) is TemperatureLogitsWarper and not seen_filter:
            temperature *= float(w.temperature)
        elif type(w) is TopPLogitsWarper and not seen_filter:
            top_p, seen_filter = float(w.top_p), True
        elif type(w) is TopKLogitsWarper and not seen_filter:
            top_k, seen_filter = int(w.top_k), True
        else:
            # A temperature after a filter, two filters (engines renormalise between top-k and
            # top-p, transformers does not) or any other warper: no engine equivalent.
            raise BenchError(f"warper {type(w).__name__} has no engine equivalent in this position")
    return SamplingRequest(temperature, top_p, top_k)
