"""Shared pieces of the real-engine tests (tests/test_vllm*.py): why they skip, the model, and
small hyperfit checkpoints made by perturbing weights (as tests/test_hyperfit.py does)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def vllm_missing() -> str | None:
    """Why vLLM cannot run here (None when it can): not installed, or installed but not importing."""
    if importlib.util.find_spec("vllm") is None:
        return ("vllm is not installed: 'make vllm-env' builds .venv-vllm (CPU), or pip install 'decbench[vllm]' "
                "on CUDA")
    # Imported in a child process: a broken install must not break this test session.
    probe = subprocess.run([sys.executable, "-c", "from vllm.platforms import current_platform as p; "
                            "print(p.device_type)"], capture_output=True, text=True, timeout=600)
    if probe.returncode != 0:
        lines = probe.stderr.strip().splitlines()
        return f"vllm does not import here: {lines[-1] if lines else probe.returncode}"
    if probe.stdout.strip().splitlines()[-1:] not in (["cpu"], ["cuda"]):
        return f"vLLM's platform here is {probe.stdout.strip()!r}, neither cpu nor cuda"
    return None


_REASON = vllm_missing()
needs_vllm = [pytest.mark.vllm, pytest.mark.skipif(_REASON is not None, reason=str(_REASON))]
"""``pytestmark`` of every real-engine test module."""

ENGINE_ARGS = ["--backend", "vllm", "--dtype", "float32", "--enforce-eager"]
"""The CLI settings of the session's engine (the same as :func:`engine_kwargs`), so runs share it."""


def engine_kwargs() -> dict:
    return {"dtype": "float32", "enforce_eager": True}


def env() -> dict[str, str]:
    """Environment of a child ``bench`` or server process: offline, both cores, this checkout first."""
    out = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", VLLM_CPU_NUM_OF_RESERVED_CPU="0",
               TOKENIZERS_PARALLELISM="false")
    out["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    out.pop("VLLM_ENABLE_V1_MULTIPROCESSING", None)  # set in this process by the in-process engine; children choose
    return out


def perturbed_checkpoint(base: str, out: Path, scale: float = 0.05) -> str:
    """A full checkpoint: ``base`` with every weight moved by seeded noise (a stand-in for hyperfitting)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    generator = torch.Generator().manual_seed(13)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * scale * p.abs().mean())
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    return str(out)


def lora_adapter(base: str, out: Path) -> str:
    """A PEFT LoRA adapter (rank 8, q/v projections) over ``base`` with small random weights."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(7)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(model, config)
    peft_model.save_pretrained(out)
    return str(out)
