"""Our contrastive search against transformers 4.46.3's ``generate(penalty_alpha=..., top_k=...)``.

    scripts/make_reference_env.sh            # once: .venv-ref with transformers 4.46.3
    python benchmarks/bench_contrastive.py   # [--layers 12 --hidden 768 --batch 16 --new-tokens 256
                                             #  --k 5 --alpha 0.6 --threads 2 --repeats 1 --ours-only]

Both run on the CPU on the same randomly initialised GPT-2-small-shaped model (saved once to a
temporary directory and loaded by both environments), the same left-padded batch of WikiText
prompts from the contrastive-decoding benchmark, the same k and alpha. The reference runs in a
``.venv-ref`` subprocess (``tests/reference/contrastive_ref.py``) that times ``generate`` itself,
after one short warm-up call and excluding the model load; ours is timed the same way in this
process. With ``--repeats N`` the two alternate N times and the best time of each counts.
Prints tokens/s of both, the ratio ours / reference, and whether the tokens are identical.
``--ours-only`` times ours alone (no reference environment needed), for profiling changes.
``--model`` runs both on a real model instead (a local folder or a GGUF file, e.g. SmolLM2-135M
from ../shared, which the reference reads from decbench's converted folder), with its own
tokenizer, EOS and pad ids.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BENCH_SHARED", REPO.parent / "shared"))
REF_PYTHON = REPO / ".venv-ref" / "bin" / "python"
REF_SCRIPT = REPO / "tests" / "reference" / "contrastive_ref.py"
PAD = 50256  # GPT-2 has no pad token; generate() pads with EOS as usual


def build_model(layers: int, hidden: int, out: Path) -> None:
    """A randomly initialised GPT-2 with the real vocabulary; speed does not depend on weights."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_layer=layers, n_embd=hidden, n_head=max(1, hidden // 64), n_positions=1024)
    GPT2LMHeadModel(config).eval().save_pretrained(out, safe_serialization=True)


def prompt_ids(batch: int, tokenizer=None) -> list[list[int]]:
    """The first ``batch`` WikiText prefixes of the contrastive-decoding benchmark, tokenized."""
    from transformers import AutoTokenizer

    data = json.loads((SHARED / "data" / "cd-benchmark" / "wikitext_gpt2-xl_contrastive_k5_alpha0.6.json").read_text())
    tokenizer = tokenizer or AutoTokenizer.from_pretrained(SHARED / "models" / "gpt2-tokenizer")
    return [tokenizer(d["prefix_text"])["input_ids"] for d in data[:batch]]


EOS = [50256]
"""The EOS ids both sides stop at (GPT-2's, or the --model's)."""


def run_reference(model_dir: Path, prompts, args) -> dict:
    request = dict(model=str(model_dir), prompts=prompts, k=args.k, alpha=args.alpha,
                   max_new_tokens=args.new_tokens, batch_size=len(prompts), eos_token_ids=EOS,
                   pad_token_id=PAD, threads=args.threads, warmup=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": ""}
    done = subprocess.run([str(REF_PYTHON), str(REF_SCRIPT)], input=json.dumps(request),
                          capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"reference failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


def run_ours(model, prompts, args) -> dict:
    import torch

    from decoders.contrastive import ContrastiveSearch

    width = max(len(p) for p in prompts)
    ids = torch.tensor([[PAD] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    search = ContrastiveSearch(args.k, args.alpha)
    kwargs = dict(eos_token_ids=EOS, pad_token_id=PAD, rng=None)
    search.generate(model, ids, mask, max_new_tokens=2, **kwargs)  # warm-up, like the reference's
    start = time.perf_counter()
    tokens = search.generate(model, ids, mask, max_new_tokens=args.new_tokens, **kwargs).tolist()
    seconds = time.perf_counter() - start
    new = sum(next((i + 1 for i, t in enumerate(row) if t in EOS), len(row)) for row in tokens)
    return {"tokens": tokens, "seconds": seconds, "new_tokens": new}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="A local model folder or GGUF file (default: random GPT-2).")
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--alpha", type=float, default=0.6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--ours-only", action="store_true", help="time ours alone, without the reference")
    args = parser.parse_args()
    if not args.ours_only and not REF_PYTHON.exists():
        sys.exit("reference environment .venv-ref missing; create it with scripts/make_reference_env.sh")

    import torch
    from transformers import AutoModelForCausalLM

    sys.path.insert(0, str(REPO))
    torch.set_num_threads(args.threads)
    from peak_memory import PeakMemory

    with tempfile.TemporaryDirectory() as tmp:
        global EOS, PAD
        if args.model:
            from bench.backends.hf import HFBackend
            from bench.runtime.loading import local_name

            backend = HFBackend(args.model, device="cpu", dtype="float32")
            model, model_dir = backend.model, Path(local_name(args.model))
            EOS, PAD = list(backend.eos_token_ids), backend.tokenizer.pad_token_id
            prompts, shape = prompt_ids(args.batch, backend.tokenizer), Path(args.model).name
        else:
            build_model(args.layers, args.hidden, Path(tmp))
            model, model_dir = AutoModelForCausalLM.from_pretrained(tmp).eval(), Path(tmp)
            prompts, shape = prompt_ids(args.batch), f"random GPT-2, {args.layers} layers, {args.hidden} hidden"
        lengths = sorted(len(p) for p in prompts)
        print(f"model: {shape} | batch {args.batch}, prompt tokens "
              f"{lengths[0]}-{lengths[-1]} (left-padded), {args.new_tokens} new tokens, k={args.k}, "
              f"alpha={args.alpha} | CPU, {args.threads} threads | torch {torch.__version__}")
        best = {}
        sides = [("reference", lambda: run_reference(model_dir, prompts, args)),
                 ("ours", lambda: run_ours(model, prompts, args))]
        for _ in range(args.repeats):  # alternate, so that both see the same machine load
            for name, run in sides[1:] if args.ours_only else sides:
                with PeakMemory() as memory:
                    result = run()
                # The reference runs in a child process: its own peak is reported by it, not here.
                shown = memory.mib() if name == "ours" else f"peak {result.get('max_rss_mib', 0):.0f} MiB (its process)"
                print(f"  {name:9s} {result['seconds']:8.2f} s  {result['new_tokens'] / result['seconds']:8.1f} tokens/s"
                      f"  {shown}")
                if name not in best or result["seconds"] < best[name]["seconds"]:
                    best[name] = result

    if args.ours_only:
        return
    ref, ours = best["reference"], best["ours"]
    ref_tps, our_tps = ref["new_tokens"] / ref["seconds"], ours["new_tokens"] / ours["seconds"]
    print(f"reference (transformers {ref['transformers']}): {ref_tps:.1f} tokens/s ({ref['new_tokens']} tokens)")
    print(f"ours      (transformers {__import__('transformers').__version__}): {our_tps:.1f} tokens/s "
          f"({ours['new_tokens']} tokens)")
    print(f"ratio ours / reference: {our_tps / ref_tps:.2f}x")
    print(f"identical tokens: {ours['tokens'] == ref['tokens']}")


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "benchmarks"))
    main()
