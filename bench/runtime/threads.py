"""``--threads N``: how many CPU threads torch may use, on every command that runs a model.

torch's default is one thread per core it sees; on a shared or oversubscribed machine that can be
several times slower than one thread (6x measured on 2 loaded cores), and a tiny model is often
fastest with one. The count changes speed only, never records, so it is recorded in each run's
provenance (``header.json``: ``threads``) and not in the run identity. ``$BENCH_THREADS`` is the
default, so executors that start other processes (Ray workers) apply the same count.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

ENV = "BENCH_THREADS"


def apply(threads: int | None) -> None:
    """Set torch's thread count (and ``$BENCH_THREADS`` for child processes); None leaves torch's choice."""
    if threads is None:
        return
    if threads < 1:
        from bench.errors import BenchError

        raise BenchError(f"--threads must be at least 1, got {threads}")
    os.environ[ENV] = str(threads)
    import torch

    torch.set_num_threads(threads)


def apply_from_env() -> None:
    """In a worker process: the count the parent was given, if any."""
    value = os.environ.get(ENV, "").strip()
    if value.isdigit() and int(value) >= 1:
        apply(int(value))


def current() -> int | None:
    """The thread count in force: torch's when it is imported (the value every run uses), else the option's."""
    torch = sys.modules.get("torch")  # None where torch is blocked (the fake backend runs without it)
    if torch is not None and hasattr(torch, "get_num_threads"):
        return torch.get_num_threads()
    value = os.environ.get(ENV, "")
    return int(value) if value.isdigit() else None


def _callback(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    if value is not None and value < 1:
        raise click.BadParameter(f"must be at least 1, got {value}", ctx=ctx, param=param)
    return value


def threads_option(command: Any) -> Any:
    """The ``--threads`` option; the command calls :func:`apply` with its value."""
    return click.option("--threads", type=int, default=None, envvar=ENV, callback=_callback, metavar="N",
                        help="CPU threads for torch (default: $BENCH_THREADS, else torch's choice, one per core; "
                             "1 is often fastest for tiny models or on a busy machine). Recorded in each run's "
                             "provenance, not its identity.")(command)
