"""Leaderboards as Markdown: one table per suite, each metric with its interval, best values in bold."""

from __future__ import annotations

import math
import re
from typing import Any

from bench.publish import DEGENERATE_MARK, is_degenerate, is_number

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~])")
_SAFE_CODE = re.compile(r"^[\w.:=,+/-]*$")


def md_text(text: Any) -> str:
    """``text`` as inert Markdown: one line, no table pipes, no HTML, no emphasis or links.

    Model folders, suite files and titles are user input; written raw, ``m|<svg onload=...>`` adds a
    table column and a tag, and a newline ends a heading.
    """
    line = " ".join(str(text).split())
    line = line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", line)


def md_code(text: Any) -> str:
    """A code span for names made of safe characters; escaped text otherwise."""
    text = str(text)
    return f"`{text}`" if _SAFE_CODE.match(text) else md_text(text)


def fmt(name: str, value: Any) -> str:
    """A metric value formatted by its :class:`bench.metrics.Metric` (``n/a`` when missing)."""
    from bench.metrics import METRICS

    if not is_number(value):
        return "n/a"
    m = METRICS.get(name)
    return m.format(float(value)) if m else f"{float(value):.4g}"


def cell(row: dict[str, Any], name: str) -> str:
    """``value [lo, hi]``, or the bare value when the row has no interval."""
    value, lo, hi = row.get(name), row.get(f"{name}_lo"), row.get(f"{name}_hi")
    text = fmt(name, value)
    if is_number(lo) and is_number(hi) and not (math.isnan(lo) or math.isnan(hi)):
        text += f" [{fmt(name, lo)}, {fmt(name, hi)}]"
    return text


def best_values(rows: list[dict[str, Any]], metrics: list[str]) -> dict[str, float]:
    """Per metric with a direction, the best value over the decoders' rows.

    The human reference row is a yardstick, not a contender: it is never the highlighted best.
    NaN and missing values are ignored.
    """
    from bench.metrics import METRICS

    best: dict[str, float] = {}
    for name in metrics:
        m = METRICS.get(name)
        values = [float(r[name]) for r in rows  # a degenerate row is never the best, however it scores
                  if r.get("model") != "human" and not is_degenerate(r) and is_number(r.get(name))
                  and not math.isnan(r[name])]
        if m is None or m.direction == "none" or not values:
            continue
        best[name] = max(values) if m.direction == "higher" else min(values)
    return best


def arrow(name: str) -> str:
    from bench.metrics import METRICS

    m = METRICS.get(name)
    return {"higher": " ↑", "lower": " ↓"}.get(m.direction if m else "none", "")


def suite_table(rows: list[dict[str, Any]], metrics: list[str]) -> list[str]:
    """The lines of one suite's Markdown table."""
    from bench.publish import varying_settings

    best = best_values(rows, metrics)
    settings = varying_settings(rows)  # a setting that differs between rows is shown beside each
    head = ["model", "decoder", *settings, "n", "flags"] + [m + arrow(m) for m in metrics]
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join(["---"] * (4 + len(settings)) + ["---:"] * len(metrics)) + "|"]
    for r in rows:
        decoder = r["decoder"] + (f":{r['decoder_args']}" if r.get("decoder_args") else "")
        n = r.get("n")
        cells = [md_text(r["model"]), md_code(decoder), *(_int(r.get(c)) for c in settings),
                 str(int(n)) if is_number(n) else md_text(n or ""), md_text(r.get("flags") or "")]
        for m in metrics:
            text = cell(r, m) + (f" {DEGENERATE_MARK}" if is_degenerate(r) and cell(r, m) else "")
            is_best = (r["model"] != "human" and not is_degenerate(r) and m in best and is_number(r.get(m))
                       and float(r[m]) == best[m])
            cells.append(f"**{text}**" if is_best else text)
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render_markdown(title: str, by_suite: dict[str, list[dict[str, Any]]], metrics: list[str],
                    notes: list[str] | None = None) -> str:
    """The whole document: a title, notes, then per suite its settings and table."""
    from bench.metrics import METRICS

    out = [f"# {md_text(title)}", ""]
    out += [*(md_text(n) for n in notes), ""] if notes else []
    out += ["Each value is followed by its 95% bootstrap interval over prompts. ↑ higher is better, "
            "↓ lower is better; the best decoder's value in each column is in bold (the human reference row is a yardstick, never bold). "
            f"{DEGENERATE_MARK} marks every metric of a row flagged degenerate (see its flags): its word metrics describe text that is barely there. "
            "MAUVE is a set-level score: its value is the mean over k-means seeds and its interval mean ± one sd over those seeds (column mauve_sd), not a bootstrap interval.", ""]
    for suite, rows in by_suite.items():
        shown = [m for m in metrics if any(is_number(r.get(m)) for r in rows)]
        settings = rows[0]
        out += [f"## {md_text(suite)}", "",
                f"suite version {md_text(settings.get('suite_version', ''))}, {_int(settings.get('n_prompts'))} prompts, "
                f"up to {_int(next((r.get('max_new_tokens') for r in rows if r.get('max_new_tokens')), ''))} new tokens.",
                ""]
        out += suite_table(rows, shown)
        out.append("")
    out += ["## Metrics", ""]
    out += [f"- `{m}`{arrow(m)}: {METRICS[m].description}" for m in metrics if m in METRICS]
    return "\n".join(out) + "\n"


def _int(value: Any) -> str:
    return str(int(value)) if is_number(value) and not math.isnan(value) else str(value or "")
