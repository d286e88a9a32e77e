"""The HF decoding loop's static cache, compiled step and sparse finish checks."""

from __future__ import annotations

import pytest
import torch

from bench.backends.hf import HFBackend, split_continuations
from bench.backends.hf_decode import decode_loop
from bench.decoding import EngineParams, LogitsDecoder, RowRNG, record_seed
from bench.specs import build_decoder, parse_decoder
from test_generation import PROMPTS, generate_reference


def run_loop(backend: HFBackend, decoder, max_new_tokens: int, **options) -> list[list[int]]:
    enc = backend.tokenizer(PROMPTS, return_tensors="pt", padding=True).to(backend.device)
    seeds = [record_seed(0, f"p{i}", 0) for i in range(len(PROMPTS))]
    with torch.inference_mode():
        tokens = decode_loop(backend.model, enc["input_ids"], enc["attention_mask"],
                             build_decoder(parse_decoder(decoder)) if isinstance(decoder, str) else decoder,
                             max_new_tokens=max_new_tokens,
                             eos_token_ids=backend.eos_token_ids, pad_token_id=backend.tokenizer.pad_token_id,
                             rng=RowRNG(seeds), **options)
    return [c.token_ids for c in split_continuations(tokens.cpu(), backend.eos_token_ids)]


@pytest.mark.parametrize("model_fixture", ["stories260k", "tiny_gpt2", "tiny_llama"])
def test_static_cache_greedy_equals_model_generate(request: pytest.FixtureRequest, model_fixture: str) -> None:
    backend = HFBackend(request.getfixturevalue(model_fixture), device="cpu", dtype="float32")
    assert run_loop(backend, "greedy", 40, static=True) == generate_reference(backend, PROMPTS, 40)


def test_static_cache_samples_the_same_records(stories260k: str) -> None:
    backend = HFBackend(stories260k, device="cpu", dtype="float32")
    assert run_loop(backend, "top-p:p=0.9", 40, static=True) == run_loop(backend, "top-p:p=0.9", 40)


def ending_decoder(eos: int, greedy: bool) -> LogitsDecoder:
    """Rows end at different steps: EOS wins whenever the best token's id is a multiple of 5."""

    def end_sometimes(logits: torch.Tensor) -> torch.Tensor:
        logits = logits.clone()
        logits[logits.argmax(-1) % 5 == 0, eos] = 1e4
        return logits

    return LogitsDecoder(EngineParams(temperature=0.0 if greedy else 1.0, transform=end_sometimes))


@pytest.mark.parametrize("greedy", [True, False])
def test_checking_for_the_end_every_few_steps_changes_no_record(stories260k: str, greedy: bool) -> None:
    backend = HFBackend(stories260k, device="cpu", dtype="float32")
    decoder = ending_decoder(backend.eos_token_ids[0], greedy)
    every_step = run_loop(backend, decoder, 200)
    lengths = sorted(len(t) for t in every_step)
    assert lengths[-1] < 200 and len(set(lengths)) > 2  # rows end at EOS, at different steps
    assert run_loop(backend, decoder, 200, check_every=8) == every_step
    assert run_loop(backend, decoder, 200, check_every=7, static=True) == every_step


@pytest.mark.gpu
def test_compiled_step_greedy_equals_model_generate_on_cuda(tiny_llama: str) -> None:
    backend = HFBackend(tiny_llama, device="cuda", dtype="float32")
    first = run_loop(backend, "greedy", 40, compile=True)
    assert first == generate_reference(backend, PROMPTS, 40)
    assert run_loop(backend, "greedy", 40, compile=True) == first  # the replayed graph, new prompts' cache


def test_compile_is_refused_for_other_backends(tmp_path) -> None:
    from bench.errors import BenchError
    from bench.planning import RunOptions, plan

    options = RunOptions(models=("m",), decoders=("greedy",), suites=("x.jsonl",), backend="fake", compile=True,
                         out=str(tmp_path))
    with pytest.raises(BenchError, match="--compile applies to --backend hf only"):
        plan(options)


def test_static_cache_is_rounded_up_but_never_past_the_context() -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    from bench.backends.hf_decode import StaticSteps

    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, n_positions=300, vocab_size=100)).eval()
    ids = torch.ones(2, 10, dtype=torch.long)
    assert StaticSteps(model, ids, torch.ones_like(ids), 100, compile=False).mask.size(1) == 256
    assert StaticSteps(model, ids, torch.ones_like(ids), 280, compile=False).mask.size(1) == 300
