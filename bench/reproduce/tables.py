"""The study's tables (``DIR/tables/*.csv``), each built from its stage's kept result."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np

from bench.reproduce.corpora import metric_columns, run_corpus, variant_corpus
from bench.reproduce.study import Study

CONDITION_ORDER = ("base greedy", "base T=1", "top-p", "contrastive", "greedy-hyperfit", "base T* (global)",
                   "base T* (per step)", "static reweighting")


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows([{k: _cell(r.get(k)) for k in columns} for r in rows])
    tmp.replace(path)


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return "" if value is None else value


def groups(runs: list[dict[str, Any]]) -> list[tuple[tuple[str, str | None], list[dict[str, Any]]]]:
    """Runs grouped by (condition, hyperfit method), in the table's order."""
    out: dict[tuple[str, str | None], list[dict[str, Any]]] = {}
    for r in runs:
        out.setdefault((r["condition"], r["method"]), []).append(r)
    return sorted(out.items(), key=lambda kv: (CONDITION_ORDER.index(kv[0][0]), kv[0][1] or ""))


def control_rows(study: Study) -> list[dict[str, Any]]:
    """``control.csv``: every decoding condition, text metrics with intervals, model-based scores."""
    s, rows = study.settings, []
    for (condition, method), runs in groups(study.results["score"]["runs"]):
        corpora = [run_corpus(study, r["run_id"]) for r in runs]
        row: dict[str, Any] = {"condition": condition, "hyperfit": method or "", "decoder": runs[0]["decoder"],
                               "runs": len(runs),
                               "hyperfit_seeds": len({r["hyperfit_seed"] for r in runs if r["hyperfit_seed"] is not None}),
                               "sampling_seeds": len({r["sampling_seed"] for r in runs if r["sampling_seed"] is not None}),
                               "prompts": corpora[0].n_prompts}
        row.update(metric_columns(corpora, s.n_boot, s.seed))
        for score in s.scores:
            values = [r["metrics"].get(score) for r in runs if r["metrics"].get(score) is not None]
            row[score] = float(np.mean(values)) if values else None
        temps = [r["resolved"].get("temperature") for r in runs if "temperature" in r.get("resolved", {})]
        targets = [r["resolved"].get("target_entropy") for r in runs if "target_entropy" in r.get("resolved", {})]
        row["temperature"] = float(np.mean(temps)) if temps else None
        row["target_entropy"] = float(np.mean(targets)) if targets else None
        rows.append(row)
    return rows


def rank_rows(study: Study) -> list[dict[str, Any]]:
    """``rank_reordering.csv``: per Late-Stage LoRA seed and their mean."""
    rows = []
    for r in study.results["mechanism"]["per_seed"]:
        row = {"hyperfit_seed": r["seed"], "steps": r["steps"], "tail_rank": r["tail_rank"],
               "deep_tail_definition": f"base rank > {r['tail_rank']} (rank 1 = the base model's top-1)"}
        for k in ("override", "deep_tail", "deep_tail_all", "mean_rank"):
            row[k], row[f"{k}_low"], row[f"{k}_high"] = r[k]
        row["median_rank"] = r["median_rank"]
        rows.append(row)
    return rows


def reweighting_rows(study: Study) -> list[dict[str, Any]]:
    """``reweighting.csv``: the static-reweighting sweep (alpha 0 = base greedy) beside the target."""
    first = study.results["mechanism"]["per_seed"][0]
    rows = []
    for p in first.get("sweep", []):
        row: dict[str, Any] = {"alpha": p["alpha"], "hyperfit_seed": first["seed"]}
        for k in ("ttr", "rep-2", "rep-3", "rep-4", "diversity"):
            row[k], row[f"{k}_low"], row[f"{k}_high"] = p[k]
        rows.append(row)
    return rows


def intervention_rows(study: Study) -> list[dict[str, Any]]:
    """``intervention.csv``: the unmodified models and every variant: final-layer PR and Delta Dim
    (interval over prompts), greedy decoding's diversity and repetition."""
    from bench.reproduce.causal import load_final_moments
    from bench.reproduce.dimension import delta_dim_replicates
    from bench.reproduce.mechanism import load_moments
    from bench.stats import percentile_interval

    s = study.settings
    runs = study.results["decode"]["runs"]
    late_seeds = [c["seed"] for c in study.results["hyperfit"]["checkpoints"] if c["method"] == "late-lora"]
    rows = []

    def add(name: str, description: str, corpora: list[Any], base_m: list[Any] | None, other_m: list[Any] | None,
            seeds: list[int], extra: dict[str, Any] | None = None) -> None:
        row: dict[str, Any] = {"variant": name, "description": description, "seeds": len(seeds)}
        if base_m:
            delta, reps, pr_b, pr_o = delta_dim_replicates(base_m, other_m, s.n_boot, s.seed)
            row.update(pr_final_base=pr_b, pr_final=pr_o, delta_dim=delta,
                       **dict(zip(("delta_dim_low", "delta_dim_high"), percentile_interval(reps, centre=delta))))
        else:
            row.update(pr_final_base=None, pr_final=None, delta_dim=0.0, delta_dim_low=None, delta_dim_high=None)
        row.update(metric_columns(corpora, s.n_boot, s.seed, ("diversity", "rep-2", "rep-3", "rep-4")))
        row.update(extra or {})
        rows.append(row)

    base_greedy = [r["run_id"] for r in runs if r["condition"] == "base greedy"]
    add("base", "the base model, greedy", [run_corpus(study, i) for i in base_greedy], None, None, [0])
    mech = [load_moments(study.path("work", f"moments-s{seed}.npz")) for seed in late_seeds]
    hyper_runs = [r["run_id"] for r in runs if r["condition"] == "greedy-hyperfit" and r["method"] == "late-lora"]
    add("hyperfitted", "Late-Stage LoRA checkpoint, greedy", [run_corpus(study, i) for i in hyper_runs],
        [m["base"][-1] for m in mech], [m["hyper"][-1] for m in mech], late_seeds)
    by_name: dict[str, list[dict[str, Any]]] = {}
    for v in study.results["intervention"]["variants"]:
        by_name.setdefault(v["variant"], []).append(v)
    from bench.reproduce.causal import PROJECTED, TRANSPLANT_IN, TRANSPLANT_OUT
    described = {TRANSPLANT_IN: "base model with the hyperfitted final block",
                 TRANSPLANT_OUT: "hyperfitted model with the base final block",
                 PROJECTED: "hyperfitted model, final state projected onto the base's top-d principal subspace",
                 "late-lora-no-final": f"LoRA on the last {s.late_layers} blocks without the final one",
                 "final-lora": "LoRA on the final block only"}
    for name, variants in by_name.items():
        moments = [load_final_moments(study, v["moments"]) for v in variants]
        extra = {"subspace_dim": variants[0]["subspace_dim"]} if "subspace_dim" in variants[0] else {}
        add(name, described.get(name, name), [variant_corpus(v) for v in variants], [m["base"] for m in moments],
            [m["other"] for m in moments], [v["seed"] for v in variants], extra)
    return rows
