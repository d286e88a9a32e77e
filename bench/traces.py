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
"""

from __future__ import annotations

from typing import Any, Sequence

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
