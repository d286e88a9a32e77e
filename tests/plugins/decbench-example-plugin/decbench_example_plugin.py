"""Top-a sampling (BlinkDL, RWKV): keep the tokens whose probability is at least a * p_max^2."""

from typing import Annotated

from bench.decoding import EngineParams, LogitsDecoder
from bench.errors import check
from bench.registry import decoder


def keep_top_a(a: float):
    def transform(logits):
        probs = logits.softmax(dim=-1)
        limit = a * probs.max(dim=-1, keepdim=True).values ** 2
        return logits.masked_fill(probs < limit, float("-inf"))

    return transform


@decoder("top-a", description="sample among tokens with p >= a * p_max^2 (top-a)", sampling=True)
def top_a(a: Annotated[float, "threshold factor, > 0"] = 0.2,
          t: Annotated[float, "temperature, > 0"] = 1.0) -> LogitsDecoder:
    check(a > 0, f"decoder 'top-a': a must be > 0, got {a}")
    check(t > 0, f"decoder 'top-a': t must be > 0, got {t}")
    return LogitsDecoder(EngineParams(temperature=t, transform=keep_top_a(a)))
