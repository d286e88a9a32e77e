"""Per-token traces (``bench run --log-probs``, issue 25 part 3): for every generated token, its
log-probability under the model, the entropy of the model's distribution at that step, and the
chosen token's rank there (1 = the model's most likely token).

They are computed by the HF backend's model, teacher-forced over the prompt and the generated
tokens in one forward pass, so every decoder gets them (contrastive search and beam search
included) and every backend whose model loads here (vLLM, an ``openai`` server serving a local
model): a trace describes the model's view of the tokens the decoder chose, not the decoder's
own reweighted distribution. Each token's text (``pieces``) is kept too, for the viewer's shading.
The forward runs in the run's dtype on the run's device, in chunks
that keep the logits under :data:`LOGITS_BUDGET` bytes.

On ``--backend openai``, ``--log-probs-from server`` takes them from the server's own answer
instead (:func:`server_trace`): the served model's log-probability of each token it chose, exact,
and its :data:`TOP_LOGPROBS` most likely tokens, from which the rank is exact when the token is
among them (else null: "below the top 20") and the entropy is a lower bound (the probability mass
outside the top tokens counted as one token). Such a trace says so: ``source: server``,
``entropy: lower-bound``, ``top_logprobs: 20``.
"""

from __future__ import annotations

from typing import Any, Sequence

from bench.errors import BenchError

LOGITS_BUDGET = 256 << 20
"""Most bytes of float32 logits one chunk of rows may hold."""
DIGITS = 6
"""Decimal places kept in the records."""


def token_traces(hf: Any, prompts: Sequence[str], continuations: Sequence[Sequence[int] | None]) -> list[dict[str, list] | None]:
    """One trace per record (None where the record has no token ids)."""
    import torch

    prompt_ids = hf.encode(list(prompts))
    rows = [(i, list(p), list(c)) for i, (p, c) in enumerate(zip(prompt_ids, continuations)) if c]
    out: list[dict[str, list] | None] = [None if c is None else {"log_probs": [], "entropies": [], "ranks": []}
                                         for c in continuations]
    if not rows:
        return out
    vocab = hf.model.get_output_embeddings().weight.shape[0]
    width = max(len(p) + len(c) for _, p, c in rows)
    per_chunk = max(1, LOGITS_BUDGET // (4 * vocab * width))
    for start in range(0, len(rows), per_chunk):
        for i, trace in _chunk(hf, rows[start:start + per_chunk], torch):
            out[i] = trace
    return out


def _chunk(hf: Any, rows: list[tuple[int, list[int], list[int]]], torch: Any) -> list[tuple[int, dict[str, list]]]:
    width = max(len(p) + len(c) for _, p, c in rows)
    pad = hf.tokenizer.pad_token_id if hf.tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, (_, p, c) in enumerate(rows):  # left-padded, as the backend generated
        ids[r, width - len(p) - len(c):] = torch.tensor(p + c)
        mask[r, width - len(p) - len(c):] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.inference_mode():
        logits = hf.model(input_ids=ids.to(hf.device), attention_mask=mask.to(hf.device),
                          position_ids=positions.to(hf.device)).logits.float()
    out = []
    for r, (i, p, c) in enumerate(rows):
        first = width - len(c) - 1  # the position whose logits predict the first generated token
        step = logits[r, first:first + len(c)]
        chosen = torch.tensor(c, device=step.device)
        log_probs = step.log_softmax(-1)
        picked = step.gather(-1, chosen[:, None])
        out.append((i, {
            "log_probs": [round(v, DIGITS) for v in log_probs.gather(-1, chosen[:, None])[:, 0].tolist()],
            "entropies": [round(v, DIGITS) for v in (-(log_probs.exp() * log_probs).nansum(-1)).tolist()],
            "ranks": (step > picked).sum(-1).add(1).tolist(),
            "pieces": token_pieces(hf.tokenizer, c),
        }))
    return out


def token_pieces(tokenizer: Any, ids: Sequence[int]) -> list[str]:
    """Each token's text as it reads inside the continuation (for the viewer's shading): what token i
    adds after token i - 1, so word-initial spaces land where they belong (SentencePiece, byte BPE)."""
    pieces = []
    for i, t in enumerate(ids):
        if i == 0:
            pieces.append(tokenizer.decode([t]))
            continue
        before = tokenizer.decode([ids[i - 1]])
        both = tokenizer.decode([ids[i - 1], t])
        pieces.append(both[len(before):] if both.startswith(before) else tokenizer.decode([t]))
    return pieces


TOP_LOGPROBS = 20
"""Alternatives asked of a server per token (``logprobs`` of ``/v1/completions``; vLLM's default cap)."""


def server_trace(logprobs: Any, count: int, where: str, pieces: list[str] | None = None) -> dict[str, Any]:
    """The trace of the first ``count`` tokens of a ``/v1/completions`` choice's ``logprobs``
    (``token_logprobs`` and ``top_logprobs``, OpenAI's legacy layout that vLLM serves); one line
    naming the server when it holds none or malformed ones."""
    import math

    chosen = logprobs.get("token_logprobs") if isinstance(logprobs, dict) else None
    tops = logprobs.get("top_logprobs") if isinstance(logprobs, dict) else None
    if not (isinstance(chosen, list) and isinstance(tops, list) and len(chosen) >= count and len(tops) >= count):
        raise BenchError(f"{where}: --log-probs-from server, but the answer has no token_logprobs and top_logprobs "
                         f"for its {count} tokens; the server does not return logprobs (use --log-probs-from model)")
    trace: dict[str, Any] = {"log_probs": [], "entropies": [], "ranks": [], "source": "server",
                             "entropy": "lower-bound", "top_logprobs": TOP_LOGPROBS}
    tokens = logprobs.get("tokens") if isinstance(logprobs.get("tokens"), list) else [None] * len(chosen)
    for lp, top, token in zip(chosen[:count], tops[:count], tokens[:count]):
        values = list(top.values()) if isinstance(top, dict) else None
        if not (_is_log_prob(lp) and values is not None and all(_is_log_prob(v) for v in values)):
            raise BenchError(f"{where}: a logprob of the answer is not a number <= 0 ({str(lp)[:40]!r})")
        # Every token the server named (its top ones, and the chosen one it may add) with the rest of
        # the mass as one more token: merging tokens only lowers entropy, so this is a lower bound.
        probs = [math.exp(v) for v in values]
        rest = max(0.0, 1.0 - sum(probs))
        entropy = -sum(p * math.log(p) for p in probs if p > 0) - (rest * math.log(rest) if rest > 0 else 0.0)
        # The rank is known when the chosen token is one of the top ones (not an entry added for it):
        # then every token above it is named. So when it is named and within the k asked for, or
        # when a named token lies below it.
        named = token in top if token is not None else bool(values) and lp >= min(values)
        inside = named and (len(top) <= TOP_LOGPROBS or sum(v <= lp for v in values) > 1)
        trace["log_probs"].append(round(float(lp), DIGITS))
        trace["entropies"].append(round(max(entropy, 0.0), DIGITS))
        trace["ranks"].append(1 + sum(v > lp for v in values) if inside else None)
    if pieces is not None:
        trace["pieces"] = pieces
    return trace


def _is_log_prob(value: Any) -> bool:
    import math

    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value <= 1e-6
