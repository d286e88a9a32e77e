"""Every setting of ``bench reproduce beyond-temperature``, and its three presets.

A preset is a full :class:`Settings`; each command-line option replaces one value. The settings are
written to ``DIR/settings.json`` (with versions) before any stage runs, and a study folder holding
other settings is refused, so a resumed study is the same study.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from bench.errors import BenchError, check


@dataclass(frozen=True)
class Settings:
    """What the study runs. Sizes are per condition; seeds are counts (seeds 0..N-1)."""

    model: str
    """Base model (HF folder or GGUF file)."""
    data: str
    """Training text of the hyperfits (.txt, .jsonl, a folder)."""
    suite: str = "wikitext"
    """Prompt suite every condition decodes."""
    num_prompts: int = 16
    """Prompts (the unit of every paired test)."""
    max_new_tokens: int = 64
    """Tokens per continuation."""
    batch_size: int = 16
    """Prompts per generation batch (records do not depend on it)."""
    num_sequences: int = 32
    """Hyperfit training sequences."""
    seq_len: int = 128
    """Tokens per training sequence."""
    epochs: int = 30
    """Most hyperfit epochs (``stop_at_loss`` may end a run earlier)."""
    lr_full: float = 1e-5
    """Adam learning rate of full fine-tuning."""
    lr_lora: float = 1e-3
    """Adam learning rate of every LoRA method."""
    lora_r: int = 16
    """LoRA rank."""
    late_layers: int = 5
    """Late-Stage LoRA adapts the last this many blocks."""
    stop_at_loss: float | None = 0.05
    """End a hyperfit once an epoch's mean training loss is below this (None: run every epoch)."""
    hyperfit_seeds: int = 3
    """Independent Late-Stage LoRA runs (the primary method: data order and adapter init)."""
    other_seeds: int = 1
    """Independent runs of full fine-tuning, LoRA and the two intervention LoRAs."""
    sampling_seeds: int = 3
    """Seeds of every sampled decoder."""
    top_p: float = 0.95
    """Nucleus of the top-p baseline."""
    contrastive_k: int = 5
    """Candidates of contrastive search."""
    contrastive_alpha: float = 0.6
    """Degeneration penalty of contrastive search."""
    reweight_alpha: float = 0.1
    """Static reweighting's alpha in the decode stage (the sweep is ``alphas``)."""
    reweight_top_k: int = 500
    """Tokens whose rank rises most that get the static offset."""
    alphas: tuple[float, ...] = (0.05, 0.1, 0.2, 0.5)
    """The static-reweighting ablation's sweep (alpha 0, the base model, is always added)."""
    calib_prompts: int = 16
    """Calibration prompts of T* and of the static offset."""
    calib_tokens: int = 32
    """Greedy tokens per calibration prompt."""
    scores: tuple[str, ...] = ("mauve", "coherence")
    """Model-based scores (the base model is MAUVE's featurizer and coherence's scorer)."""
    tail_rank: int = 10
    """Base rank beyond which a hyperfitted override is from the deep tail."""
    logit_lens: bool = True
    """Run the logit lens in the mechanism stage."""
    n_boot: int = 1000
    """Bootstrap replicates of every interval of the tables."""
    n_boot_p: int = 20_000
    """Bootstrap replicates of every claim's interval and p-value."""
    alpha: float = 0.05
    """Family-wise error rate of the Holm-corrected claims."""
    seed: int = 0
    """Base seed of the bootstraps."""
    device: str = "auto"
    """auto, cpu, cuda or cuda:N."""
    dtype: str = "float32"
    """Weights' dtype for training and decoding."""
    judge_url: str | None = None
    """OpenAI-compatible endpoint of the pairwise judge (http://host:port/v1), with --judge-model."""
    judge_model: str | None = None
    """Model name sent to --judge-url."""
    judge_key_env: str = "OPENAI_API_KEY"
    """Environment variable holding the judge's API key (its value is never written)."""
    judge_local: str | None = None
    """A local model (HF folder or GGUF file) to judge with instead of an endpoint."""
    judge_chat_template: str | None = None
    """plain or a Jinja file: the endpoint judge renders its messages itself and asks /completions."""

    def validate(self) -> None:
        for name in ("num_prompts", "max_new_tokens", "batch_size", "num_sequences", "epochs", "lora_r",
                     "late_layers", "hyperfit_seeds", "other_seeds", "sampling_seeds", "calib_prompts",
                     "calib_tokens", "n_boot", "n_boot_p"):
            check(getattr(self, name) >= 1, f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        check(self.late_layers >= 2, f"--late-layers must be at least 2 (the intervention trains the last blocks "
                                     f"without the final one), got {self.late_layers}")
        check(self.num_prompts >= 2, f"--num-prompts must be at least 2 for paired tests, got {self.num_prompts}")
        check(0 < self.alpha < 1, f"--alpha must be in (0, 1), got {self.alpha}")
        check(0 < self.top_p <= 1, f"--top-p must be in (0, 1], got {self.top_p}")
        check(len(self.alphas) > 0, "--alphas: give at least one alpha")
        unknown = sorted(set(self.scores) - {"mauve", "coherence", "coherence-sim", "perplexity"})
        check(not unknown, f"--scores: unknown score {', '.join(unknown)} (mauve, coherence, coherence-sim, perplexity)")
        check(not (self.judge_url and self.judge_local), "give one judge: --judge-url (with --judge-model) or --judge-local")
        check(not self.judge_url or bool(self.judge_model), "--judge-url needs --judge-model")
        check(not (self.judge_model or self.judge_chat_template) or bool(self.judge_url),
              "--judge-model and --judge-chat-template go with --judge-url")

    def key(self) -> str:
        """A digest of the settings but the judge's: a study folder holds one study. A judge given,
        changed or dropped later redoes only the judge and statistics stages (see :class:`Study`)."""
        kept = {k: v for k, v in self.as_json().items() if k not in JUDGE_FIELDS}
        return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:16]

    def judge(self) -> dict[str, Any] | None:
        """The pairwise judge these settings name, as recorded (None: no judge given)."""
        if not (self.judge_url or self.judge_local):
            return None
        recorded = self.as_json()
        return {f: recorded[f] for f in JUDGE_FIELDS}

    def as_json(self) -> dict[str, Any]:
        """The settings as written to ``settings.json`` (a judge URL's credentials redacted)."""
        from bench.http import redact

        d = asdict(self)
        d["alphas"], d["scores"] = list(self.alphas), list(self.scores)
        if d["judge_url"]:
            d["judge_url"] = redact(d["judge_url"])
        return d


JUDGE_FIELDS = ("judge_url", "judge_model", "judge_key_env", "judge_local", "judge_chat_template")
"""The settings of the pairwise judge (outside :meth:`Settings.key`)."""


def _shared(*parts: str) -> str:
    from bench.locations import shared_dir

    root = shared_dir()
    return str(Path(root, *parts)) if root is not None else str(Path("..", "shared", *parts))


def preset(name: str) -> Settings:
    """The ``ci``, ``cpu`` or ``paper`` settings."""
    grimm = _shared("data", "pd-stories", "grimms_fairy_tales_pg52521.txt")
    if name == "ci":  # stories260K, a few minutes on 2 cores: every stage and table, tiny sizes
        return Settings(model=_shared("models", "stories260K"), data=grimm, num_prompts=12, max_new_tokens=32,
                        num_sequences=16, seq_len=64, epochs=40, lr_full=2e-3, lr_lora=1e-2, lora_r=8,
                        stop_at_loss=0.3, hyperfit_seeds=2, other_seeds=1, sampling_seeds=2,
                        alphas=(0.1, 0.5), calib_prompts=8, calib_tokens=16, reweight_top_k=50,
                        n_boot=200, n_boot_p=2000)
    if name == "cpu":  # SmolLM2-135M under 90 minutes on 2 idle cores: late-LoRA at 3 seeds, the rest at 1
        return Settings(model=_shared("models", "smollm2-135m-instruct"), data=grimm, num_prompts=24,
                        max_new_tokens=64, batch_size=24, num_sequences=32, seq_len=128, epochs=30, lr_full=1e-4,
                        lr_lora=3e-3, stop_at_loss=0.05, hyperfit_seeds=3, other_seeds=1, sampling_seeds=2,
                        calib_prompts=16, calib_tokens=32)
    if name == "paper":  # Carlsson et al.: 2000 sequences x 256 tokens, 20 epochs, lr 1e-6 (a GPU's work)
        return Settings(model="", data="", num_prompts=300, max_new_tokens=256, num_sequences=2000, seq_len=256,
                        epochs=20, lr_full=1e-6, lr_lora=1e-4, stop_at_loss=None, hyperfit_seeds=3,
                        other_seeds=3, sampling_seeds=5, calib_prompts=32, calib_tokens=64, batch_size=32)
    raise BenchError(f"unknown preset '{name}' (ci, cpu or paper)")


PRESETS = ("ci", "cpu", "paper")


def with_options(base: Settings, options: dict[str, Any]) -> Settings:
    """``base`` with every option that was given (None: not given)."""
    known = {f.name for f in fields(Settings)}
    given = {k: v for k, v in options.items() if k in known and v is not None}
    settings = replace(base, **given)
    check(bool(settings.model), "--model is required with this preset (the paper preset names no model)")
    check(bool(settings.data), "--data is required with this preset (the paper preset names no training text)")
    settings.validate()
    return settings
