"""MAUVE (Pillutla et al., 2021) of continuations against the suite's human references.

P is the set of continuations, Q the human references of the prompts they continue (one per
prompt). Both are featurized by :mod:`bench.scorers.features`, then ``mauve.compute_mauve`` (PyPI
``mauve-text``) quantizes and compares them. The k-means quantization depends on its seed, so the
score is the mean over several seeds, reported with their standard deviation.

The literature's length convention (``length=128``): every continuation and reference is cut to
128 featurizer tokens and only the (continuation, reference) pairs where *both* reach 128 tokens
are kept. Without it, texts are cut at ``max_tokens`` (1024) or at the featurizer's context when
that is shorter (stories260K: 512 positions), and the cut is said on stderr and recorded; a
``length`` beyond the featurizer's context is refused.

P and Q are kept paired: the i-th reference is the reference of the i-th continuation's prompt, in
the order of the records (one reference per prompt; a prompt's further samples add to P only).
"""

from __future__ import annotations

import math
import os
import sys
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from bench.errors import BenchError

MIN_SAMPLES = 10
"""Fewest texts per side: ``num_buckets='auto'`` is n/10 clusters, at least 2."""


@dataclass(frozen=True)
class MauveSettings:
    """The MAUVE knobs; every one is recorded with the score."""

    featurizer: str = "gpt2-large"
    featurizer_dtype: str = "float32"
    """Precision of the featurizer: float32 (mauve-text's features) or bfloat16/float16 (faster, ~1% off)."""
    length: int | None = None
    """Cut both sides to this many featurizer tokens and keep only pairs reaching it (128 in the literature)."""
    max_tokens: int = 1024
    num_buckets: int | str = "auto"
    scaling_factor: float = 5.0
    seeds: tuple[int, ...] = (1, 2, 3, 4, 5)
    kmeans_explained_var: float = 0.9
    kmeans_num_redo: int = 5
    kmeans_max_iter: int = 500
    batch_size: int = 32
    device: str = "auto"
    cache_dir: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["seeds"] = list(self.seeds)
        return d


def _require_mauve():
    try:
        import mauve  # noqa: F401
    except ImportError:
        raise BenchError("MAUVE needs the 'mauve' extra: pip install 'decbench[mauve]' (mauve-text, faiss-cpu, scikit-learn)") from None
    return mauve


def needed_samples(settings: MauveSettings) -> int:
    """How many texts each side needs for the chosen number of buckets."""
    if settings.num_buckets == "auto":
        return MIN_SAMPLES
    return max(MIN_SAMPLES, int(settings.num_buckets))


@contextmanager
def _quiet_c_stderr():
    """Silence what C code writes to file descriptor 2 for the duration (Python exceptions still pass).

    faiss's k-means prints "please provide at least N training points" on every call, because
    MAUVE's default of n/10 clusters always gives it fewer than the 39 points per centroid it asks
    for; MAUVE means it that way, so the warning is noise (five lines per run with five seeds).
    """
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def mauve_from_features(p: np.ndarray, q: np.ndarray, settings: MauveSettings) -> dict[str, Any]:
    """MAUVE of feature sets ``p`` (generations) and ``q`` (references): mean and std over seeds."""
    mauve = _require_mauve()
    need = needed_samples(settings)
    if min(len(p), len(q)) < need:
        raise BenchError(
            f"MAUVE needs at least {need} texts on each side; got {len(p)} continuations and {len(q)} references"
            + (f" reaching {settings.length} tokens" if settings.length else "")
        )
    if not settings.seeds:
        raise BenchError("MAUVE needs at least one k-means seed")
    values, buckets = [], None
    for seed in settings.seeds:
        with _quiet_c_stderr():
            out = mauve.compute_mauve(
                p_features=p, q_features=q, num_buckets=settings.num_buckets,
                mauve_scaling_factor=settings.scaling_factor, kmeans_explained_var=settings.kmeans_explained_var,
                kmeans_num_redo=settings.kmeans_num_redo, kmeans_max_iter=settings.kmeans_max_iter,
                seed=seed, verbose=False,
            )
        values.append(float(out.mauve))
        buckets = out.num_buckets
    arr = np.array(values)
    return {
        "mauve": float(arr.mean()),
        "mauve_std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
        "per_seed": values,
        "num_buckets": buckets,
    }


def _pairs(records: list[dict[str, Any]]) -> tuple[list[str], dict[str, str], list[str]]:
    """Continuations, the reference of each prompt, and each continuation's prompt id."""
    refs: dict[str, str] = {}
    conts, owners = [], []
    for r in records:
        ref = r.get("reference")
        if not ref:
            continue
        refs.setdefault(r["prompt_id"], ref)
        conts.append(r["continuation"])
        owners.append(r["prompt_id"])
    return conts, refs, owners


def token_limit(settings: MauveSettings) -> tuple[int, int | None]:
    """Featurizer tokens per text, and the featurizer's context; refuses a ``length`` beyond that context.

    Without ``length`` the limit is ``max_tokens`` cut to the context (:func:`_say_cut` tells).
    """
    from bench.scorers.features import context_length

    context = context_length(settings.featurizer)
    if settings.length and context and settings.length > context:
        raise BenchError(f"--mauve-length {settings.length} exceeds the context of featurizer "
                         f"'{settings.featurizer}' ({context} positions); give at most {context}")
    limit = settings.length or settings.max_tokens
    return (min(limit, context) if context else limit), context


def _say_cut(feat: Any, texts: list[str], settings: MauveSettings, context: int | None) -> int:
    """How many texts run past the featurizer's context (:func:`cut_note` says it)."""
    if not context or settings.length or settings.max_tokens <= context:
        return 0
    tok = feat.tokenizer
    longer = sum(len(tok.encode(t, truncation=True, max_length=context + 1)) > context for t in texts)
    return longer


def cut_note(recorded: dict[str, Any]) -> str | None:
    """The line that says MAUVE's texts were cut at the featurizer's context (None when none were).

    ``recorded`` is the settings a MAUVE score records; ``bench run`` and ``bench score`` print it.
    """
    if not recorded.get("cut_at_context"):
        return None
    return (f"MAUVE: {recorded['cut_at_context']} texts ran past the {recorded['featurizer_context']}-token context "
            f"of featurizer '{recorded['featurizer']}': cut at {recorded['max_tokens_used']} tokens "
            f"(not {recorded['max_tokens']}); --mauve-length 128 is the literature's convention")


def check_length(featurizer: str, length: int | None) -> None:
    """Plan-time check of ``--mauve-length`` against the featurizer's context (nothing generated before)."""
    token_limit(MauveSettings(featurizer=featurizer, length=length))


@dataclass
class MauveInputs:
    """The featurized, paired sides of one run's MAUVE: what :func:`score_mauve` and the paired
    bootstrap of ``bench compare`` (:func:`paired_replicates`) compute MAUVE from."""

    p: np.ndarray
    """Features of the kept continuations."""
    q: np.ndarray
    """Features of the kept references, one per prompt."""
    p_prompts: list[str]
    """The prompt of each row of ``p``."""
    q_prompts: list[str]
    """The prompt of each row of ``q``."""
    info: dict[str, Any]
    fingerprint: str
    device: str
    newly_featurized: int


def mauve_inputs(records: list[dict[str, Any]], settings: MauveSettings) -> MauveInputs:
    """Tokenize, keep (length convention) and featurize a run's continuations and references."""
    from bench.scorers.features import Featurizer, FeaturizerSettings

    _require_mauve()
    conts, refs, owners = _pairs(records)
    if not refs:
        raise BenchError("MAUVE needs human references; this suite has none")
    max_tokens, context = token_limit(settings)
    feat = Featurizer(
        FeaturizerSettings(model=settings.featurizer, max_tokens=max_tokens, batch_size=settings.batch_size,
                           device=settings.device, dtype=settings.featurizer_dtype),
        cache_dir=settings.cache_dir,
    )
    cut = _say_cut(feat, conts + list(refs.values()), settings, context)
    ref_ids = {pid: feat.tokenize([text])[0] for pid, text in refs.items()}
    cont_ids = feat.tokenize(conts)
    # keep non-empty texts; with the length convention, only pairs where both sides reach it
    need = settings.length or 1
    keep = [i for i, ids in enumerate(cont_ids) if len(ids) >= need and len(ref_ids[owners[i]]) >= need]
    kept_prompts = list(dict.fromkeys(owners[i] for i in keep))  # the continuations' order: pairs stay paired
    p_texts = [conts[i] for i in keep]
    q_texts = [refs[pid] for pid in kept_prompts]
    info = {"n_records": len(records), "n_p": len(p_texts), "n_q": len(q_texts),
            "dropped": len(conts) - len(keep), "max_tokens_used": max_tokens, "featurizer_context": context,
            "cut_at_context": cut}
    need_n = needed_samples(settings)
    if min(len(p_texts), len(q_texts)) < need_n:
        raise BenchError(
            f"MAUVE needs at least {need_n} texts on each side; {len(p_texts)} continuations and {len(q_texts)} "
            f"references remain" + (f" after keeping pairs that reach {settings.length} tokens" if settings.length else "")
        )
    p = feat.featurize(p_texts, [cont_ids[i] for i in keep])
    q = feat.featurize(q_texts, [ref_ids[pid] for pid in kept_prompts])
    return MauveInputs(p, q, [owners[i] for i in keep], kept_prompts, info, feat.fingerprint(), feat.device,
                       feat.featurized)


def score_mauve(records: list[dict[str, Any]], settings: MauveSettings | None = None) -> dict[str, Any]:
    """MAUVE of a run's continuations against its prompts' references, with all settings recorded."""
    settings = settings or MauveSettings()
    inputs = mauve_inputs(records, settings)
    result = mauve_from_features(inputs.p, inputs.q, settings)
    result["settings"] = {**settings.to_dict(), "featurizer_fingerprint": inputs.fingerprint,
                          "featurizer_device": inputs.device, **inputs.info}
    result["newly_featurized"] = inputs.newly_featurized
    result["q_prompt_ids"] = inputs.q_prompts
    return result


def _one_mauve(p: np.ndarray, q: np.ndarray, settings: MauveSettings, seed: int) -> float:
    """MAUVE of one k-means seed; NaN when a side has fewer texts than the quantization needs."""
    if min(len(p), len(q)) < needed_samples(settings):
        return math.nan
    return mauve_from_features(p, q, MauveSettings(**{**settings.to_dict(), "seeds": (seed,)}))["mauve"]


def _drawn(inputs: MauveInputs, prompts: list[str], counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``inputs`` restricted to ``prompts``, each prompt's rows repeated as often as it was drawn."""
    times = dict(zip(prompts, counts.tolist()))
    p_rows = np.repeat(np.arange(len(inputs.p_prompts)), [times.get(pid, 0) for pid in inputs.p_prompts])
    q_rows = np.repeat(np.arange(len(inputs.q_prompts)), [times.get(pid, 0) for pid in inputs.q_prompts])
    return inputs.p[p_rows], inputs.q[q_rows]


def paired_replicates(a: MauveInputs, b: MauveInputs, prompts: list[str], settings: MauveSettings,
                      n_boot: int, seed: int) -> tuple[float, np.ndarray]:
    """MAUVE(B) - MAUVE(A) on ``prompts`` (the mean over the k-means seeds, as scored), and its
    paired bootstrap replicates: each draws the prompts with replacement, the same for A and B, and
    one k-means seed of ``settings.seeds``, the same for A and B, so the spread over seeds is inside
    the interval as well as the spread over prompts. A replicate with too few texts is NaN."""
    ones = np.ones(len(prompts), dtype=np.int64)
    (pa, qa), (pb, qb) = _drawn(a, prompts, ones), _drawn(b, prompts, ones)
    point = float(np.mean([_one_mauve(pb, qb, settings, s) - _one_mauve(pa, qa, settings, s) for s in settings.seeds]))
    rng = np.random.default_rng(seed)
    reps = np.empty(n_boot)
    for r in range(n_boot):
        counts = np.bincount(rng.integers(0, len(prompts), len(prompts)), minlength=len(prompts))
        kmeans_seed = int(rng.choice(settings.seeds))
        (pa, qa), (pb, qb) = _drawn(a, prompts, counts), _drawn(b, prompts, counts)
        reps[r] = _one_mauve(pb, qb, settings, kmeans_seed) - _one_mauve(pa, qa, settings, kmeans_seed)
    return point, reps


def settings_from_recorded(recorded: dict[str, Any]) -> MauveSettings:
    """The :class:`MauveSettings` a stored MAUVE score records (its extra fields set aside)."""
    fields = {k: recorded[k] for k in MauveSettings.__dataclass_fields__ if k in recorded}
    if "seeds" in fields:
        fields["seeds"] = tuple(fields["seeds"])
    return MauveSettings(**fields)


def interval(result: dict[str, Any]) -> list[float]:
    """mean ± one std over k-means seeds (not a bootstrap interval: MAUVE is a set-level score)."""
    m, s = result["mauve"], result["mauve_std"]
    return [m - s, m + s] if not math.isnan(s) else [m, m]
