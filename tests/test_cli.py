"""The CLI end to end on stories260K: runs, resumption, the leaderboard and bad input."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bench.cli import main

PROMPTS = [
    {"id": "a", "prompt": "Once upon a time", "reference": "there was a little girl named Lily who liked to play."},
    {"id": "b", "prompt": "The dog ran to the park", "reference": "and found a big red ball under the tree."},
    {"id": "c", "prompt": "Tom was sad because", "reference": "his toy was broken and his mom was away."},
    {"id": "d", "prompt": "One day, a little bird", "reference": "flew to the top of the tall tree to sing."},
    {"id": "e", "prompt": "The sun was hot", "reference": "so the children went to swim in the lake."},
]


@pytest.fixture()
def prompts_file(tmp_path: Path) -> Path:
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PROMPTS))
    return path


def bench(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def read_leaderboard(out: Path) -> list[dict[str, str]]:
    with open(out / "leaderboard.csv") as f:
        return list(csv.DictReader(f))


def records(out: Path) -> dict[tuple[str, str, int], dict]:
    result = {}
    for f in out.glob("*/generations.jsonl"):
        for line in f.read_text().splitlines():
            r = json.loads(line)
            result[(r["decoder"], r["prompt_id"], r["sample_index"])] = r
    return result


def test_run_all_decoders_then_add_a_model(tmp_path: Path, prompts_file: Path, stories260k: str, tiny_llama: str) -> None:
    out = tmp_path / "runs"
    common = ["--suite", str(prompts_file), "--max-new-tokens", "24", "--out", str(out), "--batch-size", "2"]
    result = bench("run", "--model", stories260k, "--decoder", "all", *common)
    assert result.exit_code == 0, result.output
    rows = read_leaderboard(out)
    decoders = {r["decoder"] for r in rows if r["model"] == "stories260K"}
    assert {"greedy", "temperature", "top-p", "top-k"} <= decoders
    assert any(r["model"] == "human" for r in rows)
    for r in rows:
        assert 0.0 <= float(r["diversity"]) <= 1.0 and r["n"] == "5"
    first = records(out)
    assert len(first) == 5 * len(decoders)
    assert all(r["seed"] is None for (d, _, _), r in first.items() if d == "greedy")

    # Same command again: nothing is regenerated.
    again = bench("run", "--model", stories260k, "--decoder", "all", *common)
    assert "0 records generated" in again.output
    assert records(out) == first

    # A second model adds rows and keeps the old ones.
    bench("run", "--model", tiny_llama, "--decoder", "greedy", *common)
    rows2 = read_leaderboard(out)
    assert {(r["model"], r["decoder"]) for r in rows} <= {(r["model"], r["decoder"]) for r in rows2}
    assert len(rows2) == len(rows) + 1


def test_two_models_in_one_run(tmp_path: Path, prompts_file: Path, stories260k: str, tiny_llama: str) -> None:
    out = tmp_path / "runs"
    result = bench("run", "--model", stories260k, "--model", tiny_llama, "--decoder", "greedy",
                   "--suite", str(prompts_file), "--max-new-tokens", "8", "--out", str(out))
    assert result.exit_code == 0, result.output
    models = {r["model"] for r in read_leaderboard(out) if r["decoder"] == "greedy"}
    assert models == {"stories260K", Path(tiny_llama).name}


def test_samples_per_prompt_have_distinct_seeds(tmp_path: Path, prompts_file: Path, stories260k: str) -> None:
    out = tmp_path / "runs"
    bench("run", "--model", stories260k, "--decoder", "temperature", "--suite", str(prompts_file),
          "--max-new-tokens", "16", "--samples-per-prompt", "3", "--out", str(out))
    recs = records(out)
    assert len(recs) == 15
    assert len({r["seed"] for r in recs.values()}) == 15


def _run_cmd(out: Path, prompts_file: Path, model: str, batch: int) -> list[str]:
    return [sys.executable, "-m", "bench.cli", "run", "--model", model, "--suite", str(prompts_file),
            "--decoder", "top-p:p=0.9", "--decoder", "greedy", "--max-new-tokens", "96",
            "--samples-per-prompt", "3", "--batch-size", str(batch), "--out", str(out)]


def test_kill_and_resume_equals_uninterrupted(tmp_path: Path, prompts_file: Path, stories260k: str) -> None:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_run_cmd(killed, prompts_file, stories260k, 1), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:  # kill -9 once some records are on disk, mid-run
        lines = sum(f.read_text().count("\n") for f in killed.glob("*/generations.jsonl"))
        if lines >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = records(killed)
    assert 0 < len(partial) < 30, "the run must be interrupted mid-way for this test to mean anything"
    # A torn last line, as a writer killed mid-write leaves it.
    gen_file = next(killed.glob("*/generations.jsonl"))
    with open(gen_file, "a") as f:
        f.write('{"run_id": "torn", "prompt_id": "a", "sampl')
    subprocess.run(_run_cmd(killed, prompts_file, stories260k, 3), env=env, check=True, capture_output=True)
    whole = tmp_path / "whole"
    subprocess.run(_run_cmd(whole, prompts_file, stories260k, 8), env=env, check=True, capture_output=True)

    resumed, uninterrupted = records(killed), records(whole)
    assert len(resumed) == len(uninterrupted) == 30
    for key, rec in uninterrupted.items():  # same text, whatever the batch size or the kill
        assert resumed[key]["token_ids"] == rec["token_ids"], key
        assert resumed[key]["seed"] == rec["seed"]
    for key, rec in partial.items():  # nothing already written was lost or rewritten
        assert resumed[key] == rec
    lines = sum(f.read_text().count("\n") for f in killed.glob("*/generations.jsonl"))
    assert lines == 30  # no duplicates, torn line gone
    assert read_leaderboard(killed) and [r["run_id"] for r in read_leaderboard(killed)] == \
        [r["run_id"] for r in read_leaderboard(whole)]


BAD_INPUT = [
    (["--decoder", "topp"], "unknown decoder 'topp'; did you mean 'top-p'?"),
    (["--decoder", "top-p:q=0.5"], "has no parameter 'q'"),
    (["--decoder", "top-p:p=1.5"], "p must be in (0, 1]"),
    (["--decoder", "top-p:p=0"], "p must be in (0, 1]"),
    (["--decoder", "temperature:t=0"], "must be > 0"),
    (["--decoder", "temperature:t=-1"], "must be > 0"),
    (["--decoder", "top-k:k=0"], "k must be >= 1"),
    (["--decoder", "top-k:k=two"], "needs a int"),
    (["--model", "/nonexistent/model"], "cannot load model '/nonexistent/model'"),
    (["--max-new-tokens", "600"], "exceeds the context"),
    (["--suite", "nosuch"], "unknown suite"),
]


@pytest.mark.parametrize("args,message", BAD_INPUT)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path: Path, prompts_file: Path, stories260k: str,
                                                         args: list[str], message: str) -> None:
    out = tmp_path / "runs"
    base = {"--model": stories260k, "--suite": str(prompts_file), "--decoder": "greedy", "--max-new-tokens": "8"}
    for flag, value in zip(args[::2], args[1::2]):
        base[flag] = value
    argv = ["run", "--out", str(out)] + [x for kv in base.items() for x in kv]
    # In process (fast); any exception other than BenchError would propagate and fail the test.
    result = CliRunner().invoke(main, argv, catch_exceptions=False)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_bad_input_in_a_real_process_has_no_traceback(tmp_path: Path, prompts_file: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "bench.cli", "run", "--model", str(tmp_path / "missing"),
                           "--suite", str(prompts_file), "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: cannot load model") and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_malformed_suite_line_names_the_line(tmp_path: Path, stories260k: str) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "fine"}\n{"prompt": \n')
    result = CliRunner().invoke(main, ["run", "--model", stories260k, "--suite", str(bad), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "line 2" in result.output
    assert not (tmp_path / "o").exists()


def test_bad_input_leaves_existing_results_untouched(tmp_path: Path, prompts_file: Path, stories260k: str) -> None:
    out = tmp_path / "runs"
    bench("run", "--model", stories260k, "--suite", str(prompts_file), "--decoder", "greedy",
          "--max-new-tokens", "8", "--out", str(out))
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    result = CliRunner().invoke(main, ["run", "--model", stories260k, "--suite", str(prompts_file),
                                       "--decoder", "top-p:p=2", "--out", str(out)])
    assert result.exit_code == 2
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_listing_commands() -> None:
    for args in (["--help"], ["run", "--help"], ["decoders"], ["suites"]):
        result = bench(*args)
        assert result.exit_code == 0, result.output
    listing = bench("decoders").output
    for name in ("greedy", "temperature", "top-p", "top-k"):
        assert name in listing
    assert "p=0.95" in listing
    assert "wikitext" in bench("suites").output


def test_score_command(tmp_path: Path) -> None:
    path = tmp_path / "gens.jsonl"
    path.write_text("".join(json.dumps({"continuation": p["reference"], "reference": p["prompt"]}) + "\n" for p in PROMPTS))
    result = bench("score", str(path), "--json")
    rows = json.loads(result.output)
    assert [r["system"] for r in rows] == ["generations", "human"]
    assert rows[0]["n"] == 5


def test_score_command_with_model_based_metrics(tmp_path: Path, stories260k: str, data_dir: str) -> None:
    pytest.importorskip("mauve", reason="needs mauve-text: pip install 'decbench[mauve]'")
    from bench.scorers.model_based import score_model_based

    lines = [x.split() for x in (Path(data_dir) / "wikitext" / "wiki.test.raw").read_text().splitlines()
             if len(x.split()) > 60 and not x.strip().startswith("=")][:24]
    recs = [{"prompt": " ".join(w[:10]), "reference": " ".join(w[10:40]), "continuation": " ".join(w[40:])}
            for w in lines[:12]]
    path = tmp_path / "gens.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    args = ["score", str(path), "--score", "mauve", "--score", "coherence", "--featurizer", stories260k,
            "--scorer-model", stories260k, "--device", "cpu", "--json"]
    rows = json.loads(bench(*args).output)
    direct = score_model_based([{"prompt_id": str(i + 1), "sample_index": 0, **r} for i, r in enumerate(recs)],
                               ["mauve", "coherence"], {"featurizer": stories260k, "scorer_model": stories260k,
                                                        "device": "cpu"})
    assert rows[0]["system"] == "generations" and 0 < rows[0]["mauve"] <= 1
    assert rows[0]["mauve"] == pytest.approx(direct["metrics"]["mauve"])
    assert rows[0]["coherence"] == pytest.approx(direct["metrics"]["coherence"])
    assert "mauve" not in rows[1]  # the human row keeps the text metrics only
    del recs[3]["prompt"]
    path.write_text("\n" + "".join(json.dumps(r) + "\n" for r in recs))  # a blank first line: record 4 is line 5
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "gens.jsonl, line 5: --score coherence needs 'prompt' on every line" in result.output
    result = CliRunner().invoke(main, ["score", str(path), "--score", "mauvee"])
    assert result.exit_code == 2 and "did you mean 'mauve'" in result.output
    result = CliRunner().invoke(main, ["score", str(path), "--score", "mauve", "--mauve-length", "0"])
    assert result.exit_code == 2 and "'--mauve-length': 0 is not in the range x>=1" in result.output


def test_model_based_scores_and_judge_win_rates_reach_the_leaderboard(tmp_path: Path, prompts_file: Path,
                                                                      stories260k: str) -> None:
    from bench.scorers.model_based import score_model_based

    out = tmp_path / "runs"
    result = bench("run", "--model", stories260k, "--suite", str(prompts_file), "--decoder", "greedy",
                   "--decoder", "temperature", "--max-new-tokens", "16", "--out", str(out),
                   "--score", "coherence", "--score", "perplexity", "--scorer-model", stories260k,
                   "--judge-against", "greedy", "--judge-local", stories260k)
    assert result.exit_code == 0, result.output
    rows = {r["decoder"]: r for r in read_leaderboard(out)}
    recs = [r for (d, _, _), r in sorted(records(out).items()) if d == "temperature"]
    direct = score_model_based(recs, ["coherence", "perplexity"], {"scorer_model": stories260k, "device": "cpu"})
    assert float(rows["temperature"]["coherence"]) == pytest.approx(direct["metrics"]["coherence"], rel=1e-4)
    assert float(rows["temperature"]["perplexity"]) == pytest.approx(direct["metrics"]["perplexity"], rel=1e-4)
    assert rows["temperature"]["judge_opponent"] == "greedy" and "judge-win-rate" in rows["temperature"]
    assert rows["reference"]["judge_opponent"] == "" and rows["reference"]["coherence"] == ""
    assert (out / "judge_verdicts.jsonl").exists()


def test_mauve_through_run_records_the_featurizer_precision(tmp_path: Path, stories260k: str, data_dir: str) -> None:
    pytest.importorskip("mauve", reason="needs mauve-text: pip install 'decbench[mauve]'")
    lines = [x for x in (Path(data_dir) / "wikitext" / "wiki.test.raw").read_text().splitlines()
             if len(x.split()) > 40 and not x.strip().startswith("=")][:12]
    suite = tmp_path / "wiki12.jsonl"
    suite.write_text("".join(json.dumps({"id": str(i), "prompt": " ".join(x.split()[:8]),
                                         "reference": " ".join(x.split()[8:])}) + "\n" for i, x in enumerate(lines)))
    out = tmp_path / "runs"
    common = ["run", "--model", stories260k, "--suite", str(suite), "--decoder", "greedy", "--max-new-tokens", "24",
              "--out", str(out), "--score", "mauve", "--featurizer", stories260k, "--device", "cpu"]
    assert bench(*common, "--featurizer-dtype", "bfloat16").exit_code == 0
    scores = json.loads(next(out.glob("*/scores.json")).read_text())
    mauve_bf16 = scores["model_based"]["mauve"]
    assert mauve_bf16["settings"]["featurizer_dtype"] == "bfloat16" and mauve_bf16["settings"]["n_p"] == 12
    assert 0 < float(read_leaderboard(out)[0]["mauve"]) <= 1
    bad = CliRunner().invoke(main, [*common, "--featurizer-dtype", "int8"])
    assert bad.exit_code == 2 and "'int8' is not one of" in bad.output


@pytest.mark.parametrize("args,message", [
    (["--score", "mauvee"], "did you mean 'mauve'"),
    (["--score", "mauve", "--featurizer", "/nonexistent/featurizer"], "cannot load model '/nonexistent/featurizer'"),
    (["--judge-against", "top-k"], "not among this run's decoders"),
    (["--judge-against", "greedy"], "--judge-against needs a judge"),
])
def test_bad_scoring_options_exit_2_before_generating(tmp_path: Path, prompts_file: Path, stories260k: str,
                                                      args: list[str], message: str) -> None:
    out = tmp_path / "runs"
    result = CliRunner().invoke(main, ["run", "--model", stories260k, "--suite", str(prompts_file), "--decoder",
                                       "greedy", "--max-new-tokens", "8", "--out", str(out), *args])
    assert result.exit_code == 2 and message in result.stderr
    assert not out.exists()
