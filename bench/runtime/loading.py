"""Loading models, tokenizers and configs, with the pickle rule checked before anything runs.

Pickle checkpoints (``pytorch_model.bin``, ``*.pt``) can run arbitrary code when loaded, so every
model decbench loads (the generating model, a hyperfit checkpoint and its base, the MAUVE
featurizer, the coherence scorer, a local judge, a sentence model) is loaded from safetensors only,
unless ``BENCH_ALLOW_PICKLE=1``. :func:`check_weights` looks at the files without loading them, so
commands call it while planning and refuse before anything is generated. ``trust_remote_code`` is
never used.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bench.errors import BenchError, one_line, parse_problem
from bench.runtime.hub_cache import cached_snapshot, hub_offline
from bench.runtime.devices import torch_dtype

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
"""Weight files that torch loads with pickle."""
NOT_WEIGHTS = ("training_args.bin",)
"""Pickle files next to a model that are not its weights (Trainer's arguments)."""


def allow_pickle() -> bool:
    """Whether the user opted in to pickle checkpoints (``BENCH_ALLOW_PICKLE=1``)."""
    return os.environ.get("BENCH_ALLOW_PICKLE") == "1"


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (library errors can span many lines)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def local_name(name: str) -> str:
    """What transformers loads for ``name``: the converted folder of a GGUF model (see
    :mod:`bench.runtime.gguf`), else ``name`` itself."""
    from bench.runtime.gguf import resolve

    return resolve(name)


def model_dir(name: str, revision: str | None = None) -> Path | None:
    """The folder holding ``name``: a local directory (a GGUF model's converted one), or a Hub id's
    snapshot in the local cache."""
    path = Path(local_name(name)).expanduser()
    return path if path.is_dir() else cached_snapshot(name, revision)


def _weight_files(name: str, revision: str | None) -> list[str] | None:
    """The file names of the model's weights, from disk or the Hub; None when they cannot be listed."""
    directory = model_dir(name, revision)
    if directory is not None:
        return [p.name for p in directory.iterdir() if p.is_file()]
    if Path(name).expanduser().exists() or hub_offline():
        return None
    try:
        from huggingface_hub import list_repo_files

        return list_repo_files(name, revision=revision)
    except Exception:  # unreachable, unknown or gated: loading reports it with its own message
        return None


def check_weights(name: str, revision: str | None = None, *, role: str = "model") -> None:
    """Refuse a model whose weights are pickle files only (unless ``BENCH_ALLOW_PICKLE=1``).

    Looks at file names only, so it is cheap enough for plan time. A folder with safetensors next
    to pickle files is fine: the safetensors are what gets loaded.
    """
    from bench.runtime.gguf import gguf_file

    if allow_pickle() or gguf_file(name) is not None:  # GGUF holds tensors only, no code
        return
    files = _weight_files(name, revision) or []
    pickles = sorted(f for f in files if f.endswith(PICKLE_SUFFIXES) and f not in NOT_WEIGHTS)
    if pickles and not any(f.endswith(".safetensors") for f in files):
        shown = ", ".join(pickles[:3]) + (", ..." if len(pickles) > 3 else "")
        raise BenchError(f"{role} '{name}' has only pickle weights ({shown}), which can run code when loaded: "
                         "convert them to safetensors, or set BENCH_ALLOW_PICKLE=1 if you trust them")
    _check_local_weights(name, revision, role)


def _check_local_weights(name: str, revision: str | None, role: str) -> None:
    """A local (or cached) folder's safetensors are whole and fit its config: see :mod:`bench.runtime.weights_check`."""
    from bench.runtime.weights_check import check_folder

    directory = model_dir(name, revision)
    if directory is None:
        return
    config = None
    if (directory / "config.json").is_file() and not (directory / "adapter_config.json").exists():
        try:
            config = load_config(str(directory), role=role)
        except BenchError:
            config = None  # loading reports it in its own words
    check_folder(directory, config)


def _load_error(role: str, name: str, exc: BaseException) -> BenchError:
    folder = Path(name).expanduser()
    if folder.is_dir() and not (folder / "config.json").exists():
        cause = (f"the folder has no config.json, so it is not a transformers model folder (nor a GGUF model: "
                 f"it holds no .gguf file); {one_line(exc, 200)}")
    elif isinstance(exc, RecursionError) or "digits" in str(exc):  # a hostile config.json
        cause = f"a JSON file of the model is unreadable: {parse_problem(exc)}"
    else:
        cause = one_line(exc)
    if role == "model":
        return BenchError(f"cannot load model '{name}': {cause}")
    return BenchError(f"{role} '{name}' could not be loaded ({cause}); pass a local model directory or GGUF file")


def load_config(name: str, revision: str | None = None, *, role: str = "model") -> Any:
    """The model's transformers config; a one-line error when there is none."""
    from transformers import AutoConfig

    source = local_name(name)
    try:
        return AutoConfig.from_pretrained(source, revision=revision, trust_remote_code=False)
    except (OSError, ValueError, KeyError, RecursionError) as exc:
        raise _load_error(role, name, exc) from None


def load_tokenizer(name: str, revision: str | None = None, *, role: str = "model", left_pad: bool = True) -> Any:
    """The model's tokenizer, left-padding batches (with a pad token) unless ``left_pad`` is False."""
    from transformers import AutoTokenizer

    source = local_name(name)
    try:
        tok = AutoTokenizer.from_pretrained(source, revision=revision, trust_remote_code=False)
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
        raise _load_error(role, name, exc) from None
    if left_pad:
        tok.padding_side = "left"
        if tok.pad_token_id is None:
            # Pad positions are masked out, so any id works; EOS is the usual choice.
            tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.convert_ids_to_tokens(0)
    return tok


def load_model(name: str, *, revision: str | None = None, dtype: Any = "float32", device: str | None = "cpu",
               role: str = "model", head: bool = True, extra: dict[str, Any] | None = None) -> Any:
    """A causal LM (``head``) or its bare transformer, in eval mode on ``device`` (None: left where
    loading put it). ``extra``: more ``from_pretrained`` arguments (see :mod:`bench.model_args`)."""
    from transformers import AutoModel, AutoModelForCausalLM

    check_weights(name, revision, role=role)
    auto = AutoModelForCausalLM if head else AutoModel
    source = local_name(name)
    try:
        model = auto.from_pretrained(source, revision=revision, dtype=torch_dtype(dtype), trust_remote_code=False,
                                     use_safetensors=None if allow_pickle() else True, **(extra or {}))
    except (OSError, ValueError, KeyError) as exc:
        raise _load_error(role, name, exc) from None
    return (model if device is None else model.to(device)).eval()


def context_length(config: Any) -> int | None:
    """The model's maximum number of positions, when its config says."""
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None
