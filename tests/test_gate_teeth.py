"""The regression gate has teeth for sampled decoders (issue 24, part 8): a planted change to
top-p's arithmetic (its nucleus at p x 0.9, the run spec unchanged) fails ``bench check --exact``,
although the sampled row's metrics may stay inside the baseline's intervals; ``--deterministic-only``
is the documented way out on another platform."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.cli import main


@pytest.fixture()
def suite(tmp_path: Path) -> Path:
    path = tmp_path / "p.jsonl"
    words = "once upon a time there was a little girl who lived in a village near the forest".split()
    path.write_text("".join(json.dumps({"id": f"p{i}", "prompt": " ".join(words[i:i + 6])}) + "\n" for i in range(6)))
    return path


def bench(*args: str):
    return CliRunner().invoke(main, list(args))


def test_planted_top_p_change_fails_the_exact_gate(tmp_path, suite, stories260k, monkeypatch) -> None:
    common = ["run", "--model", stories260k, "--suite", str(suite), "--decoder", "greedy", "--decoder", "top-p:p=0.9",
              "--max-new-tokens", "24", "--seed", "0"]
    assert bench(*common, "--out", str(tmp_path / "base")).exit_code == 0
    assert bench("leaderboard", str(tmp_path / "base"), "--out", str(tmp_path / "baseline")).exit_code == 0
    baseline = str(tmp_path / "baseline.csv")

    same = bench(*common, "--out", str(tmp_path / "again"))
    assert same.exit_code == 0
    result = bench("check", str(tmp_path / "again"), "--baseline", baseline, "--exact")
    assert result.exit_code == 0 and "2 row(s) token-identical (1 of them sampled)" in result.output, result.output

    import bench.nucleus as nucleus

    original = nucleus.nucleus_mask
    monkeypatch.setattr(nucleus, "nucleus_mask", lambda probs, top_p: original(probs, top_p * 0.9))
    assert bench(*common, "--out", str(tmp_path / "planted")).exit_code == 0
    result = bench("check", str(tmp_path / "planted"), "--baseline", baseline, "--exact")
    assert result.exit_code == 1, result.output
    assert "top-p" in result.output and "a seeded sampled run reproduces the baseline" in result.output
    # only the documented escape hatch lets it through on tokens (metrics are still checked)
    loose = bench("check", str(tmp_path / "planted"), "--baseline", baseline, "--exact", "--deterministic-only",
                  "--tolerance", "rep-2=1", "--tolerance", "rep-3=1", "--tolerance", "rep-4=1")
    assert "the decoding output changed" not in loose.output, loose.output


def test_deterministic_only_needs_exact(tmp_path) -> None:
    result = bench("check", str(tmp_path), "--baseline", str(tmp_path / "b.csv"), "--deterministic-only")
    assert result.exit_code == 2 and "give --exact with it" in result.output
