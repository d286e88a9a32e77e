"""Write the report folder: ``report.md``, one CSV per table, PNG plots and ``settings.json``."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from bench.analysis.analyze import Results, estimate_dict
from bench.stats import Estimate

CONTROL_METRICS = ("ttr", "rep-2", "rep-3", "diversity", "agreement", "entropy")
SWEEP_METRICS = ("ttr", "rep-2", "rep-3", "diversity")


def rank_bins(vocab: int) -> list[int]:
    """Left edges of the rank histogram's bins (1, 2, 3, 4-5, 6-10, ..., roughly log-spaced), ending at vocab + 1."""
    edges, scale = [1, 2, 3, 4, 6], 10
    while scale < vocab:
        edges += [e for e in (scale + 1, 2 * scale + 1, 5 * scale + 1) if e <= vocab]
        scale *= 10
    return sorted(set(e for e in edges if e <= vocab)) + [vocab + 1]


def _label(lo: int, hi: int) -> str:
    return str(lo) if hi - lo == 1 else f"{lo}-{hi - 1}"


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        out.update(estimate_dict(value, key) if isinstance(value, Estimate) else {key: value})
    return out


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _figure(path: Path, caption: str) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import textwrap

    fig = plt.figure(figsize=(7.5, 4.8))
    fig.text(0.01, 0.005, textwrap.fill(caption, 150), fontsize=6.5, color="0.3", va="bottom")
    return fig, plt


def _save(fig: Any, plt: Any, path: Path) -> None:
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _errorbar(ax: Any, x: Any, estimates: list[Estimate], **kw: Any) -> None:
    values = np.array([e.value for e in estimates])
    err = np.array([[e.value - e.low for e in estimates], [e.high - e.value for e in estimates]])
    ax.errorbar(x, values, yerr=np.nan_to_num(err), capsize=3, marker="o", **kw)


def plot_control(res: Results, path: Path, caption: str) -> None:
    fig, plt = _figure(path, caption)
    ax = fig.add_subplot(111)
    width = 0.8 / len(res.control)
    metrics = ("ttr", "rep-2", "rep-3", "agreement")
    for i, row in enumerate(res.control):
        x = np.arange(len(metrics)) + i * width
        est = [row[m] for m in metrics]
        err = np.nan_to_num([[e.value - e.low for e in est], [e.high - e.value for e in est]])
        ax.bar(x, [e.value for e in est], width, yerr=err, capsize=3, label=row["condition"])
    ax.set_xticks(np.arange(len(metrics)) + width * (len(res.control) - 1) / 2, metrics)
    ax.set_ylabel("fraction")
    ax.set_title("Entropy-matched control")
    ax.legend(fontsize=8)
    _save(fig, plt, path)


def plot_ranks(res: Results, path: Path, caption: str) -> list[dict[str, Any]]:
    edges = rank_bins(res.vocab_size)
    counts, _ = np.histogram(res.ranks.ranks, bins=edges)
    total = max(int(counts.sum()), 1)
    fig, plt = _figure(path, caption)
    ax = fig.add_subplot(111)
    labels = [_label(lo, hi) for lo, hi in zip(edges[:-1], edges[1:])]
    colors = ["tab:blue" if lo == 1 else "tab:orange" if lo <= res.ranks.tail_rank else "tab:red" for lo in edges[:-1]]
    ax.bar(range(len(labels)), counts / total, color=colors)
    ax.set_xticks(range(len(labels)), labels, rotation=45, fontsize=8)
    ax.set_xlabel("base-model rank of the hyperfitted model's greedy token")
    ax.set_ylabel("fraction of steps")
    ax.set_yscale("log")
    ax.set_title(f"Rank reordering (red: deep tail, rank > {res.ranks.tail_rank})")
    _save(fig, plt, path)
    return [{"rank_bin": lab, "rank_low": lo, "rank_high": hi - 1, "count": int(c), "fraction": c / total}
            for lab, lo, hi, c in zip(labels, edges[:-1], edges[1:], counts)]


def plot_sweep(res: Results, path: Path, caption: str) -> None:
    fig, plt = _figure(path, caption)
    axes = [fig.add_subplot(1, 2, i + 1) for i in range(2)]
    points = res.sweep.points
    x = [max(p.alpha, 1e-3) for p in points]  # alpha = 0 drawn at 1e-3 on the log axis
    hyper = next(r for r in res.control if r["condition"] == "hyperfitted greedy")
    for ax, metrics in zip(axes, (("rep-2", "rep-3"), ("ttr", "diversity"))):
        for m in metrics:
            _errorbar(ax, x, [p.metrics[m] for p in points], label=f"static reweight {m}")
            ax.axhline(hyper[m].value, linestyle="--", color="0.4", linewidth=1)
            ax.annotate(f"hyperfitted {m}", (x[0], hyper[m].value), fontsize=7, color="0.3")
        ax.set_xscale("log")
        ax.set_xlabel("alpha (0 drawn at 1e-3)")
        ax.legend(fontsize=7)
    fig.suptitle("Static vocabulary reweighting of the base model")
    _save(fig, plt, path)


def plot_geometry(res: Results, path: Path, caption: str) -> None:
    fig, plt = _figure(path, caption)
    layers = [r["layer"] for r in res.geometry]
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    ax1.plot(layers, [r["pr_base"] for r in res.geometry], marker="o", label="base")
    ax1.plot(layers, [r["pr_hyper"] for r in res.geometry], marker="s", label="hyperfitted")
    ax1.set_xlabel("layer (0 = embeddings)")
    ax1.set_ylabel("participation ratio")
    ax1.legend(fontsize=8)
    _errorbar(ax2, layers, [r["cosine"] for r in res.geometry], label="cosine(base, hyperfitted)")
    ax2.set_xlabel("layer (0 = embeddings)")
    ax2.set_ylabel("cosine similarity")
    ax3 = ax2.twinx()
    _errorbar(ax3, layers, [r["l2"] for r in res.geometry], color="tab:red", label="L2 distance")
    ax3.set_ylabel("L2 distance", color="tab:red")
    fig.suptitle("Layer-wise geometry of the hidden states")
    _save(fig, plt, path)


def plot_lens(res: Results, path: Path, caption: str) -> None:
    fig, plt = _figure(path, caption)
    ax = fig.add_subplot(111)
    layers = [r["layer"] for r in res.lens]
    _errorbar(ax, layers, [r["base"] for r in res.lens], label="base")
    _errorbar(ax, layers, [r["hyper"] for r in res.lens], label="hyperfitted")
    ax.set_xlabel("layer (0 = embeddings)")
    ax.set_ylabel("top-1 agreement with the final layer")
    ax.set_title("Logit lens")
    ax.legend(fontsize=8)
    _save(fig, plt, path)


def _fmt(x: float, digits: int = 3) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def write_report(res: Results, out: Path) -> dict[str, Any]:
    """Write every file of the report into ``out``; return the figure records of ``settings.json``."""
    out.mkdir(parents=True, exist_ok=True)
    o, n = res.options, res.prompts
    run = (f"n={n} prompts from '{o.suite}', {o.max_new_tokens} new tokens max, seed {o.seed}, "
           f"{o.n_boot} bootstrap resamples, 95% CI")
    t_star = res.calibration["temperature"]
    figures: dict[str, dict[str, Any]] = {}

    def caption(name: str, text: str, **extra: Any) -> str:
        figures[name] = {"n_prompts": n, "settings": text, **extra}
        return f"{text}; {run}"

    _write_csv(out / "control.csv", [_flat(r) for r in res.control])
    plot_control(res, out / "control.png", caption("control.png", f"T*={t_star:.4f} (global entropy match on "
                 f"{res.calibration['calibration_positions']} calibration positions)"))
    rk = res.ranks
    summary = [{"metric": k, **estimate_dict(getattr(rk, k), "value"), "n_prompts": getattr(rk, k).n}
               for k in ("override", "deep_tail", "deep_tail_all", "mean_rank")]
    summary.append({"metric": "median_rank", "value": rk.median_rank, "value_low": "", "value_high": "", "n_prompts": n})
    _write_csv(out / "ranks.csv", summary)
    hist = plot_ranks(res, out / "rank_histogram.png",
                      caption("rank_histogram.png", f"{rk.steps} greedy steps, tail rank > {rk.tail_rank}", steps=rk.steps))
    _write_csv(out / "rank_histogram.csv", hist)
    sweep_rows = [{"alpha": p.alpha, **_flat(p.metrics)} for p in res.sweep.points]
    _write_csv(out / "reweight.csv", sweep_rows)
    cal = res.sweep.calibration
    plot_sweep(res, out / "reweight.png", caption("reweight.png", f"K={cal['reweight_tokens']} tokens, "
               f"{'greedy' if o.reweight_greedy else 'sampled at T=1'}, alphas {', '.join(map(str, o.alphas))}"))
    _write_csv(out / "geometry.csv", [_flat(r) for r in res.geometry])
    plot_geometry(res, out / "geometry.png", caption("geometry.png", "inputs: prompts + hyperfitted greedy "
                  "continuations, every real token but the first"))
    if res.lens:
        _write_csv(out / "logit_lens.csv", [_flat(r) for r in res.lens])
        plot_lens(res, out / "logit_lens.png", caption("logit_lens.png", "positions predicting the hyperfitted "
                  "greedy continuation tokens"))
    settings = {**res.settings(), "figures": figures}
    (out / "settings.json").write_text(json.dumps(settings, indent=2, default=str) + "\n", encoding="utf-8")
    (out / "report.md").write_text(_markdown(res, run, figures), encoding="utf-8")
    return figures


def calibration_prompts(options: Any, n_prompts: int) -> str:
    """How many prompts the calibration used: ``--calib-prompts``, capped at the prompts analysed (and said so)."""
    used = min(options.calib_prompts, n_prompts)
    if used < options.calib_prompts:
        return f"{used} prompts: --calib-prompts {options.calib_prompts} capped at the {n_prompts} prompts analysed"
    return f"{used} prompts"


def entropy_positions_note(res: Results) -> str:
    """Why the table's entropies differ from the matched value: two measurements on different positions."""
    by_name = {r["condition"]: r for r in res.control}
    star, hyper = by_name.get("base T*"), by_name.get("hyperfitted greedy")
    cal = res.calibration
    text = (f"Two measurements, on different positions. The match above ({cal['achieved_entropy']:.4f} against "
            f"{cal['target_entropy']:.4f} nats) is over the calibration positions: contexts from the hyperfitted "
            "model's own greedy continuations, the same for both models. The table's entropy column is over the "
            "positions each condition decoded: its own continuation")
    if star is not None and hyper is not None:
        text += (f" (base at T*: {star['entropy'].fmt()}; hyperfitted greedy: {hyper['entropy'].fmt()}), so the two "
                 "need not agree: the base model sampling its own text visits other contexts than the "
                 "hyperfitted model's greedy text")
    return text + "."


def _markdown(res: Results, run: str, figures: dict[str, Any]) -> str:
    o, cal, rk = res.options, res.calibration, res.ranks
    parts = [f"# Beyond Temperature: {Path(o.model).name} vs hyperfitted {Path(o.hyperfit).name}", "",
             f"Base `{o.model}`, hyperfitted `{o.hyperfit}`, {res.layers} layers, vocabulary {res.vocab_size}. {run}. "
             "Intervals are percentile bootstrap intervals over prompts. All settings: `settings.json`.", "",
             "## 1. Entropy-matched control", "",
             f"T* = {cal['temperature']:.4f} matches the base model's mean entropy ({cal['achieved_entropy']:.4f} nats, "
             f"{cal['base_entropy_t1']:.4f} at T=1) to the hyperfitted model's ({cal['target_entropy']:.4f}) over "
             f"{cal['calibration_positions']} calibration positions ({calibration_prompts(o, res.prompts)} x "
             f"{o.calib_tokens} greedy tokens of the hyperfitted model), as the `entropy-matched` decoder does. "
             "Agreement = fraction of "
             "tokens equal to the hyperfitted model's top-1; entropy = mean entropy (nats) of the distribution decoded "
             "from. Table: `control.csv`.", "", entropy_positions_note(res), ""]
    parts.append(_md_table(["condition", *CONTROL_METRICS],
                           [[r["settings"], *[r[m].fmt() for m in CONTROL_METRICS]] for r in res.control]))
    parts += ["", "![control](control.png)", "",
              "## 2. Rank reordering", "",
              f"Along the hyperfitted model's greedy continuations ({rk.steps} steps), the base model's rank of the chosen "
              f"token. Deep tail: base rank > {rk.tail_rank}. Tables: `ranks.csv`, `rank_histogram.csv`.", "",
              _md_table(["quantity", "value [95% CI]"], [
                  ["steps where the hyperfitted model overrides the base top-1", rk.override.fmt()],
                  [f"of those, from the deep tail (rank > {rk.tail_rank})", rk.deep_tail.fmt()],
                  ["deep-tail overrides among all steps", rk.deep_tail_all.fmt()],
                  ["mean base rank (per-prompt means)", rk.mean_rank.fmt(2)],
                  ["median base rank (all steps)", _fmt(rk.median_rank, 1)]]),
              "", "![rank histogram](rank_histogram.png)", "",
              "## 3. Static vocabulary reweighting", ""]
    sc = res.sweep.calibration
    hyper = next(r for r in res.control if r["condition"] == "hyperfitted greedy")
    parts += [f"`static-reweight` on the base model ({'greedy' if o.reweight_greedy else 'sampled at T=1'}): logits + "
              f"alpha x offset, the offset being the mean centred logit change of the {sc['reweight_tokens']} tokens whose "
              f"rank rises most after hyperfitting ({sc['calibration_positions']} calibration positions; offset L2 "
              f"{sc['offset_l2']:.3f}). alpha = 0 is the base model. Table: `reweight.csv`.", "",
              _md_table(["alpha", *SWEEP_METRICS],
                        [[f"{p.alpha:g}", *[p.metrics[m].fmt() for m in SWEEP_METRICS]] for p in res.sweep.points]
                        + [["hyperfitted greedy", *[hyper[m].fmt() for m in SWEEP_METRICS]]]),
              "", "![static reweighting](reweight.png)", "",
              "## 4. Layer-wise geometry", "",
              "Participation ratio (sum of eigenvalues)^2 / sum of eigenvalues^2 of each model's hidden-state covariance, "
              "Delta Dim = PR(hyperfitted) - PR(base), and the cosine similarity and L2 distance between the two models' "
              "hidden states at the same token. Layer 0 = embeddings. Table: `geometry.csv`.", "",
              _md_table(["layer", "PR base", "PR hyperfitted", "Delta Dim", "cosine", "L2"],
                        [[str(r["layer"]), _fmt(r["pr_base"], 2), _fmt(r["pr_hyper"], 2), _fmt(r["delta_dim"], 2),
                          r["cosine"].fmt(), r["l2"].fmt(2)] for r in res.geometry]),
              "", "![geometry](geometry.png)", ""]
    if res.lens:
        parts += ["## 5. Logit lens", "",
                  "Top-1 agreement of each layer's hidden state, through the final norm and the unembedding, with the "
                  "model's final top-1. Table: `logit_lens.csv`.", "",
                  _md_table(["layer", "base", "hyperfitted"],
                            [[str(r["layer"]), r["base"].fmt(), r["hyper"].fmt()] for r in res.lens]),
                  "", "![logit lens](logit_lens.png)", ""]
    parts += ["## Example continuations (first prompt)", ""]
    for name, text in res.examples.items():
        parts += [f"**{name}**:", "", "> " + text.replace("\n", " ").strip()[:600], ""]
    return "\n".join(parts)
