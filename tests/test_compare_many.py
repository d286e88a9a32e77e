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
