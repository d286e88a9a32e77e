"""Pure sampling from softmax(logits / t)."""

from typing import Annotated

from bench.decoding import EngineParams, LogitsDecoder
from bench.errors import check
from bench.registry import decoder


def check_temperature(name: str, t: float) -> None:
    check(t > 0 and t == t and t != float("inf"), f"decoder '{name}': temperature t must be > 0 and finite, got {t}")


@decoder("temperature", description="sample from softmax(logits / t)", sampling=True)
def temperature(t: Annotated[float, "temperature, > 0"] = 1.0) -> LogitsDecoder:
    check_temperature("temperature", t)
    return LogitsDecoder(EngineParams(temperature=t))
