"""Contrastive decoding: steps computed by hand from the two models' logits, and --amateur planning.

The expert is the session's random 2-layer GPT-2 (``tiny_gpt2``); the amateur a random 1-layer
GPT-2 with the same tokenizer, saved as safetensors like any checkpoint a user would pass.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.cli import main
from bench.errors import BenchError
from bench.specs import build_decoder, parse_decoder
from decoders.contrastive_decoding import contrastive_scores

PROMPTS = ["The cat sat on the mat and", "Once", "A quick brown fox jumps over the"]


@pytest.fixture(scope="module")
def amateur(tmp_path_factory: pytest.TempPathFactory, shared: Path) -> str:
    """A 1-layer GPT-2 with the GPT-2 tokenizer, other random weights than the expert."""
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    torch.manual_seed(7)
    path = tmp_path_factory.mktemp("amateur")
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=32, n_positions=512, vocab_size=50257)).save_pretrained(path)
    AutoTokenizer.from_pretrained(shared / "models" / "gpt2-tokenizer").save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def pair(tiny_gpt2: str, amateur: str):
    from transformers import AutoModelForCausalLM

    from bench.backends.hf import load_tokenizer

    return (AutoModelForCausalLM.from_pretrained(tiny_gpt2).eval(), AutoModelForCausalLM.from_pretrained(amateur).eval(),
            load_tokenizer(tiny_gpt2))


def test_scores_by_hand() -> None:
    """Four tokens; expert p = (0.5, 0.3, 0.16, 0.04), amateur p = (0.6, 0.1, 0.1, 0.2), alpha 0.1."""
    import torch

    expert = torch.tensor([[0.5, 0.3, 0.16, 0.04]]).log()
    amateur = torch.tensor([[0.6, 0.1, 0.1, 0.2]]).log()
    score = contrastive_scores(expert, amateur, alpha=0.1, beta=0.5)
    # token 3: 0.04 < 0.1 * 0.5 is implausible, although it has the best expert/amateur ratio after token 1.
    assert math.isinf(score[0, 3]) and score[0, 3] < 0
    expected = [1.5 * math.log(0.5) - 0.5 * math.log(0.6), 1.5 * math.log(0.3) - 0.5 * math.log(0.1),
                1.5 * math.log(0.16) - 0.5 * math.log(0.1)]
    assert score[0, :3].tolist() == pytest.approx(expected, abs=1e-6)
    assert int(score.argmax()) == 1  # greedy on the expert would say 0
    assert int(contrastive_scores(expert, amateur, alpha=0.1, beta=0.0).argmax()) == 0
    # alpha = 1 keeps only the expert's top token, whatever beta.
    assert int(contrastive_scores(expert, amateur, alpha=1.0, beta=10.0).argmax()) == 0


def by_hand(expert, amateur, tokenizer, prompt: str, steps: int, alpha: float, beta: float) -> list[int]:
    """Each step from full forward passes of both models over prompt + tokens so far (no cache)."""
    import torch

    ids = tokenizer(prompt)["input_ids"]
    for _ in range(steps):
        with torch.no_grad():
            le = expert(torch.tensor([ids])).logits[0, -1].double().log_softmax(-1)
            la = amateur(torch.tensor([ids])).logits[0, -1].double().log_softmax(-1)
        plausible = le >= le.max() + math.log(alpha)
        score = torch.where(plausible, (1 + beta) * le - beta * la, torch.tensor(-math.inf, dtype=torch.float64))
        ids.append(int(score.argmax()))
    return ids[len(tokenizer(prompt)["input_ids"]):]


@pytest.mark.parametrize("alpha,beta", [(0.1, 0.5), (0.01, 2.0)])
def test_batched_decoder_equals_steps_by_hand(pair, alpha: float, beta: float) -> None:
    from bench.backends.hf import HFBackend

    expert, amateur_model, tokenizer = pair
    decoder = build_decoder(parse_decoder(f"contrastive-decoding:alpha={alpha},beta={beta}"))
    decoder.amateur = amateur_model
    backend = HFBackend("expert", device="cpu", dtype="float32", model=expert, tokenizer=tokenizer)
    backend.eos_token_ids = [50256]
    outs = backend.continue_batch(PROMPTS, decoder, max_new_tokens=6, seeds=[0] * len(PROMPTS))
    for prompt, out in zip(PROMPTS, outs):
        assert out.token_ids == by_hand(expert, amateur_model, tokenizer, prompt, 6, alpha, beta)[:len(out.token_ids)]
        assert len(out.token_ids) == 6 or out.finish_reason == "eos"
    greedy = backend.continue_batch(PROMPTS, build_decoder(parse_decoder("greedy")), max_new_tokens=6, seeds=[0] * 3)
    assert [o.token_ids for o in outs] != [g.token_ids for g in greedy]  # the amateur changes the choice


def test_beta_zero_is_greedy_on_the_expert(pair) -> None:
    from bench.backends.hf import HFBackend

    expert, amateur_model, tokenizer = pair
    decoder = build_decoder(parse_decoder("contrastive-decoding:beta=0"))
    decoder.amateur = amateur_model
    backend = HFBackend("expert", device="cpu", dtype="float32", model=expert, tokenizer=tokenizer)
    cd = backend.continue_batch(PROMPTS, decoder, max_new_tokens=8, seeds=[0] * 3)
    greedy = backend.continue_batch(PROMPTS, build_decoder(parse_decoder("greedy")), max_new_tokens=8, seeds=[0] * 3)
    assert [o.token_ids for o in cd] == [g.token_ids for g in greedy]


def bench(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.fixture()
def prompts(tmp_path: Path) -> Path:
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps({"id": str(i), "prompt": p, "reference": "and then it rained."}) + "\n"
                            for i, p in enumerate(PROMPTS)))
    return path


def test_run_records_the_amateur_in_identity_records_and_leaderboard(tmp_path, prompts, tiny_gpt2, amateur) -> None:
    out = tmp_path / "runs"
    args = ["run", "--model", tiny_gpt2, "--suite", str(prompts), "--max-new-tokens", "5", "--out", str(out),
            "--decoder", "contrastive-decoding", "--decoder", "greedy"]
    result = bench(*args, "--amateur", amateur)
    assert result.exit_code == 0, result.output
    headers = {json.loads(h.read_text())["spec"]["decoder"]["name"]: json.loads(h.read_text())
               for h in out.glob("*/header.json")}
    cd_model = headers["contrastive-decoding"]["spec"]["model"]
    assert cd_model["amateur"] == amateur and cd_model["amateur_fingerprint"]
    assert headers["greedy"]["spec"]["model"]["amateur"] is None  # greedy does not depend on it
    records = [json.loads(line) for f in out.glob("*/generations.jsonl") for line in f.read_text().splitlines()]
    assert {r.get("amateur") for r in records if r["decoder"] == "contrastive-decoding"} == {amateur}
    assert all("amateur" not in r for r in records if r["decoder"] == "greedy")
    board = (out / "leaderboard.csv").read_text()
    assert f",{Path(amateur).name}," in board and "amateur" in board.splitlines()[0]
    # Another amateur (same config and sizes: the fingerprint follows the files) is another run.
    other = tmp_path / "other-amateur"
    shutil.copytree(amateur, other)
    (other / "config.json").write_text((other / "config.json").read_text().replace('"n_layer": 1', '"n_layer": 1 '))
    before = {p.name for p in out.iterdir() if p.is_dir()}
    assert bench(*args, "--amateur", str(other)).exit_code == 0
    after = {p.name for p in out.iterdir() if p.is_dir()}
    assert len(after - before) == 1  # only contrastive-decoding's run is new; greedy's is reused
    # Published, the two amateurs are two rows (not one row claimed by two runs).
    published = bench("leaderboard", str(out), "--out", str(tmp_path / "pub" / "board"))
    assert published.exit_code == 0, published.output
    with open(tmp_path / "pub" / "board.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["decoder"] == "contrastive-decoding"]
    assert sorted(r["amateur"] for r in rows) == sorted([Path(amateur).name, "other-amateur"])


def test_amateur_errors_at_plan_time(tmp_path, prompts, tiny_gpt2, tiny_llama, amateur) -> None:
    out = tmp_path / "runs"
    base = ["run", "--model", tiny_gpt2, "--suite", str(prompts), "--max-new-tokens", "4", "--out", str(out)]

    def error(*extra: str) -> str:
        result = bench(*base, *extra)
        assert result.exit_code == 2, result.output
        assert not out.exists()
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.output
        return lines[0]

    assert "needs --amateur" in error("--decoder", "contrastive-decoding")
    assert "no config.json" in error("--decoder", "contrastive-decoding", "--amateur", str(tmp_path))
    assert "cannot load model" in error("--decoder", "contrastive-decoding", "--amateur", str(tmp_path / "missing"))
    assert "tokenizer differs" in error("--decoder", "contrastive-decoding", "--amateur", tiny_llama)
    pickled = tmp_path / "pickled"
    shutil.copytree(amateur, pickled)
    (pickled / "model.safetensors").rename(pickled / "pytorch_model.bin")
    assert "pickle" in error("--decoder", "contrastive-decoding", "--amateur", str(pickled))
    assert "needs the model itself" in error("--decoder", "contrastive-decoding", "--amateur", amateur,
                                             "--backend", "fake")
    assert "alpha must be in [0, 1]" in error("--decoder", "contrastive-decoding:alpha=2", "--amateur", amateur)
    # --decoder all names it as skipped without an amateur.
    result = bench("run", "--model", "m", "--backend", "fake", "--suite", str(prompts), "--out", str(out),
                   "--decoder", "all", "--max-new-tokens", "3")
    assert result.exit_code == 0, result.output
    assert "skipped contrastive-decoding: needs --amateur" in result.output


def test_decoder_without_amateur_is_an_error() -> None:
    decoder = build_decoder(parse_decoder("contrastive-decoding"))
    with pytest.raises(BenchError, match="needs --amateur"):
        decoder.generate(None, None, None, max_new_tokens=1, eos_token_ids=[0], pad_token_id=0)
