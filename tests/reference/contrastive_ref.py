"""Reference contrastive search: transformers 4.46.3's ``generate(penalty_alpha=..., top_k=...)``.

Runs inside ``.venv-ref`` (made by ``scripts/make_reference_env.sh``), never in the project
environment. Reads one JSON request on stdin and prints one JSON answer on stdout::

    request: {"model": DIR, "prompts": [[ids...], ...] or ["text", ...], "k": 5, "alpha": 0.6,
              "max_new_tokens": 64, "batch_size": 8,
              "eos_token_ids": [2] (optional; default: the model's), "pad_token_id": 0 (optional),
              "threads": 2 (optional), "warmup": false (optional)}
    answer:  {"tokens": [[new ids...], ...], "seconds": generation time without model load,
              "new_tokens": non-pad new tokens, "transformers": "4.46.3", "torch": "2.13.0+cpu"}

A JSON list of requests is answered with a list of answers, in one process (the model of each
directory is loaded once). Prompts are left-padded per batch of ``batch_size`` and passed with an attention mask, as a
batched run of ours would be. ``tokens`` holds only the new tokens of each prompt, padded with
``pad_token_id`` after EOS exactly as ``generate`` returns them (rows of one batch share a width).
"""

from __future__ import annotations

import json
import os
import sys
import time


def load(model_dir: str):
    """Model and tokenizer, as written by transformers 5, loaded with transformers 4.46.

    Nothing needs adapting for the models used here: stories260K's config keeps a top-level
    ``rope_theta`` beside v5's ``rope_parameters``, and GPT-2 configs are unchanged.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype="float32").eval()
    tokenizer = None
    if any(os.path.exists(os.path.join(model_dir, f)) for f in ("tokenizer.json", "tokenizer_config.json")):
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return model, tokenizer


def left_pad(rows: list[list[int]], pad_id: int):
    import torch

    width = max(len(r) for r in rows)
    ids = torch.tensor([[pad_id] * (width - len(r)) + r for r in rows], dtype=torch.long)
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], dtype=torch.long)
    return ids, mask


def main() -> None:
    import torch

    request = json.load(sys.stdin)
    requests = request if isinstance(request, list) else [request]
    models: dict = {}
    answers = []
    for req in requests:
        torch.set_num_threads(int(req.get("threads", torch.get_num_threads())))
        if req["model"] not in models:
            models[req["model"]] = load(req["model"])
        answers.append(run(req, *models[req["model"]]))
    json.dump(answers if isinstance(request, list) else answers[0], sys.stdout)
    print()


def run(request: dict, model, tokenizer) -> dict:
    """Answer one request with the loaded model."""
    import torch
    import transformers

    prompts = request["prompts"]
    if any(isinstance(p, str) for p in prompts):
        if tokenizer is None:
            sys.exit("text prompts need a tokenizer in the model directory")
        prompts = [tokenizer(p)["input_ids"] for p in prompts]
    eos = request.get("eos_token_ids")
    if eos is None:
        eos = model.generation_config.eos_token_id
    eos = [eos] if isinstance(eos, int) else list(eos or [])
    pad = request.get("pad_token_id")
    if pad is None:
        pad = eos[0] if eos else 0
    kwargs = dict(
        penalty_alpha=float(request["alpha"]), top_k=int(request["k"]), do_sample=False,
        max_new_tokens=int(request["max_new_tokens"]), eos_token_id=eos or None, pad_token_id=pad,
    )
    batch = int(request.get("batch_size", len(prompts)))
    chunks = [prompts[i:i + batch] for i in range(0, len(prompts), batch)]
    if request.get("warmup"):
        ids, mask = left_pad(chunks[0], pad)
        with torch.no_grad():
            model.generate(input_ids=ids, attention_mask=mask, **{**kwargs, "max_new_tokens": 2})

    tokens, seconds = [], 0.0
    for chunk in chunks:
        ids, mask = left_pad(chunk, pad)
        start = time.perf_counter()
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=mask, **kwargs)
        seconds += time.perf_counter() - start
        tokens += out[:, ids.shape[1]:].tolist()
    return {"tokens": tokens, "seconds": seconds, "new_tokens": sum(_count_new(row, eos) for row in tokens),
            "transformers": transformers.__version__, "torch": torch.__version__}


def _count_new(row: list[int], eos: list[int]) -> int:
    """Generated tokens up to and including the first EOS (the pads after it are not generated)."""
    for i, token in enumerate(row):
        if token in eos:
            return i + 1
    return len(row)


if __name__ == "__main__":
    main()
