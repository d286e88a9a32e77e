"""Stage 4, mechanism: rank reordering, the static-reweighting sweep, per-layer geometry, logit lens.

Every measurement is a teacher-forced pass of the base and a Late-Stage LoRA checkpoint over the
same tokens: each prompt followed by that checkpoint's greedy continuation from the decode stage
(:mod:`bench.analysis.contexts`). Per checkpoint (one per hyperfit seed), in ``DIR/work/``:

* ranks: the base model's rank of every token the hyperfitted model chose (1 = base top-1); an
  override has rank > 1, a deep-tail override rank > ``tail_rank``;
* geometry: per layer (0 = embeddings, l = output of block l; the last one after the final norm,
  the state the unembedding reads), the per-prompt moments of the states of every real token of
  prompt + continuation except each row's first (the attention sink), for both models, from which
  :mod:`bench.reproduce.dimension` gives PR and Delta Dim with a bootstrap over prompts;
* logit lens: per layer, the share of continuation positions whose lens top-1 is the final top-1.

The static-reweighting sweep (:mod:`bench.analysis.reweight`) runs on the first checkpoint only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench.reproduce.study import Study, read_json, write_json


class StatesCollector:
    """Each row's real-token states per layer, for both models (float32 on the CPU)."""

    def __init__(self, n_rows: int):
        self.base: list[list[np.ndarray]] = [[] for _ in range(n_rows)]
        self.hyper: list[list[np.ndarray]] = [[] for _ in range(n_rows)]

    def update(self, batch: Any) -> None:
        for r, row in enumerate(batch.rows):
            keep = batch.real[r]
            self.base[row] = [h[r][keep].float().cpu().numpy() for h in batch.base_hidden]
            self.hyper[row] = [h[r][keep].float().cpu().numpy() for h in batch.hyper_hidden]

    def moments(self, which: str) -> list[Any]:
        """Per layer, the rows' :class:`~bench.reproduce.dimension.PromptMoments`."""
        from bench.reproduce.dimension import PromptMoments

        rows = [r for r in (self.base if which == "base" else self.hyper) if r]
        return [PromptMoments.of([r[layer] for r in rows]) for layer in range(len(rows[0]))]


def study_prompts(study: Study) -> list[Any]:
    from bench.suite_loading import load_suite

    _, prompts = load_suite(study.settings.suite, data_dir=study.data_dir, num_prompts=study.settings.num_prompts)
    return prompts


def continuations(study: Study, run_id: str, prompts: list[Any]) -> list[list[int]]:
    """A run's token ids in the order of ``prompts`` (sample 0)."""
    from bench.store import RunDir

    by_prompt = {r["prompt_id"]: r["token_ids"] for r in RunDir(study.path("runs", run_id)).records()
                 if r["sample_index"] == 0}
    return [list(by_prompt[p.id]) for p in prompts]


def run_of(study: Study, condition: str, method: str | None = None, hyperfit_seed: int | None = None,
           sampling_seed: int | None = None) -> str:
    for r in study.results["decode"]["runs"]:
        if (r["condition"], r["method"], r["hyperfit_seed"]) == (condition, method, hyperfit_seed) and \
                (sampling_seed is None or r["sampling_seed"] == sampling_seed):
            return r["run_id"]
    raise KeyError(f"no run of {condition} {method} {hyperfit_seed}")


def _one_checkpoint(study: Study, ckpt: dict[str, Any], prompts: list[Any], with_sweep: bool) -> dict[str, Any]:
    from bench.analysis.contexts import load_pair, run_pass
    from bench.analysis.control import RankCollector, summarize_ranks
    from bench.analysis.geometry import LensCollector
    from bench.analysis.reweight import run_sweep
    from bench.analysis.report import rank_bins

    s, seed = study.settings, ckpt["seed"]
    pair = load_pair(s.model, ckpt["path"], device=s.device, dtype=s.dtype)
    conts = continuations(study, run_of(study, "greedy-hyperfit", "late-lora", seed), prompts)
    n = len(prompts)
    ranks, states = RankCollector(n), StatesCollector(n)
    lens = LensCollector(n, pair.base.model, pair.hyper.model) if s.logit_lens else None
    run_pass(pair, prompts, conts, [ranks, states] + ([lens] if lens else []), batch_size=s.batch_size, hidden=True)
    summary = summarize_ranks(ranks, s.tail_rank, s.n_boot, s.seed)
    vocab = int(pair.base.model.get_output_embeddings().weight.size(0))
    edges = rank_bins(vocab)
    hist = np.histogram(summary.ranks, bins=edges)[0] if summary.ranks.size else np.zeros(len(edges) - 1)
    moments = {"base": states.moments("base"), "hyper": states.moments("hyper")}
    _save_moments(study.path("work", f"moments-s{seed}.npz"), moments)
    out: dict[str, Any] = {
        "seed": seed, "steps": summary.steps, "tail_rank": s.tail_rank, "median_rank": summary.median_rank,
        **{k: [getattr(summary, k).value, getattr(summary, k).low, getattr(summary, k).high]
           for k in ("override", "deep_tail", "deep_tail_all", "mean_rank")},
        "histogram": {"edges": edges, "counts": hist.tolist()},
        "lens": ({name: np.nanmean(table, axis=0).tolist() for name, table in lens.agreement.items()} if lens else {}),
    }
    if with_sweep:
        sweep = run_sweep(pair, prompts, prompts[: s.calib_prompts], s.alphas, top_k=s.reweight_top_k, greedy=True,
                          calib_tokens=s.calib_tokens, max_new_tokens=s.max_new_tokens, batch_size=s.batch_size,
                          seed=s.seed, n_boot=s.n_boot)
        out["sweep"] = [{"alpha": p.alpha, **{k: [e.value, e.low, e.high] for k, e in p.metrics.items()}}
                        for p in sweep.points]
        out["sweep_calibration"] = {k: v for k, v in sweep.calibration.items() if isinstance(v, (int, float, str))}
    return out


def _save_moments(path: Path, moments: dict[str, list[Any]]) -> None:
    arrays = {f"{which}_{layer}_{field}": getattr(m, field)
              for which, layers in moments.items() for layer, m in enumerate(layers)
              for field in ("n", "trace", "gram", "sums_dot", "triple")}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)


def load_moments(path: Path) -> dict[str, list[Any]]:
    from bench.reproduce.dimension import PromptMoments

    with np.load(path, allow_pickle=False) as data:
        keys = set(data.files)
        out: dict[str, list[Any]] = {}
        for which in ("base", "hyper"):
            layer, layers = 0, []
            while f"{which}_{layer}_n" in keys:
                layers.append(PromptMoments(*(data[f"{which}_{layer}_{f}"] for f in
                                              ("n", "trace", "gram", "sums_dot", "triple"))))
                layer += 1
            out[which] = layers
    return out


def mechanism_stage(study: Study) -> dict[str, Any]:
    prompts = study_prompts(study)
    late = [c for c in study.results["hyperfit"]["checkpoints"] if c["method"] == "late-lora"]
    per_seed = []
    for i, ckpt in enumerate(late):
        done = study.path("work", f"mechanism-s{ckpt['seed']}.json")
        if done.exists() and study.path("work", f"moments-s{ckpt['seed']}.npz").exists():
            per_seed.append(read_json(done))
            continue
        study.log(f"  mechanism: late-lora seed {ckpt['seed']} ({len(prompts)} prompts)")
        result = _one_checkpoint(study, ckpt, prompts, with_sweep=i == 0)
        write_json(done, result)
        per_seed.append(result)
    return {"per_seed": per_seed}


def geometry_rows(study: Study, seeds: list[int]) -> list[dict[str, Any]]:
    """``geometry.csv``: per layer, PR of both models (means over hyperfit seeds) and Delta Dim with a
    95% bootstrap interval over prompts (the same draws for every seed), centred on the estimate:
    a resample repeats prompts, whose duplicated states lower every PR, so the raw percentiles sit
    below the estimate (as distinct-n's do, :func:`bench.scorers.repetition.bootstrap_ci`)."""
    from bench.reproduce.dimension import delta_dim_replicates
    from bench.stats import percentile_interval

    loaded = [load_moments(study.path("work", f"moments-s{seed}.npz")) for seed in seeds]
    layers = len(loaded[0]["base"])
    rows = []
    for layer in range(layers):
        delta, reps, pr_b, pr_h = delta_dim_replicates([m["base"][layer] for m in loaded],
                                                       [m["hyper"][layer] for m in loaded],
                                                       study.settings.n_boot, study.settings.seed)
        low, high = percentile_interval(reps, centre=delta)
        rows.append({"layer": layer, "block": "embeddings" if layer == 0 else f"block {layer - 1}",
                     "final": layer == layers - 1, "pr_base": pr_b, "pr_hyperfit": pr_h,
                     "delta_dim": delta, "ci_low": low, "ci_high": high, "seeds": len(seeds)})
    return rows
