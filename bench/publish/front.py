"""The quality-diversity trade-off view: quality against diversity, one curve per decoder family.

The decoding literature reads a decoder across a grid of its hyperparameter as a curve in the
(diversity, quality) plane. Quality is MAUVE when the runs measured it, else coherence, else
rep-2, where lower is better (the axis says which and in which direction). A family is a model x
decoder name; its points are the grid's settings (``top-p:p=0.8``, ``p=0.9``, ...), joined in
order of diversity. A point is Pareto-optimal when no other decoder's point is at least as good on
both axes and better on one; the human reference is drawn as a point, never part of the front.
The same figure goes into the HTML page (inline SVG) and, for papers, into a PNG.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.publish import is_degenerate, is_number

QUALITY_ORDER = ("mauve", "coherence", "rep-2")
"""Quality metrics in order of preference; the first one every decoder row has is used."""
DIVERSITY = "diversity"
MARKERS = ("o", "s", "^", "D", "v")
"""Marker of a family's curve by its index // len(COLOURS)."""
COLOURS = ("#0067A5", "#BE0032", "#008856", "#F38400", "#875692", "#848482", "#F3C300", "#A1CAF1", "#E68FAC",
           "#882D17", "#8DB600", "#604E97", "#2B3D26", "#F99379", "#C2B280", "#B3446C", "#654522", "#DCD300",
           "#E25822", "#000080")
"""Twenty colours that stay apart (Kelly's colours of maximum contrast, less white, black and the
nearest pairs, plus navy): ``bench run --decoder all`` draws about twenty families, and tab10's ten
colours gave DoLa and top-p the same red."""
MANY_POINTS = 40
"""Past this many decoder rows a suite's plots draw for the crowd: no label beside each point, and a
legend of at most :data:`LEGEND_MAX` families (a 1000-decoder grid wrote 1000 labels over each other)."""
LEGEND_MAX = 20
LIST_MAX = 40
"""Pareto-optimal decoders listed as text at most (tied scores put 9826 of 10,000 on the front)."""
RASTER_POINTS = 2000
"""Past this many points the plots' markers and curves are drawn as an image inside the SVG (text and
axes stay vector): as vector marks, 10,000 points made the front alone 2.8 MB."""


@dataclass(frozen=True)
class FrontPoint:
    """One leaderboard row placed on the trade-off plane."""

    family: str
    """``model decoder``: the rows of one decoder's grid share it and form one curve."""
    label: str
    """The decoder with its arguments (``top-p:p=0.9``), or ``human reference``."""
    diversity: float
    """x: the row's diversity (higher is more diverse)."""
    quality: float
    """y: the row's quality metric, in its own units and direction."""
    pareto: bool = False
    """No other decoder's point is at least as good on both axes and strictly better on one."""
    flagged: bool = False
    """The row is flagged degenerate (blank, whitespace runs, very short): drawn crossed out and
    never on the front, since its word metrics describe text that is barely there."""


def quality_metric(rows: list[dict[str, Any]]) -> str | None:
    """The quality axis: the first of :data:`QUALITY_ORDER` measured on every decoder row with a diversity."""
    decoders = [r for r in rows if r.get("model") != "human" and _value(r, DIVERSITY) is not None]
    for name in QUALITY_ORDER:
        if decoders and all(_value(r, name) is not None for r in decoders):
            return name
    return None


def pareto_mask(points: list[tuple[float, float]], higher_is_better: tuple[bool, bool]) -> list[bool]:
    """For each (x, y), whether no other point dominates it (>= on both oriented axes, > on one).

    Equal points do not dominate each other, so duplicates are both on the front. One sort, not
    every pair: 10,000 decoders took minutes pairwise.
    """
    oriented = [(x if higher_is_better[0] else -x, y if higher_is_better[1] else -y) for x, y in points]
    mask = [False] * len(oriented)
    order = sorted(range(len(oriented)), key=lambda i: oriented[i][0], reverse=True)
    best_right = -math.inf  # the highest y among points strictly right of the current x
    start = 0
    while start < len(order):
        end = start
        while end < len(order) and oriented[order[end]][0] == oriented[order[start]][0]:
            end += 1
        group = order[start:end]  # the points sharing this x
        top = max(oriented[i][1] for i in group)
        for i in group:  # dominated: a point right of it at least as high, or one above it at this x
            mask[i] = not (best_right >= oriented[i][1] or top > oriented[i][1])
        best_right = max(best_right, top)
        start = end
    return mask


def front_points(rows: list[dict[str, Any]], quality: str) -> tuple[list[FrontPoint], FrontPoint | None]:
    """The decoders' points with their Pareto marks, and the human reference point (or None)."""
    from bench.metrics import METRICS

    placed = [r for r in rows if _value(r, DIVERSITY) is not None and _value(r, quality) is not None]
    decoders = [r for r in placed if r.get("model") != "human"]
    higher = METRICS[quality].direction != "lower"
    sound = [r for r in decoders if not is_degenerate(r)]
    mask = dict(zip(map(id, sound), pareto_mask([(_value(r, DIVERSITY), _value(r, quality)) for r in sound],
                                                (True, higher))))
    points = [FrontPoint(family_of(r), _label(r), _value(r, DIVERSITY), _value(r, quality), mask.get(id(r), False),
                         is_degenerate(r))
              for r in decoders]
    human = next((r for r in placed if r.get("model") == "human"), None)
    reference = FrontPoint("human", "human reference", _value(human, DIVERSITY), _value(human, quality)) if human else None
    return points, reference


def family_of(row: dict[str, Any]) -> str:
    """``model decoder`` (and its amateur): the rows of one decoder's grid."""
    return f"{row['model']} {row['decoder']}" + (f" (amateur {row['amateur']})" if row.get("amateur") else "")


def axis_label(quality: str) -> str:
    from bench.metrics import METRICS

    if METRICS[quality].direction == "lower":
        return f"{quality} (lower is better: no MAUVE or coherence was measured)"
    return f"{quality} (higher is better)"


def front_figure(rows: list[dict[str, Any]], suite: str) -> Any:
    """The matplotlib figure of one suite's front, or None when the rows lack the two axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    quality = quality_metric(rows)
    if quality is None:
        return None
    points, human = front_points(rows, quality)
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    families = list(dict.fromkeys(p.family for p in points))
    one_model = len({p.family.split(" ", 1)[0] for p in points}) == 1
    for i, family in enumerate(families):
        curve = sorted((p for p in points if p.family == family), key=lambda p: (p.diversity, p.quality))
        # past twenty families the marker changes too, so no two families look alike
        line, = ax.plot([p.diversity for p in curve], [p.quality for p in curve], marker=family_marker(i),
                        markersize=4, color=family_colour(i), label=family.split(" ", 1)[1] if one_model else family)
        line.set_gid(f"family-{i}")
        line.set_rasterized(len(points) > RASTER_POINTS)
        if len(points) > MANY_POINTS:
            continue  # the legend names the families; the table and the CSV name each point
        for p, text in zip(curve, grid_labels([p.label for p in curve])):
            if text:
                ax.annotate(text, (p.diversity, p.quality), textcoords="offset points", xytext=(3, 3), fontsize=6)
    flagged = [p for p in points if p.flagged]
    if flagged:
        cross = ax.scatter([p.diversity for p in flagged], [p.quality for p in flagged], marker="x", s=80,
                           color="red", linewidths=1.5, label="flagged degenerate (not on the front)", zorder=4)
        cross.set_gid("degenerate")
        cross.set_rasterized(len(flagged) > RASTER_POINTS)
    best = [p for p in points if p.pareto]
    ring = ax.scatter([p.diversity for p in best], [p.quality for p in best], s=110, facecolors="none",
                      edgecolors="black", linewidths=1.2, label="Pareto-optimal", zorder=3)
    ring.set_gid("pareto")
    ring.set_rasterized(len(best) > RASTER_POINTS)
    if human is not None:
        star = ax.scatter([human.diversity], [human.quality], marker="*", s=140, color="black", label="human reference",
                          zorder=4)
        star.set_gid("human")
    ax.set_xlabel("diversity (higher is more diverse)")
    ax.set_ylabel(axis_label(quality))
    if quality in ("rep-2",):
        ax.invert_yaxis()  # better quality upwards, as for MAUVE and coherence
    ax.set_title(f"{suite}: {quality} against diversity")
    ax.grid(alpha=0.3)
    capped_legend(ax, fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)  # beside the points
    return fig


def capped_legend(ax: Any, **kwargs: Any) -> None:
    """The axes' legend with its first :data:`LEGEND_MAX` families (artists whose gid is ``family-*``),
    an entry counting the others, and every other entry (the front, the human reference)."""
    from matplotlib.lines import Line2D

    handles, labels = ax.get_legend_handles_labels()
    families = [i for i, h in enumerate(handles) if str(h.get_gid() or "").startswith("family-")]
    if len(families) > LEGEND_MAX + 1:
        dropped = set(families[LEGEND_MAX:])
        entries = [(h, text) for i, (h, text) in enumerate(zip(handles, labels)) if i not in dropped]
        # nothing before the last family kept was dropped: the count goes right after it
        entries.insert(families[LEGEND_MAX - 1] + 1, (Line2D([], [], linestyle="none"), f"... and {len(dropped)} more"))
        handles, labels = [list(x) for x in zip(*entries)]
    ax.legend(handles, labels, **kwargs)


def family_colour(index: int) -> str:
    """The colour of the ``index``-th family's curve."""
    return COLOURS[index % len(COLOURS)]


def family_marker(index: int) -> str:
    """The marker of the ``index``-th family: past twenty families the marker changes too."""
    return MARKERS[index // len(COLOURS) % len(MARKERS)]


def grid_labels(labels: list[str]) -> list[str]:
    """What tells a family's points apart: the arguments whose values differ (``p=0.8``, ``p=0.9``),
    nothing for a family of one point (the legend names it). ``top-p:p=0.8,t=1.0`` -> ``p=0.8``."""
    if len(labels) < 2:
        return [""] * len(labels)
    parsed = [dict(part.partition("=")[::2] for part in label.partition(":")[2].split(",") if part) for label in labels]
    varying = [key for key in dict.fromkeys(k for args in parsed for k in args)
               if len({args.get(key) for args in parsed}) > 1]
    if not varying:
        return [label.partition(":")[2] or label for label in labels]
    return [",".join(f"{key}={args[key]}" for key in varying if key in args) for args in parsed]


def figure_svg(fig: Any) -> str:
    """A matplotlib figure as inline SVG markup (text kept as text), the figure closed."""
    import io

    import matplotlib.pyplot as plt

    buf = io.StringIO()
    # no date and fixed element ids: re-rendering the same rows gives the same bytes
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    svg = buf.getvalue()
    return svg[svg.index("<svg"):]  # drop the XML declaration and DOCTYPE


def front_svg(rows: list[dict[str, Any]], suite: str) -> str | None:
    """The front as inline SVG markup for the HTML page."""
    import matplotlib.pyplot as plt

    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "decbench", "font.size": 9}):
        fig = front_figure(rows, suite)
        return figure_svg(fig) if fig is not None else None


def write_front_png(rows: list[dict[str, Any]], suite: str, path: Path) -> bool:
    """Write the front as a PNG (for papers); False, and nothing written, without the two axes."""
    import matplotlib.pyplot as plt

    fig = front_figure(rows, suite)
    if fig is None:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=200, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return True


def front_summary(rows: list[dict[str, Any]]) -> tuple[str, list[FrontPoint]] | None:
    """(quality metric, the Pareto-optimal points) for text views; None without the two axes."""
    quality = quality_metric(rows)
    if quality is None:
        return None
    points, _ = front_points(rows, quality)
    return quality, [p for p in points if p.pareto]


def _label(row: dict[str, Any]) -> str:
    args = row.get("decoder_args")
    return row["decoder"] + (f":{args}" if args else "")


def _value(row: dict[str, Any] | None, name: str) -> float | None:
    value = row.get(name) if row else None
    return float(value) if is_number(value) and not math.isnan(value) else None


def front_html(rows: list[dict[str, Any]], suite: str) -> str:
    """The page's figure of one suite's front, with the Pareto-optimal decoders listed as text."""
    import html

    svg = front_svg(rows, suite)
    summary = front_summary(rows)
    if svg is None or summary is None:
        return ""
    quality, best = summary
    items = "".join(f'<li data-pareto="{html.escape(p.label)}" data-family="{html.escape(p.family)}">'
                    f"{html.escape(p.family.split(' ', 1)[0])} {html.escape(p.label)}: diversity {p.diversity:.4f}, "
                    f"{html.escape(quality)} {p.quality:.4f}</li>" for p in best[:LIST_MAX])
    if len(best) > LIST_MAX:
        items += f'<li class="more">... and {len(best) - LIST_MAX} more: the CSV has every row</li>'
    caption = (f"{suite}: the quality-diversity front, {axis_label(quality)} against diversity; one curve per "
               "decoder across its grid, Pareto-optimal points ringed, the human reference as a star")
    return (f'<figure class="plot" data-plot="front" data-quality="{html.escape(quality)}">{svg}'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            f'<div class="note">Pareto-optimal ({html.escape(quality)} against diversity):<ul class="pareto">{items}</ul></div>')


def front_markdown(by_suite: dict[str, list[dict[str, Any]]], pngs: dict[str, Path]) -> str:
    """A Markdown section per suite: the PNG and the Pareto-optimal decoders."""
    from bench.publish.markdown import md_code, md_text

    parts = []
    for suite, rows in by_suite.items():
        summary = front_summary(rows)
        if summary is None or suite not in pngs:
            continue
        quality, best = summary
        # model names and labels are user input: escaped as the table escapes them
        parts.append(f"\n## {md_text(suite)}: quality-diversity front\n\n![{quality} against diversity]({pngs[suite].name})\n\n"
                     f"Quality axis: {axis_label(quality)}. Pareto-optimal:\n\n"
                     + "".join(f"- {md_text(p.family.split(' ', 1)[0])} {md_code(p.label)}: diversity {p.diversity:.4f}, "
                               f"{quality} {p.quality:.4f}\n" for p in best[:LIST_MAX])
                     + (f"- ... and {len(best) - LIST_MAX} more: the CSV has every row\n" if len(best) > LIST_MAX else ""))
    return "".join(parts)


def png_paths(out: str, suites: list[str]) -> dict[str, Path]:
    """``OUT-front.png`` for one suite; ``OUT-front-SUITE.png`` each when there are several."""
    import re

    if len(suites) == 1:
        return {suites[0]: Path(f"{out}-front.png")}
    return {s: Path(f"{out}-front-{re.sub(r'[^A-Za-z0-9._-]+', '_', s)}.png") for s in suites}
