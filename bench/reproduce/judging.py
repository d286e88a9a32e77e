"""Stage 3b, judge: pairwise LLM-judge preferences between the score stage's runs.

Runs only when ``--judge-url`` (with ``--judge-model``) or ``--judge-local`` is given; otherwise
the stage records that no judge was given and the report says so.

What is judged against what. The reference is greedy decoding of each Late-Stage LoRA hyperfit
(the study's primary method), one reference per hyperfit seed. Every other run of the control
table is an opponent:

* a run tied to a Late-Stage LoRA checkpoint (base T* and static reweighting calibrated on it) is
  judged against that checkpoint's greedy only, so a control stays paired with its own hyperfit;
* every other run (base greedy, base T=1, top-p, contrastive, greedy on the full and LoRA
  hyperfits) is judged against the greedy of every Late-Stage LoRA seed.

Each pair of continuations of one prompt is judged in both orders (:mod:`bench.judge`); a win needs
both orders to agree, anything else is a tie. Verdicts are cached in ``DIR/work/judge_verdicts.jsonl``:
a killed stage, or a redone one, never pays for a verdict twice.

The win rate of the reference over an opponent condition counts a win 1, a tie 1/2 and a loss 0
over its valid pairs (invalid answers are counted and left out). Its interval, and the claims'
p-values, come from one bootstrap that resamples prompts (all pairs of a drawn prompt come along,
paired across opponents) and the Late-Stage LoRA seeds: a replicate's rate is
``sum_s,p w_s c_p S[s,p] / sum_s,p w_s c_p N[s,p]``, with ``S`` the points and ``N`` the valid pairs
of seed ``s`` at prompt ``p``, ``c`` the prompt draw counts and ``w`` the seed draw counts.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # the study imports no stage module; a stage only needs its type
    from bench.reproduce.study import Study

REFERENCE = "greedy-hyperfit"
"""The condition of the reference runs (on the ``late-lora`` checkpoints)."""
POINTS = {"a": 1.0, "b": 0.0, "tie": 0.5}
"""Points of the reference per outcome (``a`` is the reference)."""
CLAIMED = ("base greedy", "top-p", "base T* (global)")
"""Opponents whose loss to the reference is a claim of the report (Carlsson et al.'s comparison:
hyperfitted greedy against the base model's greedy and its best sampler; Li et al.'s: against T*)."""


def pairings(runs: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(reference run, opponent run) for every pairing described in the module docstring."""
    refs = [r for r in runs if r["condition"] == REFERENCE and r["method"] == "late-lora"]
    out = []
    for opp in runs:
        if opp in refs:
            continue
        tied = opp["method"] == "late-lora"
        out += [(ref, opp) for ref in refs if not tied or ref["hyperfit_seed"] == opp["hyperfit_seed"]]
    return out


def judge_stage(study: Study) -> dict[str, Any]:
    from bench.judge import JudgeSettings
    from bench.judge.pairwise import judge_records
    from bench.store import RunDir

    s = study.settings
    judge = s.judge()
    if judge is None:
        study.log("  no judge given (--judge-url with --judge-model, or --judge-local): nothing to judge")
        return {"configured": None, "pairings": []}
    settings = JudgeSettings(cache=str(study.path("work", "judge_verdicts.jsonl")), url=s.judge_url,
                             model=s.judge_model, key_env=s.judge_key_env, local_model=s.judge_local,
                             chat_template=s.judge_chat_template, device=s.device, n_boot=s.n_boot, seed=s.seed)
    settings.validate()
    study.path("work").mkdir(parents=True, exist_ok=True)
    records: dict[str, list[dict[str, Any]]] = {}

    def of(run_id: str) -> list[dict[str, Any]]:
        if run_id not in records:
            records[run_id] = RunDir(study.path("runs", run_id)).records()
        return records[run_id]

    todo = pairings(study.results["score"]["runs"])
    out = []
    for i, (ref, opp) in enumerate(todo, 1):
        study.log(f"  judge {i}/{len(todo)}: greedy, Late-Stage LoRA s{ref['hyperfit_seed']} vs {_label(opp)}")
        result = judge_records(of(ref["run_id"]), of(opp["run_id"]), settings)
        out.append({"reference_run": ref["run_id"], "reference_seed": ref["hyperfit_seed"],
                    "opponent": opp["condition"], "opponent_method": opp["method"],
                    "opponent_hyperfit_seed": opp["hyperfit_seed"], "opponent_sampling_seed": opp["sampling_seed"],
                    "opponent_run": opp["run_id"], "judge": result["judge"], "template": result["template"],
                    "outcomes": [{k: o[k] for k in ("prompt_id", "sample_index", "outcome")} for o in result["outcomes"]]})
    return {"configured": judge, "pairings": out, "requests": len(todo)}


def _label(run: dict[str, Any]) -> str:
    where = f" ({run['method']} s{run['hyperfit_seed']})" if run["method"] else ""
    seed = f", seed {run['sampling_seed']}" if run["sampling_seed"] is not None else ""
    return f"{run['condition']}{where}{seed}"


def _opponent(p: dict[str, Any]) -> str:
    """Row name of an opponent condition (greedy on another method's hyperfit is named by the method)."""
    return f"greedy-hyperfit ({p['opponent_method']})" if p["opponent"] == REFERENCE else p["opponent"]


def _cells(pairs: list[dict[str, Any]], prompts: list[str], seeds: list[int]) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """(S, N): the reference's points and valid pairs per (Late-Stage LoRA seed, prompt), and outcome counts."""
    col = {p: j for j, p in enumerate(prompts)}
    row = {s: i for i, s in enumerate(seeds)}
    points, valid = np.zeros((len(seeds), len(prompts))), np.zeros((len(seeds), len(prompts)))
    counts = {"a": 0, "b": 0, "tie": 0, "invalid": 0}
    for p in pairs:
        for o in p["outcomes"]:
            counts[o["outcome"]] += 1
            if o["outcome"] in POINTS:
                points[row[p["reference_seed"]], col[o["prompt_id"]]] += POINTS[o["outcome"]]
                valid[row[p["reference_seed"]], col[o["prompt_id"]]] += 1
    return points, valid, counts


def _replicates(cells: list[tuple[np.ndarray, np.ndarray]], n_prompts: int, n_seeds: int, n_boot: int,
                seed: int) -> list[np.ndarray]:
    """Each opponent's replicate win rates under one shared draw of prompts and of seeds."""
    from bench.stats import count_blocks, resample_counts

    rng, seed_rng = np.random.default_rng(seed), np.random.default_rng([seed, 0x5EED])
    parts: list[list[np.ndarray]] = [[] for _ in cells]
    for counts in count_blocks(rng, n_boot, 1, n_prompts):
        w = resample_counts(seed_rng, len(counts), n_seeds).astype(float)  # (batch, seeds)
        for k, (points, valid) in enumerate(cells):
            num = np.einsum("bs,sp,bp->b", w, points, counts)
            den = np.einsum("bs,sp,bp->b", w, valid, counts)
            with np.errstate(invalid="ignore", divide="ignore"):
                parts[k].append(num / den)
    return [np.concatenate(p) for p in parts]


def summary(study: Study, n_boot: int) -> list[dict[str, Any]]:
    """One row per opponent condition: counts, the reference's win rate, its interval, its replicates."""
    from bench.judge.stats import sign_test
    from bench.stats import percentile_interval, two_sided_p

    result = study.results.get("judge") or {}
    pairs = result.get("pairings") or []
    if not pairs:
        return []
    prompts = sorted({o["prompt_id"] for p in pairs for o in p["outcomes"]})
    seeds = sorted({p["reference_seed"] for p in pairs})
    names = list(dict.fromkeys(_opponent(p) for p in pairs))
    cells, counts = [], []
    for name in names:
        S, N, c = _cells([p for p in pairs if _opponent(p) == name], prompts, seeds)
        cells.append((S, N))
        counts.append(c)
    reps = _replicates(cells, len(prompts), len(seeds), n_boot, study.settings.seed)
    rows = []
    for name, (S, N), c, r in zip(names, cells, counts, reps):
        rate = float(S.sum() / N.sum()) if N.sum() else math.nan
        low, high = percentile_interval(r)
        rows.append({"opponent": name, "runs": sum(1 for p in pairs if _opponent(p) == name),
                     "pairs": sum(c.values()), "wins_hyperfit": c["a"], "wins_opponent": c["b"], "ties": c["tie"],
                     "invalid": c["invalid"], "win_rate": rate, "ci_low": low, "ci_high": high,
                     "p": two_sided_p(r - 0.5) if N.sum() else math.nan, "sign_test_p": sign_test(c["a"], c["b"]), "_reps": r})
    return rows


def table_rows(study: Study) -> list[dict[str, Any]]:
    """``tables/judge.csv``: the reference's win rate over each opponent condition."""
    return [{k: v for k, v in row.items() if k != "_reps"} for row in summary(study, study.settings.n_boot)]


def judge_claims(study: Study) -> list[dict[str, Any]]:
    """Claims "the judge prefers Late-Stage LoRA greedy over X" (statistic: win rate - 1/2)."""
    from bench.stats import percentile_interval

    result = study.results.get("judge") or {}
    judge = (result.get("configured") or {})
    who = judge.get("judge_model") or judge.get("judge_local") or "the judge"
    out = []
    for row in summary(study, study.settings.n_boot_p):
        if row["opponent"] not in CLAIMED or math.isnan(row["win_rate"]):
            continue
        diffs = row["_reps"] - 0.5
        low, high = percentile_interval(diffs)
        out.append({"claim": f"The judge ({who}) prefers greedy on the Late-Stage LoRA hyperfit over {row['opponent']}",
                    "statistic": row["win_rate"] - 0.5, "ci_low": low, "ci_high": high, "p": row["p"],
                    "metric": "judge win rate - 0.5", "a": row["opponent"], "b": "greedy, Late-Stage LoRA",
                    "expect": "b>a", "n_prompts": len({o["prompt_id"] for p in result["pairings"] for o in p["outcomes"]}),
                    "runs_a": row["runs"], "runs_b": len({p["reference_seed"] for p in result["pairings"]})})
    return out
