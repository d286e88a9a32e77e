"""Leaderboards as one self-contained HTML page: sortable tables and inline SVG plots, no network.

Per suite: a table whose headers sort on click (the first click puts the best value first, as the
metric's direction says; the next click reverses), the best value of each column highlighted
(:mod:`bench.publish.html_table`; paged, with a search box, past a hundred rows), a scatter of
diversity against a quality metric (MAUVE or coherence when measured, else rep-2 or distinct-2),
one point per model x decoder, and bars with intervals for every metric.

Past :data:`~bench.publish.front.MANY_POINTS` decoder rows the plots draw for the crowd: the
scatter one colour per decoder family without labels or intervals, and each bar panel the
:data:`BAR_EACH` best and worst rows by its own metric; the captions say so.
"""

from __future__ import annotations

import html
import math
import re
from typing import Any

from bench.publish import DEGENERATE_MARK, is_degenerate, is_number
from bench.publish.front import MANY_POINTS, RASTER_POINTS, capped_legend, family_colour, family_marker, family_of, front_html
from bench.publish.front import figure_svg as _svg
from bench.publish.html_table import JS as _JS
from bench.publish.html_table import PAGED_CSS, PAGED_JS, table_html
from bench.publish.html_table import decoder_label as _decoder
from bench.publish.html_table import direction as _direction

QUALITY_METRICS = ("mauve", "coherence")
"""Substrings of metric names plotted against diversity when a run measured them."""
FALLBACK_X = ("rep-2", "distinct-2")
BAR_EACH = 10
"""Bars per end (best, worst) of each panel past MANY_POINTS rows."""

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:1400px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{margin-top:2em;border-bottom:1px solid #ccc}
table.lb{border-collapse:collapse;font-size:13px;margin:1em 0}
table.lb th,table.lb td{border:1px solid #ddd;padding:3px 6px;white-space:nowrap}
table.lb th{background:#f3f3f3;cursor:pointer;user-select:none}
table.lb th[aria-sort=ascending]::after{content:" \\25B4"}table.lb th[aria-sort=descending]::after{content:" \\25BE"}
table.lb td.num{text-align:right;font-variant-numeric:tabular-nums}
table.lb td.best{background:#d9f2d9;font-weight:600}
table.lb tr.human td{font-style:italic;color:#555}
.wrap{overflow-x:auto;max-width:100%}.ci{color:#777;font-size:11px}.note{color:#555}
figure.plot{display:inline-block;margin:1em 0;vertical-align:top}figure.plot svg{max-width:100%;height:auto}
"""

def scatter_axes(metrics: list[str]) -> list[str]:
    """The x metrics to plot diversity against: every measured quality metric, else one fallback."""
    quality = [m for m in metrics if any(q in m.lower() for q in QUALITY_METRICS)]
    if quality:
        return quality
    return [next(m for m in FALLBACK_X if m in metrics)] if any(m in metrics for m in FALLBACK_X) else []


def _err(rows: list[dict[str, Any]], m: str) -> list[list[float]]:
    """Asymmetric error bar lengths from the rows' intervals (0 where a row has none)."""
    lows, highs = [], []
    for r in rows:
        v, lo, hi = r.get(m), r.get(f"{m}_lo"), r.get(f"{m}_hi")
        ok = all(is_number(x) and not math.isnan(x) for x in (v, lo, hi))
        lows.append(max(v - lo, 0.0) if ok else 0.0)
        highs.append(max(hi - v, 0.0) if ok else 0.0)
    return [lows, highs]


def scatter_svg(rows: list[dict[str, Any]], x: str, y: str = "diversity") -> str | None:
    """Diversity (y) against ``x``, one labelled point per model x decoder, with intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [r for r in rows if all(is_number(r.get(m)) and not math.isnan(r[m]) for m in (x, y))]
    if not pts:
        return None
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "decbench", "font.size": 9}):
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        if _crowded(rows):
            return _crowd_scatter(fig, ax, pts, x, y)
        models = sorted({r["model"] for r in pts})
        markers = "osD^vP*X"
        for i, r in enumerate(pts):
            human = r["model"] == "human"
            ax.errorbar([r[x]], [r[y]], xerr=[[e[0]] for e in _err([r], x)], yerr=[[e[0]] for e in _err([r], y)],
                        fmt=markers[models.index(r["model"]) % len(markers)], color="black" if human else f"C{i % 10}",
                        capsize=2, markersize=6, label=f"{r['model']} {_decoder(r)}")
            ax.annotate(r["decoder"] if not human else "human", (r[x], r[y]), textcoords="offset points",
                        xytext=(4, 4), fontsize=7)
        ax.set_xlabel(x + {"higher": " (higher is better)", "lower": " (lower is better)"}.get(_direction(x), ""))
        ax.set_ylabel(y + " (higher is better)")
        ax.set_title(f"{y} against {x}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="best")
        return _svg(fig)


def _crowded(rows: list[dict[str, Any]]) -> bool:
    return sum(r["model"] != "human" for r in rows) > MANY_POINTS


def _crowd_scatter(fig: Any, ax: Any, pts: list[dict[str, Any]], x: str, y: str) -> str:
    """Many points: one collection per decoder family (the front's colours), its name in the legend."""
    families: dict[str, list[dict[str, Any]]] = {}
    for r in pts:
        if r["model"] != "human":
            families.setdefault(family_of(r), []).append(r)
    one_model = len({r["model"] for r in pts if r["model"] != "human"}) == 1
    for i, (family, members) in enumerate(families.items()):
        dots = ax.scatter([r[x] for r in members], [r[y] for r in members], s=10, linewidths=0,
                          marker=family_marker(i), color=family_colour(i),
                          label=family.split(" ", 1)[1] if one_model else family)
        dots.set_gid(f"family-{i}")
        dots.set_rasterized(len(pts) > RASTER_POINTS)
    humans = [r for r in pts if r["model"] == "human"]
    if humans:
        ax.scatter([r[x] for r in humans], [r[y] for r in humans], marker="*", s=120, color="black",
                   label="human reference", zorder=3).set_gid("human")
    ax.set_xlabel(x + {"higher": " (higher is better)", "lower": " (lower is better)"}.get(_direction(x), ""))
    ax.set_ylabel(y + " (higher is better)")
    ax.set_title(f"{y} against {x}: {len(pts) - len(humans)} decoders")
    ax.grid(alpha=0.3)
    capped_legend(ax, fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    return _svg(fig)


def _bar_labels(rows: list[dict[str, Any]], width: int = 34, models: set[str] | None = None) -> list[str]:
    """Decoder labels wrapped at argument boundaries; the model only when the rows (or ``models``) have several."""
    import textwrap

    models = {r["model"] for r in rows if r["model"] != "human"} if models is None else models
    out = []
    for r in rows:
        if r["model"] == "human":
            out.append("human reference")
            continue
        label = _decoder(r) if len(models) == 1 else f"{r['model']} {_decoder(r)}"
        out.append("\n".join(textwrap.wrap(label.replace(",", ", "), width)).replace(", ", ","))
    return out


def bars_svg(rows: list[dict[str, Any]], metrics: list[str]) -> str | None:
    """One panel per metric: a bar per row with its bootstrap interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [m for m in metrics if any(is_number(r.get(m)) and not math.isnan(r[m]) for r in rows)]
    if not shown:
        return None
    if _crowded(rows):
        return _ranked_bars_svg(rows, shown)
    cols = 3
    nrows = math.ceil(len(shown) / cols)
    labels = _bar_labels(rows)
    lines = max(label.count("\n") + 1 for label in labels)
    height = max(1.6, 0.22 * len(rows) * (1 + 0.6 * (lines - 1)) + 0.8)
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "decbench", "font.size": 8}):
        # one shared y axis per row of panels: the labels are drawn once, left of the first panel
        fig, axes = plt.subplots(nrows, cols, figsize=(13, height * nrows), squeeze=False, sharey="row")
        for ax, m in zip(axes.flat, shown):
            values = [float(r[m]) if is_number(r.get(m)) and not math.isnan(r[m]) else 0.0 for r in rows]
            colors = ["#999999" if r["model"] == "human" else f"C{i % 10}" for i, r in enumerate(rows)]
            ax.barh(range(len(rows)), values, xerr=_err(rows, m), color=colors, capsize=2)
            ax.set_yticks(range(len(rows)), labels, fontsize=6)
            ax.tick_params(axis="y", labelleft=ax.get_subplotspec().is_first_col())
            ax.set_title(m + {"higher": " ↑", "lower": " ↓"}.get(_direction(m), ""), fontsize=9)
            ax.grid(axis="x", alpha=0.3)
        for row in axes:
            row[0].invert_yaxis()  # once per shared axis: the first row of the table on top
        for ax in list(axes.flat)[len(shown):]:
            ax.set_visible(False)
        fig.tight_layout()
        return _svg(fig)


def _picked(rows: list[dict[str, Any]], m: str) -> tuple[list[dict[str, Any] | None], int]:
    """The :data:`BAR_EACH` best decoder rows by ``m``, None, the worst (best first; highest first for a
    metric without a direction), or all when they are few; and how many rows have a value of ``m``."""
    have = [r for r in rows if r["model"] != "human" and is_number(r.get(m)) and not math.isnan(r[m])]
    ranked = sorted(have, key=lambda r: float(r[m]), reverse=_direction(m) != "lower")
    if len(ranked) <= 2 * BAR_EACH:
        return list(ranked), len(ranked)
    return ranked[:BAR_EACH] + [None] + ranked[-BAR_EACH:], len(ranked)


def _ranked_bars_svg(rows: list[dict[str, Any]], shown: list[str]) -> str:
    """Many rows: per metric, its own panel of the :data:`BAR_EACH` best and worst rows by it, the human
    reference as a dashed line; a bar's colour is its decoder family's, as in the scatter and the front."""
    import matplotlib.pyplot as plt

    families = list(dict.fromkeys(family_of(r) for r in rows if r["model"] != "human"))
    colour = {f: family_colour(i) for i, f in enumerate(families)}
    picks = {m: _picked(rows, m) for m in shown}
    labelled = list({id(r): r for p in picks.values() for r in p[0] if r is not None}.values())
    models = {r["model"] for r in rows if r["model"] != "human"}
    labels = {id(r): text + (f" {DEGENERATE_MARK}" if is_degenerate(r) else "")
              for r, text in zip(labelled, _bar_labels(labelled, models=models))}
    lines = max((text.count("\n") + 1 for text in labels.values()), default=1)
    height = 0.18 * (2 * BAR_EACH + 1) * (1 + 0.6 * (lines - 1)) + 1.0
    cols, nrows = 3, math.ceil(len(shown) / 3)
    humans = [r for r in rows if r["model"] == "human"]
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "decbench", "font.size": 8}):
        fig, axes = plt.subplots(nrows, cols, figsize=(13, height * nrows), squeeze=False)
        for ax, m in zip(axes.flat, shown):
            picked, ranked = picks[m]
            bars = [r for r in picked if r is not None]
            ax.barh([i for i, r in enumerate(picked) if r is not None], [float(r[m]) for r in bars],
                    xerr=_err(bars, m), capsize=2, color=[colour[family_of(r)] for r in bars])
            ticks = [labels[id(r)] if r is not None else f"... {ranked - 2 * BAR_EACH} more ..." for r in picked]
            ax.set_yticks(range(len(picked)), ticks, fontsize=6)
            for human in humans:
                if is_number(human.get(m)) and not math.isnan(human[m]):
                    ax.axvline(float(human[m]), color="#555555", linestyle="--", linewidth=1)
            ends = ("highest", "lowest") if _direction(m) == "none" else ("best", "worst")
            counts = f"{ends[0]} {BAR_EACH}, {ends[1]} {BAR_EACH} of {ranked}" if ranked > 2 * BAR_EACH else f"all {ranked}"
            ax.set_title(m + {"higher": " ↑", "lower": " ↓"}.get(_direction(m), "") + f": {counts}", fontsize=9)
            ax.grid(axis="x", alpha=0.3)
            ax.invert_yaxis()  # the best on top
        for ax in list(axes.flat)[len(shown):]:
            ax.set_visible(False)
        fig.tight_layout()
        return _svg(fig)


def _figure(kind: str, svg: str | None, caption: str) -> str:
    if svg is None:
        return ""
    return f'<figure class="plot" data-plot="{kind}">{svg}<figcaption>{html.escape(caption)}</figcaption></figure>'


def _captions(rows: list[dict[str, Any]], suite: str) -> tuple[str, str]:
    """The scatter's caption (a template of its ``{x}``) and the bars' caption, which say how a crowd is drawn."""
    if not _crowded(rows):
        return (f"{suite}: diversity against {{x}}, one point per model and decoder, 95% intervals",
                f"{suite}: every metric with its 95% interval")
    n = sum(r["model"] != "human" for r in rows)
    return (f"{suite}: diversity against {{x}}, {n} decoders, one colour per decoder family (intervals and names "
            "in the table)",
            f"{suite}: every metric with its 95% interval; of the {n} decoders each panel shows the {BAR_EACH} best "
            f"and the {BAR_EACH} worst by its own metric (the table and the CSV have them all)"
            + ("; the dashed line is the human reference" if any(r["model"] == "human" for r in rows) else ""))


def render_html(title: str, by_suite: dict[str, list[dict[str, Any]]], metrics: list[str],
                notes: list[str] | None = None, samples: str | None = None) -> str:
    """The whole page; ``samples`` is the relative address of the sample viewer (``bench view``), linked when given."""
    parts = [f"<h1>{html.escape(title)}</h1>"]
    parts += [f'<p class="note">{html.escape(n)}</p>' for n in notes or []]
    if samples is not None:
        parts.append(f'<p class="note"><a id="samples" href="{html.escape(samples)}">Read the samples</a>: every '
                     "decoder's continuation of each prompt side by side, with its own metrics.</p>")
    parts.append('<p class="note">Values are followed by their 95% bootstrap interval over prompts. '
                 "↑ higher is better, ↓ lower is better; the best decoder's value in each column is highlighted "
                 "(the human reference row is a yardstick, never highlighted). "
                 "Click a column header to sort (best first, click again to reverse). "
                 "MAUVE is a set-level score: its value is the mean over k-means seeds and its interval mean ± one sd over those seeds (column mauve_sd), not a bootstrap interval.</p>")
    for suite, rows in by_suite.items():
        shown = [m for m in metrics if any(is_number(r.get(m)) for r in rows)]
        parts.append(f'<section data-suite="{html.escape(suite)}"><h2>{html.escape(suite)}</h2>')
        parts.append(table_html(rows, shown, suite, samples))
        parts.append(front_html(rows, suite))
        scatter, bars = _captions(rows, suite)
        if "diversity" in shown:
            for x in scatter_axes(shown):
                parts.append(_figure("scatter", scatter_svg(rows, x), scatter.format(x=x)))
        parts.append(_figure("bars", bars_svg(rows, shown), bars))
        parts.append("</section>")
    body = "".join(parts)
    # the paged tables' style and script only where there is one: smaller pages stay as they were
    paged = 'class="lbp"' in body
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_CSS}{PAGED_CSS if paged else ''}</style></head><body>{body}"
            f"<script>{_JS}{PAGED_JS if paged else ''}</script></body></html>\n")
    _check_offline(page)
    return page


def _check_offline(page: str) -> None:
    """The page must load nothing: no external src/href (matplotlib's SVG namespace URIs are fine)."""
    for match in re.finditer(r'(?:src|href)="(https?:)?//', page):
        raise RuntimeError(f"the page links an external resource at offset {match.start()}")
