"""Text features for MAUVE: the last-layer hidden state of each text's final token, batched and cached.

This is MAUVE's featurization (Pillutla et al., 2021): tokenize with the featurizer's tokenizer
(``tokenizer.encode(text, truncation=True, max_length=max_tokens)``, as ``mauve-text`` does), run
the model and keep the last layer's hidden state at the last real token. Texts are sorted by
length and run in right-padded batches under a token budget; right padding is exact for causal
models because padding comes after every real token.

Precision: ``dtype="float32"`` (the default) gives ``mauve-text``'s features to float rounding.
``bfloat16``/``float16`` run the model in half precision and return float32 features: several
times faster where the hardware has half-precision matrix units (GPU tensor cores, CPUs with
AVX512-BF16 or AMX), at about 1% relative feature error; ``benchmarks/bench_featurize.py``
measures both the speed and how far MAUVE moves.

Features are cached one ``.npy`` file per text under
``<cache_dir>/<fingerprint>/<sha256 of text>[:2]/<sha256>.npy``; the fingerprint hashes the model
(name or path, its config and weight file sizes), ``max_tokens`` and the feature definition, so a
changed model or length never reuses stale features.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.errors import BenchError
from bench.runtime import PRECISIONS, cache_root, load_model, load_tokenizer, resolve_device

FEATURE_VERSION = "last-token-last-layer-v1"
DEFAULT_FEATURIZER = "gpt2-large"
"""The MAUVE paper's featurizer; loadable only where it is cached or the Hub is reachable."""


def default_cache_dir() -> Path:
    """``$BENCH_CACHE_DIR/features``, else ``~/.cache/decbench/features``."""
    return cache_root() / "features"


def text_key(text: str) -> str:
    """The cache key of a text: sha256 of its UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def context_length(model: str) -> int | None:
    """Positions the featurizer model has (``max_position_embeddings``/``n_positions``), None if unknown.

    Texts longer than that run past the position embeddings: stories260K (512 positions) gave
    MAUVE 0.006 with texts cut at 1024 tokens against 0.938 at 128.
    """
    from bench.runtime import load_config

    config = load_config(model, role="featurizer model").get_text_config()
    for name in ("max_position_embeddings", "n_positions", "n_ctx"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


@dataclass(frozen=True)
class FeaturizerSettings:
    """Everything that defines a featurization, recorded with every MAUVE score."""

    model: str = DEFAULT_FEATURIZER
    max_tokens: int = 1024
    batch_size: int = 32
    token_budget: int = 8192
    """Most padded tokens per forward pass (long texts get smaller batches)."""
    max_padding: float = 0.1
    """Largest fraction of a batch's positions that may be padding."""
    device: str = "auto"
    dtype: str = "float32"
    """Precision of the featurizer's forward pass: float32 (exact), bfloat16 or float16."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Featurizer:
    """Loads a Hugging Face model lazily and turns texts into a ``(n, hidden)`` float32 array."""

    def __init__(self, settings: FeaturizerSettings, cache_dir: str | Path | None = None):
        if settings.max_tokens < 1 or settings.batch_size < 1 or settings.token_budget < 1:
            raise BenchError("featurizer max_tokens, batch_size and token_budget must be positive")
        if not 0 <= settings.max_padding < 1:
            raise BenchError(f"featurizer max_padding must be in [0, 1); got {settings.max_padding}")
        if settings.dtype not in PRECISIONS:  # features are float32 whatever the precision of the pass
            raise BenchError(f"featurizer dtype must be one of {', '.join(PRECISIONS)}; got '{settings.dtype}'")
        self.settings = settings
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._model = None
        self._tokenizer = None
        self._fingerprint: str | None = None
        self.device = resolve_device(settings.device)
        self.featurized = 0
        """Texts actually run through the model (cache misses) since this object was made."""

    # -- loading ----------------------------------------------------------------------------
    def _load(self) -> None:
        if self._model is not None:
            return
        name, role = self.settings.model, "featurizer model"
        self._tokenizer = load_tokenizer(name, role=role, left_pad=False)
        self._model = load_model(name, dtype=self.settings.dtype, device=self.device, role=role, head=False)

    @property
    def tokenizer(self):
        self._load()
        return self._tokenizer

    def fingerprint(self) -> str:
        """Hash of model identity, max_tokens and feature definition (the cache folder name)."""
        if self._fingerprint is None:
            self._load()
            ident: dict[str, Any] = {
                "version": FEATURE_VERSION,
                "model": self.settings.model,
                "max_tokens": self.settings.max_tokens,
                "config": self._model.config.to_json_string(use_diff=False),
                "tokenizer": type(self._tokenizer).__name__,
                "vocab": len(self._tokenizer),
            }
            if self.settings.dtype != "float32":  # only then, so float32 caches made before dtype existed stay valid
                ident["dtype"] = self.settings.dtype
            from bench.runtime.loading import local_name

            path = Path(local_name(self.settings.model))
            if path.is_dir():  # local weights: their sizes and mtimes stand in for a full hash
                ident["weights"] = sorted(
                    (f.name, f.stat().st_size, int(f.stat().st_mtime))
                    for f in path.iterdir() if f.suffix in (".safetensors", ".bin", ".pt")
                )
            blob = json.dumps(ident, sort_keys=True).encode()
            self._fingerprint = hashlib.sha256(blob).hexdigest()[:24]
        return self._fingerprint

    # -- tokens and features ----------------------------------------------------------------
    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text, cut to ``max_tokens`` exactly as ``mauve-text`` tokenizes."""
        tok = self.tokenizer
        return [tok.encode(t, truncation=True, max_length=self.settings.max_tokens) for t in texts]

    def batches(self, lengths: list[int]) -> list[list[int]]:
        """Indices of the texts in each forward pass, longest first.

        Texts sorted by length are cut into batches of at most ``batch_size`` texts and
        ``token_budget`` padded tokens, and a batch stops growing before padding would exceed
        ``max_padding`` of it: padded positions are computed and thrown away, which costs more
        than the batching saves once the hardware is already busy (any CPU; a GPU with long texts).
        """
        s = self.settings
        order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
        out, start = [], 0
        while start < len(order):
            longest = lengths[order[start]]
            size, real = 1, longest
            while start + size < len(order) and size < s.batch_size:
                following = lengths[order[start + size]]
                cells = (size + 1) * longest  # positions of the batch if the next text joins it
                if cells > s.token_budget or cells - (real + following) > s.max_padding * cells:
                    break
                real += following
                size += 1
            out.append(order[start:start + size])
            start += size
        return out

    def featurize_ids(self, token_ids: list[list[int]]) -> np.ndarray:
        """Features of already tokenized texts (no cache), in input order."""
        import torch

        self._load()
        if any(len(ids) == 0 for ids in token_ids):
            raise BenchError("cannot featurize an empty text (zero featurizer tokens)")
        out: list[np.ndarray | None] = [None] * len(token_ids)
        with torch.inference_mode():
            for batch in self.batches([len(ids) for ids in token_ids]):
                longest = len(token_ids[batch[0]])
                lengths = torch.tensor([len(token_ids[i]) for i in batch])
                ids = torch.zeros(len(batch), longest, dtype=torch.long)
                mask = torch.zeros(len(batch), longest, dtype=torch.long)
                for row, i in enumerate(batch):
                    ids[row, : lengths[row]] = torch.tensor(token_ids[i])
                    mask[row, : lengths[row]] = 1
                # no padding in the batch: no mask, so attention can take its fused causal path
                padded = bool((lengths < longest).any())
                states = self._model(input_ids=ids.to(self.device),
                                     attention_mask=mask.to(self.device) if padded else None).last_hidden_state
                last = states[torch.arange(len(batch), device=states.device), (lengths - 1).to(states.device)]
                feats = last.float().cpu().numpy()
                for row, i in enumerate(batch):
                    out[i] = feats[row]
        self.featurized += len(token_ids)
        if not out:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack(out).astype(np.float32, copy=False)

    def _cache_path(self, key: str) -> Path:
        return self.cache_dir / self.fingerprint() / key[:2] / f"{key}.npy"

    def featurize(self, texts: list[str], token_ids: list[list[int]] | None = None) -> np.ndarray:
        """Features of ``texts``, read from the cache where present; new ones are computed and stored.

        ``token_ids`` (from :meth:`tokenize`) avoids tokenizing twice when the caller has them.
        """
        keys = [text_key(t) for t in texts]
        found: dict[str, np.ndarray] = {}
        missing: dict[str, int] = {}
        for i, key in enumerate(keys):
            if key in found or key in missing:
                continue
            path = self._cache_path(key)
            if path.exists():
                try:
                    found[key] = np.load(path)
                    continue
                except (OSError, ValueError):
                    pass  # a corrupt entry is recomputed and overwritten
            missing[key] = i
        if missing:
            idx = list(missing.values())
            ids = [token_ids[i] for i in idx] if token_ids is not None else self.tokenize([texts[i] for i in idx])
            feats = self.featurize_ids(ids)
            self._write_meta()
            for key, feat in zip(missing, feats):
                found[key] = feat
                self._store(key, feat)
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([found[k] for k in keys]).astype(np.float32, copy=False)

    def _store(self, key: str, feat: np.ndarray) -> None:
        path = self._cache_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")
        np.save(tmp, feat)
        os.replace(tmp, path)  # atomic: a killed run never leaves half a feature

    def _write_meta(self) -> None:
        meta = self.cache_dir / self.fingerprint() / "featurizer.json"
        if not meta.exists():
            meta.parent.mkdir(parents=True, exist_ok=True)
            meta.write_text(json.dumps({"version": FEATURE_VERSION, **self.settings.to_dict()}, indent=2) + "\n")
