"""The HF path on a bare GPU machine: greedy token equality and tokens/s against ``model.generate``.

    PYTHONPATH=. python benchmarks/gpu_check.py            # CUDA, Llama-3.2-1B shape, bfloat16 (make gpu-check)
    PYTHONPATH=. python benchmarks/gpu_check.py --tiny     # a tiny Llama on CPU (what the tests run)

Needs only torch and transformers (no network, no other package): the model is a randomly
initialised Llama with Llama-3.2-1B's configuration (speed does not depend on the weights' values)
and the prompts are random token ids, left-padded to lengths that differ per row. No EOS is set, so
every run makes exactly ``--new-tokens`` steps and both sides do the same work.

Prints, per batch size: tokens/s of our loop (``bench.backends.hf_decode.decode_loop``, and with
``--compile`` its static-cache compiled step) and of ``model.generate`` for greedy, top-p (0.95)
and contrastive search (k=5, alpha=0.6; ours only where this transformers has no contrastive
search in ``generate``), the ratio, and whether greedy tokens are equal. At batch 1 it prints the
fraction of the memory-bandwidth limit: weight bytes (every parameter once, bf16) read per step over
the step time (a run's time over its steps, prefill included, so slightly pessimistic), divided by
the GPU's bandwidth from :data:`BANDWIDTH_GBS` (``--bandwidth-gbs`` overrides it).

Exit status 1 when greedy tokens of the eager step differ from ``generate``'s, 0 otherwise; the
compiled step's greedy check is printed (a fused kernel may round bfloat16 differently, and a
random model's near-flat logits then change an argmax) but does not fail the check. Stops starting new cases after ``--budget-s``
seconds and lists the ones it skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded; a bare GPU machine has no network
warnings.filterwarnings("ignore", message=".*past_key_values.*deprecated")

BANDWIDTH_GBS = {  # peak memory bandwidth (GB/s) by a substring of torch.cuda.get_device_name(); first match wins
    "H200": 4800, "GH200": 4000, "H100 PCIe": 2000, "H100": 3350, "H800": 3350, "A100-SXM4-80GB": 2039,
    "A100 80GB PCIe": 1935, "A100": 1555, "L40S": 864, "L40": 864, "A10G": 600, "A10": 600, "L4": 300,
    "RTX 4090": 1008, "RTX 3090": 936, "V100": 900, "T4": 320,
}
LLAMA_3_2_1B = dict(hidden_size=2048, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
                    intermediate_size=8192, vocab_size=128256, tie_word_embeddings=True, rope_theta=500000.0,
                    max_position_embeddings=131072, head_dim=64, rms_norm_eps=1e-5,
                    rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                                  "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})
TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=128,
            vocab_size=512, tie_word_embeddings=True, max_position_embeddings=1024)
PAD = 0


def build_model(shape: dict[str, Any], device: str, dtype: torch.dtype) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**shape, bos_token_id=1, eos_token_id=None, pad_token_id=PAD)
    torch.manual_seed(0)
    with torch.device(device):  # initialised on the device (float32, then cast: 5 GB for a moment)
        model = LlamaForCausalLM(config).to(dtype)
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = PAD
    return model.eval()


def make_prompts(batch: int, vocab: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded random prompts of 16-32 tokens."""
    gen = torch.Generator().manual_seed(batch)
    lengths = torch.randint(16, 33, (batch,), generator=gen)
    width = int(lengths.max())
    ids = torch.randint(2, vocab, (batch, width), generator=gen)
    mask = (torch.arange(width) >= width - lengths[:, None]).long()
    return ids.masked_fill(mask == 0, PAD).to(device), mask.to(device)


def timed(fn: Callable[[], torch.Tensor]) -> tuple[float, torch.Tensor]:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if out.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start, out.cpu()


def ours(model: Any, decoder_name: str, ids: torch.Tensor, mask: torch.Tensor, n: int, compile: bool) -> torch.Tensor:
    from bench.backends.hf_decode import decode_loop
    from bench.decoding import EngineParams, LogitsDecoder, RowRNG

    with torch.inference_mode():
        if decoder_name == "contrastive":
            from decoders.contrastive import ContrastiveSearch

            return ContrastiveSearch(5, 0.6).generate(model, ids, mask, max_new_tokens=n, eos_token_ids=[],
                                                      pad_token_id=PAD)
        params = EngineParams(temperature=0.0) if decoder_name == "greedy" else EngineParams(top_p=0.95)
        return decode_loop(model, ids, mask, LogitsDecoder(params), max_new_tokens=n, eos_token_ids=[],
                           pad_token_id=PAD, rng=RowRNG(range(ids.size(0))), compile=compile)


GENERATE_ARGS = {"greedy": dict(do_sample=False), "top-p": dict(do_sample=True, top_p=0.95, top_k=0),
                 "contrastive": dict(penalty_alpha=0.6, top_k=5)}


def reference(model: Any, decoder_name: str, ids: torch.Tensor, mask: torch.Tensor, n: int) -> torch.Tensor:
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=n, min_new_tokens=n,
                             pad_token_id=PAD, **GENERATE_ARGS[decoder_name])
    return out[:, ids.size(1):]


def generate_has_contrastive() -> bool:
    """transformers moved contrastive search out of ``generate`` (4.56+: a Hub ``custom_generate``,
    which this offline check cannot fetch)."""
    from transformers import GenerationMixin

    return hasattr(GenerationMixin, "_contrastive_search")


def best_time(fn: Callable[[], torch.Tensor], repeats: int) -> tuple[float, torch.Tensor]:
    runs = [timed(fn) for _ in range(repeats)]
    return min(r[0] for r in runs), runs[-1][1]


def first_difference(a: torch.Tensor, b: torch.Tensor) -> str:
    if a.shape == b.shape and torch.equal(a, b):
        return "equal"
    diff = (a != b).nonzero() if a.shape == b.shape else None
    return f"DIFFER (shapes {tuple(a.shape)} vs {tuple(b.shape)})" if diff is None else \
        f"DIFFER (first at row {int(diff[0, 0])}, step {int(diff[0, 1])})"


def bandwidth_gbs(override: float | None, device: str) -> tuple[float | None, str]:
    if override:
        return override, "given"
    if not device.startswith("cuda"):
        return None, "cpu"
    name = torch.cuda.get_device_name()
    for key, value in BANDWIDTH_GBS.items():
        if key in name:
            return value, name
    return None, name


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="a tiny Llama (CPU unless --device) for testing the script")
    p.add_argument("--device", default=None, help="default: cuda (cpu with --tiny)")
    p.add_argument("--new-tokens", type=int, default=None, help="default 128 (16 with --tiny)")
    p.add_argument("--batches", default=None, help="comma-separated batch sizes (default 1,16,64; 1,4 with --tiny)")
    p.add_argument("--compile-batches", default=None,
                   help="batch sizes also timed with the compiled static-cache step (default 1,16 on CUDA; none on CPU)")
    p.add_argument("--decoders", default="greedy,top-p,contrastive")
    p.add_argument("--repeats", type=int, default=2, help="timed runs per case, best kept (after one warm-up)")
    p.add_argument("--bandwidth-gbs", type=float, default=None, help="override the GPU's bandwidth table entry")
    p.add_argument("--budget-s", type=float, default=420.0, help="start no new case after this many seconds")
    p.add_argument("--json", default=None, help="also write the results to this file")
    args = p.parse_args(argv)
    args.device = args.device or ("cpu" if args.tiny else "cuda")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("no CUDA device: run with --tiny (CPU) or on a GPU machine")
    args.new_tokens = args.new_tokens or (16 if args.tiny else 128)
    args.batches = [int(b) for b in (args.batches or ("1,4" if args.tiny else "1,16,64")).split(",")]
    default_compile = "1,16" if args.device.startswith("cuda") else ""
    compile_text = default_compile if args.compile_batches is None else args.compile_batches
    args.compile_batches = [int(b) for b in compile_text.split(",") if b.strip()]
    args.decoders = [d for d in args.decoders.split(",") if d]
    return args


def run_cases(args: argparse.Namespace, model: Any, vocab: int, weight_bytes: int) -> tuple[list[dict], list[str]]:
    """Time every (batch, decoder[, compiled]) case within the budget; results and skipped cases."""
    start, results, skipped = time.perf_counter(), [], []
    has_contrastive = generate_has_contrastive()
    for batch in args.batches:
        ids, mask = make_prompts(batch, vocab, args.device)
        for name in args.decoders:
            ref = None  # generate's (seconds, tokens), shared by the eager and the compiled case
            for compiled in ([False, True] if name != "contrastive" and batch in args.compile_batches else [False]):
                case = f"batch {batch} {name}{' compiled' if compiled else ''}"
                if time.perf_counter() - start > args.budget_s:
                    skipped.append(case)
                    continue
                run_ours = lambda: ours(model, name, ids, mask, args.new_tokens, compiled)  # noqa: E731
                timed(run_ours)  # warm-up (and compilation)
                s_ours, t_ours = best_time(run_ours, args.repeats)
                if ref is None and (name != "contrastive" or has_contrastive):
                    run_ref = lambda: reference(model, name, ids, mask, args.new_tokens)  # noqa: E731
                    timed(run_ref)
                    ref = best_time(run_ref, args.repeats)
                row = case_row(args, case, batch, name, compiled, weight_bytes, (s_ours, t_ours), ref)
                results.append(row)
                print(format_row(row), flush=True)
    return results, skipped


def case_row(args: argparse.Namespace, case: str, batch: int, name: str, compiled: bool, weight_bytes: int,
             mine: tuple[float, torch.Tensor], ref: tuple[float, torch.Tensor] | None) -> dict:
    """One result: tokens/s of both, the ratio, greedy equality, and at batch 1 the bandwidth fraction."""
    tokens = batch * args.new_tokens
    s_ref = ref[0] if ref else None
    row = {"case": case, "batch": batch, "decoder": name, "compiled": compiled,
           "ours_tok_s": tokens / mine[0], "generate_tok_s": tokens / s_ref if s_ref else None,
           "ratio": s_ref / mine[0] if s_ref else None,
           "greedy_equal": first_difference(mine[1], ref[1]) if name == "greedy" and ref else None}
    bandwidth, _ = bandwidth_gbs(args.bandwidth_gbs, args.device)
    if batch == 1 and bandwidth:
        row["bandwidth_fraction"] = weight_bytes / (mine[0] / args.new_tokens) / (bandwidth * 1e9)
        if s_ref:
            row["generate_bandwidth_fraction"] = weight_bytes / (s_ref / args.new_tokens) / (bandwidth * 1e9)
    return row


def format_row(row: dict) -> str:
    ref = f"{row['generate_tok_s']:10.1f} tok/s" if row["generate_tok_s"] else "  (generate has no contrastive search)"
    text = f"{row['case']:28s} ours {row['ours_tok_s']:10.1f} tok/s   generate {ref}"
    if row["ratio"]:
        text += f"   ratio {row['ratio']:.2f}x"
    if row["greedy_equal"]:
        text += f"   greedy tokens {row['greedy_equal']}"
    if "bandwidth_fraction" in row:
        text += f"   bandwidth {100 * row['bandwidth_fraction']:.1f}%"
        if "generate_bandwidth_fraction" in row:
            text += f" (generate {100 * row['generate_bandwidth_fraction']:.1f}%)"
    return text


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    dtype = torch.float32 if args.tiny and args.device == "cpu" else torch.bfloat16
    t0 = time.perf_counter()
    model = build_model(TINY if args.tiny else LLAMA_3_2_1B, args.device, dtype)
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())  # tied weights counted once
    bandwidth, device_name = bandwidth_gbs(args.bandwidth_gbs, args.device)
    import transformers

    print(f"device {device_name} ({args.device}), bandwidth {bandwidth or 'unknown'} GB/s, torch {torch.__version__}, "
          f"transformers {transformers.__version__}, model {'tiny' if args.tiny else 'Llama-3.2-1B shape'} "
          f"{weight_bytes / 1e9:.2f} GB {str(dtype).removeprefix('torch.')}, {args.new_tokens} new tokens, "
          f"built in {time.perf_counter() - t0:.1f} s", flush=True)
    results, skipped = run_cases(args, model, model.config.vocab_size, weight_bytes)
    differ = [r for r in results if r["greedy_equal"] not in (None, "equal")]
    failures = [r["case"] for r in differ if not r["compiled"]]
    for case in skipped:
        print(f"skipped (budget of {args.budget_s:.0f} s spent): {case}")
    print(f"total {time.perf_counter() - t0:.1f} s; greedy token checks (eager step): "
          f"{'all equal' if not failures else 'FAILED in ' + ', '.join(failures)}")
    compiled = [r for r in results if r["compiled"] and r["greedy_equal"]]
    if compiled:  # reported, not failed: compiled kernels round bf16 differently from eager ones
        print("greedy token checks (compiled step): " + "; ".join(f"{r['case']}: {r['greedy_equal']}" for r in compiled))
    if args.json:
        Path(args.json).write_text(json.dumps({"device": device_name, "bandwidth_gbs": bandwidth,
                                               "results": results, "skipped": skipped}, indent=1))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
