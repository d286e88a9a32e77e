"""Backends other than HF: the decoder -> engine-parameter mapping, the OpenAI-compatible backend
against a real HTTP server on loopback (stories260K behind it), and vLLM integration tests that
run only where vLLM and a CUDA GPU are present."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from bench.backends import backend_class, plan_backend
from bench.decoding import EngineParams
from bench.errors import BenchError
from bench.specs import build_decoder, declare, parse_decoder


def engine(params: EngineParams) -> tuple:
    """The engine parameters as comparable values."""
    return (params.temperature, params.top_k, params.top_p, params.min_p, params.logit_bias, params.transform)


def refusal(spec, backend: str):
    return backend_class(backend).refusal(declare(spec))


def check_decoders(specs, backend: str) -> None:
    """Plan the named decoders on ``backend`` (explicit names: a refusal raises)."""
    from types import SimpleNamespace

    options = SimpleNamespace(backend=backend, decoders=tuple(s.label for s in specs))
    plan_backend(options, specs, [])

PROMPTS = ["Once upon a time", "The little dog", "Lily and Tom went to the park", "One day, a bird"]


# ---------------------------------------------------------------------------------------------
# A real OpenAI-compatible server: /v1/models and /v1/completions, generating with our HF backend.
# ---------------------------------------------------------------------------------------------
class CompletionServer:
    """``ThreadingHTTPServer`` on 127.0.0.1 (free port) serving ``model_id`` with stories260K.

    ``failures`` is consumed one item per completion request: an int answers with that HTTP
    status, a float sleeps that many seconds first (to trigger client timeouts).
    """

    def __init__(self, model_dir: str, model_id: str, *, return_ids: bool = False, logprobs: bool = True):
        from bench.backends.hf import HFBackend

        self.backend = HFBackend(model_dir, device="cpu", dtype="float32")
        self.model_id, self.return_ids, self.logprobs = model_id, return_ids, logprobs
        self.failures: list[int | float] = []
        self.requests: list[dict] = []
        self.auth: list[str | None] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path.rstrip("/") == "/v1/models":
                    self._send(200, {"object": "list", "data": [{"id": server.model_id, "object": "model"}]})
                else:
                    self._send(404, {"error": "not found"})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with server.lock:
                    server.requests.append(body)
                    server.auth.append(self.headers.get("Authorization"))
                    failure = server.failures.pop(0) if server.failures else None
                if isinstance(failure, int):
                    return self._send(failure, {"error": {"message": f"injected {failure}"}})
                if isinstance(failure, float):
                    time.sleep(failure)
                if self.path != "/v1/completions" or body.get("model") != server.model_id:
                    return self._send(404, {"error": {"message": "unknown model"}})
                self._send(200, server.complete(body))

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # a client that timed out left before the delayed answer: not this test's output

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def complete(self, body: dict) -> dict:
        temperature = float(body.get("temperature", 1.0))
        if temperature == 0:
            decoder = build_decoder(parse_decoder("greedy"))
        elif "top_k" in body:
            decoder = build_decoder(parse_decoder(f"top-k:k={body['top_k']},t={temperature}"))
        else:
            decoder = build_decoder(parse_decoder(f"top-p:p={body.get('top_p', 1.0)},t={temperature}"))
        with self.lock:  # one generation at a time on the shared model
            out = self.backend.continue_batch([body["prompt"]], decoder, max_new_tokens=int(body["max_tokens"]),
                                              seeds=[int(body.get("seed", 0))])[0]
        # Text as servers stream it: decoded after the prompt, so a leading space is kept.
        prompt_ids = self.backend.encode([body["prompt"]])[0]
        head = self.backend.tokenizer.decode(prompt_ids, skip_special_tokens=True)
        text = self.backend.tokenizer.decode(prompt_ids + out.token_ids, skip_special_tokens=True)[len(head):]
        choice = {"index": 0, "text": text,
                  "finish_reason": "length" if out.finish_reason == "length" else "stop"}
        if self.return_ids and body.get("return_token_ids"):
            choice["token_ids"] = out.token_ids
        if self.logprobs and body.get("logprobs"):
            choice["logprobs"] = self.logprobs_of(prompt_ids, out.token_ids, int(body["logprobs"]),
                                                  bool(body.get("return_tokens_as_token_ids")))
        return {"object": "text_completion", "model": self.model_id, "choices": [choice],
                "usage": {"prompt_tokens": 0, "completion_tokens": len(out.token_ids)}}

    def logprobs_of(self, prompt_ids: list[int], ids: list[int], k: int, as_ids: bool) -> dict:
        """OpenAI's legacy ``logprobs`` as vLLM fills it: per token its log-probability and the top
        ``k`` (plus the chosen token when it is not among them), keyed ``token_id:N`` or by text."""
        import torch

        key = (lambda t: f"token_id:{t}") if as_ids else (lambda t: self.backend.tokenizer.decode([t]))
        with self.lock, torch.inference_mode():
            logits = self.backend.model(input_ids=torch.tensor([prompt_ids + ids])).logits[0].float()
        steps = logits[len(prompt_ids) - 1:len(prompt_ids) - 1 + len(ids)].log_softmax(-1)
        tokens, chosen, tops = [], [], []
        for step, t in zip(steps, ids):
            values, index = step.topk(k)
            top = {key(int(i)): float(v) for v, i in zip(values, index)}
            top.setdefault(key(t), float(step[t]))
            tokens.append(key(t))
            chosen.append(float(step[t]))
            tops.append(top)
        return {"tokens": tokens, "token_logprobs": chosen, "top_logprobs": tops}

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture(scope="module")
def server(stories260k):
    s = CompletionServer(stories260k, stories260k, return_ids=True)  # as vLLM answers return_token_ids
    yield s
    s.close()


@pytest.fixture()
def fresh(server):
    server.failures.clear()
    server.requests.clear()
    server.auth.clear()
    return server


@pytest.fixture(scope="module")
def suite_file(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("suite") / "prompts.jsonl"
    path.write_text("".join(json.dumps({"id": f"p{i}", "prompt": p}) + "\n" for i, p in enumerate(PROMPTS)))
    return str(path)


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# Decoder -> engine parameters
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("greedy", EngineParams(0.0)),
    ("temperature:t=0.7", EngineParams(0.7)),
    ("top-p:p=0.9,t=0.8", EngineParams(0.8, top_p=0.9)),
    ("top-k:k=5,t=1.2", EngineParams(1.2, top_k=5)),
])
def test_sampling_request_of_engine_decoders(text, expected):
    spec = parse_decoder(text)
    assert engine(build_decoder(spec).engine_params()) == engine(expected)
    assert refusal(spec, "vllm") is None and refusal(spec, "openai") is None


def test_entropy_matched_global_sends_the_calibrated_temperature():
    decoder = build_decoder(parse_decoder("entropy-matched:target=1.5"))
    with pytest.raises(RuntimeError, match="calibrate"):
        decoder.engine_params()  # T* does not exist before calibration
    decoder.temperature = 0.6173
    assert engine(decoder.engine_params()) == engine(EngineParams(0.6173))


@pytest.mark.parametrize("text, backend, needle", [
    ("contrastive", "vllm", "--backend hf"),
    ("contrastive:k=4,alpha=0.5", "openai", "--backend hf"),
    ("static-reweight", "openai", "--backend hf"),
    ("entropy-matched:target=1.5,mode=per-step", "openai", "--backend hf"),
    ("greedy-hyperfit", "openai", "--backend hf or vllm"),
])
def test_decoders_an_engine_cannot_run_are_refused(text, backend, needle):
    reason = refusal(parse_decoder(text), backend)
    assert reason is not None and needle in reason and "\n" not in reason
    with pytest.raises(BenchError, match=needle):
        check_decoders([parse_decoder("greedy"), parse_decoder(text)], backend)


@pytest.mark.parametrize("text", ["static-reweight", "static-reweight:greedy=true",
                                  "entropy-matched:target=1.5,mode=per-step"])
def test_vllm_runs_bias_and_transform_decoders(text):
    """issue 13: a fixed logit bias and per-step transforms run inside the engine (a logits processor)."""
    assert refusal(parse_decoder(text), "vllm") is None


def test_vllm_sampling_kwargs_and_outputs():
    from bench.backends.vllm import sampling_kwargs, split_output

    greedy = sampling_kwargs(EngineParams(0.0), seed=7, max_new_tokens=9, stop_token_ids=[2])
    assert greedy == {"n": 1, "max_tokens": 9, "temperature": 0.0, "stop_token_ids": [2], "skip_special_tokens": True}
    big = (1 << 64) + 5
    sampled = sampling_kwargs(EngineParams(0.8, top_k=5), seed=big, max_new_tokens=9, stop_token_ids=[2])
    assert sampled["seed"] == big % (1 << 63) and sampled["top_k"] == 5 and "top_p" not in sampled
    assert split_output([5, 6, 2], "stop", {2}).token_ids == [5, 6]
    assert split_output([5, 6, 2], "stop", {2}).finish_reason == "eos"
    assert split_output([5, 6, 7], "length", {2}).finish_reason == "length"


def test_vllm_resource_checks():
    from bench.backends.vllm import check_resources

    check_resources(2, 0.9, gpus=2)
    with pytest.raises(BenchError, match="--tensor-parallel-size 4 needs 4 CUDA GPU"):
        check_resources(4, 0.9, gpus=1)
    with pytest.raises(BenchError, match="--gpu-memory-utilization"):
        check_resources(1, 1.5, gpus=1)


def _run(args: list[str]):
    from bench.cli import main

    return CliRunner().invoke(main, ["run", *args], catch_exceptions=False)


def test_cli_refuses_an_engine_decoder_before_any_work(stories260k, suite_file, tmp_path):
    out = tmp_path / "runs"
    result = _run(["--backend", "vllm", "--model", stories260k, "--suite", suite_file, "--decoder", "contrastive",
                   "--out", str(out)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [result.output.strip()] and "--backend hf" in result.output
    assert not out.exists()


@pytest.mark.skipif(bool(__import__("importlib").util.find_spec("vllm")) and __import__("torch").cuda.device_count() >= 8,
                    reason="this machine has 8 GPUs and vLLM: the request would be valid")
def test_cli_refuses_a_tensor_parallel_size_larger_than_the_gpus(stories260k, suite_file, tmp_path):
    result = _run(["--backend", "vllm", "--tensor-parallel-size", "8", "--model", stories260k, "--suite", suite_file,
                   "--decoder", "greedy", "--out", str(tmp_path / "runs")])
    assert result.exit_code == 2 and "needs 8 CUDA GPU(s)" in result.output
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------------------------------------
# The OpenAI-compatible backend against the loopback server
# ---------------------------------------------------------------------------------------------
def test_openai_greedy_matches_the_hf_backend(fresh, stories260k):
    from bench.backends.openai import OpenAIBackend, local_tokenizer

    backend = OpenAIBackend(fresh.url, stories260k, tokenizer=local_tokenizer(stories260k, None), concurrency=3)
    greedy = build_decoder(parse_decoder("greedy"))
    got = backend.continue_batch(PROMPTS, greedy, max_new_tokens=12, seeds=[0] * len(PROMPTS))
    want = fresh.backend.continue_batch(PROMPTS, greedy, max_new_tokens=12, seeds=[0] * len(PROMPTS))
    assert [g.text for g in got] == [fresh.backend.decode(w.token_ids) for w in want]
    assert [g.num_tokens for g in got] == [len(w.token_ids) for w in want]  # usage, not re-tokenization
    assert all(b["temperature"] == 0.0 and b["max_tokens"] == 12 and "top_k" not in b for b in fresh.requests)


def test_openai_retries_429_5xx_and_timeouts(fresh, stories260k):
    from bench.backends.openai import OpenAIBackend

    backend = OpenAIBackend(fresh.url, stories260k, concurrency=1, timeout=0.5, backoff=0.01)
    fresh.failures.extend([500, 429, 503, 1.5])  # the 1.5 s delay outlasts the 0.5 s timeout
    out = backend.continue_batch(PROMPTS[:1], build_decoder(parse_decoder("greedy")), max_new_tokens=5, seeds=[0])
    assert backend.retries == 4 and len(fresh.requests) == 5
    assert out[0].text and out[0].num_tokens == 5


def test_openai_gives_up_with_one_line(fresh, stories260k):
    from bench.backends.openai import OpenAIBackend

    backend = OpenAIBackend(fresh.url, stories260k, concurrency=1, max_retries=2, backoff=0.01)
    fresh.failures.extend([502, 502, 502])
    with pytest.raises(BenchError, match="HTTP 502"):
        backend.continue_batch(PROMPTS[:1], build_decoder(parse_decoder("greedy")), max_new_tokens=5, seeds=[0])
    fresh.failures[:] = [400]
    with pytest.raises(BenchError, match="HTTP 400"):  # not retried
        backend.continue_batch(PROMPTS[:1], build_decoder(parse_decoder("greedy")), max_new_tokens=5, seeds=[0])
    assert len(fresh.requests) == 4


def test_openai_seeded_sampling_is_reproducible(fresh, stories260k):
    from bench.backends.openai import OpenAIBackend

    backend = OpenAIBackend(fresh.url, stories260k, concurrency=4)
    top_k = build_decoder(parse_decoder("top-k:k=20,t=1.0"))
    seeds = [11, 12, 13, 11]
    a = backend.continue_batch(PROMPTS[:3] + PROMPTS[:1], top_k, max_new_tokens=16, seeds=seeds)
    b = backend.continue_batch(PROMPTS[:3] + PROMPTS[:1], top_k, max_new_tokens=16, seeds=seeds)
    assert [x.text for x in a] == [x.text for x in b]
    assert a[0].text == a[3].text  # same prompt, same seed
    assert {r["top_k"] for r in fresh.requests} == {20} and sorted(r["seed"] for r in fresh.requests[:4]) == sorted(seeds)


def test_openai_token_ids_from_the_server_or_usage_only(stories260k):
    from bench.backends.openai import OpenAIBackend, local_tokenizer

    remote = CompletionServer(stories260k, "remote-model", return_ids=True)
    try:
        greedy = build_decoder(parse_decoder("greedy"))
        assert local_tokenizer("remote-model", None) is None  # not loadable here
        with_ids = OpenAIBackend(remote.url, "remote-model").continue_batch(PROMPTS[:2], greedy, max_new_tokens=8, seeds=[0, 0])
        want = remote.backend.continue_batch(PROMPTS[:2], greedy, max_new_tokens=8, seeds=[0, 0])
        assert [c.token_ids for c in with_ids] == [w.token_ids for w in want]
        remote.return_ids = False
        no_ids = OpenAIBackend(remote.url, "remote-model").continue_batch(PROMPTS[:2], greedy, max_new_tokens=8, seeds=[0, 0])
        assert all(c.token_ids is None and c.num_tokens == len(w.token_ids) for c, w in zip(no_ids, want))
        assert [c.text for c in no_ids] == [c.text for c in with_ids]
    finally:
        remote.close()


def test_bench_run_openai_end_to_end_with_key_and_resume(fresh, stories260k, suite_file, tmp_path, monkeypatch):
    from bench.backends.hf import HFBackend
    from bench.store import RunStore

    monkeypatch.setenv("DECBENCH_TEST_KEY", "sk-test-secret-123")
    out = tmp_path / "runs"
    args = ["--backend", "openai", "--base-url", fresh.url.removesuffix("/v1"), "--api-key-env", "DECBENCH_TEST_KEY",
            "--model", stories260k, "--suite", suite_file, "--decoder", "greedy", "--decoder", "top-p:p=0.9",
            "--max-new-tokens", "10", "--samples-per-prompt", "2", "--batch-size", "3", "--out", str(out)]
    first = _run(args)
    assert first.exit_code == 0, first.output
    assert set(fresh.auth) == {"Bearer sk-test-secret-123"}
    for path in out.rglob("*"):
        if path.is_file():
            assert "sk-test-secret" not in path.read_text(errors="replace")
    runs = {r.spec().decoder.name: r for r in RunStore(out).runs()}
    assert {r.spec().backend for r in runs.values()} == {"openai"} and runs["greedy"].spec().dtype == "served"
    hf = HFBackend(stories260k, device="cpu", dtype="float32")
    want = hf.continue_batch(PROMPTS, build_decoder(parse_decoder("greedy")), max_new_tokens=10, seeds=[0] * 4)
    records = {(r["prompt_id"], r["sample_index"]): r for r in runs["greedy"].records()}
    for i, w in enumerate(want):
        assert records[(f"p{i}", 1)]["continuation"] == hf.decode(w.token_ids)
    sampled = runs["top-p"].records()
    assert len(sampled) == 8 and all(r["seed"] is not None for r in sampled)
    # Resume: drop half of the sampled records; the rerun regenerates exactly those, identically.
    gen = runs["top-p"].path / "generations.jsonl"
    lines = gen.read_text().splitlines(keepends=True)
    gen.write_text("".join(lines[:4]))
    fresh.requests.clear()
    again = _run(args)
    assert again.exit_code == 0, again.output
    assert len(fresh.requests) == 4
    key = lambda r: (r["prompt_id"], r["sample_index"])
    assert sorted((key(r), r["continuation"]) for r in runs["top-p"].records()) == \
        sorted((key(r), r["continuation"]) for r in sampled)


def test_unreachable_server_exits_2_before_any_work(stories260k, suite_file, tmp_path):
    out = tmp_path / "runs"
    result = _run(["--backend", "openai", "--base-url", f"http://127.0.0.1:{closed_port()}/v1", "--model", stories260k,
                   "--suite", suite_file, "--decoder", "greedy", "--out", str(out)])
    assert result.exit_code == 2 and "cannot reach the server" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not out.exists()


def test_openai_needs_base_url_and_a_served_model(fresh, stories260k, suite_file, tmp_path):
    no_url = _run(["--backend", "openai", "--model", stories260k, "--suite", suite_file, "--decoder", "greedy",
                   "--out", str(tmp_path / "a")])
    assert no_url.exit_code == 2 and "--base-url" in no_url.output
    wrong = _run(["--backend", "openai", "--base-url", fresh.url, "--model", "gpt-other", "--suite", suite_file,
                  "--decoder", "greedy", "--out", str(tmp_path / "b")])
    assert wrong.exit_code == 2 and "is not served" in wrong.output and not (tmp_path / "b").exists()


# ---------------------------------------------------------------------------------------------
# vLLM integration (a CUDA GPU with vLLM installed)
# ---------------------------------------------------------------------------------------------
def _vllm_missing() -> str | None:
    import importlib.util

    import torch

    if importlib.util.find_spec("vllm") is None:
        return "vllm is not installed (pip install 'decbench[vllm]' on a CUDA machine)"
    if not torch.cuda.is_available():
        return "no CUDA device"
    return None


needs_vllm = pytest.mark.skipif(_vllm_missing() is not None, reason=str(_vllm_missing()))


@pytest.fixture(scope="module")
def vllm_backend(stories260k):
    from bench.backends.vllm import VLLMBackend

    return VLLMBackend(stories260k, dtype="float32", gpu_memory_utilization=0.3)


@pytest.mark.gpu
@needs_vllm
def test_vllm_greedy_agrees_with_hf(vllm_backend, stories260k):
    from bench.backends.hf import HFBackend

    hf = HFBackend(stories260k, device="cuda", dtype="float32")
    greedy = build_decoder(parse_decoder("greedy"))
    got = vllm_backend.continue_batch(PROMPTS, greedy, max_new_tokens=24, seeds=[0] * 4)
    want = hf.continue_batch(PROMPTS, greedy, max_new_tokens=24, seeds=[0] * 4)
    assert [g.token_ids for g in got] == [w.token_ids for w in want]


@pytest.mark.gpu
@needs_vllm
def test_vllm_seeded_sampling_is_reproducible(vllm_backend):
    top_p = build_decoder(parse_decoder("top-p:p=0.9"))
    a = vllm_backend.continue_batch(PROMPTS, top_p, max_new_tokens=24, seeds=[1, 2, 3, 4])
    b = vllm_backend.continue_batch(PROMPTS[::-1], top_p, max_new_tokens=24, seeds=[4, 3, 2, 1])
    assert [x.token_ids for x in a] == [x.token_ids for x in b[::-1]]  # per-request seeds, batch order irrelevant


@pytest.mark.gpu
@needs_vllm
def test_vllm_run_resumes(stories260k, suite_file, tmp_path):
    from bench.store import RunStore

    out = tmp_path / "runs"
    args = ["--backend", "vllm", "--gpu-memory-utilization", "0.3", "--dtype", "float32", "--model", stories260k,
            "--suite", suite_file, "--decoder", "temperature:t=0.9", "--max-new-tokens", "16",
            "--samples-per-prompt", "2", "--out", str(out)]
    assert _run(args).exit_code == 0
    run = RunStore(out).runs()[0]
    assert run.spec().backend == "vllm"
    full = sorted((r["prompt_id"], r["sample_index"], r["continuation"]) for r in run.records())
    gen = run.path / "generations.jsonl"
    gen.write_text("".join(gen.read_text().splitlines(keepends=True)[:3]))
    assert _run(args).exit_code == 0
    assert sorted((r["prompt_id"], r["sample_index"], r["continuation"]) for r in run.records()) == full


def test_openai_entropy_matched_sends_the_calibrated_temperature(fresh, stories260k, suite_file, tmp_path):
    from bench.store import RunStore

    result = _run(["--backend", "openai", "--base-url", fresh.url, "--model", stories260k, "--suite", suite_file,
                   "--decoder", "entropy-matched:target=1.0,calib_prompts=2,calib_tokens=4", "--max-new-tokens", "6",
                   "--out", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    (run,) = RunStore(tmp_path / "runs").runs()
    t_star = run.header()["resolved"]["temperature"]  # calibrated on the HF backend
    assert {round(r["temperature"], 6) for r in fresh.requests} == {t_star} and t_star != 1.0
    assert len(fresh.requests) == len(PROMPTS)  # calibration did not go through the server


def test_decoder_all_skips_what_the_engine_cannot_run(fresh, stories260k, suite_file):
    from bench.planning import RunOptions, plan

    options = RunOptions(models=(stories260k,), decoders=("all",), suites=(suite_file,), backend="openai",
                         base_url=fresh.url)
    the_plan = plan(options)
    names = {r.spec.decoder.name for r in the_plan.runs}
    assert names == {"greedy", "temperature", "top-p", "top-k"}
    assert any(name == "contrastive" and "--backend hf" in why for name, why in the_plan.skipped)
    assert {r.spec.backend for r in the_plan.runs} == {"openai"}


def test_hf_and_openai_rows_side_by_side(fresh, stories260k, suite_file, tmp_path):
    import csv

    common = ["--model", stories260k, "--suite", suite_file, "--decoder", "greedy", "--max-new-tokens", "6",
              "--out", str(tmp_path / "runs")]
    assert _run(common).exit_code == 0
    assert _run(["--backend", "openai", "--base-url", fresh.url, *common]).exit_code == 0
    rows = [r for r in csv.DictReader(open(tmp_path / "runs" / "leaderboard.csv")) if r["decoder"] == "greedy"]
    assert sorted(r["backend"].split("-")[0] for r in rows) == ["hf", "openai"]
    assert rows[0]["tokens_sha"] == rows[1]["tokens_sha"]  # same greedy tokens through both backends
