"""Scorers: metrics computed from continuations (texts and, optionally, their token ids).

* :mod:`bench.scorers.repetition`: rep-2/3/4 and diversity (exactly as SimCTG computes them),
  distinct-1..4, lengths and token type-token ratios, plus bootstrap confidence intervals.
* :mod:`bench.scorers.files`: ``bench score FILE.jsonl`` for generations made elsewhere.

Metric names, units and directions are registered in :mod:`bench.metrics`.
"""

from bench.scorers.files import read_generations, score_file
from bench.scorers.repetition import bootstrap_ci, score_texts

__all__ = ["bootstrap_ci", "read_generations", "score_file", "score_texts"]
