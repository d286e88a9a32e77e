"""Counter-based random streams (bench.random_streams) and the sampler version in the run identity."""

from __future__ import annotations

import json

import pytest
import torch

from bench.decoding import record_seed
from bench.random_streams import BLOCK, RowRNG, threefry2x32, uniforms
from bench.specs import DecoderSpec, GenerationSpec, ModelSpec, RunSpec, SuiteSpec

SEEDS = [record_seed(0, f"p{i}", 0) for i in range(8)] + [0, 1, 2, (1 << 63) - 1]


def words(*values: int) -> tuple[torch.Tensor, ...]:
    return tuple(torch.tensor(v, dtype=torch.int64) for v in values)


@pytest.mark.parametrize("key, counter, expected", [
    # Random123's known-answer vectors for threefry2x32 with 20 rounds (kat_vectors), also JAX's.
    ((0, 0), (0, 0), (0x6B200159, 0x99BA4EFE)),
    ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
    ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
])
def test_threefry_matches_the_published_known_answers(key, counter, expected) -> None:
    out = threefry2x32(words(*key), words(*counter))
    assert tuple(int(w) for w in out) == expected


def draws(rng: RowRNG, steps: int) -> torch.Tensor:
    return torch.stack([rng.uniform() for _ in range(steps)], dim=1)


def test_a_rows_numbers_do_not_depend_on_the_batch() -> None:
    steps = 2 * BLOCK + 5  # crosses block boundaries
    together = draws(RowRNG(SEEDS), steps)
    for i, seed in enumerate(SEEDS):
        alone = draws(RowRNG([seed]), steps)
        assert torch.equal(alone[0], together[i])  # bit-identical, not merely close
    reordered = draws(RowRNG(SEEDS[::-1]), steps)
    assert torch.equal(reordered, together.flip(0))
    assert torch.equal(together, uniforms(torch.tensor(SEEDS), 0, steps))


def test_selecting_rows_keeps_their_streams() -> None:
    full, part = RowRNG(SEEDS), RowRNG(SEEDS)
    head = draws(part, 70)
    part = part.select(torch.tensor([3, 0, 11]))
    tail = draws(part, 70)
    expected = draws(full, 140)[[3, 0, 11]]
    assert torch.equal(torch.cat([head[[3, 0, 11]], tail], dim=1), expected)


def test_numbers_lie_in_the_half_open_unit_interval() -> None:
    u = uniforms(torch.tensor(SEEDS), 0, 4096)
    assert u.dtype == torch.float64
    assert bool((u > 0).all()) and bool((u <= 1).all())
    assert u.unique().numel() == u.numel()  # 53-bit numbers: no repeats expected among 49k


def test_seeds_outside_63_bits_are_refused() -> None:
    with pytest.raises(ValueError, match="2\\*\\*63"):
        RowRNG([1 << 63])
    with pytest.raises(ValueError):
        RowRNG([-1])


def chi_square(counts: torch.Tensor) -> float:
    expected = counts.sum() / counts.numel()
    return float(((counts - expected) ** 2 / expected).sum())


def test_numbers_are_uniform_and_independent() -> None:
    """Chi-square tests, each with a false-alarm rate of 0.1% for a good generator (critical values
    of the chi-square distribution at p = 0.001): 100 bins for the marginal (99 degrees of
    freedom: 148.2), and 10x10 cells (99 degrees of freedom) for pairs of consecutive steps of one
    row and for pairs of neighbouring rows whose seeds differ by 1 (the weakest case for a hash)."""
    seeds = torch.arange(256, dtype=torch.int64)  # consecutive seeds
    u = uniforms(seeds, 0, 512)
    marginal = torch.bincount(((u * 100).ceil().long() - 1).flatten(), minlength=100).double()
    assert chi_square(marginal) < 148.2
    cell = (u * 10).ceil().long() - 1
    steps = torch.bincount((cell[:, :-1] * 10 + cell[:, 1:]).flatten(), minlength=100).double()
    assert chi_square(steps) < 148.2
    rows = torch.bincount((cell[:-1] * 10 + cell[1:]).flatten(), minlength=100).double()
    assert chi_square(rows) < 148.2


def test_the_chi_square_check_can_fail() -> None:
    """The same statistic on a biased source (u squared) is far over the critical value."""
    u = uniforms(torch.arange(256, dtype=torch.int64), 0, 512) ** 2
    counts = torch.bincount(((u * 100).ceil().long() - 1).flatten(), minlength=100).double()
    assert chi_square(counts) > 148.2


@pytest.mark.gpu
def test_cuda_gives_the_cpu_numbers_bit_for_bit() -> None:
    seeds = torch.tensor(SEEDS)
    assert torch.equal(uniforms(seeds.cuda(), 5, 300).cpu(), uniforms(seeds, 5, 300))


# -- the sampler version in the run identity --------------------------------------------------------

OLD_SPEC = json.loads(
    '{"model": {"name": "stories260K", "revision": null, "fingerprint": "abc", "hyperfit": null, '
    '"hyperfit_fingerprint": ""}, "decoder": {"name": "top-p", "args": [["p", 0.9], ["t", 1.0]]}, '
    '"suite": {"name": "cd-wikitext", "version": "1", "source": "", "num_prompts": 12}, '
    '"generation": {"max_new_tokens": 32, "samples_per_prompt": 1, "seed": 0}, '
    '"backend": "hf", "backend_version": "5.24.0", "dtype": "float32"}')
OLD_RUN_ID = "5ca8b30864be3673"  # what the code before sampler versions gave this header


def test_old_headers_keep_their_run_ids_and_read_as_sampler_1() -> None:
    spec = RunSpec.from_dict(OLD_SPEC)
    assert spec.generation.sampler == 1
    assert spec.run_id == OLD_RUN_ID
    assert RunSpec.from_dict(spec.to_dict()).run_id == OLD_RUN_ID  # rewritten headers too


def test_new_runs_carry_the_new_sampler_and_never_reuse_old_ids() -> None:
    new = RunSpec(ModelSpec("stories260K", fingerprint="abc"), DecoderSpec("top-p", (("p", 0.9), ("t", 1.0))),
                  SuiteSpec("cd-wikitext", "1", num_prompts=12), GenerationSpec(32, 1, 0), "hf", "5.24.0", "float32")
    assert new.generation.sampler == 2
    assert new.run_id != OLD_RUN_ID
    assert RunSpec.from_dict(new.to_dict()).run_id == new.run_id
