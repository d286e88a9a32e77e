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

Our featurizer is timed in each ``--dtypes`` precision: float32 reproduces mauve's features;
bfloat16 is faster where the hardware has bf16 units. ``--mauve-n N`` also reports how far MAUVE
itself (GPT2-XL continuations vs references, 5 seeds) moves between the precisions.

    python benchmarks/bench_featurize.py [--n 128] [--max-tokens 256] [--repeats 3] [--skip-gpt2] [--gpt2-n 32]
                                         [--dtypes float32,bfloat16] [--mauve-n 500]
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


def load_cd(n: int) -> tuple[list[str], list[str]]:
    """The cd-benchmark's human references and GPT2-XL contrastive continuations (WikiText-103)."""
    data = json.loads((SHARED / "data" / "cd-benchmark" / "wikitext_gpt2-xl_contrastive_k5_alpha0.6.json").read_text())
    refs = [d["reference_text"] for d in data[:n]]
    conts = [d["generated_result"]["0"] for d in data[:n]]
    return refs, conts


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


def time_ours(path: str, corpus: list[str], max_tokens: int, dtype: str = "float32") -> tuple[float, np.ndarray]:
    from bench.scorers.features import Featurizer, FeaturizerSettings

    with tempfile.TemporaryDirectory() as cache:
        settings = FeaturizerSettings(model=path, max_tokens=max_tokens, device="cpu", dtype=dtype)
        feat = Featurizer(settings, cache_dir=cache)
        feat.featurize_ids(feat.tokenize(corpus[:1]))  # load outside the timing, as for mauve
        t = time.perf_counter()
        feats = feat.featurize(corpus)  # tokenize + featurize + write the cache
        return time.perf_counter() - t, feats


def rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / (np.abs(b).max() + 1e-12))


def compare(label: str, path: str, corpus: list[str], max_tokens: int, repeats: int, dtypes: list[str]) -> dict:
    """Time mauve's featurization (batch 1 and 16) against ours in each dtype on the same texts."""
    times: dict[str, list[float]] = {"mauve bs=1 (compute_mauve default)": [], "mauve bs=16": []}
    times.update({f"ours {d}": [] for d in dtypes})
    feats: dict[str, np.ndarray] = {}
    for _ in range(repeats):  # interleaved so every variant sees the same machine load
        t, feats["mauve"] = time_mauve(path, corpus, max_tokens, 1)
        times["mauve bs=1 (compute_mauve default)"].append(t)
        times["mauve bs=16"].append(time_mauve(path, corpus, max_tokens, 16)[0])
        for d in dtypes:
            t, feats[d] = time_ours(path, corpus, max_tokens, d)
            times[f"ours {d}"].append(t)
    base = min(times["mauve bs=1 (compute_mauve default)"])
    print(f"\n{label}: {len(corpus)} texts, max {max_tokens} tokens, best of {repeats}")
    for name, ts in times.items():
        t = min(ts)
        err = "" if not name.startswith("ours") else f"  max rel. feature diff vs mauve {rel_diff(feats[name[5:]], feats['mauve']):.1e}"
        print(f"  {name:38s} {t:7.2f} s  {len(corpus) / t:8.1f} texts/s  {base / t:5.2f}x of compute_mauve{err}")
    if "float32" in feats and rel_diff(feats["float32"], feats["mauve"]) > 1e-3:
        sys.exit("float32 features differ from mauve's")
    return feats


def mauve_shift(path: str, refs: list[str], conts: list[str], max_tokens: int, dtypes: list[str]) -> None:
    """How far MAUVE (continuations vs references, 5 k-means seeds) moves with the featurizer's dtype."""
    from bench.scorers.features import Featurizer, FeaturizerSettings
    from bench.scorers.mauve import MauveSettings, mauve_from_features

    print(f"  MAUVE of {len(conts)} GPT2-XL contrastive continuations vs references, seeds 1-5:")
    for d in dtypes:
        with tempfile.TemporaryDirectory() as cache:
            feat = Featurizer(FeaturizerSettings(model=path, max_tokens=max_tokens, device="cpu", dtype=d), cache_dir=cache)
            r = mauve_from_features(feat.featurize(conts), feat.featurize(refs), MauveSettings())
        print(f"    {d:9s} {r['mauve']:.4f} +- {r['mauve_std']:.4f}  per seed {[round(v, 4) for v in r['per_seed']]}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-gpt2", action="store_true")
    ap.add_argument("--skip-stories", action="store_true")
    ap.add_argument("--gpt2-n", type=int, default=None, help="texts for the GPT-2 model (default: --n)")
    ap.add_argument("--dtypes", default="float32,bfloat16", help="our featurizer's precisions to time")
    ap.add_argument("--mauve-n", type=int, default=0,
                    help="also measure how far MAUVE moves with the dtype on this many continuation/reference pairs")
    args = ap.parse_args()
    import torch

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    dtypes = args.dtypes.split(",")
    refs, conts = load_cd(max(args.n, args.mauve_n))
    corpus = refs[: args.n]
    with tempfile.TemporaryDirectory() as tmp:
        link = Path(tmp) / "gpt2-stories260K"
        link.symlink_to(SHARED / "models" / "stories260K")
        if not args.skip_stories:
            compare("stories260K (260K params)", str(link), corpus, args.max_tokens, args.repeats, dtypes)
            if args.mauve_n:
                mauve_shift(str(link), refs[: args.mauve_n], conts[: args.mauve_n], args.max_tokens, dtypes)
        if not args.skip_gpt2:
            model = gpt2_small(Path(tmp) / "gpt2-small-random")
            compare("GPT-2 small shape (124M params, random weights)", str(model), corpus[: args.gpt2_n or args.n],
                    args.max_tokens, args.repeats, dtypes)


if __name__ == "__main__":
    main()
