"""Epsilon sampling (Hewitt et al. 2022): drop every token of probability below eps.
Pinned to transformers' ``EpsilonLogitsWarper``."""

from typing import Annotated

from bench.decoding import LogitsDecoder
from bench.errors import check
from bench.registry import decoder
from decoders.temperature import check_temperature
from decoders.truncation import tempered_truncation


@decoder(
    "epsilon",
    description="epsilon sampling (Hewitt et al. 2022): tokens of probability >= eps, at temperature t; "
                "default eps=0.0009 (Hewitt et al.'s range 3e-4 to 4e-3; transformers' EpsilonLogitsWarper)",
    sampling=True,
)
def epsilon(
    eps: Annotated[float, "probability cutoff, in (0, 1)"] = 0.0009,
    t: Annotated[float, "temperature applied before the truncation, > 0"] = 1.0,
) -> LogitsDecoder:
    check(0 < eps < 1, f"decoder 'epsilon': eps must be in (0, 1), got {eps}")
    check_temperature("epsilon", t)
    return tempered_truncation("epsilon", eps, t)
