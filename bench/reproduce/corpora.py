"""The study's texts as corpora, and condition means with intervals over prompts and seeds.

Every run of the study decodes the same prompts. A condition (e.g. greedy on the Late-Stage LoRA
hyperfits) is a set of runs (one per hyperfit seed and sampling seed); its value for a metric is
the mean over its runs, and its interval comes from resampling prompts (the same draws for every
run) and averaging the runs' replicate values.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bench.reproduce.study import Study

TEXT_METRICS = ("ttr", "rep-2", "rep-3", "rep-4", "diversity", "distinct-2", "distinct-4")


def run_corpus(study: Study, run_id: str) -> Any:
    """A run's records as a :class:`~bench.scorers.repetition.CorpusResampler` (prompt-id order)."""
    return run_corpus_ids(study, run_id)[0]


def run_corpus_ids(study: Study, run_id: str) -> tuple[Any, tuple[str, ...]]:
    """The corpus and its texts' prompt ids."""
    from bench.scorers.repetition import CorpusResampler
    from bench.store import RunDir

    cols = RunDir(study.path("runs", run_id)).columns()
    return CorpusResampler(None, None, cols.prompt_ids, columns=(cols.words, cols.tokens)), tuple(cols.prompt_ids)


def variant_corpus(variant: dict[str, Any]) -> Any:
    """An intervention variant's greedy texts, in the run store's (sorted prompt id) order."""
    return variant_corpus_ids(variant)[0]


def variant_corpus_ids(variant: dict[str, Any]) -> tuple[Any, tuple[str, ...]]:
    from bench.scorers.repetition import CorpusResampler

    order = sorted(range(len(variant["prompt_ids"])), key=lambda i: variant["prompt_ids"][i])
    ids = tuple(variant["prompt_ids"][i] for i in order)
    return CorpusResampler([variant["texts"][i] for i in order], [variant["token_ids"][i] for i in order],
                           list(ids)), ids


def condition_estimate(corpora: list[Any], metric: str, n_boot: int, seed: int) -> tuple[float, float, float]:
    """(mean over runs, 95% interval low, high) of ``metric``."""
    from bench.stats import count_blocks, percentile_interval

    values = [c.point.get(metric, math.nan) for c in corpora]
    point = float(np.mean(values))
    if math.isnan(point):
        return point, math.nan, math.nan
    rng = np.random.default_rng(seed)
    parts = []
    width = max(c.width for c in corpora)
    for counts in count_blocks(rng, n_boot, width, corpora[0].n_prompts):
        parts.append(np.mean([c.replicate(counts)[metric] for c in corpora], axis=0))
    low, high = percentile_interval(np.concatenate(parts), centre=point if metric.startswith("distinct-") else None)
    return point, low, high


def metric_columns(corpora: list[Any], n_boot: int, seed: int, metrics: tuple[str, ...] = TEXT_METRICS) -> dict[str, float]:
    out: dict[str, float] = {}
    for m in metrics:
        out[m], out[f"{m}_low"], out[f"{m}_high"] = condition_estimate(corpora, m, n_boot, seed)
    return out
