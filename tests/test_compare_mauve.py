"""``bench compare`` on MAUVE: a paired bootstrap over prompts whose replicates also draw the k-means
seed, so the interval holds MAUVE's spread over seeds; on stories260K's features of real text."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("mauve", reason="needs mauve-text: pip install 'decbench[mauve]'")

from test_model_scorers import _lines  # noqa: E402

from bench.cli import main  # noqa: E402
from bench.publish.compare import compare_runs  # noqa: E402
from bench.run_scores import add_model_scores  # noqa: E402
from bench.scorers import mauve as mauve_scorer  # noqa: E402
from bench.specs import DecoderSpec, GenerationSpec, ModelSpec, RunSpec, SuiteSpec  # noqa: E402
from bench.store import RunStore  # noqa: E402

N = 30


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, data_dir: str, stories260k: str):
    """Three runs of one suite whose references are Grimm's tales: continuations from Grimm (close),
    from other Grimm lines (close too) and from WikiText (far); MAUVE scored on stories260K's features."""
    root = tmp_path_factory.mktemp("mauve-compare")
    grimm = _lines(Path(data_dir) / "pd-stories" / "grimms_fairy_tales_pg52521.txt", 400)
    wiki = _lines(Path(data_dir) / "wikitext" / "wiki.test.raw", N)
    refs = grimm[200:200 + N]
    texts = {"grimm": grimm[250:250 + N], "grimm-b": grimm[300:300 + N], "wiki": wiki}
    store = RunStore(root / "runs")
    settings = {"featurizer": stories260k, "cache_dir": str(root / "features"), "device": "cpu",
                "mauve_seeds": (1, 2, 3), "mauve_max_tokens": 64}
    folders = {}
    for name, conts in texts.items():
        spec = RunSpec(ModelSpec("m"), DecoderSpec(name, ()), SuiteSpec("jsonl", "v1", "p.jsonl"), GenerationSpec(8, 1, 0))
        run = store.open(spec, expected_records=N, device="cpu", resolved={})
        store.append(run, [{"run_id": spec.run_id, "prompt_id": f"p{i:02d}", "sample_index": 0, "prompt": f"Story {i}:",
                            "reference": refs[i], "continuation": c, "token_ids": None, "num_tokens": 8,
                            "finish_reason": "length", "decoder": name, "decoder_args": {}, "seed": None}
                           for i, c in enumerate(conts)])
        add_model_scores(run, ("mauve",), settings)
        folders[name] = run
    return folders


def _mauve_row(diffs):
    (row,) = [d for d in diffs if d.metric == "mauve"]
    return row


def test_mauve_gets_a_paired_interval_whose_point_is_the_scored_difference(runs) -> None:
    scored = {k: r.scores()["model_based"]["mauve"]["value"] for k, r in runs.items()}
    row = _mauve_row(compare_runs(runs["grimm"], runs["wiki"], n_boot=400, seed=0, mauve_boot=40)[0])
    assert row.diff == pytest.approx(scored["wiki"] - scored["grimm"], abs=1e-9)  # the same features, the same seeds
    assert (row.a, row.b) == (scored["grimm"], scored["wiki"])
    assert row.lo <= row.diff <= row.hi and row.hi < 0  # WikiText is far from Grimm's references
    assert row.p < 0.05 and row.verdict == "B worse"
    same = _mauve_row(compare_runs(runs["grimm"], runs["grimm"], n_boot=400, seed=0, mauve_boot=20)[0])
    assert (same.diff, same.lo, same.hi, same.p) == (0.0, 0.0, 0.0, 1.0)  # paired draws and seeds cancel exactly
    untested = _mauve_row(compare_runs(runs["grimm"], runs["wiki"], n_boot=400, seed=0, mauve_boot=0)[0])
    assert untested.lo is None and untested.verdict == "whole runs, no test"


def test_each_replicate_draws_one_kmeans_seed_for_both_runs(monkeypatch) -> None:
    """A stand-in MAUVE that is the k-means seed on B's side and 0 on A's: every replicate
    difference is the seed it drew, so the seeds' spread is in the replicates, paired."""
    rng = np.random.default_rng(1)
    prompts = [f"p{i}" for i in range(20)]

    def inputs(value: float):
        return mauve_scorer.MauveInputs(np.full((20, 4), value), rng.normal(size=(20, 4)), prompts, prompts, {}, "", "cpu", 0)

    monkeypatch.setattr(mauve_scorer, "_one_mauve", lambda p, q, s, seed: float(seed) if p[0, 0] == 1 else 0.0)
    settings = mauve_scorer.MauveSettings(seeds=(3, 5, 11))
    point, reps = mauve_scorer.paired_replicates(inputs(0.0), inputs(1.0), prompts, settings, 300, seed=0)
    assert point == pytest.approx(19 / 3)  # the mean over the seeds, as scored
    assert set(reps.tolist()) == {3.0, 5.0, 11.0}
    assert all(abs(np.mean(reps == s) - 1 / 3) < 0.1 for s in (3, 5, 11))


def test_compare_cli_shows_the_mauve_interval_and_refuses_bad_counts(runs) -> None:
    a, b = str(runs["grimm"].path), str(runs["grimm-b"].path)
    result = CliRunner().invoke(main, ["compare", a, b, "--n-boot", "300", "--mauve-boot", "20"])
    assert result.exit_code == 0, result.output
    (line,) = [x for x in result.output.splitlines() if x.strip().startswith("│ mauve") or x.strip().startswith("mauve")]
    assert "whole runs" not in line
    many = CliRunner().invoke(main, ["compare", a, b, str(runs["wiki"].path), "--n-boot", "300", "--mauve-boot", "10",
                                     "--metric", "mauve"])
    assert many.exit_code == 0, many.output
    assert "mauve" in many.output and "whole runs" not in many.output
    bad = CliRunner().invoke(main, ["compare", a, b, "--mauve-boot", "-1"])
    assert bad.exit_code == 2 and bad.output.strip().splitlines() == ["error: --mauve-boot must be in 0..1,000,000, got -1"]


def test_mauve_of_other_settings_is_not_tested(runs, stories260k, tmp_path: Path) -> None:
    add_model_scores(runs["wiki"], ("mauve",), {"featurizer": stories260k, "cache_dir": str(tmp_path), "device": "cpu",
                                                 "mauve_seeds": (1,), "mauve_max_tokens": 64})
    row = _mauve_row(compare_runs(runs["grimm"], runs["wiki"], n_boot=100, seed=0)[0])
    assert row.lo is None and row.verdict == "whole runs, no test (scored with other MAUVE settings)"
    assert not math.isnan(row.diff)
