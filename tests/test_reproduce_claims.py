"""bench.reproduce.claims: Holm's correction and the paired claim tests over prompts and seeds."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from bench.errors import BenchError
from bench.publish.compare import _replicates
from bench.reproduce import claims as C
from bench.scorers.repetition import CorpusResampler
from bench.stats import percentile_interval, resample_counts, two_sided_p

N_BOOT = 2000
N_PROMPTS = 30
PROMPTS = [f"p{i:02d}" for i in range(N_PROMPTS)]
VOCAB = [f"w{i}" for i in range(400)]


def _diverse(rng: np.random.Generator, n: int = N_PROMPTS, words: int = 40) -> list[str]:
    return [" ".join(rng.choice(VOCAB, size=words)) for _ in range(n)]


def _repetitive(rng: np.random.Generator, n: int = N_PROMPTS) -> list[str]:
    return [" ".join(list(rng.choice(VOCAB, size=4)) * 10) for _ in range(n)]


def _member(texts: list[str], h: int | None = None, s: int | None = None, prompts: list[str] = PROMPTS) -> C.Member:
    return C.Member.of(texts, prompts, hyperfit_seed=h, sampling_seed=s)


def _claim(a: list[C.Member], b: list[C.Member], metric: str = "diversity", expect: str = "b<a",
           name: str = "B repeats itself more than A") -> C.Claim:
    return C.Claim(name, metric, C.Side("A", tuple(a)), C.Side("B", tuple(b)), expect)


def _holm_reference(p: list[float]) -> list[float]:
    """Holm from the definition, written out: the i-th smallest of m p-values (NaN left out) is
    multiplied by m - i + 1; each adjusted value is the largest such product up to its rank, at most 1."""
    idx = [i for i, x in enumerate(p) if not math.isnan(x)]
    m = len(idx)
    ranked = sorted(idx, key=lambda i: p[i])
    out = [math.nan] * len(p)
    running = 0.0
    for rank, i in enumerate(ranked, start=1):
        running = max(running, (m - rank + 1) * p[i])
        out[i] = min(1.0, running)
    return out


# --- Holm ----------------------------------------------------------------------------------------

def test_holm_hand_example():
    assert C.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02], abs=1e-15)
    assert C.holm([0.5, 0.9]) == [1.0, 1.0]  # 0.5 * 2 capped at 1, then the running maximum
    assert C.holm([]) == []
    assert C.holm([0.2]) == [0.2]


def test_holm_nan_left_out_of_m():
    out = C.holm([0.01, math.nan, 0.04])
    assert out[0] == pytest.approx(0.02) and out[2] == pytest.approx(0.04) and math.isnan(out[1])
    assert all(math.isnan(x) for x in C.holm([math.nan, math.nan]))


def test_holm_ties_equal():
    out = C.holm([0.02, 0.02, 0.001])
    assert out[0] == out[1] == pytest.approx(0.04)
    assert out[2] == pytest.approx(0.003)


def test_holm_matches_reference_on_random_vectors():
    rng = np.random.default_rng(7)
    for trial in range(300):
        m = int(rng.integers(1, 15))
        p = rng.uniform(0, 1, m) ** rng.uniform(0.5, 4)  # many small ones
        if trial % 3 == 0:  # ties: values drawn from a few levels
            p = rng.choice([0.001, 0.01, 0.02, 0.05, 0.3], size=m)
        p = p.tolist()
        for i in np.flatnonzero(rng.uniform(size=m) < 0.2):
            p[i] = math.nan
        got, want = C.holm(p), _holm_reference(p)
        assert len(got) == m
        for g, w in zip(got, want):
            assert (math.isnan(g) and math.isnan(w)) or g == pytest.approx(w, rel=1e-12, abs=1e-15)
        valid = [(x, g) for x, g in zip(p, got) if not math.isnan(x)]
        assert all(x <= g <= 1 for x, g in valid)  # never below the raw p, never above 1
        order = sorted(valid)
        assert all(g1 <= g2 for (_, g1), (_, g2) in zip(order, order[1:]))  # monotone in p


# --- the paired test ------------------------------------------------------------------------------

def test_identical_sides_give_zero_and_p_one():
    texts = _diverse(np.random.default_rng(0))
    (r,) = C.test_claims([_claim([_member(texts)], [_member(list(texts))])], n_boot=500)
    assert r.statistic == 0 and r.p == 1 and r.p_holm == 1 and r.verdict == "not shown"
    assert r.ci_low == r.ci_high == 0
    assert (r.n_prompts, r.runs_a, r.runs_b) == (N_PROMPTS, 1, 1)


def test_identical_sides_over_shared_hyperfit_seeds_give_p_one():
    """Both sides indexed by the same hyperfit seeds share that draw: a checkpoint meets itself."""
    rng = np.random.default_rng(1)
    per_seed = [_diverse(rng) if h % 2 else _repetitive(rng) for h in range(3)]  # seeds differ a lot
    a = [_member(t, h=h) for h, t in enumerate(per_seed)]
    b = [_member(list(t), h=h) for h, t in enumerate(per_seed)]
    (r,) = C.test_claims([_claim(a, b, "rep-2")], n_boot=500)
    assert r.statistic == 0 and r.p == 1
    assert r.ci_low == pytest.approx(0, abs=1e-12) and r.ci_high == pytest.approx(0, abs=1e-12)


def test_repetitive_vs_diverse_holds_and_contradicted():
    rng = np.random.default_rng(2)
    diverse, repetitive = [_member(_diverse(rng))], [_member(_repetitive(rng))]
    results = C.test_claims([
        _claim(diverse, repetitive, "diversity", "b<a", "B is less diverse"),
        _claim(diverse, repetitive, "diversity", "b>a", "B is more diverse"),
        _claim(diverse, repetitive, "rep-2", "b>a", "B repeats bigrams more"),
        _claim(diverse, repetitive, "distinct-2", "b<a", "B has fewer distinct bigrams"),
    ], n_boot=N_BOOT)
    assert [r.verdict for r in results] == ["holds", "contradicted", "holds", "holds"]
    for r in results:
        assert r.ci_low <= r.statistic <= r.ci_high
        assert r.p == pytest.approx(2 / (N_BOOT + 1))
    assert [r.p_holm for r in results] == pytest.approx(C.holm([r.p for r in results]))
    assert results[0].statistic < 0 < results[2].statistic


def test_statistic_is_difference_of_member_means():
    rng = np.random.default_rng(3)
    a = [_member(_diverse(rng), s=s) for s in range(3)]
    b = [_member(_repetitive(rng) if s else _diverse(rng), s=s) for s in range(2)]
    (r,) = C.test_claims([_claim(a, b, "rep-3", "b>a")], n_boot=300)
    want = np.mean([m.corpus.point["rep-3"] for m in b]) - np.mean([m.corpus.point["rep-3"] for m in a])
    assert r.statistic == pytest.approx(want)
    assert (r.runs_a, r.runs_b) == (3, 2)
    assert r.ci_low <= r.statistic <= r.ci_high


def test_same_seed_same_replicates_other_seed_differs():
    rng = np.random.default_rng(4)
    a = [_member(_diverse(rng), h=h, s=s) for h in range(2) for s in range(2)]
    b = [_member(_diverse(rng, words=30), h=h, s=s) for h in range(2) for s in range(2)]
    claim = _claim(a, b, "distinct-2", "b<a")
    d1 = C._replicate_diffs(claim, N_PROMPTS, 400, seed=5)
    d2 = C._replicate_diffs(claim, N_PROMPTS, 400, seed=5)
    d3 = C._replicate_diffs(claim, N_PROMPTS, 400, seed=6)
    np.testing.assert_array_equal(d1, d2)
    assert not np.array_equal(d1, d3)
    assert C.test_claims([claim], n_boot=400, seed=5) == C.test_claims([claim], n_boot=400, seed=5)


@pytest.mark.parametrize("metric", ["rep-2", "diversity", "distinct-2", "length-words"])
def test_one_member_per_side_equals_bench_compare(metric):
    """No seeds: the prompt stream and replicates are exactly ``bench compare``'s."""
    rng = np.random.default_rng(8)
    ta = _diverse(rng)
    tb = [t if i % 3 else " ".join(t.split()[:10] * 4) for i, t in enumerate(_diverse(rng))]
    a, b = _member(ta), _member(tb)
    (r,) = C.test_claims([_claim([a], [b], metric, "b<a")], n_boot=N_BOOT, seed=11)
    reps = _replicates(a.corpus, b.corpus, N_PROMPTS, N_BOOT, 11)[metric]
    reps = reps[~np.isnan(reps)]
    d = b.corpus.point[metric] - a.corpus.point[metric]
    shifted = reps + (d - reps.mean()) if metric.startswith("distinct-") else reps  # as compare_runs does
    assert r.statistic == d
    assert (r.ci_low, r.ci_high) == percentile_interval(shifted, 0.95)
    assert r.p == two_sided_p(shifted)


def test_seed_draws_do_not_move_the_prompt_stream():
    """Members of a side that are copies of one run: the seed draws change nothing but rounding."""
    rng = np.random.default_rng(9)
    ta, tb = _diverse(rng), _diverse(rng, words=20)
    one = C.test_claims([_claim([_member(ta)], [_member(tb)], "rep-2", "b<a")], n_boot=600, seed=3)[0]
    many = C.test_claims([_claim([_member(ta, h=h, s=s) for h in range(2) for s in range(3)],
                                 [_member(tb, s=s) for s in range(4)], "rep-2", "b<a")], n_boot=600, seed=3)[0]
    assert many.statistic == pytest.approx(one.statistic)
    assert many.ci_low == pytest.approx(one.ci_low, abs=1e-12)
    assert many.ci_high == pytest.approx(one.ci_high, abs=1e-12)
    assert many.p == one.p


def _perturbed(texts: list[str], rng: np.random.Generator) -> list[str]:
    """Most texts with a small change that repeats more: their first eight words again at the end."""
    return [" ".join(t.split() + t.split()[:8]) if rng.uniform() < 0.7 else t for t in texts]


def test_pairing_over_prompts_narrows_the_interval():
    rng = np.random.default_rng(10)
    # prompts differ a lot in how repetitive their continuations are: the noise that pairing removes
    ta = [_diverse(rng, 1)[0] if i % 2 else _repetitive(rng, 1)[0] for i in range(N_PROMPTS)]
    tb = _perturbed(ta, rng)
    a, b = _member(ta), _member(tb)
    (r,) = C.test_claims([_claim([a], [b], "rep-2", "b>a")], n_boot=N_BOOT, seed=0)
    draws = np.random.default_rng(0)
    ca, cb = resample_counts(draws, N_BOOT, N_PROMPTS), resample_counts(draws, N_BOOT, N_PROMPTS)
    unpaired = b.corpus.replicate(cb)["rep-2"] - a.corpus.replicate(ca)["rep-2"]
    lo, hi = percentile_interval(unpaired, 0.95)
    assert (r.ci_high - r.ci_low) < 0.5 * (hi - lo)
    assert r.verdict == "holds" and not lo > 0  # only the paired test sees the small change


def test_shared_hyperfit_seeds_keep_checkpoint_pairs():
    """B's run of checkpoint h is A's with a small change; checkpoints differ a lot. Indexed by the same
    seeds, the pair is kept and the interval is narrow; under other seed numbers, it is not."""
    rng = np.random.default_rng(12)
    base = [_diverse(rng, words=40) if h == 0 else _repetitive(rng) if h == 1 else _diverse(rng, words=12)
            for h in range(4)]
    a = [_member(t, h=h) for h, t in enumerate(base)]
    b = [_member(_perturbed(t, rng), h=h) for h, t in enumerate(base)]
    b_other = [C.Member(m.corpus, h + 100, None, m.prompts) for h, m in enumerate(b)]  # the same runs
    (paired,) = C.test_claims([_claim(a, b, "rep-2", "b>a")], n_boot=N_BOOT)
    (unpaired,) = C.test_claims([_claim(a, b_other, "rep-2", "b>a")], n_boot=N_BOOT)
    assert paired.statistic == unpaired.statistic
    assert (paired.ci_high - paired.ci_low) < 0.5 * (unpaired.ci_high - unpaired.ci_low)
    assert paired.verdict == "holds"


def test_incomplete_seed_design_drops_empty_replicates():
    rng = np.random.default_rng(13)
    a = [_member(_diverse(rng), h=0, s=0), _member(_diverse(rng), h=1, s=1)]  # (0, 1) and (1, 0) missing
    (r,) = C.test_claims([_claim(a, [_member(_repetitive(rng))], "rep-2", "b>a")], n_boot=500)
    assert math.isfinite(r.ci_low) and math.isfinite(r.p) and r.verdict == "holds"
    diffs = C._replicate_diffs(_claim(a, [_member(_repetitive(rng))], "rep-2", "b>a"), N_PROMPTS, 500, 0)
    assert np.isnan(diffs).any() and not np.isnan(diffs).all()


# --- refusals and output --------------------------------------------------------------------------

def test_refusals():
    rng = np.random.default_rng(14)
    good = _member(_diverse(rng))
    other_ids = _member(_diverse(rng), prompts=[f"q{i}" for i in range(N_PROMPTS)])
    fewer = _member(_diverse(rng, N_PROMPTS - 1), prompts=PROMPTS[:-1])
    reordered = _member(_diverse(rng), prompts=PROMPTS[::-1])
    for claim, msg in [
        (_claim([good], [other_ids]), "other prompts"),
        (_claim([good], [fewer]), "other prompts"),
        (_claim([good, reordered], [good]), "other prompts"),
        (_claim([good], [good], metric="mauve"), "unknown metric"),
        (_claim([good], [good], metric="ttr"), "token ids"),
        (_claim([], [good]), "no runs"),
        (_claim([good], []), "no runs"),
        (_claim([good], [good], expect="b=a"), "expect"),
    ]:
        with pytest.raises(BenchError, match=msg) as info:
            C.test_claims([_claim([good], [good]), claim], n_boot=10)
        assert "\n" not in str(info.value)
    with pytest.raises(BenchError, match="n_boot"):
        C.test_claims([_claim([good], [good])], n_boot=0)
    with pytest.raises(BenchError, match="prompt ids"):
        C.Member(good.corpus, prompts=("x",))


def test_token_metric_with_token_ids():
    rng = np.random.default_rng(15)
    ta, tb = _diverse(rng), _repetitive(rng)
    ids = lambda texts: [[int(w[1:]) for w in t.split()] for t in texts]  # noqa: E731
    a = C.Member(CorpusResampler(ta, ids(ta), PROMPTS), prompts=tuple(PROMPTS))
    b = C.Member(CorpusResampler(tb, ids(tb), PROMPTS), prompts=tuple(PROMPTS))
    (r,) = C.test_claims([_claim([a], [b], "ttr", "b<a")], n_boot=500)
    assert r.verdict == "holds" and r.ci_low <= r.statistic <= r.ci_high < 0


def test_write_claims_csv(tmp_path):
    rng = np.random.default_rng(16)
    texts = _diverse(rng)
    results = C.test_claims([_claim([_member(texts)], [_member(_repetitive(rng))], name="B, less diverse"),
                             _claim([_member(texts)], [_member(texts)], "rep-2", "b>a", "no change")], n_boot=300)
    nan_row = C.ClaimResult("undefined", "rep-4", "A", "B", math.nan, math.nan, math.nan, math.nan, math.nan,
                            "not shown", 3, 1, 1)
    path = tmp_path / "out" / "claims.csv"
    C.write_claims_csv(results + [nan_row], path)
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == ["claim", "statistic", "ci_low", "ci_high", "p", "p_holm", "verdict",
                                 "metric", "a", "b", "n_prompts", "runs_a", "runs_b"]
    assert rows[0]["claim"] == "B, less diverse" and rows[0]["verdict"] == "holds"
    assert float(rows[0]["p_holm"]) == pytest.approx(results[0].p_holm, rel=1e-5)
    assert float(rows[0]["statistic"]) == pytest.approx(results[0].statistic, rel=1e-5)
    assert rows[1]["p"] == "1" and rows[1]["verdict"] == "not shown" and rows[1]["n_prompts"] == str(N_PROMPTS)
    assert rows[2]["statistic"] == "" and rows[2]["p_holm"] == ""
