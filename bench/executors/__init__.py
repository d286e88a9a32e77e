"""Executors: where a plan's runs are generated.

* ``local``: this process, one model at a time (:func:`bench.sweep.execute`).
* ``ray``: one Ray task per run (model x decoder x suite), on a local or remote Ray
  cluster (:mod:`bench.executors.ray`). Every task writes into the same run store, so the store,
  the resumption and the leaderboard are exactly those of the local executor.
"""

from __future__ import annotations

import socket
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
    check_cluster(options)


def _host_port(address: str) -> tuple[str, int]:
    text = address.strip()
    default = 10001 if text.startswith("ray://") else 6379  # Ray client port; GCS port
    text = text.split("://", 1)[-1]
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, default
    try:
        return host, int(port)
    except ValueError:
        raise BenchError(f"--ray-address '{address}' is not HOST:PORT or ray://HOST:PORT") from None


def check_cluster(options: Any) -> None:
    """Plan-time: Ray is installed and ``--ray-address`` (when given) accepts connections."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise BenchError("--executor ray needs Ray, which is not installed: pip install 'decbench[ray]'") from None
    address = options.ray_address
    if not address or address == "auto":
        return
    host, port = _host_port(address)
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as exc:
        raise BenchError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}") from None


