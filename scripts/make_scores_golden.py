"""Write tests/fixtures/scores_golden.json: the repetition scores, their intervals and a paired
comparison's replicate quantiles, computed by the code of a given commit (issue 23: the scaled-up
scorer must give the same numbers). Run from a checkout of that commit:

    python scripts/make_scores_golden.py ../shared/data/cd-benchmark/wikitext_gpt2-xl_contrastive_k5_alpha0.6.json OUT.json
"""

from __future__ import annotations

import json
import random
import sys

import numpy as np


def corpora(cd_path: str) -> dict[str, dict]:
    items = json.load(open(cd_path))[:400]
    rng = random.Random(0)
    words = [f"w{i}" for i in range(40)]
    out = {
        "cd-references": {"texts": [x["reference_text"] for x in items], "token_ids": None, "prompt_ids": None},
        "cd-contrastive": {"texts": [x["generated_result"]["0"] if isinstance(x.get("generated_result"), dict)
                                     else str(x.get("generated_result", "")) for x in items], "token_ids": None,
                           "prompt_ids": None},
    }
    texts, ids, prompts = [], [], []
    for p in range(300):
        for s in range(3):
            n = rng.choice([0, 1, 3, 8, 30, 64])
            t = [rng.choice(words[: 6 + 10 * s]) for _ in range(n)]
            texts.append(" ".join(t) + rng.choice(["", "\n\n", "  "]))
            ids.append([1 + words.index(w) for w in t])
            prompts.append(f"p{p:03d}")
    out["fake-3-samples"] = {"texts": texts, "token_ids": ids, "prompt_ids": prompts}
    return out


def main(cd_path: str, out_path: str) -> None:
    from bench.scorers.repetition import CorpusResampler, bootstrap_ci, score_texts
    from bench.stats import batch_sizes, resample_counts

    golden = {}
    cs = corpora(cd_path)
    for name, c in cs.items():
        golden[name] = {"metrics": score_texts(c["texts"], c["token_ids"]),
                        "ci": {k: list(v) for k, v in bootstrap_ci(c["texts"], c["token_ids"], n_boot=1000, seed=3,
                                                                   prompt_ids=c["prompt_ids"]).items()}}
    # a paired comparison: B - A replicates on the same draws (as bench compare), summarised by quantiles
    a, b = cs["cd-references"], cs["cd-contrastive"]
    ra, rb = CorpusResampler(a["texts"], None), CorpusResampler(b["texts"], None)
    rng = np.random.default_rng(11)
    reps: dict[str, list] = {}
    for size in batch_sizes(2000, max(ra.width, rb.width)):
        counts = resample_counts(rng, size, ra.n_prompts)
        ma, mb = ra.replicate(counts), rb.replicate(counts)
        for k in ma:
            reps.setdefault(k, []).append(mb[k] - ma[k])
    golden["compare-quantiles"] = {k: np.nanquantile(np.concatenate(v), [0.025, 0.5, 0.975]).tolist()
                                   for k, v in reps.items()}
    json.dump({"cd_path_items": 400, "corpora": golden}, open(out_path, "w"), indent=1, sort_keys=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
