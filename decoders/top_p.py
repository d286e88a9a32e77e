"""Nucleus sampling (Holtzman et al. 2020): sample from the smallest set of mass >= p."""

from typing import Annotated

from bench.decoding import EngineParams, LogitsDecoder
from bench.errors import check
from bench.registry import decoder
from decoders.temperature import check_temperature


@decoder("top-p", description="nucleus sampling: the smallest token set of mass >= p, at temperature t", sampling=True)
def top_p(
    p: Annotated[float, "nucleus mass, in (0, 1]"] = 0.95,
    t: Annotated[float, "temperature applied before the nucleus, > 0"] = 1.0,
) -> LogitsDecoder:
    check(0 < p <= 1, f"decoder 'top-p': p must be in (0, 1], got {p}")
    check_temperature("top-p", t)
    # Applied as transformers' generate applies them: temperature first, then the nucleus.
    return LogitsDecoder(EngineParams(temperature=t, top_p=p))
