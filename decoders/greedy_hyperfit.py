"""Greedy-hyperfit: greedy decoding on a hyperfitted checkpoint (Carlsson et al. 2025).

The checkpoint comes from ``--hyperfit PATH`` (a full model folder or a PEFT adapter over
``--model``); ``bench hyperfit`` makes one.
"""

from bench.decoding import Greedy
from bench.registry import decoder


@decoder(
    "greedy-hyperfit",
    description="greedy decoding on the hyperfitted checkpoint given by --hyperfit",
    sampling=False,
    requires=("hyperfit",),
    requires_help="make a checkpoint with 'bench hyperfit --model M --data FILE --out DIR' and pass --hyperfit DIR",
    runs_on_hyperfit=True,
)
def greedy_hyperfit() -> Greedy:
    return Greedy()
