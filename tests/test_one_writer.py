"""One writer per run: concurrent identical commands, and scores that follow the records."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from bench.cli import main
from bench.run_scores import run_scores
from bench.store import GENERATIONS, SCORES, RunStore

REPO = Path(__file__).resolve().parents[1]


def test_two_identical_runs_started_together_write_each_record_once(tmp_path: Path, stories260k: str,
                                                                    data_dir: str) -> None:
    out = tmp_path / "runs"
    argv = [sys.executable, "-m", "bench.cli", "run", "--model", stories260k, "--suite", "wikitext",
            "--data-dir", data_dir, "--decoder", "top-p", "--samples-per-prompt", "2", "--num-prompts", "8",
            "--max-new-tokens", "48", "--batch-size", "2", "--out", str(out)]
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    procs = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in results]
    generated = [int(re.search(r"(\d+) records generated", stdout).group(1)) for stdout, _ in results]
    assert sum(generated) == 16, generated
    (run,) = RunStore(out).runs()
    lines = (run.path / GENERATIONS).read_text().splitlines()
    keys = {(json.loads(line)["prompt_id"], json.loads(line)["sample_index"]) for line in lines}
    assert len(lines) == 16 and len(keys) == 16
    scores = json.loads((run.path / SCORES).read_text())
    assert scores["generations"]["n"] == 16


def test_scores_are_recomputed_when_the_records_change(tmp_path: Path, stories260k: str) -> None:
    suite = tmp_path / "p.jsonl"
    suite.write_text("".join(json.dumps({"id": str(i), "prompt": p}) + "\n" for i, p in
                             enumerate(["Once upon a time", "The dog ran", "Tom was sad", "A little bird"])))
    out = tmp_path / "runs"
    result = CliRunner().invoke(main, ["run", "--model", stories260k, "--suite", str(suite), "--decoder", "top-k",
                                       "--samples-per-prompt", "2", "--max-new-tokens", "16", "--out", str(out)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (run,) = RunStore(out).runs()
    clean = run_scores(run)["generations"]
    generations = run.path / GENERATIONS
    lines = generations.read_text().splitlines(keepends=True)
    # What two writers without a lock left behind: some records twice, scored while they were there.
    generations.write_text("".join(lines + lines[:6]))
    (run.path / SCORES).unlink()
    assert run_scores(run)["generations"] == clean
    # Another writer's records replace these ones: the cached scores no longer describe the file.
    first = json.loads(lines[0])
    first["continuation"] = "the the the the the the the the"
    generations.write_text(json.dumps(first) + "\n" + "".join(lines[1:]))
    changed = run_scores(run)["generations"]
    assert changed["n"] == 8 and changed["metrics"]["distinct-2"] != clean["metrics"]["distinct-2"]
    assert json.loads((run.path / SCORES).read_text())["generations"]["metrics"] == changed["metrics"]
