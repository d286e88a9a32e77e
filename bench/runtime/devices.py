"""Where a model runs and in which precision: one definition for every command.

``--device`` is ``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``; anything
else, or a CUDA device that is not there, is a one-line error before anything is loaded.
``--dtype auto`` means bfloat16 on CUDA (half the memory, tensor cores) and float32 on CPU (where
half precision is slow or inexact on most hardware).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from bench.errors import BenchError

if TYPE_CHECKING:
    import torch

DEVICES_HELP = "auto, cpu, cuda, cuda:N or mps"
"""What ``--device`` accepts, for help texts and errors."""
DTYPES = ("auto", "float32", "bfloat16", "float16")
"""Every ``--dtype``; the ones after ``auto`` are torch dtypes of the same name."""
PRECISIONS = DTYPES[1:]
"""The concrete dtypes, for settings where ``auto`` would make results depend on the machine."""

_CUDA = re.compile(r"cuda(?::(\d+))?")


def check_device(device: str, option: str = "--device") -> None:
    """One line for a device torch would not understand (``bogus``, ``cuda:x``), before torch sees it."""
    text = str(device).strip().lower() if isinstance(device, str) else ""
    if text not in ("auto", "cpu", "mps") and not _CUDA.fullmatch(text):
        raise BenchError(f"{option} {device!r}: choose {DEVICES_HELP}")


def resolve_device(device: str) -> str:
    """``auto``/``cpu``/``cuda``/``cuda:N``/``mps`` to a torch device string; BenchError for anything else."""
    text = str(device).strip().lower()
    if text not in ("auto", "cpu", "mps") and not _CUDA.fullmatch(text):
        raise BenchError(f"unknown device '{device}' (choose from {DEVICES_HELP})")
    import torch

    if text == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if text in ("cpu", "mps"):
        return text
    if not torch.cuda.is_available():
        raise BenchError(f"device '{device}' was asked for, but no CUDA device is available")
    index = _CUDA.fullmatch(text).group(1)
    count = torch.cuda.device_count()
    if index is not None and int(index) >= count:
        raise BenchError(f"device '{device}' does not exist: this machine has {count} CUDA device(s), "
                         f"cuda:0 to cuda:{count - 1}")
    return text


def resolve_dtype(dtype: str, device: str) -> str:
    """The concrete dtype name of ``dtype`` on ``device`` (a resolved device string)."""
    if dtype not in DTYPES:
        raise BenchError(f"unknown dtype '{dtype}' (choose from {', '.join(DTYPES)})")
    if dtype == "auto":
        return "bfloat16" if device.startswith("cuda") else "float32"
    return dtype


def torch_dtype(dtype: Any) -> "torch.dtype":
    """A concrete dtype name (or a torch dtype, passed through) as a torch dtype."""
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in PRECISIONS:
        raise BenchError(f"unknown dtype '{dtype}' (choose from {', '.join(PRECISIONS)})")
    return getattr(torch, dtype)
