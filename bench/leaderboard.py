"""The leaderboard: one row per model x decoder x suite over the finished runs of a store.

The CSV is a view of the run store, so re-running with more decoders or models adds rows and
never loses the old ones. A ``human`` row per suite (and prompt subset) scores the references.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path
from typing import Any

from bench.run_scores import run_scores
from bench.store import RunDir, RunStore

KEY_COLUMNS = ["suite", "suite_version", "model", "decoder", "decoder_args", "n", "n_prompts"]
TAIL_COLUMNS = ["backend", "dtype", "max_new_tokens", "seed", "tokens_sha", "run_id"]
LEADERBOARD = "leaderboard.csv"


def metric_names() -> list[str]:
    from bench.metrics import METRICS

    return list(METRICS)


def _row(base: dict[str, Any], scores: dict[str, Any]) -> dict[str, Any]:
    row = dict(base, n=scores["n"])
    for name, value in scores["metrics"].items():
        row[name] = value
        lo, hi = scores["ci"].get(name, (None, None))
        row[f"{name}_lo"], row[f"{name}_hi"] = lo, hi
    return row


def tokens_sha(records: list[dict[str, Any]]) -> str:
    """sha256 of the records' token ids, ordered by (prompt id, sample index).

    Identical for two runs exactly when every continuation has the same token ids, whatever
    order the records were written in; ``bench check --exact`` compares it for deterministic decoders.
    ``unavailable`` when any record has no token ids.
    """
    if any(r.get("token_ids") is None for r in records):
        return "unavailable"  # a server gave no ids: there is nothing to compare token for token
    h = hashlib.sha256()
    for r in sorted(records, key=lambda r: (r["prompt_id"], r["sample_index"])):
        h.update(f"{r['prompt_id']}\t{r['sample_index']}\t{' '.join(map(str, r['token_ids']))}\n".encode())
    return h.hexdigest()


def suite_label(spec: Any) -> str:
    """The suite column: the registered name, or the file name of a JSONL suite."""
    return spec.suite.name if spec.suite.name != "jsonl" else Path(spec.suite.source).name


def build_rows(store: RunStore) -> list[dict[str, Any]]:
    """Rows of every complete run of ``store`` (see :func:`rows_for_runs`)."""
    return rows_for_runs([run for run in store.runs() if run.is_complete()])


def rows_for_runs(runs: list[RunDir]) -> list[dict[str, Any]]:
    """One row per run plus one ``human``/``reference`` row per suite and prompt subset, sorted."""
    rows, human = [], {}
    for run in runs:
        spec = run.spec()
        scores = run_scores(run)
        header = run.header()
        suite = suite_label(spec)
        records = run.records()
        n_prompts = len({r["prompt_id"] for r in records})
        base = {
            "suite": suite,
            "suite_version": spec.suite.version,
            "model": spec.model.label,
            "decoder": spec.decoder.name,
            "decoder_args": ",".join(f"{k}={v}" for k, v in spec.decoder.args),
            "n_prompts": n_prompts,
            "backend": f"{spec.backend}-{spec.backend_version}",
            "dtype": spec.dtype,
            "max_new_tokens": spec.generation.max_new_tokens,
            "seed": spec.generation.seed,
            "tokens_sha": tokens_sha(records),
            "run_id": spec.run_id,
        }
        base.update({k: v for k, v in header.get("resolved", {}).items() if isinstance(v, (int, float, str))})
        if scores.get("judge_opponent"):
            base["judge_opponent"] = scores["judge_opponent"]
        rows.append(_row(base, scores["generations"]))
        if scores.get("human"):
            key = (suite, spec.suite.version, spec.suite.num_prompts)
            # Only the suite's columns: a run's own values (a calibrated temperature, a judge) are not the human's.
            human_base = {k: base[k] for k in ("suite", "suite_version", "n_prompts")}
            human.setdefault(key, _row(dict(human_base, model="human", decoder="reference", decoder_args=""),
                                       scores["human"]))
    rows.sort(key=lambda r: (r["suite"], r["model"], r["decoder"], r["decoder_args"], r["run_id"]))
    return rows + sorted(human.values(), key=lambda r: (r["suite"], r["n_prompts"]))


def columns(rows: list[dict[str, Any]]) -> list[str]:
    """Stable order: keys, each metric then its interval, extra resolved values, tails."""
    metrics = [m for m in metric_names() if any(m in r for r in rows)]
    cols = KEY_COLUMNS + [c for m in metrics for c in (m, f"{m}_lo", f"{m}_hi")]
    extra = sorted({k for r in rows for k in r} - set(cols) - set(TAIL_COLUMNS))
    return cols + extra + TAIL_COLUMNS


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.tmp")
    try:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns(rows), extrasaction="ignore")
            writer.writeheader()
            for r in rows:
                writer.writerow({k: _fmt(v) for k, v in r.items()})
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk leaves the old leaderboard, not a partial one
        raise


def _fmt(value: Any) -> Any:
    """Floats to 6 significant digits; text cells guarded against spreadsheet formulas."""
    from bench.publish import guard_cell

    return f"{value:.6g}" if isinstance(value, float) else ("" if value is None else guard_cell(value))


def render(rows: list[dict[str, Any]], shown: tuple[str, ...] = ("rep-2", "rep-4", "diversity", "distinct-2",
                                                                  "ttr-last96", "mauve", "coherence", "coherence-sim",
                                                                  "perplexity", "judge-win-rate", "length-words")) -> Any:
    """A rich table with the headline metrics and their intervals."""
    from rich.table import Table

    from bench.metrics import METRICS

    table = Table(title="decbench leaderboard", show_lines=False)
    for col in ("suite", "model", "decoder", "n"):
        table.add_column(col)
    metrics = [m for m in shown if any(m in r for r in rows)]
    for m in metrics:
        arrow = {"higher": " ↑", "lower": " ↓"}.get(METRICS[m].direction, "")
        table.add_column(m + arrow, justify="right")
    for r in rows:
        decoder = r["decoder"] + (f":{r['decoder_args']}" if r["decoder_args"] else "")
        cells = [r["suite"], r["model"], decoder, str(r["n"])]
        for m in metrics:
            value, lo, hi = r.get(m), r.get(f"{m}_lo"), r.get(f"{m}_hi")
            cells.append("" if value is None else (f"{value:.3f}" if lo is None else f"{value:.3f} ±{(hi - lo) / 2:.3f}"))
        table.add_row(*cells)
    return table
