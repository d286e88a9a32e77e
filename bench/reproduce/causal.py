"""Stage 5, intervention: does the final block's expansion *cause* greedy decoding's diversity?

Variants (:mod:`bench.reproduce.intervention` does the surgery), each decoded greedily on the
study's prompts and measured at the final layer:

* ``base + hyperfitted final block``: the base model with a Late-Stage LoRA checkpoint's last block;
* ``hyperfitted + base final block``: that checkpoint with the base model's last block;
* ``hyperfitted, projected``: that checkpoint with its final state (after the final norm, what the
  unembedding reads) projected onto the base model's top-d principal subspace of the same state,
  d = the base's participation ratio there, rounded: the expanded directions are removed;
* ``late-lora-no-final`` and ``final-lora``: Late-Stage LoRA trained on the last blocks without
  the final one, and LoRA on the final block only.

The first three are made from every Late-Stage LoRA seed; the last two are trained at the study's
other seeds. Final-layer moments are taken over the same tokens as the mechanism stage (each
prompt and the Late-Stage LoRA checkpoint's greedy continuation; seed 0's for the trained ones), so
every Delta Dim compares the same positions. Each variant's result is kept in ``DIR/work/``.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from bench.reproduce.study import Study, read_json, write_json

TRANSPLANT_IN = "base + hyperfitted final block"
TRANSPLANT_OUT = "hyperfitted + base final block"
PROJECTED = "hyperfitted, projected"


class FinalStates:
    """Each row's real-token final states (last layer), for both models of a pass."""

    def __init__(self, n_rows: int):
        self.base: list[np.ndarray | None] = [None] * n_rows
        self.other: list[np.ndarray | None] = [None] * n_rows

    def update(self, batch: Any) -> None:
        for r, row in enumerate(batch.rows):
            keep = batch.real[r]
            self.base[row] = batch.base_hidden[-1][r][keep].double().cpu().numpy()
            self.other[row] = batch.hyper_hidden[-1][r][keep].double().cpu().numpy()


def _final_states(pair: Any, prompts: list[Any], conts: list[list[int]], batch_size: int) -> FinalStates:
    from bench.analysis.contexts import run_pass

    states = FinalStates(len(prompts))
    run_pass(pair, prompts, conts, [states], batch_size=batch_size, hidden=True)
    return states


def _measure(study: Study, name: str, seed: int, pair: Any, prompts: list[Any], tokens: list[list[int]]) -> dict[str, Any]:
    """Greedy continuations of ``pair.hyper`` (the variant) and its final-layer moments beside the base's."""
    from bench.analysis.contexts import generate
    from bench.decoding import Greedy
    from bench.reproduce.dimension import PromptMoments

    s = study.settings
    conts = generate(pair.hyper, prompts, Greedy(), max_new_tokens=s.max_new_tokens, batch_size=s.batch_size, seed=0)
    states = _final_states(pair, prompts, tokens, s.batch_size)
    rows = [i for i, x in enumerate(states.base) if x is not None]
    base_m = PromptMoments.of([states.base[i] for i in rows])
    other_m = PromptMoments.of([states.other[i] for i in rows])
    path = study.path("work", f"final-{_slug(name)}-s{seed}.npz")
    np.savez(path, **{f"{w}_{f}": getattr(m, f) for w, m in (("base", base_m), ("other", other_m))
                      for f in ("n", "trace", "gram", "sums_dot", "triple")})
    return {"variant": name, "seed": seed, "prompt_ids": [p.id for p in prompts],
            "texts": [pair.base.decode(c) for c in conts], "token_ids": conts, "moments": path.name}


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in name).strip("-")


def _kept(study: Study, name: str, seed: int, make: Any) -> dict[str, Any]:
    done = study.path("work", f"variant-{_slug(name)}-s{seed}.json")
    if done.exists():
        return read_json(done)
    study.log(f"  intervention: {name}, seed {seed}")
    result = make()
    write_json(done, result)
    return result


def _surgery(study: Study, ckpt: dict[str, Any], prompts: list[Any]) -> list[dict[str, Any]]:
    """The three variants made from one Late-Stage LoRA checkpoint."""
    from bench.analysis.contexts import Pair, load_pair
    from bench.backends.hf import HFBackend
    from bench.reproduce import intervention as iv
    from bench.reproduce.mechanism import continuations, run_of

    s, seed = study.settings, ckpt["seed"]
    cache: dict[str, Any] = {}

    def pair() -> Any:
        if "pair" not in cache:
            cache["pair"] = load_pair(s.model, ckpt["path"], device=s.device, dtype=s.dtype)
            cache["tokens"] = continuations(study, run_of(study, "greedy-hyperfit", "late-lora", seed), prompts)
        return cache["pair"]

    def variant(model: Any) -> Any:
        p = pair()
        return Pair(p.base, HFBackend(s.model, device=s.device, dtype=s.dtype, model=model, tokenizer=p.base.tokenizer))

    def transplanted(recipient: Any, donor: Any) -> Any:
        model = copy.deepcopy(recipient)
        iv.transplant_final_block(model, donor)
        return model

    def projected() -> dict[str, Any]:
        p = pair()
        base_states = _final_states(p, prompts, cache["tokens"], s.batch_size).base
        import torch

        subspace = iv.fit_subspace(torch.from_numpy(np.concatenate([x for x in base_states if x is not None])))
        model = copy.deepcopy(p.hyper.model)
        iv.project_final_state(model, subspace)
        out = _measure(study, PROJECTED, seed, variant(model), prompts, cache["tokens"])
        out["subspace_dim"] = int(subspace.k)
        out["base_participation_ratio"] = float(subspace.participation_ratio)
        return out

    return [
        _kept(study, TRANSPLANT_IN, seed, lambda: _measure(
            study, TRANSPLANT_IN, seed, variant(transplanted(pair().base.model, pair().hyper.model)), prompts,
            cache["tokens"])),
        _kept(study, TRANSPLANT_OUT, seed, lambda: _measure(
            study, TRANSPLANT_OUT, seed, variant(transplanted(pair().hyper.model, pair().base.model)), prompts,
            cache["tokens"])),
        _kept(study, PROJECTED, seed, projected),
    ]


def _trained(study: Study, prompts: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The two LoRA variants: their checkpoints (rows of ``methods.csv``) and their measurements."""
    from bench.analysis.contexts import load_pair
    from bench.reproduce.mechanism import continuations, run_of
    from bench.reproduce.training import intervention_methods, seeds_of, train_one

    s = study.settings
    tokens = continuations(study, run_of(study, "greedy-hyperfit", "late-lora", 0), prompts)
    checkpoints, results = [], []
    for method in intervention_methods(s):
        for seed in seeds_of(s, method):
            ckpt = train_one(study, method, seed)
            checkpoints.append(ckpt)
            results.append(_kept(study, method.name, seed, lambda: _measure(
                study, method.name, seed, load_pair(s.model, ckpt["path"], device=s.device, dtype=s.dtype),
                prompts, tokens)))
    return checkpoints, results


def intervention_stage(study: Study) -> dict[str, Any]:
    from bench.reproduce.mechanism import study_prompts

    prompts = study_prompts(study)
    late = [c for c in study.results["hyperfit"]["checkpoints"] if c["method"] == "late-lora"]
    variants = [v for ckpt in late for v in _surgery(study, ckpt, prompts)]
    checkpoints, trained = _trained(study, prompts)
    return {"variants": variants + trained, "checkpoints": checkpoints}


def load_final_moments(study: Study, name: str) -> dict[str, Any]:
    from bench.reproduce.dimension import PromptMoments

    with np.load(study.path("work", name), allow_pickle=False) as data:
        return {w: PromptMoments(*(data[f"{w}_{f}"] for f in ("n", "trace", "gram", "sums_dot", "triple")))
                for w in ("base", "other")}
