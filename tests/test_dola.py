"""DoLa: token for token equal to transformers 4.46.3's generate(dola_layers=..., do_sample=False).

The reference runs in ``.venv-ref`` through ``tests/reference/dola_ref.py``, in one subprocess for
every case (skipped when that environment is missing). 4.46.3 chooses the early layer by the
divergence averaged over the batch; ours per row. So every prompt's reference runs at batch size 1,
and ours must equal it both at batch 1 and batched with left padding. Models: stories260K (5 layers,
tied embeddings), a random 2-layer GPT-2 (tied) and a random 6-layer Llama with untied embeddings
(where the embedding layer is a candidate), saved once so that both environments load the same weights.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

from bench.errors import BenchError
from bench.registry import get_decoder
from bench.specs import declare, parse_decoder
from decoders.dola import candidate_layers

REPO = Path(__file__).resolve().parents[1]
REF_PYTHON = Path(os.environ.get("BENCH_REF_VENV", REPO / ".venv-ref")) / "bin" / "python"
REF_SCRIPT = REPO / "tests" / "reference" / "dola_ref.py"
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

# name: (model, layers, repetition penalty, new tokens, extra EOS word or None)
CASES = {
    "stories-high": ("stories", "high", 1.2, 40, None),
    "stories-high-rp1": ("stories", "high", 1.0, 40, None),
    "stories-low": ("stories", "low", 1.2, 40, None),
    "stories-0+2+4": ("stories", "0+2+4", 1.2, 40, None),
    "stories-high-period": ("stories", "high", 1.2, 40, "."),
    "llama6-high": ("llama6", "high", 1.2, 24, None),
    "llama6-low": ("llama6", "low", 1.3, 24, None),
    "gpt2-high": ("gpt2", "high", 1.2, 24, None),
}


@pytest.fixture(scope="module")
def models(tmp_path_factory, shared):
    from transformers import (AutoModelForCausalLM, AutoTokenizer, GPT2Config, GPT2LMHeadModel, LlamaConfig,
                              LlamaForCausalLM)

    stories_dir = shared / "models" / "stories260K"
    stories_tok = AutoTokenizer.from_pretrained(stories_dir)
    gpt2_tok = AutoTokenizer.from_pretrained(shared / "models" / "gpt2-tokenizer")
    torch.manual_seed(4321)
    llama_dir, gpt2_dir = tmp_path_factory.mktemp("llama6"), tmp_path_factory.mktemp("gpt2")
    LlamaForCausalLM(LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=6, num_attention_heads=4,
                                 num_key_value_heads=2, vocab_size=512, max_position_embeddings=256, bos_token_id=1,
                                 eos_token_id=2, tie_word_embeddings=False)).save_pretrained(llama_dir)
    GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=64, n_head=4, n_positions=256)).save_pretrained(gpt2_dir)
    stories_ids = [stories_tok(t)["input_ids"] for t in TEXTS]
    period = stories_tok.convert_tokens_to_ids(".")
    loaded = {}
    gpt2_ids = [gpt2_tok(t)["input_ids"] for t in TEXTS]
    for name, path, prompts, eos in (("stories", stories_dir, stories_ids, [2]),
                                     ("llama6", llama_dir, stories_ids, [2]), ("gpt2", gpt2_dir, gpt2_ids, [50256])):
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        loaded[name] = (path, model, prompts, {None: eos, ".": eos + [period]})
    return loaded


def ref_layers(layers: str):
    return layers if layers in ("high", "low") else [int(i) for i in layers.split("+")]


@pytest.fixture(scope="module")
def reference(models):
    """case -> the reference's new tokens, each prompt at batch size 1; plus one batched case."""
    if not REF_PYTHON.exists():
        pytest.skip("reference environment .venv-ref missing; create it with scripts/make_reference_env.sh")
    requests = []
    for name, layers, rp, new, extra in CASES.values():
        path, _, prompts, eos = models[name]
        requests.append(dict(model=str(path), prompts=prompts, layers=ref_layers(layers), repetition_penalty=rp,
                             max_new_tokens=new, batch_size=1, eos_token_ids=eos[extra], pad_token_id=PAD))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": ""}
    done = subprocess.run([str(REF_PYTHON), str(REF_SCRIPT)], input=json.dumps(requests), capture_output=True,
                          text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    answers = json.loads(done.stdout)
    assert all(a["transformers"] == "4.46.3" for a in answers)
    return {case: a["tokens"] for case, a in zip(CASES, answers)}


def ours(model, prompts, layers, rp, new, eos):
    decoder = get_decoder("dola").factory(layers=layers, repetition_penalty=rp)
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[PAD] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    out = decoder.generate(model, ids, mask, max_new_tokens=new, eos_token_ids=eos, pad_token_id=PAD, rng=None)
    return out.tolist()


def trim(row, eos):
    """A row up to and including its first EOS (generate and we pad differently after it)."""
    end = next((i for i, t in enumerate(row) if t in eos), None)
    return row if end is None else row[: end + 1]


@pytest.mark.parametrize("case", list(CASES))
def test_equals_transformers_4_46_reference(case, models, reference):
    name, layers, rp, new, extra = CASES[case]
    _, model, prompts, eos = models[name]
    want = [trim(r, eos[extra]) for r in reference[case]]
    alone = [trim(ours(model, [p], layers, rp, new, eos[extra])[0], eos[extra]) for p in prompts]
    batched = [trim(r, eos[extra]) for r in ours(model, prompts, layers, rp, new, eos[extra])]
    assert alone == want
    assert batched == want  # per-row layer choice: batching changes nothing


def test_the_cases_exercise_what_they_claim(models, reference):
    """Guards against cases that could pass on simpler code: the contrast and penalty change the text,
    and the EOS case ends rows at different steps."""
    _, model, prompts, eos = models["stories"]
    assert reference["stories-high"] != reference["stories-high-rp1"]
    assert reference["stories-high"] != reference["stories-0+2+4"]
    ends = {len(trim(r, eos["."])) for r in reference["stories-high-period"]}
    assert len(ends) > 1
    greedy = model.generate(input_ids=torch.tensor([prompts[0]]), do_sample=False, max_new_tokens=40,
                            pad_token_id=PAD)[0, len(prompts[0]):].tolist()
    assert trim(reference["stories-high-rp1"][0], eos[None]) != trim(greedy, eos[None])


def test_candidate_layers_follow_the_reference_rules():
    assert candidate_layers("high", 5, tied=True) == [2, 4]
    assert candidate_layers("low", 5, tied=True) == [2]
    assert candidate_layers("low", 6, tied=False) == [0, 2]
    assert candidate_layers("high", 6, tied=False) == [3, 5]
    assert candidate_layers("low", 2, tied=True) == [1]
    assert candidate_layers("high", 48, tied=False) == list(range(28, 48, 2))
    assert candidate_layers("low", 48, tied=True) == list(range(2, 20, 2))
    assert candidate_layers([0, 2, 9], 5, tied=True) == [0, 2]


@pytest.mark.parametrize("text, message", [
    ("dola:layers=middle", "decoder 'dola': layers must be high, low or layer indices joined by '+' (e.g. 0+2+4), "
                           "got 'middle'"),
    ("dola:layers=1+-2", "decoder 'dola': layers must be high, low or layer indices joined by '+' (e.g. 0+2+4), "
                         "got '1+-2'"),
    ("dola:repetition_penalty=0.5", "decoder 'dola': repetition_penalty must be >= 1 and finite, got 0.5"),
])
def test_bad_arguments_are_one_line_errors(text, message):
    with pytest.raises(BenchError) as caught:
        parse_decoder(text)
    assert str(caught.value) == message


def test_layers_beyond_the_model_are_refused_at_plan_time(stories260k, tmp_path):
    from click.testing import CliRunner

    from bench.cli import main

    suite = tmp_path / "p.jsonl"
    suite.write_text(json.dumps({"id": "a", "prompt": "Once upon a time"}) + "\n")
    out = tmp_path / "runs"
    result = CliRunner().invoke(main, ["run", "--model", stories260k, "--suite", str(suite), "--decoder",
                                       "dola:layers=2+5", "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 2 and not out.exists()
    assert "decoder 'dola': layer 5 is not an early layer of this model (it has 5 layers" in result.output


def test_registered_as_a_model_decoder():
    info = get_decoder("dola")
    assert info.sampling is False
    assert [(p.name, p.default) for p in info.params] == [("layers", "high"), ("repetition_penalty", 1.2)]
    assert declare(parse_decoder("dola:layers=0+2")).needs == "model"


def test_each_row_chooses_its_own_early_layer():
    """Two rows whose final distribution sits nearest different early layers choose differently
    (4.46.3 would give both the layer of the batch-mean divergence)."""
    from decoders.dola import _furthest

    peaked, flat = torch.tensor([8.0, 0.0, 0.0, 0.0]), torch.zeros(4)
    final = torch.stack([peaked, flat])
    early = torch.stack([torch.stack([flat, flat]), torch.stack([peaked, peaked])])  # [layers, rows, vocab]
    assert _furthest(final, early).tolist() == [0, 1]


def test_the_layer_choice_varies_in_the_reference_cases(models, monkeypatch):
    """The multi-layer cases really exercise the divergence: more than one layer gets chosen."""
    import decoders.dola as dola

    chosen = []
    real = dola._furthest

    def spy(final, early):
        result = real(final, early)
        chosen.extend(result.tolist())
        return result

    monkeypatch.setattr(dola, "_furthest", spy)
    varied = {}
    for case in ("stories-0+2+4", "llama6-low"):
        name, layers, rp, new, extra = CASES[case]
        _, model, prompts, eos = models[name]
        chosen.clear()
        ours(model, prompts, layers, rp, new, eos[extra])
        varied[case] = sorted(set(chosen))
    assert len(varied["stories-0+2+4"]) > 1, varied  # seen: layers 0 and 2 both chosen
