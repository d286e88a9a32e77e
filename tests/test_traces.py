"""``bench run --log-probs``: per-token log-probability, entropy and rank under the model (issue 25, part 3)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.cli import main

PROMPTS = ["Once upon a time there was a cat", "The dog", "A little girl named Lily went to the park with her mom"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, stories260k: str) -> Path:
    root = tmp_path_factory.mktemp("traces")
    suite = root / "p.jsonl"
    suite.write_text("".join(json.dumps({"id": f"p{i}", "prompt": t}) + "\n" for i, t in enumerate(PROMPTS)))
    for out, extra in (("with", ["--log-probs"]), ("without", [])):
        result = CliRunner().invoke(main, ["run", "--model", stories260k, "--suite", str(suite), "--decoder", "greedy",
                                           "--decoder", "top-k:k=3", "--decoder", "contrastive", "--max-new-tokens",
                                           "10", "--out", str(root / out), *extra])
        assert result.exit_code == 0, result.output
    return root


def _records(store: Path, out: str) -> dict[str, list[dict]]:
    return {json.loads(p.read_text())["spec"]["decoder"]["name"]:
            [json.loads(line) for line in (p.parent / "generations.jsonl").read_text().splitlines()]
            for p in (store / out).glob("*/header.json")}


def test_traces_have_one_entry_per_token_and_the_decoders_properties(store: Path) -> None:
    runs = _records(store, "with")
    for name, records in runs.items():
        for r in records:
            trace = r["trace"]
            assert len(trace["log_probs"]) == len(trace["entropies"]) == len(trace["ranks"]) == len(r["token_ids"])
            assert all(lp <= 0 for lp in trace["log_probs"]) and all(0 <= h <= math.log(512) + 1e-6
                                                                      for h in trace["entropies"])
    assert all(rank == 1 for r in runs["greedy"] for rank in r["trace"]["ranks"])  # greedy takes the argmax
    assert all(rank <= 3 for r in runs["top-k"] for rank in r["trace"]["ranks"])
    assert any(rank > 1 for r in runs["top-k"] for rank in r["trace"]["ranks"])


def test_a_trace_equals_the_models_own_log_probs_one_row_at_a_time(store: Path, stories260k: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(stories260k, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(stories260k)
    for r in _records(store, "with")["top-k"]:  # prompts of three lengths: padding must not matter
        prompt = tok(r["prompt"])["input_ids"]
        with torch.inference_mode():
            logits = model(input_ids=torch.tensor([prompt + r["token_ids"]])).logits[0].float()
        lp = logits[len(prompt) - 1:-1].log_softmax(-1).gather(-1, torch.tensor(r["token_ids"])[:, None])[:, 0]
        assert lp.tolist() == pytest.approx(r["trace"]["log_probs"], abs=1e-4)


def test_traces_are_in_the_identity_only_when_asked_for(store: Path) -> None:
    with_ids = {p.parent.name for p in (store / "with").glob("*/header.json")}
    without = {p.parent.name for p in (store / "without").glob("*/header.json")}
    assert not with_ids & without
    assert all("trace" not in r for records in _records(store, "without").values() for r in records)
    # the same tokens either way: tracing reads the model, it does not change what is decoded
    a, b = _records(store, "with"), _records(store, "without")
    assert {k: [r["token_ids"] for r in v] for k, v in a.items()} == {k: [r["token_ids"] for r in v] for k, v in b.items()}
