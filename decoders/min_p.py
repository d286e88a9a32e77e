"""Min-p sampling (Nguyen et al. 2024): keep tokens of probability >= p times the top token's.

An engine parameter (``EngineParams.min_p``): the HF backend applies transformers'
``MinPLogitsWarper`` after the temperature, as ``generate`` does, and vLLM its native ``min_p``
(also after the temperature).
"""

from typing import Annotated

from bench.decoding import EngineParams, LogitsDecoder
from bench.errors import check
from bench.registry import decoder
from decoders.temperature import check_temperature


@decoder(
    "min-p",
    description="min-p sampling (Nguyen et al. 2024): tokens of probability >= p x the top one's, at temperature "
                "t; default p=0.1 (Nguyen et al. recommend 0.05-0.1; transformers' MinPLogitsWarper, vLLM min_p)",
    sampling=True,
)
def min_p(
    p: Annotated[float, "fraction of the top token's probability, in (0, 1]"] = 0.1,
    t: Annotated[float, "temperature applied before the filter, > 0"] = 1.0,
) -> LogitsDecoder:
    check(0 < p <= 1, f"decoder 'min-p': p must be in (0, 1], got {p}")
    check_temperature("min-p", t)
    return LogitsDecoder(EngineParams(temperature=t, min_p=p))
