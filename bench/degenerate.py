"""Continuations the word-level metrics do not see: blank, whitespace runs, no words.

Used by the leaderboard's degenerate shares (:func:`bench.leaderboard.degeneracy`) and the
columnar reader of a run's records (:mod:`bench.record_columns`).
"""

from __future__ import annotations

import itertools
import re

WHITESPACE_RUN = 16
"""Consecutive whitespace characters from which a continuation counts as a whitespace run (prose
has at most a blank line or two; DoLa on SmolLM2 wrote runs of dozens of spaces mid-text)."""
WHITESPACE_SHARE = 0.5
"""Share of whitespace characters from which a continuation counts as mostly blank."""
_RUN = re.compile(r"\s{%d,}" % WHITESPACE_RUN)


def whitespace_degenerate(text: str) -> bool:
    """Blank, mostly whitespace, or holding a long run of it (text the word-level metrics do not see)."""
    if not text.strip():
        return True
    # str.split() cuts at exactly the characters str.isspace() accepts: the rest is whitespace
    spaces = len(text) - sum(map(len, text.split()))
    return bool(_RUN.search(text)) or spaces >= WHITESPACE_SHARE * len(text)


MIN_WORDS = 3
"""Words (runs of letters or digits) below which a continuation that is not blank counts as wordless
(``....``, ``---``): the word-level metrics see no words in it, so it would look repetition-free."""
_WORD = re.compile(r"[^\W_]+")


def few_words(text: str) -> bool:
    """Fewer than :data:`MIN_WORDS` words."""
    return next(itertools.islice(_WORD.finditer(text), MIN_WORDS - 1, None), None) is None  # stops at the third
