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
    """Model (and, lazily, tokenizer), as written by transformers 5, loaded with transformers 4.46.

    transformers 5 writes RoPE settings as ``rope_parameters``; 4.46 does not know that key and
    would silently use its default base of 10,000 (SmolLM2 uses 100,000, and matched 0 of 8
    prompts that way). So a default-type ``rope_parameters`` is copied into 4.46's ``rope_theta``,
    and any other RoPE type is refused rather than misread. The tokenizer is loaded only when a
    request sends text: token-id requests need none, and a v5 tokenizer config can fail in 4.46.
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_dir)
    with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as f:
        raw = json.load(f)
    rope = raw.get("rope_parameters")
    if isinstance(rope, dict) and "rope_theta" not in raw:
        if rope.get("rope_type", "default") != "default" or "rope_theta" not in rope:
            sys.exit(f"{model_dir}: rope_parameters {rope} cannot be expressed in transformers 4.46's config")
        config.rope_theta = float(rope["rope_theta"])
    model = AutoModelForCausalLM.from_pretrained(model_dir, config=config, torch_dtype="float32").eval()
    return model, model_dir


def text_tokenizer(model_dir: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(model_dir)
    except Exception as exc:  # noqa: BLE001 - one line for the caller, whatever 4.46 disliked
        sys.exit(f"{model_dir}: transformers 4.46 cannot read this tokenizer ({type(exc).__name__}: "
                 f"{' '.join(str(exc).split())[:200]}); send token ids instead of text")


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


def run(request: dict, model, model_dir: str) -> dict:
    """Answer one request with the loaded model."""
    import torch
    import transformers

    prompts = request["prompts"]
    if any(isinstance(p, str) for p in prompts):
        tok = text_tokenizer(model_dir)
        prompts = [tok(p)["input_ids"] for p in prompts]
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
    import resource

    return {"tokens": tokens, "seconds": seconds, "new_tokens": sum(_count_new(row, eos) for row in tokens),
            "transformers": transformers.__version__, "torch": torch.__version__,
            "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _count_new(row: list[int], eos: list[int]) -> int:
    """Generated tokens up to and including the first EOS (the pads after it are not generated)."""
    for i, token in enumerate(row):
        if token in eos:
            return i + 1
    return len(row)


if __name__ == "__main__":
    main()
