"""The model pair, batched generation, and teacher-forced passes of both models over the same tokens.

Every measurement of the analysis is taken on a *teacher-forced* pass: a prompt followed by a
continuation (generated earlier by some decoder) is fed to the base and the hyperfitted model in
one left-padded batch, and collectors read the logits that predicted each continuation token and,
when asked, every layer's hidden states. Both models see exactly the same inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Protocol, Sequence

from bench.decoding import record_seed
from bench.errors import BenchError

if TYPE_CHECKING:
    import torch

    from bench.specs import Prompt


@dataclass
class Pair:
    """The base model and its hyperfitted checkpoint, sharing one tokenizer."""

    base: Any
    """:class:`bench.backends.hf.HFBackend` of the base model."""
    hyper: Any
    """:class:`bench.backends.hf.HFBackend` of the hyperfitted model (same tokenizer)."""


def load_pair(model: str, hyperfit: str, *, device: str = "auto", dtype: str = "auto") -> Pair:
    """Load both models; BenchError for a missing checkpoint or a vocabulary mismatch."""
    from bench.backends.hf import HFBackend
    from bench.hyperfit.checkpoint import check_hyperfit, load_hyperfit
    from bench.runtime import check_weights, resolve_device, resolve_dtype

    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    check_weights(model)  # both refusals before either model is loaded
    check_hyperfit(hyperfit, model)
    base = HFBackend(model, device=device, dtype=dtype)
    hyper_model, _ = load_hyperfit(hyperfit, model, dtype=dtype, device=device)
    mine, theirs = base.model.get_output_embeddings().weight.size(0), hyper_model.get_output_embeddings().weight.size(0)
    if mine != theirs:
        raise BenchError(f"vocabulary mismatch: base model '{model}' has {mine} output tokens, "
                         f"hyperfit checkpoint '{hyperfit}' {theirs}")
    _check_differs(base.model, hyper_model, model, hyperfit)
    return Pair(base, HFBackend(model, device=device, dtype=dtype, model=hyper_model, tokenizer=base.tokenizer))


def _check_differs(base: Any, hyper: Any, model: str, hyperfit: str) -> None:
    """Refuse a checkpoint whose logits equal the base model's: nothing to analyse, and every
    statistic of the report would divide zeros (ranks all 1, log-scaled histograms of nothing)."""
    import torch

    ids = torch.arange(1, 9, device=base.device).clamp(max=base.config.vocab_size - 1).unsqueeze(0)
    with torch.inference_mode():
        same = torch.equal(base(input_ids=ids).logits, hyper(input_ids=ids).logits)
    if same:
        raise BenchError(f"--hyperfit {hyperfit} gives exactly the logits of --model {model}: "
                         "it is not a hyperfitted checkpoint of it (nothing to analyse)")


def generate(backend: Any, prompts: Sequence["Prompt"], decoder: Any, *, max_new_tokens: int, batch_size: int,
             seed: int) -> list[list[int]]:
    """Continue every prompt (one sample each, seeded by ``record_seed(seed, prompt id, 0)``)."""
    out: list[list[int]] = []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        seeds = [record_seed(seed, p.id, 0) for p in chunk]
        conts = backend.continue_batch([p.text for p in chunk], decoder, max_new_tokens=max_new_tokens, seeds=seeds)
        out.extend(c.token_ids for c in conts)
    return out


@dataclass
class Batch:
    """One teacher-forced batch. ``K`` = longest continuation + 1 positions are kept for logits."""

    rows: list[int]
    """Index of each row's prompt in the analysed list."""
    base_logits: "torch.Tensor"
    """[B, K, V] float32: base logits at the last K positions."""
    hyper_logits: "torch.Tensor"
    """[B, K, V] float32: hyperfitted logits at the same positions."""
    targets: "torch.Tensor"
    """[B, K] the token each kept position predicts (0 where ``predicts`` is False)."""
    predicts: "torch.Tensor"
    """[B, K] bool: the position predicts a continuation token."""
    base_hidden: tuple["torch.Tensor", ...] = ()
    """Per layer (embeddings first) [B, L, d], when hidden states were asked for."""
    hyper_hidden: tuple["torch.Tensor", ...] = ()
    real: "torch.Tensor | None" = None
    """[B, L] bool: a real (non-pad) token, excluding each row's first token (see :func:`teacher_forced`)."""


class Collector(Protocol):
    def update(self, batch: Batch) -> None: ...


def _forward(model: Any, ids: "torch.Tensor", mask: "torch.Tensor", keep: int, hidden: bool) -> Any:
    positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
    return model(input_ids=ids, attention_mask=mask, position_ids=positions, output_hidden_states=hidden,
                 logits_to_keep=keep, use_cache=False)


def teacher_forced(pair: Pair, prompts: Sequence["Prompt"], continuations: Sequence[Sequence[int]], *,
                   batch_size: int, hidden: bool = False) -> Iterator[Batch]:
    """Feed prompt + continuation to both models, ``batch_size`` rows at a time.

    Rows whose continuation is empty are skipped (they predict nothing). The first token of each
    row is left out of ``real``: in large models its hidden state is a huge outlier (the attention
    sink) that would dominate any covariance of hidden states.
    """
    import torch

    prompt_ids = pair.base.encode([p.text for p in prompts])
    todo = [i for i, c in enumerate(continuations) if len(c) > 0]
    pad = pair.base.tokenizer.pad_token_id
    device = pair.base.device
    for start in range(0, len(todo), batch_size):
        rows = todo[start : start + batch_size]
        seqs = [list(prompt_ids[i]) + list(continuations[i]) for i in rows]
        conts = [len(continuations[i]) for i in rows]
        width, keep = max(len(s) for s in seqs), max(conts) + 1
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        targets = torch.zeros((len(rows), keep), dtype=torch.long)
        predicts = torch.zeros((len(rows), keep), dtype=torch.bool)
        for r, (seq, c) in enumerate(zip(seqs, conts)):
            ids[r, width - len(seq):] = torch.tensor(seq)
            mask[r, width - len(seq):] = 1
            # Kept position j is absolute position width - keep + j; it predicts the token after it.
            targets[r, keep - 1 - c : keep - 1] = torch.tensor(seq[-c:])
            predicts[r, keep - 1 - c : keep - 1] = True
        ids, mask = ids.to(device), mask.to(device)
        with torch.inference_mode():
            b = _forward(pair.base.model, ids, mask, keep, hidden)
            h = _forward(pair.hyper.model, ids, mask, keep, hidden)
        real = mask.bool().clone()
        first = mask.argmax(dim=-1)
        real[torch.arange(len(rows), device=device), first] = False
        yield Batch(rows, b.logits.float(), h.logits.float(), targets.to(device), predicts.to(device),
                    tuple(b.hidden_states) if hidden else (), tuple(h.hidden_states) if hidden else (), real)


def run_pass(pair: Pair, prompts: Sequence["Prompt"], continuations: Sequence[Sequence[int]],
             collectors: Sequence[Collector], *, batch_size: int, hidden: bool = False) -> None:
    """One teacher-forced pass feeding every collector."""
    for batch in teacher_forced(pair, prompts, continuations, batch_size=batch_size, hidden=hidden):
        for c in collectors:
            c.update(batch)
