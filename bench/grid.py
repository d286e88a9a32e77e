"""Sweeps: grids in decoder arguments (``top-p:p=0.8|0.9|0.95``) and sweep files (``--config sweep.toml``).

A grid is written in the decoder argument itself: ``|`` separates the values of one parameter,
and grids over several parameters take their product, in the order written
(``top-k:k=10|50,t=0.7|1.0`` is four decoders). ``all`` is never a grid: it stays every decoder
once, at its defaults.

A sweep file is the options of ``bench run`` as TOML, keys named like the options (``model`` or
``models``, ``max_new_tokens`` or ``max-new-tokens``, ...). It gives exactly the plan the
equivalent flags give, because it is turned into the same keyword values the flags produce and
goes through the same ``RunOptions`` and the same planning. ``seed`` / ``seeds`` take a list, as a
repeated ``--seed`` does (one row per decoder, the mean over seeds); ``max_new_tokens`` / ``lengths``
takes a list that the flag takes one at a time: the sweep is then one ``bench run`` per length,
planned (and checked) together before anything runs.
Decoders are a list of ``NAME[:k=v|v,...]`` strings or a table per decoder whose values may be
lists (the grid)::

    models = ["../shared/models/stories260K"]
    suites = ["wikitext"]
    seeds = [0, 1]
    [decoders.top-p]
    p = [0.8, 0.9, 0.95]
    [decoders.greedy]

An option given on the command line overrides the file's value (``--config sweeps/example.toml
--num-prompts 5`` shrinks a sweep); ``bench run`` says which, and the run headers record the values
applied. Every mistake (unknown key, wrong type, a key given twice, a bad decoder argument) is one
line naming the file and the key.
"""

from __future__ import annotations

import difflib
import itertools
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.errors import BenchError, parse_problem
from bench.specs import expand_grid  # noqa: F401  (re-exported: grids are part of sweeps)

SWEPT = {"max_new_tokens": "lengths"}
"""Options whose sweep-file value may be a list (a product of runs), and their plural aliases."""
ALIASES = {"model": "models", "decoder": "decoders", "suite": "suites", "score": "scores", "seeds": "seed",
           **{plural: single for single, plural in SWEPT.items()}}
"""Sweep-file spellings that name another option's keyword."""


def load_sweep(path: str, flags: dict[str, Any], params: list[Any], given: set[str],
               overridden: list[str] | None = None) -> list[dict[str, Any]]:
    """The keyword values of ``bench run`` for each combination the sweep file ``path`` describes.

    ``flags`` are the command line's values, ``params`` the run command's click parameters and
    ``given`` the keywords the user typed on the command line: they override the file, and the
    file's keys they override are appended to ``overridden``.
    """
    table = _read_toml(path)
    by_name = {p.name: p for p in params if p.name != "config"}
    values: dict[str, Any] = {}
    swept: dict[str, list[Any]] = {}
    seen: set[str] = set()
    for key, value in table.items():
        name = ALIASES.get(key.replace("-", "_"), key.replace("-", "_"))
        if name not in by_name:
            close = difflib.get_close_matches(key, sorted(set(by_name) | set(ALIASES)), n=1, cutoff=0.6)
            raise BenchError(f"{path}: unknown key '{key}'" + (f"; did you mean '{close[0]}'?" if close else "")
                             + " (keys are the options of 'bench run')")
        if name in values or name in swept or name in seen:
            raise BenchError(f"{path}: '{key}' is given twice (under two spellings)")
        seen.add(name)
        if name in given:  # the command line wins; the value is still checked, so a typo in the file is caught
            if overridden is not None:
                overridden.append(key)
            _checked_value(path, key, by_name[name], value)
            continue
        if name == "decoders" and isinstance(value, dict):
            values[name] = decoder_table(path, value)
        elif name in SWEPT and isinstance(value, list):
            if not value:
                raise BenchError(f"{path}: '{key}' is an empty list")
            swept[name] = [_checked(path, key, by_name[name], v) for v in value]
        else:
            values[name] = _checked(path, key, by_name[name], value)
    if "decoders" in values:
        _check_decoders(path, values["decoders"])
    merged = dict(flags, **values)
    names = list(swept)
    return [dict(merged, **dict(zip(names, combo))) for combo in itertools.product(*(swept[n] for n in names))]


def _checked_value(path: str, key: str, param: Any, value: Any) -> None:
    """Check a file value the command line overrides, as it would be read."""
    name = ALIASES.get(key.replace("-", "_"), key.replace("-", "_"))
    if name == "decoders" and isinstance(value, dict):
        _check_decoders(path, decoder_table(path, value))
    elif name in SWEPT and isinstance(value, list):
        for v in value:
            _checked(path, key, param, v)
    else:
        _checked(path, key, param, value)


def decoder_table(path: str, table: dict[str, Any]) -> tuple[str, ...]:
    """``{"top-p": {"p": [0.8, 0.9]}}`` -> ``("top-p:p=0.8|0.9",)``; values must be scalars or lists of them."""
    texts = []
    for name, args in table.items():
        if not isinstance(args, dict):
            raise BenchError(f"{path}: decoders.{name} must be a table of arguments (e.g. [decoders.{name}])")
        items = []
        for key, value in args.items():
            values = value if isinstance(value, list) else [value]
            if not values or any(isinstance(v, (dict, list)) for v in values):
                raise BenchError(f"{path}: decoders.{name}.{key} must be a value or a non-empty list of values")
            items.append(f"{key}=" + "|".join(_text(v) for v in values))
        texts.append(name + (":" + ",".join(items) if items else ""))
    return tuple(texts)


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _check_decoders(path: str, texts: tuple[str, ...]) -> None:
    """Parse every decoder now, so that a bad one names the file (planning would parse it again)."""
    from bench.specs import parse_decoder

    for text in texts:
        if text.strip().lower() == "all":
            continue
        try:
            for one in expand_grid(text):
                parse_decoder(one)
        except BenchError as exc:
            raise BenchError(f"{path}: decoders: {exc}") from None


def _checked(path: str, key: str, param: Any, value: Any) -> Any:
    """``value`` as the flag would give it, or a one-line error naming the file and the key."""
    import click

    kind = param.type
    if getattr(param, "multiple", False):
        items = value if isinstance(value, list) else [value]
        if not items:
            raise BenchError(f"{path}: '{key}' is an empty list")
        if isinstance(kind, click.types.IntParamType):  # seed: an integer, or a list of them
            for item in items:
                if not isinstance(item, int) or isinstance(item, bool):
                    raise BenchError(f"{path}: '{key}' needs an integer, got {item!r}")
        elif not all(isinstance(v, str) for v in items):
            raise BenchError(f"{path}: '{key}' needs a string or a list of strings, got {value!r}")
        return tuple(items)
    if getattr(param, "is_flag", False) or isinstance(kind, click.types.BoolParamType):
        ok, want = isinstance(value, bool), "true or false"
    elif isinstance(kind, click.Choice):
        ok, want = isinstance(value, str) and value in kind.choices, f"one of {', '.join(kind.choices)}"
    elif isinstance(kind, (click.types.IntParamType,)):
        ok, want = isinstance(value, int) and not isinstance(value, bool), "an integer"
    elif isinstance(kind, click.types.FloatParamType):
        ok, want = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
    else:
        ok, want = isinstance(value, str), "a string"
    if not ok:
        raise BenchError(f"{path}: '{key}' needs {want}, got {value!r}")
    try:
        return kind.convert(value, param, None) if not isinstance(kind, click.types.StringParamType) else value
    except click.BadParameter as exc:
        raise BenchError(f"{path}: '{key}': {exc.message}") from None


def _read_toml(path: str) -> dict[str, Any]:
    import tomllib

    file = Path(path)
    if not file.is_file():
        raise BenchError(f"--config {path}: no such file")
    try:
        return tomllib.loads(file.read_text())
    except (ValueError, RecursionError) as exc:  # TOMLDecodeError and UnicodeDecodeError are ValueErrors
        raise BenchError(f"{path}: not valid TOML: {parse_problem(exc)}") from None


def plan_sweep(options: list[Any]) -> Any:
    """Plan every combination first (so any error stops the sweep before anything runs), then one
    plan whose runs are grouped by model (each model loaded once) with duplicates dropped."""
    from bench.hyperfit.checkpoint import expand_hyperfit
    from bench.planning import Plan, plan

    # --hyperfit DIR@every: one combination per kept epoch (DIR@epoch=K: that epoch's checkpoint)
    options = [replace(o, hyperfit=h) if h != o.hyperfit else o
               for o in options for h in (expand_hyperfit(o.hyperfit) if o.hyperfit else [None])]
    plans = [plan(o) for o in options]
    runs, seen = [], set()
    for planned in (r for p in plans for r in p.runs):
        if planned.spec.run_id not in seen:
            seen.add(planned.spec.run_id)
            runs.append(planned)
    order = list(dict.fromkeys(r.spec.model.name for r in runs))
    runs.sort(key=lambda r: order.index(r.spec.model.name))
    skipped = list(dict.fromkeys(s for p in plans for s in p.skipped))
    notices = list(dict.fromkeys(n for p in plans for n in p.notices))
    warnings = list(dict.fromkeys(w for p in plans for w in p.warnings))
    return replace(plans[0], runs=runs, skipped=skipped, notices=notices, warnings=warnings) \
        if len(plans) > 1 else plans[0]
