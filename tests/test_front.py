"""The quality-diversity front: the Pareto computation exactly, the axis choice, the PNG and the page."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from click.testing import CliRunner

from bench.publish.front import front_points, pareto_mask, quality_metric


def row(decoder: str, args: str, diversity: float, **metrics: float) -> dict:
    r = {"suite": "s", "suite_version": "1", "model": "m", "decoder": decoder, "decoder_args": args, "n": 4,
         "n_prompts": 4, "diversity": diversity, "diversity_lo": diversity - 0.01, "diversity_hi": diversity + 0.01}
    for name, value in metrics.items():
        r[name.replace("_", "-")] = value
    return r


def test_pareto_mask_exactly() -> None:
    points = [(0.9, 0.2), (0.5, 0.8), (0.7, 0.7), (0.6, 0.6), (0.9, 0.1), (0.2, 0.8), (0.7, 0.7)]
    # (0.6, 0.6) < (0.7, 0.7); (0.9, 0.1) < (0.9, 0.2); (0.2, 0.8) < (0.5, 0.8); equal points both stay.
    assert pareto_mask(points, (True, True)) == [True, True, True, False, False, False, True]
    # Lower-is-better quality (rep-2): the smallest y wins on that axis.
    assert pareto_mask([(0.5, 0.1), (0.6, 0.3), (0.4, 0.05), (0.5, 0.2)], (True, False)) == [True, True, True, False]
    assert pareto_mask([], (True, True)) == [] and pareto_mask([(1.0, 1.0)], (True, False)) == [True]


def test_quality_axis_preference_and_points() -> None:
    human = dict(row("reference", "", 0.95, rep_2=0.02, coherence=-3.0), model="human")
    rows = [row("top-p", "p=0.8", 0.70, rep_2=0.10, coherence=-2.0, mauve=0.80),
            row("top-p", "p=0.95", 0.90, rep_2=0.03, coherence=-2.6, mauve=0.90),
            row("greedy", "", 0.40, rep_2=0.40, coherence=-1.5, mauve=0.30), human]
    assert quality_metric(rows) == "mauve"
    assert quality_metric([{k: v for k, v in r.items() if k != "mauve"} for r in rows]) == "coherence"
    rep_only = [{k: v for k, v in r.items() if k not in ("mauve", "coherence")} for r in rows]
    assert quality_metric(rep_only) == "rep-2"
    points, reference = front_points(rep_only, "rep-2")
    # rep-2, lower is better: top-p p=0.95 (0.90, 0.03) dominates both others.
    assert [(p.label, p.pareto) for p in points] == [("top-p:p=0.8", False), ("top-p:p=0.95", True), ("greedy", False)]
    assert reference is not None and (reference.diversity, reference.quality) == (0.95, 0.02)
    points, _ = front_points(rows, "coherence")  # greedy is the most coherent, top-p 0.95 the most diverse
    assert [p.pareto for p in points] == [True, True, True]
    assert {p.family for p in points} == {"m top-p", "m greedy"}
    assert quality_metric([row("greedy", "", 0.4)]) is None  # no quality measured: no front


def make_store(tmp_path: Path) -> Path:
    """A real store from the fake backend: a top-p and a temperature grid plus greedy."""
    from bench.cli import main

    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"ba{i} kot mi", "reference": "mit lon re tun sa lo"})
                               + "\n" for i in range(6)))
    out = tmp_path / "runs"
    result = CliRunner().invoke(main, ["run", "--model", "m", "--backend", "fake", "--suite", str(prompts), "--out", str(out),
                                       "--max-new-tokens", "12", "--decoder", "top-p:p=0.5|0.8|0.95",
                                       "--decoder", "temperature:t=0.3|1.0", "--decoder", "greedy"])
    assert result.exit_code == 0, result.output
    return out


def test_leaderboard_writes_the_front_png_and_lists_the_front(tmp_path: Path) -> None:
    from PIL import Image

    from bench.cli import main

    out = make_store(tmp_path)
    result = CliRunner().invoke(main, ["leaderboard", str(out), "--out", str(tmp_path / "pub" / "board")])
    assert result.exit_code == 0, result.output
    png = tmp_path / "pub" / "board-front.png"
    assert str(png) in result.output
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size[0] > 600 and image.size[1] > 400
    md = (tmp_path / "pub" / "board.md").read_text()
    assert "quality-diversity front" in md and "(board-front.png)" in md and "rep-2 (lower is better" in md
    page = (tmp_path / "pub" / "board.html").read_text()
    assert 'data-plot="front"' in page and 'data-quality="rep-2"' in page and 'id="pareto"' in page


def test_page_shows_the_front_in_chromium(tmp_path: Path) -> None:
    from test_html_browser import CHROMIUM, LAUNCH_ARGS, _browser_or_skip

    from bench.publish.cli import build_leaderboard

    sync_playwright = _browser_or_skip()
    out = make_store(tmp_path)
    paths = build_leaderboard([str(out)], str(tmp_path / "pub" / "board"))
    with open(paths["csv"]) as f:
        rows = [r for r in csv.DictReader(f) if r["model"] != "human"]
    expected = pareto_mask([(float(r["diversity"]), float(r["rep-2"])) for r in rows], (True, False))
    expected_labels = sorted(r["decoder"] + (f":{r['decoder_args']}" if r["decoder_args"] else "")
                             for r, on in zip(rows, expected) if on)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            page = browser.new_page()
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(paths["html"].as_uri())
            front = page.locator("figure[data-plot='front'] svg")
            assert front.count() == 1
            box = front.bounding_box()
            assert box and box["width"] > 100 and box["height"] > 100
            # Three families drawn (top-p, temperature, greedy), the ringed front and the human star.
            assert page.locator("figure[data-plot='front'] svg g[id^='family-']").count() == 3
            assert page.locator("figure[data-plot='front'] svg g#pareto").count() == 1
            assert page.locator("figure[data-plot='front'] svg g#human").count() == 1
            listed = page.eval_on_selector_all("ul.pareto li", "ls => ls.map(l => l.dataset.pareto)")
            assert sorted(listed) == expected_labels and listed
            assert page.locator("figure[data-plot='front'] figcaption").inner_text().count("rep-2 (lower is better") == 1
            assert errors == []
        finally:
            browser.close()


def test_grid_labels_show_only_what_varies_within_a_family():
    from bench.publish.front import grid_labels

    assert grid_labels(["top-p:p=0.8,t=1.0", "top-p:p=0.9,t=1.0"]) == ["p=0.8", "p=0.9"]
    assert grid_labels(["static-reweight:alpha=0.1,top_k=500"]) == [""]  # one point: the legend names it
    assert grid_labels(["entropy-matched:target=1.0,mode=global", "entropy-matched:target=None,mode=global"]) == [
        "target=1.0", "target=None"]
    assert grid_labels(["greedy", "greedy"]) == ["greedy", "greedy"]  # nothing to tell apart: the whole label
