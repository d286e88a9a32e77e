"""GGUF models (llama.cpp's single-file format): ``--model FILE.gguf`` or a folder holding one.

transformers reads GGUF itself (with PyPI's ``gguf``) by dequantizing every tensor to float32,
which takes seconds to minutes and is the same work on every load. So a GGUF file is converted
once into an ordinary safetensors folder (config, weights, tokenizer, generation config) in
``<cache root>/gguf/<sha256 of the file, 16 hex>/``, and every loader (``bench run`` and its
``--hyperfit``/``--amateur``/scorer/judge models, ``bench hyperfit``, ``bench analyze``,
``--backend vllm``) reads that folder. The cache is keyed by content, so a file edited in place
gets a new folder, and a folder is written under a temporary name and renamed when complete, so
a killed conversion never leaves a half folder that later loads would trust.

Run identities do not see the cache: a GGUF model's fingerprint is a hash of the file's content
(:func:`fingerprint`), and its name is the path the user gave.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from bench.errors import BenchError, one_line
from bench.runtime.fingerprint import cache_root, file_hashes, file_sha256, gguf_file
from bench.runtime.fingerprint import gguf_fingerprint as fingerprint

__all__ = ["gguf_file", "fingerprint", "file_sha256", "file_hashes", "resolve", "metadata", "convert",
           "converted_dir", "cache_dir"]

MARKER = "gguf.json"
"""Written last into a converted folder: where it came from (and proof the folder is complete)."""
CONVERSION = 1
"""Bumped when the conversion changes what it writes; part of the cache key."""


def cache_dir() -> Path:
    """Where converted GGUF models live: ``<cache root>/gguf`` (``$BENCH_CACHE_DIR``, else ``~/.cache/decbench``)."""
    return cache_root() / "gguf"


def converted_dir(path: Path) -> Path:
    """The cache folder of this file (whether or not it has been converted yet)."""
    return cache_dir() / f"{file_sha256(path)[:16]}-v{CONVERSION}"


def resolve(name: str) -> str:
    """The folder to load ``name`` from: the converted folder of a GGUF model (converting it on
    first use), else ``name`` unchanged. Cheap for anything that is not a GGUF model."""
    path = gguf_file(name)
    if path is None:
        return name
    target = converted_dir(path)
    if not (target / MARKER).is_file():
        convert(path, target)
    return str(target)


def metadata(name: str) -> dict[str, Any] | None:
    """What the conversion recorded (source file, sha256, GGUF name and architecture), or None."""
    path = gguf_file(name)
    if path is None:
        return None
    try:
        return json.loads((converted_dir(path) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _read_header(path: Path) -> dict[str, Any]:
    """The GGUF file's own name, architecture and file type (its quantization), without its tensors."""
    try:
        from gguf import GGUFReader
    except ImportError:
        raise BenchError(f"cannot load model '{path}': reading GGUF files needs the 'gguf' package "
                         "(pip install gguf)") from None
    try:
        reader = GGUFReader(str(path))
    except Exception as exc:  # a truncated or foreign file: gguf raises ValueError, struct errors, ...
        raise BenchError(f"cannot load model '{path}': not a readable GGUF file ({one_line(exc)})") from None

    def field(key: str) -> Any:
        found = reader.fields.get(key)
        return None if found is None else found.contents()

    return {"gguf_name": field("general.name"), "architecture": field("general.architecture"),
            "file_type": field("general.file_type"), "tensors": len(reader.tensors)}


def convert(path: Path, target: Path) -> None:
    """Dequantize ``path`` with transformers' GGUF loader and save it as a float32 safetensors folder."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    header = _read_header(path)
    print(f"converting GGUF {path.name} to float32 once, into {target} (later loads read that folder)",
          file=sys.stderr, flush=True)
    parent, file_name = str(path.parent), path.name
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # transformers' per-tensor progress bars
            tokenizer = AutoTokenizer.from_pretrained(parent, gguf_file=file_name)
            model = AutoModelForCausalLM.from_pretrained(parent, gguf_file=file_name, dtype=torch.float32)
    except (ValueError, KeyError, OSError, NotImplementedError, RuntimeError) as exc:
        arch = header.get("architecture") or "unknown"
        raise BenchError(f"cannot load GGUF model '{path}' (architecture {arch}, file type "
                         f"{header.get('file_type')}): transformers cannot read it: {one_line(exc)}") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    # The weights are plain float32 now; without this, transformers refuses to save a model it
    # loaded through its GGUF "quantizer" although nothing is quantized any more.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        record = {"source": str(path.resolve()), "file": file_name, "sha256": file_sha256(path),
                  "conversion": CONVERSION, "transformers": transformers.__version__, **header}
        (tmp / MARKER).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished the same conversion first: keep theirs
            if not (target / MARKER).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
