"""Frozen specifications of a run. A run's identity is a hash of everything that changes its output."""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
from dataclasses import asdict, dataclass
from typing import Any

from bench.decoding import Declaration
from bench.errors import BenchError
from bench.random_streams import SAMPLER_VERSION
from bench.registry import convert, get_decoder


@dataclass(frozen=True)
class Prompt:
    """One prompt of a suite."""

    id: str
    """Stable identifier inside the suite; seeds and resumption key on it."""
    text: str
    """The context given to the model."""
    reference: str | None = None
    """The human continuation, when the suite has one."""


@dataclass(frozen=True)
class ModelSpec:
    """Which weights produce the logits."""

    name: str
    """Hugging Face id or local directory, as given by the user."""
    revision: str | None = None
    """Hub revision (branch, tag or commit); ``None`` for the default branch or a local path."""
    fingerprint: str = ""
    """Hash of the content of a local model's files (see :mod:`bench.runtime.fingerprint`), so weights
    edited in place change the id; empty for a Hub id. Stores made before content fingerprints
    hold a hash of file names and sizes here."""
    hyperfit: str | None = None
    """A hyperfitted checkpoint (full model or PEFT adapter) used by decoders that require it."""
    hyperfit_fingerprint: str = ""
    """Fingerprint of the hyperfitted checkpoint's content, including its ``hyperfit.json``."""
    amateur: str | None = None
    """The amateur model of contrastive decoding (``--amateur``), for the decoders that contrast with one."""
    amateur_fingerprint: str = ""
    """Fingerprint of the amateur model's local files (empty for a Hub id)."""
    commit: str | None = None
    """The Hub commit a Hub id's revision resolved to; None for a local folder or an unresolved id."""
    args: tuple[tuple[str, str], ...] = ()
    """Model arguments from ``--model NAME:key=value,...`` (see :mod:`bench.model_args`), sorted."""
    chat_template: bool = False
    """Prompts go through the tokenizer's chat template (``--chat-template``)."""
    system_prompt: str | None = None
    """The system turn of the chat template (``--system-prompt``)."""
    display: str | None = None
    """The model's name in tables (``--model PATH:label=NAME``, else its own name: see
    :func:`bench.runtime.naming.model_label`); for display only, so not in the run identity."""

    @property
    def label(self) -> str:
        """Short name for tables: :attr:`display` (else the last path component of ``name``), then
        its model arguments."""
        short = self.display or self.name.rstrip("/").split("/")[-1] or self.name
        if self.args:
            short += ":" + ",".join(f"{k}={v}" for k, v in self.args)
        return short + ("+chat" if self.chat_template else "")

    @property
    def chat(self) -> "Any":
        """The :class:`bench.model_args.ChatTemplate` to render prompts with, or None."""
        if not self.chat_template:
            return None
        from bench.model_args import ChatTemplate

        return ChatTemplate(self.system_prompt)


@dataclass(frozen=True)
class DecoderSpec:
    """A decoder name with fully resolved arguments (defaults filled in)."""

    name: str
    """Canonical registered name."""
    args: tuple[tuple[str, Any], ...] = ()
    """(parameter, value) pairs in signature order."""

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.args)

    @property
    def label(self) -> str:
        """``top-p:p=0.95,t=1.0``; the bare name when there are no arguments. An argument left unset
        (None, e.g. entropy-matched's ``target`` when the hyperfitted model sets it) is not shown."""
        shown = [(k, v) for k, v in self.args if v is not None]
        if not shown:
            return self.name
        return self.name + ":" + ",".join(f"{k}={v}" for k, v in shown)


@dataclass(frozen=True)
class SuiteSpec:
    """Which prompts."""

    name: str
    """Registered suite name, or ``jsonl`` for a user file."""
    version: str
    """The suite's construction version, or the file's content hash for ``jsonl``."""
    source: str = ""
    """The file the prompts came from (for display; its hash is in ``version``)."""
    num_prompts: int | None = None
    """Deterministic subset size; ``None`` for all prompts."""


@dataclass(frozen=True)
class GenerationSpec:
    """How long and how many continuations."""

    max_new_tokens: int = 256
    """Upper bound on continuation tokens; a row also stops at EOS."""
    samples_per_prompt: int = 1
    """Continuations per prompt (sampling decoders use different seeds for each)."""
    seed: int = 0
    """Base seed; each record's seed derives from (seed, prompt id, sample index)."""
    sampler: int = SAMPLER_VERSION
    """The random streams sampled records draw from (:data:`bench.random_streams.SAMPLER_VERSION`).
    New runs get the current version; a stored header without the field was written by version 1,
    which is left out of the identity so that those runs keep their ids (see :meth:`RunSpec.identity`)."""
    log_probs: bool = False
    """Store per-token traces (log-probability, entropy, rank: :mod:`bench.traces`); in the
    identity only when set, so runs without them keep their ids."""
    log_probs_from: str = "model"
    """Where traces come from: ``model`` (the local HF model, teacher-forced: exact entropy and rank)
    or ``server`` (``--backend openai``: the server's own logprobs, top :data:`bench.traces.TOP_LOGPROBS`);
    in the identity only when not ``model``."""


@dataclass(frozen=True)
class RunSpec:
    """Everything that changes a run's records. ``run_id`` hashes all of it."""

    model: ModelSpec
    decoder: DecoderSpec
    suite: SuiteSpec
    generation: GenerationSpec
    backend: str = "hf"
    """Generation backend (``hf``); its version is part of the identity."""
    backend_version: str = ""
    """Version of the library behind the backend (transformers for ``hf``)."""
    dtype: str = "float32"
    """Resolved compute dtype."""
    origin: str = ""
    """A run imported by ``bench score --from`` (:mod:`bench.foreign`): ``TOOL:sha256`` of the file
    its generations came from; empty for decbench's own runs, and then not in the identity."""

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    def identity(self) -> dict[str, Any]:
        """The spec without where things happen to live on this machine.

        A local model or checkpoint is identified by its fingerprint and folder name, not its
        absolute path, and a suite by its name and version, not the file it was read from, so
        the same run has the same id in every clone.

        The sampler version enters the identity only when it is not 1, the streams of every store
        written before the field existed: their runs keep their ids and headers, and resuming
        one with today's code (version 2) plans a new run id, so its records are generated again
        rather than appended to records drawn from the old streams. This holds for every decoder,
        greedy included: the plan cannot tell which decoders draw (a plugin model decoder may).
        """
        d = self.to_dict()
        if d["generation"]["sampler"] == 1:
            del d["generation"]["sampler"]
        if not d["generation"].get("log_probs"):
            d["generation"].pop("log_probs", None)
        if d["generation"].get("log_probs_from", "model") == "model":
            d["generation"].pop("log_probs_from", None)
        if not d.get("origin"):
            d.pop("origin", None)
        d["extra"] = []  # a field of the first format, always empty; kept so that run ids do not change
        d["suite"].pop("source", None)
        d["model"].pop("display", None)  # a table label, not what produces the records
        if d["model"]["amateur"] is None:  # runs without an amateur keep the ids they had before it existed
            del d["model"]["amateur"], d["model"]["amateur_fingerprint"]
        # Fields added after the first format leave the identity when unset, so older runs keep their ids.
        for key, unset in (("commit", None), ("args", []), ("chat_template", False), ("system_prompt", None)):
            if d["model"].get(key, unset) == unset:
                d["model"].pop(key, None)
        for key, fp in (("name", "fingerprint"), ("hyperfit", "hyperfit_fingerprint"), ("amateur", "amateur_fingerprint")):
            if d["model"].get(fp) and d["model"].get(key):
                d["model"][key] = d["model"][key].rstrip("/").split("/")[-1]
        return d

    @functools.cached_property
    def run_id(self) -> str:
        """The first 16 hex digits of the identity's hash (computed once: a spec is frozen)."""
        canonical = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunSpec":
        return cls(
            model=ModelSpec(**{**d["model"], "args": tuple(tuple(a) for a in d["model"].get("args", ()))}),
            decoder=DecoderSpec(d["decoder"]["name"], tuple(tuple(a) for a in d["decoder"]["args"])),
            suite=SuiteSpec(**d["suite"]),
            generation=GenerationSpec(**{"sampler": 1, **d["generation"]}),  # no field: version 1
            backend=d["backend"],
            backend_version=d["backend_version"],
            dtype=d["dtype"],
            origin=d.get("origin", ""),
        )


def parse_decoder(text: str) -> DecoderSpec:
    """Parse ``NAME[:key=value,...]`` into a spec with defaults filled in.

    Validation of values (ranges) happens when the factory is called; see :func:`build_decoder`.
    """
    name, _, arg_text = text.partition(":")
    info = get_decoder(name)
    given: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in arg_text.split(","))):
        key, eq, raw = item.partition("=")
        if not eq or not key.strip():
            raise BenchError(f"decoder '{info.name}': argument '{item}' is not key=value")
        param = info.param(key.strip())
        if param.name in given:
            raise BenchError(f"decoder '{info.name}': argument '{param.name}' is given twice in '{text.strip()}'")
        given[param.name] = convert(param, raw.strip(), info.name)
    args = tuple((p.name, given.get(p.name, p.default)) for p in info.params)
    spec = DecoderSpec(info.name, args)
    build_decoder(spec)  # validates ranges now, before anything is written
    return spec


def expand_grid(text: str) -> list[str]:
    """A decoder grid: ``NAME:a=1|2,b=x|y`` -> the four ``NAME:a=..,b=..`` strings (the product, in the
    order written); without ``|``, ``[text]``. ``all`` is never a grid. See :mod:`bench.grid`."""
    name, colon, args = text.partition(":")
    if "|" not in args:
        return [text]
    choices = []
    for item in (s.strip() for s in args.split(",")):
        key, eq, values = item.partition("=")
        options = [v.strip() for v in values.split("|")]
        if eq and "" in options:
            raise BenchError(f"decoder '{name.strip()}': empty value in the grid '{item}'")
        choices.append([f"{key.strip()}={v}" for v in options] if eq else [item])
    return [f"{name}{colon}{','.join(combo)}" for combo in itertools.product(*choices)]


def build_decoder(spec: DecoderSpec) -> Any:
    """Call the decoder's factory; factories raise BenchError on impossible values."""
    info = get_decoder(spec.name)
    return info.factory(**spec.kwargs)


def declare(spec: DecoderSpec) -> Declaration:
    """What the decoder ``spec`` needs from a backend, from an uncalibrated instance (plan time)."""
    info = get_decoder(spec.name)
    decoder = build_decoder(spec)
    needs = decoder.needs
    features = decoder.features() if needs == "logits" else frozenset()
    return Declaration(spec.label, needs, features, info.runs_on_hyperfit, decoder.calibrates)


@dataclass(frozen=True)
class LoadedSuite:
    """A suite's prompts as loaded, with where they came from."""

    prompts: tuple[Prompt, ...]
    """All prompts, in the suite's own order."""
    source: str
    """The file or Hub dataset they were read from."""
    version: str
    """Construction version (registered suites) or content hash (JSONL files)."""
