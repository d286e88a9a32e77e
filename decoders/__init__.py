"""Decoder plugins, one module each. Importing this package registers them all."""

from decoders import (  # noqa: F401
    adaptive_contrastive,
    contrastive,
    contrastive_decoding,
    entropy_matched,
    greedy,
    greedy_hyperfit,
    static_reweight,
    temperature,
    top_k,
    top_p,
)
