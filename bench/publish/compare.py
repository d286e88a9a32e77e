"""Paired comparison of two runs over the prompts they share: B - A per metric, interval and p-value.

Both runs are restricted to their shared prompts and resampled *together*: each bootstrap
replicate draws prompts with replacement and recomputes every corpus-level metric of A and of B
on the same draw, so prompt difficulty cancels out of the difference. The interval is the 95%
percentile range of the replicate differences; for distinct-n, which the repetition scorer's
bootstrap computes over the distinct drawn texts (biased low), the replicates are first shifted
so that their mean is the observed difference, as :func:`bench.scorers.repetition.bootstrap_ci`
does. The p-value inverts that interval (two-sided): twice the smaller share of the replicate
differences on either side of 0, ``min(1, 2 (1 + count) / (1 + B))``, so that p < 0.05 exactly
when the 95% interval excludes 0. Two identical runs give differences of 0 and p = 1. The default
20,000 replicates hold p's Monte Carlo error (printed as ``p_error``) to 0.002 near p = 0.05
(1,000 gave 0.027 at p = 0.5). All of it is :mod:`bench.stats`.

MAUVE, when both runs were scored with the same settings, is recomputed on the shared prompts from
the cached features: the point is the mean over the k-means seeds, as scored, and each of its own
(fewer: ``--mauve-boot``) replicates draws the prompts, the same for both runs, *and* one k-means
seed of those recorded, the same for both, so the interval holds the spread over k-means seeds as
well as over prompts. Resampling duplicates texts, which moves each side's MAUVE, so its replicates
are shifted to the observed difference like distinct-n's. The shown A and B are the stored scores
(NaN when a run has prompts the other lacks). Other metrics that cannot be recomputed from the
records (scored elsewhere, e.g. by a model) are shown as the difference of the two runs' stored
scores, without interval or p-value.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.errors import BenchError
from bench.publish import complete_runs, find_runs, read_table
from bench.stats import N_BOOT_P
from bench.store import HEADER, RunDir

ALPHA = 0.05


@dataclass
class Diff:
    """One metric's comparison."""

    metric: str
    a: float
    b: float
    diff: float
    lo: float | None
    hi: float | None
    p: float | None
    verdict: str
    p_error: float | None = None
    """Monte Carlo standard error of ``p`` (from the number of replicates)."""


def resolve(ref: str, stores: tuple[str, ...] | list[str] = ()) -> RunDir:
    """A run folder, or ``CSV#run_id`` found in ``stores`` (or beside the CSV)."""
    path, hash_, run_id = ref.partition("#")
    if not hash_:
        runs = find_runs([ref])
        if len(runs) != 1:
            raise BenchError(f"{ref} holds {len(runs)} runs; give one run folder or CSV#run_id")
        return runs[0]
    _, rows = read_table(path)
    if not any(r.get("run_id") == run_id for r in rows):
        raise BenchError(f"{path} has no row with run_id {run_id}")
    places = [Path(s) for s in stores] + [Path(path).parent]
    for place in places:
        if (place / run_id / HEADER).is_file():
            return RunDir(place / run_id)
    where = ", ".join(str(p) for p in places)
    raise BenchError(f"run {run_id} (from {path}) is not in {where}; point --store at the run store")


def _by_prompt(run: RunDir) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in sorted(run.records(), key=lambda r: (r["prompt_id"], r["sample_index"])):
        out.setdefault(r["prompt_id"], []).append(r)
    return out


def _side(groups: dict[str, list[dict[str, Any]]], prompts: list[str]) -> Any:
    """One run restricted to the shared prompts, as a :class:`~bench.scorers.repetition.CorpusResampler`."""
    from bench.scorers.repetition import CorpusResampler

    records = [r for p in prompts for r in groups[p]]
    # Token-level metrics need every record's ids; a server that gave none leaves them unavailable.
    token_ids = [r["token_ids"] for r in records] if all(r.get("token_ids") is not None for r in records) else None
    return CorpusResampler([r["continuation"] for r in records], token_ids, [r["prompt_id"] for r in records])


def _sides(run_a: RunDir, run_b: RunDir) -> tuple[Any, Any, list[str], Any]:
    """Both runs on their shared prompts as resamplers, the shared prompts, and a function giving
    each run's records by prompt (read only when asked: MAUVE needs them).

    Runs with the same prompts (the usual case) are read as columns, without a dict per record."""
    from bench.scorers.repetition import CorpusResampler

    ca, cb = run_a.columns(), run_b.columns()
    pa, pb = list(dict.fromkeys(ca.prompt_ids)), list(dict.fromkeys(cb.prompt_ids))  # sorted already
    cache: dict[str, Any] = {}

    def groups() -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[dict[str, Any]]]]:
        if not cache:
            cache["ab"] = (_by_prompt(run_a), _by_prompt(run_b))
        return cache["ab"]

    if pa == pb:
        if not pa:
            raise BenchError(f"runs {run_a.run_id} and {run_b.run_id} share no prompts; nothing to compare")
        return (CorpusResampler(None, None, ca.prompt_ids, columns=(ca.words, ca.tokens)),
                CorpusResampler(None, None, cb.prompt_ids, columns=(cb.words, cb.tokens)), pa, groups)
    del ca, cb
    ga, gb = groups()
    shared = sorted(ga.keys() & gb.keys())
    if not shared:
        raise BenchError(f"runs {run_a.run_id} and {run_b.run_id} share no prompts; nothing to compare")
    return _side(ga, shared), _side(gb, shared), shared, groups


def _replicates(a: Any, b: Any, n_prompts: int, n_boot: int, seed: int) -> dict[str, np.ndarray]:
    """B - A for each replicate and metric (NaN where either side is undefined), the blocks of
    draws scored side by side on threads (:func:`~bench.scorers.repetition.replicate_blocks`): the
    same draws in the same order, so the same replicates (``tests/test_scores_golden.py``)."""
    from bench.scorers.repetition import replicate_blocks
    from bench.stats import count_blocks

    blocks = count_blocks(np.random.default_rng(seed), n_boot, max(a.width, b.width), n_prompts)
    parts: dict[str, list[np.ndarray]] = {}
    for ma, mb in replicate_blocks([a, b], blocks):
        for name in ma.keys() & mb.keys():
            parts.setdefault(name, []).append(mb[name] - ma[name])
    return {k: np.concatenate(v) for k, v in parts.items()}


def _verdict(name: str, diff: float, p: float | None) -> str:
    from bench.metrics import METRICS

    if p is None or math.isnan(diff):
        return ""
    if p >= ALPHA or diff == 0:
        return "n.s."
    m = METRICS.get(name)
    if m is None or m.direction == "none":
        return "differs"
    return "B better" if m.better(diff, 0.0) else "B worse"


def compare_runs(run_a: RunDir, run_b: RunDir, n_boot: int = N_BOOT_P, seed: int = 0,
                 mauve_boot: int | None = None) -> tuple[list[Diff], int]:
    """Per metric, B - A over the shared prompts; also returns the number of shared prompts.

    MAUVE (when both runs were scored with the same settings) gets its own ``mauve_boot``
    replicates (default :data:`MAUVE_BOOT`; 0: the stored scores' difference, untested)."""
    from bench.metrics import METRICS
    from bench.run_scores import run_scores
    from bench.stats import p_error, percentile_interval, two_sided_p

    complete_runs([run_a, run_b], can_skip=False)
    mauve_boot = min(n_boot, MAUVE_BOOT) if mauve_boot is None else mauve_boot
    if n_boot < 1:
        raise BenchError(f"--n-boot must be >= 1, got {n_boot}")
    a, b, shared, groups = _sides(run_a, run_b)
    reps = _replicates(a, b, len(shared), n_boot, seed)
    diffs = []
    for name in [m for m in METRICS if m in a.point and m in b.point] + \
            sorted((a.point.keys() & b.point.keys()) - set(METRICS)):
        d = b.point[name] - a.point[name]
        lo = hi = p = p_err = None
        values = reps.get(name)
        if values is not None:
            values = values[~np.isnan(values)]
        if values is not None and len(values) and not math.isnan(d):
            shifted = values + (d - values.mean()) if name.startswith("distinct-") else values
            lo, hi = percentile_interval(shifted, 1 - ALPHA)
            p = two_sided_p(shifted)
            p_err = p_error(p, len(shifted))
        diffs.append(Diff(name, a.point[name], b.point[name], d, lo, hi, p, _verdict(name, d, p), p_err))
    # metrics scored elsewhere (stored in scores.json) that the records alone cannot reproduce
    stored_a, stored_b = run_scores(run_a)["generations"]["metrics"], run_scores(run_b)["generations"]["metrics"]
    for name in [m for m in stored_a if m in stored_b and m not in a.point]:
        mauve = _mauve_diff(run_a, run_b, *groups(), shared, mauve_boot, seed) if name == "mauve" else None
        if isinstance(mauve, Diff):
            diffs.append(mauve)
            continue
        va, vb = float(stored_a[name]), float(stored_b[name])
        diffs.append(Diff(name, va, vb, vb - va, None, None, None, "whole runs, no test" + (f" ({mauve})" if mauve else "")))
    return diffs, len(shared)


MAUVE_BOOT = 100
"""Paired bootstrap replicates of MAUVE's difference (each two MAUVE computations: 0.9 s each at 1314
prompts with 1280-dimensional features on this 2-core CPU)."""


def _mauve_diff(run_a: RunDir, run_b: RunDir, ga: dict[str, list[dict[str, Any]]], gb: dict[str, list[dict[str, Any]]],
                shared: list[str], n_boot: int, seed: int) -> "Diff | str | None":
    """MAUVE's B - A on the shared prompts with a paired bootstrap interval whose replicates also draw
    the k-means seed (:func:`bench.scorers.mauve.paired_replicates`); the reason when there is none."""
    from bench.scorers.mauve import mauve_inputs, paired_replicates, settings_from_recorded
    from bench.stats import p_error, percentile_interval, two_sided_p

    if n_boot < 1:
        return None
    entries = [run.scores().get("model_based", {}).get("mauve") for run in (run_a, run_b)]
    if not all(entries) or entries[0].get("settings_key") != entries[1].get("settings_key"):
        return "scored with other MAUVE settings"
    settings = settings_from_recorded(entries[0]["settings"])
    try:
        a = mauve_inputs([r for p in shared for r in ga[p]], settings)
        b = mauve_inputs([r for p in shared for r in gb[p]], settings)
    except BenchError as exc:  # the featurizer is not here, or too few texts on the shared prompts
        return str(exc).split(";")[0][:120]
    prompts = sorted(set(a.q_prompts) & set(b.q_prompts))
    point, reps = paired_replicates(a, b, prompts, settings, n_boot, seed)
    # the stored scores (means over the seeds) are of the whole runs: shown when those are the shared prompts
    ma = float(entries[0]["value"]) if shared == sorted(ga) else math.nan
    mb = float(entries[1]["value"]) if shared == sorted(gb) else math.nan
    reps = reps[~np.isnan(reps)]
    if not len(reps) or math.isnan(point):
        return "too few texts in the bootstrap draws"
    shifted = reps + (point - reps.mean())  # resampling duplicates texts, which biases each side's MAUVE
    lo, hi = percentile_interval(shifted, 1 - ALPHA)
    p = two_sided_p(shifted)
    return Diff("mauve", ma, mb, point, lo, hi, p, _verdict("mauve", point, p), p_error(p, len(shifted)))


COLUMNS = ["metric", "direction", "A", "B", "B-A", "ci_lo", "ci_hi", "p", "p_error", "verdict"]


def as_rows(diffs: list[Diff]) -> list[dict[str, Any]]:
    """The comparison as plain rows (columns :data:`COLUMNS`)."""
    from bench.metrics import METRICS

    return [{"metric": d.metric, "direction": METRICS[d.metric].direction if d.metric in METRICS else "none",
             "A": d.a, "B": d.b, "B-A": d.diff, "ci_lo": d.lo, "ci_hi": d.hi, "p": d.p, "p_error": d.p_error,
             "verdict": d.verdict}
            for d in diffs]


def _num(value: Any, spec: str = ".6g") -> str:
    return "" if value is None else format(value, spec)


def write_csv(diffs: list[Diff], path: str | Path) -> None:
    import io

    from bench.runtime.provenance import write_text_atomic

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    for row in as_rows(diffs):
        writer.writerow({k: _num(v) if isinstance(v, float) or v is None else v for k, v in row.items()})
    write_text_atomic(path, buffer.getvalue())  # a full disk leaves the old file, not half a table


def title(run_a: RunDir, run_b: RunDir, n_shared: int, n_boot: int) -> str:
    la, lb = run_a.spec(), run_b.spec()
    return (f"B - A: A = {la.model.label} {la.decoder.label} ({run_a.run_id}), "
            f"B = {lb.model.label} {lb.decoder.label} ({run_b.run_id}); {n_shared} shared prompts, "
            f"{n_boot} paired bootstrap replicates over prompts (p_error: Monte Carlo error of p)")


def write_markdown(diffs: list[Diff], path: str | Path, heading: str) -> None:
    from bench.publish.markdown import md_text
    from bench.runtime.provenance import write_text_atomic

    lines = [f"# {md_text(heading)}", "", "| " + " | ".join(COLUMNS) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * 7 + ["---"]) + "|"]
    for row in as_rows(diffs):
        lines.append("| " + " | ".join(_num(v, ".4g") if isinstance(v, float) or v is None else str(v)
                                       for v in row.values()) + " |")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, "\n".join(lines) + "\n")


def render(diffs: list[Diff], heading: str) -> Any:
    """The comparison as a rich table."""
    from rich.table import Table

    table = Table(title=heading)
    for col in COLUMNS:
        table.add_column(col, justify="left" if col in ("metric", "direction", "verdict") else "right")
    styles = {"B better": "green", "B worse": "red", "differs": "yellow"}
    for row in as_rows(diffs):
        cells = [_num(v, ".4g") if isinstance(v, float) or v is None else str(v) for v in row.values()]
        if row["verdict"] in styles:
            cells[-1] = f"[{styles[row['verdict']]}]{cells[-1]}[/]"
        table.add_row(*cells)
    return table
