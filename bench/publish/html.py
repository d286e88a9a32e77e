"""Leaderboards as one self-contained HTML page: sortable tables and inline SVG plots, no network.

Per suite: a table whose headers sort on click (the first click puts the best value first, as the
metric's direction says; the next click reverses), the best value of each column highlighted,
a scatter of diversity against a quality metric (MAUVE or coherence when measured, else rep-2
or distinct-2), one point per model x decoder, and bars with intervals for every metric.
"""

from __future__ import annotations

import html
import math
import re
from typing import Any

from bench.publish import DEGENERATE_MARK, is_degenerate, is_number
from bench.publish.front import figure_svg as _svg
from bench.publish.front import front_html
from bench.publish.markdown import best_values, fmt

QUALITY_METRICS = ("mauve", "coherence")
"""Substrings of metric names plotted against diversity when a run measured them."""
FALLBACK_X = ("rep-2", "distinct-2")

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

# Sorting: numbers by data-value, text by content; missing values always last.
_JS = """
document.querySelectorAll('table.lb').forEach(function(table){
  table.querySelectorAll('th').forEach(function(th, col){
    th.addEventListener('click', function(){
      var dir = th.dataset.direction, cur = th.getAttribute('aria-sort');
      var asc = cur ? cur !== 'ascending' : dir !== 'higher';
      table.querySelectorAll('th').forEach(function(o){o.removeAttribute('aria-sort');});
      th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      var key = function(r){var c = r.cells[col]; return c.dataset.value !== undefined ? c.dataset.value : c.textContent;};
      rows.sort(function(a, b){
        var x = key(a), y = key(b), sign = asc ? 1 : -1;
        if (th.dataset.type === 'num'){
          x = x === '' ? NaN : parseFloat(x); y = y === '' ? NaN : parseFloat(y);
          if (isNaN(x) || isNaN(y)) return isNaN(x) - isNaN(y);
          return sign * (x - y);
        }
        return sign * x.localeCompare(y);
      });
      rows.forEach(function(r){body.appendChild(r);});
    });
  });
});
"""


def _direction(name: str) -> str:
    from bench.metrics import METRICS

    return METRICS[name].direction if name in METRICS else "none"


def _decoder(row: dict[str, Any]) -> str:
    return row["decoder"] + (f":{row['decoder_args']}" if row.get("decoder_args") else "")


def _setting(value: Any) -> str:
    return str(int(value)) if is_number(value) and not math.isnan(value) and float(value).is_integer() else str(value or "")


def table_html(rows: list[dict[str, Any]], metrics: list[str], suite: str, samples: str | None = None) -> str:
    """One suite's sortable table; with ``samples`` (the sample viewer's address) each decoder links to its texts."""
    from bench.publish import varying_settings

    best = best_values(rows, metrics)
    arrows = {"higher": " ↑", "lower": " ↓"}
    settings = varying_settings(rows)  # settings that differ between rows, shown beside each
    head = ['<th data-type="text">model</th>', '<th data-type="text">decoder</th>',
            *(f'<th data-type="text">{html.escape(c)}</th>' for c in settings), '<th data-type="text">flags</th>',
            '<th data-type="num" data-direction="none">n</th>']
    for m in metrics:
        d = _direction(m)
        head.append(f'<th data-type="num" data-metric="{html.escape(m)}" data-direction="{d}" '
                    f'title="{html.escape(_description(m))}">{html.escape(m)}{arrows.get(d, "")}</th>')
    body = []
    for r in rows:
        cls = ' class="human"' if r["model"] == "human" else ""
        n = r.get("n")
        cells = [f"<td>{html.escape(str(r['model']))}</td>", f"<td>{_decoder_cell(r, rows, samples)}</td>",
                 *(f"<td>{html.escape(_setting(r.get(c)))}</td>" for c in settings),
                 f"<td>{html.escape(str(r.get('flags') or ''))}</td>",
                 f'<td class="num" data-value="{int(n) if is_number(n) else ""}">{int(n) if is_number(n) else ""}</td>']
        for m in metrics:
            v, lo, hi = r.get(m), r.get(f"{m}_lo"), r.get(f"{m}_hi")
            ok = is_number(v) and not math.isnan(v)
            text = html.escape(fmt(m, v))
            if ok and is_number(lo) and is_number(hi) and not (math.isnan(lo) or math.isnan(hi)):
                text += f' <span class="ci">[{html.escape(fmt(m, lo))}, {html.escape(fmt(m, hi))}]</span>'
            if ok and is_degenerate(r):
                text += f' <span class="flag" title="{html.escape(str(r.get("flags")))}">{DEGENERATE_MARK}</span>'
            is_best = ok and r["model"] != "human" and not is_degenerate(r) and m in best and float(v) == best[m]
            cells.append(f'<td class="num{" best" if is_best else ""}" data-value="{repr(float(v)) if ok else ""}">{text}</td>')
        body.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
    return (f'<div class="wrap"><table class="lb" data-suite="{html.escape(suite)}"><thead><tr>{"".join(head)}</tr>'
            f'</thead><tbody>{"".join(body)}</tbody></table></div>')


def _decoder_cell(row: dict[str, Any], rows: list[dict[str, Any]], samples: str | None) -> str:
    """The decoder's name, linked to the sample viewer filtered on it (the viewer's own run label)."""
    text = html.escape(_decoder(row))
    if samples is None or row["model"] == "human":
        return text
    from urllib.parse import quote

    several = len({r["model"] for r in rows if r["model"] != "human"}) > 1
    label = f"{row['model']} {_decoder(row)}" if several else _decoder(row)
    return f'<a href="{html.escape(samples + "#decoder=" + quote(label, safe=""))}">{text}</a>'


def _description(name: str) -> str:
    from bench.metrics import METRICS

    return METRICS[name].description if name in METRICS else ""


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


def _bar_labels(rows: list[dict[str, Any]], width: int = 34) -> list[str]:
    """Decoder labels wrapped at argument boundaries; the model only when the rows have several."""
    import textwrap

    models = {r["model"] for r in rows if r["model"] != "human"}
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


def _figure(kind: str, svg: str | None, caption: str) -> str:
    if svg is None:
        return ""
    return f'<figure class="plot" data-plot="{kind}">{svg}<figcaption>{html.escape(caption)}</figcaption></figure>'


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
        if "diversity" in shown:
            for x in scatter_axes(shown):
                parts.append(_figure("scatter", scatter_svg(rows, x),
                                     f"{suite}: diversity against {x}, one point per model and decoder, 95% intervals"))
        parts.append(_figure("bars", bars_svg(rows, shown), f"{suite}: every metric with its 95% interval"))
        parts.append("</section>")
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_CSS}</style></head><body>{''.join(parts)}<script>{_JS}</script></body></html>\n")
    _check_offline(page)
    return page


def _check_offline(page: str) -> None:
    """The page must load nothing: no external src/href (matplotlib's SVG namespace URIs are fine)."""
    for match in re.finditer(r'(?:src|href)="(https?:)?//', page):
        raise RuntimeError(f"the page links an external resource at offset {match.start()}")
