"""The pairwise judge against llm-katan: a real OpenAI-compatible server (FastAPI + uvicorn) on loopback.

``test_judge.py`` drives the judge with a scripted server whose faults are exact; here the server is
a third-party one. Its transformers backend serves stories260K, so the answers are a real model's
(checked against the same model run directly), and its echo backend's failure simulation (random
HTTP 500s, 429 after N requests) exercises the retries and the "verdicts kept" path.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("llm_katan", reason="needs llm-katan (pip install 'decbench[dev]')")
pytest.importorskip("httpx", reason="the endpoint judge needs httpx (pip install 'decbench[judge]')")

from bench.errors import BenchError  # noqa: E402
from bench.judge import JudgeSettings  # noqa: E402
from bench.judge.pairwise import judge_records  # noqa: E402
from bench.judge.template import load_template  # noqa: E402

KEY_ENV = "BENCH_TEST_KATAN_KEY"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def katan(tmp_path, monkeypatch):
    """Start llm-katan with the given arguments; returns its /v1 URL. Stopped after the test."""
    import httpx

    monkeypatch.setenv(KEY_ENV, "sk-katan-test")  # llm-katan wants an Authorization header
    procs = []

    def start(*args: str) -> str:
        port = _free_port()
        exe = Path(sys.executable).with_name("llm-katan")
        log = open(tmp_path / f"katan-{port}.log", "w")
        procs.append(subprocess.Popen(
            [str(exe), "--host", "127.0.0.1", "--port", str(port), "--served-model-name", "judge",
             "--stats-file", str(tmp_path / f"stats-{port}.json"), "--disable-dashboard", "--log-level", "WARNING",
             *args],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"}))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if procs[-1].poll() is not None:
                pytest.fail(f"llm-katan exited: {(tmp_path / f'katan-{port}.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    return f"http://127.0.0.1:{port}/v1"
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        pytest.fail("llm-katan did not start within 120 s")

    yield start
    for p in procs:
        p.terminate()
        p.wait(timeout=30)


def runs(n: int):
    prompts = [f"Once upon a time, a cat named Tom {i}" for i in range(n)]
    a = [{"prompt_id": f"p{i}", "sample_index": 0, "prompt": p, "continuation": f" saw a big red ball {i}."}
         for i, p in enumerate(prompts)]
    b = [{"prompt_id": f"p{i}", "sample_index": 0, "prompt": p, "continuation": f" was sad sad sad {i}."}
         for i, p in enumerate(prompts)]
    return a, b


def settings(tmp_path: Path, url: str, **kw) -> JudgeSettings:
    base = dict(cache=str(tmp_path / "verdicts.jsonl"), url=url, model="judge", key_env=KEY_ENV, concurrency=2,
                max_retries=3, backoff=0.001, max_backoff=0.01, timeout=60.0, max_tokens=8, n_boot=100)
    base.update(kw)
    return JudgeSettings(**base)


def test_judge_through_llm_katan_serving_stories260k(katan, tmp_path, stories260k):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    url = katan("--model", stories260k, "--backend", "transformers", "--device", "cpu", "--no-quantize",
                "--temperature", "0", "--max-tokens", "8")
    a, b = runs(2)
    res = judge_records(a, b, settings(tmp_path, url))  # the client asks for temperature 0: greedy
    assert res["requests"] == 4 and res["valid"] + res["invalid"] == 2
    entries = [json.loads(line) for line in (tmp_path / "verdicts.jsonl").read_text().splitlines()]
    assert len(entries) == 4
    # each answer is stories260K's own greedy continuation of llm-katan's prompt (it has no chat
    # template, so llm-katan joins the messages as "System: ...\nUser: ...\nAssistant:")
    tok = AutoTokenizer.from_pretrained(stories260k)
    model = AutoModelForCausalLM.from_pretrained(stories260k).eval()
    template = load_template()
    system, user = template.render(a[0]["prompt"], a[0]["continuation"], b[0]["continuation"])
    prompt = f"System: {system}\nUser: {user}\nAssistant:"
    ids = tok(prompt, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=8, do_sample=False, pad_token_id=tok.eos_token_id)
    expected = tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    assert expected and expected in {e["answer"] for e in entries}
    # a second run is served from the verdict cache: llm-katan is not asked again
    assert judge_records(a, b, settings(tmp_path, url))["requests"] == 0


def test_retries_through_llm_katan_failure_simulation(katan, tmp_path):
    # 70% of requests fail with HTTP 500; with 60 retries a request fails for good with p = 0.7**61
    url = katan("--model", "echo", "--backend", "echo", "--error-rate", "0.7")
    a, b = runs(4)
    res = judge_records(a, b, settings(tmp_path, url, max_retries=60))
    assert res["valid"] + res["invalid"] == 4  # every pair judged in both orders despite the errors
    assert res["retries"] > 0 and res["requests"] == 8 + res["retries"]  # P(no retry at all) = 0.3**8 < 1e-4


def test_rate_limited_llm_katan_keeps_verdicts(katan, tmp_path):
    url = katan("--model", "echo", "--backend", "echo", "--rate-limit-after", "3")  # then 429 for good
    a, b = runs(4)
    s = settings(tmp_path, url, concurrency=1, max_retries=2)
    with pytest.raises(BenchError, match=r"failed after 2 retries \(HTTP 429\); 3 verdicts kept"):
        judge_records(a, b, s)
    assert len((tmp_path / "verdicts.jsonl").read_text().splitlines()) == 3
