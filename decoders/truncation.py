"""Truncation samplers that no engine parameter expresses, run as an :class:`EngineParams` transform.

Typical, epsilon and eta sampling are transformers' own ``TypicalLogitsWarper``,
``EpsilonLogitsWarper`` and ``EtaLogitsWarper``. ``generate(do_sample=True, ...)`` applies the
temperature *before* them (``_get_logits_processor``: temperature, top-k, top-p, min-p, typical,
epsilon, eta), so the truncation sees the tempered distribution. :class:`LogitsDecoder` applies a
transform *before* its temperature, so these decoders keep ``EngineParams.temperature`` at 1 and
put the temperature inside the transform, first, exactly as generate's warper list would:
``TemperatureLogitsWarper(t)`` (only when ``t != 1``, as generate) and then the truncation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bench.decoding import EngineParams, LogitsDecoder

if TYPE_CHECKING:
    import torch

WARPERS = {"typical": "TypicalLogitsWarper", "epsilon": "EpsilonLogitsWarper", "eta": "EtaLogitsWarper"}
"""Our decoder name -> the transformers warper class that pins it."""


class TemperedTruncation:
    """The per-step transform: temperature, then one of transformers' truncation warpers.

    A plain class (not a closure) so that decoders stay picklable for distributed executors;
    transformers is imported on first use, so that planning builds decoders without torch.
    """

    def __init__(self, kind: str, value: float, temperature: float):
        self.kind = kind
        self.value = value
        self.temperature = temperature
        self._chain: list[Any] | None = None

    def warpers(self) -> list[Any]:
        """transformers' warpers, in generate()'s order."""
        if self._chain is None:
            from transformers.generation import logits_process

            chain = [logits_process.TemperatureLogitsWarper(self.temperature)] if self.temperature != 1.0 else []
            self._chain = chain + [getattr(logits_process, WARPERS[self.kind])(self.value)]
        return self._chain

    def describe(self) -> str:
        """The transformers warpers this step chains, for the run header (:mod:`bench.applied`)."""
        from bench.applied import _describe

        return "transformers' " + ", then ".join(_describe(w) for w in self.warpers())

    def __call__(self, logits: "torch.Tensor") -> "torch.Tensor":
        for warp in self.warpers():
            logits = warp(None, logits)
        return logits


def tempered_truncation(kind: str, value: float, temperature: float) -> LogitsDecoder:
    """A logits decoder sampling from softmax(truncation(logits / temperature))."""
    return LogitsDecoder(EngineParams(temperature=1.0, transform=TemperedTruncation(kind, value, temperature)))
