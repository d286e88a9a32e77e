"""decbench: a reproducible benchmark harness for decoding strategies of causal LMs."""

__version__ = "0.1.0"
