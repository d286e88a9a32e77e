"""``bench parity``: one spec run in two places, compared record by record or by first-token
distribution, with a verdict a CI job can gate on (issue 25, part 2)."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.cli import main
from bench.parity import first_token_test

PROMPTS = [{"id": f"p{i}", "prompt": f"Once upon a time there was a {w}"}
           for i, w in enumerate(["cat", "dog", "girl", "boy", "king", "bird"])]


def _run(model: str, out: Path, suite: Path, decoder: str, *extra: str) -> Path:
    result = CliRunner().invoke(main, ["run", "--model", model, "--suite", str(suite), "--decoder", decoder,
                                       "--max-new-tokens", "12", "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    return next(p.parent for p in out.glob("*/header.json"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, stories260k: str) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("parity")
    suite = root / "p.jsonl"
    suite.write_text("".join(json.dumps(p) + "\n" for p in PROMPTS))
    return {"root": root,
            "f32": _run(stories260k, root / "f32", suite, "greedy", "--dtype", "float32"),
            "bf16": _run(stories260k, root / "bf16", suite, "greedy", "--dtype", "bfloat16"),
            "topk": _run(stories260k, root / "topk", suite, "top-k:k=4", "--samples-per-prompt", "30")}


def _parity(*args: str):
    return CliRunner().invoke(main, ["parity", *map(str, args)])


def test_the_same_run_in_two_places_agrees_and_passes_the_gate(runs: dict[str, Path]) -> None:
    copy = runs["root"] / "copy" / runs["f32"].name
    shutil.copytree(runs["f32"], copy)
    result = _parity(runs["f32"], copy, "--fail-below", "1", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["agreement"] == 1.0 and out["equal"] == out["pairs"] == len(PROMPTS) and out["differs_in"] == []


def test_float32_against_bfloat16_finds_each_divergence_and_its_margin(runs: dict[str, Path]) -> None:
    result = _parity(runs["f32"], runs["bf16"], "--margins", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["differs_in"] == ["dtype"] and out["equal"] + len(out["divergences"]) == len(PROMPTS)
    a = {r["prompt_id"]: r["token_ids"] for r in map(json.loads, (runs["f32"] / "generations.jsonl").open())}
    b = {r["prompt_id"]: r["token_ids"] for r in map(json.loads, (runs["bf16"] / "generations.jsonl").open())}
    for d in out["divergences"]:
        pos = d["position"]
        assert a[d["prompt_id"]][:pos] == b[d["prompt_id"]][:pos] and d["token_a"] == a[d["prompt_id"]][pos]
        assert d["margin"] >= 0 and isinstance(d["top_two"], bool)


def test_a_planted_fault_is_real_and_fails_the_gate(runs: dict[str, Path]) -> None:
    broken = runs["root"] / "broken" / runs["f32"].name
    shutil.copytree(runs["f32"], broken)
    records = [json.loads(line) for line in (broken / "generations.jsonl").read_text().splitlines()]
    records[0]["token_ids"][3] = (records[0]["token_ids"][3] + 97) % 512  # a token greedy would never pick
    (broken / "generations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (broken / "scores.json").unlink()
    result = _parity(runs["f32"], broken, "--margins", "--fail-below", "1")
    assert result.exit_code == 1, result.output
    assert "at token 3" in result.stdout and "REAL" in result.stdout and "parity FAIL" in result.stdout


def test_sampling_runs_compare_first_token_distributions(runs: dict[str, Path]) -> None:
    copy = runs["root"] / "topk-copy" / runs["topk"].name
    shutil.copytree(runs["topk"], copy)
    out = json.loads(_parity(runs["topk"], copy, "--json", "--fail-below", "0.05").stdout)
    assert out["kind"] == "sampling" and out["mean_tv"] == 0 and out["p_value"] == pytest.approx(1.0)
    records = [json.loads(line) for line in (copy / "generations.jsonl").read_text().splitlines()]
    for r in records:
        r["token_ids"][0] = 5  # every sample starts with one token: another distribution
    (copy / "generations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (copy / "scores.json").unlink()
    result = _parity(runs["topk"], copy, "--fail-below", "0.05")
    assert result.exit_code == 1 and "parity FAIL" in result.stdout, result.output


def test_the_chi_square_test_holds_its_level_and_has_power() -> None:
    def draws(weights: list[float], seed: int, n: int = 200) -> list[dict]:
        rng = random.Random(seed)
        return [{"prompt_id": f"p{i % 4}", "sample_index": i, "token_ids": [rng.choices(range(5), weights)[0]],
                 "continuation": "x"} for i in range(n)]

    same = [first_token_test(draws([5, 3, 1, 1, 1], s), draws([5, 3, 1, 1, 1], s + 100)).p_value for s in range(40)]
    assert sum(p < 0.05 for p in same) <= 6  # about 2 expected at the 5% level
    other = first_token_test(draws([5, 3, 1, 1, 1], 1), draws([1, 1, 1, 3, 5], 2))
    assert other.p_value < 1e-10 and other.mean_tv > 0.3


def test_different_specs_are_refused_in_one_line(runs: dict[str, Path]) -> None:
    result = _parity(runs["f32"], runs["topk"])
    assert result.exit_code == 2 and result.stderr.startswith("error: the runs differ in decoder"), result.output
    assert len(result.stderr.splitlines()) == 1
