"""A newcomer's first hour (issue 26): the fake backend needs no model and says it is fake, `bench run` shows only
the runs it ran, decoder labels hide unset arguments, and progress leaves "calibrating" when calibration ends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.cli import main


@pytest.fixture()
def prompts(tmp_path: Path) -> Path:
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"ba{i} kot", "reference": "mit lon re"}) + "\n"
                            for i in range(3)))
    return path


def run(*args: str, env: dict | None = None):
    return CliRunner(env=env).invoke(main, ["run", *args])


def test_fake_backend_needs_no_model(tmp_path, prompts, monkeypatch) -> None:
    from bench import runtime

    monkeypatch.delenv("BENCH_MODEL", raising=False)
    connections: list = []  # the tests run with HF_HUB_OFFLINE: record what would have asked the Hub
    for name in ("check_weights", "model_identity"):
        monkeypatch.setattr(runtime, name, lambda *a, _name=name, **k: connections.append((_name, a)) or ("", None))
    out = tmp_path / "runs"
    result = run("--backend", "fake", "--suite", str(prompts), "--decoder", "greedy", "--max-new-tokens", "3",
                 "--out", str(out))
    assert result.exit_code == 0, result.output
    assert connections == []  # the name 'fake' is never looked up on the Hub (it retried for 25 s)
    rows = (out / "leaderboard.csv").read_text().splitlines()
    assert any(",fake," in row for row in rows[1:]), rows


def test_fake_rows_of_a_real_model_say_fake(tmp_path, prompts) -> None:
    model = tmp_path / "stories260K"
    model.mkdir()
    out = tmp_path / "runs"
    result = run("--backend", "fake", "--model", str(model), "--suite", str(prompts), "--decoder", "greedy",
                 "--max-new-tokens", "3", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "stories260K (fake)" in (out / "leaderboard.csv").read_text()


def test_run_table_shows_only_its_runs(tmp_path, prompts, monkeypatch) -> None:
    monkeypatch.delenv("BENCH_MODEL", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    out = tmp_path / "runs"
    common = ["--backend", "fake", "--suite", str(prompts), "--max-new-tokens", "3", "--out", str(out)]
    assert run(*common, "--decoder", "greedy", "--decoder", "top-k:k=7").exit_code == 0
    result = run(*common, "--decoder", "top-p:p=0.9")
    assert result.exit_code == 0, result.output
    assert "top-p:p=0.9" in result.output and "top-k:k=7" not in result.output
    assert f"2 other leaderboard rows in {out} not shown" in result.output
    assert "human" in result.output  # the JSONL suite's reference row stays beside the runs shown


def test_decoder_label_hides_unset_arguments() -> None:
    from bench.specs import build_decoder, parse_decoder  # noqa: F401

    spec = parse_decoder("entropy-matched")
    assert "None" not in spec.label and spec.label.startswith("entropy-matched:")
    assert parse_decoder("entropy-matched:target=1.5").label.startswith("entropy-matched:target=1.5")


def test_progress_leaves_calibrating_when_calibration_ends(tmp_path, prompts, stories260k, monkeypatch) -> None:
    from bench import progress

    seen: list[str] = []
    original = progress.Progress.describe
    monkeypatch.setattr(progress.Progress, "describe", lambda self, text: (seen.append(text), original(self, text)))
    result = run("--model", stories260k, "--suite", str(prompts), "--max-new-tokens", "3", "--out", str(tmp_path / "r"),
                 "--decoder", "entropy-matched:target=1.0,calib_prompts=2,calib_tokens=3")
    assert result.exit_code == 0, result.output
    calibrating = [i for i, text in enumerate(seen) if text.endswith(": calibrating")]
    assert calibrating and seen[calibrating[-1] + 1:] and not seen[-1].endswith("calibrating"), seen
    assert not any("None" in text for text in seen), seen


def test_view_marks_incomplete_runs(tmp_path, prompts, monkeypatch) -> None:
    monkeypatch.delenv("BENCH_MODEL", raising=False)
    out = tmp_path / "runs"
    assert run("--backend", "fake", "--suite", str(prompts), "--decoder", "greedy", "--max-new-tokens", "3",
               "--out", str(out)).exit_code == 0
    (gen,) = out.glob("*/generations.jsonl")
    gen.write_text(gen.read_text().splitlines(keepends=True)[0])  # as if killed after one record
    result = CliRunner().invoke(main, ["view", str(out), "--out", str(tmp_path / "page")])
    assert result.exit_code == 0, result.output
    assert "is incomplete (1/3 records)" in result.output
    page = (tmp_path / "page" / "index.html").read_text()
    assert "[incomplete: 1/3 records]" in page and "1 of the runs are incomplete" in page


def test_blank_and_wordless_text_is_flagged_not_rewarded(tmp_path) -> None:
    """128 spaces and '....' have no words: flagged degenerate, never the bold best, marked beside every metric."""
    from bench.leaderboard import degeneracy
    from bench.publish.markdown import best_values, suite_table

    blank = [{"continuation": " " * 128, "token_ids": list(range(64))} for _ in range(4)]
    dots = [{"continuation": "." * 40, "token_ids": list(range(64))} for _ in range(4)]
    assert degeneracy(blank, 64)["flags"] == "degenerate: 100% empty"
    assert degeneracy(dots, 64)["flags"] == "degenerate: 100% under 3 words"
    prose = [{"continuation": "the cat sat on the mat and then it slept", "token_ids": list(range(64))}]
    assert degeneracy(prose, 64)["flags"] == ""
    rows = [dict(model="m", decoder="hyperfit", decoder_args="", n=4, flags="degenerate: 100% empty", **{"rep-2": 0.0}),
            dict(model="m", decoder="greedy", decoder_args="", n=4, flags="", **{"rep-2": 0.13})]
    assert best_values(rows, ["rep-2"]) == {"rep-2": 0.13}
    table = "\n".join(suite_table(rows, ["rep-2"]))
    assert "0.0000 †" in table and "**0.1300**" in table


def test_bench_score_flags_blank_text(tmp_path) -> None:
    gens = tmp_path / "g.jsonl"
    gens.write_text("".join(json.dumps({"continuation": " " * 50}) + "\n" for _ in range(3))
                    + json.dumps({"continuation": "a real sentence with several words in it"}) + "\n")
    result = CliRunner().invoke(main, ["score", str(gens)])
    assert result.exit_code == 0, result.output
    assert "degenerate: 75% empty" in result.output


def test_front_leaves_degenerate_points_off_the_front() -> None:
    from bench.publish.front import COLOURS, family_colour, front_points

    rows = [dict(model="m", decoder="a", decoder_args="", diversity=0.99, mauve=0.99, flags="degenerate: 100% empty"),
            dict(model="m", decoder="b", decoder_args="", diversity=0.5, mauve=0.5, flags="")]
    points, _ = front_points(rows, "mauve")
    assert [(p.label, p.pareto, p.flagged) for p in points] == [("a", False, True), ("b", True, False)]
    assert len({family_colour(i) for i in range(len(COLOURS))}) == len(COLOURS) == 20


def test_bench_score_refuses_an_unreachable_featurizer_at_once(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-cache"))
    gens = tmp_path / "g.jsonl"
    gens.write_text(json.dumps({"continuation": "a b c d", "reference": "e f g h", "prompt": "x"}) + "\n")
    result = CliRunner().invoke(main, ["score", str(gens), "--score", "mauve", "--featurizer", "gpt2-large"])
    assert result.exit_code == 2, result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith("error: featurizer model (--featurizer): cannot load model 'gpt2-large'")


@pytest.mark.parametrize("command", [["--help"], ["decoders"], ["suites"], ["run", "--backend", "fake"], ["score"]])
def test_light_commands_do_not_import_torch(tmp_path, prompts, command) -> None:
    """Commands that need no model start in well under a second: torch and transformers stay unimported."""
    import subprocess
    import sys

    if command[0] == "run":
        command = [*command, "--suite", str(prompts), "--decoder", "greedy", "--max-new-tokens", "3",
                   "--out", str(tmp_path / "runs")]
    if command[0] == "score":
        gens = tmp_path / "g.jsonl"
        gens.write_text(json.dumps({"continuation": "a b c d e", "reference": "f g h"}) + "\n")
        command = [*command, str(gens)]
    code = ("import sys; from bench.cli import main\n"
            f"sys.argv = ['bench', *{command!r}]\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "heavy = [m for m in ('torch', 'transformers', 'matplotlib') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    env = {k: v for k, v in __import__("os").environ.items() if k != "BENCH_MODEL"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-2000:]


def test_bench_model_with_spaces_is_one_model(tmp_path, prompts, monkeypatch) -> None:
    folder = tmp_path / "my models" / "stories 260K"
    folder.mkdir(parents=True)
    monkeypatch.setenv("BENCH_MODEL", str(folder))
    out = tmp_path / "runs"
    result = run("--backend", "fake", "--suite", str(prompts), "--decoder", "greedy", "--max-new-tokens", "3",
                 "--out", str(out))
    assert result.exit_code == 0, result.output
    assert len(list(out.glob("*/header.json"))) == 1
    assert "stories 260K (fake)" in (out / "leaderboard.csv").read_text()
