"""Repetition scorers, the metric registry and ``bench score`` file parsing.

The SimCTG comparisons need ``pip install --no-deps simctg==0.7`` (its declared dependencies do not
install; the evaluation module itself needs none). The published-figure tests need the shared
assets (env var BENCH_SHARED, default: the ``shared`` folder beside the repository).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import random
from pathlib import Path

import numpy as np
import pytest

from bench.errors import BenchError
from bench.metrics import METRICS, metric
from bench.scorers.files import score_file
from bench.scorers.repetition import (
    DISTINCT_ORDERS,
    _batch_metrics,
    TokenColumns,
    WordColumns,
    _token_arrays,
    _word_stats,
    bootstrap_ci,
    score_texts,
)

SHARED = Path(os.environ.get("BENCH_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
CD_FILE = SHARED / "data" / "cd-benchmark" / "wikitext_gpt2-xl_contrastive_k5_alpha0.6.json"


def _simctg_measure():
    if importlib.util.find_spec("simctg") is None:
        pytest.skip("simctg not installed: pip install --no-deps simctg==0.7")
    from simctg.evaluation import measure_repetition_and_diversity

    return measure_repetition_and_diversity


@pytest.fixture(scope="module")
def cd_benchmark() -> list[dict]:
    if not CD_FILE.is_file():
        pytest.skip(f"shared asset missing: {CD_FILE} (set BENCH_SHARED)")
    return json.loads(CD_FILE.read_text(encoding="utf-8"))


def _random_corpus(rng: random.Random, n_texts: int, vocab: int = 6, max_words: int = 40) -> list[str]:
    words = [f"w{i}" for i in range(vocab)] + ["A", "é", "."]
    gaps = [" ", " ", " ", "  ", "\t", "\n", "\n\n", "\u00a0"]
    texts = []
    for _ in range(n_texts):
        chosen = [rng.choice(words) for _ in range(rng.randint(0, max_words))]
        text = "".join(w + rng.choice(gaps) for w in chosen)
        texts.append(rng.choice(["", " ", "\n"]) + text)
    texts.append("w0 w1 w0 w1 w2 w0 w1")  # keeps every SimCTG denominator positive
    return texts


# ---------------------------------------------------------------- hand-computed examples


def test_single_text_by_hand():
    s = score_texts(["a b a b a"])
    # SimCTG n-grams come from "a b a b" (the last n-gram is skipped): bigrams ab, ba, ab
    assert s["rep-2"] == pytest.approx(1 - 2 / 3)
    assert s["rep-3"] == 0.0  # aba, bab
    assert s["rep-4"] == 0.0  # abab
    assert s["diversity"] == (1 - 33.33 / 100) * 1 * 1  # rep-2 rounded to 33.33 percent first
    # distinct over all n-grams of "a b a b a"
    assert s["distinct-1"] == pytest.approx(2 / 5)
    assert s["distinct-2"] == pytest.approx(2 / 4)  # ab ba ab ba
    assert s["distinct-3"] == pytest.approx(2 / 3)  # aba bab aba
    assert s["distinct-4"] == pytest.approx(2 / 2)  # abab baba
    assert s["length-words"] == 5
    assert "ttr" not in s and "length-tokens" not in s


def test_corpus_level_counting_by_hand():
    s = score_texts(["a b c", "  a\tb\nd \n"])
    # rep-n counts repeats within a text only: "a b" in both texts is no repetition
    assert s["rep-2"] == 0.0
    assert math.isnan(s["rep-3"]) and math.isnan(s["rep-4"])  # no text has 4 words
    assert math.isnan(s["diversity"])
    # distinct-n pools the corpus: {a, b, c, d} of 6 words, {ab, bc, bd} of 4 bigrams
    assert s["distinct-1"] == pytest.approx(4 / 6)
    assert s["distinct-2"] == pytest.approx(3 / 4)
    assert s["distinct-3"] == 1.0
    assert math.isnan(s["distinct-4"])
    assert s["length-words"] == 3


def test_rep_sums_unique_counts_over_texts_by_hand():
    # text 1 "x y x y x y": n-grams of "x y x y x": bigrams xy yx xy yx -> 2 unique of 4
    # text 2 "p q r s t":   n-grams of "p q r s":   bigrams pq qr rs    -> 3 unique of 3
    s = score_texts(["x y x y x y", "p q r s t"])
    assert s["rep-2"] == pytest.approx(1 - 5 / 7)
    assert s["rep-3"] == pytest.approx(1 - (2 + 2) / (3 + 2))  # xyx yxy xyx ; pqr qrs
    assert s["rep-4"] == pytest.approx(1 - (2 + 1) / (2 + 1))
    assert s["length-words"] == pytest.approx(5.5)


def test_token_metrics_by_hand():
    s = score_texts(["a", "b", ""], [[1, 2, 1, 2], [5], []])
    assert s["length-tokens"] == pytest.approx(5 / 3)  # the empty continuation counts here
    assert s["ttr"] == pytest.approx((2 / 4 + 1 / 1) / 2)  # ... but not in the TTRs
    assert s["ttr-last96"] == pytest.approx((2 / 4 + 1 / 1) / 2)
    long = [7, 7, 7, 7] + list(range(96))  # 100 ids, 96 distinct; the last 96 are all distinct
    s = score_texts(["x"], [long])
    assert s["ttr"] == pytest.approx(96 / 100)
    assert s["ttr-last96"] == 1.0
    s = score_texts(["x"], [[3] * 200])
    assert s["ttr"] == pytest.approx(1 / 200) and s["ttr-last96"] == pytest.approx(1 / 96)
    assert math.isnan(score_texts([""], [[]])["ttr"])


@pytest.mark.parametrize(
    "texts, token_ids",
    [([], None), ("a b c", None), (["a", 3], None), (["a"], [[1], [2]]), (["a"], [["x"]]), (["a"], [[True]])],
)
def test_bad_input_is_a_bench_error(texts, token_ids):
    with pytest.raises(BenchError):
        score_texts(texts, token_ids)


# ---------------------------------------------------------------- independent references


def _naive_distinct(texts: list[str], n: int) -> float:
    grams: list[tuple[str, ...]] = []
    for text in texts:
        w = text.split()
        grams.extend(tuple(w[i : i + n]) for i in range(len(w) - n + 1))
    return len(set(grams)) / len(grams) if grams else math.nan


def _naive_rep(texts: list[str], n: int) -> float:
    unique = total = 0
    for text in texts:
        w = text.split()[:-1]  # SimCTG never reaches a text's last n-gram
        grams = [tuple(w[i : i + n]) for i in range(len(w) - n + 1)]
        unique, total = unique + len(set(grams)), total + len(grams)
    return 1 - unique / total


@pytest.mark.parametrize("seed", range(5))
def test_matches_naive_definitions(seed):
    texts = _random_corpus(random.Random(seed), 60)
    s = score_texts(texts)
    for n in DISTINCT_ORDERS:
        assert s[f"distinct-{n}"] == pytest.approx(_naive_distinct(texts, n), abs=1e-12)
    for n in (2, 3, 4):
        assert s[f"rep-{n}"] == pytest.approx(_naive_rep(texts, n), abs=1e-12)
    assert s["length-words"] == pytest.approx(np.mean([len(t.strip().split()) for t in texts]))


@pytest.mark.parametrize("seed", range(10))
def test_equals_simctg_on_random_texts(seed):
    measure = _simctg_measure()
    rng = random.Random(seed)
    texts = _random_corpus(rng, rng.randint(1, 80), vocab=rng.choice([2, 5, 30]))
    r2, r3, r4, div = measure(texts)
    s = score_texts(texts)
    assert [round(s[f"rep-{n}"] * 100, 2) for n in (2, 3, 4)] == [r2, r3, r4]
    assert s["diversity"] == div  # bit-for-bit, rounding quirk included


# ---------------------------------------------------------------- published figures


def test_published_contrastive_search_figures(cd_benchmark):
    generations = [row["generated_result"]["0"] for row in cd_benchmark]
    references = [row["reference_text"] for row in cd_benchmark]
    assert len(generations) == 1314
    gen, ref = score_texts(generations), score_texts(references)
    # Su & Xu 2022, GPT2-XL contrastive search k=5 alpha=0.6 on WikiText: diversity 89.35,
    # human 92.98, generation length 175.65 (their *_diversity_mauve_gen_length_result.json)
    assert round(gen["diversity"], 4) == 0.8935
    assert round(ref["diversity"], 4) == 0.9298
    assert round(gen["length-words"], 2) == 175.65
    assert [round(gen[f"rep-{n}"] * 100, 2) for n in (2, 3, 4)] == [6.95, 2.38, 1.64]


def test_published_figures_equal_simctg(cd_benchmark):
    measure = _simctg_measure()
    generations = [row["generated_result"]["0"] for row in cd_benchmark]
    assert score_texts(generations)["diversity"] == measure(generations)[3]


# ---------------------------------------------------------------- bootstrap


def test_bootstrap_batch_equals_recomputation():
    rng = random.Random(3)
    texts = _random_corpus(rng, 40)
    ids = [[rng.randrange(20) for _ in range(rng.randint(0, 120))] for _ in texts]
    stats = _word_stats(WordColumns.of(texts), bootstrap=True)
    tokens = _token_arrays(TokenColumns.of(ids, len(texts)))
    draws = np.random.default_rng(0).integers(0, len(texts), size=(70, len(texts)))  # two bit blocks
    counts = np.stack([np.bincount(d, minlength=len(texts)) for d in draws])
    batch = _batch_metrics(stats, tokens, counts)
    for b, draw in enumerate(draws):
        literal = score_texts([texts[i] for i in draw], [ids[i] for i in draw])
        for name in ("rep-2", "rep-3", "rep-4", "length-words", "length-tokens", "ttr", "ttr-last96"):
            assert batch[name][b] == pytest.approx(literal[name], abs=1e-12), name
        product = np.prod([1 - literal[f"rep-{n}"] for n in (2, 3, 4)])
        assert batch["diversity"][b] == pytest.approx(product, abs=1e-12)
        # distinct-n: each drawn text once
        once = score_texts([texts[i] for i in sorted(set(draw))])
        for n in DISTINCT_ORDERS:
            assert batch[f"distinct-{n}"][b] == pytest.approx(once[f"distinct-{n}"], abs=1e-12)


def test_bootstrap_ci_brackets_estimates_and_is_seeded():
    rng = random.Random(7)
    texts = _random_corpus(rng, 150, vocab=3)
    ids = [[rng.randrange(50) for _ in range(rng.randint(1, 150))] for _ in texts]
    point = score_texts(texts, ids)
    ci = bootstrap_ci(texts, ids, n_boot=300, seed=1)
    assert set(ci) == set(point)
    for name, (low, high) in ci.items():
        assert low < high, name
        assert low <= point[name] <= high, name
    assert bootstrap_ci(texts, ids, n_boot=300, seed=1) == ci
    assert bootstrap_ci(texts, ids, n_boot=300, seed=2) != ci
    narrow = bootstrap_ci(texts, ids, n_boot=300, seed=1, level=0.5)
    assert narrow["rep-2"][1] - narrow["rep-2"][0] < ci["rep-2"][1] - ci["rep-2"][0]


def test_bootstrap_of_identical_texts_has_zero_width():
    ci = bootstrap_ci(["a b a b c d"] * 20, n_boot=50)
    assert ci["rep-2"][0] == ci["rep-2"][1] == pytest.approx(1 - 3 / 4)
    assert ci["length-words"] == (6.0, 6.0)


@pytest.mark.parametrize("kwargs", [{"n_boot": 0}, {"level": 1.0}, {"level": 0}])
def test_bootstrap_rejects_bad_arguments(kwargs):
    with pytest.raises(BenchError):
        bootstrap_ci(["a b c d e"], **kwargs)


# ---------------------------------------------------------------- metric registry


def test_every_scored_metric_is_registered():
    names = set(score_texts(["a b c d e f"], [[1, 2]]))
    assert names <= set(METRICS)
    for name in names:
        assert metric(name).direction in ("higher", "lower", "none")
    assert metric("rep-2").direction == "lower" and metric("diversity").direction == "higher"
    assert metric("length-words").direction == "none"
    assert metric("rep-2").better(0.1, 0.2) and not metric("length-words").better(1, 2)
    assert metric("ttr").format(math.nan) == "n/a" and metric("ttr").format(0.5) == "0.5000"


def test_unknown_metric_suggests_closest():
    with pytest.raises(BenchError, match="did you mean 'rep-2'"):
        metric("rep2")


# ---------------------------------------------------------------- bench score FILE.jsonl


def _write(tmp_path: Path, lines: list[str]) -> str:
    path = tmp_path / "gens.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def test_score_file_generations_and_human(tmp_path):
    records = [
        {"prompt": "p", "continuation": "a b a b a", "reference": "x y z w v", "token_ids": [1, 2, 1]},
        {"continuation": "c d e f g h", "reference": "x q r", "token_ids": [4]},
    ]
    path = _write(tmp_path, [json.dumps(r) for r in records] + [""])
    gen, human = score_file(path)
    expected = score_texts(["a b a b a", "c d e f g h"], [[1, 2, 1], [4]])
    assert gen == {"system": "generations", "n": 2, **expected}
    assert human["system"] == "human" and human["n"] == 2
    assert human["rep-2"] == score_texts(["x y z w v", "x q r"])["rep-2"]
    assert "ttr" not in human and "rep-4" in human


def test_score_file_without_all_references_has_one_row(tmp_path):
    path = _write(tmp_path, [json.dumps({"continuation": "a b c d e", "reference": "r s"}),
                             json.dumps({"continuation": "a b", "reference": None})])
    rows = score_file(path)
    assert [r["system"] for r in rows] == ["generations"]
    assert "rep-4" in rows[0] and "ttr" not in rows[0]
    assert "distinct-4" in rows[0]


@pytest.mark.parametrize(
    "lines, where, what",
    [
        (['{"continuation": "a"}', "{not json"], ", line 2:", "invalid JSON"),
        (['{"prompt": "p"}'], ", line 1:", "missing required field 'continuation'"),
        (['{"continuation": 3}'], ", line 1:", "must be a string"),
        (['{"continuation": "a", "reference": ["r"]}'], ", line 1:", "'reference' must be a string"),
        (['{"continuation": "a", "token_ids": [1, "2"]}'], ", line 1:", "list of integers"),
        (['{"continuation": "a", "token_ids": [1]}', "", '{"continuation": "b"}'], ", line 3:", "every line or none"),
        (['["a"]'], ", line 1:", "JSON object"),
        (["", "  "], "", "empty file"),
    ],
)
def test_score_file_errors_name_file_and_line(tmp_path, lines, where, what):
    path = _write(tmp_path, lines)
    with pytest.raises(BenchError) as info:
        score_file(path)
    assert str(info.value).startswith(path + where) and what in str(info.value)


def test_score_file_missing_or_unreadable(tmp_path):
    with pytest.raises(BenchError, match="no such file"):
        score_file(str(tmp_path / "absent.jsonl"))
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes(b'{"continuation": "caf\xe9"}\n')
    with pytest.raises(BenchError, match="not UTF-8"):
        score_file(str(bad))
