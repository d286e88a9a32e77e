"""A fake backend for fast tests of planning, the store, resume and leaderboards, without torch.

Like inspect_ai's ``mockllm``: ``--backend fake`` with any model name "generates" words from a
fixed list, drawn by a pseudo-random generator keyed by (model, prompt, the decoder's engine
parameters) and, for sampling decoders, the record's seed. So it has the properties the harness
relies on: greedy is deterministic, a record's text depends only on its own seed (not the batch,
not an interruption), and a hotter temperature gives more varied text. It runs logits decoders
only (there are no logits: it reads the parameters) and nothing that needs model weights.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

from bench.backends.base import Capabilities, Continuation, refusal
from bench.decoding import Declaration, Decoder

WORDS = tuple(f"{a}{b}" for a in ("ba", "ko", "mi", "tu", "re", "sa", "lo", "fe") for b in
              ("n", "t", "ro", "la", "ve", "sh", "k", "m", "di", "po", "ru", "ge", "x", "zo", "b", "q",
               "ya", "we", "hi", "ju", "ck", "ph", "st", "gr", "nd"))
"""The fake vocabulary: 200 words; id i is ``WORDS[i - 1]``, id 0 is EOS."""
EOS = 0
CONTEXT = 4096
"""The fake model's context length, in words."""


@dataclass(frozen=True)
class FakeConfig:
    max_position_embeddings: int = CONTEXT
    vocab_size: int = len(WORDS) + 1


def _word_id(word: str) -> int:
    return 1 + int.from_bytes(hashlib.sha256(word.encode()).digest(), "big") % len(WORDS)


class FakeTokenizer:
    """Whitespace words; unknown words get a stable id from their hash (remembered: prompts share words)."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}

    def __call__(self, text: str) -> dict[str, list[int]]:
        ids = self._ids
        out = []
        for w in text.split():
            i = ids.get(w)
            if i is None:
                i = _word_id(w)
                if len(ids) < 1 << 16:  # bounded: a million distinct prompt words need not be kept
                    ids[w] = i
            out.append(i)
        return {"input_ids": out}


class FakeBackend:
    name: ClassVar[str] = "fake"
    capabilities: ClassVar[Capabilities] = Capabilities(
        model_decoders=False, features=frozenset({"temperature", "top_k", "top_p", "min_p"}), hyperfit=False,
        calibration=False, one_filter=False)
    model_options: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, model: str):
        self.model = model
        self.device = "fake"
        self.tokenizer = FakeTokenizer()

    # -- plan time ---------------------------------------------------------------------------------
    @classmethod
    def version(cls, options: Any) -> str:
        return "fake-1"

    @classmethod
    def run_dtype(cls, options: Any) -> str:
        return "float32" if options.dtype == "auto" else options.dtype

    @classmethod
    def refusal(cls, decl: Declaration) -> str | None:
        return refusal(decl, cls.name, cls.capabilities)

    @classmethod
    def check_plan(cls, options: Any, decls: list[Declaration]) -> None:
        return None

    @classmethod
    def model_files(cls, options: Any, model: str) -> tuple[Any, Any]:
        return FakeTokenizer(), FakeConfig()

    @classmethod
    def load(cls, options: Any, model: Any, hyperfit: str | None) -> "FakeBackend":
        return cls(model.name)

    # -- run time ----------------------------------------------------------------------------------
    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.tokenizer(t)["input_ids"] for t in texts]

    def decode(self, token_ids: Sequence[int]) -> str:
        return " ".join(WORDS[i - 1] for i in token_ids)

    def applied(self, decoder: Decoder, max_new_tokens: int) -> dict[str, Any]:
        """The engine parameters the fake words are drawn by (recorded in the run header)."""
        params = decoder.engine_params()
        return {"backend": "fake", "max_new_tokens": max_new_tokens,
                "engine_params": {"temperature": params.temperature, "top_k": params.top_k, "top_p": params.top_p,
                                  "min_p": params.min_p}}

    def continue_batch(self, prompts: Sequence[str], decoder: Decoder, *, max_new_tokens: int,
                       seeds: Sequence[int]) -> list[Continuation]:
        params = decoder.engine_params()
        # Greedy ignores the seed; a higher temperature (or a looser filter) draws from more words.
        spread = 1.0 if params.greedy else min(1.0, params.temperature) * params.top_p
        if params.top_k:
            spread = min(spread, params.top_k / len(WORDS))
        words = max(2, round(8 + (len(WORDS) - 8) * spread)) if not params.greedy else 6
        outs = []
        for prompt, seed in zip(prompts, seeds):
            key = f"{self.model}\x1f{prompt}\x1f{params.temperature},{params.top_k},{params.top_p},{params.min_p}"
            rng = random.Random(hashlib.sha256(f"{key}\x1f{0 if params.greedy else seed}".encode()).digest())
            ids: list[int] = []
            while len(ids) < max_new_tokens:
                if len(ids) >= 4 and rng.random() < 0.02:
                    break  # an EOS now and then, so finish reasons vary
                ids.append(1 + rng.randrange(words))
            outs.append(Continuation(ids, "length" if len(ids) == max_new_tokens else "eos"))
        return outs
