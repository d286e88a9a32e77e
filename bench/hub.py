"""Fail fast when a Hugging Face Hub id is asked for and the Hub cannot be reached.

Without this, transformers retries an unreachable Hub for about a minute before its error. One
short probe per process (a TCP connection to the endpoint, at most ``PROBE_SECONDS``) or
``HF_HUB_OFFLINE=1`` decides; a model already in the local cache is then loaded from the cache
in offline mode, and one that is not is refused with one line before anything is generated.
"""

from __future__ import annotations

import os
import re
import socket
import threading
from pathlib import Path
from urllib.parse import urlparse

from bench.errors import BenchError

PROBE_SECONDS = 3.0
"""How long the reachability probe may take (name resolution included)."""
_TRUE = ("1", "true", "yes", "on")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
"""``name`` or ``owner/name``: what can only be a Hub id (a path like ./x or /a/b is left to the loader)."""
_probed: dict[str, str | None] = {}


def offline_reason() -> str | None:
    """Why the Hub cannot be used (``HF_HUB_OFFLINE`` set, or the probe failed), or ``None`` when it can."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in _TRUE:
            return f"{var} is set"
    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    if endpoint not in _probed:
        _probed[endpoint] = _probe(endpoint)
    return _probed[endpoint]


def _probe(endpoint: str) -> str | None:
    url = urlparse(endpoint)
    host, port = url.hostname or "", url.port or (443 if url.scheme == "https" else 80)
    outcome: list[str | None] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=PROBE_SECONDS).close()
            outcome.append(None)
        except OSError as exc:
            outcome.append(f"{endpoint} is unreachable ({exc.strerror or exc})")

    thread = threading.Thread(target=connect, daemon=True)  # name resolution has no timeout of its own
    thread.start()
    thread.join(PROBE_SECONDS + 0.5)
    return outcome[0] if outcome else f"{endpoint} is unreachable (no answer within {PROBE_SECONDS:.0f} s)"


def is_cached(model: str) -> bool:
    """Whether the Hub id's config is in the local Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(model, "config.json")
    except ValueError:  # not a valid repository id
        return False
    return isinstance(found, str)


def check_models(models: list[str] | tuple[str, ...]) -> None:
    """Refuse, with one line, Hub ids that can be neither downloaded nor read from the cache."""
    remote = [m for m in models if m and _HUB_ID.match(m) and not Path(m).exists()]
    if not remote:
        return
    reason = offline_reason()
    if reason is None:
        return
    for model in remote:
        if not is_cached(model):
            raise BenchError(f"cannot load model '{model}': it is not a local folder, not in the Hugging Face cache, "
                             f"and {reason}; pass a local directory")
    _go_offline()


def _go_offline() -> None:
    """Read the cache without asking the Hub again (and without its retries)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        from huggingface_hub import constants

        constants.HF_HUB_OFFLINE = True
    except ImportError:
        pass
