"""``bench score --from lm-eval|inspect``: generations made by other tools, scored as decbench runs.

The fixtures in ``tests/fixtures/foreign/`` were written by the real tools on stories260K
(``scripts/make_foreign_fixtures.py`` in ``.venv-peers``): lm-eval 0.4.13 greedy, 16 new tokens, and
inspect_ai 0.3.285 sampling at T=0.8, top-p 0.9, seed 7, two epochs, both on the four prompts of
``foreign_tools.PROMPTS`` read as a decbench suite (ids p0..p3). The tests marked ``peers`` run both
tools live (``make peers-env``; skipped where they do not import).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bench.cli import main
from foreign_tools import PROMPTS, REFERENCE, run_inspect, run_lm_eval, write_suite

FIXTURES = Path(__file__).parent / "fixtures" / "foreign"
LM_EVAL_SAMPLES = next(FIXTURES.glob("samples_stories_continue_*.jsonl"))
INSPECT_LOG = FIXTURES / "stories.eval"
HAS_INSPECT = importlib.util.find_spec("inspect_ai") is not None
needs_inspect = pytest.mark.skipif(not HAS_INSPECT, reason="inspect_ai is not installed here (make peers-env)")
needs_peers = pytest.mark.skipif(
    importlib.util.find_spec("lm_eval") is None or not HAS_INSPECT,
    reason="lm-eval and inspect_ai are not installed here (make peers-env; pytest -m peers in .venv-peers)")


def bench(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def run_folders(store: Path) -> list[Path]:
    return sorted(p for p in store.iterdir() if (p / "header.json").is_file())


def header(folder: Path) -> dict:
    return json.loads((folder / "header.json").read_text())


def read_records(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "generations.jsonl").read_text().splitlines() if line.strip()]


def imported(tmp_path: Path, tool: str, file: Path) -> tuple[Path, Path]:
    store = tmp_path / "store"
    result = bench("score", "--from", tool, str(file), "--out", str(store))
    assert result.exit_code == 0, result.output
    (folder,) = run_folders(store)
    return store, folder


def test_lm_eval_samples_become_a_run_with_provenance(tmp_path: Path) -> None:
    store, folder = imported(tmp_path, "lm-eval", LM_EVAL_SAMPLES)
    records = read_records(folder)
    assert [(r["prompt_id"], r["sample_index"]) for r in records] == [(f"p{i}", 0) for i in range(4)]
    assert [r["prompt"] for r in records] == PROMPTS
    assert all(r["reference"] == REFERENCE for r in records)
    lines = [json.loads(x) for x in LM_EVAL_SAMPLES.read_text().splitlines()]
    assert [r["continuation"] for r in records] == [line["resps"][0][0] for line in lines]
    spec, resolved = header(folder)["spec"], header(folder)["resolved"]
    assert spec["backend"] == "lm-eval" and spec["backend_version"] == "0.4.13" and spec["dtype"] == "float32"
    assert dict(spec["decoder"]["args"])["do_sample"] is False and spec["generation"]["max_new_tokens"] == 16
    assert resolved["import"]["sha256"] and resolved["import"]["prompt_ids_from"] == "doc.id"
    assert resolved["import"]["results_file"].endswith(".json")
    rows = list((store / "leaderboard.csv").read_text().splitlines())
    assert any("lm-eval" in row for row in rows[1:]), rows


def test_reimporting_the_same_file_is_the_same_run_and_an_edited_file_another(tmp_path: Path) -> None:
    store, folder = imported(tmp_path, "lm-eval", LM_EVAL_SAMPLES)
    before = (folder / "generations.jsonl").read_bytes()
    assert bench("score", "--from", "lm-eval", str(LM_EVAL_SAMPLES), "--out", str(store)).exit_code == 0
    assert run_folders(store) == [folder] and (folder / "generations.jsonl").read_bytes() == before
    edited = tmp_path / "edited" / LM_EVAL_SAMPLES.name
    edited.parent.mkdir()
    lines = LM_EVAL_SAMPLES.read_text().splitlines()
    first = json.loads(lines[0])
    first["resps"] = [["a different continuation"]]
    edited.write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    assert bench("score", "--from", "lm-eval", str(edited), "--out", str(store)).exit_code == 0
    assert len(run_folders(store)) == 2


def test_lm_eval_greedy_matches_decbench_greedy_and_compares(tmp_path: Path, stories260k: str) -> None:
    """The same model, prompts and greedy decoding in two harnesses: the same texts, prompt by prompt."""
    store, foreign = imported(tmp_path, "lm-eval", LM_EVAL_SAMPLES)
    suite = write_suite(tmp_path)
    result = bench("run", "--model", stories260k, "--suite", str(suite), "--decoder", "greedy",
                   "--max-new-tokens", "16", "--out", str(store))
    assert result.exit_code == 0, result.output
    (ours,) = [f for f in run_folders(store) if f != foreign]
    theirs = {r["prompt_id"]: r["continuation"] for r in read_records(foreign)}
    mine = {r["prompt_id"]: r["continuation"] for r in read_records(ours)}
    assert theirs == mine
    compared = bench("compare", str(ours), str(foreign), "--n-boot", "200")
    assert compared.exit_code == 0, compared.output
    assert "distinct-2" in compared.output


@needs_inspect
def test_inspect_log_becomes_a_run_with_its_epochs(tmp_path: Path) -> None:
    from inspect_ai.log import read_eval_log

    _, folder = imported(tmp_path, "inspect", INSPECT_LOG)
    records = read_records(folder)
    assert sorted((r["prompt_id"], r["sample_index"]) for r in records) == [(f"p{i}", e) for i in range(4) for e in (0, 1)]
    log = read_eval_log(str(INSPECT_LOG))
    expected = {(str(s.id), s.epoch - 1): s.output.completion for s in log.samples}
    assert {(r["prompt_id"], r["sample_index"]): r["continuation"] for r in records} == expected
    spec = header(folder)["spec"]
    args = dict(spec["decoder"]["args"])
    assert (spec["backend"], args["temperature"], args["top_p"], args["seed"]) == ("inspect", 0.8, 0.9, 7)
    assert spec["generation"]["samples_per_prompt"] == 2 and spec["generation"]["max_new_tokens"] == 16


@pytest.mark.skipif(HAS_INSPECT, reason="inspect_ai is installed here: the message is for where it is not")
def test_inspect_without_inspect_ai_is_one_line(tmp_path: Path) -> None:
    result = bench("score", "--from", "inspect", str(INSPECT_LOG), "--out", str(tmp_path / "store"))
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: --from inspect needs inspect_ai to read {INSPECT_LOG}: pip install inspect-ai"]
    assert not (tmp_path / "store").exists()


def _bad_lm_eval(tmp_path: Path, change) -> Path:
    lines = [json.loads(x) for x in LM_EVAL_SAMPLES.read_text().splitlines()]
    text = change(lines)
    path = tmp_path / "bad" / "samples_stories_continue_2026-01-01T00-00-00.000000.jsonl"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def _loglikelihood(lines: list[dict]) -> str:
    lines[0]["arguments"] = {"gen_args_0": {"arg_0": "a context", "arg_1": " a continuation"}}
    return "\n".join(json.dumps(x) for x in lines)


@pytest.mark.parametrize("change, message", [
    (lambda lines: json.dumps(lines[0]) + "\n{not json\n", "line 2: invalid JSON"),
    (_loglikelihood, "line 1: the request is not a generate_until request"),
    (lambda lines: json.dumps({"doc": {}}) + "\n", "line 1: no integer 'doc_id'"),
    (lambda lines: "", "empty file"),
])
def test_malformed_lm_eval_file_is_one_line_exit_2(tmp_path: Path, change, message: str) -> None:
    bad = _bad_lm_eval(tmp_path, change)
    result = bench("score", "--from", "lm-eval", str(bad), "--out", str(tmp_path / "store"))
    assert result.exit_code == 2
    (line,) = result.output.strip().splitlines()
    assert line.startswith("error: ") and message in line, line
    assert not (tmp_path / "store").exists()


def test_bad_arguments_are_one_line_and_nothing_is_overwritten(tmp_path: Path) -> None:
    store, folder = imported(tmp_path, "lm-eval", LM_EVAL_SAMPLES)
    kept = {p: p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()}
    cases = [
        (["score", "--from", "lm-eval", str(tmp_path / "missing.jsonl"), "--out", str(store)], "no such file"),
        (["score", str(folder / "generations.jsonl"), "--out", str(store)], "--out: only with --from"),
        (["score", "--from", "lm-eval", str(folder / "generations.jsonl"), "--out", str(folder / "generations.jsonl")], "--out"),
        (["score", "--from", "inspect", str(LM_EVAL_SAMPLES), "--out", str(store)],
         "inspect" if not HAS_INSPECT else "not an inspect_ai eval log"),
    ]
    for argv, message in cases:
        result = bench(*argv)
        assert result.exit_code == 2, (argv, result.output)
        (line,) = result.output.strip().splitlines()
        assert line.startswith("error: ") and message in line, (argv, line)
    assert {p: p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()} == kept


def test_out_naming_the_input_file_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / LM_EVAL_SAMPLES.name
    shutil.copy(LM_EVAL_SAMPLES, copy)
    result = bench("score", "--from", "lm-eval", str(copy), "--out", str(copy))
    assert result.exit_code == 2, result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith("error: ") and "--out" in line, line
    assert copy.read_bytes() == LM_EVAL_SAMPLES.read_bytes()


# ---- live: the real tools write the files (pytest -m peers in .venv-peers) ----------------------

@pytest.mark.peers
@needs_peers
def test_live_lm_eval_then_score(tmp_path: Path, stories260k: str) -> None:
    samples = run_lm_eval(stories260k, tmp_path / "lm", max_tokens=12)
    _, folder = imported(tmp_path, "lm-eval", samples)
    spec = header(folder)["spec"]
    from importlib.metadata import version

    assert spec["backend_version"] == version("lm_eval") and spec["generation"]["max_new_tokens"] == 12
    assert [r["prompt_id"] for r in read_records(folder)] == ["p0", "p1", "p2", "p3"]
    assert all(r["continuation"] for r in read_records(folder))


@pytest.mark.peers
@needs_peers
def test_live_inspect_then_score(tmp_path: Path, stories260k: str) -> None:
    log = run_inspect(stories260k, tmp_path / "inspect", max_tokens=10, epochs=3)
    _, folder = imported(tmp_path, "inspect", log)
    spec = header(folder)["spec"]
    from importlib.metadata import version

    assert spec["backend_version"] == version("inspect_ai") and spec["generation"]["samples_per_prompt"] == 3
    assert sorted({r["sample_index"] for r in read_records(folder)}) == [0, 1, 2]
    assert len(read_records(folder)) == 12
