"""Decoder grids and sweep files give the same plan and store as the equivalent flags (fake backend)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.cli import main
from bench.errors import BenchError
from bench.grid import expand_grid
from bench.registry import load_plugins

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def prompts(tmp_path: Path) -> Path:
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"ba{i} kot", "reference": "mit lon re"}) + "\n"
                            for i in range(4)))
    return path


def bench(*args: str):
    return CliRunner().invoke(main, list(args))


def store(out: Path) -> dict[str, str]:
    """run id -> its records (the store's content, minus timings)."""
    result = {}
    for gen in sorted(out.glob("*/generations.jsonl")):
        lines = [json.loads(line) for line in gen.read_text().splitlines()]
        result[gen.parent.name] = json.dumps(sorted(({k: v for k, v in r.items() if k != "seconds"} for r in lines),
                                                    key=lambda r: (r["prompt_id"], r["sample_index"])))
    return result


def test_expand_grid() -> None:
    assert expand_grid("top-p:p=0.8|0.9|0.95") == ["top-p:p=0.8", "top-p:p=0.9", "top-p:p=0.95"]
    assert expand_grid("top-k:k=10|50,t=0.7|1.0") == ["top-k:k=10,t=0.7", "top-k:k=10,t=1.0",
                                                      "top-k:k=50,t=0.7", "top-k:k=50,t=1.0"]
    assert expand_grid("top-k:k=10,t=0.7|1.0") == ["top-k:k=10,t=0.7", "top-k:k=10,t=1.0"]
    assert expand_grid("greedy") == ["greedy"] and expand_grid("all") == ["all"]
    with pytest.raises(BenchError, match="empty value in the grid 'p=0.8||0.9'"):
        expand_grid("top-p:p=0.8||0.9")


def test_grid_flag_is_the_same_store_as_one_flag_per_value(tmp_path, prompts) -> None:
    common = ["run", "--model", "m", "--backend", "fake", "--suite", str(prompts), "--max-new-tokens", "6"]
    grid = bench(*common, "--out", str(tmp_path / "a"), "--decoder", "top-p:p=0.8|0.9|0.95", "--decoder",
                 "top-k:k=10|50,t=0.7|1.0")
    assert grid.exit_code == 0, grid.output
    flags = ["--decoder", "top-p:p=0.8", "--decoder", "top-p:p=0.9", "--decoder", "top-p:p=0.95"]
    flags += [a for k in (10, 50) for t in (0.7, 1.0) for a in ("--decoder", f"top-k:k={k},t={t}")]
    single = bench(*common, "--out", str(tmp_path / "b"), *flags)
    assert single.exit_code == 0, single.output
    a, b = store(tmp_path / "a"), store(tmp_path / "b")
    assert len(a) == 7 and a == b


def test_decoder_all_stays_every_decoder_once(tmp_path, prompts) -> None:
    result = bench("run", "--model", "m", "--backend", "fake", "--suite", str(prompts), "--out", str(tmp_path / "o"),
                   "--max-new-tokens", "3")  # --decoder all is the default
    assert result.exit_code == 0, result.output
    headers = [json.loads(h.read_text())["spec"]["decoder"] for h in (tmp_path / "o").glob("*/header.json")]
    names = [h["name"] for h in headers]
    assert len(names) == len(set(names))
    skipped = {line.split()[1].rstrip(":") for line in result.output.splitlines() if line.startswith("skipped ")}
    assert set(names) | skipped == set(load_plugins().decoders)


def test_sweep_file_is_the_same_store_as_the_flags(tmp_path, prompts) -> None:
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(f"""
models = ["m"]
suite = "{prompts}"
seeds = [0, 3]
lengths = [4, 6]
backend = "fake"
samples-per-prompt = 2
[decoders.greedy]
[decoders.top-p]
p = [0.8, 0.9]
[decoders.top-k]
k = 7
""")
    result = bench("run", "--config", str(sweep), "--out", str(tmp_path / "a"))
    assert result.exit_code == 0, result.output
    for seed in (0, 3):
        for length in (4, 6):
            flags = bench("run", "--model", "m", "--suite", str(prompts), "--backend", "fake", "--seed", str(seed),
                          "--max-new-tokens", str(length), "--samples-per-prompt", "2", "--out", str(tmp_path / "b"),
                          "--decoder", "greedy", "--decoder", "top-p:p=0.8|0.9", "--decoder", "top-k:k=7")
            assert flags.exit_code == 0, flags.output
    a, b = store(tmp_path / "a"), store(tmp_path / "b")
    assert len(a) == 2 * 2 * 4 and a == b
    assert (tmp_path / "a" / "leaderboard.csv").read_text() != ""


@pytest.mark.parametrize("text,message", [
    ("modles = ['m']", "unknown key 'modles'; did you mean 'models'?"),
    ("seed = 'zero'", "'seed' needs an integer, got 'zero'"),
    ("seeds = [0, 1.5]", "'seeds' needs an integer, got 1.5"),
    ("max_new_tokens = true", "'max_new_tokens' needs an integer, got True"),
    ("dtype = 'float8'", "'dtype' needs one of auto, float32, bfloat16, float16, got 'float8'"),
    ("models = [1]", "'models' needs a string or a list of strings, got [1]"),
    ("seeds = []", "'seeds' is an empty list"),
    ("seed = 1\nseeds = [2]", "'seeds' is given twice"),
    ("[decoders.top-p]\np = 'high'", "decoders: decoder 'top-p': parameter 'p' needs a float, got 'high'"),
    ("[decoders.top-p]\np = [0.8, 2.0]", "decoders: decoder 'top-p': p must be in (0, 1], got 2.0"),
    ("[decoders.top-pp]", "decoders: unknown decoder 'top-pp'; did you mean 'top-p'?"),
    ("[decoders]\ngreedy = 1", "decoders.greedy must be a table of arguments"),
    ("num_prompts = ", "not valid TOML"),
    ("out = 7", "'out' needs a string"),
])
def test_sweep_file_errors(tmp_path, prompts, text: str, message: str) -> None:
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(f'models = ["m"]\nsuites = ["{prompts}"]\nbackend = "fake"\n{text}\n'
                     if not text.startswith("models") else f'suites = ["{prompts}"]\n{text}\n')
    out = tmp_path / "runs"
    result = bench("run", "--config", str(sweep), "--out", str(out))
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {sweep}: "), result.output
    assert message in lines[0], lines[0]
    assert not out.exists()


def test_missing_sweep_file(tmp_path) -> None:
    result = bench("run", "--config", str(tmp_path / "nope.toml"))
    assert result.exit_code == 2 and result.output.strip() == f"error: --config {tmp_path / 'nope.toml'}: no such file"


def test_an_error_in_any_combination_stops_the_sweep_before_anything_runs(tmp_path, prompts) -> None:
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(f'models = ["m"]\nsuites = ["{prompts}"]\nbackend = "fake"\nlengths = [4, 0]\ndecoders = ["greedy"]\n')
    result = bench("run", "--config", str(sweep), "--out", str(tmp_path / "runs"))
    assert result.exit_code == 2 and "--max-new-tokens" in result.output
    assert not (tmp_path / "runs").exists()


def test_example_sweep_file_plans(data_dir) -> None:
    """The repository's example plans as documented (on the fake backend)."""
    from bench.cli import run, run_options
    from bench.grid import load_sweep, plan_sweep

    # The flags' values as the command line gives them; planning writes nothing, so the example's out is not touched.
    flags = dict(run.make_context("run", ["--backend", "fake", "--data-dir", data_dir]).params)
    flags.pop("config")
    variants = load_sweep(str(REPO / "sweeps" / "example.toml"), flags, run.params, {"backend", "data_dir"})
    plan = plan_sweep([run_options(v) for v in variants])
    labels = sorted({r.spec.decoder.label for r in plan.runs})
    assert len(labels) == 1 + 2 + 3 + 2 and len(plan.runs) == 2 * len(labels)
    assert {r.spec.generation.seed for r in plan.runs} == {0, 1}
    assert {len(r.prompts) for r in plan.runs} == {100}


def test_judge_pairs_runs_of_the_same_seed_and_length(tmp_path, prompts, monkeypatch) -> None:
    """--judge-against in a sweep compares each run with the opponent of its own seed and length."""
    from bench import run_scores

    pairs = []
    monkeypatch.setattr(run_scores, "add_judge_result",
                        lambda run, opponent, label, settings: pairs.append((run.spec(), opponent.spec())))
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(f'models = ["m"]\nsuites = ["{prompts}"]\nbackend = "fake"\nseeds = [0, 1]\nlengths = [3, 5]\n'
                     'decoders = ["greedy", "temperature"]\njudge_against = "greedy"\n'
                     'judge_url = "http://127.0.0.1:9/v1"\njudge_model = "judge"\n')
    result = bench("run", "--config", str(sweep), "--out", str(tmp_path / "runs"))
    assert result.exit_code == 0, result.output
    assert len(pairs) == 4
    for run, opponent in pairs:
        assert (run.decoder.name, opponent.decoder.name) == ("temperature", "greedy")
        assert run.generation == opponent.generation


def test_command_line_overrides_sweep_file(tmp_path, prompts) -> None:
    """``--config FILE --num-prompts 2`` shrinks the sweep: a note names the override, and the run
    header records the value applied (2), not the file's (4)."""
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(f'models = ["m"]\nsuites = ["{prompts}"]\nbackend = "fake"\nnum_prompts = 4\n'
                     'max_new_tokens = 3\n[decoders.greedy]\n')
    out = tmp_path / "runs"
    result = CliRunner().invoke(main, ["run", "--config", str(sweep), "--num-prompts", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"note: the command line's --num-prompts overrides 'num_prompts' in {sweep}" in result.output
    headers = [json.loads(p.read_text()) for p in out.glob("*/header.json")]
    assert len(headers) == 1 and headers[0]["spec"]["suite"]["num_prompts"] == 2
    assert sum(1 for _ in next(out.glob("*/generations.jsonl")).open()) == 2


def test_overridden_file_value_is_still_checked(tmp_path, prompts) -> None:
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(f'models = ["m"]\nsuites = ["{prompts}"]\nbackend = "fake"\nnum_prompts = "many"\n')
    result = bench("run", "--config", str(sweep), "--num-prompts", "2", "--out", str(tmp_path / "runs"))
    assert result.exit_code == 2 and "'num_prompts' needs an integer" in result.output, result.output
