"""Shared fixtures: real offline assets from ../shared and tiny randomly initialised models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BENCH_SHARED", REPO.parent / "shared")).resolve()


def pytest_configure(config: pytest.Config) -> None:
    import torch

    # Tiny models are dominated by per-op overhead: one thread is faster, and two spin badly on a
    # busy 2-core machine. Every test module relies on this session-wide setting.
    torch.set_num_threads(1)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


@pytest.fixture(scope="session")
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"offline assets not found at {SHARED}; set BENCH_SHARED")
    return SHARED


@pytest.fixture(scope="session")
def stories260k(shared: Path) -> str:
    return str(shared / "models" / "stories260K")


@pytest.fixture(scope="session")
def data_dir(shared: Path) -> str:
    return str(shared / "data")


def save_random_model(path: Path, config, tokenizer_dir: Path) -> str:
    """Save a randomly initialised causal LM (seed 0) with a tokenizer, as safetensors."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory: pytest.TempPathFactory, shared: Path) -> str:
    """A 2-layer GPT-2 with the real GPT-2 tokenizer, random weights."""
    from transformers import GPT2Config

    config = GPT2Config(n_layer=2, n_head=4, n_embd=64, n_positions=512, vocab_size=50257)
    return save_random_model(tmp_path_factory.mktemp("tiny-gpt2"), config, shared / "models" / "gpt2-tokenizer")


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory, shared: Path) -> str:
    """A 2-layer Llama with stories260K's tokenizer, random weights."""
    from transformers import LlamaConfig

    config = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=512, max_position_embeddings=512,
                         bos_token_id=1, eos_token_id=2)
    return save_random_model(tmp_path_factory.mktemp("tiny-llama"), config, shared / "models" / "stories260K")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` skip with their reason where there is no CUDA device (``make test-all``)."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device; none here")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


SMOLLM2_GGUF = ("models", "smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf")
"""The real model: SmolLM2-135M-Instruct (30 layers, width 576) as one GGUF file in ../shared."""


@pytest.fixture(scope="session")
def smollm2_gguf(shared: Path) -> str:
    path = shared.joinpath(*SMOLLM2_GGUF)
    if not path.is_file():
        pytest.skip(f"the real model is missing: {path}")
    return str(path)


@pytest.fixture(scope="session")
def smollm2(smollm2_gguf: str) -> str:
    """The GGUF converted once (decbench's GGUF cache): an ordinary float32 safetensors folder."""
    from bench.runtime.loading import local_name

    return local_name(smollm2_gguf)


@pytest.fixture(autouse=True)
def _threads_restored():
    """``--threads`` sets torch's count and ``$BENCH_THREADS`` for the process: undo it after each test,
    so one test's option never becomes the next one's default."""
    import torch

    before, env = torch.get_num_threads(), os.environ.get("BENCH_THREADS")
    yield
    torch.set_num_threads(before)
    if env is None:
        os.environ.pop("BENCH_THREADS", None)
    else:
        os.environ["BENCH_THREADS"] = env
