"""The Ray executor on a local Ray instance started here: same store and leaderboard as the local
executor, a task whose worker dies is retried and resumes, bad addresses exit 2 before any work.

Needs Ray (CI: ``pip install 'ray>=2.30'``, CPU only); skipped when it is not installed.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'ray>=2.30')")

PROMPTS = ["Once upon a time", "The little dog", "Lily and Tom went to the park", "One day, a bird", "Tim had a red ball"]
DECODERS = ("greedy", "top-p:p=0.9", "temperature:t=0.8")


@pytest.fixture(scope="module")
def local_ray():
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
             runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}})
    # Test-defined task functions must travel by value: workers cannot import this test module.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def suite_file(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("suite") / "prompts.jsonl"
    path.write_text("".join(json.dumps({"id": f"p{i}", "prompt": p}) + "\n" for i, p in enumerate(PROMPTS)))
    return str(path)


def _options(model: str, suite: str, out: Path, **kw):
    from bench.planning import RunOptions
    from bench.specs import GenerationSpec

    return RunOptions(models=(model,), decoders=DECODERS, suites=(suite,), out=str(out),
                      generation=GenerationSpec(max_new_tokens=8, samples_per_prompt=2, seed=3), batch_size=4,
                      device="cpu", dtype="float32", **kw)


def _records(out: Path) -> dict[str, list]:
    from bench.store import RunStore

    return {r.run_id: sorted((x["prompt_id"], x["sample_index"], x["token_ids"]) for x in r.records())
            for r in RunStore(out).runs()}


def crash_once_task(planned, options):
    """Dies (like a killed worker) after the first batch of its first attempt; then runs normally."""
    from bench.generation import Backends
    from bench.generation import generate
    from bench.executors.ray import run_task
    from bench.store import RunStore

    marker = Path(options.out).parent / f"crashed-{planned.spec.run_id}"
    if marker.exists():
        return run_task(planned, options)
    marker.touch()
    generate(planned, Backends(options), RunStore(options.out), batch_size=3, on_records=lambda n: os._exit(1))
    raise AssertionError("unreachable: the worker exits after its first batch")


@pytest.fixture(scope="module")
def local_sweep(stories260k, suite_file, tmp_path_factory) -> Path:
    """The sweep run by the local executor: the reference for the Ray runs."""
    from bench.sweep import execute
    from bench.planning import plan

    local = tmp_path_factory.mktemp("local") / "runs"
    execute(plan(_options(stories260k, suite_file, local)), _options(stories260k, suite_file, local))
    return local


def test_ray_sweep_equals_the_local_sweep(local_ray, local_sweep, stories260k, suite_file, tmp_path):
    from bench.sweep import execute
    from bench.executors.ray import generate_on_ray
    from bench.planning import plan

    local, remote = local_sweep, tmp_path / "ray"
    ray_options = _options(stories260k, suite_file, remote, executor="ray")
    execute(plan(ray_options), ray_options)
    assert _records(local) == _records(remote) and len(_records(local)) == len(DECODERS)
    assert (local / "leaderboard.csv").read_text() == (remote / "leaderboard.csv").read_text()
    assert generate_on_ray(plan(ray_options), ray_options) == []  # complete runs start no task


def test_a_dying_task_is_retried_and_resumes_from_the_store(local_ray, local_sweep, stories260k, suite_file, tmp_path):
    from dataclasses import replace

    from bench.executors.ray import generate_on_ray
    from bench.planning import plan

    remote = tmp_path / "ray"
    options = replace(_options(stories260k, suite_file, remote, executor="ray"), decoders=("top-p:p=0.9",))
    results = generate_on_ray(plan(options), options, task=crash_once_task)
    assert len(results) == 1 and len(list(tmp_path.glob("crashed-*"))) == 1
    # The retry generated only what the dead attempt had not appended (its first batch of 3 survived).
    assert results[0][1] == 2 * len(PROMPTS) - 3
    (run_id, records), = _records(remote).items()
    assert records == _records(local_sweep)[run_id]  # no duplicates, nothing missing, same tokens


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_ray_address_exits_2_before_any_work(stories260k, suite_file, tmp_path):
    from bench.cli import main

    out = tmp_path / "runs"
    result = CliRunner().invoke(main, ["run", "--executor", "ray", "--ray-address", f"127.0.0.1:{_closed_port()}",
                                       "--model", stories260k, "--suite", suite_file, "--decoder", "greedy",
                                       "--out", str(out)])
    assert result.exit_code == 2 and "cannot reach the Ray cluster" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not out.exists()
    local = CliRunner().invoke(main, ["run", "--ray-address", "127.0.0.1:1", "--model", stories260k,
                                      "--suite", suite_file, "--decoder", "greedy", "--out", str(out)])
    assert local.exit_code == 2 and "--ray-address needs --executor ray" in local.output


def failing_task(planned, options):
    from bench.errors import BenchError

    raise BenchError(f"bad input in {planned.spec.decoder.name}")


def test_a_task_error_comes_back_as_one_line(local_ray, stories260k, suite_file, tmp_path):
    from dataclasses import replace

    from bench.errors import BenchError
    from bench.executors.ray import generate_on_ray
    from bench.planning import plan

    options = replace(_options(stories260k, suite_file, tmp_path / "ray", executor="ray"), decoders=("greedy",))
    with pytest.raises(BenchError, match="^bad input in greedy$"):  # not retried, not a RayTaskError trace
        generate_on_ray(plan(options), options, task=failing_task)
