"""What each metric means and which way is better.

The leaderboard sorts, highlights and checks regressions with :attr:`Metric.direction`; tables
format values with :attr:`Metric.fmt`. Scorers register the metrics they compute here, so that a
metric name seen in a results file can always be looked up::

    >>> metric("rep-2").direction
    'lower'
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass

from bench.errors import BenchError

DIRECTIONS = ("higher", "lower", "none")


@dataclass(frozen=True)
class Metric:
    """One scalar metric of a set of continuations."""

    name: str
    """Key in score dictionaries and result files (``rep-2``)."""
    direction: str
    """``"higher"`` or ``"lower"`` when that value is better; ``"none"`` for descriptive values (lengths)."""
    description: str
    """One line for tables and ``--help``, including the unit."""
    fmt: str
    """A format spec for :func:`format` (``".4f"``, ``".1f"``)."""

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"metric '{self.name}': direction must be one of {DIRECTIONS}")

    def format(self, value: float | None) -> str:
        """The value as shown in tables; ``n/a`` for a missing or undefined (NaN) value."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "n/a"
        return format(value, self.fmt)

    def better(self, a: float, b: float) -> bool:
        """True when ``a`` is strictly better than ``b`` (always False for direction ``none``)."""
        if self.direction == "higher":
            return a > b
        if self.direction == "lower":
            return a < b
        return False


METRICS: dict[str, Metric] = {}


def register(m: Metric) -> Metric:
    """Add ``m`` to :data:`METRICS`; registering the same name twice with different fields is an error."""
    old = METRICS.get(m.name)
    if old is not None and old != m:
        raise ValueError(f"metric '{m.name}' is already registered differently")
    METRICS[m.name] = m
    return m


def metric(name: str) -> Metric:
    """Look up a registered metric, or raise :class:`BenchError` with the closest name."""
    if name in METRICS:
        return METRICS[name]
    close = difflib.get_close_matches(name, list(METRICS), n=1, cutoff=0.5)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise BenchError(f"unknown metric '{name}'{hint} (known: {', '.join(METRICS)})")


# Repetition and diversity (bench/scorers/repetition.py). All fractions are in [0, 1], not percent.
for _n in (2, 3, 4):
    register(Metric(
        f"rep-{_n}", "lower",
        f"fraction of repeated word {_n}-grams within each continuation, pooled (SimCTG rep-{_n}; 0-1)",
        ".4f",
    ))
register(Metric(
    "diversity", "higher",
    "(1-rep-2)(1-rep-3)(1-rep-4), from rep-n rounded as SimCTG does (0-1)",
    ".4f",
))
for _n in (1, 2, 3, 4):
    register(Metric(
        f"distinct-{_n}", "higher",
        f"distinct word {_n}-grams over all continuations / total word {_n}-grams (0-1)",
        ".4f",
    ))
register(Metric("length-words", "none", "mean whitespace words per continuation", ".1f"))
register(Metric("length-tokens", "none", "mean token ids per continuation", ".1f"))
register(Metric("ttr", "higher", "mean per-continuation unique token ids / token count (0-1)", ".4f"))
register(Metric(
    "ttr-last96", "higher",
    "mean unique/count over each continuation's last 96 token ids (0-1)",
    ".4f",
))
del _n
register(Metric("judge-win-rate", "higher",
                "LLM-judge win rate against the --judge-against decoder, ties half, both orders (0-1)", ".3f"))
# Model-based metrics (bench/scorers/model_based.py), registered here so that every table knows
# them even when the scorers themselves are not imported.
register(Metric("mauve", "higher", "MAUVE vs human references, mean over k-means seeds (0-1)", ".4f"))
register(Metric("coherence", "higher", "mean per-token log p(continuation | prompt) under the scorer LM (nats)", ".3f"))
register(Metric("coherence-sim", "higher", "cosine of prompt and continuation sentence embeddings (SimCTG; -1..1)", ".4f"))
register(Metric("perplexity", "lower", "corpus perplexity of continuations given prompts under the scorer LM", ".2f"))
