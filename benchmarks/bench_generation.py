"""Our HF decoding loop against ``model.generate``: same model, batch, prompts and device, one run.

    python benchmarks/bench_generation.py [--layers 12 --hidden 768 --batch 16 --new-tokens 256 --repeats 3]
    python benchmarks/bench_generation.py --model ../shared/models/smollm2-135m-instruct --batch 1,8,32,64

Without ``--model`` the model is a randomly initialised GPT-2-small-shaped model (12 layers, 768
hidden, GPT-2 vocabulary), so no download is needed; speed does not depend on the weights' values.
``--model`` takes a local folder or a GGUF model (the real SmolLM2-135M). ``--batch`` may list
several sizes. Prints tokens/s of both, the ratio ours / generate for greedy and top-p, and the
peak resident memory of each side (see ``benchmarks/peak_memory.py``). With ``--repeats`` above 1
it also prints the median of the per-pair ratios (ours and generate timed back to back), which
cancels the drift of a shared machine better than the ratio of the two bests. Greedy tokens are
compared, so the comparison is like for like.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BENCH_SHARED", REPO.parent / "shared"))


def build_model(layers: int, hidden: int, out: Path) -> str:
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_layer=layers, n_embd=hidden, n_head=max(1, hidden // 64), n_positions=1024)
    GPT2LMHeadModel(config).save_pretrained(out)
    AutoTokenizer.from_pretrained(SHARED / "models" / "gpt2-tokenizer").save_pretrained(out)
    return str(out)


def prompts(batch: int) -> list[str]:
    import json

    data = json.loads((SHARED / "data" / "cd-benchmark" / "wikitext_gpt2-xl_contrastive_k5_alpha0.6.json").read_text())
    return [d["prefix_text"] for d in data[:batch]]


def time_ours(backend, texts, decoder, new_tokens):
    from bench.decoding import record_seed

    seeds = [record_seed(0, str(i), 0) for i in range(len(texts))]
    t0 = time.perf_counter()
    outs = backend.continue_batch(texts, decoder, max_new_tokens=new_tokens, seeds=seeds)
    return time.perf_counter() - t0, sum(len(o.token_ids) for o in outs), [o.token_ids for o in outs]


def time_generate(backend, texts, new_tokens, **sampling):
    enc = backend.tokenizer(texts, return_tensors="pt", padding=True)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = backend.model.generate(**enc, max_new_tokens=new_tokens, pad_token_id=backend.tokenizer.pad_token_id,
                                     **sampling)
    seconds = time.perf_counter() - t0
    rows = []
    for row in out[:, enc["input_ids"].shape[1]:].tolist():
        cut = next((i for i, t in enumerate(row) if t in backend.eos_token_ids), len(row))
        rows.append(row[:cut])
    return seconds, sum(len(r) for r in rows), rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--model", default=None, help="A local model folder or GGUF file (default: random GPT-2).")
    parser.add_argument("--batch", default="16", help="Batch size, or several separated by commas (1,8,32,64).")
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    from bench.backends.hf import HFBackend
    from bench.specs import build_decoder, parse_decoder

    from peak_memory import PeakMemory

    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or build_model(args.layers, args.hidden, Path(tmp))
        backend = HFBackend(model, device="cpu", dtype="float32")
        shape = (f"{Path(args.model).name}" if args.model else f"random GPT-2 {args.layers} layers x {args.hidden}")
        print(f"model: {shape}, {args.new_tokens} new tokens, cpu, {args.threads} threads, torch {torch.__version__}, "
              f"best of {args.repeats}")
        cases = [
            ("greedy", build_decoder(parse_decoder("greedy")), dict(do_sample=False)),
            ("top-p", build_decoder(parse_decoder("top-p:p=0.95")), dict(do_sample=True, top_p=0.95, top_k=0)),
        ]
        # One short call of each first: the first forward pass pays one-off costs (allocator growth,
        # kernel selection) that would otherwise land on whichever side is timed first.
        warm = prompts(2)
        time_ours(backend, warm, cases[0][1], 4)
        time_generate(backend, warm, 4, do_sample=False)
        for batch in [int(b) for b in str(args.batch).split(",")]:
            texts = prompts(batch)
            for name, decoder, sampling in cases:
                best_ours = best_ref = float("inf")
                equal, paired = None, []
                for _ in range(args.repeats):  # alternate so drift in machine load hits both
                    with PeakMemory() as mem_ours:
                        s_ours, n_ours, toks_ours = time_ours(backend, texts, decoder, args.new_tokens)
                    with PeakMemory() as mem_ref:
                        s_ref, n_ref, toks_ref = time_generate(backend, texts, args.new_tokens, **sampling)
                    if name == "greedy":
                        equal = toks_ours == toks_ref
                    best_ours, best_ref = min(best_ours, s_ours / n_ours), min(best_ref, s_ref / n_ref)
                    paired.append((s_ref / n_ref) / (s_ours / n_ours))  # one pair, timed back to back
                same = "" if equal is None else f"   tokens equal: {equal}"
                print(f"batch {batch:3d} {name:7s} ours {1 / best_ours:8.1f} tok/s ({mem_ours.mib()})   "
                      f"generate {1 / best_ref:8.1f} tok/s ({mem_ref.mib()})   ratio {best_ref / best_ours:.2f}x   "
                      f"paired median {statistics.median(paired):.2f}x (range {min(paired):.2f}-{max(paired):.2f}){same}",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "benchmarks"))
    sys.exit(main())
