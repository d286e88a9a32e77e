"""decbench's Python API: run a sweep and read a run store as pandas DataFrames, printing nothing.

    >>> import decbench
    >>> board = decbench.run(models=["../shared/models/stories260K"], decoders=["greedy", "top-p:p=0.9"],
    ...                      suites=["wikitext"], num_prompts=20, max_new_tokens=32, out="runs")
    >>> records, scores = decbench.load("runs")

The same plan, run identities, store and checks as ``bench run``: a call that the command line
would refuse raises :class:`BenchError` with the command line's one-line message.
"""

from bench.errors import BenchError
from decbench.api import Loaded, load, run

__all__ = ["BenchError", "Loaded", "load", "run"]
