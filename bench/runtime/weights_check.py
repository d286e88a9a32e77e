"""Plan-time checks of a model folder's safetensors, from their headers alone (no tensor is read).

A truncated ``model.safetensors``, a header claiming 2^60 bytes, or a ``config.json`` whose
``vocab_size`` or ``hidden_size`` the weights do not have (10^12 tokens would ask the allocator for
256 TB; a width of 10^9 ran for minutes before failing) are each one line naming the file, before
anything is loaded or generated.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import Any

from bench.errors import BenchError

MAX_HEADER = 100 << 20
"""The safetensors format's own cap on a header (100 MB)."""
EMBEDDINGS = re.compile(r"(^|\.)(embed_tokens|wte|word_embeddings|tok_embeddings)\.weight$")
FLOATS = frozenset({"F64", "F32", "F16", "BF16"})
LAYER = re.compile(r"\.(?:layers|h|blocks|layer)\.(\d+)\.")


def read_header(path: Path) -> dict[str, Any]:
    """The tensor table of one safetensors file, checked against the file's size."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise BenchError(f"{path} is truncated: {size} bytes, too short for a safetensors header")
        (length,) = struct.unpack("<Q", head)
        if length > MAX_HEADER or 8 + length > size:
            raise BenchError(f"{path}: its header claims {length:,} bytes, but the file has {size:,}; "
                             "the file is truncated or not safetensors")
        raw = f.read(length)
    try:
        table = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        table = None
    if not isinstance(table, dict):
        raise BenchError(f"{path}: its header is not a safetensors tensor table; the file is damaged")
    data = size - 8 - length
    for name, entry in table.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)
                and 0 <= offsets[0] <= offsets[1] <= data):
            raise BenchError(f"{path}: tensor '{name[:80]}' lies outside the file's {data:,} bytes of data; "
                             "the file is truncated or damaged")
    return table


def check_folder(folder: Path, config: Any | None) -> None:
    """Every safetensors file of ``folder`` is whole, and the weights have ``config``'s vocabulary,
    width and depth (when the tensor names show them)."""
    tables = {p: read_header(p) for p in sorted(folder.glob("*.safetensors"))}
    if config is None or not tables:
        return
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    shapes = {name: entry.get("shape") for table in tables.values() for name, entry in table.items()
              if name != "__metadata__" and isinstance(entry, dict) and entry.get("dtype") in FLOATS}  # not packed
    embedding = next((shape for name, shape in shapes.items() if EMBEDDINGS.search(name)), None)
    vocab, width = getattr(text, "vocab_size", None), getattr(text, "hidden_size", None)
    if isinstance(embedding, list) and len(embedding) == 2:
        for key, value, stored in (("vocab_size", vocab, embedding[0]), ("hidden_size", width, embedding[1])):
            if type(value) is int and value != stored:
                raise BenchError(f"{folder / 'config.json'}: {key} is {value}, but the weights' embeddings have "
                                 f"{stored}; the config does not belong to these weights")
    layers = {int(m.group(1)) for name in shapes for m in [LAYER.search(name)] if m}
    depth = getattr(text, "num_hidden_layers", None)
    if layers and type(depth) is int and depth > max(layers) + 1:
        raise BenchError(f"{folder / 'config.json'}: num_hidden_layers is {depth}, but the weights hold "
                         f"{max(layers) + 1} layers; the config does not belong to these weights")
