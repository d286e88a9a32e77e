"""Log-probabilities of continuations given their prompts under a scorer LM; perplexity.

One pass of the scorer model gives, for each record, the summed log-probability of the
continuation's tokens and their count. The prompt is tokenized with the tokenizer's special tokens
(a BOS where the tokenizer adds one) and the continuation without, and the two id lists are
concatenated, so the continuation is scored exactly as text following the prompt. Prompts too
long for the model lose their oldest tokens.

``perplexity`` is corpus-level: ``exp(-sum log p / sum tokens)`` over all continuations.
Intervals are percentile bootstraps over prompts (all samples of a drawn prompt come along).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.errors import BenchError
from bench.stats import prompt_bootstrap

DEFAULT_SCORER = "facebook/opt-2.7b"
"""Su and Collier's scorer for coherence; any causal LM name or local path works."""


@dataclass
class LMScores:
    """Per record: summed continuation log-probability (nats) and continuation token count."""

    logprob: np.ndarray
    tokens: np.ndarray
    prompt_ids: list[str]


def load_scorer(name: str, device: str = "auto", role: str = "scorer model"):
    """(model, tokenizer) of a causal LM in float32, or a one-line BenchError when it cannot be loaded."""
    from bench.runtime import load_model, load_tokenizer, resolve_device

    device = resolve_device(device)
    tok = load_tokenizer(name, role=role, left_pad=False)
    return load_model(name, dtype="float32", device=device, role=role), tok


def _encode(tok, prompt: str, continuation: str, limit: int) -> tuple[list[int], int]:
    """Prompt+continuation ids (cut from the left to ``limit``) and where the continuation starts."""
    p = tok.encode(prompt)
    c = tok.encode(continuation, add_special_tokens=False)
    if len(c) >= limit:
        c = c[: limit - 1]  # keep at least one context token
    p = p[max(0, len(p) + len(c) - limit):]
    return p + c, len(p)


def continuation_logprobs(records: list[dict[str, Any]], model, tok, batch_size: int = 16) -> LMScores:
    """Summed log p(continuation | prompt) and token count of every record, batched."""
    import torch

    limit = int(getattr(model.config, "max_position_embeddings", 0) or getattr(model.config, "n_positions", 0) or 2048)
    encoded = [_encode(tok, r["prompt"], r["continuation"], limit) for r in records]
    logprob = np.zeros(len(records))
    counts = np.array([len(ids) - start for ids, start in encoded], dtype=np.int64)
    device = next(model.parameters()).device
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]), reverse=True)
    with torch.inference_mode():
        for b in range(0, len(order), batch_size):
            batch = [i for i in order[b:b + batch_size] if counts[i] > 0]
            if not batch:
                continue
            width = len(encoded[batch[0]][0])
            ids = torch.zeros(len(batch), width, dtype=torch.long)
            mask = torch.zeros(len(batch), width, dtype=torch.long)
            for row, i in enumerate(batch):
                seq = encoded[i][0]
                ids[row, : len(seq)] = torch.tensor(seq)
                mask[row, : len(seq)] = 1
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None].to(device))[..., 0].cpu()
            for row, i in enumerate(batch):
                seq, start = encoded[i]
                # the token at position t is predicted by the logits at t-1
                logprob[i] = float(logp[row, start - 1: len(seq) - 1].double().sum())
    return LMScores(logprob, counts, [r["prompt_id"] for r in records])


def perplexity_of(scores: LMScores, idx: np.ndarray | None = None) -> float:
    """Corpus perplexity of the selected records (all by default)."""
    lp = scores.logprob if idx is None else scores.logprob[idx]
    n = scores.tokens if idx is None else scores.tokens[idx]
    total = int(n.sum())
    return math.exp(-float(lp.sum()) / total) if total else math.nan


def score_perplexity(scores: LMScores, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """``perplexity`` with its bootstrap interval over prompts."""
    if not len(scores.tokens):
        raise BenchError("no continuations to score")
    return {
        "value": perplexity_of(scores),
        "ci": prompt_bootstrap(scores.prompt_ids, lambda idx: perplexity_of(scores, idx), n_boot, seed),
        "tokens": int(scores.tokens.sum()),
    }
