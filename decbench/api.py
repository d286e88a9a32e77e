"""The functions behind :mod:`decbench`: thin wrappers over what ``bench run`` plans and executes.

Options are those of ``bench run`` with underscores (``num_prompts=20``); their defaults,
environment variables (``$BENCH_MODEL``, ``$BENCH_DATA_DIR``) and choices are read from the
command's own definition, so the API and the command line cannot drift apart.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import click

from bench.errors import BenchError

@dataclass(frozen=True)
class Loaded:
    """A run store read back as tables."""

    records: Any
    """``pandas.DataFrame``: one row per generated record (prompt, sample) of every run, complete or not."""
    scores: Any
    """``pandas.DataFrame``: the leaderboard rows of the complete runs (each metric with ``_lo``/``_hi``)."""

    def __iter__(self) -> Iterator[Any]:
        """``records, scores = decbench.load(store)``."""
        return iter((self.records, self.scores))


def run(models: str | Iterable[str] | None = None, decoders: str | Iterable[str] = ("all",),
        suites: str | Iterable[str] = ("wikitext",), **options: Any) -> Any:
    """Plan and generate like ``bench run``; returns the store's leaderboard as a ``pandas.DataFrame``.

    ``options`` are ``bench run``'s options with underscores (``out``, ``num_prompts``,
    ``max_new_tokens``, ``batch_size``, ``device``, ``scores``, ...). Nothing is printed: no
    table, no progress bar, no loading bars. Decoders left out by ``decoders="all"`` are listed
    with their reason in ``frame.attrs["skipped"]``; the identities of the runs this call planned
    are ``frame.attrs["run_ids"]`` (the frame holds every run of the store). Bad input raises :class:`BenchError` before
    anything is generated.
    """
    from bench.cli import run as run_command
    from bench.cli import run_options
    from bench.grid import plan_sweep
    from bench.sweep import execute

    given = dict(options, models=models, decoders=decoders, suites=suites)
    kw = _command_values(run_command, given)
    options = run_options(kw)
    with _silenced():
        the_plan = plan_sweep([options])
        rows = execute(the_plan, options, quiet=True)
    frame = _frame(rows)
    frame.attrs["skipped"] = list(the_plan.skipped)
    frame.attrs["run_ids"] = [p.spec.run_id for p in the_plan.runs]
    return frame


def load(store: str | Path | Iterable[str | Path]) -> Loaded:
    """Read a run store (or run folders) written by ``bench run`` or :func:`run`."""
    import pandas as pd

    from bench.leaderboard import rows_for_runs
    from bench.publish import find_runs, unique_rows

    paths = [store] if isinstance(store, (str, Path)) else list(store)
    runs = find_runs(paths)
    records = [r for run in runs for r in run.records()]
    complete = [run for run in runs if run.is_complete()]
    scores = _frame(unique_rows(rows_for_runs(complete)) if complete else [])
    return Loaded(pd.DataFrame.from_records(records), scores)


def _frame(rows: list[dict[str, Any]]) -> Any:
    """Leaderboard rows as a DataFrame with the CSV's column order."""
    import pandas as pd

    from bench.leaderboard import columns

    if not rows:
        return pd.DataFrame()
    return pd.DataFrame.from_records(rows, columns=[c for c in columns(rows) if any(c in r for r in rows)])


def _command_values(command: click.Command, given: dict[str, Any]) -> dict[str, Any]:
    """The command's parameter values for ``given``, parsed exactly as the command line parses them.

    Each value becomes its option on an argument list (a list, one option per item), so
    defaults, ``$BENCH_MODEL``-style environment variables, types, ranges and choices are the
    command's own; click's usage errors become :class:`BenchError`.
    """
    params = {p.name: p for p in command.params if isinstance(p, click.Option)}
    unknown = sorted(set(given) - set(params))
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(params), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise BenchError(f"unknown option '{unknown[0]}'{hint}")
    argv: list[str] = []
    for name, value in given.items():
        if value is None:
            continue
        values = [value] if isinstance(value, (str, Path)) or not isinstance(value, Iterable) else list(value)
        if len(values) > 1 and not params[name].multiple:
            raise BenchError(f"{name} takes one value, got {len(values)}")
        for item in values:
            argv += [params[name].opts[-1], str(item)]
    try:
        return dict(command.make_context(command.name or "run", argv).params)
    except click.ClickException as exc:
        raise BenchError(_python_message(exc, params)) from None


def _python_message(exc: click.ClickException, params: dict[str, click.Option]) -> str:
    """Click's message with the option spelled as the keyword argument (``--max-new-tokens`` -> ``max_new_tokens``)."""
    message = exc.format_message()
    for name, param in params.items():
        for opt in param.opts:
            message = message.replace(f"'{opt}'", f"'{name}'")
    return message.replace("\n", " ").strip()


@contextlib.contextmanager
def _silenced() -> Iterator[None]:
    """No transformers or hub progress bars, advisory logging or warnings while the API runs."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
