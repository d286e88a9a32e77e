"""Pairwise LLM judge against a real OpenAI-compatible HTTP server on loopback, with injected faults."""

from __future__ import annotations

import json
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("httpx", reason="the endpoint judge needs httpx (pip install 'decbench[judge]')")

from bench.cli import main  # noqa: E402
from bench.errors import BenchError  # noqa: E402
from bench.judge import JudgeSettings  # noqa: E402
from bench.judge.pairwise import combine, judge_records  # noqa: E402
from bench.judge.stats import sign_test, summarize  # noqa: E402
from bench.judge.template import load_template  # noqa: E402

SECRET = "sk-test-never-written-42"


class FakeOpenAI:
    """A chat/completions server: a judging policy plus a scripted list of faults.

    ``faults`` is consumed one entry per request: an int is an HTTP status to return, a float a
    delay in seconds before answering normally. ``policy`` maps the rendered user message to the
    answer text. Requests are counted; the server thread is a daemon and is shut down by the fixture.
    """

    def __init__(self, policy):
        self.policy, self.faults, self.requests, self.auth = policy, [], 0, set()
        self.fail_after: int | None = None  # answer 503 to every request after this many successes
        self.ok = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.requests += 1
                    outer.auth.add(self.headers.get("Authorization"))
                    fault = outer.faults.pop(0) if outer.faults else None
                    broken = outer.fail_after is not None and outer.ok >= outer.fail_after
                if isinstance(fault, float):
                    threading.Event().wait(fault)
                elif isinstance(fault, int) or broken:
                    self.send_response(fault if isinstance(fault, int) else 503)
                    self.send_header("Retry-After", "0")
                    self.end_headers()
                    return
                if self.path != "/v1/chat/completions":
                    self.send_response(404)
                    self.end_headers()
                    return
                user = body["messages"][-1]["content"]
                data = json.dumps({"id": "x", "object": "chat.completion", "model": body["model"], "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": outer.policy(user)}, "finish_reason": "stop"}]})
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(data.encode())
                except (BrokenPipeError, ConnectionResetError):
                    return  # the client timed out and left
                with outer.lock:
                    outer.ok += 1

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def prefers_good(user: str) -> str:
    """A consistent judge: picks the continuation containing GOOD, whatever its position."""
    a = user.split("[Continuation A]")[1].split("[Continuation B]")[0]
    return "Reasoning here.\nVerdict: A" if "GOOD" in a else "Verdict: B"


@pytest.fixture
def server():
    servers = []

    def make(policy=prefers_good):
        s = FakeOpenAI(policy)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


def runs(n=6):
    prompts = [f"Prompt number {i} about a cat." for i in range(n)]
    a = [{"prompt_id": f"p{i}", "sample_index": 0, "prompt": p, "continuation": f" GOOD text {i}."} for i, p in enumerate(prompts)]
    b = [{"prompt_id": f"p{i}", "sample_index": 0, "prompt": p, "continuation": f" bad bad bad {i}."} for i, p in enumerate(prompts)]
    return a, b


def settings(tmp_path: Path, url: str, **kw) -> JudgeSettings:
    base = dict(cache=str(tmp_path / "verdicts.jsonl"), url=url, model="judge-x", key_env="BENCH_TEST_JUDGE_KEY",
                concurrency=2, max_retries=3, backoff=0.01, max_backoff=0.05, timeout=5.0, n_boot=200)
    base.update(kw)
    return JudgeSettings(**base)


def test_consistent_judge_wins_and_order_swap(server, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_TEST_JUDGE_KEY", SECRET)
    srv = server()
    a, b = runs()
    res = judge_records(a, b, settings(tmp_path, srv.url))
    assert (res["wins_a"], res["wins_b"], res["ties"], res["invalid"]) == (6, 0, 0, 0)
    assert res["win_rate_a"] == 1.0 and res["sign_test_p"] == pytest.approx(2 / 64)
    assert srv.requests == 12  # every pair in both orders
    swapped = judge_records(b, a, settings(tmp_path, srv.url, cache=str(tmp_path / "other.jsonl")))
    assert (swapped["wins_a"], swapped["wins_b"]) == (0, 6)
    # the key went out in the header and was written nowhere
    assert f"Bearer {SECRET}" in srv.auth
    for f in tmp_path.iterdir():
        assert SECRET not in f.read_text()
    assert SECRET not in json.dumps(res)


def test_position_bias_is_a_tie(server, tmp_path):
    srv = server(lambda user: "Verdict: A")  # always the first shown: the orders disagree
    a, b = runs()
    res = judge_records(a, b, settings(tmp_path, srv.url))
    assert (res["wins_a"], res["wins_b"], res["ties"]) == (0, 0, 6)
    assert res["win_rate_a"] == 0.5 and res["sign_test_p"] == 1.0


def test_cache_resumes_and_never_pays_twice(server, tmp_path):
    srv = server()
    a, b = runs()
    s = settings(tmp_path, srv.url)
    first = judge_records(a, b, s)
    again = judge_records(a, b, s)
    assert srv.requests == 12 and again["requests"] == 0
    assert again["verdicts_cached_before"] == 12 and again["wins_a"] == first["wins_a"]
    # a new template version is a different key: judged again
    tpl = load_template().__dict__
    text = Path(load_template.__globals__["DEFAULT_TEMPLATE"]).read_text().replace('version = "1"', 'version = "2"')
    (tmp_path / "v2.toml").write_text(text)
    judge_records(a, b, settings(tmp_path, srv.url, template=str(tmp_path / "v2.toml")))
    assert srv.requests == 24 and tpl["version"] == "1"


def test_retries_on_429_500_and_timeouts(server, tmp_path):
    srv = server()
    srv.faults = [429, 500, 502, 0.6]  # three errors then one slow answer (timeout 0.3 s)
    a, b = runs(2)
    res = judge_records(a, b, settings(tmp_path, srv.url, concurrency=1, timeout=0.3, max_retries=4))
    assert res["wins_a"] == 2 and res["invalid"] == 0
    assert res["retries"] == 4 and res["requests"] == 8


def test_unreachable_after_retries_keeps_verdicts(server, tmp_path):
    srv = server()
    srv.fail_after = 3  # three answers, then 503 forever
    a, b = runs(4)
    s = settings(tmp_path, srv.url, concurrency=1, max_retries=2)
    with pytest.raises(BenchError, match=r"failed after 2 retries \(HTTP 503\); 3 verdicts kept"):
        judge_records(a, b, s)
    kept = [json.loads(line) for line in Path(s.cache).read_text().splitlines()]
    assert len(kept) == 3
    srv.fail_after = None
    before = srv.requests
    res = judge_records(a, b, s)
    assert srv.requests - before == 8 - 3 and res["wins_a"] == 4  # only the missing verdicts are paid for


def test_closed_port_and_cli_exit_2(tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    a, b = runs(2)
    for name, recs in (("a.jsonl", a), ("b.jsonl", b)):
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in recs))
    result = CliRunner().invoke(main, ["judge", str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl"),
                                       "--judge-url", f"http://127.0.0.1:{port}/v1", "--judge-model", "m",
                                       "--max-retries", "1", "--timeout", "1", "--cache", str(tmp_path / "c.jsonl")])
    assert result.exit_code == 2
    assert re.search(r"error: judge endpoint .* failed after 1 retries \(ConnectError", result.output)
    assert "Traceback" not in result.output


def test_invalid_answers_are_counted(server, tmp_path):
    srv = server(lambda user: "I cannot decide, both are lovely." if "0." in user else prefers_good(user))
    a, b = runs(3)
    res = judge_records(a, b, settings(tmp_path, srv.url))
    assert res["invalid"] == 1 and res["wins_a"] == 2 and res["valid"] == 2
    cached = [json.loads(line) for line in Path(tmp_path / "verdicts.jsonl").read_text().splitlines()]
    assert sum(e["verdict"] == "invalid" for e in cached) == 2  # both orders of the bad pair


def test_cli_end_to_end_and_bad_template(server, tmp_path):
    srv = server()
    a, b = runs(3)
    for name, recs in (("a.jsonl", a), ("b.jsonl", b)):
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in recs))
    args = ["judge", str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl"), "--judge-url", srv.url,
            "--judge-model", "m", "--cache", str(tmp_path / "c.jsonl")]
    result = CliRunner().invoke(main, args + ["--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["wins_a"] == 3 and out["run_a"] == "a"
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nversion = "1"\nsystem = "s"\nuser = "{context} {first}"\n')
    result = CliRunner().invoke(main, args + ["--template", str(bad)])
    assert result.exit_code == 2 and "lacks required field(s): answer_pattern, labels" in result.output
    bad.write_text(bad.read_text() + 'answer_pattern = "(A|B)"\n[labels]\nfirst="A"\nsecond="B"\ntie="tie"\n')
    result = CliRunner().invoke(main, args + ["--template", str(bad)])
    assert result.exit_code == 2 and "lacks placeholder(s) {second}" in result.output
    result = CliRunner().invoke(main, args[:3] + ["--cache", str(tmp_path / "c.jsonl")])
    assert result.exit_code == 2 and "exactly one judge" in result.output


def test_local_judge_missing_model_and_runs(tmp_path, stories260k):
    a, b = runs(2)
    with pytest.raises(BenchError, match="could not be loaded"):
        judge_records(a, b, JudgeSettings(cache=str(tmp_path / "c.jsonl"), local_model=str(tmp_path / "nope")))
    s = JudgeSettings(cache=str(tmp_path / "c.jsonl"), local_model=stories260k, max_tokens=8, device="cpu", n_boot=100)
    res = judge_records(a, b, s)
    assert res["requests"] == 4 and res["valid"] + res["invalid"] == 2
    assert judge_records(a, b, s)["requests"] == 0


def test_stats_and_combine():
    assert sign_test(9, 1) == pytest.approx(2 * 11 / 1024)
    assert sign_test(0, 0) == 1.0 and sign_test(5, 5) == 1.0
    s = summarize(["a"] * 6 + ["b"] * 2 + ["tie"] * 2 + ["invalid"])
    assert s["win_rate_a"] == pytest.approx(0.7) and s["invalid"] == 1 and s["valid"] == 10
    assert s["ci"][0] < 0.7 < s["ci"][1]
    assert combine("first", "second") == "a" and combine("second", "first") == "b"
    assert combine("first", "first") == "tie" and combine("tie", "second") == "tie"
    assert combine("invalid", "first") == "invalid"


def test_identical_continuations_are_free_ties(server, tmp_path):
    srv = server()
    a, _ = runs(3)
    res = judge_records(a, [dict(r) for r in a], settings(tmp_path, srv.url))
    assert res["ties"] == 3 and srv.requests == 0
