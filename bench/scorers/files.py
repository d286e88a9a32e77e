"""Score generations made elsewhere: ``bench score FILE.jsonl``.

One JSON object per line::

    {"continuation": "...", "prompt": "...", "reference": "...", "token_ids": [464, 2106]}

``continuation`` (the generated text, prompt excluded) is required; ``prompt``, ``reference``
(the human continuation) and ``token_ids`` (the continuation's token ids) are optional, and
``null`` counts as absent. Blank lines are skipped. ``token_ids`` must be given on every line or
on none, so that token metrics never silently cover a subset.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from bench.errors import BenchError, parse_problem
from bench.scorers.repetition import score_texts


@dataclass
class Generations:
    """The parsed contents of a generations file."""

    continuations: list[str]
    prompts: list[str | None]
    references: list[str | None]
    token_ids: list[list[int]] | None
    """One list per line, or ``None`` when the file has no token ids."""
    line_numbers: list[int]
    """The 1-based line of each record in the file (blank lines are skipped)."""


def _field(record: dict, key: str, kind: type, where: str, required: bool = False):
    value = record.get(key)
    if value is None:
        if required:
            raise BenchError(f"{where}: missing required field '{key}'")
        return None
    if kind is list:
        if not isinstance(value, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in value):
            raise BenchError(f"{where}: field '{key}' must be a list of integers")
    elif not isinstance(value, kind):
        raise BenchError(f"{where}: field '{key}' must be a string, got {type(value).__name__}")
    return value


def read_generations(path: str) -> Generations:
    """Parse and validate a generations JSONL file; errors name the file and the 1-based line."""
    file = Path(path)
    if not file.is_file():
        raise BenchError(f"{path}: no such file")
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise BenchError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    out = Generations([], [], [], [], [])
    first_with_ids = first_without_ids = None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        try:
            record = json.loads(line)
        except (ValueError, RecursionError) as exc:
            raise BenchError(f"{where}: invalid JSON ({parse_problem(exc)})") from None
        if not isinstance(record, dict):
            raise BenchError(f"{where}: expected a JSON object, got {type(record).__name__}")
        out.line_numbers.append(number)
        out.continuations.append(_field(record, "continuation", str, where, required=True))
        out.prompts.append(_field(record, "prompt", str, where))
        out.references.append(_field(record, "reference", str, where))
        ids = _field(record, "token_ids", list, where)
        if ids is None:
            first_without_ids = first_without_ids or number
        else:
            first_with_ids = first_with_ids or number
            out.token_ids.append(ids)
        if first_with_ids and first_without_ids:
            raise BenchError(
                f"{path}, line {max(first_with_ids, first_without_ids)}: 'token_ids' is on line "
                f"{first_with_ids} but not on line {first_without_ids}; give it on every line or none"
            )
    if not out.continuations:
        raise BenchError(f"{path}: empty file (no JSON lines)")
    if first_with_ids is None:
        out.token_ids = None
    return out


def _row(system: str, texts: list[str], token_ids: list[list[int]] | None) -> dict:
    scores = score_texts(texts, token_ids)
    return {"system": system, "n": len(texts), **{k: v for k, v in scores.items() if not _is_nan(v)}}


def _is_nan(value: float) -> bool:
    return isinstance(value, float) and math.isnan(value)


NEEDS = {"mauve": "reference", "coherence": "prompt", "coherence-sim": "prompt", "perplexity": "prompt"}
"""The field each model-based metric needs on every line."""


def model_scores(path: str, gens: Generations, names, settings: dict | None) -> dict:
    """Model-based metrics of the continuations (``bench.scorers.model_based``), one record per line."""
    from bench.scorers.model_based import ModelScoreSettings, check_names, check_score_models, score_model_based

    names = check_names(list(names))
    check_score_models(names, settings if isinstance(settings, ModelScoreSettings)
                       else ModelScoreSettings.from_dict(settings or {}))
    for name in names:
        field = NEEDS[name]
        values = gens.references if field == "reference" else gens.prompts
        missing = [n for n, v in zip(gens.line_numbers, values) if v is None]
        if missing:
            raise BenchError(f"{path}, line {missing[0]}: --score {name} needs '{field}' on every line")
    records = [{"prompt_id": str(n), "sample_index": 0, "prompt": p, "reference": r, "continuation": c}
               for n, p, r, c in zip(gens.line_numbers, gens.prompts, gens.references, gens.continuations)]
    return score_model_based(records, names, settings)


def score_file(path: str, model_metrics=(), settings: dict | None = None) -> list[dict]:
    """Rows for the leaderboard: ``generations`` and, when every line has a reference, ``human``.

    Each row is ``{"system": ..., "n": <continuations>, <metric>: <value>, ...}`` with the metrics
    of :func:`bench.scorers.repetition.score_texts`; metrics undefined for the data (NaN, e.g.
    rep-4 when no continuation has five words) are left out of the row. The human row has no token
    metrics: references come without token ids. ``model_metrics`` (e.g. ``("mauve",)``, with
    :class:`~bench.scorers.model_based.ModelScoreSettings` fields in ``settings``) adds
    model-based metrics to the generations row.
    """
    from bench.leaderboard import degeneracy

    gens = read_generations(path)
    rows = [_row("generations", gens.continuations, gens.token_ids)]
    shares = degeneracy([{"continuation": c} for c in gens.continuations], None)
    if shares["flags"]:  # the same flag the leaderboard shows: blank or wordless text scores deceptively well
        rows[0]["flags"] = shares["flags"]
    if model_metrics:
        scored = model_scores(path, gens, model_metrics, settings)
        rows[0].update(scored["metrics"])
        if "mauve" in scored["details"]:  # MAUVE's spread over k-means seeds, wherever its mean is shown
            rows[0]["mauve-sd"] = scored["details"]["mauve"]["mauve_std"]
            rows[0]["mauve-cut-at-context"] = scored["settings"]["mauve"]["cut_at_context"]
    if all(ref is not None for ref in gens.references):
        rows.append(_row("human", gens.references, None))
    return rows
