"""Hyperfitting: fine-tune a pretrained LM to near-zero training loss, and load the result.

``bench hyperfit`` (:mod:`bench.hyperfit.cli`) trains; :func:`bench.hyperfit.checkpoint.load_hyperfit`
loads a hyperfitted full model or PEFT adapter over its base. Importing this package is cheap:
torch, transformers and peft are imported inside the functions that need them.
"""

from bench.hyperfit.checkpoint import checkpoint_fingerprint, load_hyperfit

__all__ = ["checkpoint_fingerprint", "load_hyperfit"]
