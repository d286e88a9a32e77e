"""One registry for decoders and suites, filled by decorators on typed factories.

A decoder plugin is a function whose keyword parameters are its arguments::

    @decoder("top-p", description="nucleus sampling", sampling=True)
    def top_p(p: Annotated[float, "nucleus mass, in (0, 1]"] = 0.95,
              t: Annotated[float, "temperature, > 0"] = 1.0) -> Decoder:
        ...

The registry reads names, types, defaults and help from the signature, parses
``NAME:key=value,...`` strings against it and reports unknown names with the closest match.
Heavy imports (torch, transformers) belong inside the factory, so that listing plugins is cheap.

Plugins come from this project's ``decoders`` and ``suites`` packages and from any installed
distribution that declares an entry point in the ``decbench.decoders`` or ``decbench.suites``
group (the entry point names a module; importing it runs its decorators). A name registered twice
is an error, never a silent replacement.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import typing
from dataclasses import dataclass, field
from typing import Any, Callable

from bench.errors import BenchError

_MISSING = inspect.Parameter.empty


@dataclass(frozen=True)
class Param:
    """One argument of a plugin factory."""

    name: str
    """The keyword as written on the command line (``p`` in ``top-p:p=0.9``)."""
    type: type
    """``int``, ``float``, ``str`` or ``bool``; command-line values are converted to it."""
    default: Any
    """Default value; ``None`` means the argument must be given or resolved at plan time."""
    help: str
    """One line for ``bench decoders``."""


@dataclass(frozen=True)
class DecoderInfo:
    """A registered decoder: its factory and what it needs to run."""

    name: str
    """Canonical name (``top-p``); ``top_p`` is accepted too."""
    factory: Callable[..., Any]
    """Builds the decoder object from validated keyword arguments."""
    params: tuple[Param, ...]
    """Arguments in signature order."""
    description: str
    """One line for ``bench decoders``."""
    sampling: bool
    """True when the decoder draws random numbers (records then carry a seed)."""
    requires: tuple[str, ...] = ()
    """Run-level inputs it needs, e.g. ``("hyperfit",)``; ``--decoder all`` skips it otherwise."""
    requires_help: str = ""
    """How to provide what ``requires`` names, shown when it is skipped."""
    waived_by: tuple[str, ...] = ()
    """Parameters that, when given explicitly, make ``requires`` unnecessary (e.g. a numeric target)."""
    runs_on_hyperfit: bool = False
    """True when it decodes with the hyperfitted checkpoint instead of the base model."""
    check_model: Callable[[Any, Any], None] | None = None
    """Plan-time check of the resolved spec against the model's config; raises BenchError."""

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise BenchError(
            f"decoder '{self.name}' has no parameter '{name}'"
            + _suggest(name, [p.name for p in self.params])
            + f" (parameters: {', '.join(p.name for p in self.params) or 'none'})"
        )


@dataclass(frozen=True)
class SuiteInfo:
    """A registered prompt suite."""

    name: str
    """Name used with ``--suite``."""
    loader: Callable[..., Any]
    """Returns the suite's prompts (a list of :class:`bench.specs.Prompt`)."""
    version: str
    """Bumped whenever the prompts or references it yields change; part of the run identity."""
    description: str
    """One line for ``bench suites``."""


@dataclass
class Registry:
    decoders: dict[str, DecoderInfo] = field(default_factory=dict)
    suites: dict[str, SuiteInfo] = field(default_factory=dict)


REGISTRY = Registry()
_PLUGIN_PACKAGES = ("decoders", "suites")
ENTRY_POINT_GROUPS = ("decbench.decoders", "decbench.suites")
"""Entry-point groups through which installed distributions add decoders and suites."""
_loaded = False


def at_most_vocabulary(decoder_name: str, param: str, what: str) -> Callable[[Any, Any], None]:
    """A ``check_model``: the integer argument ``param`` (a count of ``what``) is at most the model's
    vocabulary size, so a typo is refused at plan time instead of failing inside torch."""
    def check_model(spec: Any, config: Any) -> None:
        text = config.get_text_config() if hasattr(config, "get_text_config") else config
        vocab, value = getattr(text, "vocab_size", None), spec.kwargs[param]
        if isinstance(vocab, int) and value > vocab:
            raise BenchError(f"decoder '{decoder_name}': {param}={value} {what} is more than the model's {vocab} tokens")
    return check_model


def _canonical(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def _suggest(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else ""


def _params_of(fn: Callable[..., Any]) -> tuple[Param, ...]:
    hints = typing.get_type_hints(fn, include_extras=True)
    params = []
    for p in inspect.signature(fn).parameters.values():
        hint = hints.get(p.name, str)
        help_text = ""
        if typing.get_origin(hint) is typing.Annotated:
            hint, *meta = typing.get_args(hint)
            help_text = next((m for m in meta if isinstance(m, str)), "")
        if typing.get_origin(hint) in (typing.Union, getattr(__import__("types"), "UnionType", ())):
            hint = next(a for a in typing.get_args(hint) if a is not type(None))
        default = None if p.default is _MISSING else p.default
        params.append(Param(p.name, hint, default, help_text))
    return tuple(params)


def decoder(
    name: str,
    *,
    description: str,
    sampling: bool,
    requires: tuple[str, ...] = (),
    requires_help: str = "",
    waived_by: tuple[str, ...] = (),
    runs_on_hyperfit: bool = False,
    check_model: Callable[[Any, Any], None] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a decoder factory under ``name``; a name already registered is an error."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        key = _unique(name, REGISTRY.decoders, "decoder", fn)
        REGISTRY.decoders[key] = DecoderInfo(
            key, fn, _params_of(fn), description, sampling, requires, requires_help, waived_by, runs_on_hyperfit,
            check_model,
        )
        return fn

    return register


def _unique(name: str, table: dict[str, Any], kind: str, fn: Callable[..., Any]) -> str:
    key = _canonical(name)
    if key in table:
        old = table[key]
        where = getattr(old, "factory", getattr(old, "loader", None))
        raise ValueError(f"{kind} '{key}' is registered twice: by {where.__module__}.{where.__qualname__} "
                         f"and by {fn.__module__}.{fn.__qualname__}")
    return key


def suite(name: str, *, version: str, description: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a prompt-suite loader under ``name``."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        key = _unique(name, REGISTRY.suites, "suite", fn)
        REGISTRY.suites[key] = SuiteInfo(key, fn, version, description)
        return fn

    return register


def load_plugins() -> Registry:
    """Import the plugin packages and the installed entry points once, so their decorators run."""
    global _loaded
    if not _loaded:
        _loaded = True
        for package in _PLUGIN_PACKAGES:
            importlib.import_module(package)
        from importlib.metadata import entry_points

        for group in ENTRY_POINT_GROUPS:
            for ep in sorted(entry_points(group=group), key=lambda e: e.name):
                try:
                    ep.load()
                except Exception as exc:  # a broken third-party plugin names itself, in one line
                    raise BenchError(f"plugin '{ep.name}' ({ep.value}, entry point {group}) failed to load: "
                                     f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
                                     ) from None
    return REGISTRY


def get_decoder(name: str) -> DecoderInfo:
    decoders = load_plugins().decoders
    key = _canonical(name)
    if key not in decoders:
        raise BenchError(
            f"unknown decoder '{name}'" + _suggest(key, list(decoders))
            + " (run 'bench decoders' for the list)"
        )
    return decoders[key]


def get_suite(name: str) -> SuiteInfo:
    suites = load_plugins().suites
    key = _canonical(name)
    if key not in suites:
        raise BenchError(
            f"unknown suite '{name}'" + _suggest(key, list(suites))
            + " (a suite is a registered name or a path to a .jsonl file; run 'bench suites')"
        )
    return suites[key]


def convert(param: Param, raw: str, decoder_name: str) -> Any:
    """Convert a command-line string to the parameter's type, or raise a one-line error."""
    try:
        if param.type is bool:
            lowered = raw.strip().lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(raw)
            return lowered in ("true", "1", "yes")
        value = param.type(raw)
    except (TypeError, ValueError):
        raise BenchError(
            f"decoder '{decoder_name}': parameter '{param.name}' needs a {param.type.__name__}, got '{raw[:40]}'"
        ) from None
    if param.type is int and not -INT64 <= value < INT64:  # torch and numpy hold 64-bit integers at most
        raise BenchError(f"decoder '{decoder_name}': parameter '{param.name}' is {raw[:40]}, beyond a 64-bit integer")
    return value


INT64 = 1 << 63
"""Integer decoder arguments must fit a 64-bit integer: any larger fails inside torch, after loading."""
