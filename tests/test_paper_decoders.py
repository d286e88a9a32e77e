"""Entropy-matched temperature and greedy-hyperfit, and all paper decoders through `bench run`."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from bench.backends.hf import HFBackend
from bench.cli import main
from bench.decoding import RowRNG
from bench.hyperfit.checkpoint import load_hyperfit
from bench.hyperfit.train import Recipe, train
from bench.specs import Prompt, build_decoder, parse_decoder
from decoders.entropy_matched import continuation_logits, entropy, solve_temperature

TEXTS = ["Once upon a time", "The dog ran to the park", "Tom was sad because", "One day, a little bird",
         "The sun was hot", "Lily had a red ball", "The cat sat on the mat", "Mom said"]
PROMPTS = [Prompt(f"p{i}", t) for i, t in enumerate(TEXTS)]


@pytest.fixture(scope="module")
def hyperfit_full(tmp_path_factory: pytest.TempPathFactory, stories260k: str, shared: Path) -> str:
    """A tiny hyperfitted stories260K (full fine-tune on Grimm, seconds on one thread)."""
    text = tmp_path_factory.mktemp("data") / "grimm.txt"
    text.write_text((shared / "data/pd-stories/grimms_fairy_tales_pg52521.txt").read_text()[:20_000])
    out = tmp_path_factory.mktemp("hf") / "full"
    recipe = Recipe(num_sequences=8, seq_len=64, epochs=6, lr=3e-3, batch_size=4)
    train(stories260k, str(text), out, recipe, device="cpu", log=lambda m: None, show_progress=False)
    return str(out)


@pytest.fixture(scope="module")
def hyperfit_lora(tmp_path_factory: pytest.TempPathFactory, stories260k: str, shared: Path) -> str:
    text = tmp_path_factory.mktemp("data") / "grimm.txt"
    text.write_text((shared / "data/pd-stories/grimms_fairy_tales_pg52521.txt").read_text()[:20_000])
    out = tmp_path_factory.mktemp("hf") / "lora"
    recipe = Recipe(method="lora", num_sequences=8, seq_len=64, epochs=3, lr=1e-2, batch_size=4, lora_r=4,
                    lora_alpha=8, lora_dropout=0.0)
    train(stories260k, str(text), out, recipe, device="cpu", log=lambda m: None, show_progress=False)
    return str(out)


def test_bisection_solves_mean_and_per_row_entropy() -> None:
    torch.manual_seed(0)
    logits = torch.randn(50, 100, dtype=torch.float64) * 3
    t = solve_temperature(logits, 2.0, per_row=False)
    assert abs(float(entropy(logits, t).mean()) - 2.0) < 1e-6
    t_rows = solve_temperature(logits, 1.5, per_row=True)
    assert torch.allclose(entropy(logits, t_rows), torch.full((50,), 1.5, dtype=torch.float64), atol=1e-6)
    # Entropy rises with temperature: the property bisection relies on.
    hs = [float(entropy(logits, t).mean()) for t in (0.3, 0.7, 1.0, 2.0, 5.0)]
    assert hs == sorted(hs)


def test_global_mode_matches_the_target_over_the_calibration_contexts(stories260k: str) -> None:
    base = HFBackend(stories260k, device="cpu", dtype="float32")
    decoder = build_decoder(parse_decoder("entropy-matched:target=0.8,calib_prompts=8,calib_tokens=32"))
    resolved = decoder.calibrate(base, base, PROMPTS)
    assert abs(resolved["achieved_entropy"] - 0.8) < 0.01
    # Recompute independently from the contexts: base's greedy continuations.
    outs = base.continue_batch(TEXTS, build_decoder(parse_decoder("greedy")), max_new_tokens=32, seeds=[0] * 8)
    logits = continuation_logits(base, TEXTS, [o.token_ids for o in outs])
    assert logits.size(0) == resolved["calibration_positions"]
    assert abs(float(entropy(logits, resolved["temperature"]).mean()) - 0.8) < 0.01
    assert resolved["temperature"] < 1.0 < resolved["base_entropy_t1"] / 0.8 * 2  # lower entropy: cooler


def test_per_step_mode_matches_the_target_at_every_step(stories260k: str) -> None:
    base = HFBackend(stories260k, device="cpu", dtype="float32")
    decoder = build_decoder(parse_decoder("entropy-matched:target=1.2,mode=per-step,calib_prompts=2,calib_tokens=8"))
    decoder.calibrate(base, base, PROMPTS)
    enc = base.tokenizer(TEXTS, return_tensors="pt", padding=True)
    with torch.inference_mode():
        logits = base.model(**enc).logits[:, -1, :].float()
    rng = RowRNG(range(len(TEXTS)))
    for _ in range(5):
        decoder.select(logits, rng)
        reachable = math.log(logits.size(-1)) > 1.2  # always here; ties at the argmax are measure-zero
        assert reachable and torch.all((decoder.last_entropy - 1.2).abs() < 0.01)


def test_target_measured_on_the_hyperfitted_model(stories260k: str, hyperfit_full: str) -> None:
    base = HFBackend(stories260k, device="cpu", dtype="float32")
    model, _ = load_hyperfit(hyperfit_full, stories260k)
    hyper = HFBackend(stories260k, device="cpu", dtype="float32", model=model)
    decoder = build_decoder(parse_decoder("entropy-matched:calib_prompts=8,calib_tokens=32"))
    resolved = decoder.calibrate(base, hyper, PROMPTS)
    outs = hyper.continue_batch(TEXTS, build_decoder(parse_decoder("greedy")), max_new_tokens=32, seeds=[0] * 8)
    expected = float(entropy(continuation_logits(hyper, TEXTS, [o.token_ids for o in outs]), 1.0).mean())
    assert resolved["target_entropy"] == pytest.approx(expected, abs=1e-6)
    assert abs(resolved["achieved_entropy"] - expected) < 0.01


@pytest.mark.parametrize("which", ["hyperfit_full", "hyperfit_lora"])
def test_greedy_hyperfit_equals_greedy_on_the_checkpoint(request: pytest.FixtureRequest, tmp_path: Path,
                                                        stories260k: str, which: str) -> None:
    ckpt = request.getfixturevalue(which)
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"id": p.id, "prompt": p.text}) + "\n" for p in PROMPTS))
    out = tmp_path / "runs"
    result = CliRunner().invoke(main, ["run", "--model", stories260k, "--hyperfit", ckpt, "--suite", str(prompts),
                                       "--decoder", "greedy-hyperfit", "--max-new-tokens", "32", "--out", str(out)])
    assert result.exit_code == 0, result.output
    records = {json.loads(l)["prompt_id"]: json.loads(l) for l in next(out.glob("*/generations.jsonl")).read_text().splitlines()}
    model, _ = load_hyperfit(ckpt, stories260k)
    direct = HFBackend(stories260k, device="cpu", dtype="float32", model=model)
    enc = direct.tokenizer(TEXTS, return_tensors="pt", padding=True)
    gen = model.generate(**enc, max_new_tokens=32, do_sample=False, pad_token_id=direct.tokenizer.pad_token_id)
    for p, row in zip(PROMPTS, gen[:, enc["input_ids"].shape[1]:].tolist()):
        cut = next((i for i, t in enumerate(row) if t in direct.eos_token_ids), len(row))
        assert records[p.id]["token_ids"] == row[:cut]
    base_greedy = HFBackend(stories260k, device="cpu", dtype="float32").continue_batch(
        TEXTS, build_decoder(parse_decoder("greedy")), max_new_tokens=32, seeds=[0] * 8)
    assert [records[p.id]["token_ids"] for p in PROMPTS] != [o.token_ids for o in base_greedy]


def test_all_decoders_run_with_a_hyperfit_checkpoint(tmp_path: Path, stories260k: str, hyperfit_full: str) -> None:
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"id": p.id, "prompt": p.text, "reference": "and then they all went home."})
                               + "\n" for p in PROMPTS[:4]))
    out = tmp_path / "runs"
    result = CliRunner().invoke(main, ["run", "--model", stories260k, "--hyperfit", hyperfit_full, "--suite",
                                       str(prompts), "--decoder", "all", "--max-new-tokens", "24", "--out", str(out)])
    assert result.exit_code == 0, result.output
    with open(out / "leaderboard.csv") as f:
        rows = {r["decoder"]: r for r in csv.DictReader(f)}
    assert {"greedy", "greedy-hyperfit", "entropy-matched", "contrastive", "top-p"} <= set(rows)
    em = rows["entropy-matched"]
    assert abs(float(em["achieved_entropy"]) - float(em["target_entropy"])) < 0.01 and float(em["temperature"]) > 0


def test_without_hyperfit_all_lists_them_as_skipped(tmp_path: Path, stories260k: str) -> None:
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "Once upon a time"}) + "\n")
    result = CliRunner().invoke(main, ["run", "--model", stories260k, "--suite", str(prompts),
                                                       "--decoder", "all", "--max-new-tokens", "4",
                                                       "--out", str(tmp_path / "o")])
    assert result.exit_code == 0
    assert "skipped greedy-hyperfit: needs --hyperfit" in result.stderr
    assert "skipped entropy-matched: needs --hyperfit" in result.stderr and "bench hyperfit" in result.stderr


def _bench_exit(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench.cli", "run", "--out", str(tmp_path / "o"), *args],
                          capture_output=True, text=True)


@pytest.mark.parametrize("decoder,message", [
    ("entropy-matched:target=0", "target must be > 0"),
    ("entropy-matched:target=-1", "target must be > 0"),
    ("entropy-matched:target=7", "not below log(vocabulary size)"),  # log(512) = 6.24
    ("entropy-matched:target=1,mode=sometimes", "mode must be global or per-step"),
    ("greedy-hyperfit", "needs --hyperfit"),
    ("entropy-matched", "needs --hyperfit"),
])
def test_bad_paper_decoder_input(tmp_path: Path, stories260k: str, decoder: str, message: str) -> None:
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "Once upon a time"}) + "\n")
    proc = _bench_exit(["--model", stories260k, "--suite", str(prompts), "--decoder", decoder], tmp_path)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()


def test_hyperfit_checkpoint_of_another_vocabulary_is_refused(tmp_path: Path, stories260k: str, tiny_gpt2: str) -> None:
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "Once upon a time"}) + "\n")
    proc = _bench_exit(["--model", stories260k, "--hyperfit", tiny_gpt2, "--suite", str(prompts),
                        "--decoder", "greedy-hyperfit"], tmp_path)
    assert proc.returncode == 2 and "vocabulary" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()


def test_adapter_of_another_base_is_refused(tmp_path: Path, tiny_llama: str, hyperfit_lora: str) -> None:
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "Once upon a time"}) + "\n")
    proc = _bench_exit(["--model", tiny_llama, "--hyperfit", hyperfit_lora, "--suite", str(prompts),
                        "--decoder", "greedy-hyperfit"], tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "stories260K" in proc.stderr or "not on base model" in proc.stderr
    assert not (tmp_path / "o").exists()
