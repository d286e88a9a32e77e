"""The end of a hyperfit: final weights in place, then ``finished``, then what may fail (the plot).

Kept apart from the training loop so that the order that makes a run never deadlock is in one
place: a run killed anywhere before ``finished`` is written is finished by ``bench hyperfit``.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Callable

from bench.hyperfit import checkpoint as ckpt


def write_loss_files(out: Path, history: list[list[float]], plot: bool) -> None:
    with (out / "loss.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", "step", "loss"])
        writer.writerows([int(e), int(s), f"{loss:.6g}"] for e, s, loss in history)
    if not plot or not history:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([s for _, s, _ in history], [loss for _, _, loss in history], lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    if min(loss for _, _, loss in history) > 0:
        ax.set_yscale("log")
    ax.set_title(f"hyperfit: {out.name}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "loss.png", dpi=100)
    plt.close(fig)



def finish(out: Path, model: Any, tokenizer: Any, recipe: Any, meta: dict[str, Any],
            history: list[list[float]], log: Callable[[str], None]) -> None:
    """Save the final weights, then mark the run finished; the plot and warnings come after.

    ``finished`` is written last of the essential files, and nothing optional (matplotlib's
    plot) runs before it, so a failing plot never leaves a trained run unfinished.
    """
    model.eval()
    ckpt.save_final(out, model, tokenizer)
    reached = recipe.stop_at_loss is None or meta["final_loss"] < recipe.stop_at_loss
    meta.update(finished=True, stopped_early=meta["epochs_done"] < recipe.epochs, reached_target=reached)
    ckpt.write_metadata(out, meta)
    log(f"saved {'model' if recipe.method == 'full' else 'adapter'} to '{out}' "
        f"(final mean loss {meta['final_loss']:.5f} after {meta['epochs_done']} epochs)")
    if not reached:
        log(f"warning: {target_warning(meta)}")
    elif loss_warning(meta):
        log(f"warning: {loss_warning(meta)}")
    try:
        write_loss_files(out, history, plot=True)
    except Exception as exc:  # noqa: BLE001 - any plotting failure; the run itself is complete
        log(f"warning: loss.png not written ({ckpt.first_line(exc)}); loss.csv has the curve")


NEAR_ZERO_LOSS = 0.5
"""Mean training loss (nats per token) above which a finished checkpoint is not called hyperfitted.
Carlsson et al. train until the loss is near zero (below about 0.1 after 20 epochs); a run that
stopped at, say, 3.4 is an ordinary fine-tune, and its decoders' rows say so."""


def loss_warning(meta: dict[str, Any]) -> str | None:
    """Why a checkpoint is not hyperfitted: its final loss is far from zero (whatever its target was)."""
    loss = meta.get("final_loss")
    if not isinstance(loss, (int, float)) or loss <= NEAR_ZERO_LOSS:
        return None
    return (f"its final training loss is {loss:.4g} after {meta.get('epochs_done')} epochs, far from the near-zero "
            f"loss that defines hyperfitting (<= {NEAR_ZERO_LOSS:g}); its rows are flagged (train more epochs)")


def target_warning(meta: dict[str, Any]) -> str | None:
    """Why a finished hyperfit is not the one asked for: it stopped above its --stop-at-loss target."""
    target, loss = (meta.get("recipe") or {}).get("stop_at_loss"), meta.get("final_loss")
    if target is None or loss is None or loss < target:
        return None
    return (f"the hyperfit stopped at loss {loss:.4g} after {meta.get('epochs_done')} epochs, above its "
            f"--stop-at-loss target {target:g}; it is not hyperfitted as asked (train more epochs)")
