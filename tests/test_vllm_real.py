"""vLLM (``--backend vllm``, marker ``vllm``) on the real model: SmolLM2-135M-Instruct from its GGUF
file, read by the engine from decbench's converted folder, greedy token for token equal to the HF
backend in float32 on 16 cd-wikitext prompts. Runs in .venv-vllm (``make vllm-env``) on CPU.
"""

from __future__ import annotations

import pytest

from vllm_support import engine_kwargs, needs_vllm

pytestmark = needs_vllm

TOKENS = 32


def test_greedy_equals_hf_on_16_cd_wikitext_prompts(smollm2_gguf, smollm2, data_dir):
    from bench.backends.hf import HFBackend
    from bench.backends.vllm import VLLMBackend
    from bench.specs import build_decoder, parse_decoder
    from bench.suite_loading import load_suite

    texts = [p.text for p in load_suite("cd-wikitext", data_dir=data_dir, num_prompts=16)[1]]
    greedy = build_decoder(parse_decoder("greedy"))
    hf = HFBackend(smollm2_gguf, device="cpu", dtype="float32")
    want = [c.token_ids for c in hf.continue_batch(texts, greedy, max_new_tokens=TOKENS, seeds=[0] * len(texts))]
    del hf
    engine = VLLMBackend(smollm2_gguf, **engine_kwargs())
    assert engine.settings.model == smollm2  # the converted folder, not the GGUF file
    got = [c.token_ids for c in engine.continue_batch(texts, greedy, max_new_tokens=TOKENS, seeds=[0] * len(texts))]
    same = sum(g == w for g, w in zip(got, want))
    print(f"\nvLLM greedy on SmolLM2: {same}/{len(want)} token-equal to HF float32")
    assert same == len(want)
