"""bench analyze: properties that pin the computations down, and the report end to end.

Real tiny model: stories260K (5 blocks, vocabulary 512) and a hyperfitted checkpoint of it trained
here in a few seconds on an excerpt of Grimm's Fairy Tales.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from bench.analysis.analyze import Options, analyze
from bench.analysis.cli import analyze as analyze_cli
from bench.analysis.contexts import Pair, generate
from bench.analysis.reweight import parse_alphas
from bench.analysis.stats import Covariance, participation_ratio
from bench.stats import bootstrap_mean, bootstrap_ratio
from bench.backends.hf import HFBackend
from bench.decoding import Greedy
from bench.errors import BenchError
from bench.specs import Prompt

SHARED = Path(os.environ.get("BENCH_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
STORIES = str(SHARED / "models" / "stories260K")
GRIMM = SHARED / "data" / "pd-stories" / "grimms_fairy_tales_pg52521.txt"
PROMPTS = ["Once upon a time", "The little dog ran to the park and", "Tom had a red ball. He",
           "One day, a girl named Lily found", "The king said to the princess"]
TINY = dict(num_prompts=None, max_new_tokens=12, batch_size=4, calib_prompts=3, calib_tokens=12,
            alphas=(0.1, 1.0), n_boot=50, logit_lens=True)


@pytest.fixture(scope="module")
def suite_file(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("suite") / "prompts.jsonl"
    path.write_text("".join(json.dumps({"id": f"p{i}", "prompt": p}) + "\n" for i, p in enumerate(PROMPTS)))
    return str(path)


@pytest.fixture(scope="module")
def hyperfitted(tmp_path_factory) -> str:
    """A hyperfitted stories260K: 8 sequences of 64 tokens, 6 epochs at a high learning rate (seconds)."""
    from bench.hyperfit.train import Recipe, train

    text = tmp_path_factory.mktemp("data") / "grimm.txt"
    text.write_text(GRIMM.read_text(encoding="utf-8")[:20_000], encoding="utf-8")
    out = tmp_path_factory.mktemp("hf") / "ckpt"
    train(STORIES, str(text), out, Recipe(num_sequences=8, seq_len=64, epochs=6, lr=3e-3, batch_size=4),
          device="cpu", log=lambda m: None, show_progress=False)
    return str(out)


@pytest.fixture(scope="module")
def base() -> HFBackend:
    return HFBackend(STORIES, device="cpu", dtype="float32")


def _prompts() -> list[Prompt]:
    return [Prompt(f"p{i}", p) for i, p in enumerate(PROMPTS)]


# --- statistics ---------------------------------------------------------------------------------


def test_participation_ratio_of_isotropic_gaussian_is_d_and_of_rank_one_data_is_1():
    rng = np.random.default_rng(0)
    d = 16
    assert participation_ratio(rng.standard_normal((20_000, d))) == pytest.approx(d, rel=0.02)
    rank_one = rng.standard_normal((500, 1)) * rng.standard_normal((1, d))
    assert participation_ratio(rank_one) == pytest.approx(1.0, abs=1e-9)
    # The streaming covariance gives the same numbers in chunks.
    x = rng.standard_normal((300, 8)) @ rng.standard_normal((8, 8))
    acc = Covariance()
    for chunk in np.array_split(x, 7):
        acc.add(torch.from_numpy(chunk))
    np.testing.assert_allclose(acc.cov(), np.cov(x, rowvar=False), rtol=1e-10, atol=1e-12)
    assert acc.participation_ratio() == pytest.approx(participation_ratio(x), rel=1e-10)


def test_bootstrap_intervals_contain_the_estimate_and_shrink_with_n():
    rng = np.random.default_rng(1)
    small, large = bootstrap_mean(rng.random(20)), bootstrap_mean(rng.random(2000))
    for e in (small, large):
        assert e.low <= e.value <= e.high
    assert large.high - large.low < (small.high - small.low) / 3
    assert bootstrap_mean([np.nan, 1.0, 3.0]).value == 2.0 and bootstrap_mean([np.nan]).n == 0
    ratio = bootstrap_ratio([1, 2, 0], [2, 4, 4])
    assert ratio.value == pytest.approx(0.3) and ratio.low <= 0.3 <= ratio.high


# --- the static offset --------------------------------------------------------------------------


def test_static_offset_finds_the_promoted_tokens_and_their_centred_change():
    from decoders.static_reweight import ranks, static_offset

    torch.manual_seed(0)
    b = torch.randn(64, 20)
    h = b.clone()
    h[:, [3, 7]] += 5.0
    offset, chosen = static_offset(b, h, top_k=2)
    assert sorted(chosen.tolist()) == [3, 7]
    expected = torch.zeros(20)
    expected[[3, 7]] = 5.0 - 10.0 / 20  # the change minus its mean over the vocabulary
    torch.testing.assert_close(offset, expected, atol=1e-5, rtol=0)
    assert static_offset(b, h, top_k=10_000)[1].numel() == 20  # capped at the vocabulary
    r = ranks(torch.tensor([[0.1, 3.0, -1.0, 2.0]]))
    assert r.tolist() == [[3, 1, 4, 2]]


def test_static_reweight_with_alpha_0_is_the_base_model(base, hyperfitted):
    from bench.analysis.contexts import load_pair
    from bench.decoding import record_seed
    from decoders.static_reweight import static_reweight
    from decoders.temperature import temperature

    pair = load_pair(STORIES, hyperfitted, device="cpu", dtype="float32")
    prompts = _prompts()
    decoder = static_reweight(alpha=0.0, greedy=True, calib_prompts=3, calib_tokens=12)
    resolved = decoder.calibrate(pair.base, pair.hyper, prompts)
    assert resolved["reweight_tokens"] == 500 and resolved["offset_l2"] > 0
    run = dict(max_new_tokens=16, batch_size=5, seed=3)
    assert generate(base, prompts, decoder, **run) == generate(base, prompts, Greedy(), **run)
    sampled = static_reweight(alpha=0.0, t=0.8)
    sampled.offset = decoder.offset
    assert generate(base, prompts, sampled, **run) == generate(base, prompts, temperature(t=0.8), **run)
    # The offset does act once alpha is large: the same seeds now give other tokens.
    assert generate(base, prompts, decoder.with_alpha(2.0), **run) != generate(base, prompts, Greedy(), **run)
    assert record_seed(3, "p0", 0) != record_seed(3, "p1", 0)


def test_static_reweight_is_a_registered_decoder_that_needs_a_hyperfit():
    from bench.registry import get_decoder
    from bench.specs import parse_decoder

    info = get_decoder("static-reweight")
    assert info.requires == ("hyperfit",) and not info.runs_on_hyperfit
    assert parse_decoder("static-reweight:alpha=0.2,top_k=50").kwargs["alpha"] == 0.2
    for bad in ("static-reweight:alpha=-1", "static-reweight:top_k=0", "static-reweight:t=0"):
        with pytest.raises(BenchError):
            parse_decoder(bad)


# --- a model against itself -------------------------------------------------------------------------


def test_a_model_against_itself_agrees_everywhere(base, suite_file):
    twin = HFBackend(STORIES, device="cpu", dtype="float32")
    res = analyze(Options(model=STORIES, hyperfit="(same)", suite=suite_file, **TINY), pair=Pair(base, twin))
    for row in res.control:
        if row["condition"] == "hyperfitted greedy":
            assert row["agreement"].value == 1.0
    assert res.ranks.override.value == 0.0 and res.ranks.deep_tail_all.value == 0.0
    assert set(res.ranks.ranks.tolist()) == {1} and res.ranks.steps > 0
    for g in res.geometry:
        assert g["delta_dim"] == 0.0 and g["l2"].value == 0.0
        assert g["cosine"].value == pytest.approx(1.0, abs=1e-6)
    assert res.layers == 5 and len(res.geometry) == 6
    for lens in res.lens:
        assert lens["base"].value == lens["hyper"].value
    assert res.lens[-1]["base"].value == 1.0
    # Its own entropy is the target: T* = 1, and the static offset is zero, so every alpha is alpha = 0.
    assert res.calibration["temperature"] == pytest.approx(1.0, abs=1e-4)
    assert res.sweep.calibration["offset_l2"] == 0.0
    reference = res.sweep.points[0].metrics
    for point in res.sweep.points[1:]:
        assert {k: e.value for k, e in point.metrics.items()} == {k: e.value for k, e in reference.items()}


# --- the report end to end ----------------------------------------------------------------------------


def test_report_builds_end_to_end(tmp_path, hyperfitted, suite_file):
    out = tmp_path / "report"
    args = ["--model", STORIES, "--hyperfit", hyperfitted, "--suite", suite_file, "--out", str(out),
            "--max-new-tokens", "16", "--batch-size", "4", "--calib-prompts", "3", "--calib-tokens", "16",
            "--alphas", "0.05,0.5", "--n-boot", "50", "--logit-lens", "--device", "cpu"]
    result = CliRunner().invoke(analyze_cli, args)
    assert result.exit_code == 0, result.output
    for name in ("report.md", "settings.json", "control.csv", "ranks.csv", "rank_histogram.csv", "reweight.csv",
                 "geometry.csv", "logit_lens.csv", "control.png", "rank_histogram.png", "reweight.png",
                 "geometry.png", "logit_lens.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    report = (out / "report.md").read_text()
    for png in ("control.png", "rank_histogram.png", "reweight.png", "geometry.png", "logit_lens.png"):
        assert f"({png})" in report
    settings = json.loads((out / "settings.json").read_text())
    assert settings["prompts"] == len(PROMPTS) and settings["options"]["alphas"] == [0.05, 0.5]
    assert all(f["n_prompts"] == len(PROMPTS) and f["settings"] for f in settings["figures"].values())
    cal = settings["entropy_matched_calibration"]
    assert cal["achieved_entropy"] == pytest.approx(cal["target_entropy"], abs=1e-3) and cal["temperature"] > 0
    # The text names both entropy measurements (calibration positions, each condition's own), with the table's values.
    control_rows = {r["condition"]: r for r in csv_rows(out / "control.csv")}
    assert "Two measurements, on different positions" in report
    assert f"{cal['achieved_entropy']:.4f} against {cal['target_entropy']:.4f}" in report
    assert "base at T*: " + f"{float(control_rows['base T*']['entropy']):.3f}" in report
    import csv

    ranks = {r["metric"]: r for r in csv.DictReader((out / "ranks.csv").open())}
    assert 0 < float(ranks["override"]["value"]) <= 1  # hyperfitting moved some greedy choices
    assert 0 <= float(ranks["deep_tail"]["value"]) <= 1
    hist = list(csv.DictReader((out / "rank_histogram.csv").open()))
    assert sum(int(r["count"]) for r in hist) == settings["figures"]["rank_histogram.png"]["steps"] > 0
    assert int(hist[0]["count"]) == round((1 - float(ranks["override"]["value"])) * sum(int(r["count"]) for r in hist))
    control = {r["condition"]: r for r in csv.DictReader((out / "control.csv").open())}
    assert float(control["hyperfitted greedy"]["agreement"]) == 1.0
    for row in control.values():
        for m in ("ttr", "rep-2", "rep-3", "agreement"):
            assert 0 <= float(row[m]) <= 1
            assert float(row[f"{m}_low"]) <= float(row[m]) + 1e-9 <= float(row[f"{m}_high"]) + 2e-9
        assert 0 < float(row["entropy"]) < math.log(512)
    geometry = list(csv.DictReader((out / "geometry.csv").open()))
    assert len(geometry) == 6
    for g in geometry:
        assert 1 <= float(g["pr_base"]) <= 64 and 1 <= float(g["pr_hyper"]) <= 64
        assert -1 <= float(g["cosine"]) <= 1 and float(g["l2"]) >= 0
    assert float(geometry[-1]["cosine"]) < 1  # the hyperfitted model's final states did move
    assert [float(r["alpha"]) for r in csv.DictReader((out / "reweight.csv").open())] == [0.0, 0.05, 0.5]


# --- bad input ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "0.1,,0.2", "0.1,abc", "-0.5", "nan", "inf"])
def test_bad_alpha_lists_are_refused(text):
    with pytest.raises(BenchError):
        parse_alphas(text)
    assert parse_alphas("0.5, 0.01,0.5") == (0.01, 0.5)


def test_bad_input_exits_2(tmp_path, suite_file, tiny_gpt2):
    runner = CliRunner()
    common = ["--model", STORIES, "--suite", suite_file, "--out", str(tmp_path / "o"), "--device", "cpu"]
    missing = runner.invoke(analyze_cli, [*common, "--hyperfit", str(tmp_path / "nope")], standalone_mode=False)
    assert isinstance(missing.exception, BenchError) and "does not exist" in str(missing.exception)
    other_vocab = runner.invoke(analyze_cli, [*common, "--hyperfit", tiny_gpt2], standalone_mode=False)
    assert isinstance(other_vocab.exception, BenchError) and "vocabulary" in str(other_vocab.exception)
    alphas = runner.invoke(analyze_cli, [*common, "--hyperfit", tiny_gpt2, "--alphas", "0.1,-2"], standalone_mode=False)
    assert isinstance(alphas.exception, BenchError) and "alpha" in str(alphas.exception)
    with pytest.raises(BenchError):
        Options(model=STORIES, hyperfit="x", suite=suite_file, tail_rank=0).validate()
    from bench.cli import main

    assert runner.invoke(main, ["analyze", *common, "--hyperfit", str(tmp_path / "nope")]).exit_code == 2


def csv_rows(path):
    import csv

    return list(csv.DictReader(path.open()))
