"""What tables call a model when the user did not say (``--model PATH:label=NAME`` does).

A model's own name, not the name of whatever folder it happens to sit in: a folder called ``hf``
(what a conversion often writes) reads like the backend in progress lines and leaderboards.

- A GGUF model: the file's stem (``SmolLM2-135M-Instruct.Q4_1``). Its metadata's ``general.name``
  is often a training-run name ("Smollm2 135M 8k Lc100K Mix1 Ep2") that drops the very things a
  reader compares (instruct or base, quantization), so it is recorded by the conversion, not shown.
- A folder with a telling name: that name (``stories260K``).
- A folder with a generic name (``hf``, ``model``, ``final``, ``checkpoint-500``, ...): the name
  its config records (``_name_or_path``), else ``parent/name``.
- A Hub id: its last component.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

GENERIC = re.compile(r"^(hf|model|models|merged|final|best|out|output|outputs|snapshot|weights|main|latest|"
                     r"checkpoint|ckpt|export|converted|step|epoch|run)([-_.]?\d+)?$|^\d+$", re.IGNORECASE)
"""Folder names that say where a model is, not which model it is."""


def model_label(name: str) -> str:
    """The short name of model ``name`` (a GGUF file or folder, a local folder, or a Hub id)."""
    from bench.runtime.gguf import gguf_file

    path = Path(name).expanduser()
    try:
        single = gguf_file(name)
    except Exception:  # several GGUF files: loading reports it
        single = None
    if single is not None:
        return single.stem
    stem = name.rstrip("/").split("/")[-1] or name
    if not path.is_dir() or not GENERIC.match(path.resolve().name):
        return stem
    recorded = _config_name(path)
    if recorded:
        return recorded
    resolved = path.resolve()
    return f"{resolved.parent.name}/{resolved.name}" if resolved.parent.name else resolved.name


def _config_name(folder: Path) -> str | None:
    """The model name a saved config recorded, when it is a Hub id or a name (not a path)."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(config, dict):
        return None
    for key in ("_name_or_path", "_model_name_or_path"):
        value = config.get(key)
        if isinstance(value, str) and value.strip() and not value.startswith(("/", ".", "~")) \
                and not Path(value).exists():
            return value.strip().rstrip("/").split("/")[-1]
    return None
