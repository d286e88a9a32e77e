"""Our repetition scorer vs SimCTG's reference implementation on the 1314 WikiText continuations.

    pip install --no-deps simctg==0.7        # once; its own dependency list does not install
    python benchmarks/bench_scorers.py [--repeats 7] [--boot 1000]

Asserts that both give the same rep-2/3/4 (SimCTG's 2-decimal percents) and bit-identical
diversity on the GPT2-XL generations and on the human references, times both in the same process
(best of ``--repeats`` interleaved runs each, after one warm-up), and prints the speed-up. Our timing covers
``score_texts``, which also computes distinct-1..4 and the word length that SimCTG does not.
Exits 1 when the numbers differ.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.scorers.repetition import bootstrap_ci, score_texts  # noqa: E402

SHARED = Path(os.environ.get("BENCH_SHARED", ROOT.parent / "shared"))
DATA = SHARED / "data" / "cd-benchmark" / "wikitext_gpt2-xl_contrastive_k5_alpha0.6.json"


def best_times(fns, repeats: int) -> list[float]:
    """Best wall time of each function; runs are interleaved so that both see the same machine load."""
    for fn in fns:
        fn()  # warm-up
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def compare(label: str, texts: list[str], reference_fn, repeats: int) -> float:
    ours = score_texts(texts)
    theirs = reference_fn(texts)
    mine = tuple(round(ours[f"rep-{n}"] * 100, 2) for n in (2, 3, 4)) + (ours["diversity"],)
    if mine != tuple(theirs):
        sys.exit(f"MISMATCH on {label}: ours {mine} vs simctg {tuple(theirs)}")
    t_ref, t_ours = best_times([lambda: reference_fn(texts), lambda: score_texts(texts)], repeats)
    print(f"{label:12s} n={len(texts)}  rep-2/3/4 = {mine[0]}/{mine[1]}/{mine[2]} %  "
          f"diversity = {mine[3]:.6f}  length-words = {ours['length-words']:.2f}")
    print(f"{'':12s} simctg {t_ref * 1e3:7.1f} ms   ours {t_ours * 1e3:6.1f} ms   "
          f"speed-up {t_ref / t_ours:.1f}x  (best of {repeats})")
    return t_ref / t_ours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per implementation")
    parser.add_argument("--boot", type=int, default=1000, help="bootstrap resamples to time (0: skip)")
    args = parser.parse_args()
    try:
        from simctg.evaluation import measure_repetition_and_diversity
    except ImportError:
        sys.exit("simctg is not installed: pip install --no-deps simctg==0.7")
    if not DATA.is_file():
        sys.exit(f"missing {DATA} (set BENCH_SHARED)")
    rows = json.loads(DATA.read_text(encoding="utf-8"))
    generations = [row["generated_result"]["0"] for row in rows]
    references = [row["reference_text"] for row in rows]
    speedups = [
        compare("generations", generations, measure_repetition_and_diversity, args.repeats),
        compare("references", references, measure_repetition_and_diversity, args.repeats),
    ]
    print(f"same numbers: yes   minimum speed-up: {min(speedups):.1f}x (target >= 5x)")
    if args.boot:
        start = time.perf_counter()
        ci = bootstrap_ci(generations, n_boot=args.boot)
        elapsed = time.perf_counter() - start
        low, high = ci["diversity"]
        print(f"bootstrap_ci: {args.boot} resamples of {len(generations)} texts in {elapsed:.2f} s; "
              f"diversity 95% CI [{low:.4f}, {high:.4f}]")


if __name__ == "__main__":
    main()
