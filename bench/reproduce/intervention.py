"""The surgery behind the causal tests: moving a final block between models, and removing directions.

* :func:`transplant_final_block` copies every parameter and buffer of one model's last
  transformer block into another's (same architecture): "the base model with the hyperfitted final
  block" and the reverse. Everything else of the recipient stays as it was.
* :func:`fit_subspace` finds the top-k principal directions of a set of states (k = the states'
  participation ratio, rounded, by default); :meth:`Subspace.project` keeps the mean and the
  component inside those directions and drops the rest.
* :func:`project_final_state` hooks the model's final norm so that the state the unembedding reads
  (HF's ``hidden_states[-1]``) is projected: fitted on the base model's final states, it removes
  from the hyperfitted model exactly the directions the base model does not use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.errors import BenchError


def transplant_final_block(recipient: Any, donor: Any) -> list[str]:
    """Copy the donor's last block into the recipient's, in place; the names copied."""
    import torch

    from bench.hyperfit.train import find_blocks

    mine, theirs = find_blocks(recipient)[1][-1], find_blocks(donor)[1][-1]
    target = dict(mine.named_parameters()) | dict(mine.named_buffers())
    source = dict(theirs.named_parameters()) | dict(theirs.named_buffers())
    if target.keys() != source.keys():
        raise BenchError(f"cannot transplant the final block: its tensors differ "
                         f"({sorted(target.keys() ^ source.keys())[:3]})")
    for name, tensor in target.items():  # every shape checked before anything is copied
        if tensor.shape != source[name].shape:
            raise BenchError(f"cannot transplant the final block: {name} is {tuple(tensor.shape)} here, "
                             f"{tuple(source[name].shape)} in the donor")
    with torch.no_grad():
        for name, tensor in target.items():
            tensor.copy_(source[name])
    return sorted(target)


@dataclass(frozen=True)
class Subspace:
    """An affine subspace: the states' mean plus the span of their top-k principal directions."""

    mean: Any
    """[d] float64 tensor."""
    basis: Any
    """[d, k] float64 tensor with orthonormal columns (the covariance's top-k eigenvectors)."""
    k: int
    """Number of directions kept."""
    participation_ratio: float
    """PR of the covariance the subspace was fitted on."""

    def project(self, h: Any) -> Any:
        """``mean + (h - mean) B B^T`` over the last dimension, in ``h``'s dtype."""
        centred = h.double() - self.mean.to(h.device)
        basis = self.basis.to(h.device)
        return (self.mean.to(h.device) + centred @ basis @ basis.T).to(h.dtype)


def fit_subspace(states: Any, dim: int | None = None) -> Subspace:
    """The principal subspace of ``states`` [n, d]; ``dim`` directions (default: PR rounded, at least 1)."""
    import torch

    x = states.double()
    if x.dim() != 2 or x.size(0) < 2:
        raise BenchError(f"fitting a subspace needs at least 2 states of shape [n, d], got {tuple(x.shape)}")
    mean = x.mean(0)
    cov = (x - mean).T @ (x - mean) / (x.size(0) - 1)
    eigenvalues, vectors = torch.linalg.eigh(cov)  # ascending
    eigenvalues = eigenvalues.clamp(min=0)
    pr = float(eigenvalues.sum() ** 2 / (eigenvalues ** 2).sum())
    k = max(1, round(pr)) if dim is None else dim
    if not 1 <= k <= x.size(1):
        raise BenchError(f"subspace dimension must be in 1..{x.size(1)}, got {k}")
    return Subspace(mean, vectors[:, -k:].flip(-1).contiguous(), k, pr)


def project_final_state(model: Any, subspace: Subspace) -> Any:
    """Project the output of the model's final norm onto ``subspace``; the hook's removable handle."""
    from bench.analysis.geometry import final_norm

    def hook(module: Any, inputs: Any, output: Any) -> Any:
        return subspace.project(output)

    return final_norm(model).register_forward_hook(hook)
