"""Stages 2 and 3, decode and score: every condition of the study as ordinary ``bench run`` runs.

All runs live in one run store, ``DIR/runs`` (resumable by record, identified by everything that
changes their output). Sampled decoders run once per sampling seed; deterministic ones once. The
score stage asks the same runs for the model-based scores (MAUVE with the base model as
featurizer, coherence under the base model), which adds scores and generates nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bench.errors import BenchError
from bench.reproduce.study import Study


@dataclass(frozen=True)
class Condition:
    """One decoding condition of the control table."""

    name: str
    """Row name (``base greedy``, ``base T*``, ``greedy-hyperfit``...)."""
    decoder: str
    """The decoder as ``bench run --decoder`` takes it."""
    sampled: bool
    """Run once per sampling seed (else once, seed 0)."""
    checkpoint: dict[str, Any] | None = None
    """The hyperfit checkpoint it decodes with or is calibrated on (None: the base model alone)."""


def conditions(settings: Any, checkpoints: list[dict[str, Any]]) -> list[Condition]:
    s = settings
    calib = f"calib_prompts={s.calib_prompts},calib_tokens={s.calib_tokens}"
    out = [Condition("base greedy", "greedy", False), Condition("base T=1", "temperature:t=1.0", True),
           Condition("top-p", f"top-p:p={s.top_p}", True),
           Condition("contrastive", f"contrastive:k={s.contrastive_k},alpha={s.contrastive_alpha}", False)]
    out += [Condition("greedy-hyperfit", "greedy-hyperfit", False, c) for c in checkpoints]
    for c in (c for c in checkpoints if c["method"] == "late-lora"):
        out += [Condition("base T* (global)", f"entropy-matched:mode=global,{calib}", True, c),
                Condition("base T* (per step)", f"entropy-matched:mode=per-step,{calib}", True, c),
                Condition("static reweighting", f"static-reweight:alpha={s.reweight_alpha},top_k={s.reweight_top_k},"
                                                f"greedy=true,{calib}", False, c)]
    return out


def _run(study: Study, cond: Condition, seed: int, score: bool) -> dict[str, Any]:
    import decbench

    s = study.settings
    extra: dict[str, Any] = {}
    if score and s.scores:
        extra = dict(scores=list(s.scores), featurizer=s.model, scorer_model=s.model)
    frame = decbench.run(models=s.model, decoders=[cond.decoder], suites=s.suite, out=str(study.path("runs")),
                         num_prompts=s.num_prompts, max_new_tokens=s.max_new_tokens, batch_size=s.batch_size,
                         seed=seed, device=s.device, dtype=s.dtype, data_dir=study.data_dir,
                         hyperfit=cond.checkpoint["path"] if cond.checkpoint else None, **extra)
    planned = frame.attrs["run_ids"]
    if len(planned) != 1:
        raise BenchError(f"condition {cond.name} planned {len(planned)} runs, not one")
    from bench.run_scores import run_scores
    from bench.store import RunDir

    metrics = run_scores(RunDir(study.path("runs", planned[0])))["generations"]["metrics"]
    return {"condition": cond.name, "decoder": cond.decoder,
            "method": cond.checkpoint["method"] if cond.checkpoint else None,
            "hyperfit_seed": cond.checkpoint["seed"] if cond.checkpoint else None,
            "sampling_seed": seed if cond.sampled else None, "run_id": planned[0],
            "metrics": {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}}


def _each(study: Study, score: bool) -> list[dict[str, Any]]:
    checkpoints = study.results["hyperfit"]["checkpoints"]
    rows = []
    todo = [(c, seed) for c in conditions(study.settings, checkpoints)
            for seed in (range(study.settings.sampling_seeds) if c.sampled else [0])]
    for i, (cond, seed) in enumerate(todo, 1):
        where = f" ({cond.checkpoint['method']} s{cond.checkpoint['seed']})" if cond.checkpoint else ""
        study.log(f"  {'score' if score else 'decode'} {i}/{len(todo)}: {cond.name}{where}, seed {seed}")
        rows.append(_run(study, cond, seed, score))
    return rows


def decode_stage(study: Study) -> dict[str, Any]:
    return {"runs": _each(study, score=False)}


def score_stage(study: Study) -> dict[str, Any]:
    runs = _each(study, score=True)
    for r in runs:
        r["resolved"] = _resolved(study, r["run_id"])
    return {"runs": runs}


def _resolved(study: Study, run_id: str) -> dict[str, Any]:
    """The calibration a run resolved (T*, target entropy, static offset), from its header."""
    header = json.loads(study.path("runs", run_id, "header.json").read_text(encoding="utf-8"))
    resolved = header.get("resolved", {})
    return {k: v for k, v in resolved.items() if isinstance(v, (int, float, str)) and k != "applied"}
