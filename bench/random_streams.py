"""Counter-based random streams: one uniform number per record and draw, computed on the device.

Sampling needs, for every batch row, a uniform number that depends only on the record (its seed,
:func:`bench.decoding.record_seed`) and on how many numbers that record has drawn so far (its
step), never on the batch it ran in, on an interrupted and resumed run, or on the device. The
numbers are therefore a pure function ``u(seed, step)``, computed for the whole batch at once with
integer tensor arithmetic on the logits' device, instead of one CPU generator per row.

The function is Threefry-2x32 with 20 rounds (Salmon et al., "Parallel random numbers: as easy as
1, 2, 3", SC 2011; the Random123 library; JAX's default generator), a counter-based generator that
passes TestU01's BigCrush. The key is the record seed split into two 32-bit words, the counter is
the step (low word, high word). Its two 32-bit outputs give 53 bits ``m`` and ``u = (m + 1) / 2**53``,
which lies in (0, 1]: a zero would select a zero-probability token at index 0.

Bit-identical on every device: each 32-bit word is held in an int64 tensor with a value in
[0, 2**32) and every operation is masked back to 32 bits. Threefry uses only addition, rotation
and exclusive-or, so no intermediate exceeds 2**62 (a 32-bit word shifted left by at most 29
bits, or a sum of three words): int64 never overflows and shifts never see a negative number, so
the result is exact integer arithmetic wherever it runs, and the final conversion of a 53-bit
integer to float64 is exact too.

Numbers are computed in blocks of :data:`BLOCK` steps for all rows (one pass of about 150 tensor
operations per block instead of per step); a block is a function of (seed, step) too, so blocking
changes no value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    import torch

SAMPLER_VERSION = 2
"""Which streams sampled records were drawn from: 1 = one ``torch.Generator`` per row (Mersenne
Twister, ``1 - torch.rand``), the streams of every store written before this field existed;
2 = Threefry-2x32 counter streams (this module).
Part of a run's identity (:class:`bench.specs.GenerationSpec`)."""

MASK32 = 0xFFFFFFFF
ROTATIONS = (13, 15, 26, 6, 17, 29, 16, 24)
"""Threefry-2x32's rotation constants (Random123's R_32x2)."""
KEY_PARITY = 0x1BD11BDA
"""Threefish's key-schedule parity constant (Random123's SKEIN_KS_PARITY32)."""
ROUNDS = 20
BLOCK = 64
"""Steps computed at once per row."""


def threefry2x32(key: tuple["torch.Tensor", "torch.Tensor"],
                 counter: tuple["torch.Tensor", "torch.Tensor"]) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Threefry-2x32-20 of broadcastable int64 tensors holding 32-bit words; returns two words."""
    k0, k1 = key
    schedule = (k0, k1, k0 ^ k1 ^ KEY_PARITY)
    x0 = (counter[0] + schedule[0]) & MASK32
    x1 = (counter[1] + schedule[1]) & MASK32
    for r in range(ROUNDS):
        x0 = (x0 + x1) & MASK32
        x1 = _rotate_left(x1, ROTATIONS[r % 8]) ^ x0
        if r % 4 == 3:  # key injection every 4 rounds
            s = r // 4 + 1
            x0 = (x0 + schedule[s % 3]) & MASK32
            x1 = (x1 + schedule[(s + 1) % 3] + s) & MASK32
    return x0, x1


def _rotate_left(x: "torch.Tensor", bits: int) -> "torch.Tensor":
    return ((x << bits) & MASK32) | (x >> (32 - bits))


def uniforms(seeds: "torch.Tensor", first_step: int, steps: int) -> "torch.Tensor":
    """``u(seed, step)`` in (0, 1] as float64 [rows, steps] for steps ``first_step ...``, on ``seeds``' device."""
    import torch

    key = ((seeds & MASK32).unsqueeze(1), (seeds >> 32).unsqueeze(1))
    step = torch.arange(first_step, first_step + steps, dtype=torch.int64, device=seeds.device).unsqueeze(0)
    hi, lo = threefry2x32(key, (step & MASK32, step >> 32))
    mantissa = (hi << 21) | (lo >> 11)  # 53 bits
    return (mantissa + 1).to(torch.float64) * 2.0 ** -53


class RowRNG:
    """The random streams of a batch: ``uniform()`` gives the next number of every row, on a device.

    Every row draws in lockstep (one number per call), so the ``step`` counter is shared; rows are
    told apart by their seed (a record seed below 2**63).
    """

    def __init__(self, seeds: Sequence[int]):
        import torch

        bad = [s for s in seeds if not 0 <= int(s) < 1 << 63]
        if bad:
            raise ValueError(f"record seeds must lie in [0, 2**63): {bad[:3]}")
        self.seeds = torch.tensor([int(s) for s in seeds], dtype=torch.int64)
        self.step = 0
        """Numbers each row has drawn so far."""
        self._block: "torch.Tensor | None" = None
        self._block_start = 0

    def uniform(self, device: "torch.device | str | None" = None) -> "torch.Tensor":
        """The next number of every row, float64 [rows] in (0, 1], on ``device`` (default: CPU)."""
        import torch

        device = torch.device(device) if device is not None else self.seeds.device
        if self.seeds.device != device:
            self.seeds = self.seeds.to(device)
            self._block = None
        offset = self.step - self._block_start
        if self._block is None or offset >= self._block.size(1):
            self._block, self._block_start, offset = uniforms(self.seeds, self.step, BLOCK), self.step, 0
        self.step += 1
        return self._block[:, offset]

    def select(self, rows: "torch.Tensor") -> "RowRNG":
        """The streams of a subset of rows (for backends that drop finished rows); same step."""
        sub = RowRNG.__new__(RowRNG)
        rows = rows.to(self.seeds.device)
        sub.seeds = self.seeds[rows]
        sub.step, sub._block_start = self.step, self._block_start
        sub._block = self._block[rows] if self._block is not None else None
        return sub
