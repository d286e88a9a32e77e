"""The n-grams every resample hits are counted without a look (issue 23): intervals are those of the
exact computation, under the same seed, on the fixtures and on corpora built to stress it."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from bench.backends.fake import WORDS
from bench.scorers.repetition import MISS_BOUND, CorpusResampler, bootstrap_ci


def _fake_corpus(n: int, words: int, vocab: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS[:vocab]) for _ in range(words)) for _ in range(n)]


CORPORA = {
    "tiny-vocab": (_fake_corpus(400, 20, 5, 0), 2),  # every 1- and 2-gram in nearly every prompt
    "fake-200": (_fake_corpus(3000, 40, 200, 1), 1),
    "two-samples": (_fake_corpus(2000, 30, 40, 2), 2),
    "all-alike": (["the cat sat on the mat"] * 50 + ["a dog ran"] * 50, 1),
    "few-prompts": (_fake_corpus(12, 10, 8, 3), 3),
}


@pytest.mark.parametrize("name", list(CORPORA))
def test_intervals_equal_the_exact_computation(name: str) -> None:
    texts, per_prompt = CORPORA[name]
    prompt_ids = [f"p{i // per_prompt}" for i in range(len(texts))]
    for seed in (0, 7):
        exact = bootstrap_ci(texts, None, n_boot=400, seed=seed, prompt_ids=prompt_ids, exact=True)
        assert bootstrap_ci(texts, None, n_boot=400, seed=seed, prompt_ids=prompt_ids) == exact


def test_the_shortcut_is_taken_and_bounded() -> None:
    texts, per_prompt = CORPORA["tiny-vocab"]
    prompt_ids = [f"p{i // per_prompt}" for i in range(len(texts))]
    fast = CorpusResampler(texts, None, prompt_ids)
    exact = CorpusResampler(texts, None, prompt_ids, exact=True)
    assert fast.stats.plans[1].sure == 5 and len(fast.stats.plans[1].shared_text) == 0  # the 5 words: in every prompt
    assert len(exact.stats.plans[1].shared_text) > 0 and exact.stats.plans[1].sure == 0
    assert MISS_BOUND <= 1e-15


def test_a_sampled_fake_store_scores_as_before(tmp_path: Path) -> None:
    """Three samples of 40 prompts from the fake backend score identically both ways."""
    from click.testing import CliRunner

    from bench.cli import main

    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"ba{i} kot"}) + "\n" for i in range(40)))
    result = CliRunner().invoke(main, ["run", "--backend", "fake", "--suite", str(prompts), "--decoder", "top-k:k=3",
                                       "--samples-per-prompt", "3", "--max-new-tokens", "30", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in next((tmp_path / "r").glob("*/generations.jsonl")).read_text().splitlines()]
    texts, ids = [r["continuation"] for r in records], [r["prompt_id"] for r in records]
    assert bootstrap_ci(texts, None, n_boot=1000, prompt_ids=ids) == bootstrap_ci(texts, None, n_boot=1000,
                                                                                   prompt_ids=ids, exact=True)
