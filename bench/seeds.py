"""Seeds as an axis: runs of one decoder at several seeds become one leaderboard row.

The row's value of each metric is the mean over seeds. For the metrics computed from the records
(repetition, diversity, distinct-n, lengths) the interval comes from a two-way bootstrap that
resamples prompts (all samples of a prompt together, the same prompts for every seed) and seeds
(:func:`bench.stats.seed_mean_replicates`), so it holds both sources of noise. Model-based metrics
(MAUVE, coherence, perplexity, judge) are averaged without an interval: their per-seed intervals
cannot be combined from the records. ``bench leaderboard --per-seed`` keeps one row per run.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.stats import N_BOOT, percentile_interval, seed_mean_replicates

SEEDLESS = ("suite", "suite_version", "model", "decoder", "decoder_args", "n_prompts", "backend", "dtype",
            "max_new_tokens", "samples_per_prompt", "amateur", "hyperfit_epoch")
"""What runs of one decoder at several seeds share: they merge into one row."""


def merge_seeds(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` (one per run, each with its ``_run``) with the runs of one decoder at several seeds merged."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(str(row.get(k)) for k in SEEDLESS), []).append(row)
    out = []
    for group in groups.values():
        seeds = {r["seed"] for r in group}
        out.append(group[0] if len(group) == 1 or len(seeds) != len(group) else _merged(group))
    return out


def _metric_names(row: dict[str, Any]) -> list[str]:
    return [k[:-3] for k in row if k.endswith("_lo") and k[:-3] in row]


def _merged(group: list[dict[str, Any]]) -> dict[str, Any]:
    """One row for the runs of ``group`` (one per seed): means over seeds, two-way intervals."""
    group = sorted(group, key=lambda r: r["seed"])
    row = {k: v for k, v in group[0].items() if k not in ("tokens_sha",)}
    row.update(seed=",".join(str(r["seed"]) for r in group), n_seeds=len(group),
               run_id="+".join(r["run_id"] for r in group), n=sum(r["n"] for r in group))
    replicates = _two_way(group)
    for name in _metric_names(group[0]):
        values = [r.get(name) for r in group]
        if any(v is None for v in values):
            continue
        row[name] = float(np.mean(values))
        reps = replicates.get(name)
        centre = row[name] if name.startswith("distinct-") else None
        row[f"{name}_lo"], row[f"{name}_hi"] = percentile_interval(reps, centre=centre) if reps is not None else (None, None)
    row["flags"] = "; ".join(dict.fromkeys(f"seed {r['seed']}: {r['flags']}" for r in group if r.get("flags")))
    for share in ("empty_share", "whitespace_share", "wordless_share", "short_share"):
        row[share] = float(np.mean([r.get(share, 0.0) for r in group]))
    if all(r.get("mauve_sd") is not None for r in group):
        row["mauve_sd"] = float(np.mean([r["mauve_sd"] for r in group]))
    return row


def _two_way(group: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Replicates of the seed mean of every record-based metric, over the prompts all runs share."""
    from bench.scorers.repetition import CorpusResampler

    by_run = [{} for _ in group]
    for holder, row in zip(by_run, group):
        for r in row["_run"].records():
            holder.setdefault(r["prompt_id"], []).append(r)
    shared = sorted(set.intersection(*(set(h) for h in by_run)))
    if not shared:
        return {}
    sides = []
    for holder in by_run:
        records = [r for p in shared for r in sorted(holder[p], key=lambda r: r["sample_index"])]
        sides.append(CorpusResampler([r["continuation"] for r in records], [r["token_ids"] for r in records],
                                     [r["prompt_id"] for r in records]))
    # every side numbers the shared prompts in the same order, so one draw means the same prompts
    return seed_mean_replicates([s.replicate for s in sides], len(shared), N_BOOT, 0, max(s.width for s in sides))
