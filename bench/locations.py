"""Where the offline assets are found when nothing says: ``$BENCH_SHARED``, else ``../shared`` beside the checkout.

``make demo`` exports ``BENCH_MODEL`` and ``BENCH_DATA_DIR``; a user who runs ``bench`` from an
activated virtual environment has neither, so ``--data-dir`` defaults to the shared data folder
when there is one, and the "no model" error names the shared model to export.
"""

from __future__ import annotations

import os
from pathlib import Path

SHARED_ENV = "BENCH_SHARED"
"""Environment variable naming the folder of offline assets (``models/``, ``data/``)."""
DEMO_MODEL = ("models", "stories260K")
"""The small pretrained model ``make demo`` runs, inside the shared folder."""


def shared_dir() -> Path | None:
    """``$BENCH_SHARED`` when set, else ``shared/`` next to this checkout, when that folder exists."""
    env = os.environ.get(SHARED_ENV)
    candidate = Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared"
    return candidate.resolve() if candidate.is_dir() else None


def default_data_dir() -> str | None:
    """The ``--data-dir`` used when neither the option nor ``$BENCH_DATA_DIR`` is given."""
    shared = shared_dir()
    return str(shared / "data") if shared is not None and (shared / "data").is_dir() else None


def model_hint() -> str:
    """How to name a model, for the error when none was given: the export line of the shared model when present."""
    shared = shared_dir()
    if shared is not None and Path(shared, *DEMO_MODEL).is_dir():
        return f"; e.g. export BENCH_MODEL={Path(shared, *DEMO_MODEL)}"
    return ""
