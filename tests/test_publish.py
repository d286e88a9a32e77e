"""bench leaderboard / check / compare end to end on small stores made with the CLI (stories260K)."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.cli import main

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BENCH_SHARED", REPO.parent / "shared")).resolve()
RUN_ARGS = ["--suite", "cd-wikitext", "--num-prompts", "5", "--max-new-tokens", "16", "--device", "cpu"]


def bench(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def write_csv(path: Path, columns: list[str], rows: list[dict[str, str]]) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def run_of(store: Path, decoder: str) -> Path:
    for d in sorted(store.iterdir()):
        header = d / "header.json"
        if header.is_file() and json.loads(header.read_text())["spec"]["decoder"]["name"] == decoder:
            return d
    raise AssertionError(f"no {decoder} run in {store}")


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """s1: greedy and top-k; s2: temperature; partial: a copy of s1's greedy run cut short."""
    if not (SHARED / "models" / "stories260K").is_dir():
        pytest.fail(f"offline assets not found at {SHARED}; set BENCH_SHARED")
    root = tmp_path_factory.mktemp("publish")
    common = [*RUN_ARGS, "--model", SHARED / "models" / "stories260K", "--data-dir", SHARED / "data"]
    for name, decoders in (("s1", ["greedy", "top-k"]), ("s2", ["temperature"])):
        args = [a for d in decoders for a in ("--decoder", d)]
        result = bench("run", *common, *args, "--out", root / name)
        assert result.exit_code == 0, result.output
    partial = root / "partial" / run_of(root / "s1", "greedy").name
    shutil.copytree(run_of(root / "s1", "greedy"), partial)
    lines = (partial / "generations.jsonl").read_text().splitlines(keepends=True)
    (partial / "generations.jsonl").write_text("".join(lines[:2]))
    (partial / "scores.json").unlink()
    board = root / "boards" / "board"
    result = bench("leaderboard", root / "s1", root / "s2", root / "s1", "--out", board)
    assert result.exit_code == 0, result.output
    return {"root": root, "s1": root / "s1", "s2": root / "s2", "partial": root / "partial",
            "board": board.with_suffix(".csv")}


def test_leaderboard_merges_runs_into_csv_md_html(stores: dict[str, Path]) -> None:
    columns, rows = read_csv(stores["board"])
    assert columns[:7] == ["suite", "suite_version", "model", "decoder", "decoder_args", "n", "n_prompts"]
    assert columns[-2:] == ["tokens_sha", "run_id"]
    for metric in ("rep-2", "diversity", "distinct-2", "ttr-last96"):
        i = columns.index(metric)
        assert columns[i + 1:i + 3] == [f"{metric}_lo", f"{metric}_hi"]
    # s1 given twice: each run once; one human row
    assert [(r["model"], r["decoder"]) for r in rows] == [
        ("stories260K", "greedy"), ("stories260K", "temperature"), ("stories260K", "top-k"), ("human", "reference")]
    for r in rows[:3]:
        assert r["n"] == "5" and len(r["run_id"]) == 16 and len(r["tokens_sha"]) == 64
        assert float(r["rep-2_lo"]) <= float(r["rep-2"]) <= float(r["rep-2_hi"])
    md = stores["board"].with_suffix(".md").read_text()
    assert "## cd-wikitext" in md and "`top-k:k=50,t=1.0`" in md and "rep-2 ↓" in md and "**" in md
    page = stores["board"].with_suffix(".html").read_text()
    assert page.count('data-plot="scatter"') == 1 and page.count('data-plot="bars"') == 1
    assert "<svg" in page and "<script>" in page and 'data-direction="lower"' in page
    assert "http://" not in page.split("<svg")[0] and 'src="' not in page
    # rendering is deterministic (no dates, fixed SVG ids): committed pages only change with the data
    again = stores["root"] / "again" / "board"
    assert bench("leaderboard", stores["s1"], stores["s2"], "--out", again).exit_code == 0
    assert again.with_suffix(".html").read_text() == page


def test_leaderboard_refuses_incomplete_runs_unless_skipped(stores: dict[str, Path]) -> None:
    partial = next(stores["partial"].iterdir()).name
    result = bench("leaderboard", stores["s2"], stores["partial"], "--out", stores["root"] / "x" / "inc")
    assert result.exit_code == 2 and partial in result.output and "in progress" in result.output
    result = bench("leaderboard", stores["s2"], stores["partial"], "--skip-incomplete",
                   "--out", stores["root"] / "x" / "inc")
    assert result.exit_code == 0, result.output
    _, rows = read_csv(stores["root"] / "x" / "inc.csv")
    assert [r["decoder"] for r in rows] == ["temperature", "reference"]


def test_check_passes_on_itself(stores: dict[str, Path]) -> None:
    result = bench("check", "--baseline", stores["board"], stores["board"], "--exact")
    assert result.exit_code == 0, result.output
    assert "check passed" in result.output and "3 row(s) token-identical (2 of them sampled)" in result.output
    own = stores["root"] / "boards" / "s1"
    assert bench("leaderboard", stores["s1"], "--out", own).exit_code == 0
    result = bench("check", "--baseline", own.with_suffix(".csv"), stores["s1"], "--exact")
    assert result.exit_code == 0, result.output
    # one run folder checks its own row; a store must cover every baseline row of its suite
    assert bench("check", "--baseline", stores["board"], run_of(stores["s1"], "greedy"), "--exact").exit_code == 0
    result = bench("check", "--baseline", stores["board"], stores["s1"])
    assert result.exit_code == 2 and "no run for baseline row(s): cd-wikitext stories260K temperature" in result.output


def _doctored(stores: dict[str, Path], name: str, decoder: str, **changes: object) -> Path:
    columns, rows = read_csv(stores["board"])
    for r in rows:
        if r["decoder"] == decoder:
            for key, value in changes.items():
                r[key.replace("_", "-") if key in ("rep_2", "distinct_2") else key] = (
                    str(float(r[key.replace("_", "-")]) + value) if isinstance(value, float) else value)
    return write_csv(stores["root"] / f"{name}.csv", columns, rows)


def test_check_fails_on_regression_and_passes_on_improvement(stores: dict[str, Path]) -> None:
    worse = _doctored(stores, "worse", "top-k", rep_2=0.5)  # lower is better: +0.5 is a regression
    result = bench("check", "--baseline", stores["board"], worse)
    assert result.exit_code == 1, result.output
    assert "REGRESSION" in result.output and "top-k" in result.output and "rep-2" in result.output
    assert bench("check", "--baseline", stores["board"], worse, "--tolerance", "rep-2=0.6").exit_code == 0
    better = _doctored(stores, "better", "top-k", distinct_2=0.2, rep_2=-0.001)
    result = bench("check", "--baseline", stores["board"], better)
    assert result.exit_code == 0, result.output
    assert "better" in result.output
    # the baseline doctored instead: the real values are now worse than it
    assert bench("check", "--baseline", better, stores["board"]).exit_code == 1


def test_check_exact_catches_changed_tokens(stores: dict[str, Path]) -> None:
    changed = _doctored(stores, "changed", "greedy", tokens_sha="0" * 64)
    assert bench("check", "--baseline", stores["board"], changed).exit_code == 0
    result = bench("check", "--baseline", stores["board"], changed, "--exact")
    assert result.exit_code == 1 and "decoding output changed" in result.output
    sampled = _doctored(stores, "sampled", "top-k", tokens_sha="0" * 64)  # seeded sampling: compared too
    result = bench("check", "--baseline", stores["board"], sampled, "--exact")
    assert result.exit_code == 1 and "a seeded sampled run reproduces the baseline" in result.output
    assert bench("check", "--baseline", stores["board"], sampled, "--exact", "--deterministic-only").exit_code == 0


def test_check_bad_input_exits_2(stores: dict[str, Path]) -> None:
    root, board = stores["root"], stores["board"]
    columns, rows = read_csv(board)
    other_suite = write_csv(root / "other-suite.csv", columns, [dict(r, suite="wikitext") for r in rows])
    fewer = [c for c in columns if not c.startswith("ttr")]
    no_ttr = write_csv(root / "no-ttr.csv", fewer, [{k: r[k] for k in fewer} for r in rows])
    cases = [
        (["--baseline", other_suite, board], "suite"),
        (["--baseline", no_ttr, board], "other columns"),
        (["--baseline", board, no_ttr], "missing metrics"),
        (["--baseline", board, stores["partial"]], "in progress"),
        (["--baseline", board, root / "nowhere"], "neither"),
        (["--baseline", board, board, "--tolerance", "rep-2=abc"], "not a number"),
        (["--baseline", board, board, "--tolerance", "rep2=0.1"], "did you mean 'rep-2'"),
    ]
    for args, message in cases:
        result = bench("check", *args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1, result.output


def test_compare_with_itself_and_with_another_decoder(stores: dict[str, Path]) -> None:
    from bench.publish.compare import compare_runs
    from bench.store import RunDir

    greedy, top_k = RunDir(run_of(stores["s1"], "greedy")), RunDir(run_of(stores["s1"], "top-k"))
    same, n_shared = compare_runs(greedy, greedy, n_boot=200)
    assert n_shared == 5 and same
    assert all(d.diff == 0 and d.p == pytest.approx(1.0) for d in same if d.p is not None)
    diffs, _ = compare_runs(greedy, top_k, n_boot=200)
    by_name = {d.metric: d for d in diffs}
    assert by_name["distinct-2"].diff != 0
    d = by_name["distinct-2"]
    assert d.lo <= d.diff <= d.hi and 0 < d.p <= 1
    # the CLI, with B as a leaderboard row found through --store, and both file outputs
    out_csv, out_md = stores["root"] / "cmp.csv", stores["root"] / "cmp.md"
    result = bench("compare", greedy.path, f"{stores['board']}#{top_k.run_id}", "--store", stores["s1"],
                   "--n-boot", "200", "--csv", out_csv, "--markdown", out_md)
    assert result.exit_code == 0, result.output
    _, rows = read_csv(out_csv)
    row = next(r for r in rows if r["metric"] == "distinct-2")
    assert float(row["B-A"]) == pytest.approx(by_name["distinct-2"].diff, rel=1e-5)
    assert "| distinct-2 |" in out_md.read_text()


def test_compare_bad_input_exits_2(stores: dict[str, Path]) -> None:
    greedy = run_of(stores["s1"], "greedy")
    moved = stores["root"] / "moved" / greedy.name
    shutil.copytree(greedy, moved, dirs_exist_ok=True)
    records = [json.loads(line) for line in (moved / "generations.jsonl").read_text().splitlines()]
    (moved / "generations.jsonl").write_text("".join(json.dumps(dict(r, prompt_id="other-" + r["prompt_id"])) + "\n"
                                                   for r in records))
    result = bench("compare", greedy, moved)
    assert result.exit_code == 2 and "share no prompts" in result.output
    result = bench("compare", greedy, f"{stores['board']}#0000000000000000")
    assert result.exit_code == 2 and "no row with run_id" in result.output
    top_k = run_of(stores["s1"], "top-k").name
    result = bench("compare", greedy, f"{stores['board']}#{top_k}")  # not beside the CSV, no --store
    assert result.exit_code == 2 and "--store" in result.output


def test_scatter_prefers_quality_metrics() -> None:
    from bench.publish.html import scatter_axes

    assert scatter_axes(["rep-2", "diversity", "distinct-2"]) == ["rep-2"]
    assert scatter_axes(["diversity", "distinct-2"]) == ["distinct-2"]
    assert scatter_axes(["rep-2", "diversity", "mauve", "coherence"]) == ["mauve", "coherence"]
    assert scatter_axes(["length-words"]) == []


def test_compare_metric_directions() -> None:
    from bench.publish.check import compare_metric

    assert compare_metric("rep-2", 0.10, 0.20, 0.05) == "REGRESSION"
    assert compare_metric("rep-2", 0.10, 0.12, 0.05) == "worse"
    assert compare_metric("rep-2", 0.10, 0.05, 0.0) == "better"
    assert compare_metric("diversity", 0.90, 0.80, 0.05) == "REGRESSION"
    assert compare_metric("diversity", 0.90, 0.95, 0.0) == "better"
    assert compare_metric("length-words", 10.0, 50.0, 0.0) == "changed"
    assert compare_metric("ttr", float("nan"), float("nan"), 0.0) == "same"
    assert compare_metric("ttr", 0.5, float("nan"), 0.0) == "REGRESSION"


def test_unique_rows_rejects_conflicting_runs() -> None:
    from bench.errors import BenchError
    from bench.publish import unique_rows

    def row(decoder: str, run_id: str, n_prompts: int = 5, model: str = "m") -> dict:
        return {"suite": "s", "suite_version": "1", "model": model, "decoder": decoder, "decoder_args": "",
                "n_prompts": n_prompts, "max_new_tokens": 16, "run_id": run_id}

    human = row("reference", "", model="human")
    assert len(unique_rows([row("greedy", "a"), row("top-k", "b"), human, dict(human)])) == 3
    with pytest.raises(BenchError, match="runs a and c both give the row 's m greedy'"):
        unique_rows([row("greedy", "a"), row("greedy", "c", n_prompts=9)])
    with pytest.raises(BenchError, match="different prompt subsets"):
        unique_rows([human, dict(human, n_prompts=9)])


def test_bar_labels_wrap_at_arguments_and_name_models_only_when_several() -> None:
    from bench.publish.html import _bar_labels

    long_args = "alpha=0.1,top_k=500,t=1.0,greedy=False,calib_prompts=32,calib_tokens=64"
    rows = [{"model": "m1", "decoder": "static-reweight", "decoder_args": long_args},
            {"model": "m1", "decoder": "greedy", "decoder_args": ""},
            {"model": "human", "decoder": "reference", "decoder_args": ""}]
    labels = _bar_labels(rows)
    assert labels[1:] == ["greedy", "human reference"]
    lines = labels[0].split("\n")
    assert len(lines) > 1 and all(len(line) <= 34 for line in lines)
    assert "".join(lines) == f"static-reweight:{long_args}"  # cut only after commas, nothing lost
    rows[1]["model"] = "m2"
    assert _bar_labels(rows)[1] == "m2 greedy"


def test_incomplete_runs_errors_suggest_only_accepted_options(stores: dict[str, Path], tmp_path: Path) -> None:
    from bench.errors import BenchError
    from bench.publish.compare import compare_runs
    from bench.store import RunDir

    mixed = tmp_path / "mixed"
    for run in (next(stores["partial"].iterdir()), run_of(stores["s2"], "temperature")):
        shutil.copytree(run, mixed / run.name)
    result = bench("check", "--baseline", stores["board"], mixed)
    assert result.exit_code == 2 and "pass --skip-incomplete" in result.output
    columns, rows = read_csv(stores["board"])
    baseline = write_csv(tmp_path / "temperature.csv", columns, [r for r in rows if r["decoder"] in ("temperature", "reference")])
    result = bench("check", "--baseline", baseline, mixed, "--skip-incomplete")
    assert result.exit_code == 0, result.output
    assert "check passed" in result.output
    with pytest.raises(BenchError) as err:
        compare_runs(RunDir(next(stores["partial"].iterdir())), RunDir(run_of(stores["s1"], "top-k")))
    assert "in progress" in str(err.value) and "--skip-incomplete" not in str(err.value)
