"""Experiments 1 and 2: the entropy-matched control table and the rank reordering.

Control (one row per condition): the base model sampled at T = 1, the base model sampled at the
entropy-matched T* (the ``entropy-matched`` decoder's own calibration, global mode) and the
hyperfitted model decoded greedily. Per condition, on its own continuations:

* ``ttr``, ``rep-2``, ``rep-3`` (and ``diversity``) from :mod:`bench.scorers.repetition`;
* ``agreement``: the fraction of continuation tokens that are the hyperfitted model's top-1 at
  that context (1 for the hyperfitted greedy row, up to float noise of cached decoding);
* ``entropy``: the mean entropy in nats of the distribution the condition decodes from
  (softmax(base logits / T) for the base rows, the hyperfitted model's for its greedy row).

Rank reordering: along the hyperfitted model's greedy continuations, the rank of each chosen token
under the base model (1 = the base model's top-1; ties count against the chosen token only when a
token scores strictly higher). An *override* is a step with base rank > 1; a *deep-tail* override
has base rank > ``tail_rank``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.analysis.contexts import Batch
from bench.stats import Estimate, bootstrap_mean, bootstrap_ratio


class ControlCollector:
    """Per-row agreement with the hyperfitted top-1 and mean entropy of the decoding distribution."""

    def __init__(self, n_rows: int, *, source: str, temperature: float):
        self.source, self.temperature = source, temperature
        self.agreement = np.full(n_rows, np.nan)
        self.entropy = np.full(n_rows, np.nan)

    def update(self, batch: Batch) -> None:
        from decoders.entropy_matched import entropy

        logits = batch.base_logits if self.source == "base" else batch.hyper_logits
        agree = (batch.hyper_logits.argmax(-1) == batch.targets) & batch.predicts
        ent = entropy(logits, self.temperature).masked_fill(~batch.predicts, 0.0)
        count = batch.predicts.sum(-1).double()
        for r, row in enumerate(batch.rows):
            self.agreement[row] = float(agree[r].sum() / count[r])
            self.entropy[row] = float(ent[r].sum() / count[r])


class RankCollector:
    """The base model's rank of every token the hyperfitted model chose, per row."""

    def __init__(self, n_rows: int):
        self.ranks: list[np.ndarray] = [np.zeros(0, dtype=np.int64) for _ in range(n_rows)]

    def update(self, batch: Batch) -> None:
        chosen = batch.base_logits.gather(-1, batch.targets.unsqueeze(-1))
        rank = (batch.base_logits > chosen).sum(-1) + 1
        for r, row in enumerate(batch.rows):
            self.ranks[row] = rank[r][batch.predicts[r]].cpu().numpy()


@dataclass
class RankSummary:
    """The rank-reordering table and the histogram's raw ranks."""

    override: Estimate
    """Fraction of steps where the hyperfitted choice is not the base top-1."""
    deep_tail: Estimate
    """Of those overrides, the fraction with base rank > tail_rank."""
    deep_tail_all: Estimate
    """Fraction of all steps that are deep-tail overrides."""
    mean_rank: Estimate
    median_rank: float
    steps: int
    tail_rank: int
    ranks: np.ndarray = field(repr=False)


def summarize_ranks(collector: RankCollector, tail_rank: int, n_boot: int, seed: int) -> RankSummary:
    rows = [r for r in collector.ranks if r.size]
    steps = np.array([r.size for r in rows], dtype=float)
    overrides = np.array([(r > 1).sum() for r in rows], dtype=float)
    tails = np.array([(r > tail_rank).sum() for r in rows], dtype=float)
    all_ranks = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    return RankSummary(
        override=bootstrap_ratio(overrides, steps, n_boot, seed),
        deep_tail=bootstrap_ratio(tails, overrides, n_boot, seed),
        deep_tail_all=bootstrap_ratio(tails, steps, n_boot, seed),
        mean_rank=bootstrap_mean([r.mean() for r in rows], n_boot, seed),
        median_rank=float(np.median(all_ranks)) if all_ranks.size else float("nan"),
        steps=int(all_ranks.size), tail_rank=tail_rank, ranks=all_ranks,
    )


def text_metrics(texts: list[str], token_ids: list[list[int]], n_boot: int, seed: int) -> dict[str, Estimate]:
    """ttr, rep-2, rep-3, rep-4 and diversity with the repetition scorer's bootstrap intervals."""
    from bench.scorers.repetition import bootstrap_ci, score_texts

    point = score_texts(texts, token_ids)
    ci = bootstrap_ci(texts, token_ids, n_boot=n_boot, seed=seed)
    return {k: Estimate(point[k], *ci[k], len(texts)) for k in ("ttr", "rep-2", "rep-3", "rep-4", "diversity")}


def control_row(name: str, settings: str, texts: list[str], token_ids: list[list[int]], collector: ControlCollector,
                n_boot: int, seed: int) -> dict[str, Any]:
    """One row of the control table: name, settings and an Estimate per metric."""
    row: dict[str, Any] = {"condition": name, "settings": settings}
    row.update(text_metrics(texts, token_ids, n_boot, seed))
    row["agreement"] = bootstrap_mean(collector.agreement, n_boot, seed)
    row["entropy"] = bootstrap_mean(collector.entropy, n_boot, seed)
    return row
