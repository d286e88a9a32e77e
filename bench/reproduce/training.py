"""Stage 1, hyperfit: full fine-tuning, LoRA and Late-Stage LoRA at independent seeds.

Each checkpoint is an ordinary ``bench hyperfit`` folder in ``DIR/checkpoints/NAME-sSEED`` (it
resumes by epoch); its wall time is kept beside it once it is finished. The intervention stage
trains its two LoRA variants with the same function.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bench.reproduce.study import Study, read_json, write_json


@dataclass(frozen=True)
class Method:
    """One way of hyperfitting, as the tables name it."""

    name: str
    """Row name (full, lora, late-lora, late-lora-no-final, final-lora)."""
    method: str
    """``bench hyperfit --method``."""
    late_layers: int = 5
    """Blocks a late-lora method adapts, counted from the end."""
    skip_last: int = 0
    """Of those, the last blocks left out (1: every late block but the final one)."""
    description: str = ""


def methods(settings: Any) -> list[Method]:
    """The three methods of stage 1 (Late-Stage LoRA is the primary one)."""
    n = settings.late_layers
    return [Method("full", "full", description="every parameter"),
            Method("lora", "lora", description="LoRA on every block"),
            Method("late-lora", "late-lora", n, description=f"LoRA on the last {n} blocks (Late-Stage LoRA)")]


def intervention_methods(settings: Any) -> list[Method]:
    n = settings.late_layers
    return [Method("late-lora-no-final", "late-lora", n, 1,
                   description=f"LoRA on the last {n} blocks without the final one"),
            Method("final-lora", "late-lora", 1, description="LoRA on the final block only")]


def seeds_of(settings: Any, method: Method) -> list[int]:
    return list(range(settings.hyperfit_seeds if method.name == "late-lora" else settings.other_seeds))


def recipe(settings: Any, method: Method, seed: int) -> Any:
    from bench.hyperfit.train import Recipe

    return Recipe(skip_last=method.skip_last, method=method.method, num_sequences=settings.num_sequences, seq_len=settings.seq_len,
                  epochs=settings.epochs, lr=settings.lr_full if method.method == "full" else settings.lr_lora,
                  batch_size=8, seed=seed, lora_r=settings.lora_r, lora_alpha=2.0 * settings.lora_r,
                  late_layers=method.late_layers, stop_at_loss=settings.stop_at_loss,
                  dtype=settings.dtype)


def train_one(study: Study, method: Method, seed: int) -> dict[str, Any]:
    """Train (or continue, or read back) one checkpoint; the row of ``methods.csv`` for it."""
    from bench.hyperfit.train import train

    path = study.path("checkpoints", f"{method.name}-s{seed}")
    timing = path.with_name(path.name + ".timing.json")
    s = study.settings
    spent = read_json(timing)["wall_s"] if timing.exists() else None
    start = time.perf_counter()
    result = train(s.model, s.data, path, recipe(s, method, seed), device=s.device, show_progress=False,
                   log=lambda msg: study.log(f"  {method.name} seed {seed}: {msg}"))
    if spent is None:
        spent = round(time.perf_counter() - start, 1)
        write_json(timing, {"wall_s": spent})
    meta = result.metadata
    return {"method": method.name, "description": method.description, "seed": seed, "path": str(path),
            "folder": f"checkpoints/{path.name}",
            "trainable_parameters": meta.get("trainable_parameters"), "total_parameters": meta.get("total_parameters"),
            "epochs": meta.get("epochs_done"), "final_loss": meta.get("final_loss"), "wall_s": spent,
            "epoch_losses": meta.get("epoch_losses", [])}


def hyperfit_stage(study: Study) -> dict[str, Any]:
    rows = [train_one(study, m, seed) for m in methods(study.settings) for seed in seeds_of(study.settings, m)]
    return {"checkpoints": rows}


def methods_table(checkpoints: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``methods.csv``: one row per checkpoint (method, seed), parameters, time and loss."""
    return [{"method": c["method"], "seed": c["seed"], "description": c["description"],
             "trainable_parameters": c["trainable_parameters"], "total_parameters": c["total_parameters"],
             "trainable_share": (c["trainable_parameters"] / c["total_parameters"]
                                 if c["trainable_parameters"] and c["total_parameters"] else None),
             "epochs": c["epochs"], "first_epoch_loss": c["epoch_losses"][0] if c["epoch_losses"] else None,
             "final_loss": c["final_loss"], "wall_s": c["wall_s"],
             "loss_curve": f"{c['folder']}/loss.csv"} for c in checkpoints]
