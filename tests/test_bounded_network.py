"""Network calls are bounded and their answers checked (issue 24, part 3).

- ``--timeout`` is a total deadline per request: a server trickling one byte at a time (in the
  headers or in the body) cannot hold a request past it.
- An answer that is not the protocol's JSON is an error naming the status, content type and start
  of the body, never a cached verdict.
- Token ids are integers inside the vocabulary; an answer longer than the request allows is
  refused before anything is stored; a malformed ``openai`` answer is one line.
- ``bench judge`` refuses an unfinished run.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from click.testing import CliRunner

httpx = pytest.importorskip("httpx")

from bench.cli import main  # noqa: E402
from bench.errors import BenchError  # noqa: E402
from bench.http import AnswerRefused, RetriesExhausted, RetryPolicy, make_client, post_json  # noqa: E402


class RawServer:
    """A TCP server on loopback whose every connection is handled by ``serve(conn)``."""

    def __init__(self, serve: Callable[[socket.socket], None]):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()

        def loop() -> None:
            while not self.stop.is_set():
                try:
                    conn, _ = self.sock.accept()
                except OSError:
                    return
                threading.Thread(target=self._guarded, args=(serve, conn), daemon=True).start()

        threading.Thread(target=loop, daemon=True).start()

    def _guarded(self, serve: Callable[[socket.socket], None], conn: socket.socket) -> None:
        try:
            conn.recv(65536)  # the request (small: one JSON body)
            serve(conn)
        except OSError:
            pass  # the client gave up: what the tests want
        finally:
            conn.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


def trickle(data: bytes, every: float = 0.1) -> Callable[[socket.socket], None]:
    def serve(conn: socket.socket) -> None:
        for i in range(len(data)):
            conn.sendall(data[i:i + 1])
            time.sleep(every)
    return serve


HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"


@pytest.mark.parametrize("where", ["body", "headers"])
def test_a_trickling_server_cannot_hold_a_request_past_the_deadline(where: str) -> None:
    data = HEAD + b" " * 100000 if where == "body" else HEAD
    server = RawServer(trickle(data) if where == "headers" else
                       lambda conn: (conn.sendall(HEAD), trickle(b" " * 1000)(conn)))
    try:
        client = make_client(1.0)  # each read gets 1 s, and bytes come every 0.1 s: only a total bounds it
        start = time.monotonic()
        with pytest.raises(RetriesExhausted) as info:
            post_json(client, server.url + "/completions", {}, RetryPolicy(max_retries=0), timeout=1.0)
        elapsed = time.monotonic() - start
    finally:
        server.close()
    assert "no complete answer within 1 s" in info.value.reason
    assert elapsed < 3.0, elapsed


def test_an_answer_over_the_byte_cap_is_refused_while_it_is_read() -> None:
    big = json.dumps({"choices": [{"text": "word " * 2_000_000}]}).encode()
    client = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200, content=big)))
    with pytest.raises(AnswerRefused, match="over 1,000 bytes"):
        post_json(client, "http://x/v1/completions", {}, RetryPolicy(max_retries=0), max_bytes=1000)


# --- the openai backend's answers ------------------------------------------------------------------
def _backend(stories260k: str, answer: Any, *, status: int = 200, content_type: str = "application/json"):
    from bench.backends.openai import OpenAIBackend
    from bench.runtime import load_tokenizer

    backend = OpenAIBackend("http://127.0.0.1:9", stories260k, tokenizer=load_tokenizer(stories260k, None),
                            concurrency=1, max_retries=0)
    body = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
    backend.client = httpx.Client(transport=httpx.MockTransport(
        lambda r: httpx.Response(status, content=body, headers={"content-type": content_type})))
    return backend


def _continue(backend, max_new_tokens: int = 4):
    from bench.specs import build_decoder, parse_decoder

    return backend.continue_batch(["Once"], build_decoder(parse_decoder("greedy")),
                                  max_new_tokens=max_new_tokens, seeds=[0])


MALFORMED = {
    "not-json": b"<html><body>502 Bad Gateway</body></html>",
    "a-list": [1, 2],
    "a-string": "hello",
    "null": None,
    "no-choices": {"id": "x"},
    "empty-choices": {"choices": []},
    "choices-a-dict": {"choices": {"text": "a"}},
    "choice-a-string": {"choices": ["text"]},
    "text-a-number": {"choices": [{"text": 5}]},
    "ids-a-string": {"choices": [{"text": "a", "token_ids": "1,2"}]},
    "ids-booleans": {"choices": [{"text": "a", "token_ids": [True, False]}]},
    "ids-floats": {"choices": [{"text": "a", "token_ids": [1.0, 2.5]}]},
    "ids-negative": {"choices": [{"text": "a", "token_ids": [-1]}]},
    "ids-past-the-vocabulary": {"choices": [{"text": "a", "token_ids": [10 ** 6]}]},
    "ids-huge": {"choices": [{"text": "a", "token_ids": [10 ** 400]}]},
    "logprob-token-not-an-id": {"choices": [{"text": "a", "logprobs": {"tokens": ["token_id:x1"]}}]},
    "logprob-token-huge": {"choices": [{"text": "a", "logprobs": {"tokens": ["token_id:" + "9" * 500]}}]},
    "too-many-ids": {"choices": [{"text": "a", "token_ids": [5] * 10}]},
    "usage-too-many": {"choices": [{"text": "a"}], "usage": {"completion_tokens": 10}},
    "usage-not-a-count": {"choices": [{"text": "a"}], "usage": {"completion_tokens": "many"}},
    "text-far-too-long": {"choices": [{"text": "word " * 100_000}]},
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_a_malformed_openai_answer_is_one_line(name: str, stories260k: str) -> None:
    backend = _backend(stories260k, MALFORMED[name])
    with pytest.raises(BenchError) as info:
        _continue(backend)
    message = str(info.value)
    assert "\n" not in message and "127.0.0.1:9/v1/completions" in message, message


def test_an_html_answer_names_status_content_type_and_body(stories260k: str) -> None:
    backend = _backend(stories260k, MALFORMED["not-json"], content_type="text/html")
    with pytest.raises(BenchError, match=r"HTTP 200 with a text/html body that is not JSON \('<html><body>502"):
        _continue(backend)


def test_good_ids_pass_the_checks(stories260k: str) -> None:
    backend = _backend(stories260k, {"choices": [{"text": "x", "token_ids": [5, 6, 7], "finish_reason": "length"}]})
    (out,) = _continue(backend)
    assert out.token_ids == [5, 6, 7] and out.finish_reason == "length"


# --- the judge --------------------------------------------------------------------------------------
class CannedJudge:
    """A chat/completions server answering every request with ``self.answer`` (status, content type, bytes)."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.answer = (200, "application/json", b"{}")
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                status, kind, body = outer.answer
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _gens(tmp_path: Path) -> tuple[str, str]:
    for name, text in (("a", "GOOD"), ("b", "bad")):
        (tmp_path / f"{name}.jsonl").write_text("".join(
            json.dumps({"prompt_id": f"p{i}", "sample_index": 0, "prompt": f"P {i}", "continuation": f"{text} {i}"})
            + "\n" for i in range(3)))
    return str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")


def _judge(a: str, b: str, url: str, cache: Path, *extra: str):
    return CliRunner().invoke(main, ["judge", a, b, "--judge-url", url, "--judge-model", "m", "--cache", str(cache),
                                     "--max-retries", "0", "--concurrency", "1", *extra])


def test_a_non_json_judge_answer_is_an_error_and_never_a_cached_verdict(tmp_path: Path) -> None:
    a, b = _gens(tmp_path)
    cache = tmp_path / "verdicts.jsonl"
    judge = CannedJudge()
    try:
        judge.answer = (200, "text/html", b"<html>maintenance</html>")
        result = _judge(a, b, judge.url, cache)
        assert result.exit_code == 2 and "text/html body that is not JSON" in result.stderr, result.output
        assert not cache.exists() or cache.read_text() == ""
        judge.answer = (200, "application/json", json.dumps({"choices": "none"}).encode())
        result = _judge(a, b, judge.url, cache)
        assert result.exit_code == 2 and "JSON without choices[0].message.content" in result.stderr, result.output
        assert not cache.exists() or cache.read_text() == ""
        verdict = {"choices": [{"message": {"content": "Verdict: A"}}]}
        judge.answer = (200, "application/json", json.dumps(verdict).encode())
        result = _judge(a, b, judge.url, cache, "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["verdicts_cached_before"] == 0  # nothing from the broken server reused
    finally:
        judge.close()


def test_the_judge_deadline_is_total(tmp_path: Path) -> None:
    a, b = _gens(tmp_path)
    server = RawServer(lambda conn: (conn.sendall(HEAD), trickle(b" " * 1000)(conn)))
    try:
        start = time.monotonic()
        result = _judge(a, b, server.url, tmp_path / "c.jsonl", "--timeout", "1")
        elapsed = time.monotonic() - start
    finally:
        server.close()
    assert result.exit_code == 2 and "no complete answer within 1 s" in result.stderr, result.output
    assert elapsed < 5.0, elapsed


def test_judge_refuses_an_unfinished_run(tmp_path: Path) -> None:
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"ba{i} kot"}) + "\n" for i in range(3)))
    result = CliRunner().invoke(main, ["run", "--backend", "fake", "--suite", str(prompts), "--decoder", "greedy",
                                       "--decoder", "top-k", "--max-new-tokens", "3", "--out", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    greedy, topk = sorted(p.parent for p in (tmp_path / "runs").glob("*/header.json"))
    lines = (greedy / "generations.jsonl").read_text().splitlines(keepends=True)
    (greedy / "generations.jsonl").write_text("".join(lines[:1]))
    result = CliRunner().invoke(main, ["judge", str(greedy), str(topk), "--judge-url", "http://127.0.0.1:9/v1",
                                       "--judge-model", "m", "--cache", str(tmp_path / "c.jsonl")])
    assert result.exit_code == 2 and "still in progress (1/3 records)" in result.stderr, result.output
    assert not (tmp_path / "c.jsonl").exists()
