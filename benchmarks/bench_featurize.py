"""Featurization throughput: bench.scorers.features vs mauve-text's own featurization.

``mauve.compute_mauve(p_text=..., featurize_model_name=...)`` featurizes through
``mauve.compute_mauve.get_features_from_input`` (tokenize each text, then
``featurize_tokens_from_model`` with its ``batch_size``, 1 by default). We time exactly that
function and our :class:`Featurizer` (cache disabled: a fresh cache folder per repeat) on the same
model and texts, check that both give the same features, and print texts/second and the speed-up.

mauve-text only loads models whose name contains ``gpt2``, so each model is exposed through a
symlink named ``gpt2-<name>`` in a temporary folder (nothing is copied). Models: stories260K (the
real tiny model in shared/) and a randomly initialised GPT-2 with GPT-2 small's shape (124M
parameters; throughput does not depend on the weights' values).

    python benchmarks/bench_featurize.py [--n 128] [--max-tokens 256] [--repeats 3] [--skip-gpt2] [--gpt2-n 32]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BENCH_SHARED", REPO.parent / "shared")).resolve()
sys.path.insert(0, str(REPO))


def texts(n: int) -> list[str]:
    """The human references of the contrastive-decoding benchmark (WikiText-103)."""
    data = json.loads((SHARED / "data" / "cd-benchmark" / "wikitext_gpt2-xl_contrastive_k5_alpha0.6.json").read_text())
    return [d["reference_text"] for d in data[:n]]


def gpt2_small(folder: Path) -> Path:
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2Model

    torch.manual_seed(0)
    GPT2Model(GPT2Config()).save_pretrained(folder)
    AutoTokenizer.from_pretrained(SHARED / "models" / "gpt2-tokenizer").save_pretrained(folder)
    return folder


def time_mauve(path: str, corpus: list[str], max_tokens: int, batch_size: int) -> tuple[float, np.ndarray]:
    import importlib

    cm = importlib.import_module("mauve.compute_mauve")  # the package re-exports the function under that name

    utils = importlib.import_module("mauve.utils")
    utils.tqdm = lambda items, **_: items  # silence its progress bar (this only helps mauve's time)
    cm.MODEL = cm.TOKENIZER = cm.MODEL_NAME = None  # its module-level model cache: load outside the timing
    cm.get_features_from_input(None, None, corpus[:1], path, max_tokens, -1, name="p", batch_size=1)
    t = time.perf_counter()
    feats = cm.get_features_from_input(None, None, corpus, path, max_tokens, -1, name="p", batch_size=batch_size)
    return time.perf_counter() - t, feats


def time_ours(path: str, corpus: list[str], max_tokens: int) -> tuple[float, np.ndarray]:
    from bench.scorers.features import Featurizer, FeaturizerSettings

    with tempfile.TemporaryDirectory() as cache:
        feat = Featurizer(FeaturizerSettings(model=path, max_tokens=max_tokens, device="cpu"), cache_dir=cache)
        feat.featurize_ids(feat.tokenize(corpus[:1]))  # load outside the timing, as for mauve
        t = time.perf_counter()
        feats = feat.featurize(corpus)  # tokenize + featurize + write the cache
        return time.perf_counter() - t, feats


def compare(label: str, path: str, corpus: list[str], max_tokens: int, repeats: int) -> None:
    best = {"mauve bs=1 (compute_mauve default)": [], "mauve bs=16": [], "ours": []}
    for _ in range(repeats):  # interleaved so both see the same machine load
        t1, ref = time_mauve(path, corpus, max_tokens, 1)
        t16, _ = time_mauve(path, corpus, max_tokens, 16)
        t0, ours = time_ours(path, corpus, max_tokens)
        best["mauve bs=1 (compute_mauve default)"].append(t1)
        best["mauve bs=16"].append(t16)
        best["ours"].append(t0)
    err = float(np.abs(ours - ref).max() / (np.abs(ref).max() + 1e-12))
    print(f"\n{label}: {len(corpus)} texts, max {max_tokens} tokens, best of {repeats}; max rel. feature diff {err:.1e}")
    ours_t = min(best["ours"])
    for name, ts in best.items():
        t = min(ts)
        print(f"  {name:38s} {t:7.2f} s  {len(corpus) / t:8.1f} texts/s  ours is {t / ours_t:5.2f}x faster")
    if err > 1e-3:
        sys.exit(f"features differ from mauve's ({err:.1e})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-gpt2", action="store_true")
    ap.add_argument("--skip-stories", action="store_true")
    ap.add_argument("--gpt2-n", type=int, default=None, help="texts for the GPT-2 model (default: --n)")
    args = ap.parse_args()
    import torch

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    corpus = texts(args.n)
    with tempfile.TemporaryDirectory() as tmp:
        link = Path(tmp) / "gpt2-stories260K"
        link.symlink_to(SHARED / "models" / "stories260K")
        if not args.skip_stories:
            compare("stories260K (260K params)", str(link), corpus, args.max_tokens, args.repeats)
        if not args.skip_gpt2:
            model = gpt2_small(Path(tmp) / "gpt2-small-random")
            compare("GPT-2 small shape (124M params, random weights)", str(model), corpus[: args.gpt2_n or args.n],
                    args.max_tokens, args.repeats)


if __name__ == "__main__":
    main()
