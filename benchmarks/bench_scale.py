"""How the harness's own costs grow with the number of records (issue 23), on the fake backend.

    python benchmarks/bench_scale.py --sizes 1000,10000 [--parts run,compare] [--n-boot 20000]

For each size N (records, one per prompt, 64 words each), as separate processes, each timed with
``/usr/bin/time`` (wall seconds, CPU seconds, peak memory):
- ``run``: ``bench run`` of N records; ``rerun``: the same command on the finished store;
  ``resume``: after the store's records are cut to half (a torn last line, as after kill -9);
- ``compare``: ``bench compare`` of two such runs (greedy and top-k) with ``--n-boot`` replicates;
- ``bootstrap``: in this process, seconds per replicate of the corpus metrics, exact (every shared
  n-gram looked up) against the shortcut that counts the n-grams no resample can miss; the ratio
  is the speed-up, measured in the same run.

Run it alone on an idle machine (``uptime`` load under 0.5).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(argv: list[str]) -> dict[str, float]:
    """Wall, CPU seconds and peak MB of one command (which must succeed)."""
    out = subprocess.run(["/usr/bin/time", "-f", "%e %U %S %M", *argv], capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{out.stderr[-2000:]}")
    wall, user, system, peak_kb = out.stderr.strip().splitlines()[-1].split()
    return {"wall_s": float(wall), "cpu_s": float(user) + float(system), "peak_mb": int(peak_kb) / 1024}


def bench(*args: str) -> list[str]:
    return [sys.executable, "-m", "bench.cli", *args]


def suite(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"ba{i} kot mi"}) + "\n" for i in range(n)))
    return path


def measure_store(n: int, work: Path, parts: set[str], n_boot: int) -> dict[str, dict[str, float]]:
    prompts = suite(work / f"prompts-{n}.jsonl", n)
    store = work / f"runs-{n}"
    run = bench("run", "--backend", "fake", "--suite", str(prompts), "--decoder", "greedy", "--decoder", "top-k",
                "--max-new-tokens", "64", "--batch-size", "256", "--out", str(store))
    results = {}
    if parts & {"run", "compare"}:
        results["run (2 runs)"] = timed(run)
    if "run" in parts:
        results["rerun, all stored"] = timed(run)
        for gens in store.glob("*/generations.jsonl"):
            data = gens.read_bytes()
            gens.write_bytes(data[: len(data) // 2])  # mid-line: a torn last line, as after kill -9
            (gens.parent / "scores.json").unlink(missing_ok=True)
        results["resume from 50%"] = timed(run)
    if "compare" in parts:
        greedy, topk = sorted(p.parent for p in store.glob("*/header.json"))
        results[f"compare, {n_boot} replicates"] = timed(bench("compare", str(greedy), str(topk),
                                                               "--n-boot", str(n_boot)))
    return results


def measure_bootstrap(n: int, replicates: int = 20) -> dict[str, float]:
    import numpy as np

    from bench.backends.fake import WORDS
    from bench.scorers.repetition import CorpusResampler
    from bench.stats import resample_counts

    rng = random.Random(0)
    texts = [" ".join(rng.choice(WORDS) for _ in range(64)) for _ in range(n)]
    ids = [f"p{i}" for i in range(n)]
    out = {}
    for label, exact in (("exact", True), ("shortcut", False)):
        corpus = CorpusResampler(texts, None, ids, exact=exact)
        counts = resample_counts(np.random.default_rng(0), replicates, corpus.n_prompts)
        start = time.perf_counter()
        corpus.replicate(counts)
        out[f"{label} ms/replicate"] = 1000 * (time.perf_counter() - start) / replicates
    out["speed-up"] = out["exact ms/replicate"] / out["shortcut ms/replicate"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--parts", default="run,compare,bootstrap")
    parser.add_argument("--n-boot", type=int, default=20_000)
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    print(f"load average {os.getloadavg()[0]:.2f}; fake backend; 64 words a record")
    with tempfile.TemporaryDirectory() as tmp:
        for n in map(int, args.sizes.split(",")):
            if parts & {"run", "compare"}:
                for name, r in measure_store(n, Path(tmp), parts, args.n_boot).items():
                    print(f"N={n:>8,} {name:<28} wall {r['wall_s']:7.1f} s  cpu {r['cpu_s']:7.1f} s  "
                          f"peak {r['peak_mb']:7.0f} MB", flush=True)
            if "bootstrap" in parts:
                r = measure_bootstrap(n)
                print(f"N={n:>8,} bootstrap: exact {r['exact ms/replicate']:.2f} ms/replicate, shortcut "
                      f"{r['shortcut ms/replicate']:.2f} ms/replicate: {r['speed-up']:.2f}x", flush=True)


if __name__ == "__main__":
    main()
