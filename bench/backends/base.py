"""The backend contract: what every generation backend implements, and what it returns.

A backend continues batches of prompts with a decoder. Planning asks it questions before any
model is loaded (its version, the dtype a run records, whether it can run each decoder), so that
everything that can fail on user input fails with one line before anything is written.

Whether a backend can run a decoder is decided from the decoder's :class:`Declaration` alone
(``needs`` and the engine ``features`` it uses), never from its class or name: a backend states
what it supports in :class:`Capabilities`, and :func:`refusal` compares.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, Sequence

from bench.decoding import Decoder, Declaration


@dataclass
class Continuation:
    """What a backend returns for one record."""

    token_ids: list[int] | None
    """New tokens, EOS excluded; None when the backend cannot know them (a server that returns no
    ids): the record then says so, and token-level metrics show as unavailable."""
    finish_reason: str
    """``eos`` when the model ended the text, ``length`` at ``max_new_tokens``."""
    text: str | None = None
    """The text, when the backend has it already (a server's answer); else decoded from the ids."""
    num_tokens: int | None = None
    """Token count, when it is not ``len(token_ids)`` (a server that returns no ids)."""
    trace: dict | None = None
    """The per-token trace the backend itself returned (``--log-probs-from server``), else None."""


@dataclass(frozen=True)
class Capabilities:
    """What a backend can run, compared with each decoder's :class:`Declaration`."""

    model_decoders: bool
    """Runs decoders that need the model itself (``needs = "model"``)."""
    features: frozenset[str]
    """Engine parameters it applies (see :data:`bench.decoding.ENGINE_FEATURES`)."""
    hyperfit: bool = True
    """Can load a ``--hyperfit`` checkpoint for the decoders that decode with it."""
    calibration: bool = True
    """Decoders that calibrate (on the local weights, with the HF backend) may run on it."""
    one_filter: bool = True
    """At most one of top-k / top-p / min-p per decoder (engines renormalise between filters,
    transformers does not, so a combination would sample from another distribution)."""


FILTERS = frozenset({"top_k", "top_p", "min_p"})


def refusal(decl: Declaration, backend: str, caps: Capabilities, can_run_it: str = "--backend hf") -> str | None:
    """Why ``backend`` cannot run the declared decoder (one line naming who can), or None."""
    if decl.needs == "model" and not caps.model_decoders:
        return (f"decoder '{decl.label}' needs the model itself, not only its logits, which --backend {backend} "
                f"cannot give; run it with {can_run_it}")
    if decl.calibrates and not caps.calibration:
        return (f"decoder '{decl.label}' calibrates on local model weights, which --backend {backend} does not "
                f"have; run it with {can_run_it}")
    if decl.on_hyperfit and not caps.hyperfit:
        return (f"decoder '{decl.label}' runs on the --hyperfit checkpoint, which --backend {backend} does not "
                "load; serve that checkpoint and run 'greedy' on it, or use --backend hf or vllm")
    missing = sorted(decl.features - caps.features)
    if decl.needs == "logits" and missing:
        return (f"decoder '{decl.label}' uses {', '.join(missing)}, which --backend {backend} cannot apply; "
                f"run it with {can_run_it}")
    if decl.needs == "logits" and caps.one_filter and len(decl.features & FILTERS) > 1:
        return (f"decoder '{decl.label}' combines {' and '.join(sorted(decl.features & FILTERS))}, which "
                f"--backend {backend} applies in another order; run it with {can_run_it}")
    return None


class Backend(Protocol):
    """A generation backend. Plan-time methods are classmethods: no model is loaded for them."""

    name: ClassVar[str]
    """The ``--backend`` name."""
    capabilities: ClassVar[Capabilities]
    """What it can run; :meth:`refusal` compares decoders against it."""
    model_options: ClassVar[frozenset[str]]
    """The model arguments (:data:`bench.model_args.MODEL_ARGS`) it applies, plus ``chat_template``
    when it renders chat templates; any other is refused at plan time."""
    device: str
    """Where it runs, as recorded in the run header (``cpu``, ``cuda:0``, ``remote:URL``)."""

    @classmethod
    def version(cls, options: Any) -> str:
        """The library or protocol version that goes into the run identity."""

    @classmethod
    def run_dtype(cls, options: Any) -> str:
        """The dtype a run records (``--dtype`` resolved for this backend)."""

    @classmethod
    def refusal(cls, decl: Declaration) -> str | None:
        """Why this backend cannot run the declared decoder, or None."""

    @classmethod
    def check_plan(cls, options: Any, decls: list[Declaration]) -> None:
        """Every other plan-time check that can fail on user input; raises BenchError."""

    @classmethod
    def model_files(cls, options: Any, model: str) -> tuple[Any, Any]:
        """(tokenizer, config) for prompt-length checks; (None, None) where they are not local."""

    @classmethod
    def load(cls, options: Any, model: Any, hyperfit: str | None) -> "Backend":
        """The backend for ``model`` (a :class:`bench.specs.ModelSpec`: name, revision, model
        arguments, chat template), decoding with the ``hyperfit`` checkpoint when given."""

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Prompt token ids (used to order work by length, and by calibration)."""

    def decode(self, token_ids: Sequence[int]) -> str:
        """The text of continuation ids, as every backend decodes them."""

    def continue_batch(self, prompts: Sequence[str], decoder: Decoder, *, max_new_tokens: int,
                       seeds: Sequence[int]) -> list[Continuation]:
        """Continue each prompt; ``seeds[i]`` is row i's random stream."""
