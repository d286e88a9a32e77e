"""The published HTML page in a real browser: Debian's headless Chromium driven by playwright.

Skipped (with the reason) when chromium or playwright is missing: scripts/install_browser.sh
installs both. The page is built from a hand-made leaderboard (no model needed), loaded from
disk with all network access refused, so a page that needs the network fails here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync"]


def _browser_or_skip():
    reason = "needs Debian's chromium and the playwright package; run scripts/install_browser.sh"
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip(f"{CHROMIUM} not found: {reason}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip(f"playwright not installed: {reason}")
    return sync_playwright


def _row(decoder: str, rep2: float, div: float, d2: float) -> dict:
    return {"suite": "cd-wikitext", "suite_version": "1", "model": "m", "decoder": decoder, "decoder_args": "",
            "n": 5, "n_prompts": 5, "rep-2": rep2, "rep-2_lo": rep2 - 0.01, "rep-2_hi": rep2 + 0.01,
            "diversity": div, "diversity_lo": div - 0.02, "diversity_hi": div + 0.02,
            "distinct-2": d2, "distinct-2_lo": d2 - 0.05, "distinct-2_hi": d2 + 0.05,
            "length-words": 10.0, "length-words_lo": 9.0, "length-words_hi": 11.0}


@pytest.fixture(scope="module")
def page_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from bench.publish.html import render_html

    # rep-2 (lower is better): reference < b < c < a; the human reference is never highlighted
    human = dict(_row("reference", 0.01, 0.60, 0.99), model="human")
    rows = [_row("a", 0.30, 0.50, 0.70), _row("b", 0.05, 0.90, 0.95), _row("c", 0.10, 0.80, 0.90), human]
    path = tmp_path_factory.mktemp("html") / "lb.html"
    path.write_text(render_html("test board", {"cd-wikitext": rows}, ["rep-2", "diversity", "distinct-2", "length-words"]))
    return path


def _decoders(page) -> list[str]:
    return page.eval_on_selector_all("table.lb tbody tr", "rs => rs.map(r => r.cells[1].textContent)")


def test_sorting_highlighting_and_plots_in_chromium(page_file: Path) -> None:
    sync_playwright = _browser_or_skip()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            page = browser.new_page()
            requested = []
            page.on("request", lambda r: requested.append(r.url))
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(page_file.as_uri())
            assert _decoders(page) == ["a", "b", "c", "reference"]
            # lower is better: first click puts the lowest rep-2 first
            page.click("th[data-metric='rep-2']")
            assert _decoders(page) == ["reference", "b", "c", "a"]
            assert page.get_attribute("th[data-metric='rep-2']", "aria-sort") == "ascending"
            page.click("th[data-metric='rep-2']")
            assert _decoders(page) == ["a", "c", "b", "reference"]
            # higher is better: first click puts the highest diversity first
            page.click("th[data-metric='diversity']")
            assert _decoders(page) == ["b", "c", "reference", "a"]
            assert page.get_attribute("th[data-metric='diversity']", "aria-sort") == "descending"
            # the best value of each directional column is highlighted, and only that one
            best = page.eval_on_selector_all("td.best", "cs => cs.map(c => c.dataset.value)")
            assert sorted(best) == sorted(["0.05", "0.9", "0.95"])
            # plots: a scatter (diversity against rep-2 here) and the bars, as rendered SVG
            assert page.locator("figure[data-plot='scatter'] svg").count() == 1
            assert page.locator("figure[data-plot='bars'] svg").count() == 1
            box = page.locator("figure[data-plot='scatter'] svg").bounding_box()
            assert box and box["width"] > 100 and box["height"] > 100
            assert errors == []
            assert all(u.startswith("file:") for u in requested), requested
        finally:
            browser.close()
