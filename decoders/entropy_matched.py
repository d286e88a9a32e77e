"""Entropy-matched temperature: the control of "Beyond Temperature" (Li et al. 2026).

Hyperfitting lowers a model's predictive entropy. The control asks whether a plain temperature on
the base model, chosen so that the base model's entropy matches the hyperfitted model's, gives
the same text. Both modes sample with the harness's per-record seeds (temperature does not move
the argmax, so greedy would ignore it).

* ``mode=global`` (the paper): one temperature T* solved by bisection so that the base model's
  mean predictive entropy over the calibration contexts equals the target.
* ``mode=per-step``: T solved at every step, per row, so that step's entropy equals the target.

Calibration contexts: the first ``calib_prompts`` prompts of the suite, each continued greedily for
``calib_tokens`` tokens by the reference model (the hyperfitted checkpoint when ``--hyperfit`` is
given, else the base model); the distributions are those that predicted each continuation token.
Without ``target``, the target is the hyperfitted model's mean entropy over those contexts.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any

from bench.decoding import EngineParams, LogitsDecoder, RowRNG, sample_from_probs
from bench.errors import BenchError, check
from bench.registry import decoder

if TYPE_CHECKING:
    import torch

LOG_T_RANGE = (math.log(1e-3), math.log(1e3))
"""Temperatures searched, in log space."""
BISECTION_STEPS = 60


def entropy(logits: "torch.Tensor", temperature: "torch.Tensor | float") -> "torch.Tensor":
    """Entropy in nats of softmax(logits / T), per row; T broadcasts over rows."""
    z = logits / temperature
    logp = z.log_softmax(dim=-1)
    return -(logp.exp() * logp).sum(dim=-1)


def solve_temperature(logits: "torch.Tensor", target: float | "torch.Tensor", *, per_row: bool) -> "torch.Tensor":
    """Bisection in log T: entropy rises monotonically with T, from log(#argmax ties) to log(V).

    ``per_row``: one T per row so that each row's entropy equals ``target``; otherwise one T so
    that the mean entropy over all rows does. Unreachable targets end at the range's edge.
    """
    import torch

    shape = (logits.size(0), 1) if per_row else ()
    lo = torch.full(shape, LOG_T_RANGE[0], dtype=torch.float64, device=logits.device)
    hi = torch.full(shape, LOG_T_RANGE[1], dtype=torch.float64, device=logits.device)
    for _ in range(BISECTION_STEPS):
        mid = (lo + hi) / 2
        h = entropy(logits, mid.exp())
        too_hot = (h > target).unsqueeze(-1) if per_row else h.mean() > target
        hi = torch.where(too_hot, mid, hi)
        lo = torch.where(too_hot, lo, mid)
    return ((lo + hi) / 2).exp()


def continuation_logits(backend: Any, texts: list[str], continuations: list[list[int]]) -> "torch.Tensor":
    """The logits that predicted each continuation token, for every context, stacked [positions, V]."""
    import torch

    rows = []
    with torch.inference_mode():
        for prompt_ids, cont in zip(backend.encode(texts), continuations):
            if not cont:
                continue
            ids = torch.tensor([prompt_ids + cont], device=backend.device)
            logits = backend.model(input_ids=ids).logits[0].double()
            rows.append(logits[len(prompt_ids) - 1 : len(prompt_ids) - 1 + len(cont)])
    if not rows:
        raise BenchError("entropy-matched: the calibration contexts are empty (every greedy continuation ended at once)")
    return torch.cat(rows)


class EntropyMatched(LogitsDecoder):
    """Sampling at a calibrated temperature: one T* (``global``) or one T per row and step.

    ``select`` computes in float64 (the records' reference arithmetic); engines get the same
    distribution from :meth:`engine_params`: T* as the temperature, or the per-step solve as a
    logits transform followed by sampling at temperature 1.
    """

    calibrates = True

    def __init__(self, target: float | None, mode: str, calib_prompts: int, calib_tokens: int):
        super().__init__(None)
        self.target, self.mode = target, mode
        self.calib_prompts, self.calib_tokens = calib_prompts, calib_tokens
        self.temperature: float | None = None
        self.last_entropy: "torch.Tensor | None" = None

    def calibrate(self, base: Any, reference: Any, prompts: list[Any]) -> dict[str, Any]:
        """Measure the target (if not given) and solve T* on the reference model's greedy contexts."""
        from decoders.greedy import greedy

        texts = [p.text for p in prompts[: self.calib_prompts]]
        outs = reference.continue_batch(texts, greedy(), max_new_tokens=self.calib_tokens, seeds=[0] * len(texts))
        contexts = [o.token_ids for o in outs]
        base_logits = continuation_logits(base, texts, contexts)
        if self.target is None:
            self.target = float(entropy(continuation_logits(reference, texts, contexts), 1.0).mean())
        check(self.target < math.log(base_logits.size(-1)),
              f"decoder 'entropy-matched': target {self.target:.3f} nats is not below log(vocabulary size)")
        resolved = {"target_entropy": round(self.target, 6), "calibration_positions": base_logits.size(0),
                    "base_entropy_t1": round(float(entropy(base_logits, 1.0).mean()), 6)}
        if self.mode == "global":
            self.temperature = float(solve_temperature(base_logits, self.target, per_row=False))
            resolved["temperature"] = round(self.temperature, 6)
            resolved["achieved_entropy"] = round(float(entropy(base_logits, self.temperature).mean()), 6)
        return resolved

    def features(self) -> frozenset[str]:
        return frozenset({"temperature"} if self.mode == "global" else {"transform"})

    def engine_params(self) -> EngineParams:
        if self.target is None or (self.mode == "global" and self.temperature is None):
            raise RuntimeError("entropy-matched: calibrate() must run before its temperature exists")
        if self.mode == "global":
            return EngineParams(temperature=float(self.temperature))
        return EngineParams(transform=self.per_step_transform)

    def per_step_transform(self, logits: "torch.Tensor") -> "torch.Tensor":
        """Logits divided by each row's own T, solved so that the row's entropy equals the target."""
        logits = logits.double()
        return logits / solve_temperature(logits, self.target, per_row=True)

    def steps(self) -> list[str]:
        """What :meth:`select` does, for the run header (:mod:`bench.applied`)."""
        self.engine_params()  # raises before calibration
        if self.mode == "global":
            scale = f"divide the logits by the calibrated temperature {self.temperature:.6g}"
        else:
            scale = f"divide each row's logits by the temperature that gives it entropy {self.target:.6g} nats"
        return [scale + " (float64)", "softmax, then one draw (inverse CDF) from the record's seed"]

    def select(self, logits: "torch.Tensor", rng: RowRNG) -> "torch.Tensor":
        self.engine_params()  # raises before calibration
        logits = logits.double()
        if self.mode == "global":
            t: Any = self.temperature
        else:
            t = solve_temperature(logits, self.target, per_row=True)  # one T per row, this step
        self.last_entropy = entropy(logits, t)
        return sample_from_probs((logits / t).softmax(dim=-1), rng)


MAX_CALIB_PROMPTS = 100_000
MAX_CALIB_TOKENS = 100_000
"""Bounds far above any calibration (32 x 64 by default): larger values are typos that would
allocate more than any machine holds."""


@decoder(
    "entropy-matched",
    description="sample from the base model at the temperature whose entropy matches a target (a hyperfitted model's)",
    sampling=True,
    requires=("hyperfit",),
    requires_help="give a hyperfitted checkpoint (make one with 'bench hyperfit') or a numeric target=NATS",
    waived_by=("target",),
    check_model=lambda spec, config: _check_for_model(spec, config),
)
def entropy_matched(
    target: Annotated[float | None, "target entropy in nats; default: measured on --hyperfit"] = None,
    mode: Annotated[str, "global (one T*, the paper) or per-step (T solved every step)"] = "global",
    calib_prompts: Annotated[int, "prompts used to calibrate"] = 32,
    calib_tokens: Annotated[int, "greedy tokens per calibration prompt"] = 64,
) -> EntropyMatched:
    check(target is None or (target > 0 and math.isfinite(target)),
          f"decoder 'entropy-matched': target must be > 0 nats, got {target}")
    check(mode in ("global", "per-step"), f"decoder 'entropy-matched': mode must be global or per-step, got '{mode}'")
    check(1 <= calib_prompts <= MAX_CALIB_PROMPTS and 1 <= calib_tokens <= MAX_CALIB_TOKENS,
          f"decoder 'entropy-matched': calib_prompts must be in 1..{MAX_CALIB_PROMPTS:,} and calib_tokens in "
          f"1..{MAX_CALIB_TOKENS:,}, got {calib_prompts} and {calib_tokens}")
    return EntropyMatched(target, mode, calib_prompts, calib_tokens)


def _check_for_model(spec: Any, config: Any) -> None:
    """Plan-time check: a target must lie below log(vocabulary size) of the model it runs on."""
    target = spec.kwargs.get("target")
    vocab = getattr(config, "vocab_size", None)
    if target is not None and vocab and target >= math.log(vocab):
        raise BenchError(
            f"decoder 'entropy-matched': target {target} nats is not below log(vocabulary size) = {math.log(vocab):.3f}"
        )

