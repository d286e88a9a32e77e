"""The Ray executor: every pending run of a plan becomes one Ray task.

One task per run (model x decoder x suite); the prompts of a run are not split across tasks, and
the run's lock (:meth:`bench.store.RunStore.writing`) keeps a retried task and a lost one, or
another command on the same store, from writing it at once. Each task loads its backend, runs
:func:`bench.generation.generate` (calibration included) and appends to ``<out>/<run_id>`` like
the local executor. A task whose worker dies (killed, out of memory, node lost) is retried up to
``MAX_RETRIES`` times by Ray and resumes from the store: the store drops a torn last line and only
missing records are generated. Errors raised by the task itself (bad input) are not retried.

Afterwards :func:`bench.sweep.execute` scores the store and writes the leaderboard exactly as
for a local sweep. The store must be on a file system every worker sees (one machine, or a
shared mount for a multi-node cluster).
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import click

from bench.errors import BenchError

MAX_RETRIES = 3
"""Ray re-runs a task whose worker died this many times."""
PASSED_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HOME", "BENCH_SHARED",
              "BENCH_DATA_DIR", "BENCH_ALLOW_PICKLE", "TOKENIZERS_PARALLELISM")
"""Environment the workers need to load models the way the driver does."""


def _runtime_env(options: Any) -> dict[str, Any]:
    names = PASSED_ENV + ((options.api_key_env,) if options.backend == "openai" else ())
    return {"env_vars": {k: os.environ[k] for k in names if k in os.environ}}


def run_task(planned: Any, options: Any) -> tuple[str, int, int, float]:
    """One Ray task: generate one planned run into the store; (run id, records, tokens, seconds)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    from bench.generation import Backends, generate
    from bench.store import RunStore

    from bench.runtime.threads import apply_from_env

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    apply_from_env()  # the driver's --threads
    result = generate(planned, Backends(options), RunStore(options.out), batch_size=options.batch_size)
    return planned.spec.run_id, result.generated, result.tokens, result.seconds


def _pending(plan: Any, out: Path) -> list[Any]:
    from bench.generation import pending
    from bench.store import RunStore

    store = RunStore(out)
    return [planned for planned in plan.runs if pending(planned, store)]


def generate_on_ray(plan: Any, options: Any, *, task: Callable[..., Any] = run_task) -> list[tuple[str, int, int, float]]:
    """Run every pending run of ``plan`` as a Ray task and wait for all of them.

    Connects to ``--ray-address`` or starts a local Ray instance (and stops what it started);
    reuses an instance the caller already started. ``task`` is the function each task runs.
    """
    import ray

    out = Path(options.out).resolve()
    todo = _pending(plan, out)
    if not todo:
        return []
    worker_options = replace(options, executor="local", ray_address=None, out=str(out))
    started = not ray.is_initialized()
    if started:
        try:
            ray.init(address=options.ray_address, include_dashboard=False, log_to_driver=False,
                     runtime_env=_runtime_env(options), logging_level="ERROR")
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise BenchError(f"cannot start or join Ray ({options.ray_address or 'local'}): "
                             f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}") from None
    try:
        gpus = ray.cluster_resources().get("GPU", 0)
        resources = {"num_gpus": 1} if gpus else {"num_cpus": 1}
        remote = ray.remote(max_retries=MAX_RETRIES, retry_exceptions=False)(task).options(**resources)
        start = time.perf_counter()
        refs = [remote.remote(planned, worker_options) for planned in todo]
        results = _gather(ray, refs)
        records = sum(r[1] for r in results)
        click.echo(f"ray: {len(results)} tasks on {'GPUs' if gpus else 'CPUs'}, {records} records generated "
                   f"in {time.perf_counter() - start:.1f} s", err=True)
        return results
    finally:
        if started:
            ray.shutdown()


def _gather(ray: Any, refs: list[Any]) -> list[Any]:
    """``ray.get`` that turns a task's BenchError back into a one-line BenchError."""
    try:
        return ray.get(refs)
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, BenchError):
            raise BenchError(str(cause)) from None
        raise
