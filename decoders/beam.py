"""Beam search (deterministic), batched, with a KV cache reordered by beam index.

Every row keeps ``n`` running beams (their summed log-probabilities) and the ``n`` best finished
hypotheses (score = summed log-probability / generated length ** ``length_penalty``). This is
the beam search of ``model.generate(num_beams=n, do_sample=False)`` in transformers 5 with its
defaults, and is tested token for token against it:

* ``length_penalty = 1.0`` (generate's default): finished hypotheses are ranked by their mean
  log-probability per generated token; ``0`` ranks by the sum, > 0 favours longer ones.
* ``early_stopping = False`` (generate's default, not a parameter here): a row stops when all its
  ``n`` finished slots are full and the best running beam, scored at its current length, can no
  longer beat the worst finished one (generate's heuristic, not the exhaustive search that
  ``early_stopping="never"`` would run).
* Each step keeps ``max(2, 1 + number of EOS ids) * n`` candidates per row, so that ``n`` beams
  can go on even when the best candidates all end; only candidates among the best ``n`` of a
  step may become finished hypotheses. At ``max_new_tokens`` every candidate ends.

Why our own loop: every decoder of the HF backend runs on the same left-padded batch and the
same EOS handling (generate needs one call per decoder and pads differently), and the prompt is
encoded once per row and its cache repeated ``n`` times (generate encodes ``n`` copies).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Sequence

from bench.decoding import Decoder, RowRNG
from bench.runtime.forward import cache_kwargs
from bench.errors import check
from bench.registry import at_most_vocabulary, decoder

if TYPE_CHECKING:
    import torch

NEVER = -1.0e9
"""The score transformers' beam search gives what must not be chosen (generate uses the same)."""


MAX_BEAMS = 4096
"""More beams than any use of beam search (each beam is a row of the batch): larger is refused at once."""


@decoder(
    "beam",
    check_model=at_most_vocabulary("beam", "n", "beams"),
    description="beam search with n beams, deterministic; generate(num_beams=n, do_sample=False)'s defaults: "
                "length_penalty=1.0, early_stopping=False",
    sampling=False,
)
def beam(
    n: Annotated[int, "number of beams, >= 1"] = 4,
    length_penalty: Annotated[float, "finished scores are divided by length ** this (1.0: mean log-prob)"] = 1.0,
) -> Decoder:
    check(1 <= n <= MAX_BEAMS, f"decoder 'beam': n must be between 1 and {MAX_BEAMS}, got {str(n)[:40]}")
    check(length_penalty == length_penalty and abs(length_penalty) != float("inf"),
          f"decoder 'beam': length_penalty must be a finite number, got {length_penalty}")
    return BeamSearch(n, length_penalty)


class BeamSearch(Decoder):
    """Our own batched beam search; see the module docstring."""

    needs = "model"  # it feeds n hypotheses per row and reorders the cache: the HF backend runs it

    def __init__(self, n: int, length_penalty: float):
        self.n = n
        self.length_penalty = length_penalty

    def generate(self, model: Any, input_ids: "torch.Tensor", attention_mask: "torch.Tensor", *,
                 max_new_tokens: int, eos_token_ids: Sequence[int], pad_token_id: int,
                 rng: RowRNG | None = None) -> "torch.Tensor":
        """The best finished hypothesis of each left-padded prompt, [batch, <= max_new_tokens], pad
        after its EOS. ``rng`` is unused (deterministic)."""
        import torch

        with torch.inference_mode():
            return self._generate(model, input_ids, attention_mask, max_new_tokens, list(eos_token_ids), pad_token_id)

    def _generate(self, model, input_ids, attention_mask, max_new_tokens, eos_token_ids, pad_token_id):
        import torch

        batch, n, device = input_ids.shape[0], self.n, input_ids.device
        if max_new_tokens <= 0:
            return input_ids.new_empty((batch, 0))
        eos = torch.tensor(eos_token_ids, dtype=torch.long, device=device)
        keep = max(2, 1 + len(eos_token_ids)) * n  # candidates per row and step, as generate keeps
        beams = _Beams.start(batch, n, keep, max_new_tokens, device)
        cache, logits, mask, position = _encode(model, input_ids, attention_mask, n)
        for step in range(max_new_tokens):
            # 1. Extend: every beam's summed log-probability plus each next token's, per row.
            log_probs = logits.log_softmax(dim=-1).view(batch, n, -1)
            vocab = log_probs.shape[-1]
            total = (log_probs + beams.running_scores[:, :, None]).view(batch, n * vocab)
            # 2. Candidates: the best `keep` (beam, token) pairs of each row.
            scores, flat = total.topk(keep, dim=-1)
            origin, token = flat // vocab, flat % vocab
            sequences = beams.extend(origin, token, step)
            ends = torch.isin(token, eos) | (step == max_new_tokens - 1)
            # 3. Finish: candidates among the step's best n that end become hypotheses when they
            #    beat the row's worst one (rows that can no longer improve take none).
            beams.finish(sequences, scores / float((step + 1) ** self.length_penalty), ends, step)
            # 4. Go on: the best n candidates that did not end are the next running beams.
            chosen = beams.advance(sequences, scores, origin, ends)
            # 5. Stop rows whose best running beam cannot beat their worst finished hypothesis.
            beams.close_rows(step, self.length_penalty)
            if not bool(beams.open.any()) or bool(ends.all()):
                break
            # 6. Reorder the cache by beam index and feed each beam's new token.
            cache.reorder_cache((chosen + torch.arange(batch, device=device)[:, None] * n).flatten())
            mask = torch.cat([mask, mask.new_ones((batch * n, 1))], dim=-1)
            position = position + 1  # the position of the token fed now
            logits = model(input_ids=beams.running[:, :, step].reshape(-1, 1), attention_mask=mask,
                           position_ids=position, use_cache=True, logits_to_keep=1,
                           **cache_kwargs(model, cache)).logits[:, -1].float()
        return beams.best(pad_token_id)


def _encode(model, input_ids, attention_mask, n):
    """Encode each prompt once; repeat its cache, mask, last position and logits for its n beams
    (rows b*n + j)."""
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    # Left padding: real tokens count from 0; pad positions get 1, as transformers' generate does.
    position = (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 1)
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position,
                use_cache=True, logits_to_keep=1, **cache_kwargs(model, cache))
    cache.batch_repeat_interleave(n)
    logits = out.logits[:, -1].float().repeat_interleave(n, dim=0)
    return (cache, logits, attention_mask.repeat_interleave(n, dim=0),
            position[:, -1:].repeat_interleave(n, dim=0))


class _Beams:
    """Running beams and finished hypotheses of every row, in generate's tensor layout."""

    def __init__(self, running, running_scores, finished, finished_scores, finished_lengths, is_finished, open_,
                 top_n):
        self.running = running  # [B, n, max_new] tokens of the running beams
        self.running_scores = running_scores  # [B, n] summed log-probabilities
        self.finished = finished  # [B, n, max_new] tokens of the best finished hypotheses
        self.finished_scores = finished_scores  # [B, n] length-penalised scores, best first
        self.finished_lengths = finished_lengths  # [B, n] generated tokens of each hypothesis
        self.is_finished = is_finished  # [B, n] True where a finished slot holds a real hypothesis
        self.open = open_  # [B, 1] False once a row can no longer improve
        self.top_n = top_n  # [keep] True for the first n candidates of a step

    @classmethod
    def start(cls, batch, n, keep, max_new_tokens, device) -> "_Beams":
        import torch

        running = torch.zeros((batch, n, max_new_tokens), dtype=torch.long, device=device)
        # Only beam 0 is live at first: the n copies of a prompt would otherwise all propose the same tokens.
        scores = torch.zeros((batch, n), dtype=torch.float, device=device)
        scores[:, 1:] = NEVER
        return cls(running, scores, running.clone(), torch.full((batch, n), NEVER, device=device),
                   torch.zeros((batch, n), dtype=torch.long, device=device),
                   torch.zeros((batch, n), dtype=torch.bool, device=device),
                   torch.ones((batch, 1), dtype=torch.bool, device=device),
                   torch.arange(keep, device=device) < n)

    def extend(self, origin, token, step):
        """The candidates' token sequences: their beam's tokens, then the new token at ``step``."""
        sequences = _gather(self.running, origin)
        sequences[:, :, step] = token
        return sequences

    def finish(self, sequences, penalised, ends, step) -> None:
        import torch

        new = ends & self.top_n[None, :]
        penalised = penalised + (~self.open).float() * NEVER + (~new).float() * NEVER
        scores = torch.cat([self.finished_scores, penalised], dim=1)
        best = scores.topk(self.finished_scores.shape[1], dim=1).indices
        self.finished = _gather(torch.cat([self.finished, sequences], dim=1), best)
        self.finished_scores = _gather(scores, best)
        lengths = torch.cat([self.finished_lengths, torch.full_like(penalised, step + 1, dtype=torch.long)], dim=1)
        self.finished_lengths = _gather(lengths, best)
        self.is_finished = _gather(torch.cat([self.is_finished, new], dim=1), best)

    def advance(self, sequences, scores, origin, ends):
        """Keep the n best candidates that did not end; returns the beam each came from [B, n]."""
        scores = scores + ends.float() * NEVER
        best = scores.topk(self.running.shape[1], dim=1).indices
        self.running = _gather(sequences, best)
        self.running_scores = _gather(scores, best)
        return _gather(origin, best)

    def close_rows(self, step, length_penalty) -> None:
        """generate's early_stopping=False heuristic: the best running beam at its current length."""
        import torch

        best_possible = self.running_scores[:, :1] / float((step + 1) ** length_penalty)
        worst = torch.where(self.is_finished, self.finished_scores.min(dim=1, keepdim=True).values,
                            torch.tensor(NEVER, device=best_possible.device))
        self.open = self.open & (best_possible > worst).any(dim=-1, keepdim=True)

    def best(self, pad_token_id):
        """Each row's best hypothesis, padded after its end; as wide as the longest of them."""
        import torch

        lengths = self.finished_lengths[:, 0]
        width = int(lengths.max())
        tokens = self.finished[:, 0, :width].clone()
        tokens[torch.arange(width, device=tokens.device)[None, :] >= lengths[:, None]] = pad_token_id
        return tokens


def _gather(tensor, index):
    """``tensor[b, index[b, j], ...]`` for every row b (generate's ``_gather_beams``)."""
    import torch

    while index.dim() < tensor.dim():
        index = index.unsqueeze(-1)
    return torch.take_along_dim(tensor, index, dim=1)
