"""One HTTP retry policy for every OpenAI-compatible client (the judge and the ``openai`` backend),
and the redaction of credentials from anything stored or printed.

Retried: 408, 429, 500, 502, 503, 504, timeouts and dropped connections, with exponential backoff
(jittered, so parallel clients do not retry in bursts) capped at ``max_backoff``; a ``Retry-After``
header lengthens the wait up to the same cap. Any other status is final at once (a bad key or an
unknown model does not get better by asking again).

Redaction: a URL's ``user:password@``, query parameters that carry keys (``api_key``, ``token``,
...), ``Bearer`` tokens, ``sk-...`` style keys and the key values themselves are replaced by
``***`` before a URL or a server's answer reaches a message, a header or a results file.
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

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


def post_json(client: Any, url: str, body: dict[str, Any], policy: RetryPolicy, *,
              headers: dict[str, str] | None = None, secrets: Iterable[str | None] = (),
              on_attempt: Callable[[], None] = lambda: None, on_retry: Callable[[], None] = lambda: None,
              sleep: Callable[[float], None] = time.sleep) -> Any:
    """POST ``body`` as JSON until a 200 answer (returned); raises HTTPRefused or RetriesExhausted.

    Messages carried by the exceptions are redacted (``secrets`` are the key values to hide).
    """
    import httpx

    secrets = tuple(secrets)
    for attempt in range(policy.max_retries + 1):
        on_attempt()
        retry_after, status, text = None, None, ""
        try:
            response = client.post(url, json=body, headers=headers)
        except httpx.TimeoutException:
            reason = "timed out"
        except httpx.TransportError as exc:
            reason = redact(f"{type(exc).__name__}: {exc}".splitlines()[0], secrets)
        else:
            if response.status_code == 200:
                return response
            status, text = response.status_code, redact_cut(response.text.strip(), secrets)
            if status not in RETRY_STATUS:
                raise HTTPRefused(status, text)
            reason, retry_after = f"HTTP {status}", response.headers.get("retry-after")
        if attempt == policy.max_retries:
            raise RetriesExhausted(reason, attempt + 1, status, text)
        on_retry()
        sleep(policy.delay(attempt, retry_after))
    raise AssertionError("unreachable")
