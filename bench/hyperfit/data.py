"""Training data for hyperfitting: text from a file or a Hugging Face dataset, cut into sequences.

A SOURCE is one of
- a ``.txt`` file (one document),
- a ``.jsonl`` file (one document per line, field ``text``),
- a directory holding ``.txt``/``.jsonl`` files (each read as above, in name order),
- a Hugging Face dataset ``name[:config][@split]`` (column ``text``, split ``train`` by default),
  which may also be a local dataset directory with other data files (csv, parquet, ...).

Documents are tokenized without special tokens and joined with the tokenizer's EOS token (when it
has one), then cut into consecutive non-overlapping sequences of ``seq_len`` tokens.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from bench.errors import BenchError, parse_problem

if TYPE_CHECKING:
    import torch

_FILE_SUFFIXES = (".txt", ".jsonl")


@dataclass(frozen=True)
class TrainingData:
    """Token sequences ready for training, with where they came from."""

    sequences: "torch.Tensor"
    """``[num_sequences, seq_len]`` int64 token ids."""
    source: str
    """The SOURCE as given."""
    sha256: str
    """sha256 of the selected token ids (int64, little endian): data, tokenizer and cut in one."""
    total_tokens: int
    """Tokens in the whole text."""


def _looks_like_path(source: str) -> bool:
    return source.startswith(("/", "./", "../", "~")) or source.endswith(_FILE_SUFFIXES + (".json",))


def _read_jsonl(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (ValueError, RecursionError) as e:
                raise BenchError(f"{path}:{lineno}: not valid JSON ({parse_problem(e)})") from None
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise BenchError(f"{path}:{lineno}: a JSONL record needs a string field 'text'")
            yield record["text"]


def _read_file(path: Path) -> Iterator[str]:
    if path.suffix == ".txt":
        yield path.read_text(encoding="utf-8")
    elif path.suffix == ".jsonl":
        yield from _read_jsonl(path)
    else:
        raise BenchError(f"{path}: data files must be .txt or .jsonl")


def _read_dataset(source: str) -> Iterator[str]:
    """``name[:config][@split]`` through ``datasets.load_dataset``."""
    spec, _, split = source.partition("@")
    name, _, config = spec.partition(":")
    if not name:
        raise BenchError(f"data source '{source}' names no dataset")
    import datasets

    try:
        ds = datasets.load_dataset(name, config or None, split=split or "train")
    except Exception as e:  # datasets raises many types (FileNotFound, ValueError, connection errors)
        message = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise BenchError(f"cannot load dataset '{source}': {type(e).__name__}: {message}") from None
    if "text" not in ds.column_names:
        raise BenchError(f"dataset '{source}' has no column 'text' (columns: {', '.join(ds.column_names)})")
    for text in ds["text"]:
        if isinstance(text, str):
            yield text


def read_documents(source: str) -> Iterator[str]:
    """The documents of SOURCE, in order. Raises BenchError for a missing or unreadable source."""
    path = Path(source).expanduser()
    if path.is_file():
        yield from _read_file(path)
    elif path.is_dir() and any(p.suffix in _FILE_SUFFIXES for p in path.iterdir()):
        for p in sorted(q for q in path.iterdir() if q.is_file() and q.suffix in _FILE_SUFFIXES):
            yield from _read_file(p)
    elif path.is_dir() or Path(source.partition("@")[0]).expanduser().is_dir() or not _looks_like_path(source):
        yield from _read_dataset(source)  # a Hub name, or a local dataset directory (+ @split)
    else:
        raise BenchError(f"data source '{source}' does not exist")


def tokenize_documents(tokenizer: Any, documents: Iterator[str]) -> list[int]:
    """All documents' token ids, joined with EOS when the tokenizer has one; blank ones skipped."""
    from transformers.utils import logging as hf_logging

    eos = tokenizer.eos_token_id
    ids: list[int] = []
    # Tokenizing a whole book at once triggers the "longer than the model's maximum" warning,
    # which is irrelevant here: the ids are cut into short sequences afterwards.
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        for text in documents:
            if not text.strip():
                continue
            if ids and eos is not None:
                ids.append(eos)
            ids.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
    finally:
        hf_logging.set_verbosity(verbosity)
    return ids


def build_sequences(tokenizer: Any, source: str, seq_len: int, num_sequences: int) -> TrainingData:
    """The first ``num_sequences`` consecutive sequences of ``seq_len`` tokens of SOURCE."""
    import numpy as np
    import torch

    if seq_len < 2 or num_sequences < 1:
        raise BenchError("--seq-len must be at least 2 and --num-sequences at least 1")
    ids = tokenize_documents(tokenizer, read_documents(source))
    available = len(ids) // seq_len
    if available < num_sequences:
        raise BenchError(
            f"data '{source}' holds {len(ids)} tokens, i.e. {available} sequences of {seq_len} tokens; "
            f"{num_sequences} were asked for (lower --num-sequences or --seq-len)"
        )
    chosen = np.asarray(ids[: num_sequences * seq_len], dtype="<i8")
    digest = hashlib.sha256(chosen.tobytes()).hexdigest()
    sequences = torch.from_numpy(chosen.reshape(num_sequences, seq_len).copy())
    return TrainingData(sequences, source, digest, len(ids))
