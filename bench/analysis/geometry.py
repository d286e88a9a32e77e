"""Experiments 4 and 5: layer-wise geometry of the hidden states, and the logit lens.

Layer 0 is the embedding output, layer l the output of block l (``output_hidden_states=True``).
Hugging Face models return the last block's output *after* the final norm, so the last layer is
the very state the unembedding reads.

Geometry, per layer, over every real token of the inputs (prompt + continuation, each row's first
token excluded, see :func:`bench.analysis.contexts.teacher_forced`):

* participation ratio ``PR = (sum_i l_i)^2 / sum_i l_i^2`` of the eigenvalues ``l_i`` of the
  hidden-state covariance, for each model; ``Delta Dim = PR(hyperfitted) - PR(base)``;
* cosine similarity and L2 distance between the two models' hidden states at the same token,
  averaged per prompt (then over prompts, with bootstrap intervals).

Logit lens, per layer and model, on the positions that predict continuation tokens: the fraction
where argmax(unembed(final_norm(h_l))) equals the model's own final top-1. The last layer is
already normed, so its projection is the model's logits and its agreement is 1 by construction.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.analysis.contexts import Batch
from bench.analysis.stats import Covariance
from bench.errors import BenchError

_NORM_NAMES = ("norm", "ln_f", "final_layer_norm", "final_layernorm", "norm_f")


def final_norm(model: Any) -> Any:
    """The final normalisation module applied before the unembedding."""
    inner = getattr(model, "base_model", model)
    for holder in (inner, getattr(inner, "decoder", None), getattr(inner, "model", None)):
        for name in _NORM_NAMES:
            module = getattr(holder, name, None) if holder is not None else None
            if module is not None:
                return module
    raise BenchError(f"logit lens: cannot find the final norm of {type(model).__name__} "
                     f"(looked for {', '.join(_NORM_NAMES)})")


class GeometryCollector:
    """Covariances per layer and model; per-row mean cosine and L2 between the models per layer."""

    def __init__(self, n_rows: int):
        self.n_rows = n_rows
        self.base: list[Covariance] = []
        self.hyper: list[Covariance] = []
        self.cosine: np.ndarray | None = None
        self.l2: np.ndarray | None = None

    def update(self, batch: Batch) -> None:
        import torch

        layers = len(batch.base_hidden)
        if not self.base:
            self.base = [Covariance() for _ in range(layers)]
            self.hyper = [Covariance() for _ in range(layers)]
            self.cosine = np.full((self.n_rows, layers), np.nan)
            self.l2 = np.full((self.n_rows, layers), np.nan)
        real = batch.real
        counts = real.sum(-1).double()
        for layer, (hb, hh) in enumerate(zip(batch.base_hidden, batch.hyper_hidden)):
            hb, hh = hb.double(), hh.double()
            self.base[layer].add(hb[real])
            self.hyper[layer].add(hh[real])
            cos = torch.nn.functional.cosine_similarity(hb, hh, dim=-1).masked_fill(~real, 0).sum(-1) / counts
            dist = (hb - hh).norm(dim=-1).masked_fill(~real, 0).sum(-1) / counts
            for r, row in enumerate(batch.rows):
                self.cosine[row, layer] = float(cos[r])
                self.l2[row, layer] = float(dist[r])

    def participation_ratios(self) -> tuple[list[float], list[float]]:
        return [c.participation_ratio() for c in self.base], [c.participation_ratio() for c in self.hyper]


class LensCollector:
    """Per row, layer and model: agreement of the layer's logit-lens top-1 with the final top-1."""

    def __init__(self, n_rows: int, base_model: Any, hyper_model: Any):
        self.n_rows = n_rows
        self.models = {"base": base_model, "hyper": hyper_model}
        self.agreement: dict[str, np.ndarray] = {}

    def update(self, batch: Batch) -> None:
        import torch

        keep = batch.targets.size(1)
        count = batch.predicts.sum(-1).double()
        for name, hidden, logits in (("base", batch.base_hidden, batch.base_logits),
                                     ("hyper", batch.hyper_hidden, batch.hyper_logits)):
            model = self.models[name]
            norm, unembed = final_norm(model), model.get_output_embeddings()
            final_top = logits.argmax(-1)
            table = self.agreement.setdefault(name, np.full((self.n_rows, len(hidden)), np.nan))
            with torch.inference_mode():
                for layer, h in enumerate(hidden):
                    h = h[:, -keep:]
                    top = final_top if layer == len(hidden) - 1 else unembed(norm(h)).argmax(-1)
                    agree = ((top == final_top) & batch.predicts).sum(-1).double() / count
                    for r, row in enumerate(batch.rows):
                        table[row, layer] = float(agree[r])
