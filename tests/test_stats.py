"""bench.stats: one bootstrap over prompts for every interval and p-value (issue 14 part 4)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.judge.stats import summarize
from bench.run_scores import score_records
from bench.scorers.repetition import bootstrap_ci
from bench.stats import N_BOOT_P, p_error, two_sided_p


def _records(samples: int, prompts: int = 40) -> list[dict]:
    """``samples`` identical continuations per prompt, of very different lengths between prompts."""
    rng = np.random.default_rng(3)
    out = []
    for p in range(prompts):
        words = " ".join(f"w{p}x{i}" for i in range(int(rng.integers(2, 60))))
        out += [{"prompt_id": f"p{p:02d}", "sample_index": i, "continuation": words,
                 "token_ids": list(range(len(words.split())))} for i in range(samples)]
    return out


def _width(ci) -> float:
    return ci[1] - ci[0]


def test_intervals_resample_prompts_with_all_their_samples():
    """Measured: with --samples-per-prompt 4 the stored intervals resampled records (27% too narrow).

    Four identical samples per prompt carry the information of one: the interval must be that of
    the prompts alone."""
    single = _records(1)
    one = bootstrap_ci([r["continuation"] for r in single], [r["token_ids"] for r in single], n_boot=1000, seed=0)
    four = score_records(_records(4))["ci"]
    for name in ("length-words", "rep-2", "length-tokens"):
        assert _width(four[name]) == pytest.approx(_width(one[name]), rel=0.15), name
    records = bootstrap_ci([r["continuation"] for r in _records(4)], n_boot=1000, seed=0)  # records as units
    assert _width(records["length-words"]) < 0.7 * _width(four["length-words"])


def test_judge_win_rate_interval_resamples_prompts():
    outcomes = ["a", "b", "a", "a", "tie", "b", "a", "a", "b", "a"] * 4
    prompts = [f"p{i // 4}" for i in range(len(outcomes))]
    ordered = [o for o in outcomes[:10] for _ in range(4)]  # 4 samples per prompt, same outcome each
    by_prompt = summarize(ordered, prompt_ids=prompts)
    by_pair = summarize(ordered)
    assert _width(by_prompt["ci"]) > 1.5 * _width(by_pair["ci"])
    assert by_prompt["win_rate_a"] == by_pair["win_rate_a"]


def test_p_value_and_its_monte_carlo_error():
    assert two_sided_p(np.zeros(100)) == 1.0
    assert two_sided_p(np.ones(999)) == pytest.approx(2 / 1000)
    assert p_error(0.5, 1000) == pytest.approx(0.0274, abs=1e-3)  # the old default: about 0.03
    assert p_error(0.05, N_BOOT_P) < 0.0025 and p_error(0.5, N_BOOT_P) < 0.007


def test_compare_prints_p_with_its_monte_carlo_error(tmp_path):
    """Measured: 1000 replicates by default, a Monte Carlo error of about 0.03 on p, not printed."""
    from bench.publish.compare import COLUMNS, compare_runs

    assert "p_error" in COLUMNS
    assert compare_runs.__defaults__[0] == N_BOOT_P
