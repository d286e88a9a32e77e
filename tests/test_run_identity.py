"""The run identity sees every change to the model: weight content, Hub commit, hyperfit checkpoint."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.cli import main
from bench.specs import DecoderSpec, GenerationSpec, ModelSpec, RunSpec, SuiteSpec
from bench.store import RunStore

PROMPTS = [{"id": str(i), "prompt": p} for i, p in enumerate(
    ["Once upon a time", "The dog ran to the park", "Tom was sad because", "One day, a little bird"])]


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fingerprint cache of this test's own."""
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture()
def suite(tmp_path: Path) -> Path:
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PROMPTS))
    return path


@pytest.fixture()
def model_copy(tmp_path: Path, stories260k: str) -> Path:
    folder = tmp_path / "stories260K"
    shutil.copytree(stories260k, folder, ignore=shutil.ignore_patterns("original"))
    for f in folder.iterdir():
        f.chmod(0o644)
    return folder


def scale_first_tensor(weights: Path, factor: float = 1.5) -> None:
    """Change one float32 tensor of a safetensors file in place: same size, same header, new values."""
    import array

    with open(weights, "r+b") as f:
        header_len = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(header_len))
        name = sorted(k for k in header if k != "__metadata__" and header[k]["dtype"] == "F32")[0]
        start, end = header[name]["data_offsets"]
        f.seek(8 + header_len + start)
        values = array.array("f", f.read(end - start))
        f.seek(8 + header_len + start)
        f.write(array.array("f", [v * factor for v in values]).tobytes())


def greedy(model: str, suite: Path, out: Path):
    return CliRunner().invoke(main, ["run", "--model", model, "--suite", str(suite), "--decoder", "greedy",
                                     "--max-new-tokens", "8", "--out", str(out)], catch_exceptions=False)


def test_weights_changed_in_place_give_a_new_run(tmp_path: Path, suite: Path, model_copy: Path) -> None:
    out = tmp_path / "runs"
    first = greedy(str(model_copy), suite, out)
    assert first.exit_code == 0 and "4 records generated" in first.output, first.output
    weights = model_copy / "model.safetensors"
    size = weights.stat().st_size
    scale_first_tensor(weights)
    assert weights.stat().st_size == size
    second = greedy(str(model_copy), suite, out)
    assert second.exit_code == 0, second.output
    assert "4 records generated" in second.output and "0 already stored" in second.output, second.output
    runs = RunStore(out).runs()
    assert len(runs) == 2
    assert len({r.spec().model.fingerprint for r in runs}) == 2
    assert all(r.header()["format"] == 2 for r in runs)


def test_file_hashes_are_cached_by_path_size_mtime_and_inode(tmp_path: Path, model_copy: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.runtime import content_fingerprint, fingerprint

    reads: list[str] = []
    real = fingerprint._sha256
    monkeypatch.setattr(fingerprint, "_sha256", lambda p: reads.append(p.name) or real(p))
    first = content_fingerprint(model_copy)
    assert "model.safetensors" in reads and len(first) == 16
    reads.clear()
    assert content_fingerprint(model_copy) == first and reads == []  # every hash from the cache
    scale_first_tensor(model_copy / "model.safetensors")
    assert content_fingerprint(model_copy) != first and reads == ["model.safetensors"]


def test_hyperfit_checkpoint_fingerprint_sees_its_content(tmp_path: Path, model_copy: Path) -> None:
    from bench.hyperfit import checkpoint_fingerprint

    before = checkpoint_fingerprint(model_copy)
    scale_first_tensor(model_copy / "model.safetensors", 1.01)
    assert checkpoint_fingerprint(model_copy) != before


def _hub_cache(root: Path, stories260k: str, commit: str) -> None:
    """Lay stories260K out in a Hugging Face cache as the Hub id acme/tiny at ``commit`` (refs/main)."""
    repo = root / "models--acme--tiny"
    shutil.copytree(stories260k, repo / "snapshots" / commit, ignore=shutil.ignore_patterns("original"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)


def test_a_hub_id_is_identified_by_its_commit(tmp_path: Path, suite: Path, stories260k: str) -> None:
    hub, out = tmp_path / "hub", tmp_path / "runs"
    env = dict(os.environ, HF_HUB_CACHE=str(hub), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    argv = [sys.executable, "-m", "bench.cli", "run", "--model", "acme/tiny", "--suite", str(suite),
            "--decoder", "greedy", "--max-new-tokens", "4", "--out", str(out)]
    commits = ["1" * 40, "2" * 40]
    _hub_cache(hub, stories260k, commits[0])
    first = subprocess.run(argv, env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    _hub_cache(hub, stories260k, commits[1])  # main moved on: same files, another commit
    second = subprocess.run(argv, env=env, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    assert "4 records generated" in second.stdout, second.stdout
    assert sorted(r.spec().model.commit for r in RunStore(out).runs()) == commits


def test_runs_without_the_new_fields_keep_their_ids() -> None:
    # Run ids computed by the code before content fingerprints and commits: a store made then still
    # finds its runs for a spec those fields leave unchanged (a Hub id with no resolvable commit).
    # sampler=1: the random streams those runs were made with (newer runs have a newer sampler, and ids).
    hub = RunSpec(ModelSpec("gpt2"), DecoderSpec("greedy"), SuiteSpec("wikitext", "1"), GenerationSpec(sampler=1),
                  "hf", "5.24.0", "float32")
    assert hub.run_id == "8af86a1ab7a614be"
    local = RunSpec(ModelSpec("/x/stories260K", None, "abcdef0123456789"),
                    DecoderSpec("top-p", (("p", 0.95), ("t", 1.0))), SuiteSpec("wikitext", "1", "/d/wiki.test.raw", 8),
                    GenerationSpec(32, 2, 0, sampler=1), "hf", "5.24.0", "float32")
    assert local.run_id == "d8b8f8882561a7d3"
    with_commit = RunSpec(ModelSpec("gpt2", commit="3" * 40), DecoderSpec("greedy"), SuiteSpec("wikitext", "1"),
                          GenerationSpec(sampler=1), "hf", "5.24.0", "float32")
    assert with_commit.run_id != hub.run_id


def test_a_store_written_before_format_2_still_opens(tmp_path: Path, suite: Path, model_copy: Path) -> None:
    out = tmp_path / "runs"
    assert greedy(str(model_copy), suite, out).exit_code == 0
    (run,) = RunStore(out).runs()
    header = run.header()
    del header["format"]
    del header["spec"]["model"]["commit"]
    (run.path / "header.json").write_text(json.dumps(header))
    (run.path / "scores.json").unlink()
    (run,) = RunStore(out).runs()
    assert run.spec().run_id == run.run_id and run.is_complete()
    board = CliRunner().invoke(main, ["leaderboard", str(out), "--out", str(tmp_path / "board")],
                               catch_exceptions=False)
    assert board.exit_code == 0, board.output
    again = greedy(str(model_copy), suite, out)
    assert "0 records generated" in again.output, again.output


def test_hyperfit_checkpoints_are_checked_against_their_base_old_and_new(tmp_path: Path, model_copy: Path) -> None:
    from bench.errors import BenchError
    from bench.hyperfit.checkpoint import base_fingerprint, check_hyperfit
    from bench.runtime import legacy_fingerprint

    ckpt = tmp_path / "ckpt"
    shutil.copytree(model_copy, ckpt)
    base = str(model_copy)

    def write_meta(base_model: dict) -> None:
        (ckpt / "hyperfit.json").write_text(json.dumps({"base_model": {"name": "somewhere/else", **base_model},
                                                        "finished": True, "epochs_done": 1}))

    write_meta({"fingerprint": legacy_fingerprint(base)})  # a checkpoint made before content fingerprints
    check_hyperfit(ckpt, base)
    write_meta({"fingerprint": "0123456789abcdef"})
    with pytest.raises(BenchError, match="whose files differ"):
        check_hyperfit(ckpt, base)
    write_meta(base_fingerprint(base))
    check_hyperfit(ckpt, base)
    scale_first_tensor(model_copy / "model.safetensors")  # the base changed since: same names and sizes
    with pytest.raises(BenchError, match="whose files differ"):
        check_hyperfit(ckpt, base)
