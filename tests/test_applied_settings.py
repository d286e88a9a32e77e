"""The settings each backend really applied are in the run header, and a model's own sampling
defaults are recorded, announced once and never applied (issue 25, part 1)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.cli import main

PROMPTS = [{"id": f"p{i}", "prompt": f"Once upon a time there was a cat number {i}"} for i in range(3)]


def _run(model: str, out: Path, suite: Path, *decoders: str, extra: tuple[str, ...] = ()):
    args = [a for d in decoders for a in ("--decoder", d)]
    return CliRunner().invoke(main, ["run", "--model", model, "--suite", str(suite), *args, "--max-new-tokens", "6",
                                     "--samples-per-prompt", "2", "--out", str(out), *extra])


def _headers(out: Path) -> dict[str, dict]:
    headers = [json.loads(p.read_text()) for p in out.glob("*/header.json")]
    return {h["spec"]["decoder"]["name"]: h for h in headers}


@pytest.fixture()
def suite(tmp_path: Path) -> Path:
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PROMPTS))
    return path


def test_the_hf_backend_records_its_chain_in_order(stories260k: str, tmp_path: Path, suite: Path) -> None:
    result = _run(stories260k, tmp_path / "runs", suite, "greedy", "top-p:p=0.9,t=0.7", "contrastive", "typical")
    assert result.exit_code == 0, result.output
    headers = _headers(tmp_path / "runs")
    greedy = headers["greedy"]["resolved"]["applied"]
    assert greedy["backend"] == "hf" and greedy["steps"] == ["argmax"] and greedy["generate() called"] is False
    steps = headers["top-p"]["resolved"]["applied"]["steps"]
    assert steps[0].startswith("TemperatureLogitsWarper(temperature=0.7") and steps[1].startswith("TopPFilter(top_p=0.9")
    assert steps[-1].startswith("softmax, then one draw") and len(steps) == 3
    assert headers["contrastive"]["resolved"]["applied"]["loop"].startswith("ContrastiveSearch.generate")
    assert "TypicalLogitsWarper" in headers["typical"]["resolved"]["applied"]["steps"][0]
    assert "model_sampling_defaults" not in headers["greedy"]["resolved"]
    assert "notice:" not in result.stderr


def test_a_models_sampling_defaults_are_recorded_announced_and_not_applied(stories260k: str, tmp_path: Path,
                                                                           suite: Path) -> None:
    shipped = tmp_path / "shipped"
    shutil.copytree(stories260k, shipped, ignore=shutil.ignore_patterns("original"))
    config = json.loads((shipped / "generation_config.json").read_text())
    config.update(do_sample=True, temperature=0.2, top_p=0.5, repetition_penalty=1.3)
    (shipped / "generation_config.json").write_text(json.dumps(config))
    plain = _run(stories260k, tmp_path / "plain", suite, "greedy", "top-k")
    result = _run(str(shipped), tmp_path / "shipped-runs", suite, "greedy", "top-k")
    assert plain.exit_code == 0 and result.exit_code == 0, result.output
    notices = [line for line in result.stderr.splitlines() if line.startswith("notice: ")]
    assert len(notices) == 1 and "temperature=0.2" in notices[0] and "does not apply them" in notices[0]
    for name, header in _headers(tmp_path / "shipped-runs").items():
        assert header["resolved"]["model_sampling_defaults"] == {"do_sample": True, "temperature": 0.2, "top_p": 0.5,
                                                                 "repetition_penalty": 1.3, "applied": False}
    # never applied: the same tokens as the model without them, greedy and sampled alike
    def tokens(out: Path) -> dict:
        return {(h, line["prompt_id"], line["sample_index"]): line["token_ids"]
                for h in ("greedy", "top-k") for line in map(json.loads, next(
                    p for p in out.glob("*/generations.jsonl")
                    if json.loads((p.parent / "header.json").read_text())["spec"]["decoder"]["name"] == h
                ).read_text().splitlines())}
    assert tokens(tmp_path / "plain") == tokens(tmp_path / "shipped-runs")


def test_the_fake_backend_records_its_engine_parameters(tmp_path: Path, suite: Path) -> None:
    result = CliRunner().invoke(main, ["run", "--backend", "fake", "--suite", str(suite), "--decoder", "top-k:k=7",
                                       "--max-new-tokens", "4", "--out", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    applied = _headers(tmp_path / "runs")["top-k"]["resolved"]["applied"]
    assert applied == {"backend": "fake", "max_new_tokens": 4,
                       "engine_params": {"temperature": 1.0, "top_k": 7, "top_p": 1.0, "min_p": 0.0}}


def test_the_openai_body_and_vllm_sampling_params_are_described() -> None:
    from bench.backends.openai import OpenAIBackend
    from bench.specs import build_decoder, parse_decoder

    backend = OpenAIBackend("http://u:pw@127.0.0.1:9", "m", concurrency=1)
    applied = backend.applied(build_decoder(parse_decoder("top-p:p=0.8")), 16)
    assert applied["url"] == "http://***@127.0.0.1:9/v1/completions"
    assert applied["body"]["top_p"] == 0.8 and applied["body"]["seed"] == "the record's seed"
    assert applied["body"]["prompt"] == "<the prompt>" and applied["body"]["max_tokens"] == 16
