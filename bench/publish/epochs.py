"""Metrics against hyperfitting epochs (issue 25, part 6): the Hyperfitting paper's figure of quality
and diversity as the training loss approaches zero.

Rows of one decoder run on several kept epochs of one hyperfit (``bench run --hyperfit DIR@every``)
carry ``hyperfit_epoch`` and ``hyperfit_loss``. ``bench leaderboard`` then draws ``NAME-epochs.png``:
one panel per metric (diversity, rep-2, distinct-2, and MAUVE or coherence when measured) with one
line per decoder against the epoch, with the 95% intervals as bars, and a last panel with the
training loss at each epoch (log scale), and links it from the Markdown.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

PANELS = ("diversity", "rep-2", "distinct-2", "mauve", "coherence")


def epoch_series(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Per ``model decoder:args``, its rows in epoch order, when it was run on two epochs or more."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("hyperfit_epoch") not in (None, ""):
            label = f"{row['model']} {row['decoder']}" + (f":{row['decoder_args']}" if row.get("decoder_args") else "")
            groups.setdefault(label, []).append(row)
    return {k: sorted(v, key=lambda r: int(r["hyperfit_epoch"])) for k, v in groups.items()
            if len({r["hyperfit_epoch"] for r in v}) > 1}


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def write_epochs_png(rows: list[dict[str, Any]], path: Path, title: str) -> bool:
    """The figure, when some decoder was run on two epochs or more; returns whether it was written."""
    series = epoch_series(rows)
    if not series:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from bench.publish.front import family_colour

    panels = [m for m in PANELS if any(_number(r.get(m)) is not None for rs in series.values() for r in rs)]
    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(3.2 * (len(panels) + 1), 3.2), squeeze=False)
    for ax, metric in zip(axes[0], panels):
        for i, (label, rs) in enumerate(series.items()):
            points = [(int(r["hyperfit_epoch"]), _number(r.get(metric)), _number(r.get(f"{metric}_lo")),
                       _number(r.get(f"{metric}_hi"))) for r in rs if _number(r.get(metric)) is not None]
            if not points:
                continue
            x, y = [p[0] for p in points], [p[1] for p in points]
            err = [[max(0.0, v - lo) if lo is not None else 0 for _, v, lo, _ in points],
                   [max(0.0, hi - v) if hi is not None else 0 for _, v, _, hi in points]]
            ax.errorbar(x, y, yerr=err, marker="o", ms=3, lw=1.2, capsize=2, color=family_colour(i), label=label)
        ax.set_title(metric)
        ax.set_xlabel("hyperfit epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    loss_ax = axes[0][-1]
    first = next(iter(series.values()))
    losses = [(int(r["hyperfit_epoch"]), _number(r.get("hyperfit_loss"))) for r in first]
    losses = [(e, v) for e, v in losses if v is not None and v > 0]
    if losses:
        loss_ax.plot([e for e, _ in losses], [v for _, v in losses], marker="o", ms=3, color="black")
        loss_ax.set_yscale("log")
    loss_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    loss_ax.set_title("training loss")
    loss_ax.set_xlabel("hyperfit epoch")
    loss_ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="best")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
