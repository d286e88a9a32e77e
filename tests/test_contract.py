"""The decoder/backend contract: declarations, refusals, the registry, plugins, the fake backend.

The fake backend's tests run ``bench run`` in a subprocess where importing torch fails, so they
prove that planning, the store, resume and the leaderboard need no torch.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.backends import backend_class
from bench.decoding import Declaration, EngineParams, LogitsDecoder
from bench.errors import BenchError
from bench.registry import REGISTRY, decoder, get_decoder, suite
from bench.specs import declare, parse_decoder

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "tests" / "plugins" / "decbench-example-plugin"
NO_TORCH = ("import sys; sys.modules['torch'] = None; "  # any 'import torch' now raises ImportError
            "from bench.cli import main; sys.exit(main())")


def _bench(args: list[str], *, no_torch: bool = False, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-c", NO_TORCH, *args] if no_torch else [sys.executable, "-m", "bench.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


@pytest.fixture()
def prompts(tmp_path: Path) -> str:
    path = tmp_path / "p.jsonl"
    lines = [{"id": f"p{i}", "prompt": f"prompt number {i} about things", "reference": "a b c d e f g h"} for i in range(6)]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return str(path)


# ---------------------------------------------------------------------------------------------
# Declarations and refusals
# ---------------------------------------------------------------------------------------------
def test_declarations_come_from_the_decoder_not_its_name():
    assert declare(parse_decoder("top-p:p=0.9")) == Declaration("top-p:p=0.9,t=1.0", "logits", frozenset({"top_p"}))
    assert declare(parse_decoder("contrastive")).needs == "model"
    em = declare(parse_decoder("entropy-matched:target=1.0,mode=per-step"))
    assert em.features == {"transform"} and em.calibrates
    assert declare(parse_decoder("greedy-hyperfit")).on_hyperfit


def test_a_renamed_decoder_class_plans_and_runs_the_same():
    """Refusals read the declaration: a subclass under any name is judged by what it needs."""

    class SomethingElse(LogitsDecoder):
        pass

    @decoder("contract-test-renamed", description="greedy under another class name", sampling=False)
    def renamed() -> LogitsDecoder:
        return SomethingElse(EngineParams(temperature=0.0))

    try:
        decl = declare(parse_decoder("contract-test-renamed"))
        for name in ("hf", "vllm", "openai", "fake"):
            assert backend_class(name).refusal(decl) is None
        fake = backend_class("fake")("m")
        same = fake.continue_batch(["a b"], renamed(), max_new_tokens=5, seeds=[1])
        assert same[0].token_ids == fake.continue_batch(["a b"], parse_and_build("greedy"), max_new_tokens=5,
                                                        seeds=[2])[0].token_ids
    finally:
        REGISTRY.decoders.pop("contract-test-renamed")


def parse_and_build(text: str):
    from bench.specs import build_decoder

    return build_decoder(parse_decoder(text))


@pytest.mark.parametrize("text, backend, needle", [
    ("contrastive", "fake", "needs the model itself"),
    ("static-reweight", "openai", "logit_bias"),
    ("entropy-matched:target=1.0", "fake", "calibrates on local model weights"),
    ("greedy-hyperfit", "fake", "--hyperfit"),
])
def test_refusals_name_what_is_missing_and_who_can(text, backend, needle):
    reason = backend_class(backend).refusal(declare(parse_decoder(text)))
    assert needle in reason and "--backend hf" in reason and "\n" not in reason


def test_hf_runs_every_registered_decoder():
    from bench.registry import load_plugins

    for info in load_plugins().decoders.values():
        assert backend_class("hf").refusal(declare(parse_decoder(info.name))) is None


def test_engine_params_features():
    assert EngineParams().features() == frozenset()
    assert EngineParams(0.0, top_k=3, min_p=0.1).features() == {"temperature", "top_k", "min_p"}


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------
def test_a_name_registered_twice_is_an_error():
    with pytest.raises(ValueError, match="registered twice"):
        decoder("top-p", description="again", sampling=True)(lambda: None)
    with pytest.raises(ValueError, match="registered twice"):
        suite("wikitext", version="9", description="again")(lambda: None)
    assert get_decoder("top-p").description.startswith("nucleus")


def test_a_decoder_argument_given_twice_is_an_error():
    with pytest.raises(BenchError, match="argument 'p' is given twice"):
        parse_decoder("top-p:p=0.9,p=0.5")


def test_a_broken_entry_point_is_one_line(tmp_path):
    dist = tmp_path / "broken_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[decbench.decoders]\nbroken = no_such_module_anywhere\n")
    result = _bench(["decoders"], env={"PYTHONPATH": f"{REPO}{os.pathsep}{tmp_path}"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and "plugin 'broken'" in result.stderr


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The example plugin package, pip-installed into a folder that the subprocesses put on their path."""
    target = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                           "--disable-pip-version-check", "--target", str(target), str(PLUGIN)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return str(target)


def test_an_installed_plugin_decoder_is_listed_and_runs(installed_plugin, stories260k, prompts, tmp_path):
    env = {"PYTHONPATH": f"{REPO}{os.pathsep}{installed_plugin}"}
    listing = _bench(["decoders"], env=env)
    assert listing.returncode == 0 and "top-a" in listing.stdout
    out = tmp_path / "runs"
    run = _bench(["run", "--model", stories260k, "--suite", prompts, "--decoder", "top-a:a=0.3", "--decoder", "greedy",
                  "--max-new-tokens", "12", "--out", str(out)], env=env)
    assert run.returncode == 0, run.stderr
    records = [json.loads(line) for f in out.glob("*/generations.jsonl") for line in f.read_text().splitlines()]
    top_a = [r for r in records if r["decoder"] == "top-a"]
    assert len(top_a) == 6 and all(r["decoder_args"] == {"a": 0.3, "t": 1.0} and r["seed"] is not None for r in top_a)
    # Refused where the engine cannot apply its transform, with the backend that can.
    refused = _bench(["run", "--backend", "fake", "--model", "m", "--suite", prompts, "--decoder", "top-a",
                      "--out", str(tmp_path / "other")], env=env)
    assert refused.returncode == 2 and "--backend hf" in refused.stderr and not (tmp_path / "other").exists()


# ---------------------------------------------------------------------------------------------
# The fake backend: planning, store, resume and leaderboard without torch
# ---------------------------------------------------------------------------------------------
def _store_records(out: Path) -> dict[tuple[str, str, int], str]:
    records = {}
    for f in out.glob("*/generations.jsonl"):
        for line in f.read_text().splitlines():
            r = json.loads(line)
            records[(r["decoder"], r["prompt_id"], r["sample_index"])] = r["continuation"]
    return records


def test_fake_backend_runs_a_sweep_without_torch(prompts, tmp_path):
    out = tmp_path / "runs"
    args = ["run", "--backend", "fake", "--model", "fake-model", "--suite", prompts, "--decoder", "all",
            "--samples-per-prompt", "2", "--max-new-tokens", "20", "--out", str(out)]
    first = _bench([*args, "--batch-size", "4"], no_torch=True)
    assert first.returncode == 0, first.stderr
    assert "skipped contrastive" in first.stderr and "needs the model itself" in first.stderr
    ran = {json.loads((d / "header.json").read_text())["spec"]["decoder"]["name"] for d in out.iterdir() if d.is_dir()}
    assert ran == {"greedy", "temperature", "top-p", "top-k", "min-p"}  # what the fake can express
    board = (out / "leaderboard.csv").read_text()
    assert board.count("\n") >= 5 and "fake-model" in board
    again = _bench([*args, "--batch-size", "4"], no_torch=True)
    assert again.returncode == 0 and "0 records generated" in again.stdout
    # Resume after losing records, at another batch size: the same texts come back.
    whole = _store_records(out)
    for f in out.glob("*/generations.jsonl"):
        lines = f.read_text().splitlines(keepends=True)
        f.write_text("".join(lines[:3]) + lines[3][:10])  # three records and a torn line
    resumed = _bench([*args, "--batch-size", "5"], no_torch=True)
    assert resumed.returncode == 0, resumed.stderr
    assert _store_records(out) == whole
    greedy = [v for (d, _, i), v in whole.items() if d == "greedy"]
    assert len(greedy) == 12 and greedy != [v for (d, _, i), v in whole.items() if d == "temperature"]


def test_no_import_cycle_in_bench():
    """Module-level and function-level imports between bench modules form no cycle."""
    modules = {}
    for path in (REPO / "bench").rglob("*.py"):
        name = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bench"):
                deps.add(node.module)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.startswith("bench"))
        modules[name] = deps

    def owner(dep: str) -> str | None:  # "bench.x.y" may name a module or a package's attribute
        while dep and dep not in modules:
            dep = dep.rpartition(".")[0]
        return dep or None

    graph = {m: {owner(d) for d in deps} - {None, m} for m, deps in modules.items()}
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(d):] + [m, d]) if d in path
                                     else f"import cycle through {m} -> {d}")
            if d not in state:
                visit(d, path + [m])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])
