"""An OpenAI-compatible ``/v1/completions`` backend, for models served by ``vllm serve``, SGLang,
TGI or llama.cpp.

One request per record (each record has its own seed), at most ``concurrency`` in flight (a thread
pool over one ``httpx.Client``). 429, 5xx, timeouts and dropped connections are retried with
exponential backoff (the one policy of :mod:`bench.http`); any other error ends the run with one line (records already appended stay,
so the same command resumes). The API key is read from the environment variable named by
``--api-key-env`` and only ever sent in the ``Authorization`` header of requests; it is never
stored in the backend's attributes, the run header or the records.

Decoders run from their own :class:`bench.decoding.EngineParams` (temperature, top-k, top-p);
anything else is refused at plan time from the decoder's declaration.

Token ids come from the server, never from re-tokenizing its text (a model may emit tokens the
text drops, such as a BOS mid-text): every request asks for them with ``return_token_ids`` (vLLM)
and for one logprob per token with ``return_tokens_as_token_ids`` (vLLM's ``token_id:N`` form,
the fallback). A server that gives neither stores ``token_ids: null`` with the server's
``num_tokens`` (usage), and token-level metrics show as unavailable. With ids and a local
tokenizer the stored text is the ids decoded as the HF backend decodes them; else the server's
text.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, Sequence

from bench.backends.base import Capabilities, Continuation, refusal
from bench.decoding import Declaration, EngineParams
from bench.errors import BenchError
from bench.http import (AnswerRefused, HTTPRefused, RetriesExhausted, RetryPolicy, answer_bytes, make_client,
                        post_json, protocol_json, redact, redact_cut)

PROTOCOL = "openai-completions-v1"
PROBE_TIMEOUT_S = 5.0


def normalize_base_url(url: str) -> str:
    """``http://host:port`` or ``http://host:port/v1`` -> ``http://host:port/v1``."""
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise BenchError(f"--base-url must start with http:// or https://, got '{redact(url)}'")
    return url if url.endswith("/v1") else url + "/v1"


def _key(api_key_env: str | None) -> str | None:
    return os.environ.get(api_key_env or "OPENAI_API_KEY")


def _headers(api_key_env: str) -> dict[str, str]:
    key = _key(api_key_env)
    return {"Authorization": f"Bearer {key}"} if key else {}


def probe(base_url: str, model: str, api_key_env: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Check at plan time that the server answers and serves ``model``; one-line BenchError otherwise."""
    import httpx

    full = normalize_base_url(base_url)
    url = redact(full)  # as messages show it
    try:
        response = httpx.get(f"{full}/models", headers=_headers(api_key_env), timeout=timeout)
    except httpx.HTTPError as exc:
        raise BenchError(redact(f"cannot reach the server at {url}: {type(exc).__name__}: {exc}".splitlines()[0],
                                [_key(api_key_env)])) from None
    if response.status_code in (401, 403):
        raise BenchError(f"the server at {url} refused the API key (HTTP {response.status_code}); "
                         f"set ${api_key_env or 'OPENAI_API_KEY'} or pass --api-key-env")
    if response.status_code >= 500:
        raise BenchError(f"the server at {url} answered HTTP {response.status_code} to GET /models")
    if response.status_code == 200:
        try:
            served = [m.get("id") for m in response.json().get("data", [])]
        except (ValueError, AttributeError):
            served = []
        if served and model not in served:
            raise BenchError(f"model '{model}' is not served at {url} (it serves: {', '.join(map(str, served))})")


class OpenAIBackend:
    """Continues prompts through a server's ``/v1/completions``."""

    name: ClassVar[str] = "openai"
    capabilities: ClassVar[Capabilities] = Capabilities(
        model_decoders=False, features=frozenset({"temperature", "top_k", "top_p"}), hyperfit=False)
    model_options: ClassVar[frozenset[str]] = frozenset()  # the server decides how its model is loaded

    def __init__(self, base_url: str, model: str, *, api_key_env: str = "OPENAI_API_KEY", tokenizer: Any = None,
                 concurrency: int = 8, timeout: float = 120.0, max_retries: int = 6, backoff: float = 0.5,
                 server_traces: bool = False):
        self.base_url = normalize_base_url(base_url)
        self.server_traces = server_traces
        """Ask for the top :data:`bench.traces.TOP_LOGPROBS` logprobs per token and keep them as each record's trace."""
        self.model = model
        self.api_key_env = api_key_env  # the variable's name; the key itself is read per client, not kept
        self.tokenizer = tokenizer
        self.eos_ids = set(_eos_ids(tokenizer))
        self.concurrency = max(1, concurrency)
        self.max_retries = max_retries
        self.backoff = backoff
        self.policy = RetryPolicy(max_retries, backoff, max_backoff=30.0)
        self._count = threading.Lock()
        self.device = f"remote:{redact(self.base_url)}"  # stored in run headers: no credentials
        self.timeout = timeout
        self.client = make_client(timeout, headers=_headers(api_key_env), max_connections=self.concurrency)
        self.retries = 0
        """Requests retried so far (for tests and logs)."""

    # -- plan-time hooks -------------------------------------------------------------------------
    @classmethod
    def version(cls, options: Any = None) -> str:
        return PROTOCOL

    @classmethod
    def run_dtype(cls, options: Any) -> str:
        """The server decides the precision; runs record that instead of a local dtype."""
        return "served"

    @classmethod
    def refusal(cls, decl: Declaration) -> str | None:
        return refusal(decl, cls.name, cls.capabilities)

    @classmethod
    def model_files(cls, options: Any, model: str) -> tuple[Any, Any]:
        """The local tokenizer and config when ``model`` loads here; else the server checks lengths."""
        from bench.runtime import load_config, load_tokenizer

        try:
            return load_tokenizer(model, options.revision), load_config(model, options.revision)
        except BenchError:
            return None, None

    @classmethod
    def check_plan(cls, options: Any, decls: list[Declaration]) -> None:
        if not getattr(options, "base_url", None):
            raise BenchError("--backend openai needs --base-url (e.g. http://127.0.0.1:8000/v1)")
        calibrating = [d for d in decls if d.calibrates]
        if calibrating:
            from bench.runtime import check_weights, load_config

            for model in options.models:  # T* is calibrated with the HF backend, on the local weights
                try:
                    load_config(model, options.revision)
                except BenchError:
                    raise BenchError(f"decoder '{calibrating[0].label}' calibrates on the local weights of --model, "
                                     f"but '{model}' does not load here; pass a local copy") from None
                check_weights(model, options.revision)
        for model in options.models:
            probe(options.base_url, model, options.api_key_env)

    @classmethod
    def load(cls, options: Any, model: Any, hyperfit: str | None) -> "OpenAIBackend":
        generation = getattr(options, "generation", None)
        server_traces = bool(generation and generation.log_probs and generation.log_probs_from == "server")
        return cls(options.base_url, model.name, api_key_env=options.api_key_env,
                   tokenizer=local_tokenizer(model.name, model.revision), concurrency=options.batch_size,
                   server_traces=server_traces)

    # -- the backend interface -------------------------------------------------------------------
    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids with the local tokenizer; without one, one pseudo-token per character (only used to order work)."""
        if self.tokenizer is not None:
            return [self.tokenizer(t)["input_ids"] for t in texts]
        return [[0] * len(t) for t in texts]

    def decode(self, token_ids: Sequence[int]) -> str:
        if self.tokenizer is None:
            raise BenchError("no local tokenizer for this model: records carry the server's text instead")
        return self.tokenizer.decode(token_ids, skip_special_tokens=True)

    def continue_batch(self, prompts: Sequence[str], decoder: Any, *, max_new_tokens: int,
                       seeds: Sequence[int]) -> list[Continuation]:
        params = decoder.engine_params()
        bodies = [self.body(p, params, max_new_tokens, s) for p, s in zip(prompts, seeds)]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(bodies)) or 1) as pool:
            return list(pool.map(self._complete, bodies))

    def applied(self, decoder: Any, max_new_tokens: int) -> dict[str, Any]:
        """The body of each request, as sent (no key is ever in it; recorded in the run header)."""
        from bench.applied import PER_RECORD_SEED

        body = self.body("<the prompt>", decoder.engine_params(), max_new_tokens, 0)
        return {"backend": "openai", "url": redact(f"{self.base_url}/completions"),
                "body": dict(body, seed=PER_RECORD_SEED)}

    def body(self, prompt: str, params: EngineParams, max_new_tokens: int, seed: int) -> dict[str, Any]:
        """The JSON body of one ``/v1/completions`` request."""
        body: dict[str, Any] = {"model": self.model, "prompt": prompt, "max_tokens": max_new_tokens,
                                "temperature": params.temperature, "seed": int(seed) % (1 << 63), "n": 1,
                                # the continuation's ids, not its text (see the module docstring)
                                "return_token_ids": True, "logprobs": 0, "return_tokens_as_token_ids": True}
        if self.server_traces:
            from bench.traces import TOP_LOGPROBS

            body["logprobs"] = TOP_LOGPROBS
        if not params.greedy:
            if params.top_p < 1.0:
                body["top_p"] = params.top_p
            if params.top_k > 0:
                body["top_k"] = params.top_k  # not in OpenAI's schema; vLLM, SGLang, TGI, llama.cpp read it
        return body

    def _complete(self, body: dict[str, Any]) -> Continuation:
        choice, usage = self._post(body)
        limit = body["max_tokens"]
        text = choice.get("text") or ""
        reason = "length" if choice.get("finish_reason") == "length" else "eos"
        ids = served_token_ids(choice, self._vocab_size(), self._where)
        count = usage.get("completion_tokens") if isinstance(usage, dict) else None
        if count is not None and (type(count) is not int or count < 0):
            raise BenchError(f"{self._where}: usage.completion_tokens is {str(count)[:40]!r}, not a count")
        served = len(ids) if ids is not None else count
        if (served is not None and served > limit) or len(text) > limit * MAX_CHARS_PER_TOKEN:
            size = f"{served} tokens" if served is not None and served > limit else f"{len(text):,} characters"
            raise BenchError(f"{self._where}: the server answered {size} to a request for at most {limit} "
                             "tokens; refused (nothing of it was stored)")
        if ids is None:
            if self.server_traces:
                raise BenchError(f"{self._where}: --log-probs-from server needs the continuation's token ids "
                                 "(return_token_ids or token_id:N logprob tokens); the server gave none")
            return Continuation(None, reason, text=text, num_tokens=count)
        if self.eos_ids:
            cut = next((i for i, t in enumerate(ids) if t in self.eos_ids), None)
            if cut is not None:  # a server that returns the stop token: records exclude EOS
                ids, reason = ids[:cut], "eos"
        if self.tokenizer is not None:
            # Decoded like the HF backend's records (servers keep a leading space that decoding the
            # continuation alone drops), so text metrics compare across backends.
            text = self.decode(ids)
        trace = self._trace(choice, ids) if self.server_traces else None
        return Continuation(ids, reason, text=text, num_tokens=len(ids), trace=trace)

    def _trace(self, choice: dict[str, Any], ids: list[int]) -> dict[str, Any]:
        """The server's logprobs of the record's tokens (EOS cut off) as a trace (:func:`bench.traces.server_trace`)."""
        from bench.traces import server_trace, token_pieces

        pieces = token_pieces(self.tokenizer, ids) if self.tokenizer is not None else None
        return server_trace(choice.get("logprobs"), len(ids), self._where, pieces)

    @property
    def _where(self) -> str:
        return redact(f"{self.base_url}/completions")

    def _vocab_size(self) -> int | None:
        return len(self.tokenizer) if self.tokenizer is not None else None

    def _post(self, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """POST with :mod:`bench.http`'s retries and bounds; returns (first choice, usage), checked."""
        url = f"{self.base_url}/completions"
        shown, secrets = redact(url), [_key(self.api_key_env)]
        try:
            response = post_json(self.client, url, body, self.policy, secrets=secrets, timeout=self.timeout,
                                 max_bytes=answer_bytes(body["max_tokens"]), on_retry=self._retried)
            data = protocol_json(response, secrets)
        except HTTPRefused as exc:
            raise BenchError(f"{shown}: HTTP {exc.status}: {exc.body}".splitlines()[0]) from None
        except AnswerRefused as exc:
            raise BenchError(f"{shown}: {exc}".splitlines()[0]) from None
        except RetriesExhausted as exc:
            if exc.status is not None:
                raise BenchError(f"{shown}: HTTP {exc.status}: {exc.body}".splitlines()[0]) from None
            raise BenchError(f"{shown}: no answer after {exc.attempts} attempts ({exc.reason})") from None
        choices = data.get("choices") if isinstance(data, dict) else None
        if not (isinstance(choices, list) and choices and isinstance(choices[0], dict)):
            raise BenchError(f"{shown}: the answer has no choices[0] object "
                             f"({redact_cut(str(data), secrets, 80)!r})".splitlines()[0])
        choice = choices[0]
        if choice.get("text") is not None and not isinstance(choice["text"], str):
            raise BenchError(f"{shown}: choices[0].text is {type(choice['text']).__name__}, not text")
        usage = data.get("usage")
        return choice, usage if isinstance(usage, dict) else {}

    def _retried(self) -> None:
        with self._count:
            self.retries += 1


MAX_CHARS_PER_TOKEN = 512
"""The most characters one token can decode to, generously: a longer text cannot be the answer asked for."""


def served_token_ids(choice: dict[str, Any], vocab_size: int | None = None, where: str = "the server") -> list[int] | None:
    """The continuation's token ids as the server gave them, or None when it gave none.

    ``token_ids`` (vLLM's ``return_token_ids``) first; else logprob tokens in vLLM's
    ``token_id:N`` form (``return_tokens_as_token_ids``). Anything else (plain token strings) is
    not an id and is not guessed from. Ids are checked: integers (not booleans or floats), inside
    the vocabulary when its size is known; else one line naming the server.
    """
    if choice.get("token_ids") is not None:
        ids = choice["token_ids"]
        if not isinstance(ids, list):
            raise BenchError(f"{where}: token_ids is {type(ids).__name__}, not a list of token ids")
    else:
        logprobs = choice.get("logprobs")
        tokens = logprobs.get("tokens") if isinstance(logprobs, dict) else None
        if not (isinstance(tokens, list) and all(isinstance(t, str) and t.startswith("token_id:")
                                                             for t in tokens)):
            return None
        ids = []
        for t in tokens:
            number = t.partition(":")[2]
            if not (number.isascii() and number.isdigit() and len(number) <= 12):
                raise BenchError(f"{where}: logprob token {t[:40]!r} is not a token id")
            ids.append(int(number))
    for t in ids:
        if type(t) is not int or t < 0 or (vocab_size is not None and t >= vocab_size):
            bound = f" (the vocabulary has {vocab_size})" if vocab_size is not None else ""
            raise BenchError(f"{where}: token id {str(t)[:40]!r} is not a token of the model{bound}")
    return ids


def _eos_ids(tokenizer: Any) -> list[int]:
    eos = getattr(tokenizer, "eos_token_id", None) if tokenizer is not None else None
    return [int(eos)] if isinstance(eos, int) else []


def local_tokenizer(model: str, revision: str | None) -> Any:
    """``--model``'s tokenizer when it loads here (a local folder or a cached Hub id), else None."""
    from bench.runtime import load_tokenizer

    try:
        return load_tokenizer(model, revision)
    except BenchError:
        return None
