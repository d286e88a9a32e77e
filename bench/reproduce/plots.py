"""The report's figures (PNG in ``DIR/plots/``), drawn from the finished stages' results."""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.reproduce.study import Study


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, plt: Any, path: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def draw_plots(study: Study) -> None:
    res = study.results
    if "hyperfit" in res:
        checkpoints = res["hyperfit"]["checkpoints"] + res.get("intervention", {}).get("checkpoints", [])
        plot_losses(study, checkpoints)
    if "mechanism" in res:
        plot_ranks(study, res["mechanism"]["per_seed"])
        if study.path("tables", "geometry.csv").exists():
            plot_geometry(study, _geometry_table(study))
        if res["mechanism"]["per_seed"][0].get("lens"):
            plot_lens(study, res["mechanism"]["per_seed"])


def _geometry_table(study: Study) -> list[dict[str, Any]]:
    import csv

    with study.path("tables", "geometry.csv").open(encoding="utf-8") as f:
        return [{k: (float(v) if k in ("layer", "delta_dim", "ci_low", "ci_high") else v) for k, v in r.items()}
                for r in csv.DictReader(f)]


def plot_losses(study: Study, checkpoints: list[dict[str, Any]]) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for c in checkpoints:
        losses = c.get("epoch_losses") or []
        ax.plot(range(1, len(losses) + 1), losses, marker=".", label=f"{c['method']} s{c['seed']}")
    ax.set(xlabel="epoch", ylabel="mean training loss (nats)", yscale="log")
    ax.legend(fontsize=7)
    _save(fig, plt, study.path("plots", "loss.png"))


def plot_ranks(study: Study, per_seed: list[dict[str, Any]]) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    edges = per_seed[0]["histogram"]["edges"]
    labels = [str(lo) if hi - lo == 1 else f"{lo}-{hi - 1}" for lo, hi in zip(edges[:-1], edges[1:])]
    width = 0.8 / len(per_seed)
    for i, r in enumerate(per_seed):
        counts = np.array(r["histogram"]["counts"], dtype=float)
        ax.bar(np.arange(len(labels)) + i * width, counts / max(counts.sum(), 1), width, label=f"seed {r['seed']}")
    ax.set_xticks(np.arange(len(labels)), labels, rotation=60, fontsize=7)
    ax.set(xlabel="base-model rank of the hyperfitted greedy token", ylabel="share of steps")
    ax.legend(fontsize=7)
    _save(fig, plt, study.path("plots", "ranks.png"))


def plot_geometry(study: Study, rows: list[dict[str, Any]]) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    x = np.array([r["layer"] for r in rows])
    y = np.array([r["delta_dim"] for r in rows])
    err = np.array([[r["delta_dim"] - r["ci_low"] for r in rows], [r["ci_high"] - r["delta_dim"] for r in rows]])
    ax.errorbar(x, y, yerr=np.nan_to_num(np.abs(err)), marker="o", capsize=3)
    ax.axhline(0, color="0.6", lw=0.8)
    ax.axvspan(x[-1] - 0.5, x[-1] + 0.5, color="tab:orange", alpha=0.2, label="final block (after the final norm)")
    ax.set(xlabel="layer (0 = embeddings)", ylabel="Delta Dim = PR(hyperfit) - PR(base)")
    ax.legend(fontsize=7)
    _save(fig, plt, study.path("plots", "geometry.png"))


def plot_lens(study: Study, per_seed: list[dict[str, Any]]) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for name in ("base", "hyper"):
        curve = np.mean([r["lens"][name] for r in per_seed], axis=0)
        ax.plot(range(len(curve)), curve, marker=".", label="hyperfitted" if name == "hyper" else "base")
    ax.set(xlabel="layer", ylabel="lens top-1 = final top-1")
    ax.legend(fontsize=7)
    _save(fig, plt, study.path("plots", "lens.png"))
