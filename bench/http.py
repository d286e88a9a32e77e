"""One HTTP retry policy for every OpenAI-compatible client (the judge and the ``openai`` backend),
and the redaction of credentials from anything stored or printed.

Retried: 408, 429, 500, 502, 503, 504, timeouts and dropped connections, with exponential backoff
(jittered, so parallel clients do not retry in bursts) capped at ``max_backoff``; a ``Retry-After``
header lengthens the wait up to the same cap. Any other status is final at once (a bad key or an
unknown model does not get better by asking again).

Bounds: ``timeout`` is a total deadline per request (connecting, sending, the headers and every
byte of the body), not a limit per read, so a server trickling one byte a second cannot hold a
request past it; and an answer over ``max_bytes`` is refused while it is read, never held whole.
Both work through :func:`make_client`, whose transport checks a per-thread deadline at every read.

Redaction: a URL's ``user:password@``, query parameters that carry keys (``api_key``, ``token``,
...), ``Bearer`` tokens, ``sk-...`` style keys and the key values themselves are replaced by
``***`` before a URL or a server's answer reaches a message, a header or a results file.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
"""Statuses that mean "try again later"."""

MASK = "***"
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s?#]*@")
_SECRET_PARAM = re.compile(
    r"(?i)([?&;](?:api[_-]?key|apikey|key|token|access[_-]?token|auth|authorization|secret|password|passwd|pwd|sig|signature)=)[^&#\s'\"]*")
_BEARER = re.compile(r"(?i)(bearer|\bbasic)\s+[a-z0-9._~+/=-]+")
"""``Bearer`` anywhere, even glued to a word before it (``xBearer KEY``); ``Basic`` as a word."""
_KEY_LIKE = re.compile(r"\b(sk|pk|rk|hf|gsk|xai)[-_][A-Za-z0-9_-]{6,}")


BODY_SHOWN = 200
"""Characters of a server's answer kept in a message, cut after redaction (never before: a key
crossing the cut was printed in part)."""


def framings(secret: str) -> list[str]:
    """The ways a server may echo ``secret``: as is, JSON-escaped, URL-encoded, base64 (Basic auth)."""
    import base64
    import json
    from urllib.parse import quote, quote_plus

    forms = {secret, json.dumps(secret)[1:-1], quote(secret, safe=""), quote_plus(secret),
             base64.b64encode(secret.encode()).decode().rstrip("=")}
    return sorted(forms, key=len, reverse=True)


def redact_cut(text: str, secrets: Iterable[str | None] = (), limit: int = BODY_SHOWN) -> str:
    """:func:`redact`, then at most ``limit`` characters: mask first, then cut."""
    return redact(text, secrets)[:limit]


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with credentials replaced by ``***``: URL user info, key parameters, bearer tokens, known keys."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            for framed in framings(secret):  # every occurrence, however the server quoted it
                text = text.replace(framed, MASK)
    text = _USERINFO.sub(lambda m: m.group(1) + MASK + "@", text)
    text = _SECRET_PARAM.sub(lambda m: m.group(1) + MASK, text)
    text = _BEARER.sub(lambda m: m.group(1) + " " + MASK, text)
    return _KEY_LIKE.sub(lambda m: m.group(1) + "-" + MASK, text)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait before asking a server again."""

    max_retries: int = 5
    """Retries after the first attempt (0: one attempt only)."""
    backoff: float = 1.0
    """Seconds before the first retry; doubled at every further retry."""
    max_backoff: float = 30.0
    """Cap of any single wait, ``Retry-After`` included."""
    jitter: bool = True
    """Wait a random 50-100% of the backoff, so that parallel clients spread their retries."""

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (0-based)."""
        delay = self.backoff * 2 ** attempt
        if self.jitter:
            delay *= 0.5 + random.random() / 2
        if retry_after:
            try:
                delay = max(delay, float(retry_after))
            except ValueError:
                pass
        return max(0.0, min(delay, self.max_backoff))


class HTTPRefused(Exception):
    """A final (not retried) error status; ``body`` is the server's answer, redacted."""

    def __init__(self, status: int, body: str):
        super().__init__(f"HTTP {status}: {body}")
        self.status, self.body = status, body


class RetriesExhausted(Exception):
    """Every attempt failed with a retryable status or a transport error; ``reason`` says the last."""

    def __init__(self, reason: str, attempts: int, status: int | None = None, body: str = ""):
        super().__init__(reason)
        self.reason, self.attempts, self.status, self.body = reason, attempts, status, body


MAX_ANSWER_BYTES = 8 << 20
"""Default cap of one answer's body (the caller gives a tighter one from its token budget)."""

BYTES_PER_TOKEN = 2048
"""Generous bytes of JSON per generated token (text, id, logprob entry), for :func:`answer_bytes`."""


def answer_bytes(max_tokens: int) -> int:
    """The byte cap of an answer to a request for at most ``max_tokens`` tokens."""
    return (64 << 10) + BYTES_PER_TOKEN * max(1, int(max_tokens))


_DEADLINE = threading.local()
"""``end``: the monotonic time the current thread's request must be done by (None: no deadline)."""


def _left(timeout: float | None, timeout_error: type[Exception]) -> float | None:
    """The per-operation timeout, shortened to what is left of the thread's deadline."""
    end = getattr(_DEADLINE, "end", None)
    if end is None:
        return timeout
    left = end - time.monotonic()
    if left <= 0:
        raise timeout_error("the request's deadline passed")
    return left if timeout is None else min(timeout, left)


@contextlib.contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Requests made by this thread inside the block end (``httpx.TimeoutException``) after ``seconds`` in all."""
    _DEADLINE.end = None if seconds is None else time.monotonic() + seconds
    try:
        yield
    finally:
        _DEADLINE.end = None


def _deadline_backend(inner: Any) -> Any:
    """httpcore's network backend with every connect, read and write bounded by the thread's deadline."""
    import httpcore

    class Stream(httpcore.NetworkStream):
        def __init__(self, stream: Any):
            self._stream = stream

        def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            return self._stream.read(max_bytes, _left(timeout, httpcore.ReadTimeout))

        def write(self, buffer: bytes, timeout: float | None = None) -> None:
            self._stream.write(buffer, _left(timeout, httpcore.WriteTimeout))

        def close(self) -> None:
            self._stream.close()

        def start_tls(self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None) -> Any:
            return Stream(self._stream.start_tls(ssl_context, server_hostname, _left(timeout, httpcore.ConnectTimeout)))

        def get_extra_info(self, info: str) -> Any:
            return self._stream.get_extra_info(info)

    class Backend(httpcore.NetworkBackend):
        def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                        socket_options: Any = None) -> Any:
            return Stream(inner.connect_tcp(host, port, _left(timeout, httpcore.ConnectTimeout), local_address,
                                            socket_options))

        def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None) -> Any:
            return Stream(inner.connect_unix_socket(path, _left(timeout, httpcore.ConnectTimeout), socket_options))

        def sleep(self, seconds: float) -> None:
            inner.sleep(seconds)

    return Backend()


def make_client(timeout: float, *, headers: Mapping[str, str] | None = None, max_connections: int | None = None) -> Any:
    """An ``httpx.Client`` whose requests honour :func:`deadline` (see the module docstring)."""
    import httpx

    transport = httpx.HTTPTransport(limits=httpx.Limits(max_connections=max_connections))
    pool = getattr(transport, "_pool", None)
    if pool is not None and hasattr(pool, "_network_backend"):  # httpx >= 0.27 keeps one httpcore pool here
        pool._network_backend = _deadline_backend(pool._network_backend)
    return httpx.Client(timeout=timeout, headers=dict(headers or {}), transport=transport)


@dataclass(frozen=True)
class Answer:
    """A server's answer, read whole (under the byte cap)."""

    status_code: int
    headers: Mapping[str, str] = field(repr=False)
    content: bytes = field(repr=False)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    @property
    def content_type(self) -> str:
        return str(self.headers.get("content-type", "")).split(";")[0].strip() or "no content type"

    def json(self) -> Any:
        return json.loads(self.content)


class AnswerRefused(Exception):
    """A 200 answer that is not usable: over the byte cap, or not the protocol's JSON (``reason`` says which)."""


def protocol_json(answer: Answer, secrets: Iterable[str | None] = ()) -> Any:
    """The answer's JSON; AnswerRefused naming the status, content type and start of the body (masked) otherwise."""
    try:
        return answer.json()
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        start = redact_cut(answer.text.strip(), secrets, 80)
        raise AnswerRefused(f"HTTP {answer.status_code} with a {answer.content_type} body that is not JSON "
                            f"({start!r})") from None


def _read_capped(response: Any, max_bytes: int) -> bytes:
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise AnswerRefused(f"the answer is over {max_bytes:,} bytes, more than the request can need; refused")
        chunks.append(chunk)
    return b"".join(chunks)


def post_json(client: Any, url: str, body: dict[str, Any], policy: RetryPolicy, *,
              headers: dict[str, str] | None = None, secrets: Iterable[str | None] = (),
              timeout: float | None = None, max_bytes: int = MAX_ANSWER_BYTES,
              on_attempt: Callable[[], None] = lambda: None, on_retry: Callable[[], None] = lambda: None,
              sleep: Callable[[float], None] = time.sleep) -> Answer:
    """POST ``body`` as JSON until a 200 answer (returned); raises HTTPRefused, AnswerRefused or RetriesExhausted.

    ``timeout`` is each attempt's total deadline (with a client from :func:`make_client`); the body
    is read up to ``max_bytes``. Messages carried by the exceptions are redacted (``secrets`` are
    the key values to hide).
    """
    import httpx

    secrets = tuple(secrets)
    for attempt in range(policy.max_retries + 1):
        on_attempt()
        answer = _attempt(client, url, body, headers, timeout, max_bytes, secrets)
        retry_after, status, text = None, None, ""
        if isinstance(answer, str):
            reason = answer
        elif answer.status_code == 200:
            return answer
        else:
            status, text = answer.status_code, redact_cut(answer.text.strip(), secrets)
            if status not in RETRY_STATUS:
                raise HTTPRefused(status, text)
            reason, retry_after = f"HTTP {status}", answer.headers.get("retry-after")
        if attempt == policy.max_retries:
            raise RetriesExhausted(reason, attempt + 1, status, text)
        on_retry()
        sleep(policy.delay(attempt, retry_after))
    raise AssertionError("unreachable")


ERROR_BODY_BYTES = 64 << 10
"""Most of an error answer read: only its start is ever shown."""


def _attempt(client: Any, url: str, body: dict[str, Any], headers: dict[str, str] | None, timeout: float | None,
             max_bytes: int, secrets: tuple[str | None, ...]) -> Answer | str:
    """One POST: the answer, or why there was none (a timeout, a dropped connection)."""
    import httpx

    try:
        with deadline(timeout), client.stream("POST", url, json=body, headers=headers) as response:
            if response.status_code != 200:  # only the start of an error body is shown: never read it all
                content = next(response.iter_bytes(ERROR_BODY_BYTES), b"")
            else:
                content = _read_capped(response, max_bytes)
            return Answer(response.status_code, dict(response.headers), content)
    except httpx.TimeoutException:
        return "timed out" if timeout is None else f"no complete answer within {timeout:g} s"
    except httpx.TransportError as exc:
        return redact(f"{type(exc).__name__}: {exc}".splitlines()[0], secrets)
