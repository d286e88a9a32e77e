"""Scores and intervals stay what they were (issue 23): the scaled-up scorer (one sort per n-gram
order, vectorised token counts, bit-parallel distinct-n replicates, blocks of draws) against
numbers written by the scorer of commit 33a635a (``scripts/make_scores_golden.py``)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "fixtures" / "scores_golden.json"
CD = ROOT.parent / "shared" / "data" / "cd-benchmark" / "wikitext_gpt2-xl_contrastive_k5_alpha0.6.json"

sys.path.insert(0, str(ROOT / "scripts"))


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-12, abs=1e-15)


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads(GOLDEN.read_text())["corpora"]


@pytest.fixture(scope="module")
def corpora() -> dict:
    if not CD.exists():
        pytest.skip(f"{CD} is missing (../shared beside the checkout)")
    from make_scores_golden import corpora as make

    return make(str(CD))


@pytest.mark.parametrize("name", ["cd-references", "cd-contrastive", "fake-3-samples"])
def test_scores_and_intervals_are_unchanged(name: str, golden: dict, corpora: dict) -> None:
    from bench.scorers.repetition import bootstrap_ci, score_texts

    c, want = corpora[name], golden[name]
    got = score_texts(c["texts"], c["token_ids"])
    assert got.keys() == want["metrics"].keys()
    assert all(_same(got[k], want["metrics"][k]) for k in got), {k: (got[k], want["metrics"][k]) for k in got}
    ci = bootstrap_ci(c["texts"], c["token_ids"], n_boot=1000, seed=3, prompt_ids=c["prompt_ids"])
    assert ci.keys() == want["ci"].keys()
    for k, (lo, hi) in ci.items():
        assert _same(lo, want["ci"][k][0]) and _same(hi, want["ci"][k][1]), (k, (lo, hi), want["ci"][k])


def test_paired_replicates_are_unchanged(golden: dict, corpora: dict) -> None:
    from bench.scorers.repetition import CorpusResampler
    from bench.stats import count_blocks

    from bench.publish.compare import _replicates

    a, b = corpora["cd-references"], corpora["cd-contrastive"]
    ra, rb = CorpusResampler(a["texts"], None), CorpusResampler(b["texts"], None)
    reps: dict[str, list] = {}
    for counts in count_blocks(np.random.default_rng(11), 2000, max(ra.width, rb.width), ra.n_prompts):
        ma, mb = ra.replicate(counts), rb.replicate(counts)
        for k in ma:
            reps.setdefault(k, []).append(mb[k] - ma[k])
    together = _replicates(ra, rb, ra.n_prompts, 2000, 11)  # bench compare's path: both sides' work shared
    for k, want in golden["compare-quantiles"].items():
        got = np.nanquantile(np.concatenate(reps[k]), [0.025, 0.5, 0.975]).tolist()
        assert all(_same(x, y) for x, y in zip(got, want)), (k, got, want)
        assert np.array_equal(together[k], np.concatenate(reps[k]), equal_nan=True), k


def test_replicates_together_equal_each_alone() -> None:
    """Corpora drawn together (one float copy and one set of masks per prompt layout, blocks scored
    on threads or in turn) get exactly the numbers each gets alone, whatever their layouts."""
    import random

    from bench.scorers.repetition import CorpusResampler, replicate_blocks, replicate_together
    from bench.stats import resample_counts

    words = "a b c d e f g h i j k l".split()

    def corpus(samples: int, seed: int) -> CorpusResampler:
        r = random.Random(seed)
        n = 300 * samples
        return CorpusResampler([" ".join(r.choice(words) for _ in range(r.randint(0, 30))) for _ in range(n)],
                               [[r.randint(0, 40) for _ in range(r.randint(0, 20))] for _ in range(n)],
                               [f"p{i // samples:03d}" for i in range(n)])

    sides = [corpus(1, 1), corpus(2, 2), corpus(1, 3)]
    counts = resample_counts(np.random.default_rng(5), 130, 300)  # three passes of 64 masks, the last short
    blocks = [counts[:64], counts[64:128], counts[128:]]
    threaded = list(replicate_blocks(sides, iter(blocks), threads=2))  # scored side by side, in order
    in_turn = list(replicate_blocks(sides, iter(blocks), threads=1))
    for block, got, turn in zip(blocks, threaded, in_turn):
        assert all(np.array_equal(g[k], t[k], equal_nan=True) for g, t in zip(got, turn) for k in g)
        for side, metrics, together in zip(sides, got, replicate_together(sides, block)):
            alone = side.replicate(block)
            assert metrics.keys() == alone.keys() == together.keys()
            assert all(np.array_equal(metrics[k], alone[k], equal_nan=True) for k in alone)
            assert all(np.array_equal(together[k], alone[k], equal_nan=True) for k in alone)


def test_bit_counts_both_paths_count_every_bit() -> None:
    from bench.scorers.repetition import bit_counts

    rng = np.random.default_rng(0)
    for n in (1, 100, 20_000):  # 20,000 words take the histogram path
        words = rng.integers(0, 2**63, size=n, dtype=np.uint64) | (rng.integers(0, 2, size=n, dtype=np.uint64) << 63)
        want = [int(((words >> np.uint64(r)) & np.uint64(1)).sum()) for r in range(64)]
        assert bit_counts(words, 64).tolist() == want
        assert bit_counts(words, 5).tolist() == want[:5]


def test_present_masks_put_resample_r_in_bit_r() -> None:
    from bench.scorers.repetition import _present_masks

    present = np.random.default_rng(1).random((37, 11)) < 0.5
    masks = _present_masks(present)
    for t in range(11):
        assert [bool((int(masks[t]) >> r) & 1) for r in range(37)] == present[:, t].tolist()
        assert int(masks[t]) >> 37 == 0


def test_token_counts_do_not_depend_on_the_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    import random

    import bench.scorers.repetition as rep

    rng = random.Random(2)
    ids = [[rng.randrange(30) for _ in range(rng.choice([0, 1, 5, 97, 150]))] for _ in range(200)]
    whole = rep._token_arrays(rep.TokenColumns.of(ids, len(ids)))
    monkeypatch.setattr(rep, "TOKEN_SLICE", 7)
    sliced = rep._token_arrays(rep.TokenColumns.of(ids, len(ids)))
    for a, b in zip(whole, sliced):
        assert np.array_equal(a, b, equal_nan=True)
    assert whole[1][3] == (len(set(ids[3])) / len(ids[3]) if ids[3] else whole[1][3])
