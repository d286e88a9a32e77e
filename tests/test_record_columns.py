"""The one-pass columnar reader of a run's records (issue 23) against the dict records it replaces:
the same scores, intervals, token digest and degenerate shares, whatever order the records were
written in, with duplicates and a torn last line."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.cli import main


def _store(tmp_path: Path, samples: int = 2) -> Path:
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"ba{i} kot", "reference": f"ref {i} words here"})
                               + "\n" for i in range(60)))
    result = CliRunner().invoke(main, ["run", "--backend", "fake", "--suite", str(prompts), "--decoder", "top-k:k=3",
                                       "--samples-per-prompt", str(samples), "--max-new-tokens", "20",
                                       "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    return next((tmp_path / "r").glob("*/header.json")).parent


def test_columns_score_like_the_records(tmp_path: Path) -> None:
    from bench.leaderboard import degeneracy, tokens_sha
    from bench.run_scores import ordered_records, score_columns, score_human, score_records
    from bench.store import RunDir

    run = RunDir(_store(tmp_path))
    gens = run.path / "generations.jsonl"
    lines = gens.read_text().splitlines(keepends=True)
    random.Random(0).shuffle(lines)  # any write order
    # a few records blanked or whitespace-only, a duplicate of a key (kept: the first), a torn tail
    first = json.loads(lines[0])
    first["continuation"] = "   \n\n  "
    lines[0] = json.dumps(first) + "\n"
    dup = dict(json.loads(lines[1]), continuation="another text of the same key")
    gens.write_text("".join(lines) + json.dumps(dup) + "\n" + '{"run_id": "torn')
    records = ordered_records(run.records())
    cols = run.columns()
    assert cols.prompt_ids == [r["prompt_id"] for r in records]
    assert json.dumps(score_columns(cols.words, cols.tokens, cols.prompt_ids)) == json.dumps(score_records(records))
    from bench.run_scores import score_references

    assert json.dumps(score_references(cols.references)) == json.dumps(score_human(records))  # NaN too
    s = cols.summary
    assert s["tokens_sha"] == tokens_sha(records) and s["n"] == len(records) == 120 and s["n_prompts"] == 60
    want = degeneracy(records, 20)
    from bench.leaderboard import degeneracy_of_counts

    assert degeneracy_of_counts(s, 20) == want and want["empty_share"] > 0


def test_a_finished_run_is_not_parsed_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Re-running a finished store reads no record: the digest of the file's bytes matches its scores."""
    import bench.record_columns as rc
    import bench.store as store

    folder = _store(tmp_path, samples=1)
    before = (folder / "scores.json").read_text()

    def refuse(*args, **kwargs):
        raise AssertionError("the records were parsed")

    monkeypatch.setattr(rc, "read_columns", refuse)
    monkeypatch.setattr(store, "_read_numbered", refuse)
    prompts = tmp_path / "p.jsonl"
    result = CliRunner().invoke(main, ["run", "--backend", "fake", "--suite", str(prompts), "--decoder", "top-k:k=3",
                                       "--max-new-tokens", "20", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert "60 already stored" in result.output
    assert (folder / "scores.json").read_text() == before
    # one changed byte in a record: the digest no longer matches, so the records are read again
    gens = folder / "generations.jsonl"
    gens.write_text(gens.read_text().replace("kot", "kit", 1))
    result = CliRunner().invoke(main, ["leaderboard", str(tmp_path / "r"), "--out", str(tmp_path / "lb")])
    assert isinstance(result.exception, AssertionError), result.output
