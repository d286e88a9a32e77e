"""Experiment 3: does a static vocabulary reweighting reproduce hyperfitting?

The ``static-reweight`` decoder (:mod:`decoders.static_reweight`) is calibrated once (the offset
toward the ``top_k`` tokens whose rank rises most after hyperfitting) and then run on the base
model at every alpha of the sweep, plus alpha = 0 (the base model itself) as the reference.
Repetition and diversity are measured at each alpha; the hyperfitted model's greedy text is the
target the sweep is compared with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from bench.analysis.contexts import Pair, generate
from bench.analysis.control import text_metrics
from bench.stats import Estimate
from bench.errors import BenchError

DEFAULT_ALPHAS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5)


def parse_alphas(text: str) -> tuple[float, ...]:
    """``"0.01,0.1,0.5"`` to a sorted tuple of distinct finite alphas >= 0; BenchError otherwise."""
    values = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            raise BenchError(f"--alphas: empty entry in '{text}' (give comma-separated numbers, e.g. 0.01,0.1,0.5)")
        try:
            value = float(item)
        except ValueError:
            raise BenchError(f"--alphas: '{item}' is not a number") from None
        if not (math.isfinite(value) and value >= 0):
            raise BenchError(f"--alphas: every alpha must be finite and >= 0, got {item}")
        values.append(value)
    return tuple(sorted(set(values)))


@dataclass
class SweepPoint:
    alpha: float
    metrics: dict[str, Estimate]


@dataclass
class Sweep:
    calibration: dict[str, Any]
    """What the decoder's calibrate hook resolved (tokens, positions, offset size)."""
    points: list[SweepPoint]
    """alpha = 0 first, then the sweep in increasing order."""


def run_sweep(pair: Pair, prompts: Sequence[Any], calib_prompts: Sequence[Any], alphas: Sequence[float], *,
              top_k: int, greedy: bool, calib_tokens: int, max_new_tokens: int, batch_size: int, seed: int,
              n_boot: int) -> Sweep:
    """Calibrate ``static-reweight`` once and generate with the base model at each alpha."""
    from decoders.static_reweight import static_reweight

    decoder = static_reweight(alpha=0.0, top_k=top_k, greedy=greedy, calib_prompts=len(calib_prompts),
                              calib_tokens=calib_tokens)
    calibration = decoder.calibrate(pair.base, pair.hyper, list(calib_prompts))
    points = []
    for alpha in (0.0, *[a for a in alphas if a != 0.0]):
        conts = generate(pair.base, prompts, decoder.with_alpha(alpha), max_new_tokens=max_new_tokens,
                         batch_size=batch_size, seed=seed)
        texts = [pair.base.decode(c) for c in conts]
        points.append(SweepPoint(alpha, text_metrics(texts, conts, n_boot, seed)))
    return Sweep(calibration, points)
