"""What ``--device`` accepts, checked with one line before torch sees the string.

Kept free of imports so that every module that resolves a device (backends, scorers, the judge)
can use it without import cycles.
"""

from __future__ import annotations

import re

from bench.errors import BenchError

DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
"""``auto``, ``cpu``, ``mps``, ``cuda`` or ``cuda:N``."""


def check_device(device: str, option: str = "--device") -> None:
    """One line for a device torch would not understand (``bogus``, ``cuda:x``) instead of its RuntimeError."""
    if not isinstance(device, str) or not DEVICE.match(device):
        raise BenchError(f"{option} {device!r}: choose auto, cpu, cuda, cuda:N or mps")


def check_cuda(device: str, option: str = "--device") -> None:
    """CUDA asked for where there is none: one line."""
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BenchError(f"{option} {device} was asked for, but no CUDA device is available")
