"""Our HF decoding loop against ``model.generate``: same model, batch, prompts and device, one run.

    python benchmarks/bench_generation.py [--layers 12 --hidden 768 --batch 16 --new-tokens 256 --repeats 3]

The model is a randomly initialised GPT-2-small-shaped model (12 layers, 768 hidden, GPT-2
vocabulary), so no download is needed; speed does not depend on the weights' values. Prints
tokens/s of both and the ratio ours / generate for greedy and top-p. Greedy tokens are asserted
equal, so the comparison is like for like.
"""

from __future__ import annotations

import argparse
import os
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
    parser.add_argument("--batch", type=int, default=16)
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

    with tempfile.TemporaryDirectory() as tmp:
        backend = HFBackend(build_model(args.layers, args.hidden, Path(tmp)), device="cpu", dtype="float32")
        texts = prompts(args.batch)
        print(f"model: random GPT-2 {args.layers} layers x {args.hidden}, batch {args.batch}, "
              f"{args.new_tokens} new tokens, cpu, {args.threads} threads, torch {torch.__version__}")
        cases = [
            ("greedy", build_decoder(parse_decoder("greedy")), dict(do_sample=False)),
            ("top-p", build_decoder(parse_decoder("top-p:p=0.95")), dict(do_sample=True, top_p=0.95, top_k=0)),
        ]
        for name, decoder, sampling in cases:
            best_ours = best_ref = float("inf")
            for _ in range(args.repeats):  # alternate so drift in machine load hits both
                s_ours, n_ours, toks_ours = time_ours(backend, texts, decoder, args.new_tokens)
                s_ref, n_ref, toks_ref = time_generate(backend, texts, args.new_tokens, **sampling)
                if name == "greedy":
                    assert toks_ours == toks_ref, "greedy tokens differ from model.generate"
                best_ours, best_ref = min(best_ours, s_ours / n_ours), min(best_ref, s_ref / n_ref)
            print(f"{name:7s} ours {1 / best_ours:8.1f} tok/s   generate {1 / best_ref:8.1f} tok/s   "
                  f"ratio {best_ref / best_ours:.2f}x")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
