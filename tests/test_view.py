"""The sample viewer (bench view): a hand-made store with hostile texts, in Python and in Chromium.

The browser part is skipped with its reason when chromium or playwright is missing
(scripts/install_browser.sh installs both), like tests/test_html_browser.py.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.cli import main
from bench.specs import DecoderSpec, GenerationSpec, ModelSpec, RunSpec, SuiteSpec
from bench.store import RunStore

EVIL_MODEL = 'evil<b>"model\'&'
HOSTILE = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'
PROMPTS = {
    "p1": ("Once upon a time " + HOSTILE, "there was a reference & more"),
    "p2": ("The zebra walked", "into the tall grass"),
    "p3": ("A quiet morning", None),
}
# decoder -> prompt -> (continuation, token ids, finish reason)
TEXTS = {
    "greedy": {"p1": ("the the the the the the the the", [5] * 8, "length"),
               "p2": ("\n\n\n", [13, 13, 13], "length"),
               "p3": ("a bird sang a song.", [7, 8, 9, 7, 10], "eos")},
    "top-p": {"p1": ("she met a fox " + HOSTILE, [1, 2, 3, 4, 6], "eos"),
              "p2": ("and found water near the river", [1, 2, 3, 4, 5, 6], "eos"),
              "p3": ("", [], "eos")},
}


def make_store(root: Path) -> Path:
    store = RunStore(root)
    suite = SuiteSpec("jsonl", "abc123", "prompts.jsonl")
    for name, args in (("greedy", ()), ("top-p", (("p", 0.9), ("t", 1.0)))):
        spec = RunSpec(ModelSpec(EVIL_MODEL), DecoderSpec(name, args), suite, GenerationSpec(8, 1, 0))
        run = store.open(spec, expected_records=3, device="cpu", resolved={})
        store.append(run, [
            {"run_id": spec.run_id, "prompt_id": pid, "sample_index": 0, "prompt": PROMPTS[pid][0],
             "reference": PROMPTS[pid][1], "continuation": text, "token_ids": ids, "num_tokens": len(ids),
             "finish_reason": finish, "model": EVIL_MODEL, "hyperfit": None, "decoder": name,
             "decoder_args": dict(args), "seed": None, "seconds": 0.1}
            for pid, (text, ids, finish) in TEXTS[name].items()])
    return root


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_store(tmp_path_factory.mktemp("view") / "runs")


def read_view_data(folder: Path) -> tuple[dict, dict[int, dict]]:
    """The page's metadata and its chunks (by number), read back from ``bench view``'s data folder."""
    (data,) = folder.glob("data-*")

    def args(name: str, call: str) -> list:
        text = (data / name).read_text(encoding="ascii")
        assert text.startswith(f"VIEW.{call}(") and text.endswith(");\n"), text[:80]
        return json.loads("[" + text[len(call) + 6:-3] + "]")

    chunks = {}
    for path in data.glob("c*.js"):
        k, chunk = args(path.name, "chunk")
        chunks[k] = chunk
    return args("meta.js", "meta")[0], chunks


def test_page_escapes_everything_and_shows_each_continuations_metrics(store: Path, tmp_path: Path) -> None:
    from bench.publish.view import record_metrics, write_view
    from bench.scorers.repetition import score_texts

    page = write_view([str(store)], tmp_path / "v").read_text()
    assert HOSTILE not in page and "<script>window" not in page and "<b>" not in page
    assert "evil&lt;b&gt;" not in page  # one model: names not shown per card
    meta, chunks = read_view_data(tmp_path / "v")
    assert meta["n"] == 6 and meta["prompts"] == 3 and meta["decoders"] == ["greedy", "top-p:p=0.9,t=1.0"]
    (chunk,) = chunks.values()
    assert [p[1:4] for p in chunk["p"]] == [[pid, *PROMPTS[pid]] for pid in ("p1", "p2", "p3")]
    assert chunk["t"] == [TEXTS[d][pid][0] for pid in ("p1", "p2", "p3") for d in ("greedy", "top-p")]
    for f in (tmp_path / "v").glob("data-*/*.js"):  # data files: ASCII, no '<' that could end a script
        assert "<" not in f.read_text(encoding="ascii")
    rec = {"continuation": "the the the the the the the the", "token_ids": [5] * 8}
    expected = score_texts([rec["continuation"]], [rec["token_ids"]])
    got = record_metrics(rec)
    assert got["rep-2"] == expected["rep-2"] and got["rep-2"] > 0.8 and got["ttr"] == 1 / 8
    assert math.isnan(record_metrics({"continuation": "", "token_ids": []})["rep-2"])


TRICKY = ["", " ", "one", "a b", "a b c", "the the the the the", "x\x1cy\x1cz w", "a\u3000b\u3000c\u3000d",
          "word " * 30, "....", "--- --- ---", "tab\tand\nnew line here", "a" + " " * 16 + "b c d",
          "é è ê ë", "a_b c_d e_f", "\u200bzero width\u200b space", "  lead and trail  ", "\n\n\n"]


def test_each_continuations_metrics_and_flag_are_the_scorers_own() -> None:
    """The viewer counts n-grams itself (a million records through score_texts one at a time would
    take minutes): the same values, and the same degenerate flag as the leaderboard's."""
    import random

    from bench.leaderboard import degeneracy
    from bench.publish.view import SHOWN_METRICS, record_metrics
    from bench.publish.view_data import _degenerate_test, continuation_counts
    from bench.scorers.repetition import score_texts

    rng = random.Random(1)
    texts = TRICKY + [" ".join(rng.choices(["a", "b", "c", "dd", "\n", ""], k=rng.randint(0, 12))) for _ in range(300)]
    degenerate = _degenerate_test()
    for text in texts:
        ids = [rng.randint(0, 5) for _ in range(rng.randint(0, 9))]
        want, got = score_texts([text], [ids]), record_metrics({"continuation": text, "token_ids": ids})
        for m in SHOWN_METRICS:
            assert got[m] == want[m] or (math.isnan(got[m]) and math.isnan(want[m])), (text, m, got[m], want[m])
        words = continuation_counts(text, ids)[1]
        assert degenerate(text, words) == bool(degeneracy([{"continuation": text}], None)["flags"]), repr(text)


def test_view_command_and_bad_input(store: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["view", str(store), "--out", str(tmp_path / "v")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "v" / "index.html").is_file()
    result = CliRunner().invoke(main, ["view", str(tmp_path / "nothing"), "--out", str(tmp_path / "w")])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"error: {tmp_path / 'nothing'} is neither a run folder nor a run store"]
    assert not (tmp_path / "w").exists()


def _visible(page) -> list[tuple[str, str]]:
    """(prompt id, decoder) of each continuation shown, once the page has applied its filters."""
    page.wait_for_function("document.documentElement.dataset.busy === '0'", timeout=20_000)
    return [tuple(x) for x in page.eval_on_selector_all(
        ".cont:not(.hidden)", "cs => cs.map(c => [c.closest('section').dataset.promptId, c.dataset.decoder])")]


def test_viewer_filters_in_chromium(store: Path, tmp_path: Path) -> None:
    from test_html_browser import CHROMIUM, LAUNCH_ARGS, _browser_or_skip

    from bench.publish.cli import build_leaderboard

    sync_playwright = _browser_or_skip()
    paths = build_leaderboard([str(store)], str(tmp_path / "lb" / "board"), view=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            page = browser.new_page()
            requested, errors = [], []
            page.on("request", lambda r: requested.append(r.url))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(paths["samples"].as_uri())
            assert len(_visible(page)) == 6
            assert page.evaluate("window.pwned") is None
            texts = page.eval_on_selector_all(".cont[data-decoder='top-p:p=0.9,t=1.0'] .text", "ts => ts.map(t => t.textContent)")
            assert texts == ["she met a fox " + HOSTILE, "and found water near the river", ""]
            assert page.eval_on_selector_all(".prompt-text", "ts => ts.map(t => t.textContent)")[0] == PROMPTS["p1"][0]
            # by decoder
            page.uncheck("input.decoder[value='greedy']")
            assert {d for _, d in _visible(page)} == {"top-p:p=0.9,t=1.0"}
            page.check("input.decoder[value='greedy']")
            # by finish reason
            page.select_option("#finish", "length")
            assert _visible(page) == [("p1", "greedy"), ("p2", "greedy")]
            assert page.locator("section.prompt:not(.hidden)").count() == 2
            page.select_option("#finish", "")
            # by a metric's range: rep-2 of 'the the ...' is high, undefined values never match a range
            page.select_option("#metric", "rep2")
            page.fill("#min", "0.5")
            assert _visible(page) == [("p1", "greedy")]
            page.fill("#min", "")
            page.select_option("#metric", "lengthtokens")
            page.fill("#max", "3")
            assert sorted(_visible(page)) == [("p2", "greedy"), ("p3", "top-p:p=0.9,t=1.0")]
            page.fill("#max", "")
            # degenerate continuations (blank, whitespace runs, under 3 words), as the leaderboard flags rows
            page.select_option("#degenerate", "only")
            assert sorted(_visible(page)) == [("p2", "greedy"), ("p3", "top-p:p=0.9,t=1.0")]
            page.select_option("#degenerate", "hide")
            assert len(_visible(page)) == 4 and ("p2", "greedy") not in _visible(page)
            page.select_option("#degenerate", "")
            # search: in the continuation, or in its prompt or reference
            page.fill("#search", "RIVER")
            assert _visible(page) == [("p2", "top-p:p=0.9,t=1.0")]
            page.fill("#search", "zebra")
            assert sorted(_visible(page)) == [("p2", "greedy"), ("p2", "top-p:p=0.9,t=1.0")]
            assert page.text_content("#count") == "2 of 6 continuations shown"
            page.fill("#search", "")
            assert len(_visible(page)) == 6
            # from the leaderboard page: a decoder's link opens the viewer on that decoder alone
            page.goto(paths["html"].as_uri())
            assert page.get_attribute("#samples", "href") == "board-samples/index.html"
            page.click("table.lb a:text('top-p:p=0.9,t=1.0')")
            page.wait_for_load_state()
            assert page.url.endswith("#decoder=top-p%3Ap%3D0.9%2Ct%3D1.0")
            assert {d for _, d in _visible(page)} == {"top-p:p=0.9,t=1.0"} and len(_visible(page)) == 3
            assert errors == []
            assert all(u.startswith("file:") for u in requested), requested
        finally:
            browser.close()
