"""typical, eta, epsilon and min-p: first-token distributions against transformers' warpers.

Each sampled decoder's first token from stories260K on the prompt "The" is drawn N = 4000 times
through the HF backend, one row per record seed ``record_seed(SEED, "first-token", i)`` for
i < N, SEED = 20261130 (fixed, so the test is deterministic). The reference distribution is
softmax(warpers(logits)) with transformers' own warpers in generate()'s order (temperature
first). The counts are compared with a chi-square goodness-of-fit test (cells of expected count
< 5 pooled into one); the test fails at p < 1e-4, its false-alarm rate for a correct decoder.
A token outside the reference support must never be drawn; each case is chosen so that the
untruncated distribution puts >= 20/N mass outside that support (a decoder that forgot to truncate
would draw it with probability > 1 - e^-20).
"""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from bench.backends.hf import HFBackend
from bench.decoding import record_seed
from bench.errors import BenchError
from bench.registry import get_decoder
from bench.specs import build_decoder, declare, parse_decoder

PROMPT = "The"
N = 4000
SEED = 20261130
FALSE_ALARM = 1e-4

# decoder argument -> the reference warpers after the temperature (class name, value)
CASES = {
    "typical": ("TypicalLogitsWarper", 0.95),
    "typical:tau=0.5,t=1.5": ("TypicalLogitsWarper", 0.5),
    "eta": ("EtaLogitsWarper", 0.0009),
    "eta:eta=0.02,t=1.2": ("EtaLogitsWarper", 0.02),
    "epsilon": ("EpsilonLogitsWarper", 0.0009),
    "epsilon:eps=0.01,t=1.3": ("EpsilonLogitsWarper", 0.01),
    "min-p": ("MinPLogitsWarper", 0.1),
    "min-p:p=0.3,t=1.5": ("MinPLogitsWarper", 0.3),
}


@pytest.fixture(scope="module")
def backend(stories260k: str) -> HFBackend:
    return HFBackend(stories260k, device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def first_logits(backend: HFBackend) -> torch.Tensor:
    enc = backend.tokenizer([PROMPT], return_tensors="pt")
    with torch.inference_mode():
        return backend.model(**enc).logits[0, -1].float()


def reference_probs(logits: torch.Tensor, text: str) -> torch.Tensor:
    """softmax(warper(logits / t)), built here from transformers' classes, not from our decoder."""
    from transformers.generation import logits_process

    name, value = CASES[text]
    t = parse_decoder(text).kwargs["t"]
    scores = logits[None].clone()
    if t != 1.0:
        scores = logits_process.TemperatureLogitsWarper(t)(None, scores)
    return getattr(logits_process, name)(value)(None, scores).softmax(-1)[0]


def chi_square_p(counts: torch.Tensor, probs: torch.Tensor) -> float:
    """Pearson's goodness-of-fit p-value over the support; cells expected < 5 are pooled."""
    support = probs > 0
    expected, observed = probs[support].double() * counts.sum(), counts[support].double()
    big = expected >= 5
    exp_cells = torch.cat([expected[big], expected[~big].sum()[None]]) if (~big).any() else expected[big]
    obs_cells = torch.cat([observed[big], observed[~big].sum()[None]]) if (~big).any() else observed[big]
    stat = ((obs_cells - exp_cells) ** 2 / exp_cells).sum()
    dof = len(exp_cells) - 1
    return float(torch.special.gammaincc(torch.tensor(dof / 2, dtype=torch.float64), stat / 2))


def first_tokens(backend: HFBackend, text: str) -> torch.Tensor:
    seeds = [record_seed(SEED, "first-token", i) for i in range(N)]
    out = backend.continue_batch([PROMPT] * N, build_decoder(parse_decoder(text)), max_new_tokens=1, seeds=seeds)
    # A drawn EOS is an empty continuation that finished on "eos": count it as the EOS id.
    tokens = [c.token_ids[0] if c.token_ids else backend.eos_token_ids[0] for c in out]
    return torch.bincount(torch.tensor(tokens), minlength=backend.model.config.vocab_size)


@pytest.mark.parametrize("text", list(CASES))
def test_first_token_matches_the_reference_warper(text, backend, first_logits):
    probs = reference_probs(first_logits, text)
    t = parse_decoder(text).kwargs["t"]
    untruncated = (first_logits / t).softmax(-1)
    assert N * float(untruncated[probs == 0].sum()) >= 20, "case too weak: truncation removes too little mass"
    counts = first_tokens(backend, text)
    assert int(counts[probs == 0].sum()) == 0, "a token outside the reference support was drawn"
    p = chi_square_p(counts, probs)
    assert p >= FALSE_ALARM, f"chi-square p = {p:.2e} for {text}"


@pytest.mark.parametrize("text", ["typical", "eta", "min-p"])
def test_the_chi_square_test_rejects_the_untruncated_distribution(text, backend, first_logits):
    """Power check: the same draws fail the test against softmax(logits), which they do not follow."""
    counts = first_tokens(backend, text)
    assert chi_square_p(counts, first_logits.softmax(-1)) < FALSE_ALARM


@pytest.mark.parametrize("text", ["typical:tau=0.5,t=1.5", "eta:eta=0.02,t=1.2", "epsilon:eps=0.01,t=1.3"])
def test_temperature_comes_before_the_truncation(text, first_logits):
    """The cases above would catch the wrong order: truncating before tempering keeps another set."""
    from transformers.generation import logits_process

    name, value = CASES[text]
    t = parse_decoder(text).kwargs["t"]
    wrong = getattr(logits_process, name)(value)(None, first_logits[None].clone()) / t
    assert not torch.equal(torch.isfinite(wrong[0]), reference_probs(first_logits, text) > 0)


@pytest.mark.parametrize("text", ["typical", "eta", "epsilon", "min-p:p=0.05,t=1.2"])
def test_seeded_sampling_is_independent_of_batch_size(stories260k, text):
    backend = HFBackend(stories260k, device="cpu", dtype="float32")
    prompts = ["Once upon a time", "The dog ran to the park and", "Tom", "One day, a little bird", "She saw a"]
    dec = build_decoder(parse_decoder(text))
    seeds = [record_seed(0, f"p{i}", 0) for i in range(len(prompts))]
    batched = backend.continue_batch(prompts, dec, max_new_tokens=32, seeds=seeds)
    single = [backend.continue_batch([p], dec, max_new_tokens=32, seeds=[s])[0] for p, s in zip(prompts, seeds)]
    assert [c.token_ids for c in batched] == [c.token_ids for c in single]
    other = backend.continue_batch(prompts, dec, max_new_tokens=32, seeds=[s + 1 for s in seeds])
    assert [c.token_ids for c in other] != [c.token_ids for c in batched]


def _records(out) -> dict:
    result = {}
    for f in out.glob("*/generations.jsonl"):
        for line in f.read_text().splitlines():
            r = json.loads(line)
            result[(r["decoder"], r["prompt_id"], r["sample_index"])] = r
    return result


def test_resumed_runs_equal_uninterrupted_ones(stories260k, tmp_path):
    from bench.cli import main

    suite = tmp_path / "prompts.jsonl"
    suite.write_text("".join(json.dumps({"id": f"p{i}", "prompt": p}) + "\n" for i, p in
                             enumerate(["Once upon a time", "The cat", "Tom was sad because", "The sun was hot"])))

    def run(out, batch):
        args = ["run", "--model", stories260k, "--suite", str(suite), "--max-new-tokens", "12", "--samples-per-prompt",
                "2", "--batch-size", str(batch), "--device", "cpu", "--out", str(out)]
        for d in ("typical", "eta", "epsilon", "min-p"):
            args += ["--decoder", d]
        result = CliRunner().invoke(main, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output

    run(tmp_path / "whole", 8)
    run(tmp_path / "cut", 8)
    for f in (tmp_path / "cut").glob("*/generations.jsonl"):
        f.write_text("".join(f.read_text().splitlines(keepends=True)[:3]))  # lose five of eight records
    run(tmp_path / "cut", 3)
    whole, resumed = _records(tmp_path / "whole"), _records(tmp_path / "cut")
    assert len(whole) == 32 and {k[0] for k in whole} == {"typical", "eta", "epsilon", "min-p"}
    assert {k: r["token_ids"] for k, r in resumed.items()} == {k: r["token_ids"] for k, r in whole.items()}


@pytest.mark.parametrize("text, message", [
    ("typical:tau=1", "decoder 'typical': tau must be in (0, 1), got 1.0"),
    ("typical:tau=0", "decoder 'typical': tau must be in (0, 1), got 0.0"),
    ("typical:t=0", "decoder 'typical': temperature t must be > 0 and finite, got 0.0"),
    ("eta:eta=1.5", "decoder 'eta': eta must be in (0, 1), got 1.5"),
    ("eta:eta=nan", "decoder 'eta': eta must be in (0, 1), got nan"),
    ("epsilon:eps=-0.1", "decoder 'epsilon': eps must be in (0, 1), got -0.1"),
    ("epsilon:t=inf", "decoder 'epsilon': temperature t must be > 0 and finite, got inf"),
    ("min-p:p=0", "decoder 'min-p': p must be in (0, 1], got 0.0"),
    ("min-p:p=1.1", "decoder 'min-p': p must be in (0, 1], got 1.1"),
])
def test_impossible_values_are_one_line_errors(text, message):
    with pytest.raises(BenchError) as caught:
        parse_decoder(text)
    assert str(caught.value) == message


def test_defaults_and_declarations():
    names = ("typical", "eta", "epsilon", "min-p")
    assert {n: [(p.name, p.default) for p in get_decoder(n).params] for n in names} == {
        "typical": [("tau", 0.95), ("t", 1.0)], "eta": [("eta", 0.0009), ("t", 1.0)],
        "epsilon": [("eps", 0.0009), ("t", 1.0)], "min-p": [("p", 0.1), ("t", 1.0)]}
    assert all(get_decoder(n).sampling for n in ("typical", "eta", "epsilon", "min-p"))
    # min-p is an engine parameter (vLLM runs it natively); the others are a transform, temperature inside.
    assert declare(parse_decoder("min-p:t=0.7")).features == frozenset({"min_p", "temperature"})
    for text in ("typical:t=0.7", "eta", "epsilon:t=2.0"):
        decl = declare(parse_decoder(text))
        assert decl.needs == "logits" and decl.features == frozenset({"transform"})
    assert build_decoder(parse_decoder("typical:t=0.7")).engine_params().temperature == 1.0


def test_the_eta_case_tells_eta_from_epsilon(first_logits):
    """At eta=0.02, t=1.2 the entropy term sets the cutoff: epsilon at 0.02 would keep another set."""
    from transformers.generation.logits_process import EpsilonLogitsWarper

    epsilon_support = torch.isfinite(EpsilonLogitsWarper(0.02)(None, first_logits[None] / 1.2))[0]
    assert not torch.equal(epsilon_support, reference_probs(first_logits, "eta:eta=0.02,t=1.2") > 0)
