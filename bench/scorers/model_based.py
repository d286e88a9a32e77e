"""The one entry point for model-based scores and pairwise judging.

``score_model_based(records, names, settings)`` computes any of :data:`MODEL_METRICS` for a run's
records and returns ``{"metrics": {name: value}, "ci": {name: [low, high]}, "settings": {...},
"details": {...}}``; ``judge_runs(a_records, b_records, settings)`` runs the pairwise LLM judge.
Heavy imports happen only when a metric is computed, so importing this module is cheap (it
its metrics' directions are registered in :mod:`bench.metrics`).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from bench.errors import BenchError

MODEL_METRICS = ("mauve", "coherence", "coherence-sim", "perplexity")



@dataclass
class ModelScoreSettings:
    """Models and knobs of the model-based scorers; all are recorded with the scores."""

    featurizer: str = "gpt2-large"
    featurizer_dtype: str = "float32"
    mauve_length: int | None = None
    mauve_max_tokens: int = 1024
    mauve_buckets: int | str = "auto"
    mauve_scaling: float = 5.0
    mauve_seeds: tuple[int, ...] = (1, 2, 3, 4, 5)
    scorer_model: str = "facebook/opt-2.7b"
    sentence_model: str = "all-MiniLM-L6-v2"
    device: str = "auto"
    batch_size: int = 16
    cache_dir: str | None = None
    n_boot: int = 1000
    seed: int = 0

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "ModelScoreSettings":
        d = dict(d or {})
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise BenchError(f"unknown model-score setting(s): {', '.join(sorted(unknown))}")
        if "mauve_seeds" in d:
            d["mauve_seeds"] = tuple(d["mauve_seeds"])
        return cls(**d)


def check_names(names: list[str] | tuple[str, ...]) -> list[str]:
    """The requested metric names, each checked against :data:`MODEL_METRICS`."""
    out = []
    for name in names:
        if name not in MODEL_METRICS:
            close = difflib.get_close_matches(name, MODEL_METRICS, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise BenchError(f"unknown model-based score '{name}'{hint} (known: {', '.join(MODEL_METRICS)})")
        if name not in out:
            out.append(name)
    return out


def check_score_models(names: list[str], s: ModelScoreSettings) -> None:
    """Refuse, before the first metric is computed, every model of the named metrics that cannot be
    loaded: a Hub id with no network and no cached copy (at once, not after the Hub's retries), or
    pickle-only weights."""
    from bench.runtime import check_weights

    needed = []
    if "mauve" in names:
        needed.append((s.featurizer, "featurizer model", "--featurizer"))
    if "coherence" in names or "perplexity" in names:
        needed.append((s.scorer_model, "scorer model", "--scorer-model"))
    if "coherence-sim" in names:
        from bench.scorers.coherence import resolve_sentence_model

        needed.append((resolve_sentence_model(s.sentence_model), "sentence model", "--sentence-model"))
    for name, role, option in needed:
        check_offline(name, role, option)
        check_weights(name, role=role)


def check_offline(name: str, role: str, option: str) -> None:
    """One line at once when ``name`` is a Hub id that cannot be reached or read from the cache."""
    from bench.hub import check_models

    try:
        check_models([name])
    except BenchError as exc:
        raise BenchError(f"{role} ({option}): {exc}; e.g. {option} ../shared/models/smollm2-135m-instruct") from None


def _mauve(records, s: ModelScoreSettings) -> tuple[float, list[float], dict[str, Any]]:
    from bench.scorers.mauve import MauveSettings, interval, score_mauve

    result = score_mauve(records, MauveSettings(
        featurizer=s.featurizer, featurizer_dtype=s.featurizer_dtype, length=s.mauve_length, max_tokens=s.mauve_max_tokens, num_buckets=s.mauve_buckets,
        scaling_factor=s.mauve_scaling, seeds=tuple(s.mauve_seeds), batch_size=s.batch_size, device=s.device,
        cache_dir=s.cache_dir,
    ))
    return result["mauve"], interval(result), result


def score_model_based(records: list[dict[str, Any]], names, settings: ModelScoreSettings | dict | None = None) -> dict[str, Any]:
    """Compute the named model-based metrics of ``records`` (a run's generations)."""
    names = check_names(list(names))
    s = settings if isinstance(settings, ModelScoreSettings) else ModelScoreSettings.from_dict(settings)
    if not records:
        raise BenchError("no records to score")
    check_score_models(names, s)
    out: dict[str, Any] = {"metrics": {}, "ci": {}, "settings": {}, "details": {}}
    if "mauve" in names:
        value, ci, result = _mauve(records, s)
        out["metrics"]["mauve"], out["ci"]["mauve"] = value, ci
        out["settings"]["mauve"] = result["settings"]
        out["details"]["mauve"] = {k: result[k] for k in ("mauve_std", "per_seed", "num_buckets", "newly_featurized")}
    if "coherence" in names or "perplexity" in names:
        from bench.scorers.coherence import score_coherence
        from bench.scorers.perplexity import continuation_logprobs, load_scorer, score_perplexity

        model, tok = load_scorer(s.scorer_model, s.device)
        lm = continuation_logprobs(records, model, tok, batch_size=s.batch_size)
        recorded = {"scorer_model": s.scorer_model, "n": len(records), "n_boot": s.n_boot, "seed": s.seed,
                    "tokens": int(lm.tokens.sum())}
        for name, fn in (("coherence", score_coherence), ("perplexity", score_perplexity)):
            if name in names:
                r = fn(lm, s.n_boot, s.seed)
                out["metrics"][name], out["ci"][name] = r["value"], r["ci"]
                out["settings"][name] = recorded
    if "coherence-sim" in names:
        from bench.scorers.coherence import load_sentence_model, score_similarity, similarity_per_record

        sims = similarity_per_record(records, load_sentence_model(s.sentence_model, s.device), batch_size=s.batch_size)
        r = score_similarity(records, sims, s.n_boot, s.seed)
        out["metrics"]["coherence-sim"], out["ci"]["coherence-sim"] = r["value"], r["ci"]
        out["settings"]["coherence-sim"] = {"sentence_model": s.sentence_model, "n": len(records),
                                            "n_boot": s.n_boot, "seed": s.seed}
    return out


def judge_runs(run_a_records: list[dict[str, Any]], run_b_records: list[dict[str, Any]], settings) -> dict[str, Any]:
    """Pairwise LLM-judge preference of run A over run B on their shared prompts.

    ``settings`` is a :class:`bench.judge.JudgeSettings` or a dict of its fields; see
    :func:`bench.judge.pairwise.judge_pairs` for the result.
    """
    from bench.judge import JudgeSettings
    from bench.judge.pairwise import judge_records

    s = settings if isinstance(settings, JudgeSettings) else JudgeSettings.from_dict(settings)
    return judge_records(run_a_records, run_b_records, s)
