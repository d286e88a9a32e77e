"""Publishing results: merged leaderboards (CSV, Markdown, HTML), regression checks, run comparisons.

The pieces share one row format, that of :mod:`bench.leaderboard` (one dict per model x decoder x
suite, each metric with ``<metric>_lo``/``<metric>_hi``), and the helpers here to find runs
on disk and to read a leaderboard CSV back.

    bench leaderboard RUN_OR_STORE... --out leaderboards/NAME   NAME.csv, NAME.md, NAME.html
    bench check --baseline NAME.csv RUN_OR_CSV_OR_STORE       exit 1 on a regression
    bench compare A B                                         paired differences B - A
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.store import HEADER, RunDir, RunStore

ROW_KEY = ("suite", "model", "decoder", "decoder_args")
"""What identifies a leaderboard row: one per model x decoder (with arguments) x suite."""
SETTINGS = ("suite_version", "n_prompts", "max_new_tokens")
"""Settings that must agree for two rows to be comparable."""


def find_runs(paths: list[str | Path]) -> list[RunDir]:
    """Run folders from paths that are run folders or stores holding runs, each run once."""
    runs: dict[str, RunDir] = {}
    for raw in paths:
        path = Path(raw)
        if (path / HEADER).is_file():
            found = [RunDir(path)]
        elif path.is_dir():
            found = RunStore(path).runs()
            if not found:
                raise BenchError(f"{path} holds no runs (no <run_id>/{HEADER} inside)")
        else:
            raise BenchError(f"{path} is neither a run folder nor a run store")
        for run in found:
            runs.setdefault(run.run_id, run)  # the same run reached twice counts once
    return list(runs.values())


def complete_runs(runs: list[RunDir], *, skip_incomplete: bool = False, can_skip: bool = True) -> list[RunDir]:
    """The complete runs; a run still in progress is an error naming it unless ``skip_incomplete``.

    ``can_skip``: the command accepts ``--skip-incomplete``, so the error suggests it.
    """
    kept = []
    for run in runs:
        if run.is_complete():
            kept.append(run)
        elif not skip_incomplete:
            done, expected = len(run.done_keys()), run.header()["expected_records"]
            raise BenchError(f"run {run.path} is still in progress ({done}/{expected} records); "
                             "finish it with 'bench run'" + (" or pass --skip-incomplete" if can_skip else ""))
    if not kept:
        raise BenchError("no complete runs to publish")
    return kept


def row_label(row: dict[str, Any]) -> str:
    """``suite model decoder:args`` for messages and tables."""
    decoder = row["decoder"] + (f":{row['decoder_args']}" if row.get("decoder_args") else "")
    amateur = f" (amateur {row['amateur']})" if row.get("amateur") else ""
    epoch = f" @ epoch {row['hyperfit_epoch']}" if row.get("hyperfit_epoch") not in (None, "") else ""
    return f"{row['suite']} {row['model']} {decoder}{amateur}{epoch}"


def row_key(row: dict[str, Any]) -> tuple[str, ...]:
    # Contrastive decoding with two amateurs is two rows; rows without one keep their old key.
    amateur = (str(row["amateur"]),) if row.get("amateur") else ()
    epoch = (f"epoch {row['hyperfit_epoch']}",) if row.get("hyperfit_epoch") not in (None, "") else ()
    return tuple(str(row.get(k, "")) for k in ROW_KEY) + amateur + epoch


def unique_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with at most one per model x decoder x suite; two different runs for one row is an error.

    Identical human rows (one per run of the same prompt subset) collapse into one; human rows
    that differ mean runs over different prompt subsets, which a leaderboard must not mix.
    """
    seen: dict[tuple[str, ...], dict[str, Any]] = {}
    out = []
    for row in rows:
        key = row_key(row)
        old = seen.get(key)
        if old is None:
            seen[key] = row
            out.append(row)
            continue
        if row["model"] == "human" and all(str(old.get(k)) == str(row.get(k)) for k in SETTINGS):
            continue
        if row["model"] == "human":
            raise BenchError(f"suite {row['suite']}: runs cover different prompt subsets "
                             f"({old['n_prompts']} and {row['n_prompts']} prompts); publish runs of one subset")
        raise BenchError(f"runs {old['run_id']} and {row['run_id']} both give the row '{row_label(row)}' "
                         "(different settings); pass only one of them")
    return out


SETTING_COLUMNS = ("suite_version", "n_prompts", "max_new_tokens", "samples_per_prompt", "seed", "backend", "dtype",
                   "amateur", "hyperfit_epoch")
"""Settings shown beside a row's metrics whenever two rows of a leaderboard differ in them."""


def varying_settings(rows: list[dict[str, Any]]) -> list[str]:
    """The :data:`SETTING_COLUMNS` whose values differ between rows (blank cells aside)."""
    return [c for c in SETTING_COLUMNS if len({str(r.get(c)) for r in rows if r.get(c) not in (None, "")}) > 1]


def distinct_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows told apart by their settings (:data:`bench.leaderboard.SETTING_COLUMNS`), shown as columns.

    Runs of one decoder at 100 and 30 prompts, or at two max-new-tokens, are two rows with the
    setting beside them; identical human rows collapse into one. Two runs that agree on the row
    and on every setting are an error naming both.
    """
    seen: dict[tuple[str, ...], dict[str, Any]] = {}
    out = []
    for row in rows:
        key = row_key(row) + tuple(str(row.get(k, "")) for k in SETTING_COLUMNS)
        old = seen.setdefault(key, row)
        if old is row:
            out.append(row)
        elif row["model"] != "human":
            raise BenchError(f"runs {old['run_id']} and {row['run_id']} both give the row '{row_label(row)}' "
                             "with the same settings; pass only one of them")
    return out


def metric_columns(columns: list[str]) -> list[str]:
    """Metric names among ``columns``: registered metrics, and unknown ones that carry an interval.

    An unknown metric name is looked up with :func:`bench.metrics.metric`, which raises a
    :class:`BenchError` naming the closest registered metric.
    """
    from bench.metrics import METRICS, metric

    present = set(columns)
    names = [m for m in METRICS if m in present]
    for col in columns:
        if col not in METRICS and f"{col}_lo" in present and f"{col}_hi" in present:
            names.append(metric(col).name)
    return names


def parse_value(text: str) -> Any:
    """A CSV cell: float when numeric, ``None`` when empty, else the string."""
    if text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return text


def read_table(path: str | Path) -> tuple[list[str], list[dict[str, Any]]]:
    """A leaderboard CSV as (columns, rows); metric and interval cells become floats."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"{path}: no such leaderboard CSV")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            columns = list(reader.fieldnames or [])
            raw_rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise BenchError(f"{path} is not a leaderboard CSV ({type(exc).__name__}: {str(exc)[:80]})") from None
    missing = [c for c in ROW_KEY if c not in columns]
    if missing:
        raise BenchError(f"{path} is not a leaderboard CSV (no column {', '.join(missing)})")
    metrics = metric_columns(columns)
    numeric = {c for m in metrics for c in (m, f"{m}_lo", f"{m}_hi")} | {"n", "n_prompts", "max_new_tokens"}
    rows = []
    for line, raw in enumerate(raw_rows, start=2):
        if None in raw or any(v is None for v in raw.values()):
            raise BenchError(f"{path}, line {line}: {len(columns)} columns expected; the row is cut or has extra cells")
        row: dict[str, Any] = {k: unguard_cell(v or "") for k, v in raw.items()}
        for col in numeric & set(columns):
            row[col] = parse_value(raw[col] or "")
            if isinstance(row[col], str):
                raise BenchError(f"{path}, line {line}: column '{col}' holds '{row[col][:40]}', not a number")
        rows.append(row)
    if not rows:
        raise BenchError(f"{path} has no rows")
    return columns, rows


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet read a cell as a formula (OWASP's CSV-injection list)."""


def guard_cell(value: Any) -> Any:
    """A text cell a spreadsheet will not run: a leading ``'`` before a formula character (OWASP)."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def unguard_cell(value: str) -> str:
    """The text :func:`guard_cell` protected, so a CSV read back compares equal to the runs."""
    return value[1:] if value.startswith("'") and value[1:].startswith(FORMULA_START) else value


def is_number(value: Any) -> bool:
    """A finite or NaN float/int (not None, not a string)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)



DEGENERATE_MARK = "†"
"""Shown beside every metric of a row flagged degenerate: its word metrics describe text that is barely there."""


def is_degenerate(row: dict[str, Any]) -> bool:
    """The leaderboard flagged the row's text as degenerate (blank, whitespace runs, no words, very short)."""
    return "degenerate" in str(row.get("flags") or "")
