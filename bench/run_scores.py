"""Score finished runs (cached in each run's scores.json) and the suite's human references."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from typing import Any

from bench.errors import BenchError
from bench.runtime import write_json_atomic
from bench.stats import N_BOOT
from bench.store import SCORES, RunDir

SCORES_VERSION = "2"
"""Bumped when a metric's definition changes, so cached scores are recomputed (2: intervals resample prompts)."""



def ordered_records(records: list[dict[str, Any]], prompt_order: list[str] | None = None) -> list[dict[str, Any]]:
    """Records in a fixed order (prompt order, then sample index), whatever order they were written in."""
    rank = {pid: i for i, pid in enumerate(prompt_order)} if prompt_order else {}
    return sorted(records, key=lambda r: (rank.get(r["prompt_id"], len(rank)), r["prompt_id"], r["sample_index"]))


def score_records(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Every repetition metric with its bootstrap interval over prompts (all samples of a prompt together)."""
    from bench.scorers.repetition import TokenColumns, WordColumns

    texts = [r["continuation"] for r in records]
    # Token-level metrics need every record's ids; a server that gave none leaves them unavailable.
    token_ids = [r["token_ids"] for r in records] if all(r.get("token_ids") is not None for r in records) else None
    tokens = TokenColumns.of(token_ids, len(texts)) if token_ids is not None else None
    return score_columns(WordColumns.of(texts), tokens, [r["prompt_id"] for r in records])


def score_columns(words: Any, tokens: Any, prompt_ids: list[str]) -> dict[str, Any]:
    """:func:`score_records` of records already read into columns (:mod:`bench.record_columns`)."""
    from bench.scorers.repetition import CorpusResampler, bootstrap_ci

    corpus = CorpusResampler(None, None, prompt_ids, columns=(words, tokens))
    return {
        "version": SCORES_VERSION,
        "n": len(prompt_ids),
        "metrics": dict(corpus.point),
        "ci": {k: list(v) for k, v in bootstrap_ci(None, n_boot=N_BOOT, seed=0, corpus=corpus).items()},
    }


def score_human(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Score the references of the prompts a run covered (one per prompt), if the suite has them."""
    refs: dict[str, str] = {}
    for r in records:
        if r.get("reference"):
            refs.setdefault(r["prompt_id"], r["reference"])
    return score_references(refs)


def score_references(refs: dict[str, str]) -> dict[str, Any] | None:
    """:func:`score_human` of the references by prompt id."""
    from bench.scorers.repetition import bootstrap_ci, score_texts

    if not refs:
        return None
    texts = [refs[k] for k in sorted(refs)]
    return {
        "version": SCORES_VERSION,
        "n": len(texts),
        "metrics": score_texts(texts, None),
        "ci": {k: list(v) for k, v in bootstrap_ci(texts, None, n_boot=N_BOOT, seed=0).items()},
    }


def score_human_cut(runs_records: list[list[dict[str, Any]]]) -> dict[str, Any] | None:
    """The references cut to the generated length: a length-matched human row.

    Whole references (164 words on cd-wikitext) against 25-word continuations compare lengths as
    much as text. Each reference is cut to the mean word count of its prompt's continuations over
    ``runs_records`` (the runs sharing the human row), then scored like :func:`score_human`.
    """
    from bench.scorers.repetition import bootstrap_ci, score_texts

    refs: dict[str, str] = {}
    lengths: dict[str, list[int]] = {}
    for records in runs_records:
        for r in records:
            if r.get("reference"):
                refs.setdefault(r["prompt_id"], r["reference"])
                lengths.setdefault(r["prompt_id"], []).append(len(r["continuation"].split()))
    if not refs:
        return None
    ids = sorted(refs)
    texts = [" ".join(refs[k].split()[:round(sum(lengths[k]) / len(lengths[k]))]) for k in ids]
    return {
        "version": SCORES_VERSION,
        "n": len(texts),
        "metrics": score_texts(texts, None),
        "ci": {k: list(v) for k, v in bootstrap_ci(texts, None, n_boot=N_BOOT, seed=0).items()},
    }


def run_scores(run: RunDir) -> dict[str, Any]:
    """The run's scores, computed once and cached next to its records until the records change.

    ``scores.json`` keeps the digest of the records it was computed from (``records``): when the
    generations file no longer has that digest (more records, or another writer's), every score is
    computed again and model-based metrics and judge win rates of the old records are dropped.
    Those added by :func:`add_model_scores` and :func:`add_judge_result` are otherwise kept and
    shown among the generations' metrics. A cache from before digests keeps them. The digest is
    taken of the file's bytes, so a run whose scores are current is not parsed at all; its
    ``summary`` (records, prompts, token digest, degenerate counts) serves the leaderboard.
    """
    digest = run.digest()
    cached = run.scores()
    current = bool(cached) and cached.get("version") == SCORES_VERSION and cached.get("records") == digest
    if not (current and isinstance(cached.get("summary"), dict)):
        columns = run.columns()
        if current:  # scored before summaries were kept: only the summary is added
            cached = dict(cached, summary=columns.summary)
        else:
            same_records = bool(cached) and cached.get("records", digest) == digest
            extra = {k: cached[k] for k in ("model_based", "judge") if same_records and k in cached}
            cached = {"generations": score_columns(columns.words, columns.tokens, columns.prompt_ids),
                      "human": score_references(columns.references), **extra, "summary": columns.summary,
                      "version": SCORES_VERSION, "records": columns.digest}
        check_scores(cached, run.path / SCORES)  # the entries kept from the old file included
        with run.lock():  # two processes scoring the same run must not share the temporary file
            write_json_atomic(run.path / SCORES, cached)
    else:
        check_scores(cached, run.path / SCORES)
    return _with_extra_metrics(cached)


def _is_number(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def _check_block(block: Any, where: str) -> str | None:
    """What is wrong with one ``{"metrics": {...}, "ci": {...}}`` block, or None."""
    if not isinstance(block, dict) or not isinstance(block.get("metrics"), dict) or not isinstance(block.get("ci"), dict):
        return f"'{where}' is not a table of metrics and intervals"
    for name, value in block["metrics"].items():
        if not _is_number(value):
            return f"'{where}.metrics.{name}' is {str(value)[:40]!r}, not a number"
    for name, ci in block["ci"].items():
        if ci is not None and not (isinstance(ci, list) and len(ci) == 2 and all(map(_is_number, ci))):
            return f"'{where}.ci.{name}' is {str(ci)[:40]!r}, not an interval [lo, hi]"
    return None


def check_scores(scores: dict[str, Any], path: Any) -> None:
    """One line naming the file and the entry unless a cached scores.json has the shape this
    version writes: a hand-edited or corrupted entry never reaches a leaderboard."""
    problem = _check_block(scores["generations"], "generations")
    if problem is None and scores.get("human") is not None:
        problem = _check_block(scores["human"], "human")
    model_based = scores.get("model_based", {})
    if problem is None and not isinstance(model_based, dict):
        problem = "'model_based' is not a table"
    for name, entry in model_based.items() if problem is None else ():
        block = {"metrics": {name: entry.get("value")}, "ci": {name: entry.get("ci")}} if isinstance(entry, dict) else None
        problem = problem or _check_block(block, f"model_based.{name}")
    judge = scores.get("judge")
    if problem is None and judge is not None:
        block = {"metrics": {"win_rate": judge.get("win_rate")}, "ci": {"win_rate": judge.get("ci")}} \
            if isinstance(judge, dict) else None
        problem = _check_block(block, "judge")
    summary = scores.get("summary")
    if problem is None and summary is not None:
        problem = _check_summary(summary)
    if problem:
        raise BenchError(f"{path}: {problem}; the file was edited or corrupted (delete it to score the run again)")


def _check_summary(summary: Any) -> str | None:
    if not isinstance(summary, dict):
        return "'summary' is not a table"
    for name in ("n", "n_prompts", "empty", "blank", "wordless", "short"):
        if type(summary.get(name)) is not int or summary[name] < 0:
            return f"'summary.{name}' is {str(summary.get(name))[:40]!r}, not a count"
    if not isinstance(summary.get("tokens_sha"), str) or type(summary.get("lengths_known")) is not bool:
        return "'summary' lacks its token digest"
    return None


def _with_extra_metrics(scores: dict[str, Any]) -> dict[str, Any]:
    merged = dict(scores, generations=dict(scores["generations"]))
    metrics, ci = dict(merged["generations"]["metrics"]), dict(merged["generations"]["ci"])
    for name, entry in scores.get("model_based", {}).items():
        metrics[name], ci[name] = entry["value"], entry["ci"]
        if "mauve_std" in entry.get("details", {}):
            merged["mauve_sd"] = entry["details"]["mauve_std"]  # spread over k-means seeds
    judge = scores.get("judge")
    if judge:
        metrics["judge-win-rate"], ci["judge-win-rate"] = judge["win_rate"], judge["ci"]
        merged["judge_opponent"] = judge["opponent"]
    merged["generations"]["metrics"], merged["generations"]["ci"] = metrics, ci
    return merged


def _settings_key(settings: Any) -> str:
    return hashlib.sha256(json.dumps(asdict(settings), sort_keys=True, default=str).encode()).hexdigest()[:16]


def add_model_scores(run: RunDir, names: tuple[str, ...], settings: dict[str, Any]) -> None:
    """Compute the named model-based metrics the run's cache lacks for these settings, and cache them."""
    from bench.scorers.model_based import ModelScoreSettings, score_model_based

    s = ModelScoreSettings.from_dict(settings)
    key = _settings_key(s)
    with run.lock():  # read, add, write back: no other writer in between
        run_scores(run)  # brings scores.json up to date with the records first
        scores = run.scores()
        done = scores.setdefault("model_based", {})
        todo = [n for n in names if done.get(n, {}).get("settings_key") != key]
        if not todo:
            return
        result = score_model_based(ordered_records(run.records()), todo, s)
        for name in todo:
            done[name] = {"value": result["metrics"][name], "ci": list(result["ci"][name]), "settings_key": key,
                          "settings": result["settings"].get(name, {}), "details": result["details"].get(name, {})}
        write_json_atomic(run.path / SCORES, scores)


def add_judge_result(run: RunDir, opponent: RunDir, opponent_label: str, settings: dict[str, Any]) -> None:
    """Judge ``run`` against ``opponent`` on their shared prompts; the win rate goes into the run's scores."""
    from bench.scorers.model_based import judge_runs

    result = judge_runs(ordered_records(run.records()), ordered_records(opponent.records()), settings)
    with run.lock():
        run_scores(run)
        scores = run.scores()
        scores["judge"] = {"opponent": opponent_label, "opponent_run": opponent.run_id,
                           "win_rate": result["win_rate_a"], "ci": list(result["ci"]),
                           "sign_test_p": result.get("sign_test_p"),
                           "counts": {k: result[k] for k in ("pairs", "wins_a", "wins_b", "ties", "invalid") if k in result}}
        write_json_atomic(run.path / SCORES, scores)
