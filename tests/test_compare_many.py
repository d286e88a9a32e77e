"""``bench compare`` over three or more runs: every pair, Holm-corrected, and a Pareto ranking (issue 25, part 4)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.cli import main
from bench.publish.compare_many import holm, pareto_ranks


def test_holm_matches_the_step_down_by_hand() -> None:
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == [1.0, 1.0] and holm([]) == []


def test_pareto_ranks_peel_the_fronts() -> None:
    points = [(1, 1), (2, 2), (3, 1), (1, 3), (0, 0)]
    assert pareto_ranks(points, (True, True)) == [2, 1, 1, 1, 3]
    assert pareto_ranks(points, (True, False)) == [2, 2, 1, 3, 1]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("many")
    prompts = root / "p.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"ba{i} kot"}) + "\n" for i in range(30)))
    result = CliRunner().invoke(main, ["run", "--backend", "fake", "--suite", str(prompts), "--decoder", "greedy",
                                       "--decoder", "top-k:k=3", "--decoder", "temperature:t=1.5",
                                       "--max-new-tokens", "20", "--out", str(root / "runs")])
    assert result.exit_code == 0, result.output
    return root


def test_three_runs_give_three_pairs_holm_corrected(store: Path) -> None:
    runs = sorted(str(p.parent) for p in (store / "runs").glob("*/header.json"))
    out = store / "pairs.csv"
    result = CliRunner().invoke(main, ["compare", *runs, "--n-boot", "500", "--csv", str(out)])
    assert result.exit_code == 0, result.output
    assert "3 runs, 3 pairs" in result.stdout and "Pareto rank on the front of rep-2 against diversity" in result.stdout
    with open(out) as f:
        rows = list(csv.DictReader(f))
    diversity = [r for r in rows if r["metric"] == "diversity"]
    assert len(diversity) == 3 and len({(r["A"], r["B"]) for r in diversity}) == 3
    ps = [float(r["p"]) for r in diversity]
    assert [float(r["p_holm"]) for r in diversity] == pytest.approx(holm(ps))
    assert all(float(r["p_holm"]) >= float(r["p"]) for r in rows if r["p"])
    # each pair equals the two-run comparison of that pair
    two = CliRunner().invoke(main, ["compare", runs[0], runs[1], "--n-boot", "500", "--csv", str(store / "two.csv")])
    assert two.exit_code == 0, two.output
    with open(store / "two.csv") as f:
        first = {r["metric"]: r for r in csv.DictReader(f)}
    pair = next(r for r in diversity if r["A"] == diversity[0]["A"] and r["B"] == diversity[0]["B"])
    assert float(pair["B-A"]) == pytest.approx(float(first["diversity"]["B-A"]), rel=1e-5)
    assert float(pair["p"]) == pytest.approx(float(first["diversity"]["p"]), rel=1e-5)


def test_one_run_or_an_unknown_metric_is_one_line(store: Path) -> None:
    runs = sorted(str(p.parent) for p in (store / "runs").glob("*/header.json"))
    for argv, needle in ((["compare", runs[0]], "needs two runs or more"),
                         (["compare", *runs, "--metric", "bleu", "--n-boot", "50"], "--metric bleu: not a metric")):
        result = CliRunner().invoke(main, argv)
        assert result.exit_code == 2 and needle in result.stderr and len(result.stderr.splitlines()) == 1, result.output


def _judged(path: Path, a: Path, b: Path, wins_a: int, wins_b: int, ties: int = 0) -> str:
    outcomes = ["a"] * wins_a + ["b"] * wins_b + ["tie"] * ties
    path.write_text(json.dumps({"run_a": a.name, "run_b": b.name, "outcomes": [
        {"prompt_id": f"p{i}", "sample_index": 0, "outcome": o} for i, o in enumerate(outcomes)]}))
    return str(path)


def test_bradley_terry_orders_the_runs_by_their_judged_wins(store: Path) -> None:
    runs = sorted((p.parent for p in (store / "runs").glob("*/header.json")), key=lambda p: p.name)
    a, b, c = runs
    files = [_judged(store / "ab.json", a, b, 20, 5, 5), _judged(store / "bc.json", b, c, 18, 6, 6),
             _judged(store / "ac.json", a, c, 25, 2, 3)]
    judged = [f for x in files for f in ("--judged", x)]
    result = CliRunner().invoke(main, ["compare", *map(str, runs), "--n-boot", "200", *judged])
    assert result.exit_code == 0, result.output
    lines = result.stdout.split("Bradley-Terry ranking")[1].splitlines()[1:4]
    from bench.store import RunDir

    label = {r: f"{RunDir(r).spec().model.label} {RunDir(r).spec().decoder.label}" for r in runs}
    assert [line.split("]  ")[1] for line in lines] == [label[a], label[b], label[c]]
    strengths = [float(line.split()[0]) for line in lines]
    assert strengths[0] > strengths[1] > strengths[2] and sum(strengths) == pytest.approx(0, abs=1e-6)


def test_two_runs_reduce_to_the_closed_form() -> None:
    import numpy as np

    from bench.publish.compare_many import PRIOR_TIES, bradley_terry

    wins = np.array([[0.0, 12.0], [4.0, 0.0]])
    theta = bradley_terry(wins, np.array([[0, 1], [1, 0]]))
    assert theta[0] - theta[1] == pytest.approx(np.log((12 + PRIOR_TIES / 2) / (4 + PRIOR_TIES / 2)), rel=1e-6)


def test_judged_pairs_that_do_not_connect_the_runs_are_refused(store: Path) -> None:
    runs = sorted((p.parent for p in (store / "runs").glob("*/header.json")), key=lambda p: p.name)
    only = _judged(store / "ab-only.json", runs[0], runs[1], 3, 2)
    result = CliRunner().invoke(main, ["compare", *map(str, runs), "--n-boot", "50", "--judged", only])
    assert result.exit_code == 2 and "do not connect every run" in result.stderr, result.output
    result = CliRunner().invoke(main, ["compare", str(runs[0]), str(runs[1]), "--judged", only])
    assert result.exit_code == 2 and "--judged ranks three runs or more" in result.stderr
