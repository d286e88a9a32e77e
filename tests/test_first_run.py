"""The first run as the README tells it (issue 17 part 4): defaults that find the shared assets,
fast failure for an unreachable Hub, progress a log can show, help that documents every option."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import click
import pytest
from click.testing import CliRunner

from bench.cli import main
from bench.errors import BenchError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def prompts_file(tmp_path: Path) -> Path:
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"id": i, "prompt": p, "reference": "and then they went home."}) + "\n"
                            for i, p in (("a", "Once upon a time"), ("b", "The dog ran"), ("c", "Tom was sad"))))
    return path


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the Hub ---------------------------------------------------------------------------------------------


def test_hub_id_with_hub_offline_fails_at_once_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    result = CliRunner().invoke(main, ["run", "--model", "gpt2", "--suite", "x.jsonl", "--out", str(tmp_path / "o")])
    assert time.monotonic() - start < 10
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: cannot load model 'gpt2': it is not a local folder, not in the Hugging Face cache, "
        "and HF_HUB_OFFLINE is set; pass a local directory"]
    assert not (tmp_path / "o").exists()


def test_unreachable_hub_is_probed_once_and_briefly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.hub

    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setattr(bench.hub, "_probed", {})
    start = time.monotonic()
    result = CliRunner().invoke(main, ["run", "--model", "openai-community/gpt2-nope", "--suite", "x.jsonl",
                                       "--out", str(tmp_path / "o")])
    assert time.monotonic() - start < 10
    assert result.exit_code == 2
    assert result.output.startswith(f"error: cannot load model 'openai-community/gpt2-nope': it is not a local folder, "
                                    f"not in the Hugging Face cache, and {endpoint} is unreachable (")
    assert len(result.output.strip().splitlines()) == 1
    assert list(bench.hub._probed) == [endpoint]


def test_a_cached_model_is_read_offline_when_the_hub_is_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.hub

    monkeypatch.setattr(bench.hub, "offline_reason", lambda: "the Hub is unreachable")
    monkeypatch.setattr(bench.hub, "is_cached", lambda name: name == "gpt2")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    bench.hub.check_models(["gpt2", "/a/local/path", "./rel"])  # paths are the loader's business
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    with pytest.raises(BenchError, match="'gpt3'"):
        bench.hub.check_models(["gpt3"])


# --- defaults that find ../shared ------------------------------------------------------------------------


def test_data_dir_and_model_hint_come_from_the_shared_folder(tmp_path: Path, shared: Path, stories260k: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BENCH_DATA_DIR", raising=False)
    monkeypatch.delenv("BENCH_CD_BENCHMARK", raising=False)
    monkeypatch.delenv("BENCH_MODEL", raising=False)
    monkeypatch.setenv("BENCH_SHARED", str(shared))
    result = CliRunner().invoke(main, ["run", "--suite", "cd-wikitext", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert result.output.strip() == ("error: no model given: pass --model (a Hugging Face id or a local directory) or "
                                     f"set BENCH_MODEL; e.g. export BENCH_MODEL={shared / 'models' / 'stories260K'}")
    monkeypatch.setenv("BENCH_MODEL", stories260k)
    result = CliRunner().invoke(main, ["run", "--suite", "cd-wikitext", "--decoder", "greedy", "--num-prompts", "2",
                                       "--max-new-tokens", "4", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert "cd-wikitext" in (tmp_path / "o" / "leaderboard.csv").read_text()
    # no shared folder: the old message, naming every way to give the data
    monkeypatch.setenv("BENCH_SHARED", str(tmp_path / "no-such-folder"))
    result = CliRunner().invoke(main, ["run", "--suite", "cd-wikitext", "--out", str(tmp_path / "p")])
    assert result.exit_code == 2 and "looked at nowhere" in result.output


def test_hyperfit_takes_bench_model_and_cuda_n(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from bench.hyperfit.cli import hyperfit

    monkeypatch.setenv("BENCH_MODEL", str(tmp_path / "no-model"))
    result = CliRunner().invoke(hyperfit, ["--data", str(tmp_path / "no-data.txt"), "--out", str(tmp_path / "o")])
    assert result.exit_code != 0 and "Missing option '--model'" not in result.output
    if not torch.cuda.is_available():
        from bench.hyperfit.train import Recipe, resolve_device

        with pytest.raises(BenchError, match="--device cuda:1 was asked for"):
            resolve_device("cuda:1", Recipe())
        with pytest.raises(BenchError, match="unknown device 'gpu'"):
            resolve_device("gpu", Recipe())


def test_analyze_says_how_many_calibration_prompts_it_used() -> None:
    from bench.analysis.report import calibration_prompts

    assert calibration_prompts(SimpleNamespace(calib_prompts=32), 16) == (
        "16 prompts: --calib-prompts 32 capped at the 16 prompts analysed")
    assert calibration_prompts(SimpleNamespace(calib_prompts=8), 16) == "8 prompts"


# --- progress --------------------------------------------------------------------------------------------


def test_progress_in_a_log_is_plain_lines(tmp_path: Path, prompts_file: Path, stories260k: str) -> None:
    result = CliRunner().invoke(main, [
        "run", "--model", stories260k, "--suite", str(prompts_file), "--decoder", "greedy", "--decoder", "top-k",
        "--max-new-tokens", "4", "--batch-size", "1", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if "records" in line]
    assert lines[0].startswith("stories260K greedy: 0/6 records (0%), ")
    assert any(line.startswith("stories260K top-k:k=50,t=1.0: 3/6 records (50%)") for line in lines)
    assert lines[-1].startswith("stories260K top-k:k=50,t=1.0: 6/6 records (100%)")
    assert "\r" not in result.stderr and "\x1b[" not in result.stderr


def test_progress_lines_are_rate_limited_and_warnings_are_single_lines() -> None:
    from bench.progress import Progress, progress_mode

    now = [0.0]
    stream = io.StringIO()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        with Progress(100, mode="lines", stream=stream, interval=10, clock=lambda: now[0]) as progress:
            progress.describe("m greedy")
            for _ in range(5):
                now[0] += 3
                progress.advance(10)
                warnings.warn("`past_key_values` is deprecated\nsecond line", FutureWarning)
    assert stream.getvalue().splitlines() == [
        "m greedy: 0/100 records (0%), 0 s elapsed",
        "warning: FutureWarning: `past_key_values` is deprecated",
        "m greedy: 40/100 records (40%), 12 s elapsed",
        "m greedy: 50/100 records (50%), 15 s elapsed",
    ]
    assert progress_mode(True) == "quiet"

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert progress_mode(False, Terminal()) == "bar" and progress_mode(False, io.StringIO()) == "lines"


def test_terminal_bar_moves_between_batches() -> None:
    """On a terminal the bar redraws itself (spinner, elapsed time) while a batch is still running."""
    from bench.progress import Progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    with Progress(10, mode="bar", stream=stream) as progress:
        progress.describe("m greedy")
        stream.seek(0)
        stream.truncate()
        time.sleep(1.5)  # no record finishes meanwhile
        redraws = stream.getvalue()
    assert redraws.count("m greedy") >= 2 and "0:00:01" in redraws


# --- help, the demo ---------------------------------------------------------------------------------------


def test_run_help_is_grouped_and_every_option_of_every_command_is_documented() -> None:
    result = CliRunner().invoke(main, ["run", "--help"])
    assert result.exit_code == 0
    headings = [line[:-1] for line in result.output.splitlines() if line and not line[0].isspace() and line.endswith(":")]
    assert headings == ["What to run", "Generation", "Where results go", "Model-based scores", "LLM judge",
                        "Backends and executors", "Other options"]
    left_over = [line.split()[0] for line in result.output.split("Other options:")[1].splitlines()
                 if line.strip().startswith("-")]
    assert left_over in (["--help"], ["-h,"])  # only the help option is outside the sections
    undocumented = [(name, p.opts[0]) for name, cmd in main.commands.items() for p in cmd.params
                    if isinstance(p, click.Option) and not p.help]
    assert undocumented == []


def test_make_demo_is_a_small_wikitext_run_of_every_decoder() -> None:
    out = subprocess.run(["make", "-n", "-W", "pyproject.toml", "demo", "VENV=/nonexistent"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    demo = [line for line in out.splitlines() if "bench run" in line]
    assert demo == ["/nonexistent/bin/bench run --suite wikitext --decoder all --num-prompts 1000 "
                    "--max-new-tokens 128 --batch-size 64"]
