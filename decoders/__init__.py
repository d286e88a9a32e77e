"""Decoder plugins, one module each. Importing this package registers them all."""

from decoders import (  # noqa: F401
    adaptive_contrastive,
    beam,
    contrastive,
    contrastive_decoding,
    dola,
    entropy_matched,
    epsilon,
    eta,
    greedy,
    greedy_hyperfit,
    min_p,
    static_reweight,
    temperature,
    top_k,
    top_p,
    typical,
)
