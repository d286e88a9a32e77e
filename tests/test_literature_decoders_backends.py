"""Which backends run typical, eta, epsilon, min-p, beam and dola, decided at plan time.

min-p is an engine parameter: vLLM runs it natively (``SamplingParams(min_p=...)``). typical, eta
and epsilon are a per-step transform: only a backend that applies transforms (``hf``) runs them.
beam and dola need the model itself. Refusals are one line naming ``--backend hf``, before any
model is loaded or anything written.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from bench.backends import backend_class, plan_backend
from bench.errors import BenchError
from bench.specs import build_decoder, declare, parse_decoder


def refusal(text: str, backend: str) -> str | None:
    return backend_class(backend).refusal(declare(parse_decoder(text)))


@pytest.mark.parametrize("text", ["typical", "eta", "epsilon:t=0.8", "beam", "beam:n=2", "dola", "dola:layers=low"])
@pytest.mark.parametrize("backend", ["vllm", "openai", "fake"])
def test_what_an_engine_cannot_run_is_refused_naming_hf(text, backend):
    reason = refusal(text, backend)
    assert reason is not None and "run it with --backend hf" in reason and "\n" not in reason
    expected = "needs the model itself" if text.startswith(("beam", "dola")) else "uses transform"
    assert expected in reason
    with pytest.raises(BenchError, match="--backend hf"):
        plan_backend(SimpleNamespace(backend=backend, decoders=("greedy", text)),
                     [parse_decoder("greedy"), parse_decoder(text)], [])


@pytest.mark.parametrize("text", ["typical", "eta", "epsilon", "min-p", "beam", "dola"])
def test_hf_runs_every_one(text):
    assert refusal(text, "hf") is None


def test_min_p_runs_natively_on_vllm_and_is_refused_where_no_min_p():
    from bench.backends.vllm import sampling_kwargs

    assert refusal("min-p:p=0.05,t=1.5", "vllm") is None and refusal("min-p", "fake") is None
    kwargs = sampling_kwargs(build_decoder(parse_decoder("min-p:p=0.05,t=1.5")).engine_params(), seed=3,
                             max_new_tokens=8, stop_token_ids=[2])
    assert kwargs["min_p"] == 0.05 and kwargs["temperature"] == 1.5 and "top_p" not in kwargs and "top_k" not in kwargs
    reason = refusal("min-p", "openai")
    assert reason is not None and "uses min_p" in reason and "--backend hf" in reason


def test_cli_refuses_beam_on_vllm_before_any_work(stories260k, tmp_path):
    from bench.cli import main

    suite = tmp_path / "p.jsonl"
    suite.write_text(json.dumps({"id": "a", "prompt": "Once upon a time"}) + "\n")
    out = tmp_path / "runs"
    for decoder in ("beam:n=4", "typical"):
        result = CliRunner().invoke(main, ["run", "--backend", "vllm", "--model", stories260k, "--suite", str(suite),
                                           "--decoder", decoder, "--out", str(out)], catch_exceptions=False)
        assert result.exit_code == 2 and "--backend hf" in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1
    assert not out.exists()


def test_decoder_all_on_the_fake_backend_skips_them_with_reasons():
    options = SimpleNamespace(backend="fake", decoders=("all",), dtype="auto")
    names = ["typical", "eta", "epsilon", "min-p", "beam", "dola"]
    skipped: list = []
    kept, _, _ = plan_backend(options, [parse_decoder(n) for n in names], skipped)
    assert [s.name for s in kept] == ["min-p"]
    assert {name for name, _ in skipped} == {"typical", "eta", "epsilon", "beam", "dola"}
    assert all("--backend hf" in why for _, why in skipped)
