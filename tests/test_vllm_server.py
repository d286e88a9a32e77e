"""``--backend openai`` and the judge against a real vLLM OpenAI-compatible server (marker ``vllm``).

The tests start ``python -m vllm.entrypoints.openai.api_server`` on 127.0.0.1 (a port from the
OS) serving stories260K-hd32 in float32. It has no chat template, as many base models do not.
Its context is stretched to 2048 positions (``VLLM_ALLOW_LONG_MAX_MODEL_LEN``) so the judge's
default rubric fits; the backend comparisons stay within the model's 512 positions.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from vllm_support import env, needs_vllm

pytestmark = needs_vllm

STORY_PROMPTS = ["Once upon a time", "The little dog", "Lily and Tom went to the park", "One day, a bird",
                 "Tim had a red ball", "The sun was hot", "Mom said", "A big fish", "There was a girl named Sue",
                 "The cat and the mouse", "Ben wanted to fly", "In the garden", "The old tree", "Sam found a box",
                 "It was a rainy day", "The king had a crown"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(shared: Path, tmp_path_factory):
    """(base URL ending in /v1, served model name); the server is stopped after the module."""
    import httpx

    model = str(shared / "models" / "stories260K-hd32")
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model, "--host", "127.0.0.1",
         "--port", str(port), "--dtype", "float32", "--enforce-eager", "--max-model-len", "2048", "--seed", "0"],
        # One unbound thread, as the test session's torch has (tests/conftest.py): a tiny model is
        # per-op overhead, and two spinning OpenMP threads crawl on a busy 2-core machine.
        env=dict(env(), VLLM_ALLOW_LONG_MAX_MODEL_LEN="1", VLLM_CPU_KVCACHE_SPACE="1",
                 VLLM_CPU_OMP_THREADS_BIND="nobind", OMP_NUM_THREADS="1"),
        stdout=log.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 900
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the vLLM server exited ({proc.returncode}): {log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the vLLM server did not answer within 900 s: {log.read_text()[-3000:]}")
            time.sleep(1)
        yield url, model
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def suite_file(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("suite") / "stories.jsonl"
    path.write_text("".join(json.dumps({"id": f"s{i}", "prompt": p}) + "\n" for i, p in enumerate(STORY_PROMPTS)))
    return str(path)


def bench(*args: str):
    from bench.cli import main

    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_greedy_ids_come_from_the_server_and_equal_hf_at_400_tokens(server):
    from bench.backends.hf import HFBackend
    from bench.backends.openai import OpenAIBackend, local_tokenizer
    from bench.specs import build_decoder, parse_decoder

    url, model = server
    greedy = build_decoder(parse_decoder("greedy"))
    served = OpenAIBackend(url, model, tokenizer=local_tokenizer(model, None), concurrency=4)
    got = served.continue_batch(STORY_PROMPTS, greedy, max_new_tokens=400, seeds=[0] * 16)
    hf = HFBackend(model, device="cpu", dtype="float32")
    want = hf.continue_batch(STORY_PROMPTS, greedy, max_new_tokens=400, seeds=[0] * 16)
    same = sum(g.token_ids == w.token_ids for g, w in zip(got, want))
    print(f"\nopenai backend on vLLM's server, greedy 16 x 400: {same}/16 token-equal to HF float32")
    assert same == 16
    assert all(g.num_tokens == len(g.token_ids) for g in got)
    assert [g.text for g in got] == [hf.decode(w.token_ids) for w in want]


def test_server_traces_from_vllms_logprobs_equal_the_models_own(server):
    """--log-probs-from server on vLLM's answer: log-probabilities as the local model computes them
    for the same tokens, ranks exact (greedy: 1; top-k=5: at most 5), entropies a lower bound."""
    from bench.backends.hf import HFBackend
    from bench.backends.openai import OpenAIBackend, local_tokenizer
    from bench.specs import build_decoder, parse_decoder
    from bench.traces import token_traces

    url, model = server
    served = OpenAIBackend(url, model, tokenizer=local_tokenizer(model, None), concurrency=4, server_traces=True)
    hf = HFBackend(model, device="cpu", dtype="float32")
    for decoder, worst in (("greedy", 1), ("top-k:k=5", 5)):
        got = served.continue_batch(STORY_PROMPTS, build_decoder(parse_decoder(decoder)), max_new_tokens=24,
                                    seeds=list(range(16)))
        exact = token_traces(hf, STORY_PROMPTS, [g.token_ids for g in got])
        gap = max(abs(a - b) for g, e in zip(got, exact) for a, b in zip(g.trace["log_probs"], e["log_probs"]))
        print(f"\nvLLM logprobs, {decoder} 16 x 24: largest |log p| gap to the HF model {gap:.2e}")
        assert gap < 1e-3
        for g, e in zip(got, exact):
            assert len(g.trace["log_probs"]) == len(g.token_ids) and g.trace["source"] == "server"
            assert all(r is not None and r <= worst for r in g.trace["ranks"]), g.trace["ranks"]
            assert all(lo <= h + 1e-3 for lo, h in zip(g.trace["entropies"], e["entropies"]))


def test_ids_from_the_server_even_without_a_local_tokenizer(server):
    """A served name that does not load here: ids still come from the server (none were stored before)."""
    from bench.backends.openai import OpenAIBackend
    from bench.specs import build_decoder, parse_decoder

    url, model = server
    served = OpenAIBackend(url, model, tokenizer=None)
    out = served.continue_batch(STORY_PROMPTS[:2], build_decoder(parse_decoder("greedy")), max_new_tokens=20,
                                seeds=[0, 0])
    assert all(c.token_ids and c.num_tokens == len(c.token_ids) for c in out)


def test_the_judge_runs_through_the_server_with_a_chat_template_option(server, suite_file, tmp_path):
    url, model = server
    out = tmp_path / "runs"
    run = bench("run", "--backend", "openai", "--base-url", url, "--model", model, "--suite", suite_file,
                "--num-prompts", "4", "--decoder", "greedy", "--decoder", "top-k:k=20", "--max-new-tokens", "24",
                "--judge-against", "greedy", "--judge-url", url, "--judge-model", model,
                "--judge-chat-template", "plain", "--out", str(out))
    assert run.exit_code == 0, run.output
    from bench.store import RunStore

    runs = {r.spec().decoder.name: r for r in RunStore(out).runs()}
    judged = runs["top-k"].scores()["judge"]
    assert judged["opponent"].startswith("greedy") and judged["counts"]["pairs"] == 4
    a, b = (str(runs[name].path) for name in ("top-k", "greedy"))
    # Without a template the served model cannot chat: one line, exit 2.
    refused = bench("judge", a, b, "--judge-url", url, "--judge-model", model, "--max-tokens", "8",
                    "--cache", str(tmp_path / "c1.jsonl"))
    assert refused.exit_code == 2 and "HTTP 400" in refused.output
    assert len(refused.output.strip().splitlines()) == 1
    template = tmp_path / "chat.jinja"
    template.write_text("{% for m in messages %}{{ m['content'] }}\n\n{% endfor %}")
    judged = bench("judge", a, b, "--judge-url", url, "--judge-model", model, "--max-tokens", "8",
                   "--judge-chat-template", str(template), "--cache", str(tmp_path / "c2.jsonl"), "--json")
    assert judged.exit_code == 0, judged.output
    assert json.loads(judged.output)["pairs"] == 4
