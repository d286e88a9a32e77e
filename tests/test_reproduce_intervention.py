"""The intervention's surgery: a transplanted block is the donor's weights; the projection removes
exactly the directions outside the fitted subspace; ``--skip-last`` adapts exactly the blocks it says."""

from __future__ import annotations

import copy

import pytest
import torch

from bench.reproduce.intervention import fit_subspace, project_final_state, transplant_final_block


def _llama(seed: int, layers: int = 3):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    return LlamaForCausalLM(config).eval()


def test_a_transplanted_block_is_the_donors_weights() -> None:
    recipient, donor = _llama(0), _llama(1)
    before = copy.deepcopy(recipient.state_dict())
    ids = torch.arange(1, 9).unsqueeze(0)
    with torch.no_grad():
        logits_before = recipient(input_ids=ids).logits
    names = transplant_final_block(recipient, donor)
    assert names and all(not n.startswith("model.") for n in names)
    after, theirs = recipient.state_dict(), donor.state_dict()
    last = "model.layers.2."
    for key, value in after.items():
        if key.startswith(last):
            assert torch.equal(value, theirs[key]), key
        else:
            assert torch.equal(value, before[key]), key  # nothing else moved
    assert any(not torch.equal(before[k], theirs[k]) for k in after if k.startswith(last))
    with torch.no_grad():
        assert not torch.allclose(recipient(input_ids=ids).logits, logits_before)
    # a donor whose final block is that of the recipient gives back the recipient's own logits
    undo = copy.deepcopy(recipient)
    transplant_final_block(undo, _donor_with(before))
    with torch.no_grad():
        assert torch.equal(undo(input_ids=ids).logits, logits_before)


def _donor_with(state: dict):
    donor = _llama(7)
    donor.load_state_dict(state, strict=True)
    return donor


def test_the_projection_removes_exactly_the_other_directions() -> None:
    gen = torch.Generator().manual_seed(0)
    scales = torch.tensor([5.0, 4.0, 3.0, 1.0, 0.5, 0.2, 0.1, 0.05])
    states = torch.randn(400, 8, generator=gen, dtype=torch.float64) * scales + 2.0
    sub = fit_subspace(states)
    assert sub.k == round(sub.participation_ratio) and 1 <= sub.k < 8
    basis = sub.basis
    assert torch.allclose(basis.T @ basis, torch.eye(sub.k, dtype=torch.float64), atol=1e-12)
    # the span is that of the covariance's top-k eigenvectors (an independent numpy reference)
    import numpy as np

    from bench.analysis.stats import participation_ratio_of_cov

    cov = np.cov(states.numpy(), rowvar=False)
    top = torch.from_numpy(np.linalg.eigh(cov)[1][:, -sub.k:])
    assert torch.allclose(basis @ basis.T, top @ top.T, atol=1e-8)
    assert sub.participation_ratio == pytest.approx(participation_ratio_of_cov(cov), rel=1e-9)
    h = torch.randn(50, 8, generator=gen, dtype=torch.float64) * 3
    p = sub.project(h)
    outside = (p - sub.mean) - (p - sub.mean) @ basis @ basis.T
    assert outside.norm() <= 1e-10 * (p - sub.mean).norm()  # nothing left outside the span
    assert torch.allclose((h - sub.mean) @ basis, (p - sub.mean) @ basis, atol=1e-12)  # inside unchanged
    assert torch.allclose(sub.project(p), p, atol=1e-12)  # idempotent
    from bench.analysis.stats import participation_ratio

    assert participation_ratio(p.numpy()) <= sub.k + 1e-9
    # the removed part is exactly the component orthogonal to the span
    removed = h - p
    assert torch.allclose(removed @ basis, torch.zeros(50, sub.k, dtype=torch.float64), atol=1e-12)
    with pytest.raises(Exception, match="subspace dimension"):
        fit_subspace(states, dim=9)


def test_the_hook_projects_the_state_the_unembedding_reads() -> None:
    model = _llama(0)
    ids = torch.arange(1, 13).unsqueeze(0)
    with torch.no_grad():
        plain = model(input_ids=ids, output_hidden_states=True)
    sub = fit_subspace(plain.hidden_states[-1][0].double(), dim=3)
    handle = project_final_state(model, sub)
    with torch.no_grad():
        hooked = model(input_ids=ids, output_hidden_states=True)
    expected = sub.project(plain.hidden_states[-1])
    assert torch.allclose(hooked.hidden_states[-1], expected, atol=1e-5)
    assert torch.allclose(hooked.logits, model.lm_head(expected), atol=1e-5)
    for a, b in zip(plain.hidden_states[:-1], hooked.hidden_states[:-1]):
        assert torch.equal(a, b)  # earlier layers untouched
    handle.remove()
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, plain.logits)


def test_skip_last_adapts_the_late_blocks_before_the_final_one() -> None:
    from bench.hyperfit.train import Recipe, resolve_targets

    model = _llama(0, layers=6)
    targets = resolve_targets(model, Recipe(method="late-lora", late_layers=4, skip_last=1))
    blocks = sorted({int(t.split(".")[2]) for t in targets})
    assert blocks == [2, 3, 4]
    final_only = resolve_targets(model, Recipe(method="late-lora", late_layers=1))
    assert sorted({int(t.split(".")[2]) for t in final_only}) == [5]
    assert "skip_last" not in Recipe(method="late-lora").identity()  # older checkpoints keep their identity
    assert Recipe(method="late-lora", skip_last=1).identity()["skip_last"] == 1
    from bench.errors import BenchError

    with pytest.raises(BenchError, match="--skip-last"):
        Recipe(method="late-lora", late_layers=2, skip_last=2).validate()
    with pytest.raises(BenchError, match="late-lora only"):
        Recipe(method="lora", skip_last=1).validate()
