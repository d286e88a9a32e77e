"""Judges: any OpenAI-compatible chat/completions endpoint, or a local Hugging Face model.

The endpoint client retries as :mod:`bench.http` says (429, 5xx, timeouts and connection errors,
exponential backoff honouring ``Retry-After`` up to the cap); other 4xx answers (bad key, unknown
model) fail at once. The API key is read from an environment variable at request time and is never
stored or logged; URLs and answers in messages are redacted.
"""

from __future__ import annotations

import os
import threading

from bench.errors import BenchError
from bench.http import (AnswerRefused, HTTPRefused, RetriesExhausted, RetryPolicy, answer_bytes, make_client,
                        post_json, protocol_json, redact, redact_cut)


class JudgeUnavailable(Exception):
    """The judge could not answer after every retry (the run stops; verdicts so far are kept)."""


def render_chat(chat_template: str, system: str, user: str) -> str:
    """The judge's two messages as one prompt: ``plain`` joins them, else a Jinja chat template
    (rendered sandboxed, as transformers renders chat templates)."""
    if chat_template == "plain":
        return f"{system}\n\n{user}\n"
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(chat_template).render(messages=messages, add_generation_prompt=True,
                                                 bos_token="", eos_token="")


def load_chat_template(option: str | None) -> str | None:
    """``--judge-chat-template``: ``plain``, or a Jinja file read here (one-line error if unreadable)."""
    if option is None or option == "plain":
        return option
    from pathlib import Path

    try:
        text = Path(option).read_text(encoding="utf-8")
        render_chat(text, "s", "u")
    except OSError as exc:
        raise BenchError(f"--judge-chat-template: cannot read '{option}': {exc.strerror or exc}") from None
    except Exception as exc:  # jinja2's TemplateError and the errors a template raises while rendering
        raise BenchError(f"--judge-chat-template: '{option}' is not a usable chat template: "
                         f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    return text


def chat_url(url: str) -> str:
    """``http://host/v1`` -> ``http://host/v1/chat/completions``; a full URL is kept."""
    url = url.rstrip("/")
    return url if url.endswith("/chat/completions") else url + "/chat/completions"


class OpenAIJudge:
    """Chat completions over HTTP (httpx), thread-safe, retried by :mod:`bench.http`'s one policy."""

    def __init__(self, url: str, model: str, key_env: str | None = "OPENAI_API_KEY", timeout: float = 60.0,
                 max_retries: int = 5, backoff: float = 1.0, max_backoff: float = 30.0, max_tokens: int = 512,
                 chat_template: str | None = None):
        try:
            import httpx
        except ImportError:
            raise BenchError("the endpoint judge needs httpx: pip install 'decbench[judge]'") from None
        if not url.startswith(("http://", "https://")):
            raise BenchError(f"judge URL must start with http:// or https://, got '{redact(url)}'")
        self.chat_template = load_chat_template(chat_template)
        base = url.rstrip("/").removesuffix("/chat/completions")
        self.url = chat_url(url) if self.chat_template is None else base + "/completions"
        self.model, self.key_env = model, key_env
        self.shown_url = redact(self.url)
        """The URL as messages and results show it: credentials replaced by ***."""
        self.policy = RetryPolicy(max_retries, backoff, max_backoff)
        self.max_retries, self.max_tokens, self.timeout = max_retries, max_tokens, timeout
        self._client = make_client(timeout)
        self._count = threading.Lock()
        self.requests = 0
        self.retries = 0

    @property
    def ident(self) -> str:
        if self.chat_template is None:
            return f"openai:{self.model}"
        import hashlib

        tag = "plain" if self.chat_template == "plain" else hashlib.sha256(self.chat_template.encode()).hexdigest()[:8]
        return f"openai:{self.model}:chat-template-{tag}"  # another prompt, other cached verdicts

    def _key(self) -> str | None:
        return os.environ.get(self.key_env) if self.key_env else None

    def _headers(self) -> dict[str, str]:
        key = self._key()
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _attempted(self) -> None:
        with self._count:
            self.requests += 1

    def _retried(self) -> None:
        with self._count:
            self.retries += 1

    def complete(self, system: str, user: str) -> str:
        """The assistant message for one prompt; raises JudgeUnavailable after the retries."""
        body: dict = {"model": self.model, "temperature": 0, "max_tokens": self.max_tokens}
        if self.chat_template is None:
            body["messages"] = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        else:  # rendered here: the served model has no chat template of its own
            body["prompt"] = render_chat(self.chat_template, system, user)
        secrets = [self._key()]
        try:
            resp = post_json(self._client, self.url, body, self.policy, headers=self._headers(), secrets=secrets,
                             timeout=self.timeout, max_bytes=answer_bytes(self.max_tokens),
                             on_attempt=self._attempted, on_retry=self._retried)
            return self._content(protocol_json(resp, secrets), secrets)
        except HTTPRefused as exc:
            raise BenchError(f"judge endpoint {self.shown_url} answered HTTP {exc.status}: {exc.body!r}") from None
        except AnswerRefused as exc:  # never a verdict: a rerun against a working server asks again
            raise BenchError(f"judge endpoint {self.shown_url}: {exc}") from None
        except RetriesExhausted as exc:
            raise JudgeUnavailable(
                f"judge endpoint {self.shown_url} failed after {self.max_retries} retries ({exc.reason})") from None

    def _content(self, data: object, secrets: list[str | None]) -> str:
        """The answer's text from the protocol's JSON; AnswerRefused when the JSON is not a completion."""
        field = "message.content" if self.chat_template is None else "text"
        try:
            choice = data["choices"][0]  # type: ignore[index]
            text = choice["message"]["content"] if self.chat_template is None else choice["text"]
        except (KeyError, IndexError, TypeError):
            text = 0
        if text is not None and not isinstance(text, str):
            raise AnswerRefused(f"the answer is JSON without choices[0].{field} "
                                f"({redact_cut(str(data), secrets, 80)!r})")
        return text or ""  # an empty message is a real (unparseable, so invalid) verdict

    def close(self) -> None:
        self._client.close()


class LocalJudge:
    """A local causal LM as judge: greedy decoding of the rendered prompt, one call at a time."""

    def __init__(self, path: str, device: str = "auto", max_tokens: int = 64):
        from bench.scorers.perplexity import load_scorer

        self.path, self.max_tokens = path, max_tokens
        self.model, self.tok = load_scorer(path, device, role="judge model")
        try:  # rendered once now: a template the Jinja sandbox blocks stops here, not mid-judging
            self._prompt("system", "user")
        except Exception as exc:  # jinja2's SecurityError / TemplateError and whatever a template raises
            from bench.errors import one_line

            raise BenchError(f"--judge-local: the chat template of '{path}' cannot be rendered "
                             f"({type(exc).__name__}: {one_line(exc, 160)})") from None
        self._lock = threading.Lock()  # generate() on one model is not safe to run concurrently
        self.requests = 0
        self.retries = 0

    @property
    def ident(self) -> str:
        return f"hf:{self.path}"

    def _prompt(self, system: str, user: str) -> str:
        if getattr(self.tok, "chat_template", None):
            return self.tok.apply_chat_template(
                [{"role": "system", "content": system}, {"role": "user", "content": user}],
                tokenize=False, add_generation_prompt=True)
        return f"{system}\n\n{user}\n"

    def complete(self, system: str, user: str) -> str:
        import torch

        with self._lock:
            self.requests += 1
            enc = self.tok(self._prompt(system, user), return_tensors="pt").to(self.model.device)
            limit = getattr(self.model.config, "max_position_embeddings", None)
            if limit and enc["input_ids"].shape[1] + self.max_tokens > limit:
                keep = max(1, limit - self.max_tokens)
                enc = {k: v[:, -keep:] for k, v in enc.items()}
            pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else self.tok.eos_token_id
            with torch.inference_mode():
                out = self.model.generate(**enc, max_new_tokens=self.max_tokens, do_sample=False, pad_token_id=pad)
            return self.tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)

    def close(self) -> None:
        pass
