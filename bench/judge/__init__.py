"""Pairwise LLM-judge preferences between two runs on the same prompts.

Every pair is judged in both orders (A shown first, then B shown first); a pair is a win only
when both orders agree, and any disagreement is a tie (identical continuations are a tie without
asking the judge). A pair with an unparseable answer in either order is counted as invalid.
Verdicts are cached (see :mod:`bench.judge.cache`) so interrupted runs resume without paying twice.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from bench.errors import BenchError


@dataclass
class JudgeSettings:
    """Which judge, which rubric, where verdicts are cached and how requests are made."""

    cache: str
    """Path of the verdict JSONL."""
    url: str | None = None
    """OpenAI-compatible base URL (``http://host:port/v1``); exclusive with ``local_model``."""
    model: str | None = None
    """Model name sent to the endpoint."""
    key_env: str | None = "OPENAI_API_KEY"
    """Environment variable holding the API key (never written anywhere)."""
    local_model: str | None = None
    """A local Hugging Face causal LM to judge with instead of an endpoint."""
    template: str | None = None
    concurrency: int = 4
    max_retries: int = 5
    backoff: float = 1.0
    max_backoff: float = 30.0
    timeout: float = 60.0
    max_tokens: int = 512
    device: str = "auto"
    n_boot: int = 2000
    seed: int = 0

    def validate(self) -> None:
        """One line for settings no request could be made with (checked before anything is paid)."""
        import math

        from bench.outputs import writable_file

        if self.concurrency < 1:
            raise BenchError("judge concurrency must be at least 1")
        if self.max_retries < 0:
            raise BenchError(f"--max-retries must be >= 0, got {self.max_retries}")
        if not (math.isfinite(self.timeout) and self.timeout > 0):
            raise BenchError(f"--timeout must be a number of seconds > 0, got {self.timeout}")
        if self.max_tokens < 1:
            raise BenchError(f"--max-tokens must be >= 1, got {self.max_tokens}")
        if not (math.isfinite(self.backoff) and self.backoff >= 0 and math.isfinite(self.max_backoff)):
            raise BenchError("judge backoff must be a finite number of seconds >= 0")
        if self.n_boot < 1:
            raise BenchError(f"judge n_boot must be >= 1, got {self.n_boot}")
        writable_file(self.cache, "--cache")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "JudgeSettings":
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise BenchError(f"unknown judge setting(s): {', '.join(sorted(unknown))}")
        if "cache" not in d:
            raise BenchError("judge settings need a verdict cache path")
        return cls(**d)

    def recorded(self) -> dict[str, Any]:
        """The settings as stored with results (the key's variable name only, never its value; URL redacted)."""
        from bench.http import redact

        recorded = asdict(self)
        if recorded["url"]:
            recorded["url"] = redact(recorded["url"])
        return recorded
