"""The leaderboard: one row per model x decoder x suite over the finished runs of a store.

The CSV is a view of the run store, so re-running with more decoders or models adds rows and
never loses the old ones. A ``human`` row per suite (and prompt subset) scores the references.
"""

from __future__ import annotations

import csv
import hashlib
import os
from pathlib import Path
from typing import Any, Iterable

from bench.degenerate import MIN_WORDS, WHITESPACE_RUN, WHITESPACE_SHARE, few_words, whitespace_degenerate  # noqa: F401
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


EMPTY_FLAG = 0.05
"""Share of empty or whitespace-only continuations from which a row is flagged."""
SHORT_FLAG = 0.5
"""Share of continuations under a quarter of ``max_new_tokens`` from which a row is flagged."""


def degeneracy(records: list[dict[str, Any]], max_new_tokens: int | None) -> dict[str, Any]:
    """Shares of empty/whitespace-only, of whitespace-run and of very short continuations, and the
    row's ``flags`` text.

    A hyperfit that produced mostly blank lines still scored well on word diversity; these shares
    say so beside the row instead of letting the metrics speak alone.
    """
    from bench.record_columns import Shares

    shares = Shares(max_new_tokens)
    shares.add([r["continuation"] for r in records], [len(r.get("token_ids") or ()) for r in records])
    return degeneracy_of_counts(dict(shares.counts(), n=shares.n), max_new_tokens)


def degeneracy_of_counts(counts: dict[str, Any], max_new_tokens: int | None) -> dict[str, Any]:
    """:func:`degeneracy` from the counts of :class:`bench.record_columns.Shares` (a run's cached summary)."""
    n = max(counts["n"], 1)
    empty = counts["empty"] / n
    blank = counts["blank"] / n - empty
    wordless = counts["wordless"] / n
    short = counts["short"] / n if max_new_tokens else 0.0
    flags = []
    if empty >= EMPTY_FLAG:
        flags.append(f"{empty:.0%} empty")
    if blank >= EMPTY_FLAG:
        flags.append(f"{blank:.0%} whitespace runs")
    if wordless >= EMPTY_FLAG:
        flags.append(f"{wordless:.0%} under {MIN_WORDS} words")
    if max_new_tokens and short >= SHORT_FLAG:  # None: lengths unknown (generations made elsewhere)
        flags.append(f"{short:.0%} under {max_new_tokens // 4} tokens")
    return {"empty_share": empty, "whitespace_share": blank, "wordless_share": wordless, "short_share": short,
            "flags": "degenerate: " + ", ".join(flags) if flags else ""}


def hyperfit_flag(loss: Any) -> str:
    """The flag of a row decoded on a checkpoint whose training loss is far from near-zero."""
    from bench.hyperfit.finish import NEAR_ZERO_LOSS

    if not isinstance(loss, (int, float)) or loss <= NEAR_ZERO_LOSS:
        return ""
    return f"not hyperfitted: loss {loss:.3g}"


def suite_label(spec: Any) -> str:
    """The suite column: the registered name, or the file name of a JSONL suite."""
    return spec.suite.name if spec.suite.name != "jsonl" else Path(spec.suite.source).name


def build_rows(store: RunStore) -> list[dict[str, Any]]:
    """Rows of every complete run of ``store`` (see :func:`rows_for_runs`)."""
    # one run at a time: a run's records, read to count them, are scored before the next is read
    return rows_for_runs(run for run in store.runs() if run.is_complete())


def rows_for_runs(runs: Iterable[RunDir], per_seed: bool = False, length_matched: bool = False) -> list[dict[str, Any]]:
    """One row per decoder (runs at several seeds merged, see :func:`merge_seeds`) plus one
    ``human``/``reference`` row per suite and prompt subset, sorted; ``per_seed`` keeps a row per run,
    ``length_matched`` adds a ``human``/``reference-cut`` row (:func:`bench.run_scores.score_human_cut`)."""
    from bench.run_scores import score_human_cut
    from bench.seeds import merge_seeds

    rows, human, records_of = [], {}, {}
    for run in runs:
        spec = run.spec()
        scores = run_scores(run)
        header = run.header()
        suite = suite_label(spec)
        summary = scores["summary"]  # what the records say, kept beside the scores: they are not read again
        n_prompts = summary["n_prompts"]
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
            "samples_per_prompt": spec.generation.samples_per_prompt,
            "seed": spec.generation.seed,
            "tokens_sha": summary["tokens_sha"],
            "run_id": spec.run_id,
        }
        # Lengths in tokens are known only where every record kept its ids (not for imported runs).
        base.update(degeneracy_of_counts(summary, spec.generation.max_new_tokens if summary["lengths_known"] else None))
        if spec.model.amateur:
            base["amateur"] = spec.model.amateur.rstrip("/").split("/")[-1]
        base.update({k: v for k, v in header.get("resolved", {}).items() if isinstance(v, (int, float, str))})
        loss_flag = hyperfit_flag(base.get("hyperfit_loss"))
        if loss_flag:
            base["flags"] = "; ".join(f for f in (base["flags"], loss_flag) if f)
        if scores.get("mauve_sd") is not None:
            base["mauve_sd"] = scores["mauve_sd"]
        if scores.get("judge_opponent"):
            base["judge_opponent"] = scores["judge_opponent"]
        rows.append(dict(_row(base, scores["generations"]), _run=run))
        if scores.get("human"):
            key = (suite, spec.suite.version, spec.suite.num_prompts)
            # Only the suite's columns: a run's own values (a calibrated temperature, a judge) are not the human's.
            human_base = {k: base[k] for k in ("suite", "suite_version", "n_prompts")}
            human.setdefault(key, _row(dict(human_base, model="human", decoder="reference", decoder_args=""),
                                       scores["human"]))
            records_of.setdefault(key, []).append(run)
    if length_matched:
        for key, runs_of_key in list(records_of.items()):
            cut = score_human_cut([run.records() for run in runs_of_key])
            if cut:
                human[key + ("cut",)] = _row(dict(human[key], decoder="reference-cut"), cut)
    rows = [{k: v for k, v in r.items() if k != "_run"} for r in (rows if per_seed else merge_seeds(rows))]
    rows.sort(key=lambda r: (r["suite"], r["model"], r["decoder"], r["decoder_args"], int(r.get("hyperfit_epoch") or 0),
                             str(r["seed"]), r["run_id"]))
    return rows + sorted(human.values(), key=lambda r: (r["suite"], r["n_prompts"], r["decoder"]))


def columns(rows: list[dict[str, Any]]) -> list[str]:
    """Stable order: keys, each metric then its interval, extra resolved values, tails."""
    metrics = [m for m in metric_names() if any(m in r for r in rows)]
    cols = KEY_COLUMNS + [c for m in metrics for c in (m, f"{m}_lo", f"{m}_hi")]
    extra = sorted({k for r in rows for k in r} - set(cols) - set(TAIL_COLUMNS))
    return cols + extra + TAIL_COLUMNS


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # One temporary name per process: two runs finishing together into one store each write the
    # whole table and rename it into place; with one shared name the second rename found nothing.
    tmp = path.with_suffix(f".csv.{os.getpid()}.tmp")
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


PRINT_ROWS = 40
"""Decoder rows past which the printed table is cut: per suite, the :data:`PRINT_EACH` best and worst
by :data:`PRINT_BY` (printing a 1000-decoder grid took half a minute and scrolled away)."""
PRINT_EACH = 10
PRINT_BY = ("diversity", "mauve", "coherence", "rep-2")
"""The metric the cut table ranks by: the first with a value in some row (else the first shown with a direction)."""


def render(rows: list[dict[str, Any]], shown: tuple[str, ...] = ("rep-2", "rep-4", "diversity", "distinct-2",
                                                                  "ttr-last96", "mauve", "coherence", "coherence-sim",
                                                                  "perplexity", "judge-win-rate", "length-words"),
           max_rows: int = PRINT_ROWS) -> Any:
    """A rich table with the headline metrics and their intervals; past ``max_rows`` decoder rows, the
    best and worst of each suite (:func:`bounded_rows`), the caption saying how many were left out."""
    from rich.table import Table

    from bench.metrics import METRICS

    from bench.publish import DEGENERATE_MARK, is_degenerate, varying_settings

    table = Table(title="decbench leaderboard", show_lines=False)
    settings = varying_settings(rows)
    # Names wrap rather than end in "…": two decoders cut at the same place looked like one row.
    for col in ("suite", "model", "decoder", *settings, "n", "flags"):
        table.add_column(col, overflow="fold")
    metrics = [m for m in shown if any(m in r for r in rows)]
    for m in metrics:
        arrow = {"higher": " ↑", "lower": " ↓"}.get(METRICS[m].direction, "")
        table.add_column(m + arrow, justify="right", overflow="fold")
    printed, cut = bounded_rows(rows, metrics, max_rows)
    for r in printed:
        if isinstance(r, int):  # the gap between a suite's best and worst rows
            table.add_row("", "", f"... {r} more row{'s' if r != 1 else ''} ...", style="dim")
            continue
        decoder = r["decoder"] + (f":{r['decoder_args']}" if r["decoder_args"] else "")
        decoder += f" (amateur {r['amateur']})" if r.get("amateur") else ""
        cells = [r["suite"], r["model"], decoder, *(str(_fmt(r.get(c))) for c in settings), str(r["n"]), r.get("flags", "")]
        for m in metrics:
            value, lo, hi = r.get(m), r.get(f"{m}_lo"), r.get(f"{m}_hi")
            text = "" if value is None else (f"{value:.3f}" if lo is None else f"{value:.3f} ±{(hi - lo) / 2:.3f}")
            cells.append(text + (f" {DEGENERATE_MARK}" if text and is_degenerate(r) else ""))
        table.add_row(*cells)
    captions = []
    if cut:
        left = len(rows) - sum(isinstance(r, dict) for r in printed)
        captions.append(f"{left} of {len(rows)} rows left out: past {max_rows} decoders a suite shows its {PRINT_EACH} "
                        f"best and {PRINT_EACH} worst by {cut}; every row is in the leaderboard CSV")
    if any(is_degenerate(r) for r in rows):
        captions.append(f"{DEGENERATE_MARK} {sum(map(is_degenerate, rows))} row(s) flagged degenerate (see flags): "
                        "their word metrics describe text that is barely there")
    if captions:
        table.caption = "\n".join(captions)
    return table


def bounded_rows(rows: list[dict[str, Any]], metrics: list[str], max_rows: int = PRINT_ROWS,
                 each: int = PRINT_EACH) -> tuple[list[dict[str, Any] | int], str | None]:
    """The rows to print and what they were ranked by (None: ``rows`` as they are, none left out).

    Past ``max_rows`` decoder rows, each suite keeps its ``each`` best and ``each`` worst decoders by
    the metric (rows without it are left out), an int counting those between, then its human rows."""
    from bench.metrics import METRICS

    if sum(r["model"] != "human" for r in rows) <= max_rows:
        return list(rows), None
    candidates = [m for m in PRINT_BY if m in metrics] + [m for m in metrics if METRICS[m].direction != "none"]
    # the first that ranks something: diversity is NaN for continuations shorter than its n-grams
    by = next((m for m in candidates if any(_ranks(r.get(m)) for r in rows if r["model"] != "human")), None)
    suites: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        suites.setdefault(r["suite"], []).append(r)
    out: list[dict[str, Any] | int] = []
    for members in suites.values():
        decoders = [r for r in members if r["model"] != "human"]
        ranked = decoders if by is None else sorted((r for r in decoders if _ranks(r.get(by))), key=lambda r: r[by],
                                                    reverse=METRICS[by].direction == "higher")
        if len(ranked) > 2 * each:
            out += ranked[:each] + [len(decoders) - 2 * each] + ranked[-each:]
        else:  # the rows without the metric, if any, counted after the others
            out += ranked + ([len(decoders) - len(ranked)] if len(decoders) > len(ranked) else [])
        out += [r for r in members if r["model"] == "human"]
    if by is None:
        return out, "their order (no metric to rank by)"
    arrow = {"higher": "higher is better", "lower": "lower is better"}[METRICS[by].direction]
    return out, f"{by} ({arrow})"

def _ranks(value: Any) -> bool:
    """A value a row can be ranked by: a number, not NaN."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
