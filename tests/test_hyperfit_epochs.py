"""Hyperfitting epochs as an axis (issue 25, part 6): ``bench hyperfit --save-every K`` keeps loadable
checkpoints, ``bench run --hyperfit DIR@every`` (or ``@epoch=K``) decodes each, and the leaderboard
plots the metrics against the epoch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.cli import main


@pytest.fixture(scope="module")
def kept(tmp_path_factory: pytest.TempPathFactory, stories260k: str) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("epochs")
    (root / "train.txt").write_text("Once upon a time there was a little cat who liked the sun. " * 30)
    out = root / "hf"
    result = CliRunner().invoke(main, ["hyperfit", "--model", stories260k, "--data", str(root / "train.txt"),
                                       "--out", str(out), "--num-sequences", "4", "--seq-len", "16", "--epochs", "3",
                                       "--lr", "1e-3", "--save-every", "2", "--no-progress"])
    assert result.exit_code == 0, result.output
    suite = root / "p.jsonl"
    suite.write_text("".join(json.dumps({"id": f"p{i}", "prompt": t}) + "\n"
                             for i, t in enumerate(["Once upon a time", "The cat", "A little girl"])))
    return {"root": root, "out": out, "suite": suite}


def test_every_kth_epoch_and_the_last_are_kept_as_finished_checkpoints(kept: dict[str, Path]) -> None:
    from safetensors.torch import load_file

    epochs = sorted(p.name for p in (kept["out"] / "epochs").iterdir())
    assert epochs == ["epoch-002", "epoch-003"]  # K = 2, and the last epoch
    final = json.loads((kept["out"] / "hyperfit.json").read_text())
    for name, epoch in (("epoch-002", 2), ("epoch-003", 3)):
        meta = json.loads((kept["out"] / "epochs" / name / "hyperfit.json").read_text())
        assert meta["finished"] and meta["epoch_checkpoint"] == meta["epochs_done"] == epoch
        assert meta["final_loss"] == pytest.approx(final["epoch_losses"][epoch - 1])
    last = load_file(str(kept["out"] / "epochs" / "epoch-003" / "model.safetensors"))
    whole = load_file(str(kept["out"] / "model.safetensors"))
    assert all((last[k] == whole[k]).all() for k in whole)  # the last kept epoch is the final model
    middle = load_file(str(kept["out"] / "epochs" / "epoch-002" / "model.safetensors"))
    assert any((middle[k] != whole[k]).any() for k in whole)


def test_run_on_every_epoch_and_plot_against_it(kept: dict[str, Path], stories260k: str) -> None:
    store = kept["root"] / "runs"
    result = CliRunner().invoke(main, ["run", "--model", stories260k, "--suite", str(kept["suite"]),
                                       "--hyperfit", f"{kept['out']}@every", "--decoder", "greedy-hyperfit",
                                       "--decoder", "greedy", "--max-new-tokens", "8", "--out", str(store)])
    assert result.exit_code == 0, result.output
    headers = [json.loads(p.read_text()) for p in store.glob("*/header.json")]
    assert sorted(h["resolved"].get("hyperfit_epoch", 0) for h in headers) == [0, 2, 3]  # greedy once, not per epoch
    board = kept["root"] / "board" / "b"
    result = CliRunner().invoke(main, ["leaderboard", str(store), "--out", str(board)])
    assert result.exit_code == 0, result.output
    assert (board.parent / "b-epochs.png").stat().st_size > 5000
    assert "b-epochs.png" in (board.parent / "b.md").read_text()
    import csv

    with open(board.parent / "b.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["decoder"] == "greedy-hyperfit"]
    assert [r["hyperfit_epoch"] for r in rows] == ["2", "3"]


def test_one_epoch_is_chosen_with_at_epoch(kept: dict[str, Path], stories260k: str) -> None:
    store = kept["root"] / "one"
    result = CliRunner().invoke(main, ["run", "--model", stories260k, "--suite", str(kept["suite"]),
                                       "--hyperfit", f"{kept['out']}@epoch=2", "--decoder", "greedy-hyperfit",
                                       "--max-new-tokens", "4", "--out", str(store)])
    assert result.exit_code == 0, result.output
    (header,) = [json.loads(p.read_text()) for p in store.glob("*/header.json")]
    assert header["resolved"]["hyperfit_epoch"] == 2 and header["spec"]["model"]["hyperfit"].endswith("epoch-002")


@pytest.mark.parametrize("suffix,needle", [("@epoch=7", "kept no epoch 7 (kept: 2, 3)"),
                                           ("@last", "after '@' give epoch=K or every")])
def test_a_missing_epoch_is_one_line(kept: dict[str, Path], stories260k: str, suffix: str, needle: str) -> None:
    result = CliRunner().invoke(main, ["run", "--model", stories260k, "--suite", str(kept["suite"]),
                                       "--hyperfit", f"{kept['out']}{suffix}", "--decoder", "greedy-hyperfit",
                                       "--out", str(kept["root"] / "none")])
    assert result.exit_code == 2 and needle in result.stderr and len(result.stderr.splitlines()) == 1, result.output
    assert not (kept["root"] / "none").exists()
