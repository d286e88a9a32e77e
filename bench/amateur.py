"""The amateur model of contrastive decoding (``--amateur PATH``): plan-time checks and its fingerprint.

Contrastive decoding subtracts a small "amateur" model's log-probabilities from the expert's,
token by token, so both must score the same vocabulary with the same ids. The amateur is a run
option like ``--hyperfit``: it goes into the run identity (its folder name and a fingerprint of
its files, never its absolute path), into every record and into the leaderboard. Everything that
can be wrong with it is found here, at plan time, before anything is generated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.errors import BenchError


def amateur_fingerprint(path: str) -> str:
    """The same content fingerprint as ``--model`` gets (:func:`bench.runtime.model_identity`)."""
    from bench.runtime import model_identity

    return model_identity(path)[0]


def check_amateur(path: str, expert: str, expert_tokenizer: Any, expert_config: Any) -> None:
    """Raise a one-line BenchError unless ``path`` is a loadable amateur for ``expert``.

    Checks: the folder (or Hub id) exists and has a config, its weights are safetensors (pickle
    only with ``BENCH_ALLOW_PICKLE=1``), and its tokenizer and logits width equal the expert's.
    """
    from bench.runtime import check_weights, load_config, load_tokenizer

    from bench.runtime.gguf import gguf_file

    local = Path(path)
    if gguf_file(path) is not None:
        pass  # a GGUF model: converted to a folder when loaded
    elif local.exists() and not local.is_dir():
        raise BenchError(f"--amateur {path}: not a model folder (give the folder with config.json and the weights, "
                         "or a GGUF file)")
    elif local.is_dir():
        if not (local / "config.json").is_file():
            raise BenchError(f"--amateur {path}: no config.json in that folder")
        weights = [f.name for f in local.iterdir() if f.suffix in (".safetensors", ".bin", ".pt", ".pth")]
        if not weights:
            raise BenchError(f"--amateur {path}: no model weights (*.safetensors) in that folder")
    check_weights(path, role="--amateur")  # the one pickle rule
    config = load_config(path)
    tokenizer = load_tokenizer(path)
    if expert_tokenizer is not None and tokenizer.get_vocab() != expert_tokenizer.get_vocab():
        raise BenchError(f"--amateur {path}: its tokenizer differs from that of --model {expert} "
                         "(contrastive decoding compares the two models token by token; they need the same vocabulary)")
    width, expert_width = _logits_width(config), _logits_width(expert_config)
    if width is not None and expert_width is not None and width != expert_width:
        raise BenchError(f"--amateur {path}: it scores {width} tokens per step, --model {expert} {expert_width}; "
                         "they need the same vocabulary")


def _logits_width(config: Any) -> int | None:
    if config is None:
        return None
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    value = getattr(text, "vocab_size", None)
    return value if isinstance(value, int) else None
