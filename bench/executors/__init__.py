"""Executors: where a plan's runs are generated.

* ``local``: this process, one model at a time (:func:`bench.execute.execute`).
* ``ray``: one Ray task per run (model x decoder x suite), on a local or remote Ray
  cluster (:mod:`bench.executors.ray`). Every task writes into the same run store, so the store,
  the resumption and the leaderboard are exactly those of the local executor.
"""

from __future__ import annotations

from typing import Any

from bench.errors import BenchError

EXECUTORS = ("local", "ray")


def check_executor(options: Any) -> None:
    """Plan-time checks: a known executor, Ray installed, the cluster reachable; one-line errors."""
    name = getattr(options, "executor", "local")
    if name not in EXECUTORS:
        raise BenchError(f"unknown executor '{name}' (choose from {', '.join(EXECUTORS)})")
    if name == "local":
        if getattr(options, "ray_address", None):
            raise BenchError("--ray-address needs --executor ray")
        return
    from bench.executors.ray import check_cluster

    check_cluster(options)


def run_planned(planned: Any, backends: Any, store: Any, *, batch_size: int,
                on_records: Any = lambda n: None, on_calibrate: Any = lambda: None) -> Any:
    """Generate one planned run with ``backends`` (a :class:`bench.execute.Backends`): the work of
    both executors, so they produce the same store.

    Decoders with a ``calibrate`` step (entropy-matched, static-reweight) are calibrated on the HF
    backend whatever ``--backend`` is: the calibrated values (e.g. the temperature T*) then travel
    to the engine inside the decoder object (see :mod:`bench.backends.requests`).
    """
    from bench.runner import generate_run
    from bench.specs import build_decoder

    spec, info = planned.spec, planned.decoder_info
    backend = backends.get(spec.model.name, spec.model.hyperfit if info.runs_on_hyperfit else None)
    decoder = build_decoder(spec.decoder)
    if hasattr(decoder, "calibrate"):
        on_calibrate()
        base = backends.hf(spec.model.name)
        reference = backends.hf(spec.model.name, spec.model.hyperfit) if spec.model.hyperfit else base
        planned.resolved.update(decoder.calibrate(base, reference, planned.prompts))
    return generate_run(planned, backend, store, batch_size=batch_size, decoder=decoder, on_records=on_records)
