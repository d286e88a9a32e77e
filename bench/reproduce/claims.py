"""Paired tests of a study's claims, Holm-corrected across all of them.

A *claim* compares one corpus metric between two sides, A and B, each a set of runs (members) of
one condition decoding the study's shared prompts, and asserts the sign of B - A (``expect``:
``"b>a"`` or ``"b<a"``). The test, exactly:

* **Statistic.** Each side's value is the plain mean over its members of ``corpus.point[metric]``
  (the metric of each run's whole corpus); the statistic is B's value minus A's.
* **One bootstrap replicate.**

  - *Prompts*: one vector of draw counts (prompts drawn with replacement, every sample of a drawn
    prompt comes along) shared by both sides and every member, so prompt difficulty cancels out of
    the difference (paired over prompts). Drawn by :func:`bench.stats.count_blocks` from
    ``numpy.random.default_rng(seed)``, exactly as ``bench compare`` draws them.
  - *Hyperfit seeds*: each side's distinct (non-None) hyperfit seeds are drawn with replacement
    (:func:`bench.stats.resample_counts`). When both sides are indexed by the same set of hyperfit
    seeds, one draw serves both, so a hyperfitted checkpoint stays paired with its own control
    (e.g. the base model at the temperature matched to that checkpoint's entropy); otherwise each
    side draws its own.
  - *Sampling seeds*: each side's distinct (non-None) sampling seeds are drawn with replacement,
    independently per side.
  - Each side's replicate value is the weighted mean over its members of
    ``corpus.replicate(prompt_counts)[metric]``, a member's weight being the multiplicity of its
    hyperfit seed times that of its sampling seed (a None seed weighs 1 on its axis). A replicate
    whose weights are all 0 (possible only in an incomplete seed design) is NaN and dropped.

  The seed draws come from a second generator, ``default_rng([seed, SEED_STREAM])``, so the prompt
  stream is untouched by them: with one member per side and no seeds a claim's replicates are
  exactly ``bench compare``'s (:func:`bench.publish.compare._replicates`) under the same seed.
  (:func:`bench.stats.seed_mean_replicates` is not used: it has one side and one seed axis, and
  draws its seeds from the prompts' generator.)
* **Interval and p-value.** NaN replicate differences are dropped; for ``distinct-n`` (whose
  replicates count each drawn text once and are biased low) the differences are first shifted so
  that their mean is the statistic, as ``bench compare`` does. ``ci_low, ci_high``: the 95%
  percentile interval of the (shifted) differences (:func:`bench.stats.percentile_interval`);
  ``p``: :func:`bench.stats.two_sided_p`, twice the smaller share of differences on either side of
  0, ``min(1, 2 (1 + k) / (1 + B))``, so p < 0.05 exactly when the interval excludes 0.
* **Correction.** ``p_holm``: Holm's step-down adjustment (:func:`holm`) over the p-values of all
  the claims given to :func:`test_claims` together (valid under any dependence between them; the
  claims share the prompt draws).
* **Verdict.** ``"holds"`` when ``p_holm < alpha`` and the statistic has the expected sign,
  ``"contradicted"`` when ``p_holm < alpha`` and it has the opposite sign, ``"not shown"``
  otherwise (including a statistic of 0 or NaN).

Each claim starts its generators afresh from ``seed``, so claims on the same prompts are tested on the
same prompt draws (unless their corpora's widths cut the random stream into other batches).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.errors import BenchError
from bench.scorers.repetition import DISTINCT_ORDERS, REP_ORDERS, CorpusResampler
from bench.stats import LEVEL, N_BOOT_P, count_blocks, percentile_interval, resample_counts, two_sided_p

EXPECTS = ("b>a", "b<a")
METRICS = tuple(f"rep-{n}" for n in REP_ORDERS) + ("diversity",) + tuple(f"distinct-{n}" for n in DISTINCT_ORDERS) \
    + ("length-words", "length-tokens", "ttr", "ttr-last96")
"""Metrics a :class:`~bench.scorers.repetition.CorpusResampler` gives (the last three need token ids)."""
SEED_STREAM = 0x5EED
"""Second entropy word of the seed draws' generator, ``default_rng([seed, SEED_STREAM])``."""
COLUMNS = ["claim", "statistic", "ci_low", "ci_high", "p", "p_holm", "verdict",
           "metric", "a", "b", "n_prompts", "runs_a", "runs_b"]
"""The columns of :func:`write_claims_csv`, in order."""


@dataclass(frozen=True)
class Member:
    """One run of a condition."""

    corpus: CorpusResampler
    """The run's continuations, whose prompt ids are the study's shared prompts in the same order."""
    hyperfit_seed: int | None = None
    """Seed of the hyperfitted checkpoint the run decoded (None: no hyperfit, e.g. the base model)."""
    sampling_seed: int | None = None
    """Seed of the run's sampling (None: deterministic decoding, e.g. greedy)."""
    prompts: tuple[str, ...] | None = None
    """The run's distinct prompt ids in order of first appearance, checked equal across a claim's
    members when given (:meth:`of` fills it); without them only the number of prompts is checked."""

    def __post_init__(self) -> None:
        if self.prompts is not None and len(self.prompts) != self.corpus.n_prompts:
            raise BenchError(f"member has {len(self.prompts)} prompt ids for a corpus of {self.corpus.n_prompts} prompts")

    @classmethod
    def of(cls, texts: list[str], prompt_ids: Sequence[str], token_ids: list[list[int]] | None = None,
           hyperfit_seed: int | None = None, sampling_seed: int | None = None) -> "Member":
        """A member from its continuations and their prompt ids (one per text)."""
        corpus = CorpusResampler(texts, token_ids, prompt_ids)
        return cls(corpus, hyperfit_seed, sampling_seed, tuple(dict.fromkeys(prompt_ids)))


@dataclass(frozen=True)
class Side:
    """One side of a claim: the runs of one condition."""

    label: str
    """The condition's name as reports print it (e.g. "base at T*")."""
    members: tuple[Member, ...]
    """Its runs (over hyperfit seeds and sampling seeds)."""


@dataclass(frozen=True)
class Claim:
    """A statement about one metric's B - A, to be tested."""

    name: str
    """One sentence, e.g. "T* does not reach hyperfitting's diversity"."""
    metric: str
    """The corpus metric compared (e.g. "diversity", "distinct-2", "ttr")."""
    a: Side
    """The reference side."""
    b: Side
    """The side the claim is about."""
    expect: str
    """What the claim asserts about B - A: "b>a" or "b<a"."""


@dataclass(frozen=True)
class ClaimResult:
    """One claim's test."""

    claim: str
    """The claim's sentence."""
    metric: str
    """The metric compared."""
    a: str
    """Label of side A."""
    b: str
    """Label of side B."""
    statistic: float
    """B - A of the seed means (each side: the mean over its members of the corpus metric)."""
    ci_low: float
    """Lower end of the 95% percentile interval of the replicate differences."""
    ci_high: float
    """Upper end of that interval."""
    p: float
    """Two-sided bootstrap p-value of B - A = 0 (:func:`bench.stats.two_sided_p`)."""
    p_holm: float
    """``p`` after Holm's correction over all the claims tested together."""
    verdict: str
    """"holds", "contradicted" or "not shown" (see the module docstring)."""
    n_prompts: int
    """Shared prompts the test resamples."""
    runs_a: int
    """Members (runs) of side A."""
    runs_b: int
    """Members (runs) of side B."""
    expect: str = ""
    """The claim's asserted sign of B - A."""


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment, in the input order.

    The m non-NaN p-values sorted ascending, ``p_(i) * (m - i + 1)`` (i = 1..m), made
    non-decreasing by a running maximum and capped at 1; NaN p-values stay NaN and do not count in m.
    """
    p = np.asarray(pvalues, dtype=float).reshape(-1)
    out = np.full(p.shape, math.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = len(valid)
    if m:
        order = valid[np.argsort(p[valid], kind="stable")]
        scaled = p[order] * (m - np.arange(m))
        out[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return [float(x) for x in out]


def _check(claim: Claim) -> int:
    """Refuse a claim that cannot be tested; return its number of prompts."""
    what = f"claim {claim.name!r}"
    if claim.expect not in EXPECTS:
        raise BenchError(f"{what}: expect must be one of {', '.join(EXPECTS)}, got {claim.expect!r}")
    if claim.metric not in METRICS:
        raise BenchError(f"{what}: unknown metric {claim.metric!r} (known: {', '.join(METRICS)})")
    members = []
    for side in (claim.a, claim.b):
        if not side.members:
            raise BenchError(f"{what}: side {side.label!r} has no runs")
        for i, member in enumerate(side.members):
            if claim.metric not in member.corpus.point:
                raise BenchError(f"{what}: run {i} of {side.label!r} has no {claim.metric} (token ids missing)")
            members.append((side.label, i, member))
    label0, i0, first = members[0]
    prompts = next((m.prompts for _, _, m in members if m.prompts is not None), None)
    for label, i, member in members:
        if member.corpus.n_prompts != first.corpus.n_prompts or (
                prompts is not None and member.prompts is not None and member.prompts != prompts):
            raise BenchError(f"{what}: run {i} of {label!r} has other prompts than run {i0} of {label0!r} "
                             f"({member.corpus.n_prompts} vs {first.corpus.n_prompts}, or other ids or order)")
    return first.corpus.n_prompts


def _axis(values: list[int | None]) -> tuple[list[int], np.ndarray]:
    """The distinct non-None seeds of one axis, and each member's index among them (-1: None)."""
    seeds = sorted({v for v in values if v is not None})
    where = {s: k for k, s in enumerate(seeds)}
    return seeds, np.array([-1 if v is None else where[v] for v in values], dtype=np.int64)


def _weights(multiplicity: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Per replicate and member, the multiplicity of the member's seed (1 for a None seed)."""
    out = np.ones((len(multiplicity), len(index)))
    seeded = index >= 0
    out[:, seeded] = multiplicity[:, index[seeded]]
    return out


def _replicate_diffs(claim: Claim, n_prompts: int, n_boot: int, seed: int) -> np.ndarray:
    """B - A of each replicate (see the module docstring)."""
    rng = np.random.default_rng(seed)
    seed_rng = np.random.default_rng([seed, SEED_STREAM])
    sides = (claim.a, claim.b)
    hyper = [_axis([m.hyperfit_seed for m in s.members]) for s in sides]
    sampling = [_axis([m.sampling_seed for m in s.members]) for s in sides]
    shared_hyper = bool(hyper[0][0]) and hyper[0][0] == hyper[1][0] and all(
        (idx >= 0).all() for _, idx in hyper)
    width = max(m.corpus.width for s in sides for m in s.members)
    parts = []
    for counts in count_blocks(rng, n_boot, width, n_prompts):
        batch = len(counts)
        values = []
        shared = resample_counts(seed_rng, batch, len(hyper[0][0])) if shared_hyper else None
        for side, (h_seeds, h_idx), (s_seeds, s_idx) in zip(sides, hyper, sampling):
            weight = np.ones((batch, len(side.members)))
            if h_seeds:
                draw = shared if shared is not None else resample_counts(seed_rng, batch, len(h_seeds))
                weight *= _weights(draw, h_idx)
            if s_seeds:
                weight *= _weights(resample_counts(seed_rng, batch, len(s_seeds)), s_idx)
            metric = np.stack([m.corpus.replicate(counts)[claim.metric] for m in side.members], axis=1)
            total = weight.sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                values.append(np.where(total > 0, (metric * weight).sum(axis=1) / total, math.nan))
        parts.append(values[1] - values[0])
    return np.concatenate(parts)


def _test(claim: Claim, n_boot: int, seed: int) -> tuple[float, float, float, float, int]:
    """Statistic, interval, p-value and prompts of one claim (p not yet corrected)."""
    n_prompts = _check(claim)
    mean = [float(np.mean([m.corpus.point[claim.metric] for m in s.members])) for s in (claim.a, claim.b)]
    statistic = mean[1] - mean[0]
    diffs = _replicate_diffs(claim, n_prompts, n_boot, seed)
    diffs = diffs[~np.isnan(diffs)]
    if not len(diffs) or math.isnan(statistic):
        return statistic, math.nan, math.nan, math.nan, n_prompts
    if claim.metric.startswith("distinct-"):
        diffs = diffs + (statistic - diffs.mean())
    low, high = percentile_interval(diffs, LEVEL)
    return statistic, low, high, two_sided_p(diffs), n_prompts


def _verdict(statistic: float, p_holm: float, expect: str, alpha: float) -> str:
    if math.isnan(p_holm) or math.isnan(statistic) or p_holm >= alpha or statistic == 0:
        return "not shown"
    return "holds" if (statistic > 0) == (expect == "b>a") else "contradicted"


def test_claims(claims: Sequence[Claim], n_boot: int = N_BOOT_P, seed: int = 0,
                alpha: float = 0.05) -> list[ClaimResult]:
    """Test every claim (paired bootstrap over prompts and seeds) and Holm-correct across them."""
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise BenchError(f"n_boot must be a positive integer, got {n_boot!r}")
    if not 0 < alpha < 1:
        raise BenchError(f"alpha must be in (0, 1), got {alpha!r}")
    for claim in claims:
        _check(claim)  # every refusal before any work
    tested = [_test(c, int(n_boot), seed) for c in claims]
    adjusted = holm([t[3] for t in tested])
    return [ClaimResult(c.name, c.metric, c.a.label, c.b.label, stat, low, high, p, ph,
                        _verdict(stat, ph, c.expect, alpha), n, len(c.a.members), len(c.b.members), c.expect)
            for c, (stat, low, high, p, n), ph in zip(claims, tested, adjusted)]


test_claims.__test__ = False  # not a pytest test, despite its name


def _cell(value: object) -> object:
    if isinstance(value, float):
        return "" if math.isnan(value) else format(value, ".6g")
    return value


def write_claims_csv(results: Sequence[ClaimResult], path: str | Path) -> None:
    """The results as CSV, columns :data:`COLUMNS` (NaN as an empty cell), written atomically."""
    from bench.runtime.provenance import write_text_atomic

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    for r in results:
        writer.writerow({col: _cell(getattr(r, col)) for col in COLUMNS})
    write_text_atomic(path, buffer.getvalue())
