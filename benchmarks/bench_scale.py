"""How the harness's own costs grow with the number of records (issue 23), on the fake backend.

    python benchmarks/bench_scale.py [--parts run,resume-hf,compare,leaderboard,view,bootstrap]
        [--run-records 1000000] [--compare-records 100000] [--leaderboard-runs 1000,10000]
        [--n-boot 20000] [--view-records 1000000] [--hf-records 10000]

Every part is its own process, timed with ``/usr/bin/time`` (wall seconds, CPU seconds, peak
memory), and printed beside the issue's target:
- ``run``: ``bench run --decoder top-k`` of N records (one per prompt, up to 64 words each: the
  fake backend's most varied text); the same command on the finished store; and after the
  store's records are cut to half (a torn last line, as after kill -9) and its scores deleted,
  the resumed run, whose CPU time is given as a share of the fresh run's (the same run);
- ``compare``: ``bench compare`` of two runs of N records (greedy and top-k), ``--n-boot`` replicates;
- ``leaderboard``: ``bench leaderboard`` over R runs (a temperature grid of R values, 5 prompts
  each), its seconds and the size of its HTML page;
- ``view``: ``benchmarks/bench_view_scale.py`` (writing the viewer's folder, opening it in Chromium);
- ``bootstrap``: in this process, ms per replicate of the corpus metrics at the compare size,
  exact (every shared n-gram looked up) against the shortcut (the n-grams no resample can miss
  counted without a look), measured in the same run.

Run it alone on an idle machine (``uptime`` load under 0.5): it needs about 15 minutes and 3 GB
of disk in a temporary folder.
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
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"p{i}", "prompt": f"ba{i} kot mi"}) + "\n")
    return path


def show(label: str, r: dict[str, float], target: str = "") -> None:
    print(f"{label:<44} wall {r['wall_s']:7.1f} s  cpu {r['cpu_s']:7.1f} s  peak {r['peak_mb']:6.0f} MB  {target}",
          flush=True)


def check(ok: bool, text: str) -> str:
    return f"[{'meets' if ok else 'MISSES'} {text}]"


def cut_to_half(store: Path) -> None:
    for gens in store.glob("*/generations.jsonl"):
        with open(gens, "r+b") as f:
            f.truncate(gens.stat().st_size // 2)  # mid-line: a torn last line, as after kill -9
        (gens.parent / "scores.json").unlink(missing_ok=True)


def part_run(n: int, work: Path) -> None:
    prompts = suite(work / f"prompts-{n}.jsonl", n)
    run = bench("run", "--backend", "fake", "--suite", str(prompts), "--decoder", "top-k", "--max-new-tokens", "64",
                "--batch-size", "256", "--out", str(work / f"run-{n}"))
    fresh = timed(run)
    show(f"N={n:,} bench run (generate, score, leaderboard)", fresh,
         check(fresh["cpu_s"] <= 300 and fresh["peak_mb"] <= 2048, "<= 300 CPU s, <= 2048 MB"))
    again = timed(run)
    show(f"N={n:,} re-run, all stored", again, check(again["wall_s"] <= 10, "<= 10 s"))
    for scores in (work / f"run-{n}").glob("*/scores.json"):
        scores.unlink()
    rescored = timed(run)  # all records stored, none generated: what every resume does again
    show(f"N={n:,} scored again, nothing to generate", rescored)
    cut_to_half(work / f"run-{n}")
    resumed = timed(run)
    share = resumed["cpu_s"] / fresh["cpu_s"]
    show(f"N={n:,} resume from a torn 50%", resumed, check(share <= 0.6, f"<= 60% of fresh: {share:.0%}"))
    # the resume generates half the records and does the rest again: the least it could take is
    # (fresh - rescored) / 2 + rescored, however fast its reading of the stored half
    floor = ((fresh["cpu_s"] - rescored["cpu_s"]) / 2 + rescored["cpu_s"]) / fresh["cpu_s"]
    print(f"{'':<44} generation {fresh['cpu_s'] - rescored['cpu_s']:.1f} CPU s of the fresh run; a resume that "
          f"plans and scores all records again takes at least {floor:.0%} of it", flush=True)


def part_resume_hf(n: int, work: Path) -> None:
    """The resume on a real model (stories260K on the HF backend, CPU), where generation costs what it does."""
    model = ROOT.parent / "shared" / "models" / "stories260K"
    prompts = suite(work / f"prompts-hf-{n}.jsonl", n)
    run = bench("run", "--model", str(model), "--suite", str(prompts), "--decoder", "top-k", "--max-new-tokens", "64",
                "--batch-size", "64", "--out", str(work / f"hf-{n}"))
    fresh = timed(run)
    show(f"N={n:,} stories260K (HF, CPU) bench run", fresh)
    cut_to_half(work / f"hf-{n}")
    resumed = timed(run)
    share = resumed["cpu_s"] / fresh["cpu_s"]
    show(f"N={n:,} stories260K resume from a torn 50%", resumed, f"[{share:.0%} of fresh]")


def part_compare(n: int, work: Path, n_boot: int) -> None:
    prompts = suite(work / f"prompts-{n}.jsonl", n)
    store = work / f"compare-{n}"
    subprocess.run(bench("run", "--backend", "fake", "--suite", str(prompts), "--decoder", "greedy", "--decoder",
                         "top-k", "--max-new-tokens", "64", "--batch-size", "256", "--out", str(store)),
                   check=True, capture_output=True, cwd=ROOT)
    greedy, topk = sorted(p.parent for p in store.glob("*/header.json"))
    r = timed(bench("compare", str(greedy), str(topk), "--n-boot", str(n_boot)))
    show(f"N={n:,} bench compare, {n_boot:,} replicates", r, check(r["wall_s"] <= 30, "<= 30 s"))


def part_leaderboard(runs: int, work: Path) -> None:
    prompts = suite(work / "prompts-5.jsonl", 5)
    store = work / f"grid-{runs}"
    grid = "|".join(f"{0.05 + 1.9 * i / runs:.6f}" for i in range(runs))
    subprocess.run(bench("run", "--backend", "fake", "--suite", str(prompts), "--decoder", f"temperature:t={grid}",
                         "--max-new-tokens", "8", "--out", str(store)), check=True, capture_output=True, cwd=ROOT)
    r = timed(bench("leaderboard", str(store), "--out", str(work / f"board-{runs}" / "lb")))
    html = sum(p.stat().st_size for p in (work / f"board-{runs}").glob("*.html")) / 2**20
    target = check(r["wall_s"] <= 10 and html <= 3, "<= 10 s, <= 3 MB") if runs <= 1000 else "[finishes]"
    show(f"{runs:,} runs: bench leaderboard, {html:.2f} MB HTML", r, target)


def part_bootstrap(n: int, replicates: int = 64) -> None:
    import numpy as np

    from bench.backends.fake import WORDS
    from bench.scorers.repetition import CorpusResampler
    from bench.stats import resample_counts

    rng = random.Random(0)
    texts = [" ".join(rng.choice(WORDS[:50]) for _ in range(rng.randint(4, 64))) for _ in range(n)]
    out = {}
    for label, exact in (("exact", True), ("shortcut", False)):
        corpus = CorpusResampler(texts, None, exact=exact)
        counts = resample_counts(np.random.default_rng(0), replicates, corpus.n_prompts)
        start = time.perf_counter()
        corpus.replicate(counts)
        out[label] = 1000 * (time.perf_counter() - start) / replicates
    print(f"N={n:,} bootstrap: exact {out['exact']:.2f} ms/replicate, shortcut {out['shortcut']:.2f} ms/replicate: "
          f"{out['exact'] / out['shortcut']:.2f}x", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="run,resume-hf,compare,leaderboard,view,bootstrap")
    parser.add_argument("--hf-records", type=int, default=10_000)
    parser.add_argument("--run-records", type=int, default=1_000_000)
    parser.add_argument("--compare-records", type=int, default=100_000)
    parser.add_argument("--leaderboard-runs", default="1000,10000")
    parser.add_argument("--view-records", type=int, default=1_000_000)
    parser.add_argument("--n-boot", type=int, default=20_000)
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    print(f"load average {os.getloadavg()[0]:.2f}; fake backend", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if "run" in parts:
            part_run(args.run_records, work)
        if "resume-hf" in parts:
            part_resume_hf(args.hf_records, work)
        if "compare" in parts:
            part_compare(args.compare_records, work, args.n_boot)
        if "leaderboard" in parts:
            for runs in map(int, args.leaderboard_runs.split(",")):
                part_leaderboard(runs, work)
        if "bootstrap" in parts:
            part_bootstrap(args.compare_records)
    if "view" in parts:
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_view_scale.py"), "--records",
                        str(args.view_records)], check=True, cwd=ROOT)


if __name__ == "__main__":
    main()
