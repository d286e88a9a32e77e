"""benchmarks/gpu_check.py runs with only torch and transformers (its --tiny CPU mode)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BLOCKED = ("click", "rich", "pandas", "vllm", "ray", "peft", "matplotlib", "scipy", "sklearn", "mauve", "openai")
# The packages a bare GPU machine lacks are made absent, as if not installed (find_spec gives None).
RUN_BARE = f"""
import runpy, sys
from importlib.machinery import PathFinder
class Bare(PathFinder):
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.split('.')[0] in {BLOCKED!r}:
            return None
        return PathFinder.find_spec(name, path, target)
sys.meta_path[:] = [Bare if f is PathFinder else f for f in sys.meta_path]
sys.argv = ['gpu_check.py'] + sys.argv[1:]
runpy.run_path('benchmarks/gpu_check.py', run_name='__main__')
"""


def test_gpu_check_runs_tiny_on_cpu_with_only_torch_and_transformers(tmp_path: Path) -> None:
    out = tmp_path / "check.json"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", RUN_BARE, "--tiny", "--batches", "1,3", "--new-tokens", "6",
                           "--repeats", "1", "--json", str(out)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads(out.read_text())["results"]
    assert [(r["batch"], r["decoder"]) for r in results] == [
        (b, d) for b in (1, 3) for d in ("greedy", "top-p", "contrastive")]
    assert all(r["greedy_equal"] == "equal" for r in results if r["decoder"] == "greedy")
    assert all(r["ours_tok_s"] > 0 for r in results)
    assert all(r["ratio"] > 0 for r in results if r["decoder"] != "contrastive")
    assert "greedy token checks (eager step): all equal" in proc.stdout


def test_gpu_check_asks_for_a_gpu_without_tiny() -> None:
    import torch

    if torch.cuda.is_available():
        return
    proc = subprocess.run([sys.executable, "benchmarks/gpu_check.py"], cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=300)
    assert proc.returncode == 2 and "no CUDA device" in proc.stderr
