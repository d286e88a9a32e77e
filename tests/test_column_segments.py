"""The columnar segments beside generations.jsonl (issue 23): a cache that must never change a score.

Segments are made 16 records at a time here (4096 times fewer than in use), by the writer and by a
reader; the columns read through them must equal those parsed from the JSONL alone, and a segment
whose bytes no longer begin the file (an edit, a cut and a resume, garbage) must not be used."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import bench.column_segments as cs
import bench.record_columns as rc
from bench.cli import main
from bench.store import RunDir


@pytest.fixture(autouse=True)
def small_segments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cs, "SEGMENT_RECORDS", 16)


def _prompts(tmp_path: Path) -> Path:
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"ba{i} kot", "reference": f"ref {i} w\u00e9rds"})
                               + "\n" for i in range(60)))
    return prompts


def _run(tmp_path: Path, out: str = "r", extra: tuple[str, ...] = ()) -> RunDir:
    result = CliRunner().invoke(main, ["run", "--backend", "fake", "--suite", str(_prompts(tmp_path)),
                                       "--decoder", "top-k:k=3", "--samples-per-prompt", "2", "--max-new-tokens", "20",
                                       "--batch-size", "7", "--out", str(tmp_path / out), *extra])
    assert result.exit_code == 0, result.output
    return RunDir(next((tmp_path / out).glob("*/header.json")).parent)


def _parsed(run: RunDir, monkeypatch: pytest.MonkeyPatch) -> rc.RecordColumns:
    """The columns from the JSONL alone (no segment read or written)."""
    with monkeypatch.context() as m:
        m.setattr(cs, "valid_chain", lambda gens: cs.Chain([], 0, 0, __import__("hashlib").sha256()))
        m.setattr(cs, "write_segment", lambda *a, **k: None)
        return rc.read_columns(run.path / "generations.jsonl", run.run_id, 20)


def _same(a: rc.RecordColumns, b: rc.RecordColumns) -> None:
    assert a.prompt_ids == b.prompt_ids and a.references == b.references
    assert a.summary == b.summary and a.digest == b.digest
    assert np.array_equal(a.words.ids, b.words.ids) and np.array_equal(a.words.lengths, b.words.lengths)
    assert a.words.vocab_size == b.words.vocab_size
    assert np.array_equal(a.tokens.ids, b.tokens.ids) and np.array_equal(a.tokens.lengths, b.tokens.lengths)


def test_the_writer_segments_read_like_the_jsonl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = _run(tmp_path)
    segments = sorted((run.path / "columns").glob("*.npz"))
    assert len(segments) == 5  # 120 records in batches of 7: a segment of 21 once 16 or more are buffered
    calls = []
    real = rc._record
    monkeypatch.setattr(rc, "_record", lambda *a: calls.append(1) or real(*a))
    cols = rc.read_columns(run.path / "generations.jsonl", run.run_id, 20)
    assert len(calls) == 120 - int(sum(np.load(p)["meta"][3] for p in segments))  # only the tail is parsed
    _same(cols, _parsed(run, monkeypatch))
    assert rc.read_keys(run.path / "generations.jsonl", run.run_id) == set(zip(cols.prompt_ids, [
        i for pid in dict.fromkeys(cols.prompt_ids) for i in (0, 1)]))


def test_a_reader_writes_the_segments_it_parsed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = _run(tmp_path)
    for p in (run.path / "columns").glob("*.npz"):
        p.unlink()
    first = rc.read_columns(run.path / "generations.jsonl", run.run_id, 20)
    assert len(list((run.path / "columns").glob("*.npz"))) == 7  # 120 // 16 full segments, the rest parsed
    _same(first, _parsed(run, monkeypatch))
    _same(rc.read_columns(run.path / "generations.jsonl", run.run_id, 20), first)


def test_stale_or_broken_segments_are_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = _run(tmp_path)
    gens = run.path / "generations.jsonl"
    gens.write_text(gens.read_text().replace('"continuation": "', '"continuation": "edited ', 1))
    first_segment = sorted((run.path / "columns").glob("*.npz"))[0]
    first_segment.write_bytes(b"not a zip file")
    cols = rc.read_columns(gens, run.run_id, 20)
    _same(cols, _parsed(run, monkeypatch))
    assert cols.words.vocab_size == _parsed(run, monkeypatch).words.vocab_size  # "edited" is counted


def test_a_resumed_run_scores_like_an_uninterrupted_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = _run(tmp_path, "whole")
    cut = _run(tmp_path, "cut")
    gens = cut.path / "generations.jsonl"
    with open(gens, "r+b") as f:  # kill -9 mid-line: some segments now reach past the file's end
        f.truncate(gens.stat().st_size // 2 + 5)
    (cut.path / "scores.json").unlink()
    cut = _run(tmp_path, "cut")
    _same(rc.read_columns(gens, cut.run_id, 20), _parsed(cut, monkeypatch))
    a, b = (json.loads((r.path / "scores.json").read_text()) for r in (whole, cut))
    assert a["generations"] == b["generations"] and a["summary"] == b["summary"]


def test_small_runs_get_no_segments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cs, "SEGMENT_RECORDS", 16_384)
    assert not (_run(tmp_path).path / "columns").exists()


def test_a_segment_removed_while_read_is_one_line(tmp_path: Path) -> None:
    from bench.errors import BenchError

    run = _run(tmp_path)
    chain = cs.valid_chain(run.path / "generations.jsonl")
    assert len(chain.segments) == 5 and chain.end < (run.path / "generations.jsonl").stat().st_size
    chain.segments[2].unlink()
    with pytest.raises(BenchError, match="removed or changed while it was read"):
        list(cs.load_chain(chain))


def test_a_new_run_is_not_parsed_by_its_writer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer of a new file segments what it appends; only a resumed one parses the stored tail."""
    parsed: list[int] = []
    monkeypatch.setattr(rc, "buffered_lines", lambda *a: parsed.append(1) or iter(()))
    monkeypatch.setattr(cs, "valid_chain", lambda gens: (_ for _ in ()).throw(AssertionError("chain read")))
    writer = rc.SegmentWriter(tmp_path / "generations.jsonl", "x")
    records = [{"prompt_id": f"p{i}", "sample_index": 0, "continuation": "a b", "token_ids": [1, 2]} for i in range(20)]
    data = "".join(json.dumps(r) + "\n" for r in records).encode()
    (tmp_path / "generations.jsonl").write_bytes(data)
    writer.appended(0, data, records)
    assert not parsed and len(list((tmp_path / "columns").glob("*.npz"))) == 1
