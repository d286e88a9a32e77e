"""The Python API (decbench.run / decbench.load): same store and errors as the CLI, nothing printed."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

import decbench
from bench.cli import main

PROMPTS = [
    {"id": "a", "prompt": "Once upon a time", "reference": "there was a little girl named Lily who liked to play."},
    {"id": "b", "prompt": "The dog ran to the park", "reference": "and found a big red ball under the tree."},
    {"id": "c", "prompt": "Tom was sad because", "reference": "his toy was broken and his mom was away."},
]


@pytest.fixture()
def prompts_file(tmp_path: Path) -> Path:
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PROMPTS))
    return path


def _loud_transformers() -> None:
    """Undo conftest's silencing, so the test sees what a notebook user would see."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_warning()
    hf_logging.enable_progress_bar()


def test_run_returns_the_leaderboard_and_prints_nothing(tmp_path: Path, prompts_file: Path, stories260k: str,
                                                        capfd: pytest.CaptureFixture) -> None:
    _loud_transformers()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            board = decbench.run(models=stories260k, decoders=["greedy", "top-k:k=5"], suites=str(prompts_file),
                                 out=str(tmp_path / "runs"), max_new_tokens=6, batch_size=2)
    finally:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    assert [str(w.message) for w in caught] == []
    assert list(board["decoder"]) == ["greedy", "top-k", "reference"]
    assert set(board["model"]) == {"stories260K", "human"}
    assert (board["n"] == 3).all() and "rep-2" in board and "rep-2_lo" in board
    # the same store as the CLI: the CLI finds both runs done and its CSV has the same rows
    assert (tmp_path / "runs" / "leaderboard.csv").is_file()
    from click.testing import CliRunner

    result = CliRunner().invoke(main, ["run", "--model", stories260k, "--suite", str(prompts_file), "--decoder", "greedy",
                                       "--decoder", "top-k:k=5", "--out", str(tmp_path / "runs"),
                                       "--max-new-tokens", "6"], catch_exceptions=False)
    assert result.exit_code == 0
    assert "0 records generated" in result.output and "6 already stored" in result.output


def test_load_returns_records_and_scores(tmp_path: Path, prompts_file: Path, stories260k: str) -> None:
    decbench.run(models=[stories260k], decoders="greedy", suites=[str(prompts_file)], out=str(tmp_path / "runs"),
                 max_new_tokens=5)
    records, scores = decbench.load(tmp_path / "runs")
    assert len(records) == 3
    assert set(records["prompt_id"]) == {"a", "b", "c"}
    assert {"continuation", "finish_reason", "num_tokens", "run_id"} <= set(records.columns)
    assert list(scores["decoder"]) == ["greedy", "reference"]
    loaded = decbench.load(str(tmp_path / "runs"))
    assert loaded.records.equals(records)


def test_all_reports_skipped_decoders(tmp_path: Path, prompts_file: Path, stories260k: str) -> None:
    board = decbench.run(models=[stories260k], suites=[str(prompts_file)], out=str(tmp_path / "runs"),
                         max_new_tokens=4, decoders="all", num_prompts=1)
    skipped = dict(board.attrs["skipped"])
    assert "greedy-hyperfit" in skipped and "--hyperfit" in skipped["greedy-hyperfit"]
    assert "contrastive" in set(board["decoder"])


@pytest.mark.parametrize("kwargs, message", [
    ({"decoders": "gredy"}, "unknown decoder 'gredy'"),
    ({"max_new_tokns": 5}, "unknown option 'max_new_tokns'; did you mean 'max_new_tokens'?"),
    ({"dtype": "int3"}, "'dtype': .int3. is not one of"),
    ({"decoders": "top-p:p=2"}, "decoder 'top-p': p must be in"),
    ({"max_new_tokens": "x"}, "'max_new_tokens': 'x' is not a valid integer"),
])
def test_bad_input_raises_bench_error_and_writes_nothing(tmp_path: Path, prompts_file: Path, stories260k: str,
                                                         kwargs: dict, message: str) -> None:
    args = dict(models=stories260k, suites=str(prompts_file), out=str(tmp_path / "runs"), decoders="greedy")
    with pytest.raises(decbench.BenchError, match=message.replace("?", r"\?").replace("(", r"\(")):
        decbench.run(**{**args, **kwargs})
    assert not (tmp_path / "runs").exists()


def test_no_model_uses_bench_model_or_fails_like_the_cli(tmp_path: Path, prompts_file: Path, stories260k: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BENCH_MODEL", raising=False)
    with pytest.raises(decbench.BenchError, match="no model given"):
        decbench.run(decoders="greedy", suites=str(prompts_file), out=str(tmp_path / "runs"))
    monkeypatch.setenv("BENCH_MODEL", stories260k)
    board = decbench.run(decoders="greedy", suites=str(prompts_file), out=str(tmp_path / "runs"), max_new_tokens=3)
    assert list(board["model"]) == ["stories260K", "human"]


def test_load_of_a_folder_without_runs_raises(tmp_path: Path) -> None:
    with pytest.raises(decbench.BenchError, match="holds no runs"):
        decbench.load(tmp_path)
