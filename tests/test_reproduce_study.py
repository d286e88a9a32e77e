"""``bench reproduce beyond-temperature --preset ci``: every stage, table and the resume contract.

One uninterrupted study (the ci preset on stories260K, a few sizes smaller) is shared by the
table tests; a second one is killed in the score stage and continued, and must not redo the
finished stages and must end with the same tables.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.cli import main

SMALL = ["--num-prompts", "10", "--max-new-tokens", "24", "--epochs", "25", "--n-boot", "100", "--n-boot-p", "500"]
TABLES = ("methods", "control", "rank_reordering", "reweighting", "geometry", "intervention", "claims")


def _invoke(args: list[str]):
    return CliRunner().invoke(main, ["reproduce", "beyond-temperature", "--preset", "ci", *SMALL, "--threads", "1", *args])


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory, data_dir: str) -> Path:
    out = tmp_path_factory.mktemp("study") / "ci"
    result = _invoke(["--out", str(out), "--data-dir", data_dir])
    assert result.exit_code == 0, result.output
    return out


def test_every_table_and_the_report(study: Path) -> None:
    for name in TABLES:
        assert _rows(study / "tables" / f"{name}.csv"), name
    claims = _rows(study / "tables" / "claims.csv")
    assert list(claims[0])[:7] == ["claim", "statistic", "ci_low", "ci_high", "p", "p_holm", "verdict"]
    assert {c["verdict"] for c in claims} <= {"holds", "contradicted", "not shown"}
    geometry = _rows(study / "tables" / "geometry.csv")
    assert list(geometry[0])[:6] == ["layer", "block", "final", "pr_base", "pr_hyperfit", "delta_dim"]
    assert [g["final"] for g in geometry] == ["False"] * (len(geometry) - 1) + ["True"]
    assert len(geometry) == 6  # stories260K: embeddings + 5 blocks
    variants = {r["variant"] for r in _rows(study / "tables" / "intervention.csv")}
    assert variants == {"base", "hyperfitted", "base + hyperfitted final block", "hyperfitted + base final block",
                        "hyperfitted, projected", "late-lora-no-final", "final-lora"}
    methods = {r["method"] for r in _rows(study / "tables" / "methods.csv")}
    assert methods == {"full", "lora", "late-lora", "late-lora-no-final", "final-lora"}
    settings = json.loads((study / "settings.json").read_text())
    assert settings["settings"]["num_prompts"] == 10 and settings["preset"] == "ci"
    assert set(settings["stage_seconds"]) == {"hyperfit", "decode", "score", "judge", "mechanism", "intervention",
                                              "statistics"}
    assert not (study / "tables" / "judge.csv").exists() and "No judge was given" in (study / "report.md").read_text()
    report = (study / "report.md").read_text()
    for heading in ("1. Hyperfit", "2-3. Decode and score", "4. Mechanism", "5. Intervention", "6. Claims"):
        assert heading in report
    page = (study / "report.html").read_text()
    assert "data:image/png;base64," in page and "<img" in page and "src='plots/" not in page


def test_delta_dim_of_the_unmodified_model_matches_geometry(study: Path) -> None:
    """The intervention table's 'hyperfitted' row is the geometry table's final layer."""
    final = _rows(study / "tables" / "geometry.csv")[-1]
    row = next(r for r in _rows(study / "tables" / "intervention.csv") if r["variant"] == "hyperfitted")
    assert float(row["delta_dim"]) == pytest.approx(float(final["delta_dim"]), rel=1e-9)
    # the paired base rows of every Late-Stage LoRA variant are the same base states
    assert float(row["pr_final_base"]) == pytest.approx(float(final["pr_base"]), rel=1e-9)


def test_holm_column_is_holm_of_p(study: Path) -> None:
    from bench.reproduce.claims import holm

    claims = _rows(study / "tables" / "claims.csv")
    ps = [float(c["p"]) for c in claims]
    assert [float(c["p_holm"]) for c in claims] == pytest.approx(holm(ps), rel=1e-5)


def test_a_killed_study_resumes_without_redoing_finished_stages(study: Path, tmp_path: Path, data_dir: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.hyperfit.train as train_module
    from bench.reproduce import decoding

    out = tmp_path / "killed"
    real_run, calls = decoding._run, {"score": 0}

    def dies_in_scoring(study_, cond, seed, score):
        if score:
            calls["score"] += 1
            if calls["score"] == 3:
                raise KeyboardInterrupt  # as a kill in the middle of the score stage
        return real_run(study_, cond, seed, score)

    monkeypatch.setattr(decoding, "_run", dies_in_scoring)
    result = _invoke(["--out", str(out), "--data-dir", data_dir])
    assert result.exit_code != 0 and not (out / "stages" / "score.json").exists()
    assert (out / "stages" / "decode.json").exists() and (out / "tables" / "methods.csv").exists()
    store_before = {p.name: p.stat().st_mtime_ns for p in (out / "runs").glob("*/generations.jsonl")}

    monkeypatch.setattr(decoding, "_run", real_run)
    trained: list[str] = []
    real_train = train_module.train
    monkeypatch.setattr(train_module, "train", lambda *a, **k: trained.append(str(a[2])) or real_train(*a, **k))
    generated = []
    monkeypatch.setattr(decoding, "decode_stage", lambda s: generated.append(1) or {})
    result = _invoke(["--out", str(out), "--data-dir", data_dir])
    assert result.exit_code == 0, result.output
    assert "stage hyperfit: done before" in result.output and "stage decode: done before" in result.output
    assert not generated
    # only the intervention's two LoRAs are trained, never the finished hyperfits again
    assert sorted(Path(t).name for t in trained) == ["final-lora-s0", "late-lora-no-final-s0"]
    assert {p.name: p.stat().st_mtime_ns for p in (out / "runs").glob("*/generations.jsonl")} == store_before
    for name in ("control", "geometry", "intervention", "claims"):
        assert _rows(out / "tables" / f"{name}.csv") == _rows(study / "tables" / f"{name}.csv"), name


def _distinct_words(user: str, label: str, end: str) -> int:
    return len(set(user.split(f"[Continuation {label}]\n")[1].split(end)[0].split()))


def prefers_varied(user: str) -> str:
    """A consistent judge: the continuation with more distinct words wins, whatever its position."""
    a, b = _distinct_words(user, "A", "\n\n[Continuation B]"), _distinct_words(user, "B", "\n\nThink briefly")
    return "Verdict: " + ("A" if a > b else "B" if b > a else "tie")


def test_a_judge_given_later_redoes_only_the_judge_and_the_claims(study: Path, tmp_path: Path, data_dir: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from test_judge import FakeOpenAI

    from bench.store import RunDir

    out = tmp_path / "judged"
    shutil.copytree(study, out, ignore=shutil.ignore_patterns("checkpoints"))
    server = FakeOpenAI(prefers_varied)
    secret = "sk-study-judge-never-written-7"
    monkeypatch.setenv("BENCH_TEST_JUDGE_KEY", secret)
    judge = ["--judge-url", server.url, "--judge-model", "judge-x", "--judge-key-env", "BENCH_TEST_JUDGE_KEY"]
    try:
        result = _invoke(["--out", str(out), "--data-dir", data_dir, *judge])
        assert result.exit_code == 0, result.output
        for name in ("hyperfit", "decode", "score", "mechanism", "intervention"):
            assert f"stage {name}: done before" in result.output
        assert "stage judge: running" in result.output and "stage statistics: running" in result.output
        rows = {r["opponent"]: r for r in _rows(out / "tables" / "judge.csv")}
        asked = server.requests
        assert asked > 0
        # the win rate of Late-Stage LoRA greedy over base greedy, recomputed from the texts themselves
        score = json.loads((out / "stages" / "score.json").read_text())["runs"]
        texts = {r["run_id"]: {x["prompt_id"]: x["continuation"] for x in RunDir(out / "runs" / r["run_id"]).records()}
                 for r in score}
        base = next(r["run_id"] for r in score if r["condition"] == "base greedy")
        refs = [r["run_id"] for r in score if r["condition"] == "greedy-hyperfit" and r["method"] == "late-lora"]
        points = []
        for ref in refs:
            for pid, text in texts[ref].items():
                a, b = len(set(text.split())), len(set(texts[base][pid].split()))
                points.append(1.0 if a > b else 0.0 if b > a else 0.5)
        row = rows["base greedy"]
        assert float(row["win_rate"]) == pytest.approx(sum(points) / len(points))
        assert int(row["pairs"]) == len(points) and int(row["runs"]) == len(refs) and row["invalid"] == "0"
        assert float(row["ci_low"]) <= float(row["win_rate"]) <= float(row["ci_high"])
        assert {"top-p", "base T* (global)", "greedy-hyperfit (full)", "contrastive"} <= set(rows)
        claims = _rows(out / "tables" / "claims.csv")
        before = _rows(study / "tables" / "claims.csv")
        judged = [c for c in claims if c["claim"].startswith("The judge (judge-x) prefers")]
        assert len(judged) == 3 and len(claims) == len(before) + 3
        assert [c["claim"] for c in claims[:len(before)]] == [c["claim"] for c in before]
        assert "Pairwise judge" in (out / "report.md").read_text()
        settings = json.loads((out / "settings.json").read_text())
        assert settings["settings"]["judge_url"] == server.url and f"Bearer {secret}" in server.auth
        for path in (p for p in out.rglob("*") if p.is_file() and p.suffix in (".json", ".jsonl", ".md", ".csv", ".html")):
            assert secret not in path.read_text(encoding="utf-8", errors="replace"), path

        result = _invoke(["--out", str(out), "--data-dir", data_dir, *judge])  # the same judge: nothing redone
        assert result.exit_code == 0 and "stage judge: done before" in result.output and server.requests == asked
    finally:
        server.stop()
    result = _invoke(["--out", str(out), "--data-dir", data_dir])  # the judge dropped: its table and claims go
    assert result.exit_code == 0, result.output
    assert not (out / "tables" / "judge.csv").exists()
    assert _rows(out / "tables" / "claims.csv") == _rows(study / "tables" / "claims.csv")


def test_a_folder_of_another_study_is_refused(study: Path, tmp_path: Path, data_dir: str) -> None:
    copy = tmp_path / "other"
    shutil.copytree(study, copy, ignore=shutil.ignore_patterns("runs", "checkpoints", "work"))
    before = (copy / "settings.json").read_text()
    result = _invoke(["--out", str(copy), "--data-dir", data_dir, "--sampling-seeds", "3"])
    assert result.exit_code == 2
    assert "holds a study with other settings" in result.output and "sampling_seeds" in result.output
    assert (copy / "settings.json").read_text() == before


@pytest.mark.parametrize("args, message", [
    (["--num-prompts", "1"], "--num-prompts must be at least 2"),
    (["--late-layers", "1"], "--late-layers must be at least 2"),
    (["--alphas", "x"], "comma-separated list"),
    (["--model", "/nonexistent/model"], "/nonexistent/model"),
    (["--judge-url", "http://127.0.0.1:9/v1"], "--judge-url needs --judge-model"),
    (["--judge-local", "/nonexistent/judge"], "/nonexistent/judge"),
])
def test_bad_options_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    result = _invoke(["--out", str(tmp_path / "s"), *args])
    assert result.exit_code == 2 and message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "s" / "stages").exists()
