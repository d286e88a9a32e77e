"""Contrastive search: token-for-token equal to transformers 4.46.3's, greedy at alpha = 0.

The reference runs in ``.venv-ref`` (``scripts/make_reference_env.sh``) through
``tests/reference/contrastive_ref.py``, in one subprocess for every case; the reference tests are
skipped when that environment is missing (``BENCH_REF_VENV`` points elsewhere). Models: the pretrained stories260K and a randomly
initialised 2-layer GPT-2, saved once so both environments load the same weights.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

import decoders.contrastive  # noqa: F401  (registers it even before decoders/__init__ imports it)
from bench.errors import BenchError
from bench.registry import get_decoder

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BENCH_SHARED", REPO.parent / "shared"))
STORIES = SHARED / "models" / "stories260K"
GPT2_TOKENIZER = SHARED / "models" / "gpt2-tokenizer"
REF_PYTHON = Path(os.environ.get("BENCH_REF_VENV", REPO / ".venv-ref")) / "bin" / "python"
REF_SCRIPT = REPO / "tests" / "reference" / "contrastive_ref.py"

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

# name: (model, batch size, k, alpha, new tokens, EOS ids or None for the model's)
CASES = {
    "stories-b1": ("stories", 1, 5, 0.6, 64, None),
    "stories-b8": ("stories", 8, 5, 0.6, 64, None),
    # '.' as an extra EOS: rows finish at different steps, so the pad-after-EOS path is exercised.
    "stories-b8-eos": ("stories", 8, 4, 0.5, 48, "period"),
    "gpt2-b1": ("gpt2", 1, 5, 0.6, 48, None),
    "gpt2-b8": ("gpt2", 8, 6, 0.4, 48, None),
}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """name -> (model directory, loaded model, prompts as token-id lists, EOS ids)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2Config, GPT2LMHeadModel

    if not STORIES.is_dir():
        pytest.skip(f"offline assets missing: {STORIES} (set BENCH_SHARED)")
    stories_tok = AutoTokenizer.from_pretrained(STORIES)
    stories = AutoModelForCausalLM.from_pretrained(STORIES).eval()

    torch.manual_seed(1234)
    gpt2_dir = tmp_path_factory.mktemp("gpt2-tiny")
    config = GPT2Config(n_layer=2, n_embd=64, n_head=4, n_positions=256, vocab_size=50257)
    GPT2LMHeadModel(config).eval().save_pretrained(gpt2_dir, safe_serialization=True)
    gpt2 = AutoModelForCausalLM.from_pretrained(gpt2_dir).eval()
    gpt2_tok = AutoTokenizer.from_pretrained(GPT2_TOKENIZER)

    period = stories_tok.convert_tokens_to_ids(".")
    return {
        "stories": (STORIES, stories, [stories_tok(t)["input_ids"] for t in TEXTS], {None: [2], "period": [2, period]}),
        "gpt2": (gpt2_dir, gpt2, [gpt2_tok(t)["input_ids"] for t in TEXTS], {None: [50256]}),
    }


def left_pad(prompts):
    import torch

    width = max(len(p) for p in prompts)
    ids = torch.tensor([[PAD] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    return ids, mask


def ours(model, prompts, k, alpha, new, eos):
    decoder = get_decoder("contrastive").factory(k=k, alpha=alpha)
    ids, mask = left_pad(prompts)
    out = decoder.generate(model, ids, mask, max_new_tokens=new, eos_token_ids=eos, pad_token_id=PAD, rng=None)
    assert str(out.dtype) == "torch.int64" and out.shape[0] == len(prompts) and out.shape[1] <= new
    return out.tolist()


@pytest.fixture(scope="module")
def reference(models):
    """case name -> the reference's new tokens, all cases answered by one subprocess."""
    if not REF_PYTHON.exists():
        pytest.skip("reference environment .venv-ref missing; create it with scripts/make_reference_env.sh")
    requests = []
    for model_name, batch, k, alpha, new, eos in CASES.values():
        model_dir, _, prompts, eos_ids = models[model_name]
        requests.append(dict(model=str(model_dir), prompts=prompts[:batch], k=k, alpha=alpha,
                             max_new_tokens=new, batch_size=batch, eos_token_ids=eos_ids[eos],
                             pad_token_id=PAD, threads=1))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": ""}
    done = subprocess.run([str(REF_PYTHON), str(REF_SCRIPT)], input=json.dumps(requests),
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    answers = json.loads(done.stdout)
    assert all(a["transformers"] == "4.46.3" for a in answers)
    return {name: a["tokens"] for name, a in zip(CASES, answers)}


@pytest.mark.parametrize("case", list(CASES))
def test_equals_transformers_reference(case, models, reference):
    model_name, batch, k, alpha, new, eos = CASES[case]
    _, model, prompts, eos_ids = models[model_name]
    got = ours(model, prompts[:batch], k, alpha, new, eos_ids[eos])
    assert got == reference[case]


def test_eos_case_really_finishes_rows_early(models, reference):
    """Guards the EOS case against silently testing nothing: some rows end before others."""
    eos_ids = models["stories"][3]["period"]
    ends = [next((i for i, t in enumerate(row) if t in eos_ids), None) for row in reference["stories-b8-eos"]]
    assert len({e for e in ends}) > 1 and any(e is not None for e in ends)


@pytest.mark.parametrize("model_name", ["stories", "gpt2"])
def test_alpha_zero_is_greedy(model_name, models):
    """Without the penalty the most likely candidate always wins: transformers 5 greedy search."""
    _, model, prompts, eos_ids = models[model_name]
    ids, mask = left_pad(prompts)
    greedy = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=32,
                            eos_token_id=eos_ids[None], pad_token_id=PAD)[:, ids.shape[1]:]
    assert ours(model, prompts, 5, 0.0, 32, eos_ids[None]) == greedy.tolist()


def test_penalty_changes_the_text(models):
    """alpha > 0 must actually re-rank: otherwise the equality tests could pass on greedy code."""
    _, model, prompts, eos_ids = models["stories"]
    assert ours(model, prompts, 5, 0.6, 32, eos_ids[None]) != ours(model, prompts, 5, 0.0, 32, eos_ids[None])


def test_rows_pad_after_eos_and_do_not_disturb_others(models):
    """Making a token a row emits an EOS ends each row at its first one; the rest are unchanged."""
    _, model, prompts, _ = models["stories"]
    free = ours(model, prompts, 5, 0.6, 24, [2])
    stop = free[0][5]
    stopped = ours(model, prompts, 5, 0.6, 24, [2, stop])
    ended = 0
    for free_row, row in zip(free, stopped):
        end = next((i for i, t in enumerate(free_row) if t in (2, stop)), None)
        if end is None:
            assert row[: len(free_row)] == free_row
        else:
            ended += 1
            assert row[: end + 1] == free_row[: end + 1]
            assert row[end + 1:] == [PAD] * (len(row) - end - 1)
    assert ended >= 1 and stopped[0].index(stop) <= 5


def test_eager_attention_gives_the_same_tokens(models):
    """The candidate pass's 4D mask is additive, which eager attention needs as much as sdpa."""
    from transformers import AutoModelForCausalLM

    model_dir, model, prompts, eos_ids = models["gpt2"]
    eager = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="eager").eval()
    assert eager.config._attn_implementation == "eager"
    assert ours(eager, prompts, 5, 0.6, 24, eos_ids[None]) == ours(model, prompts, 5, 0.6, 24, eos_ids[None])


@pytest.mark.parametrize("args, message", [
    (dict(k=0), "k must be in 1..65,536, got 0"),
    (dict(k=65537), "k must be in 1..65,536, got 65537"),
    (dict(alpha=-0.1), "alpha must be in [0, 1], got -0.1"),
    (dict(alpha=1.5), "alpha must be in [0, 1], got 1.5"),
    (dict(alpha=float("nan")), "alpha must be in [0, 1], got nan"),
])
def test_bad_arguments_are_one_line_errors(args, message):
    with pytest.raises(BenchError, match=message.replace("[", r"\[").replace("]", r"\]")) as caught:
        get_decoder("contrastive").factory(**args)
    assert "\n" not in str(caught.value)


def test_registered_with_typed_parameters():
    info = get_decoder("contrastive")
    assert info.sampling is False
    assert [(p.name, p.type, p.default) for p in info.params] == [("k", int, 5), ("alpha", float, 0.6)]
    decoder = info.factory()
    assert decoder.needs == "model" and info.sampling is False
