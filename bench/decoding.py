"""The decoder contract: what a decoder is, what it needs from a backend, and its random streams.

A decoder turns next-token logits into next tokens, one row per record. It comes in one of two
kinds, declared by ``needs``:

* ``"logits"``: each step is a function of the next-token logits alone. Such a decoder is fully
  described by its :class:`EngineParams` (temperature, top-k, top-p, min-p, a fixed logit bias
  and an optional per-step logits transform), so a serving engine can run it from those values,
  and the HF backend runs :meth:`LogitsDecoder.select`, which applies the same values with
  transformers' own logits warpers (top-p with :mod:`bench.nucleus`, which needs no sort).
* ``"model"``: the decoder needs the model itself (contrastive search scores look-ahead hidden
  states); it implements :meth:`Decoder.generate` and only the HF backend runs it.

Backends decide from :class:`Declaration` alone (see :mod:`bench.backends.base`), at plan time,
before anything is calibrated or generated.

Sampling draws one uniform number per row and step from that record's own counter-based stream
(:mod:`bench.random_streams`), keyed by (seed, prompt id, sample index) and computed on the
logits' device for the whole batch, so a record's text does not depend on the batch it ran in, on
whether the run was interrupted, or (for the random part) on the device.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Sequence

from bench.random_streams import RowRNG  # noqa: F401  (decoders take the streams from here)

if TYPE_CHECKING:
    import torch

ENGINE_FEATURES = ("temperature", "top_k", "top_p", "min_p", "logit_bias", "transform")
"""Every engine parameter a decoder may use, in the order the HF backend applies them (after
``logit_bias`` and ``transform``, which come first); a backend names the ones it supports."""


@dataclass(frozen=True, eq=False)
class EngineParams:
    """A logits-only decoder's step, as the sampling parameters serving engines take.

    Filters follow transformers' order: bias, transform, temperature, then top-k, top-p, min-p.
    """

    temperature: float = 1.0
    """Softmax temperature; 0 means greedy (argmax, the other values then only shape the argmax)."""
    top_k: int = 0
    """Keep the k most likely tokens; 0 disables it."""
    top_p: float = 1.0
    """Keep the smallest set of tokens of mass >= top_p; 1 disables it."""
    min_p: float = 0.0
    """Keep tokens whose probability is >= min_p times the top token's; 0 disables it."""
    logit_bias: "torch.Tensor | None" = None
    """A fixed offset [vocab] added to the logits at every step (static reweighting)."""
    transform: "Callable[[torch.Tensor], torch.Tensor] | None" = None
    """A per-step function of the [batch, vocab] float logits, applied after the bias; for steps no
    fixed parameter expresses (a temperature solved per row, typical-set truncation)."""

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def features(self) -> frozenset[str]:
        """The parameters set away from their neutral value."""
        used = {
            "temperature": self.temperature != 1.0,
            "top_k": self.top_k > 0,
            "top_p": self.top_p < 1.0,
            "min_p": self.min_p > 0.0,
            "logit_bias": self.logit_bias is not None,
            "transform": self.transform is not None,
        }
        return frozenset(name for name, on in used.items() if on)


@dataclass(frozen=True)
class Declaration:
    """What a decoder needs from a backend, known at plan time (before any calibration)."""

    label: str
    """The decoder as the user wrote it, resolved (``top-p:p=0.95,t=1.0``), for messages."""
    needs: str
    """``logits`` (a function of the next-token logits) or ``model`` (needs the model itself)."""
    features: frozenset[str]
    """The :data:`ENGINE_FEATURES` its steps use (logits decoders only)."""
    on_hyperfit: bool = False
    """True when it decodes with the ``--hyperfit`` checkpoint instead of the base model."""
    calibrates: bool = False
    """True when it fits values on local model weights before decoding (:meth:`Decoder.calibrate`)."""


def record_seed(seed: int, prompt_id: str, sample_index: int) -> int:
    """A 63-bit seed for one record, stable across processes and platforms."""
    digest = hashlib.sha256(f"{seed}\x1f{prompt_id}\x1f{sample_index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def sample_from_probs(probs: "torch.Tensor", rng: RowRNG) -> "torch.Tensor":
    """Inverse-CDF sampling, one row per record: the token where the cumulative mass passes u."""
    import torch

    cdf = probs.double().cumsum(dim=-1)
    u = rng.uniform(cdf.device) * cdf[:, -1]
    index = torch.searchsorted(cdf, u.unsqueeze(-1)).squeeze(-1)
    return index.clamp(max=probs.size(-1) - 1)


class Decoder:
    """Base class of every decoder.

    ``needs = "logits"`` decoders derive from :class:`LogitsDecoder`. ``needs = "model"`` decoders
    implement :meth:`generate` against the model. Decoders with ``calibrates = True`` implement
    :meth:`calibrate`, which the generation step runs once per run before decoding.
    """

    needs: ClassVar[str] = "model"
    calibrates: ClassVar[bool] = False

    def features(self) -> frozenset[str]:
        """Engine parameters the steps use; known before calibration. Empty for model decoders."""
        return frozenset()

    def calibrate(self, base: Any, reference: Any, prompts: list[Any]) -> dict[str, Any]:
        """Fit plan-time values on the base and reference (hyperfitted) backends; returns what the
        run header records (e.g. the calibrated temperature)."""
        raise NotImplementedError(f"{type(self).__name__} declares no calibration")

    def select(self, logits: "torch.Tensor", rng: RowRNG) -> "torch.Tensor":
        """Next tokens [batch] from float32 next-token logits [batch, vocab] (logits decoders)."""
        raise NotImplementedError(f"{type(self).__name__} needs the model, not only the logits")

    def generate(
        self,
        model: Any,
        input_ids: "torch.Tensor",
        attention_mask: "torch.Tensor",
        *,
        max_new_tokens: int,
        eos_token_ids: Sequence[int],
        pad_token_id: int,
        rng: RowRNG,
    ) -> "torch.Tensor":  # pragma: no cover - overridden by model decoders
        """Continue left-padded prompts; return new tokens [batch, <= max_new_tokens], pad after EOS."""
        raise NotImplementedError(f"{type(self).__name__} is a logits decoder; backends run its select()")


class LogitsDecoder(Decoder):
    """A decoder whose every step is :class:`EngineParams` applied to the logits.

    ``params`` may be left ``None`` by decoders that calibrate; they then override
    :meth:`engine_params` (valid after calibration) and :meth:`features` (valid before).
    """

    needs: ClassVar[str] = "logits"

    def __init__(self, params: EngineParams | None = None):
        self.params = params
        self._warpers: list[Any] | None = None

    def features(self) -> frozenset[str]:
        return self.engine_params().features()

    def engine_params(self) -> EngineParams:
        """The step as engine parameters; raises before calibration where calibration sets them."""
        if self.params is None:
            raise RuntimeError(f"{type(self).__name__}: calibrate() must run before its engine parameters exist")
        return self.params

    def select(self, logits: "torch.Tensor", rng: RowRNG) -> "torch.Tensor":
        import torch

        params = self.engine_params()
        if params.logit_bias is not None:
            logits = logits + params.logit_bias.to(logits.device, logits.dtype)
        if params.transform is not None:
            logits = params.transform(logits)
        if params.greedy:
            return logits.argmax(dim=-1)
        warped = logits
        for warp in self.warpers():
            warped = warp(None, warped)
        probs = warped.softmax(dim=-1)
        token = sample_from_probs(probs, rng)
        # A temperature so small that logits / t overflows (t=1e-39) gives NaN probabilities; the
        # limit of sampling as t -> 0 is the argmax, so those rows take it (the draw is still made,
        # keeping every row's random stream in step).
        # (torch.where without testing broken.any() first: no host sync per step.)
        broken = ~torch.isfinite(probs).all(dim=-1)
        return torch.where(broken, logits.argmax(dim=-1), token)

    def warpers(self) -> list[Any]:
        """transformers' own logits warpers for the parameters, in ``generate()``'s order (a neutral
        value adds no warper: dividing by 1 or keeping all the mass changes nothing); top-p is our
        sort-free :class:`bench.nucleus.TopPFilter`, which keeps the same set of tokens."""
        if self._warpers is None:
            from transformers.generation.logits_process import (MinPLogitsWarper, TemperatureLogitsWarper,
                                                                TopKLogitsWarper)

            from bench.nucleus import TopPFilter

            p, used = self.engine_params(), self.engine_params().features()
            self._warpers = (([TemperatureLogitsWarper(p.temperature)] if "temperature" in used else [])
                             + ([TopKLogitsWarper(p.top_k)] if "top_k" in used else [])
                             + ([TopPFilter(p.top_p)] if "top_p" in used else [])
                             + ([MinPLogitsWarper(p.min_p)] if "min_p" in used else []))
        return self._warpers


class Greedy(LogitsDecoder):
    """Argmax of the logits."""

    def __init__(self) -> None:
        super().__init__(EngineParams(temperature=0.0))
