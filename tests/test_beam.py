"""Beam search: token for token equal to transformers 5's generate(num_beams=n, do_sample=False).

Models: the pretrained stories260K and the randomly initialised 2-layer GPT-2 and Llama of
conftest, at batch 1 (each prompt alone) and batched with left padding. Rows are compared up to
and including their first EOS (generate fills after it with its own fill value, we with the pad).
"""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from bench.errors import BenchError
from bench.registry import get_decoder
from bench.specs import declare, parse_decoder

TEXTS = [
    "Once upon a time",
    "The cat sat on the mat and",
    "Lily and Tom went to the park to play with a big red ball. They",
    "One day",
    "The big dog was very",
    "Tim",
    "She saw a bird in the sky and she",
    "A little girl named Sue had a toy",
]
PAD = 0


def load(path):
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    eos = [model.config.eos_token_id] if isinstance(model.config.eos_token_id, int) else list(model.config.eos_token_id)
    return model, [tok(t)["input_ids"] for t in TEXTS], eos, tok


def left_pad(prompts):
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[PAD] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    return ids, mask


def cut(rows, eos):
    """Each row up to and including its first EOS (all of it when it has none)."""
    out = []
    for row in rows:
        end = next((i for i, t in enumerate(row) if t in eos), None)
        out.append(row if end is None else row[: end + 1])
    return out


def ours(model, prompts, n, new, eos, length_penalty=1.0):
    decoder = get_decoder("beam").factory(n=n, length_penalty=length_penalty)
    ids, mask = left_pad(prompts)
    out = decoder.generate(model, ids, mask, max_new_tokens=new, eos_token_ids=eos, pad_token_id=PAD, rng=None)
    assert out.dtype == torch.long and out.shape[0] == len(prompts) and out.shape[1] <= new
    rows = out.tolist()
    for row, kept in zip(rows, cut(rows, eos)):
        assert row[len(kept):] == [PAD] * (len(row) - len(kept))  # pad after the end, nothing else
    return cut(rows, eos)


def reference(model, prompts, n, new, eos, length_penalty=1.0):
    ids, mask = left_pad(prompts)
    out = model.generate(input_ids=ids, attention_mask=mask, num_beams=n, do_sample=False, max_new_tokens=new,
                         eos_token_id=eos, pad_token_id=PAD, length_penalty=length_penalty)
    return cut(out[:, ids.shape[1]:].tolist(), eos)


@pytest.fixture(scope="module")
def models(stories260k, tiny_gpt2, tiny_llama):
    return {"stories": load(stories260k), "gpt2": load(tiny_gpt2), "llama": load(tiny_llama)}


# name: (model, n, new tokens, extra EOS word or None, length penalty)
CASES = {
    "stories-n4": ("stories", 4, 48, None, 1.0),
    "stories-n3-period": ("stories", 3, 40, ".", 1.0),  # two EOS ids: rows end at different steps
    "stories-n4-lp0": ("stories", 4, 40, ".", 0.0),
    "stories-n2-lp2": ("stories", 2, 40, ".", 2.0),
    "gpt2-n4": ("gpt2", 4, 32, None, 1.0),
    "llama-n4": ("llama", 4, 32, None, 1.0),
    "llama-n5-period": ("llama", 5, 32, ".", 1.0),
}


def _case(models, case):
    name, n, new, extra, lp = CASES[case]
    model, prompts, eos, tok = models[name]
    if extra:
        eos = eos + [tok.convert_tokens_to_ids(extra) if name != "gpt2" else tok(extra)["input_ids"][0]]
    return model, prompts, n, new, eos, lp


@pytest.mark.parametrize("case", list(CASES))
def test_batched_equals_generate(case, models):
    model, prompts, n, new, eos, lp = _case(models, case)
    got, want = ours(model, prompts, n, new, eos, lp), reference(model, prompts, n, new, eos, lp)
    assert got == want
    if "period" in case or "lp" in case:
        assert len({len(r) for r in want}) > 1  # rows really ended at different lengths


@pytest.mark.parametrize("case", ["stories-n4", "stories-n3-period", "gpt2-n4", "llama-n4"])
def test_batch_one_equals_generate(case, models):
    model, prompts, n, new, eos, lp = _case(models, case)
    for prompt in prompts:
        assert ours(model, [prompt], n, new, eos, lp) == reference(model, [prompt], n, new, eos, lp)


def test_one_beam_is_greedy(models):
    model, prompts, eos, _ = models["stories"]
    ids, mask = left_pad(prompts)
    greedy = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=32,
                            eos_token_id=eos, pad_token_id=PAD)[:, ids.shape[1]:].tolist()
    assert ours(model, prompts, 1, 32, eos) == cut(greedy, eos)


def test_beams_change_the_text(models):
    """n = 4 must really search: otherwise the equality tests could pass on greedy code."""
    model, prompts, eos, _ = models["stories"]
    assert ours(model, prompts, 4, 32, eos) != ours(model, prompts, 1, 32, eos)


def test_runs_through_the_hf_backend(stories260k):
    from bench.backends.hf import HFBackend
    from bench.specs import build_decoder

    backend = HFBackend(stories260k, device="cpu", dtype="float32")
    got = backend.continue_batch(TEXTS[:4], build_decoder(parse_decoder("beam:n=3")), max_new_tokens=24, seeds=[0] * 4)
    enc = backend.tokenizer(TEXTS[:4], return_tensors="pt", padding=True)
    want = backend.model.generate(**enc, num_beams=3, do_sample=False, max_new_tokens=24,
                                  eos_token_id=backend.eos_token_ids, pad_token_id=backend.tokenizer.pad_token_id)
    want = cut(want[:, enc["input_ids"].shape[1]:].tolist(), backend.eos_token_ids)
    assert [c.token_ids + ([backend.eos_token_ids[0]] if c.finish_reason == "eos" else []) for c in got] == want


@pytest.mark.parametrize("text, message", [
    ("beam:n=0", "decoder 'beam': n must be between 1 and 4096, got 0"),
    ("beam:n=4097", "decoder 'beam': n must be between 1 and 4096, got 4097"),
    ("beam:length_penalty=nan", "decoder 'beam': length_penalty must be a finite number, got nan"),
])
def test_bad_arguments_are_one_line_errors(text, message):
    with pytest.raises(BenchError) as caught:
        parse_decoder(text)
    assert str(caught.value) == message


def test_registered_as_a_model_decoder():
    info = get_decoder("beam")
    assert info.sampling is False
    assert [(p.name, p.default) for p in info.params] == [("n", 4), ("length_penalty", 1.0)]
    assert declare(parse_decoder("beam")).needs == "model"
