"""The leaderboard page's tables: one sortable HTML table per suite, drawn a page at a time when long.

Up to :data:`PAGED_ROWS` rows a suite's table is plain HTML whose headers sort on click (the first
click puts the best value first, as the metric's direction says; the next click reverses), the
best value of each column highlighted. Past that, per-cell HTML made the page megabytes long and
slow to open (16 MB for 1000 runs), so the rows travel as one compact JSON array in a
``<script type="application/json">`` and a script draws :data:`PAGE_SIZE` of them at a time, with
the same header (a ``<template>``), the same sorting over every row, a search box and a pager.
The script puts every text in through ``textContent``, never as markup.
"""

from __future__ import annotations

import html
import json
import math
from typing import Any

from bench.publish import DEGENERATE_MARK, is_degenerate, is_number
from bench.publish.markdown import best_values, fmt

PAGED_ROWS = 100
"""Rows of a suite past which its table is drawn from JSON, a page at a time."""
PAGE_SIZE = 50
"""Rows on one page of a paged table."""

# Sorting: numbers by data-value, text by content; missing values always last.
JS = """
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

PAGED_CSS = """
.lbp-bar{margin:1em 0 0;font-size:13px}.lbp-bar input{width:24em;margin-right:1em}.lbp-bar button{margin:0 .3em}
"""

# Runs after JS above: the tables it builds from their <template> are not in the document yet when
# JS binds its own sorting, so each table is sorted by one script only.
PAGED_JS = """
document.querySelectorAll('div.lbp').forEach(function(box){
  var data = JSON.parse(box.querySelector('script.lbp-data').textContent), nText = data.text, size = data.page;
  var table = box.querySelector('template').content.querySelector('table').cloneNode(true);
  box.querySelector('.wrap').appendChild(table);
  var heads = Array.prototype.slice.call(table.querySelectorAll('th')), body = table.tBodies[0];
  var search = box.querySelector('input'), info = box.querySelector('.lbp-info');
  var prev = box.querySelector('button.prev'), next = box.querySelector('button.next');
  var label = function(c){return Array.isArray(c) ? c[0] : c;};
  var rows = data.rows.map(function(r){
    return {r: r, text: r.slice(1, 1 + nText).map(label).join(' ').toLowerCase()};
  });
  var shown = rows, page = 0;
  function key(r, col){
    var c = r[1 + col];
    if (col < nText) return label(c);
    if (col === nText) return c === null ? NaN : c;
    return c[0] === null ? NaN : c[0];
  }
  function td(text, cls){
    var d = document.createElement('td'); d.textContent = text; if (cls) d.className = cls; return d;
  }
  function span(cls, text){
    var s = document.createElement('span'); s.className = cls; s.textContent = text; return s;
  }
  function tr(r){
    var row = document.createElement('tr'), d;
    if (r[0]) row.className = 'human';
    r.slice(1).forEach(function(c, col){
      if (col < nText && Array.isArray(c)){
        d = td(''); var a = document.createElement('a'); a.setAttribute('href', c[1]); a.textContent = c[0];
        d.appendChild(a);
      } else if (col < nText){
        d = td(c);
      } else if (col === nText){
        d = td(c === null ? '' : String(c), 'num'); d.dataset.value = d.textContent;
      } else {
        d = td(c[1], 'num' + (c[3] & 1 ? ' best' : '')); d.dataset.value = c[0] === null ? '' : String(c[0]);
        if (c[2]){ d.append(' '); d.appendChild(span('ci', c[2])); }
        if (c[3] & 2){ d.append(' '); var f = span('flag', data.mark); f.title = r[nText]; d.appendChild(f); }
      }
      row.appendChild(d);
    });
    return row;
  }
  function draw(){
    var pages = Math.max(1, Math.ceil(shown.length / size));
    page = Math.min(Math.max(page, 0), pages - 1);
    var part = shown.slice(page * size, (page + 1) * size), frag = document.createDocumentFragment();
    part.forEach(function(o){ frag.appendChild(tr(o.r)); });
    body.replaceChildren(frag);
    var of = shown.length < rows.length ? ' of ' + shown.length + ' matching (' + rows.length + ' in all)' : ' of ' + rows.length;
    info.textContent = shown.length ? 'rows ' + (page * size + 1) + '-' + (page * size + part.length) + of +
      ', page ' + (page + 1) + ' of ' + pages : 'no row matches (' + rows.length + ' in all)';
    prev.disabled = page === 0; next.disabled = page >= pages - 1;
  }
  function filter(){
    var terms = search.value.toLowerCase().split(/\\s+/).filter(Boolean);
    shown = rows.filter(function(o){ return terms.every(function(t){ return o.text.indexOf(t) >= 0; }); });
    page = 0; draw();
  }
  heads.forEach(function(th, col){
    th.addEventListener('click', function(){
      var dir = th.dataset.direction, cur = th.getAttribute('aria-sort');
      var asc = cur ? cur !== 'ascending' : dir !== 'higher', sign = asc ? 1 : -1, num = th.dataset.type === 'num';
      heads.forEach(function(o){o.removeAttribute('aria-sort');});
      th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
      rows.sort(function(a, b){
        var x = key(a.r, col), y = key(b.r, col);
        if (num){
          if (isNaN(x) || isNaN(y)) return isNaN(x) - isNaN(y);
          return sign * (x - y);
        }
        return sign * x.localeCompare(y);
      });
      filter();
    });
  });
  search.addEventListener('input', filter);
  prev.addEventListener('click', function(){ page -= 1; draw(); });
  next.addEventListener('click', function(){ page += 1; draw(); });
  draw();
});
"""


def direction(name: str) -> str:
    from bench.metrics import METRICS

    return METRICS[name].direction if name in METRICS else "none"


def description(name: str) -> str:
    from bench.metrics import METRICS

    return METRICS[name].description if name in METRICS else ""


def decoder_label(row: dict[str, Any]) -> str:
    return row["decoder"] + (f":{row['decoder_args']}" if row.get("decoder_args") else "")


def setting_text(value: Any) -> str:
    return str(int(value)) if is_number(value) and not math.isnan(value) and float(value).is_integer() else str(value or "")


def _head(rows: list[dict[str, Any]], metrics: list[str]) -> tuple[list[str], str]:
    """The settings shown as columns (those that differ between rows) and the header row's cells."""
    from bench.publish import varying_settings

    arrows = {"higher": " ↑", "lower": " ↓"}
    settings = varying_settings(rows)
    head = ['<th data-type="text">model</th>', '<th data-type="text">decoder</th>',
            *(f'<th data-type="text">{html.escape(c)}</th>' for c in settings), '<th data-type="text">flags</th>',
            '<th data-type="num" data-direction="none">n</th>']
    for m in metrics:
        d = direction(m)
        head.append(f'<th data-type="num" data-metric="{html.escape(m)}" data-direction="{d}" '
                    f'title="{html.escape(description(m))}">{html.escape(m)}{arrows.get(d, "")}</th>')
    return settings, "".join(head)


def table_html(rows: list[dict[str, Any]], metrics: list[str], suite: str, samples: str | None = None) -> str:
    """One suite's sortable table; with ``samples`` (the sample viewer's address) each decoder links to its texts.

    Past :data:`PAGED_ROWS` rows, the paged table (:func:`paged_table_html`)."""
    if len(rows) > PAGED_ROWS:
        return paged_table_html(rows, metrics, suite, samples)
    best = best_values(rows, metrics)
    settings, head = _head(rows, metrics)
    several = _several_models(rows)
    body = []
    for r in rows:
        cls = ' class="human"' if r["model"] == "human" else ""
        n = r.get("n")
        cells = [f"<td>{html.escape(str(r['model']))}</td>", f"<td>{_decoder_cell(r, several, samples)}</td>",
                 *(f"<td>{html.escape(setting_text(r.get(c)))}</td>" for c in settings),
                 f"<td>{html.escape(str(r.get('flags') or ''))}</td>",
                 f'<td class="num" data-value="{int(n) if is_number(n) else ""}">{int(n) if is_number(n) else ""}</td>']
        for m in metrics:
            raw, text, ci, marks = _metric_cell(r, m, best)
            text = html.escape(text)
            if ci:
                text += f' <span class="ci">{html.escape(ci)}</span>'
            if marks & 2:
                text += f' <span class="flag" title="{html.escape(str(r.get("flags")))}">{DEGENERATE_MARK}</span>'
            value = repr(raw) if raw is not None else ""
            cells.append(f'<td class="num{" best" if marks & 1 else ""}" data-value="{value}">{text}</td>')
        body.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
    return (f'<div class="wrap"><table class="lb" data-suite="{html.escape(suite)}"><thead><tr>{head}</tr>'
            f'</thead><tbody>{"".join(body)}</tbody></table></div>')


def _several_models(rows: list[dict[str, Any]]) -> bool:
    return len({r["model"] for r in rows if r["model"] != "human"}) > 1


def _metric_cell(row: dict[str, Any], m: str, best: dict[str, float]) -> tuple[float | None, str, str, int]:
    """(the value to sort on or None, its text, its interval's text or "", marks: 1 best, 2 degenerate)."""
    v, lo, hi = row.get(m), row.get(f"{m}_lo"), row.get(f"{m}_hi")
    ok = is_number(v) and not math.isnan(v)
    ci = ""
    if ok and is_number(lo) and is_number(hi) and not (math.isnan(lo) or math.isnan(hi)):
        ci = f"[{fmt(m, lo)}, {fmt(m, hi)}]"
    marks = 0
    if ok and row["model"] != "human" and not is_degenerate(row) and m in best and float(v) == best[m]:
        marks |= 1
    if ok and is_degenerate(row):
        marks |= 2
    return float(v) if ok else None, fmt(m, v), ci, marks


def _decoder_cell(row: dict[str, Any], several: bool, samples: str | None) -> str:
    """The decoder's name, linked to the sample viewer filtered on it (the viewer's own run label)."""
    href = _samples_href(row, several, samples)
    text = html.escape(decoder_label(row))
    return text if href is None else f'<a href="{html.escape(href)}">{text}</a>'


def _samples_href(row: dict[str, Any], several: bool, samples: str | None) -> str | None:
    if samples is None or row["model"] == "human":
        return None
    from urllib.parse import quote

    label = f"{row['model']} {decoder_label(row)}" if several else decoder_label(row)
    return samples + "#decoder=" + quote(label, safe="")


def paged_table_html(rows: list[dict[str, Any]], metrics: list[str], suite: str, samples: str | None = None) -> str:
    """The table drawn by :data:`PAGED_JS`: the header in a template, the rows as JSON (see :func:`_row_data`)."""
    best = best_values(rows, metrics)
    settings, head = _head(rows, metrics)
    several = _several_models(rows)
    data = {"text": 3 + len(settings), "page": PAGE_SIZE, "mark": DEGENERATE_MARK,
            "rows": [_row_data(r, settings, metrics, best, several, samples) for r in rows]}
    suite_attr = html.escape(suite)
    return (f'<div class="lbp" data-suite="{suite_attr}" data-rows="{len(rows)}"><div class="lbp-bar">'
            '<input type="search" aria-label="filter rows" placeholder="filter: model, decoder, arguments, flags">'
            '<button type="button" class="prev">previous</button><button type="button" class="next">next</button> '
            '<span class="lbp-info"></span></div>'
            f'<noscript><p class="note">A script draws this table of {len(rows)} rows; every row is in the CSV '
            'written beside this page.</p></noscript>'
            f'<template><table class="lb" data-suite="{suite_attr}"><thead><tr>{head}</tr></thead><tbody></tbody>'
            f'</table></template><script type="application/json" class="lbp-data">{script_json(data)}</script>'
            '<div class="wrap"></div></div>')


def _row_data(row: dict[str, Any], settings: list[str], metrics: list[str], best: dict[str, float], several: bool,
              samples: str | None) -> list[Any]:
    """One row for the script: [1 if human else 0, model, decoder or [decoder, link], the settings, flags, n,
    then per metric [value to sort on or null, text, interval text, marks (1 best, 2 degenerate)] or
    [null, text] when missing]: the texts are those of the plain table, formatted here."""
    href = _samples_href(row, several, samples)
    n = row.get("n")
    out: list[Any] = [int(row["model"] == "human"), str(row["model"]),
                      decoder_label(row) if href is None else [decoder_label(row), href],
                      *(setting_text(row.get(c)) for c in settings), str(row.get("flags") or ""),
                      int(n) if is_number(n) else None]
    for m in metrics:
        raw, text, ci, marks = _metric_cell(row, m, best)
        if raw is None:
            out.append([None, text])
        else:  # inf sorts as missing, as in the plain table (its data-value "inf" parses as NaN)
            out.append([raw if math.isfinite(raw) else None, text, ci, marks])
    return out


def script_json(data: Any) -> str:
    """``data`` as JSON that can sit inside a <script>: no ``<``, ``>`` or ``&`` (a model named
    ``</script><script>...`` stays text), ASCII only, no NaN."""
    text = json.dumps(data, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
