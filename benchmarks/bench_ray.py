"""The Ray executor's overhead against the local executor, on the same small sweep.

    python benchmarks/bench_ray.py [--prompts 20 --new-tokens 32 --repeats 3 --num-cpus 2]

Sweep: stories260K x {greedy, top-p:p=0.9, temperature:t=0.8} x one JSONL suite of ``--prompts``
prompts (openings of Grimm's fairy tales from shared/data/pd-stories), ``--new-tokens`` tokens,
one sample per prompt. Each measurement is a full ``plan`` + ``execute`` (generation, scoring,
leaderboard) into a fresh store. Three timings, interleaved over ``--repeats`` rounds, best of each:

* local: the local executor (one process, the model loaded once);
* ray cold: the Ray executor starting and stopping its own local Ray instance (what
  ``bench run --executor ray`` costs on one machine);
* ray warm: the Ray executor on an already running instance whose workers have run tasks before.

The leaderboards of the local and Ray stores are asserted identical.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BENCH_SHARED", REPO.parent / "shared"))
DECODERS = ("greedy", "top-p:p=0.9", "temperature:t=0.8")


def write_suite(path: Path, n: int) -> str:
    """``n`` prompts: the first ~120 characters of successive paragraphs of Grimm's fairy tales."""
    text = (SHARED / "data" / "pd-stories" / "grimms_fairy_tales_pg52521.txt").read_text(encoding="utf-8")
    paragraphs = [re.sub(r"\s+", " ", p).strip() for p in text.split("\n\n")]
    chosen = [p[:120].rsplit(" ", 1)[0] for p in paragraphs if len(p) > 200][:n]
    path.write_text("".join(json.dumps({"id": f"g{i}", "prompt": p}) + "\n" for i, p in enumerate(chosen)))
    return str(path)


def sweep(suite: str, out: Path, args: argparse.Namespace, executor: str) -> float:
    from bench.sweep import execute
    from bench.planning import RunOptions, plan
    from bench.specs import GenerationSpec

    options = RunOptions(models=(str(SHARED / "models" / "stories260K"),), decoders=DECODERS, suites=(suite,),
                         out=str(out), generation=GenerationSpec(args.new_tokens, 1, 0), batch_size=args.prompts,
                         device="cpu", dtype="float32", executor=executor)
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the leaderboard table
        execute(plan(options), options)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=20)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray instance")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray
    import torch
    from transformers.utils import logging as hf_logging

    torch.set_num_threads(1)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    times: dict[str, list[float]] = {"local": [], "ray cold": [], "ray warm": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        suite = write_suite(root / "grimm.jsonl", args.prompts)
        sweep(suite, root / "warmup", args, "local")  # imports, first model load
        for r in range(args.repeats):
            times["local"].append(sweep(suite, root / f"local{r}", args, "local"))
            times["ray cold"].append(sweep(suite, root / f"cold{r}", args, "ray"))
            ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                     runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}})
            try:
                sweep(suite, root / f"prewarm{r}", args, "ray")  # worker processes start and import torch once
                times["ray warm"].append(sweep(suite, root / f"warm{r}", args, "ray"))
            finally:
                ray.shutdown()
        for name in ("cold0", "warm0"):
            assert (root / "local0" / "leaderboard.csv").read_text() == (root / name / "leaderboard.csv").read_text(), name
    best = {k: min(v) for k, v in times.items()}
    print(f"sweep: stories260K x {len(DECODERS)} decoders x {args.prompts} prompts x {args.new_tokens} tokens, "
          f"Ray on {args.num_cpus} CPUs, best of {args.repeats}")
    for name, values in times.items():
        ratio = best[name] / best["local"]
        print(f"{name:9s} best {best[name]:6.2f} s  (all: {', '.join(f'{v:.2f}' for v in values)})  ratio {ratio:.2f}x")
    print("leaderboards: local == ray (identical CSV)")


if __name__ == "__main__":
    main()
