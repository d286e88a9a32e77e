"""The viewer marks repeated 4-grams and, for runs with ``--log-probs``, shades each token by how
unlikely it was under the model (issue 25, part 3)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_view import read_view_data

from bench.cli import main


@pytest.fixture(scope="module")
def browser():
    from test_html_browser import CHROMIUM, LAUNCH_ARGS, _browser_or_skip

    with _browser_or_skip()() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def browser_page(browser):
    """A blank Chromium page holding the viewer's script (its renderers, not started)."""
    from bench.publish.view_js import SCRIPT

    page = browser.new_page()
    page.set_content(f"<script>{SCRIPT}</script>")
    return page


def _marks(page, text: str) -> str:
    return page.evaluate("t => { var d = document.createElement('div'); VIEW.marks(d, t); return d.innerHTML; }", text)


def test_words_of_a_repeated_4gram_are_marked_and_nothing_else(browser_page) -> None:
    out = _marks(browser_page, "the cat sat on the cat sat on a mat <b>")
    assert out == ("<mark>the</mark> <mark>cat</mark> <mark>sat</mark> <mark>on</mark> <mark>the</mark> "
                   "<mark>cat</mark> <mark>sat</mark> <mark>on</mark> a mat &lt;b&gt;")
    assert "<mark>" not in _marks(browser_page, "one two three four five six") and _marks(browser_page, "") == ""
    # whitespace is Python's (\x1c separates words, U+FEFF does not), kept as it was
    assert _marks(browser_page, "a\x1cb c d a\x1cb c d") == "<mark>a</mark>\x1c<mark>b</mark> <mark>c</mark> " \
        "<mark>d</mark> <mark>a</mark>\x1c<mark>b</mark> <mark>c</mark> <mark>d</mark>"
    assert "<mark>" not in _marks(browser_page, "a\ufeffb c d e a b c d")


def test_tokens_are_shaded_by_improbability(browser_page) -> None:
    trace = {"pieces": ["Once", " upon", "<x>"], "log_probs": [0.0, -0.6931, -4.6], "entropies": [0.1, 1.0, 3.0],
             "ranks": [1, 2, 40]}
    out = browser_page.evaluate("t => { var d = document.createElement('div'); VIEW.shade(d, t); return d.innerHTML; }",
                                [trace["pieces"], trace["log_probs"], trace["entropies"], trace["ranks"], "=", ""])
    assert 'rgba(230,120,0,0.00)" title="p=1.000 entropy=0.10 rank 1">Once<' in out
    assert 'rgba(230,120,0,0.50)" title="p=0.500 entropy=1.00 rank 2"> upon<' in out
    assert "&lt;x&gt;" in out and "rank 40" in out


def test_numbers_are_formatted_as_python_formats_them(browser_page) -> None:
    values = [0.0625, 0.1875, -0.0625, 0.0005, 1 / 3, 2 / 3, 0.9995, 12.5, 13.5, 0.5, 2.5, 0.0, -0.0004, 0.125, 0.375, 1e-9]
    for digits in (0, 2, 3):
        got = browser_page.evaluate(f"vs => vs.map(v => VIEW.fix(v, {digits}))", values)
        assert got == [f"{v:.{digits}f}" for v in values], digits


def test_a_traced_run_is_shaded_on_the_page(tmp_path: Path, stories260k: str, request) -> None:
    suite = tmp_path / "p.jsonl"
    suite.write_text(json.dumps({"id": "a", "prompt": "Once upon a time there was"}) + "\n")
    result = CliRunner().invoke(main, ["run", "--model", stories260k, "--suite", str(suite), "--decoder", "top-k",
                                       "--max-new-tokens", "12", "--log-probs", "--out", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    record = json.loads(next((tmp_path / "runs").glob("*/generations.jsonl")).read_text())
    assert "".join(record["trace"]["pieces"]).strip() == record["continuation"].strip()
    result = CliRunner().invoke(main, ["view", str(tmp_path / "runs"), "--out", str(tmp_path / "page")])
    assert result.exit_code == 0, result.output
    (chunk,) = read_view_data(tmp_path / "page")[1].values()
    pieces, log_probs = chunk["x"]["0"][:2]
    assert pieces == record["trace"]["pieces"] and len(log_probs) == len(record["token_ids"])
    page = request.getfixturevalue("browser").new_page()  # skipped here without chromium
    page.goto((tmp_path / "page" / "index.html").as_uri())
    page.wait_for_function("document.documentElement.dataset.busy === '0'")
    assert page.locator(".cont .tok").count() == len(record["token_ids"])
    assert "mean log-prob" in page.text_content(".cont .metrics")
