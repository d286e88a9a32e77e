"""Leaderboards never mix settings, seeds are an axis, degenerate output is flagged (issue 14 parts 3, 5)."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.cli import main

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BENCH_SHARED", REPO.parent / "shared")).resolve()
STORIES = SHARED / "models" / "stories260K"
COMMON = ["--suite", "cd-wikitext", "--max-new-tokens", "16", "--device", "cpu", "--model", STORIES,
          "--data-dir", SHARED / "data"]


def bench(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def rows_of(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """top-k at seeds 0,1,2 (5 prompts) and greedy at 5 and at 3 prompts, in one store."""
    root = tmp_path_factory.mktemp("settings") / "store"
    for args in (["--decoder", "top-k", "--num-prompts", "5", "--seeds", "0,1,2"],
                 ["--decoder", "greedy", "--num-prompts", "5"], ["--decoder", "greedy", "--num-prompts", "3"]):
        result = bench("run", *COMMON, *args, "--out", root)
        assert result.exit_code == 0, result.output
    return root


def test_settings_that_differ_are_columns_and_the_store_publishes(store, tmp_path):
    """Measured: runs at 5 and 3 prompts printed as duplicate rows and 'bench leaderboard' refused the store."""
    result = bench("leaderboard", store, "--out", tmp_path / "board")
    assert result.exit_code == 0, result.output
    rows = rows_of(tmp_path / "board.csv")
    greedy = sorted(r["n_prompts"] for r in rows if r["decoder"] == "greedy")
    human = sorted(r["n_prompts"] for r in rows if r["model"] == "human")
    assert greedy == ["3", "5"] and human == ["3", "5"]
    table = (tmp_path / "board.md").read_text()
    assert "| model | decoder | n_prompts | seed | n | flags |" in table
    assert '<th data-type="text">n_prompts</th>' in (tmp_path / "board.html").read_text()
    # bench run wrote the same rows to the store's own leaderboard
    assert len(rows_of(store / "leaderboard.csv")) == len(rows)


def test_seeds_give_one_row_with_the_mean_and_per_seed_rows_on_request(store, tmp_path):
    bench("leaderboard", store, "--out", tmp_path / "mean")
    top_k = [r for r in rows_of(tmp_path / "mean.csv") if r["decoder"] == "top-k"]
    assert len(top_k) == 1 and top_k[0]["seed"] == "0,1,2" and top_k[0]["n_seeds"] == "3"
    result = bench("leaderboard", store, "--out", tmp_path / "each", "--per-seed")
    assert result.exit_code == 0, result.output
    each = [r for r in rows_of(tmp_path / "each.csv") if r["decoder"] == "top-k"]
    assert sorted(r["seed"] for r in each) == ["0", "1", "2"]
    for name in ("distinct-2", "length-words", "rep-2"):
        mean = sum(float(r[name]) for r in each) / 3
        assert float(top_k[0][name]) == pytest.approx(mean, rel=1e-5)
        assert float(top_k[0][f"{name}_lo"]) <= float(top_k[0][name]) <= float(top_k[0][f"{name}_hi"])
    assert "| seed |" in (tmp_path / "each.md").read_text()


def test_a_seed_given_twice_or_badly_is_refused(tmp_path):
    for args, message in ((["--seeds", "0,x"], "give integers separated by commas"),
                          (["--seed", "1", "--seed", "1"], "seed given twice")):
        result = CliRunner().invoke(main, ["run", *map(str, COMMON), "--decoder", "greedy", *args,
                                           "--out", str(tmp_path / "s")])
        assert result.exit_code == 2 and message in result.output
        assert not (tmp_path / "s").exists()


def test_degenerate_generations_are_flagged(store, tmp_path):
    """Measured: a hyperfit whose greedy output was mostly blank lines beat greedy on word diversity, unflagged."""
    copy = tmp_path / "store"
    greedy = next(d for d in sorted(store.iterdir()) if (d / "header.json").is_file()
                  and json.loads((d / "header.json").read_text())["spec"]["decoder"]["name"] == "greedy")
    shutil.copytree(greedy, copy / greedy.name)
    lines = [json.loads(x) for x in (copy / greedy.name / "generations.jsonl").read_text().splitlines()]
    for rec in lines[:-1]:
        rec["continuation"], rec["token_ids"] = "\n\n", [13, 13]
    (copy / greedy.name / "generations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    (copy / greedy.name / "scores.json").unlink(missing_ok=True)
    result = bench("leaderboard", copy, "--out", tmp_path / "flagged")
    assert result.exit_code == 0, result.output
    row = next(r for r in rows_of(tmp_path / "flagged.csv") if r["decoder"] == "greedy")
    assert "degenerate" in row["flags"] and "empty" in row["flags"] and float(row["empty_share"]) >= 0.6
    assert "degenerate" in (tmp_path / "flagged.md").read_text()


def test_a_hyperfit_above_its_target_warns_and_its_loss_is_in_header_and_leaderboard(tmp_path):
    """Measured: a hyperfit at loss 1.26 against --stop-at-loss 0.05 ran and published without a word."""
    from bench.hyperfit.train import Recipe, train

    text = tmp_path / "grimm.txt"
    text.write_text((SHARED / "data" / "pd-stories" / "grimms_fairy_tales_pg52521.txt").read_text()[:20_000])
    recipe = Recipe(num_sequences=4, seq_len=64, epochs=1, lr=1e-3, batch_size=2, stop_at_loss=0.05)
    meta = train(str(STORIES), str(text), tmp_path / "hf", recipe, device="cpu", log=lambda m: None,
                 show_progress=False).metadata
    result = bench("run", *COMMON, "--num-prompts", "3", "--decoder", "greedy-hyperfit", "--hyperfit", tmp_path / "hf",
                   "--out", tmp_path / "store")
    assert result.exit_code == 0, result.output
    assert "warning: --hyperfit" in result.output and "above its --stop-at-loss target 0.05" in result.output
    header = json.loads(next((tmp_path / "store").glob("*/header.json")).read_text())
    assert header["resolved"]["hyperfit_loss"] == pytest.approx(meta["final_loss"])
    row = next(r for r in rows_of(tmp_path / "store" / "leaderboard.csv") if r["decoder"] == "greedy-hyperfit")
    assert float(row["hyperfit_loss"]) == pytest.approx(meta["final_loss"], rel=1e-5)


def test_a_hyperfit_far_from_zero_loss_warns_and_is_flagged_without_a_target(tmp_path):
    """Measured: a checkpoint at loss 3.37 (no --stop-at-loss) ran --hyperfit decoders without a word."""
    from bench.hyperfit.finish import NEAR_ZERO_LOSS
    from bench.hyperfit.train import Recipe, train

    text = tmp_path / "grimm.txt"
    text.write_text((SHARED / "data" / "pd-stories" / "grimms_fairy_tales_pg52521.txt").read_text()[:20_000])
    recipe = Recipe(num_sequences=4, seq_len=64, epochs=1, lr=1e-4, batch_size=2)
    logged: list[str] = []
    meta = train(str(STORIES), str(text), tmp_path / "hf", recipe, device="cpu", log=logged.append,
                 show_progress=False).metadata
    assert meta["final_loss"] > NEAR_ZERO_LOSS
    assert any(m.startswith("warning: its final training loss") for m in logged)
    result = bench("run", *COMMON, "--num-prompts", "3", "--decoder", "greedy-hyperfit", "--decoder", "greedy",
                   "--hyperfit", tmp_path / "hf", "--out", tmp_path / "store")
    assert result.exit_code == 0, result.output
    assert "warning: --hyperfit" in result.output and "far from the near-zero loss" in result.output
    rows = rows_of(tmp_path / "store" / "leaderboard.csv")
    hyper = next(r for r in rows if r["decoder"] == "greedy-hyperfit")
    assert f"not hyperfitted: loss {meta['final_loss']:.3g}" in hyper["flags"]
    assert "not hyperfitted" not in next(r for r in rows if r["decoder"] == "greedy")["flags"]


def test_whitespace_runs_inside_text_are_flagged(store, tmp_path):
    """Measured: DoLa on SmolLM2 wrote long runs of spaces in 2 of 32 continuations; no flag said so."""
    from bench.leaderboard import whitespace_degenerate

    assert whitespace_degenerate("The city" + " " * 40 + "grew.") and whitespace_degenerate(" \n \n ")
    assert not whitespace_degenerate("A line.\n\nA new paragraph, as prose has.")
    copy = tmp_path / "store"
    greedy = next(d for d in sorted(store.iterdir()) if (d / "header.json").is_file()
                  and json.loads((d / "header.json").read_text())["spec"]["decoder"]["name"] == "greedy")
    shutil.copytree(greedy, copy / greedy.name)
    lines = [json.loads(x) for x in (copy / greedy.name / "generations.jsonl").read_text().splitlines()]
    for rec in lines[:2]:
        rec["continuation"] = rec["continuation"][:20] + " " * 64 + rec["continuation"][20:]
    (copy / greedy.name / "generations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    (copy / greedy.name / "scores.json").unlink(missing_ok=True)
    result = bench("leaderboard", copy, "--out", tmp_path / "flagged")
    assert result.exit_code == 0, result.output
    row = next(r for r in rows_of(tmp_path / "flagged.csv") if r["decoder"] == "greedy")
    assert "whitespace runs" in row["flags"] and float(row["whitespace_share"]) == pytest.approx(2 / len(lines))


def test_a_length_matched_human_row_cuts_references_to_the_generated_length(store, tmp_path):
    """Measured: the human row scored whole references (164 words) against 25-word continuations."""
    result = bench("leaderboard", store, "--out", tmp_path / "matched", "--length-matched")
    assert result.exit_code == 0, result.output
    rows = rows_of(tmp_path / "matched.csv")
    for n in ("3", "5"):
        whole = next(r for r in rows if r["decoder"] == "reference" and r["n_prompts"] == n)
        cut = next(r for r in rows if r["decoder"] == "reference-cut" and r["n_prompts"] == n)
        generated = [float(r["length-words"]) for r in rows if r["model"] != "human" and r["n_prompts"] == n]
        assert float(whole["length-words"]) > 3 * max(generated)
        assert min(generated) - 1 <= float(cut["length-words"]) <= max(generated) + 1
