"""Stage 6, statistics: every claim of the report as a paired test, Holm-corrected together.

Text claims (diversity, rep-2) are tested by :func:`bench.reproduce.claims.test_claims`: prompts
resampled in pairs, hyperfit and sampling seeds resampled too. Geometry claims (Delta Dim) resample
the same prompts (:mod:`bench.reproduce.dimension`); their p-value inverts the percentile interval
as everywhere in decbench (:func:`bench.stats.two_sided_p`). One Holm step-down adjustment runs
over all claims of the report, text and geometry together.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.reproduce.study import Study


def _members(study: Study, condition: str, method: str | None = None) -> tuple[Any, ...]:
    from bench.reproduce.claims import Member
    from bench.reproduce.corpora import run_corpus_ids

    runs = [r for r in study.results["decode"]["runs"] if r["condition"] == condition and r["method"] == method]
    out = []
    for r in runs:
        corpus, ids = run_corpus_ids(study, r["run_id"])
        out.append(Member(corpus, r["hyperfit_seed"], r["sampling_seed"], prompts=tuple(dict.fromkeys(ids))))
    return tuple(out)


def _variant_members(study: Study, name: str, paired_seed: bool) -> tuple[Any, ...]:
    """A variant's greedy texts; ``paired_seed``: indexed by the Late-Stage LoRA seed it was made from."""
    from bench.reproduce.claims import Member
    from bench.reproduce.corpora import variant_corpus_ids

    out = []
    for v in (v for v in study.results["intervention"]["variants"] if v["variant"] == name):
        corpus, ids = variant_corpus_ids(v)
        out.append(Member(corpus, v["seed"] if paired_seed else None, None, prompts=tuple(dict.fromkeys(ids))))
    return tuple(out)


def text_claims(study: Study) -> list[Any]:
    from bench.reproduce.causal import PROJECTED, TRANSPLANT_IN, TRANSPLANT_OUT
    from bench.reproduce.claims import Claim, Side

    def side(label: str, members: tuple[Any, ...]) -> Any:
        return Side(label, members)

    base = side("base greedy", _members(study, "base greedy"))
    hyper = side("greedy, Late-Stage LoRA", _members(study, "greedy-hyperfit", "late-lora"))
    claims = [
        Claim("Greedy decoding of the Late-Stage LoRA hyperfit is more diverse than base greedy",
              "diversity", base, hyper, "b>a"),
        Claim("Greedy decoding of the Late-Stage LoRA hyperfit repeats fewer bigrams than base greedy",
              "rep-2", base, hyper, "b<a"),
        Claim("Greedy decoding of the fully fine-tuned hyperfit is more diverse than base greedy", "diversity",
              base, side("greedy, full fine-tuning", _members(study, "greedy-hyperfit", "full")), "b>a"),
        Claim("Greedy decoding of the LoRA hyperfit is more diverse than base greedy", "diversity",
              base, side("greedy, LoRA", _members(study, "greedy-hyperfit", "lora")), "b>a"),
        Claim("The base model at the entropy-matched T* (global) does not reach hyperfitting's diversity",
              "diversity", hyper, side("base at T* (global)", _members(study, "base T* (global)", "late-lora")), "b<a"),
        Claim("The base model at a per-step entropy-matched T does not reach hyperfitting's diversity",
              "diversity", hyper, side("base at T (per step)", _members(study, "base T* (per step)", "late-lora")), "b<a"),
        Claim("Static vocabulary reweighting does not reach hyperfitting's diversity", "diversity", hyper,
              side("static reweighting", _members(study, "static reweighting", "late-lora")), "b<a"),
        Claim("The hyperfitted final block alone raises base greedy's diversity", "diversity", base,
              side(TRANSPLANT_IN, _variant_members(study, TRANSPLANT_IN, True)), "b>a"),
        Claim("The base final block in the hyperfitted model lowers its diversity", "diversity", hyper,
              side(TRANSPLANT_OUT, _variant_members(study, TRANSPLANT_OUT, True)), "b<a"),
        Claim("Removing the expanded final-state directions lowers the hyperfitted model's diversity", "diversity",
              hyper, side(PROJECTED, _variant_members(study, PROJECTED, True)), "b<a"),
        Claim("LoRA on the final block only gives more diversity than LoRA on the blocks before it", "diversity",
              side("late-lora-no-final", _variant_members(study, "late-lora-no-final", False)),
              side("final-lora", _variant_members(study, "final-lora", False)), "b>a"),
    ]
    return [c for c in claims if c.a.members and c.b.members]


def geometry_claims(study: Study) -> list[dict[str, Any]]:
    """Delta Dim claims: the final layer expands; the projection removes that expansion."""
    from bench.reproduce.causal import PROJECTED, load_final_moments
    from bench.reproduce.dimension import delta_dim_replicates
    from bench.reproduce.mechanism import load_moments
    from bench.stats import percentile_interval, two_sided_p

    s = study.settings
    late = [c["seed"] for c in study.results["hyperfit"]["checkpoints"] if c["method"] == "late-lora"]
    mech = [load_moments(study.path("work", f"moments-s{seed}.npz")) for seed in late]
    delta, reps, _, _ = delta_dim_replicates([m["base"][-1] for m in mech], [m["hyper"][-1] for m in mech],
                                             s.n_boot_p, s.seed)
    out = [_geometry_row("Hyperfitting expands the final layer (Delta Dim > 0)", "delta_dim_final",
                         "base", "Late-Stage LoRA", delta, reps, "b>a", len(late))]
    projected = sorted((v for v in study.results["intervention"]["variants"] if v["variant"] == PROJECTED),
                       key=lambda v: v["seed"])
    if projected and [v["seed"] for v in projected] == late:
        moments = [load_final_moments(study, v["moments"]) for v in projected]
        d2, reps2, _, _ = delta_dim_replicates([m["base"] for m in moments], [m["other"] for m in moments],
                                               s.n_boot_p, s.seed)  # the same prompt draws as above
        out.append(_geometry_row("The projection removes the final layer's expansion", "delta_dim_final",
                                 "Late-Stage LoRA", PROJECTED, d2 - delta, reps2 - reps, "b<a", len(late)))
    for row in out:  # replicates centred on the estimate (duplicated prompts lower every PR; see geometry_rows)
        reps = row.pop("_reps")
        centred = reps + (row["statistic"] - np.nanmean(reps))
        row["ci_low"], row["ci_high"] = percentile_interval(centred)
        row["p"] = two_sided_p(centred)
    return out


def _geometry_row(name: str, metric: str, a: str, b: str, statistic: float, reps: np.ndarray, expect: str,
                  runs: int) -> dict[str, Any]:
    return {"claim": name, "statistic": statistic, "metric": metric, "a": a, "b": b, "expect": expect,
            "runs_a": runs, "runs_b": runs, "_reps": reps}


def statistics_stage(study: Study) -> dict[str, Any]:
    from bench.reproduce.claims import holm, test_claims

    s = study.settings
    results = test_claims(text_claims(study), n_boot=s.n_boot_p, seed=s.seed, alpha=s.alpha)
    rows = [{"claim": r.claim, "statistic": r.statistic, "ci_low": r.ci_low, "ci_high": r.ci_high, "p": r.p,
             "metric": r.metric, "a": r.a, "b": r.b, "expect": r.expect, "n_prompts": r.n_prompts,
             "runs_a": r.runs_a, "runs_b": r.runs_b} for r in results]
    rows += geometry_claims(study)
    from bench.reproduce.judging import judge_claims

    rows += judge_claims(study)
    for row, adjusted in zip(rows, holm([r["p"] for r in rows])):
        row["p_holm"] = adjusted
        row["verdict"] = verdict(row["statistic"], adjusted, row["expect"], s.alpha)
    order = ("claim", "statistic", "ci_low", "ci_high", "p", "p_holm", "verdict")
    return {"claims": [{**{k: r.get(k) for k in order}, **{k: v for k, v in r.items() if k not in order}}
                       for r in rows], "n_boot": s.n_boot_p, "alpha": s.alpha}


def verdict(statistic: float, p_holm: float, expect: str, alpha: float) -> str:
    """holds / contradicted (significant, the other way) / not shown."""
    if p_holm is None or np.isnan(p_holm) or p_holm >= alpha or statistic == 0:
        return "not shown"
    return "holds" if (statistic > 0) == (expect == "b>a") else "contradicted"
