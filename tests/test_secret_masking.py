"""Keys never reach a message, in whole or in part (issue 24, part 2): mask first, then cut, and
every occurrence of the key however the server framed it."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

import pytest

from bench.http import BODY_SHOWN, HTTPRefused, RetryPolicy, post_json, redact

KEY = "Zq9Xw7Vt5Rp3Nm1KjH8g"


def Echo(body: str):  # noqa: N802 - reads as the server it stands for
    """A client whose server answers 400 with ``body``."""
    import httpx

    return httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(400, text=body)))


def leaked(text: str, secret: str = KEY, window: int = 4) -> list[str]:
    return [secret[i:i + window] for i in range(len(secret) - window + 1) if secret[i:i + window] in text]


@pytest.mark.parametrize("offset", range(BODY_SHOWN - len(KEY) - 2, BODY_SHOWN + 3))
def test_a_key_across_the_cut_is_never_shown_in_part(offset: int) -> None:
    body = "." * offset + KEY + "." * 50
    with pytest.raises(HTTPRefused) as info:
        post_json(Echo(body), "http://x/v1", {}, RetryPolicy(max_retries=0), secrets=[KEY])
    assert not leaked(str(info.value)), str(info.value)


@pytest.mark.parametrize("framed", [KEY, json.dumps(KEY)[1:-1], quote(KEY, safe=""),
                                    base64.b64encode(KEY.encode()).decode().rstrip("=")])
def test_every_framing_of_the_key_is_masked(framed: str) -> None:
    text = redact(f"error: your key {framed} and again '{framed}'", [KEY])
    assert framed not in text and text.count("***") >= 2


@pytest.mark.parametrize("text", ["xBearer abcdefgh12345", "auth=Bearer abcdefgh12345", "BEARER abcdefgh12345"])
def test_bearer_is_masked_wherever_it_stands(text: str) -> None:
    assert "abcdefgh12345" not in redact(text)
