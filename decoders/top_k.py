"""Top-k sampling (Fan et al. 2018): sample among the k most likely tokens."""

from typing import Annotated

from bench.decoding import EngineParams, LogitsDecoder
from bench.errors import check
from bench.registry import decoder
from decoders.temperature import check_temperature


@decoder("top-k", description="sample among the k most likely tokens, at temperature t", sampling=True)
def top_k(
    k: Annotated[int, "number of candidates, >= 1"] = 50,
    t: Annotated[float, "temperature, > 0"] = 1.0,
) -> LogitsDecoder:
    check(k >= 1, f"decoder 'top-k': k must be >= 1, got {k}")
    check_temperature("top-k", t)
    return LogitsDecoder(EngineParams(temperature=t, top_k=k))
