"""Regression gate: compare runs (or a leaderboard CSV) against a committed baseline leaderboard.

A metric fails when it moves the wrong way (as :attr:`bench.metrics.Metric.direction` says) by
more than its tolerance: ``--tolerance metric=value`` when given, else the half-width of the
baseline's bootstrap interval, else 0. With ``exact``, every decoder's row must also have the
baseline's ``tokens_sha``: the same token ids for every prompt. Sampled rows too: a record's random
stream comes from (seed, prompt id, sample index), so on the platform the baseline was made on
(same torch, same CPU kind) a seeded run reproduces it token for token, and a change to a sampler's
arithmetic (top-p's nucleus at p x 0.9) that keeps its metrics inside their intervals still fails.
``sampled_exact=False`` (``bench check --exact --deterministic-only``) compares deterministic rows
only, for a platform whose float arithmetic differs from the baseline's (another torch or GPU);
the sampled rows are then held to their metric tolerances alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.publish import (SETTINGS, complete_runs, find_runs, is_number, metric_columns, read_table,
                           row_key, row_label, unique_rows)

EPS = 1e-9
"""Slack for values that went through the CSV's 6 significant digits."""


@dataclass
class Line:
    """One metric of one row: what the diff table shows."""

    row: str
    metric: str
    baseline: Any
    now: Any
    tolerance: float | None
    status: str
    """``same``, ``better``, ``worse`` (within tolerance), ``REGRESSION``, ``changed`` (no direction), ``new``."""


@dataclass
class Report:
    lines: list[Line] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    """One readable sentence per failure; empty when the check passes."""
    exact_checked: int = 0
    exact_sampled: int = 0
    """Of the rows compared token for token, those of sampled decoders."""


def load_target(target: str | Path, skip_incomplete: bool = False) -> tuple[list[str], list[dict[str, Any]]]:
    """Rows to check: a leaderboard CSV, a run folder or a store (runs must be complete unless ``skip_incomplete``)."""
    from bench.leaderboard import _fmt, columns, rows_for_runs
    from bench.publish import parse_value

    path = Path(target)
    if path.is_file():
        return read_table(path)
    rows = unique_rows(rows_for_runs(complete_runs(find_runs([path]), skip_incomplete=skip_incomplete)))
    # round-trip through the CSV's formatting so both sides carry the same precision
    cols = columns(rows)
    return cols, [{k: parse_value(str(_fmt(v))) if is_number(v) else v for k, v in r.items()} for r in rows]


def parse_tolerances(items: tuple[str, ...] | list[str]) -> dict[str, float]:
    """``metric=value`` pairs, metric names checked against the registry."""
    from bench.metrics import metric

    out = {}
    for item in items:
        name, eq, raw = item.partition("=")
        if not eq:
            raise BenchError(f"--tolerance '{item}' is not metric=value")
        try:
            value = float(raw)
        except ValueError:
            raise BenchError(f"--tolerance '{item}': '{raw}' is not a number") from None
        if not value >= 0:
            raise BenchError(f"--tolerance '{item}': must be >= 0")
        out[metric(name.strip()).name] = value
    return out


def _compatible(base_cols: list[str], cols: list[str], exact: bool) -> list[str]:
    """The metrics to compare; raises when the two tables do not have the same metric columns."""
    base_metrics, metrics = metric_columns(base_cols), metric_columns(cols)
    lacking = [m for m in base_metrics if m not in metrics]
    if lacking:
        raise BenchError(f"missing metrics: the baseline has {', '.join(lacking)} but the runs do not")
    extra = [m for m in metrics if m not in base_metrics]
    if extra:
        raise BenchError(f"the baseline has other columns: it lacks {', '.join(extra)}; "
                         "regenerate it deliberately (see leaderboards/README.md)")
    if exact and ("tokens_sha" not in base_cols or "tokens_sha" not in cols):
        raise BenchError("--exact needs a tokens_sha column in the baseline and the runs; regenerate the baseline")
    return base_metrics


def _same_setting(a: Any, b: Any) -> bool:
    if is_number(a) or is_number(b):
        try:
            return float(a) == float(b)
        except (TypeError, ValueError):
            return False
    return str(a or "") == str(b or "")


def _tolerance(name: str, base: dict[str, Any], given: dict[str, float]) -> float:
    if name in given:
        return given[name]
    lo, hi = base.get(f"{name}_lo"), base.get(f"{name}_hi")
    if is_number(lo) and is_number(hi) and not (math.isnan(lo) or math.isnan(hi)):
        return (hi - lo) / 2
    return 0.0


def compare_metric(name: str, base: Any, now: Any, tol: float) -> str:
    """The status of one metric (see :class:`Line`)."""
    from bench.metrics import METRICS

    direction = METRICS[name].direction
    b_ok = is_number(base) and not math.isnan(base)
    n_ok = is_number(now) and not math.isnan(now)
    if not b_ok or not n_ok:
        if b_ok == n_ok:
            return "same"
        return "changed" if direction == "none" else "REGRESSION"
    if abs(now - base) <= EPS:
        return "same"
    if direction == "none":
        return "changed"
    worse_by = (base - now) if direction == "higher" else (now - base)
    if worse_by <= 0:
        return "better"
    return "REGRESSION" if worse_by > tol + EPS else "worse"


def _deterministic(decoder: str) -> bool | None:
    """Whether a decoder draws no random numbers; None when it is not registered here."""
    from bench.registry import get_decoder

    try:
        return not get_decoder(decoder).sampling
    except BenchError:
        return None


def check(baseline: str | Path, target: str | Path, tolerances: dict[str, float] | None = None,
          exact: bool = False, skip_incomplete: bool = False, sampled_exact: bool = True) -> Report:
    """Compare ``target`` with the baseline CSV; raises BenchError for incomparable inputs."""
    base_cols, base_rows = read_table(baseline)
    cols, rows = load_target(target, skip_incomplete)
    metrics = _compatible(base_cols, cols, exact)
    tolerances = tolerances or {}
    base_suites = sorted({r["suite"] for r in base_rows})
    suites = sorted({r["suite"] for r in rows})
    foreign = [s for s in suites if s not in base_suites]
    if foreign:
        raise BenchError(f"the baseline {baseline} is for suite {', '.join(base_suites)}, "
                         f"the runs are for {', '.join(foreign)}")
    by_key = {row_key(r): r for r in base_rows}
    report = Report()
    seen = set()
    for row in rows:
        key = row_key(row)
        base = by_key.get(key)
        label = row_label(row)
        if base is None:
            report.lines.append(Line(label, "-", None, None, None, "new"))
            continue
        seen.add(key)
        for s in SETTINGS:
            if s in base and s in row and not _same_setting(base[s], row[s]):
                raise BenchError(f"'{label}' was made with {s}={row[s]}, the baseline with {s}={base[s]}; "
                                 "not comparable")
        for m in metrics:
            tol = _tolerance(m, base, tolerances)
            status = compare_metric(m, base.get(m), row.get(m), tol)
            report.lines.append(Line(label, m, base.get(m), row.get(m), tol, status))
            if status == "REGRESSION":
                report.failures.append(f"{label}: {m} went from {_show(m, base.get(m))} to {_show(m, row.get(m))} "
                                       f"(tolerance {tol:.4g})")
        deterministic = _deterministic(row["decoder"])
        if exact and row["model"] != "human" and (deterministic or (sampled_exact and deterministic is not None)):
            report.exact_checked += 1
            report.exact_sampled += 0 if deterministic else 1
            if "unavailable" in (row.get("tokens_sha"), base.get("tokens_sha")):
                report.failures.append(f"{label}: token ids are unavailable (the server returned none), so "
                                       "--exact cannot compare tokens")
            elif str(row.get("tokens_sha") or "") != str(base.get("tokens_sha") or ""):
                report.failures.append(
                    f"{label}: the decoding output changed (tokens_sha {str(base.get('tokens_sha'))[:12]} -> "
                    f"{str(row.get('tokens_sha'))[:12]}); " + (
                        "a deterministic decoder must reproduce the baseline token for token" if deterministic else
                        "a seeded sampled run reproduces the baseline token for token on its platform (on another "
                        "torch or device use --deterministic-only)"))
    # a store or CSV must cover every baseline row of its suites; a single run folder checks its own row
    single_run = Path(target).is_dir() and (Path(target) / "header.json").is_file()
    missing = [row_label(r) for r in base_rows if r["suite"] in suites and row_key(r) not in seen]
    if missing and not single_run:
        raise BenchError(f"no run for baseline row(s): {'; '.join(missing)}")
    return report


def _show(name: str, value: Any) -> str:
    from bench.publish.markdown import fmt

    return fmt(name, value)


def render_report(report: Report, baseline: str, verbose: bool = False) -> Any:
    """The diff table (rich): every metric that moved; rows where nothing moved as one line each."""
    from rich.table import Table

    from bench.publish.markdown import fmt

    table = Table(title=f"bench check against {baseline}")
    for col in ("row", "metric", "baseline", "now", "now - baseline", "tolerance", "status"):
        table.add_column(col, justify="right" if col not in ("row", "metric", "status") else "left")
    styles = {"REGRESSION": "bold red", "worse": "yellow", "better": "green", "new": "cyan"}
    unchanged = {}
    for ln in report.lines:
        unchanged[ln.row] = unchanged.get(ln.row, True) and ln.status == "same"
    for ln in report.lines:
        if ln.status == "same" and not verbose:
            if unchanged.pop(ln.row, False):
                table.add_row(ln.row, "all metrics", "", "", "", "", "same")
            continue
        diff = f"{ln.now - ln.baseline:+.4g}" if is_number(ln.baseline) and is_number(ln.now) else ""
        tol = "" if ln.tolerance is None else f"{ln.tolerance:.4g}"
        base = fmt(ln.metric, ln.baseline) if ln.metric != "-" else ""
        now = fmt(ln.metric, ln.now) if ln.metric != "-" else ""
        status = f"[{styles[ln.status]}]{ln.status}[/]" if ln.status in styles else ln.status
        table.add_row(ln.row, ln.metric, base, now, diff, tol, status)
    return table


__all__ = ["Report", "check", "load_target", "parse_tolerances", "render_report"]
