"""``--log-probs-from server``: per-token traces from an OpenAI-compatible server's own logprobs
(issue 25, part 3), against the local model's exact traces of the same tokens.

The server is tests/test_backends.py's, serving stories260K and answering ``logprobs`` as vLLM
does (the top k, plus the chosen token when it is not among them, keyed ``token_id:N``); the real
vLLM server's answer is checked in tests/test_vllm_server.py.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from test_backends import CompletionServer

from bench.cli import main
from bench.errors import BenchError
from bench.traces import TOP_LOGPROBS, server_trace

PROMPTS = ["Once upon a time there was a cat", "The dog", "A little girl named Lily went to the park with her mom"]


@pytest.fixture(scope="module")
def served(stories260k: str):
    s = CompletionServer(stories260k, stories260k, return_ids=True)
    yield s
    s.close()


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("suite") / "p.jsonl"
    path.write_text("".join(json.dumps({"id": f"p{i}", "prompt": t}) + "\n" for i, t in enumerate(PROMPTS)))
    return path


def bench_run(*args: str):
    return CliRunner().invoke(main, ["run", *args], catch_exceptions=False)


def records(out: Path) -> dict[str, dict[str, dict]]:
    """decoder -> prompt id -> record."""
    found = {}
    for header in out.glob("*/header.json"):
        name = json.loads(header.read_text())["spec"]["decoder"]["name"]
        lines = (header.parent / "generations.jsonl").read_text().splitlines()
        found[name] = {r["prompt_id"]: r for r in map(json.loads, lines)}
    return found


def test_server_traces_match_the_models_exact_ones(served, suite: Path, stories260k: str, tmp_path: Path) -> None:
    common = ["--model", stories260k, "--suite", str(suite), "--decoder", "greedy", "--decoder", "top-k:k=3",
              "--max-new-tokens", "12"]
    result = bench_run(*common, "--backend", "openai", "--base-url", served.url, "--log-probs-from", "server",
                       "--out", str(tmp_path / "server"))
    assert result.exit_code == 0, result.output
    result = bench_run(*common, "--backend", "openai", "--base-url", served.url, "--log-probs",
                       "--out", str(tmp_path / "model"))
    assert result.exit_code == 0, result.output
    assert all(body["logprobs"] in (0, TOP_LOGPROBS) for body in served.requests)
    server, model = records(tmp_path / "server"), records(tmp_path / "model")
    for name in ("greedy", "top-k"):
        for pid, r in server[name].items():
            exact = model[name][pid]
            assert r["token_ids"] == exact["token_ids"]  # the same seeds: the same tokens
            t, e = r["trace"], exact["trace"]
            assert (t["source"], t["entropy"], t["top_logprobs"]) == ("server", "lower-bound", TOP_LOGPROBS)
            assert t["log_probs"] == pytest.approx(e["log_probs"], abs=1e-4)
            assert t["ranks"] == e["ranks"]  # top-3 and greedy tokens are always inside the top 20
            assert all(lo <= h + 1e-4 for lo, h in zip(t["entropies"], e["entropies"]))  # a lower bound
            assert t["pieces"] == e["pieces"] and len(t["log_probs"]) == len(r["token_ids"])
    assert all(r == 1 for rec in server["greedy"].values() for r in rec["trace"]["ranks"])
    # a different run: its traces mean something else (lower-bound entropies)
    assert {p.name for p in (tmp_path / "server").iterdir()} & {p.name for p in (tmp_path / "model").iterdir()} \
        <= {"leaderboard.csv"}


def test_rank_is_null_below_the_top_and_the_entropy_bound_is_tight_when_all_is_named() -> None:
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(100) * 0.3)
    logp = np.log(p)
    order = np.argsort(-logp)
    true_h = float(-(p * logp).sum())
    top = {f"token_id:{i}": float(logp[i]) for i in order[:TOP_LOGPROBS]}
    inside, outside = int(order[3]), int(order[50])
    logprobs = {"tokens": [f"token_id:{inside}", f"token_id:{outside}"],
                "token_logprobs": [float(logp[inside]), float(logp[outside])],
                "top_logprobs": [top, {**top, f"token_id:{outside}": float(logp[outside])}]}
    trace = server_trace(logprobs, 2, "the server")
    assert trace["ranks"] == [4, None]
    assert trace["entropies"][0] < true_h and trace["entropies"][1] < true_h
    every = {f"token_id:{i}": float(v) for i, v in enumerate(logp)}
    full = server_trace({"tokens": ["token_id:0"], "token_logprobs": [float(logp[0])], "top_logprobs": [every]}, 1, "s")
    assert full["entropies"][0] == pytest.approx(true_h, abs=1e-5)
    assert full["ranks"] == [1 + int((logp > logp[0]).sum())]
    for bad in (None, {"tokens": ["token_id:1"]}, {"token_logprobs": [0.5], "top_logprobs": [{}]},
                {"token_logprobs": [math.nan], "top_logprobs": [{}]}):
        with pytest.raises(BenchError):
            server_trace(bad, 1, "the server")


def test_bad_uses_are_one_line(served, suite: Path, stories260k: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["run", "--model", stories260k, "--suite", str(suite), "--decoder", "greedy",
                                       "--log-probs-from", "server", "--out", str(tmp_path / "hf")])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: --log-probs-from server takes the traces from an OpenAI-compatible server's answer; "
        "--backend hf computes them with the model (--log-probs alone)"]
    mute = CompletionServer(stories260k, stories260k, return_ids=True, logprobs=False)
    try:
        result = CliRunner().invoke(main, ["run", "--model", stories260k, "--suite", str(suite), "--decoder", "greedy",
                                           "--backend", "openai", "--base-url", mute.url, "--max-new-tokens", "4",
                                           "--log-probs-from", "server", "--out", str(tmp_path / "mute")])
    finally:
        mute.close()
    assert result.exit_code == 2 and "Traceback" not in result.output
    (line,) = [x for x in result.output.splitlines() if x.startswith("error:")]  # after the progress line
    assert "the server does not return logprobs" in line, line
    assert not list((tmp_path / "mute").glob("*/generations.jsonl"))
