"""Where the local Hugging Face cache holds a Hub id, and whether the Hub may be asked at all.

Kept apart from :mod:`bench.runtime.loading` so that fingerprints (which read the cache) and the
loaders (which read fingerprints' GGUF cache) import it without importing each other.
"""

from __future__ import annotations

import os
from pathlib import Path


def hub_offline() -> bool:
    """Whether the Hugging Face Hub must not be contacted (``HF_HUB_OFFLINE``)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def cached_snapshot(name: str, revision: str | None = None) -> Path | None:
    """The folder of Hub id ``name`` at ``revision`` in the local Hugging Face cache, if it is there."""
    if Path(name).expanduser().exists() or name.count("/") > 1:
        return None
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, revision=revision, local_files_only=True))
    except Exception:  # not a Hub id, or not in the cache
        return None
