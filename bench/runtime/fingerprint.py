"""What a model is, for run identities: a hash of its files' content, or the Hub commit.

A local folder is fingerprinted by the sha256 of every file that defines the model (weights,
configs, tokenizer files), so weights edited in place, even to the same size, give a new
fingerprint and therefore a new run. Hashing gigabytes on every run would be slow, so each file's
hash is cached in ``<cache root>/fingerprints.json`` under its path, size, mtime (ns) and inode; a
file written again gets a new mtime and is read again. A Hub id is identified by the commit its
revision resolves to (the local cache's when offline).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable

from bench.errors import BenchError
from bench.runtime.hub_cache import cached_snapshot, hub_offline

MODEL_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".json", ".model", ".txt", ".tiktoken")
"""Top-level files that change what a model computes or how it tokenizes."""
SCHEME = "content-v1"
"""Recorded next to fingerprints, so a stored one is compared only with one of the same kind."""
_CHUNK = 1 << 20


def cache_root() -> Path:
    """``$BENCH_CACHE_DIR``, else ``~/.cache/decbench``: decbench's caches (features, fingerprints)."""
    root = os.environ.get("BENCH_CACHE_DIR")
    return Path(root) if root else Path.home() / ".cache" / "decbench"


def _stat_key(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino}


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}  # missing or damaged: it is only a cache
    return data if isinstance(data, dict) else {}


def file_hashes(paths: Iterable[Path]) -> dict[Path, str]:
    """The sha256 of each file, read from the cache when its size, mtime and inode are unchanged."""
    from bench.runtime.provenance import write_json_atomic

    cache_file = cache_root() / "fingerprints.json"
    cache = _read_cache(cache_file)
    result, changed = {}, False
    for path in paths:
        key, stat = str(path.resolve()), _stat_key(path)
        entry = cache.get(key)
        if not (isinstance(entry, dict) and {k: entry.get(k) for k in stat} == stat):
            entry = dict(stat, sha256=_sha256(path))
            cache[key], changed = entry, True
        result[path] = entry["sha256"]
    if changed:
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(cache_file, cache)
        except OSError:
            pass  # a read-only cache only costs the hashing again next time
    return result


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def content_fingerprint(directory: str | os.PathLike, skip: Iterable[str] = ()) -> str:
    """16 hex digits: sha256 over the names and content hashes of the folder's model files."""
    folder = Path(directory)
    skipped = set(skip)
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and p.suffix in MODEL_SUFFIXES and p.name not in skipped)
    hashes = file_hashes(files)
    h = hashlib.sha256()
    for path in files:
        h.update(f"{path.name}\x1f{hashes[path]}\n".encode())
    return h.hexdigest()[:16]


def hub_commit(name: str, revision: str | None = None) -> str | None:
    """The commit a Hub id's revision resolves to: asked of the Hub, or the local cache's when offline.

    None for local paths and for ids that are neither reachable nor cached.
    """
    if Path(name).expanduser().exists():
        return None
    if revision and len(revision) == 40 and all(c in "0123456789abcdef" for c in revision):
        return revision
    if not hub_offline():
        try:
            from huggingface_hub import HfApi

            sha = HfApi().model_info(name, revision=revision, timeout=10).sha
            if sha:
                return sha
        except Exception:  # unreachable or unknown: fall back to the cache
            pass
    snapshot = cached_snapshot(name, revision)
    return snapshot.name if snapshot is not None else None


def gguf_file(name: str | os.PathLike) -> Path | None:
    """The GGUF file ``name`` stands for: the file itself, or the one ``.gguf`` in a folder without
    a ``config.json``; None when ``name`` is not a GGUF model. A folder with several is an error."""
    path = Path(name).expanduser()
    if path.suffix.lower() == ".gguf" and not path.is_dir():
        if not path.is_file():
            raise BenchError(f"cannot load model '{name}': no such GGUF file")
        return path
    if not path.is_dir() or (path / "config.json").exists():
        return None
    found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".gguf")
    if len(found) > 1:
        raise BenchError(f"model folder '{name}' holds {len(found)} GGUF files ({', '.join(p.name for p in found[:3])}"
                         f"{', ...' if len(found) > 3 else ''}); pass --model with the one file to load")
    return found[0] if found else None


def file_sha256(path: Path) -> str:
    """The file's sha256, from the fingerprint cache when the file is unchanged."""
    return file_hashes([path])[path]


def gguf_fingerprint(path: Path) -> str:
    """16 hex digits over the file's name and content, the shape of a folder's content fingerprint."""
    digest = hashlib.sha256(f"{path.name}\x1f{file_sha256(path)}\n".encode()).hexdigest()
    return digest[:16]


def model_identity(name: str, revision: str | None = None) -> tuple[str, str | None]:
    """(content fingerprint, Hub commit) of a model: the first for a local folder, the second for a Hub id."""
    single = gguf_file(name)
    if single is not None:  # the file's content, not the cache folder it is converted into
        return gguf_fingerprint(single), None
    path = Path(name).expanduser()
    if path.is_dir():
        return content_fingerprint(path), None
    return "", hub_commit(name, revision)


def legacy_fingerprint(name: str) -> str | None:
    """The names-and-sizes fingerprint hyperfit.json files held before content fingerprints.

    Only to check such older checkpoints against their base model; never written any more.
    """
    path = Path(name).expanduser()
    directory = path if path.is_dir() else cached_snapshot(name)
    if directory is None:
        return None
    entries = sorted((p.name, p.stat().st_size) for p in directory.iterdir() if p.is_file() and (
        p.name == "config.json" or p.name.endswith((".safetensors", ".bin", ".pt", ".pth", ".index.json"))))
    if not entries:
        return None
    h = hashlib.sha256()
    for file_name, size in entries:
        h.update(f"{file_name}\x1f{size}\n".encode())
    return h.hexdigest()[:16]
