"""Leaderboards of many runs (issue 23): a page of bounded size whose table pages and searches, plots
drawn for the crowd, a printed table cut to the best and worst rows; small boards as they were."""

from __future__ import annotations

import io
import json
import random
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

METRICS = ["rep-2", "diversity", "distinct-2", "mauve", "length-words"]
HOSTILE = 'm</script><script>alert(1)</script>&"'


def fake_rows(n: int, seed: int = 0) -> list[dict]:
    """``n`` decoder rows over five decoder families (every 97th flagged degenerate) and a human row."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        decoder = ("top-p", "top-k", "temperature", "min-p", "typical")[i % 5]
        row = {"suite": "s.jsonl", "suite_version": "1", "model": HOSTILE if i == 7 else "m", "decoder": decoder,
               "decoder_args": f"x={i},t=1.0", "n": 5, "n_prompts": 5, "flags": ""}
        for m in METRICS:
            v = rng.random() * (20 if m == "length-words" else 1)
            row.update({m: v, f"{m}_lo": v - rng.random() * 0.05, f"{m}_hi": v + rng.random() * 0.05})
        if i % 97 == 3:
            row["flags"] = "degenerate: 40% empty"
        rows.append(row)
    human = {"suite": "s.jsonl", "suite_version": "1", "model": "human", "decoder": "reference", "decoder_args": "",
             "n": 5, "n_prompts": 5}
    for m in METRICS:
        human.update({m: 0.5, f"{m}_lo": 0.4, f"{m}_hi": 0.6})
    return rows + [human]


def page_of(rows: list[dict], samples: str | None = None) -> str:
    from bench.publish.html import render_html

    return render_html("scale", {"s.jsonl": rows}, METRICS, ["note"], samples=samples)


def table_data(page: str) -> dict:
    found = re.findall(r'<script type="application/json" class="lbp-data">(.*?)</script>', page, re.S)
    assert len(found) == 1
    return json.loads(found[0])


class _Cells(HTMLParser):
    """The text of every body cell of the plain tables, row by row."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None
        self._in_body = False

    def handle_starttag(self, tag, attrs):
        if tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.rows.append([])
        elif tag == "td" and self._in_body:
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None
        elif tag == "tbody":
            self._in_body = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _json_row_texts(row: list, n_text: int, mark: str) -> list[str]:
    """The texts the page's script writes for one JSON row (as PAGED_JS does)."""
    out = [c[0] if isinstance(c, list) else c for c in row[1:1 + n_text]]
    out.append("" if row[1 + n_text] is None else str(row[1 + n_text]))
    for c in row[2 + n_text:]:
        text = c[1] + (f" {c[2]}" if len(c) > 2 and c[2] else "")
        out.append(text + (f" {mark}" if len(c) > 3 and c[3] & 2 else ""))
    return out


def test_pareto_mask_matches_every_pair() -> None:
    from bench.publish.front import pareto_mask

    def pairwise(points, higher):
        o = [(x if higher[0] else -x, y if higher[1] else -y) for x, y in points]
        return [not any(a >= x and b >= y and (a > x or b > y) for j, (a, b) in enumerate(o) if j != i)
                for i, (x, y) in enumerate(o)]

    rng = random.Random(1)
    for trial in range(200):
        # few distinct values: many ties on one axis or both, and duplicates
        points = [(rng.randint(0, 6) / 6, rng.randint(0, 6) / 6) for _ in range(rng.randint(0, 30))]
        for higher in ((True, True), (True, False), (False, True), (False, False)):
            assert pareto_mask(points, higher) == pairwise(points, higher), (points, higher)


def test_a_thousand_rows_make_a_small_page_with_the_same_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.publish import html_table
    from bench.publish.html import _check_offline
    from bench.publish.markdown import best_values

    rows = fake_rows(1000)
    page = page_of(rows, samples="lb-samples/index.html")
    assert len(page.encode()) < 3_000_000
    _check_offline(page)
    data = table_data(page)
    assert len(data["rows"]) == 1001 and data["page"] == 50
    assert "<script>alert" not in page and "m&lt;/script&gt;&lt;script&gt;alert(1)" in page  # as text in the SVGs
    assert "\\u003c/script\\u003e" in page  # ... and escaped inside the JSON, which decodes back to the name
    assert data["rows"][7][1] == HOSTILE
    # the best value of each directional metric is marked exactly where best_values says
    best = best_values(rows, METRICS)
    for j, m in enumerate(METRICS):
        marked = [r[2 + data["text"] + j][0] for r in data["rows"] if len(r[2 + data["text"] + j]) > 3
                  and r[2 + data["text"] + j][3] & 1]
        assert marked == ([best[m]] if m in best else [])
    # every text is the plain table's: render the same rows as a plain table and compare cell by cell
    monkeypatch.setattr(html_table, "PAGED_ROWS", 10_000)
    plain = _Cells()
    plain.feed(html_table.table_html(rows, METRICS, "s.jsonl", "lb-samples/index.html"))
    assert [_json_row_texts(r, data["text"], data["mark"]) for r in data["rows"]] == plain.rows
    assert data["rows"][0][2] == ["top-p:x=0,t=1.0", "lb-samples/index.html#decoder=m%20top-p%3Ax%3D0%2Ct%3D1.0"]


def test_crowd_plots_say_how_they_are_drawn() -> None:
    page = page_of(fake_rows(1000))
    assert "1000 decoders, one colour per decoder family" in page
    assert "each panel shows the 10 best and the 10 worst by its own metric" in page
    assert "the dashed line is the human reference" in page
    # the scatter: one collection per family (five), no point labels; each bar panel names its share
    scatter = re.search(r'<figure class="plot" data-plot="scatter">.*?</figure>', page, re.S).group(0)
    assert len(re.findall(r'<g id="family-\d+"', scatter)) == 6  # five, and the hostile model's own
    assert "x=12" not in scatter and "typical" in scatter
    bars = re.search(r'<figure class="plot" data-plot="bars">.*?</figure>', page, re.S).group(0)
    assert bars.count("best 10, worst 10 of 1000") == 4 and "highest 10, lowest 10 of 1000" in bars
    assert "... 980 more ..." in bars
    front = re.search(r'<figure class="plot" data-plot="front".*?</figure>', page, re.S).group(0)
    assert "x=12" not in front  # no label per point: the legend names the families


def test_ten_thousand_rows_still_make_a_page() -> None:
    page = page_of(fake_rows(10_000))
    assert len(table_data(page)["rows"]) == 10_001
    # past RASTER_POINTS the marks are an image inside the SVG: the plots stay small
    for kind in ("front", "scatter"):
        figure = re.search(rf'<figure class="plot" data-plot="{kind}".*?</figure>', page, re.S).group(0)
        assert "data:image/png;base64," in figure and len(figure) < 400_000
    assert len(page.encode()) < 8_000_000


def test_small_boards_keep_the_plain_table_and_plots() -> None:
    from bench.publish.front import MANY_POINTS
    from bench.publish.html_table import PAGED_ROWS

    page = page_of(fake_rows(MANY_POINTS))
    assert 'class="lbp"' not in page and "lbp-bar" not in page
    assert "one point per model and decoder, 95% intervals" in page and "x=12" in page
    assert page.count("<tr") == MANY_POINTS + 2  # header and the human row
    # past MANY_POINTS the plots change, past PAGED_ROWS the table
    assert 'class="lbp"' not in page_of(fake_rows(PAGED_ROWS - 1))
    assert 'class="lbp"' in page_of(fake_rows(PAGED_ROWS))


def test_legend_names_twenty_families_and_counts_the_rest() -> None:
    from bench.publish.front import front_figure

    rows = []
    for i in range(30):
        rows.append({"suite": "s", "model": "m", "decoder": f"d{i:02d}", "decoder_args": "", "diversity": i / 30,
                     "rep-2": 1 - i / 30})
    fig = front_figure(rows, "s")
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert texts[:20] == [f"d{i:02d}" for i in range(20)]
    assert texts[20:] == ["... and 10 more", "Pareto-optimal"]


def _printed(rows: list[dict]) -> str:
    from rich.console import Console

    from bench.leaderboard import render

    buffer = io.StringIO()
    Console(width=200, file=buffer).print(render(rows))
    return buffer.getvalue()


def test_printed_table_shows_the_best_and_worst_and_says_what_it_left_out() -> None:
    rows = fake_rows(1000)
    out = _printed(rows)
    ranked = sorted((r for r in rows if r["model"] != "human"), key=lambda r: r["diversity"], reverse=True)
    shown = re.findall(r"x=(\d+),t=1\.0", out)
    assert shown == [r["decoder_args"].split(",")[0][2:] for r in ranked[:10] + ranked[-10:]]
    assert "... 980 more rows ..." in out and "reference" in out
    assert "980 of 1001 rows left out" in out and "by diversity (higher is better)" in out
    assert len(out.splitlines()) < 40
    # few rows: every one, in the given order, nothing said about leaving out
    few = fake_rows(40)
    out = _printed(few)
    assert re.findall(r"x=(\d+),t=1\.0", out) == [str(i) for i in range(40)] and "left out" not in out


def test_printed_table_of_several_suites_cuts_each() -> None:
    from bench.leaderboard import bounded_rows

    rows = [dict(r, suite="a") for r in fake_rows(30, seed=1)] + [dict(r, suite="b") for r in fake_rows(30, seed=2)]
    printed, by = bounded_rows(rows, METRICS)
    assert by == "diversity (higher is better)"
    assert [x for x in printed if isinstance(x, int)] == [10, 10]
    assert [r["suite"] for r in printed if isinstance(r, dict) and r["model"] == "human"] == ["a", "b"]
    assert sum(isinstance(r, dict) for r in printed) == 42


def test_bench_run_and_leaderboard_on_a_large_grid(tmp_path: Path) -> None:
    from bench.cli import main

    suite = tmp_path / "p.jsonl"
    suite.write_text("".join(json.dumps({"id": f"p{i}", "prompt": "ba kot mi " * (i + 1)}) + "\n" for i in range(2)))
    grid = "|".join(str(k) for k in range(1, 46))
    store = tmp_path / "store"
    result = CliRunner().invoke(main, ["run", "--backend", "fake", "--suite", str(suite), "--decoder",
                                       f"top-k:k={grid}", "--max-new-tokens", "4", "--out", str(store)])
    assert result.exit_code == 0, result.output
    # the marker cell may wrap in a narrow column (a long model label, as with BENCH_MODEL set)
    assert "25 of 45 rows left out" in result.output and "... 25 more rows" in result.output
    result = CliRunner().invoke(main, ["leaderboard", str(store), "--out", str(tmp_path / "pub" / "lb")])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "pub" / "lb.html").read_text()
    assert "of the 45 decoders each panel shows the 10 best" in page and 'class="lbp"' not in page


def test_large_page_pages_searches_and_sorts_in_chromium(tmp_path: Path) -> None:
    from test_html_browser import CHROMIUM, LAUNCH_ARGS, _browser_or_skip

    from bench.publish.markdown import best_values

    sync_playwright = _browser_or_skip()
    rows = fake_rows(1000)
    rows[5]["diversity"] = float("nan")  # missing: last whichever way the column sorts
    path = tmp_path / "lb.html"
    path.write_text(page_of(rows, samples="lb-samples/index.html"))
    assert path.stat().st_size < 3_000_000
    decoders = "rs => rs.map(r => r.cells[1].textContent)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            page = browser.new_page()
            requested, errors, dialogs = [], [], []
            page.on("request", lambda r: requested.append(r.url))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(path.as_uri())
            body = "div.lbp table.lb tbody tr"
            assert page.eval_on_selector_all(body, decoders) == [f"{r['decoder']}:{r['decoder_args']}" for r in rows[:50]]
            assert page.inner_text(".lbp-info") == "rows 1-50 of 1001, page 1 of 21"
            assert page.is_disabled("button.prev")
            page.click("button.next")
            assert page.eval_on_selector_all(body, decoders)[0] == f"{rows[50]['decoder']}:{rows[50]['decoder_args']}"
            # search: every term must match; x=12 also matches x=120..129
            page.fill(".lbp-bar input", "x=12")
            assert page.locator(body).count() == 11
            assert page.inner_text(".lbp-info") == "rows 1-11 of 11 matching (1001 in all), page 1 of 1"
            page.fill(".lbp-bar input", "x=121 TOP-K")  # case does not matter
            assert page.eval_on_selector_all(body, decoders) == ["top-k:x=121,t=1.0"]
            assert page.get_attribute(f"{body} a", "href") == "lb-samples/index.html#decoder=m%20top-k%3Ax%3D121%2Ct%3D1.0"
            page.fill(".lbp-bar input", "alert")  # the hostile model name is text, never markup
            assert page.eval_on_selector_all(body, "rs => rs.map(r => r.cells[0].textContent)") == [HOSTILE]
            page.fill(".lbp-bar input", "")
            # sort over every row, not one page: higher is better, so the first click puts the highest first
            page.click("div.lbp th[data-metric='diversity']")
            column = 4 + METRICS.index("diversity")  # after model, decoder, flags and n
            values = f"rs => rs.map(r => r.cells[{column}].dataset.value)"
            ordered = sorted((r["diversity"] for r in rows if r["diversity"] == r["diversity"]), reverse=True)
            assert [float(v) for v in page.eval_on_selector_all(body, values)] == ordered[:50]
            assert page.get_attribute("div.lbp th[data-metric='diversity']", "aria-sort") == "descending"
            page.click("div.lbp th[data-metric='diversity']")
            assert [float(v) for v in page.eval_on_selector_all(body, values)] == ordered[::-1][:50]
            for _ in range(20):
                page.click("button.next")
            assert page.eval_on_selector_all(body, values)[-1] == ""  # the missing value, last
            assert page.inner_text(".lbp-info") == "rows 1001-1001 of 1001, page 21 of 21"
            # the best value is highlighted; a degenerate row carries the mark with its flags
            best = best_values(rows, METRICS)
            page.fill(".lbp-bar input", "x=3,")
            assert page.get_attribute(f"{body} span.flag", "title") == "degenerate: 40% empty"
            page.fill(".lbp-bar input", "reference")
            assert page.get_attribute(body, "class") == "human"
            page.fill(".lbp-bar input", "")
            page.click("div.lbp th[data-metric='rep-2']")  # lower is better: the best first
            cell = page.locator(f"{body} >> nth=0").locator("td").nth(4 + METRICS.index("rep-2"))
            assert float(cell.get_attribute("data-value")) == best["rep-2"] and "best" in cell.get_attribute("class")
            assert errors == [] and dialogs == []
            assert all(u.startswith("file:") for u in requested), requested
        finally:
            browser.close()


def test_a_front_of_ties_is_listed_up_to_forty() -> None:
    from bench.publish.front import LIST_MAX, front_html, front_markdown

    rows = [{"suite": "s", "model": "m", "decoder": "top-k", "decoder_args": f"k={i}", "diversity": 1.0, "rep-2": 0.0}
            for i in range(100)]
    page = front_html(rows, "s")
    assert page.count("<li data-pareto=") == LIST_MAX and "... and 60 more: the CSV has every row" in page
    md = front_markdown({"s": rows}, {"s": Path("lb-front.png")})
    assert md.count("\n- m `top-k:k=") == LIST_MAX and "- ... and 60 more" in md
    assert front_html(rows[:LIST_MAX], "s").count("<li") == LIST_MAX  # all, nothing said
