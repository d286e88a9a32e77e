"""Hyperfitted checkpoints: loading them over their base model, fingerprints, and resumable state.

A hyperfit output directory holds either a full model (``config.json`` + safetensors) or a PEFT
adapter (``adapter_config.json`` + ``adapter_model.safetensors``), the tokenizer, ``hyperfit.json``
(metadata, see :mod:`bench.hyperfit.train`), ``loss.csv``/``loss.png`` and, while training or to
extend a run, ``state/`` (trainable weights, optimizer, RNG and progress at the last epoch end).
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

from bench.errors import BenchError, parse_problem
from bench.runtime import (SCHEME, check_weights, content_fingerprint, first_line, legacy_fingerprint, load_config,
                           load_model, load_tokenizer, model_identity, write_json_atomic)

METADATA = "hyperfit.json"
STATE = "state"
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")


def checkpoint_fingerprint(path: str | os.PathLike) -> str:
    """Hash of the content of a checkpoint's model files and its hyperfit.json (not its loss plots or state)."""
    directory = Path(path)
    if not directory.is_dir():
        raise BenchError(f"hyperfit checkpoint '{path}' does not exist")
    return content_fingerprint(directory)


def base_fingerprint(name: str) -> dict[str, Any]:
    """What hyperfit.json records of the base model to recognise it later: content hash or Hub commit."""
    fingerprint, commit = model_identity(name)
    return {"fingerprint": fingerprint or None, "commit": commit, "scheme": SCHEME}


def same_base(recorded: dict[str, Any], name: str) -> bool | None:
    """Whether ``name`` is the base model hyperfit.json recorded; None when either cannot be identified.

    Records written before content fingerprints (no ``scheme``) are compared with the old
    names-and-sizes fingerprint they hold.
    """
    if recorded.get("scheme") != SCHEME:
        mine, theirs = legacy_fingerprint(name), recorded.get("fingerprint")
        return mine == theirs if mine and theirs else None
    now = base_fingerprint(name)
    for key in ("fingerprint", "commit"):
        if recorded.get(key) and now[key]:
            return recorded[key] == now[key]
    return None


def read_metadata(directory: str | os.PathLike) -> dict[str, Any] | None:
    """The content of ``hyperfit.json``, or None when there is none."""
    path = Path(directory) / METADATA
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as e:
        raise BenchError(f"{path} is not valid JSON ({parse_problem(e)})") from None


def write_metadata(directory: Path, meta: dict[str, Any]) -> None:
    """Write ``hyperfit.json`` atomically (a crash never leaves half a file)."""
    write_json_atomic(directory / METADATA, meta, sort_keys=True)


FINAL_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors")


def is_finished(directory: str | os.PathLike, meta: dict[str, Any] | None) -> bool:
    """The one test of a finished hyperfit run: ``finished`` recorded *and* its weights on disk.

    ``finished`` is written only after every final file is in place (see :func:`save_final`), so a
    run killed before that, or one whose weights went missing, counts as unfinished and
    ``bench hyperfit`` finishes it from ``state/``.
    """
    directory = Path(directory)
    return bool(meta and meta.get("finished")) and any((directory / f).is_file() for f in FINAL_WEIGHTS)


def save_final(directory: Path, model: Any, tokenizer: Any) -> None:
    """Write the final model (or adapter) and tokenizer so that no reader sees half a file.

    Everything is saved in a hidden folder first, then each file is moved into place with an
    atomic rename; a kill in between leaves whole files only, and ``finished`` still unset.
    """
    staging = directory / ".final.new"
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(str(staging))
    tokenizer.save_pretrained(str(staging))
    for path in sorted(staging.iterdir()):
        os.replace(path, directory / path.name)
    staging.rmdir()


EPOCHS = "epochs"
"""``bench hyperfit --save-every K`` keeps a checkpoint of every K-th epoch in ``OUT/epochs/epoch-KKK``."""


def epoch_dir(directory: Path, epoch: int) -> Path:
    return Path(directory) / EPOCHS / f"epoch-{epoch:03d}"


def save_epoch(directory: Path, epoch: int, model: Any, tokenizer: Any, meta: dict[str, Any]) -> Path:
    """A finished, loadable checkpoint of the model after ``epoch`` (its own ``hyperfit.json`` says
    which epoch of which run), written whole under a temporary name and renamed into place."""
    target = epoch_dir(directory, epoch)
    staging = target.with_name(f".{target.name}.new")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    model.save_pretrained(str(staging))
    tokenizer.save_pretrained(str(staging))
    losses = list(meta.get("epoch_losses") or [])[:epoch]
    own = dict(meta, finished=True, epochs_done=epoch, epoch_losses=losses, final_loss=losses[-1] if losses else None,
               epoch_checkpoint=epoch, epoch_of=str(Path(directory).name))
    (staging / METADATA).write_text(json.dumps(own, indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    return target


def expand_hyperfit(value: str) -> list[str]:
    """``DIR@epoch=K`` -> the epoch-K checkpoint of DIR; ``DIR@every`` -> every saved epoch of DIR;
    anything else as it is. One line when the epochs were not saved."""
    if "@" not in value:
        return [value]
    base, _, which = value.rpartition("@")
    saved = sorted((p for p in (Path(base) / EPOCHS).glob("epoch-*") if p.is_dir()), key=lambda p: p.name)
    names = ", ".join(p.name.removeprefix("epoch-").lstrip("0") or "0" for p in saved) or "none"
    if which == "every":
        if not saved:
            raise BenchError(f"--hyperfit {value}: '{base}' kept no epochs (train it with --save-every K)")
        return [str(p) for p in saved]
    key, eq, number = which.partition("=")
    if key != "epoch" or not eq or not number.isdigit():
        raise BenchError(f"--hyperfit {value}: after '@' give epoch=K or every")
    path = epoch_dir(Path(base), int(number))
    if not path.is_dir():
        raise BenchError(f"--hyperfit {value}: '{base}' kept no epoch {int(number)} (kept: {names})")
    return [str(path)]


# --- resumable training state -------------------------------------------------------------------


TRAINER_TENSORS = "trainer.safetensors"
TRAINER_JSON = "trainer.json"
STATE_FILES = ("weights.safetensors", TRAINER_TENSORS, TRAINER_JSON, "progress.json")
"""Everything in a state folder: tensors as safetensors, the rest as JSON. No pickles: a state
folder another program wrote can be resumed without running its code."""


def save_state(directory: Path, model: Any, optimizer: Any, progress: dict[str, Any]) -> None:
    """Save trainable weights and the optimizer's tensors and RNG (safetensors), and the optimizer's
    other values and the progress (JSON).

    The new state is written beside the old one and swapped in, so an interrupted save leaves the
    previous epoch's state intact.
    """
    import torch
    from safetensors.torch import save_file

    new, old, cur = directory / (STATE + ".new"), directory / (STATE + ".old"), directory / STATE
    shutil.rmtree(new, ignore_errors=True)
    new.mkdir()
    weights = {n: p.detach().contiguous().cpu() for n, p in model.named_parameters() if p.requires_grad}
    save_file(weights, str(new / "weights.safetensors"))
    tensors, plain = _split_optimizer_state(optimizer.state_dict())
    tensors["rng/cpu"] = torch.get_rng_state()
    if torch.cuda.is_available():
        tensors.update({f"rng/cuda/{i}": t for i, t in enumerate(torch.cuda.get_rng_state_all())})
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(new / TRAINER_TENSORS))
    (new / TRAINER_JSON).write_text(json.dumps(plain) + "\n", encoding="utf-8")
    (new / "progress.json").write_text(json.dumps(progress) + "\n", encoding="utf-8")
    if cur.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(cur, old)
    os.replace(new, cur)
    shutil.rmtree(old, ignore_errors=True)


def _split_optimizer_state(state: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """An optimizer's ``state_dict()`` as tensors (``opt/<param>/<key>``) and JSON (the rest)."""
    import torch

    tensors, values = {}, {}
    for param, entries in state["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"opt/{param}/{key}"] = value
            else:
                values[f"{param}/{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "values": values}


def _join_optimizer_state(tensors: dict[str, Any], plain: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("opt/"):
            _, param, key = name.split("/", 2)
            state.setdefault(int(param), {})[key] = value
    for name, value in plain["values"].items():
        param, key = name.split("/", 1)
        state.setdefault(int(param), {})[key] = value
    return {"state": state, "param_groups": plain["param_groups"]}


def state_dir(directory: Path) -> Path | None:
    """The state directory to resume from (``state/``, or ``state.old/`` after a crash mid-swap)."""
    for name in (STATE, STATE + ".old"):
        if (directory / name / "progress.json").is_file():
            return directory / name
    return None


def check_state(directory: Path, meta: dict[str, Any]) -> None:
    """Before any model is loaded: the state's files are whole, hold no pickle, and carry as many
    trainable values as ``meta`` (the run's hyperfit.json) says; else one line naming the file."""
    from bench.runtime.weights_check import read_header

    source = state_dir(directory)
    if source is None:
        raise BenchError(f"'{directory}' holds no saved training state to resume from")
    _refuse_pickles(source)
    _read_progress(source / "progress.json")
    _read_trainer_json(source)
    for name in ("weights.safetensors", TRAINER_TENSORS):
        try:
            table = read_header(source / name)
        except OSError as exc:
            raise BenchError(f"'{source / name}' is missing or unreadable ({exc.strerror or exc}); delete "
                             f"'{source}' to train from the start") from None
        if name == "weights.safetensors":
            count = sum(math.prod(e.get("shape") or []) for k, e in table.items()
                        if k != "__metadata__" and isinstance(e, dict))
            expected = meta.get("trainable_parameters")
            if type(expected) is int and count != expected:
                raise BenchError(f"'{source / name}' holds {count:,} values, but this run trains {expected:,}; "
                                 f"it is another run's state: delete '{source}' to train from the start")


def _refuse_pickles(source: Path) -> None:
    pickles = sorted(p.name for p in source.iterdir() if p.suffix in (".pt", ".pth", ".bin", ".pkl", ".pickle"))
    if pickles:
        raise BenchError(f"'{source}' holds {pickles[0]}, a pickle; decbench never unpickles a training state "
                         f"(it may run code). Delete '{source}' to train from the start")


def _read_trainer_json(source: Path) -> dict[str, Any]:
    try:
        plain = json.loads((source / TRAINER_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        plain = None
    if not (isinstance(plain, dict) and isinstance(plain.get("param_groups"), list)
            and isinstance(plain.get("values"), dict)):
        raise BenchError(f"'{source / TRAINER_JSON}' is missing or damaged; delete '{source}' to train "
                         "from the start")
    return plain


def load_state(directory: Path, model: Any, optimizer: Any) -> dict[str, Any]:
    """Restore weights, optimizer and RNG saved by :func:`save_state`; return the progress.

    Every file is checked before anything is restored; a damaged, foreign or pickled state is one
    line naming the file (a pickle is never unpickled, not even with torch's restricted loader).
    """
    import torch

    source = state_dir(directory)
    if source is None:
        raise BenchError(f"'{directory}' holds no saved training state to resume from")
    _refuse_pickles(source)
    progress = _read_progress(source / "progress.json")
    weights = _read_tensors(source / "weights.safetensors")
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if set(weights) != set(trainable) or any(weights[n].shape != p.shape for n, p in trainable.items()):
        raise BenchError(f"the saved state in '{source}' does not match this model's trainable parameters")
    tensors = _read_tensors(source / TRAINER_TENSORS)
    plain = _read_trainer_json(source)
    try:
        optimizer_state = _join_optimizer_state(tensors, plain)
        rng = tensors["rng/cpu"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        raise BenchError(f"'{source / TRAINER_JSON}' is missing or damaged; delete '{source}' to train "
                         "from the start") from None
    try:
        optimizer.load_state_dict(optimizer_state)
        torch.set_rng_state(rng)
    except (ValueError, KeyError, TypeError, RuntimeError, IndexError) as exc:
        raise BenchError(f"the saved optimizer state in '{source}' does not fit this run "
                         f"({type(exc).__name__}); delete '{source}' to train from the start") from None
    model.load_state_dict(weights, strict=False)
    cuda = [tensors[k] for k in sorted((k for k in tensors if k.startswith("rng/cuda/")), key=lambda k: int(k[9:]))]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    return progress


def _read_tensors(path: Path) -> dict[str, Any]:
    """A safetensors file's tensors, or one line naming it (missing, truncated, a lying header)."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own SafetensorError, OSError or ValueError
        raise BenchError(f"'{path}' is missing or damaged ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:120] if str(exc) else ''}); delete '{path.parent}' "
                         "to train from the start") from None


def _read_progress(path: Path) -> dict[str, Any]:
    """``progress.json``, checked: an epoch count, and loss lists of numbers."""
    try:
        progress = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        progress = None
    ok = (isinstance(progress, dict) and type(progress.get("epoch")) is int and 0 <= progress["epoch"] < 10 ** 9
          and all(isinstance(progress.get(k), list) for k in ("history", "epoch_losses"))
          and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in progress["epoch_losses"]))
    if not ok:
        raise BenchError(f"'{path}' is not a valid training progress; delete '{path.parent}' to train "
                         "from the start")
    return progress


# --- loading a hyperfitted checkpoint -----------------------------------------------------------


def load_base_model(name: str, dtype: Any) -> Any:
    """The base model on CPU (see :func:`bench.runtime.load_model`: safetensors only, no remote code)."""
    return load_model(name, dtype=dtype, device=None)


def _vocab_size(name: str | Path) -> int | None:
    try:
        config = load_config(str(name))
    except BenchError:
        return None
    return getattr(config.get_text_config(), "vocab_size", None)


def _tokenizer_vocab(name: str | Path) -> dict[str, int] | None:
    try:
        return load_tokenizer(str(name), left_pad=False).get_vocab()
    except BenchError:
        return None


def _check_base(path: Path, meta: dict[str, Any] | None, base: str, is_adapter: bool) -> None:
    """Refuse a checkpoint trained from another model than ``base``."""
    trained = (meta or {}).get("base_model", {})
    same = same_base(trained, base)
    if same is not None:
        if not same:
            raise BenchError(
                f"hyperfit checkpoint '{path}' was trained from '{trained.get('name')}', "
                f"whose files differ from base model '{base}'"
            )
        return  # the fingerprints agree: a moved or renamed base directory is fine
    if not is_adapter:
        return
    adapter_base = json.loads((path / "adapter_config.json").read_text()).get("base_model_name_or_path")
    if not adapter_base:
        return
    adapter_fp, base_fp = model_identity(adapter_base), model_identity(base)
    same = adapter_fp == base_fp if any(adapter_fp) and any(base_fp) else adapter_base.rstrip("/") == base.rstrip("/")
    if not same:
        raise BenchError(f"adapter '{path}' was trained on '{adapter_base}', not on base model '{base}'")


def _check_vocab(path: Path, base: str, is_adapter: bool) -> None:
    """Refuse a checkpoint whose vocabulary size or tokenizer differs from the base's."""
    if not is_adapter:
        mine, theirs = _vocab_size(path), _vocab_size(base)
        if mine is not None and theirs is not None and mine != theirs:
            raise BenchError(
                f"hyperfit checkpoint '{path}' has a vocabulary of {mine} tokens, base model '{base}' {theirs}"
            )
    if any((path / f).is_file() for f in _TOKENIZER_FILES):
        mine_vocab, base_vocab = _tokenizer_vocab(path), _tokenizer_vocab(base)
        if mine_vocab is not None and base_vocab is not None and mine_vocab != base_vocab:
            raise BenchError(f"the tokenizer of hyperfit checkpoint '{path}' differs from base model '{base}'s")


def check_hyperfit(path: str | os.PathLike, base_model_name_or_path: str) -> tuple[dict[str, Any] | None, bool]:
    """Every check of :func:`load_hyperfit` that needs no weights; returns (metadata, is_adapter).

    ``bench run`` calls it while planning, so a bad checkpoint stops the run before anything is written.
    """
    directory = Path(path)
    if not directory.is_dir():
        raise BenchError(f"hyperfit checkpoint '{path}' does not exist")
    meta = read_metadata(directory)
    is_adapter = (directory / "adapter_config.json").is_file()
    is_full = (directory / "config.json").is_file() and any(
        p.name.endswith(_WEIGHT_SUFFIXES) for p in directory.iterdir() if p.is_file())
    if meta is not None and not is_finished(directory, meta):
        # Weights there, if any, are from before a run that is still going (or was killed).
        raise BenchError(f"the hyperfit run in '{path}' is unfinished "
                         f"({meta.get('epochs_done', 0)} epochs done): run 'bench hyperfit' again to finish it")
    if not (is_adapter or is_full):
        raise BenchError(f"'{path}' is neither a model directory nor a PEFT adapter")
    check_weights(str(directory), role="hyperfit checkpoint")
    _check_base(directory, meta, base_model_name_or_path, is_adapter)
    _check_vocab(directory, base_model_name_or_path, is_adapter)
    return meta, is_adapter


def load_hyperfit(
    path: str | os.PathLike, base_model_name_or_path: str, *, dtype: Any = "float32", device: Any = "cpu"
) -> tuple[Any, dict[str, Any] | None]:
    """Load a hyperfitted model: a full model directory, or a PEFT adapter merged into the base.

    Returns the model (eval mode, on ``device``) and the ``hyperfit.json`` metadata when present.
    Raises BenchError for a missing path, a directory that is no model, a checkpoint trained from
    another base, or a vocabulary/tokenizer that differs from the base's (see :func:`check_hyperfit`).
    """
    directory = Path(path)
    meta, is_adapter = check_hyperfit(directory, base_model_name_or_path)
    if is_adapter:
        from peft import PeftModel

        base = load_base_model(base_model_name_or_path, dtype)
        try:
            model = PeftModel.from_pretrained(base, str(directory)).merge_and_unload()
        except (OSError, ValueError, KeyError, RuntimeError) as e:
            raise BenchError(
                f"cannot apply adapter '{path}' to '{base_model_name_or_path}': {first_line(e)}") from None
    else:
        model = load_base_model(str(directory), dtype)
    return model.to(device).eval(), meta
