"""Decoder plugins, one module each. Importing this package registers them all."""

from decoders import entropy_matched, greedy, greedy_hyperfit, temperature, top_k, top_p  # noqa: F401
from decoders import static_reweight  # noqa: F401,E402
from decoders import contrastive  # noqa: F401
