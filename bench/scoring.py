"""Score finished runs (cached in each run's scores.json) and the suite's human references."""

from __future__ import annotations

from typing import Any

from bench.store import SCORES, RunDir, write_json_atomic

SCORES_VERSION = "1"
"""Bumped when a metric's definition changes, so cached scores are recomputed."""
N_BOOT = 1000


def ordered_records(records: list[dict[str, Any]], prompt_order: list[str] | None = None) -> list[dict[str, Any]]:
    """Records in a fixed order (prompt order, then sample index), whatever order they were written in."""
    rank = {pid: i for i, pid in enumerate(prompt_order)} if prompt_order else {}
    return sorted(records, key=lambda r: (rank.get(r["prompt_id"], len(rank)), r["prompt_id"], r["sample_index"]))


def score_records(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Every repetition metric with its bootstrap interval over the records."""
    from bench.scorers.repetition import bootstrap_ci, score_texts

    texts = [r["continuation"] for r in records]
    token_ids = [r["token_ids"] for r in records]
    return {
        "version": SCORES_VERSION,
        "n": len(records),
        "metrics": score_texts(texts, token_ids),
        "ci": {k: list(v) for k, v in bootstrap_ci(texts, token_ids, n_boot=N_BOOT, seed=0).items()},
    }


def score_human(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Score the references of the prompts a run covered (one per prompt), if the suite has them."""
    from bench.scorers.repetition import bootstrap_ci, score_texts

    refs: dict[str, str] = {}
    for r in records:
        if r.get("reference"):
            refs.setdefault(r["prompt_id"], r["reference"])
    if not refs:
        return None
    texts = [refs[k] for k in sorted(refs)]
    return {
        "version": SCORES_VERSION,
        "n": len(texts),
        "metrics": score_texts(texts, None),
        "ci": {k: list(v) for k, v in bootstrap_ci(texts, None, n_boot=N_BOOT, seed=0).items()},
    }


def run_scores(run: RunDir) -> dict[str, Any]:
    """The run's scores, computed once and cached next to its records."""
    cached = run.scores()
    if cached and cached.get("version") == SCORES_VERSION:
        return cached
    records = ordered_records(run.records())
    scores = {"generations": score_records(records), "human": score_human(records)}
    scores["version"] = SCORES_VERSION
    write_json_atomic(run.path / SCORES, scores)
    return scores
