"""Greedy decoding: the argmax token at every step (``model.generate(do_sample=False)``)."""

from bench.decoding import Greedy
from bench.registry import decoder


@decoder("greedy", description="argmax at every step; deterministic", sampling=False)
def greedy() -> Greedy:
    return Greedy()
