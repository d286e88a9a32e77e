"""No output option can overwrite a run's files, a store's leaderboard or an input (issue 24, part 1).

Each case: exit 2, one ``error:`` line, and the workspace byte-identical afterwards.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.cli import main


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".lock"}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ws")
    prompts = root / "p.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"ba{i} kot", "reference": "mit lon re"}) + "\n"
                               for i in range(3)))
    result = CliRunner().invoke(main, ["run", "--backend", "fake", "--model", "m", "--suite", str(prompts),
                                       "--decoder", "greedy", "--decoder", "top-k:k=5", "--max-new-tokens", "4",
                                       "--out", str(root / "runs")])
    assert result.exit_code == 0, result.output
    return root


def runs_of(store: Path) -> list[Path]:
    return sorted(p.parent for p in (store / "runs").glob("*/header.json"))


CASES = [
    ("compare --csv records", lambda a, b, s: ["compare", str(a), str(b), "--csv", str(a / "generations.jsonl")]),
    ("compare --markdown header", lambda a, b, s: ["compare", str(a), str(b), "--markdown", str(b / "header.json")]),
    ("compare --csv new file in a run", lambda a, b, s: ["compare", str(a), str(b), "--csv", str(a / "diff.csv")]),
    ("judge --out records", lambda a, b, s: ["judge", str(a), str(b), "--judge-url", "http://127.0.0.1:9/v1",
                                             "--judge-model", "x", "--out", str(a / "generations.jsonl")]),
    ("judge --cache records", lambda a, b, s: ["judge", str(a), str(b), "--judge-url", "http://127.0.0.1:9/v1",
                                               "--judge-model", "x", "--cache", str(b / "generations.jsonl")]),
    ("leaderboard --out into a run", lambda a, b, s: ["leaderboard", str(s), "--out", str(a / "board")]),
    ("leaderboard --out the store's csv", lambda a, b, s: ["leaderboard", str(s), "--out", str(s / "leaderboard")]),
    ("view --out a run", lambda a, b, s: ["view", str(s), "--out", str(a)]),
    ("run --out nested in a run", lambda a, b, s: ["run", "--backend", "fake", "--suite", str(s.parent / "p.jsonl"),
                                                   "--decoder", "greedy", "--out", str(a / "inner")]),
    ("compare --csv its input CSV", lambda a, b, s: ["compare", f"{s / 'leaderboard.csv'}#{a.name}",
                                                                      f"{s / 'leaderboard.csv'}#{b.name}",
                                                                      "--csv", str(s / "leaderboard.csv")]),
]


@pytest.mark.parametrize("name,args", CASES, ids=[c[0] for c in CASES])
def test_output_cannot_overwrite_what_the_command_reads(store: Path, name, args) -> None:
    a, b = runs_of(store)
    before = snapshot(store)
    result = CliRunner().invoke(main, args(a, b, store / "runs"))
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "run folder" in lines[0] or "run store's own" in lines[0] or "input of this command" in lines[0], lines[0]
    assert snapshot(store) == before


def test_outputs_beside_the_runs_are_fine(store: Path, tmp_path: Path) -> None:
    a, b = runs_of(store)
    result = CliRunner().invoke(main, ["compare", str(a), str(b), "--csv", str(store / "runs" / "diff.csv")])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["leaderboard", str(store / "runs"), "--out", str(store / "runs" / "board")])
    assert result.exit_code == 0, result.output


def test_pareto_list_escapes_model_names(tmp_path) -> None:
    from bench.publish.front import front_markdown

    rows = [dict(model="m|<svg onload=alert(1)>", decoder="greedy", decoder_args="", diversity=0.5, mauve=0.5, flags="")]
    text = front_markdown({"s": rows}, {"s": tmp_path / "s.png"})
    assert "<svg" not in text and "m\\|" in text
