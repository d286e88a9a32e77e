"""``bench view --judged``: the pairwise judge's verdicts and rationale on each prompt, and the
"A beat B" filter, on the viewer's hostile store (tests/test_view.py), in Python and in Chromium."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_view import HOSTILE, _visible, make_store, read_view_data

from bench.cli import main
from bench.judge import JudgeSettings
from bench.judge.pairwise import judge_records
from bench.store import RunDir

RATIONALE = "I weigh both. <b>bold</b> & more\n"


class MoreWordsJudge:
    """A consistent judge: prefers the continuation with more distinct words, whatever its position,
    and says so with a hostile rationale."""

    ident = "stub-judge"

    def __init__(self) -> None:
        self.requests = self.retries = 0

    def complete(self, system: str, user: str) -> str:
        self.requests += 1
        first = user.split("[Continuation A]\n")[1].split("\n\n[Continuation B]")[0]
        second = user.split("[Continuation B]\n")[1].split("\n\nThink briefly")[0]
        winner = "A" if len(set(first.split())) >= len(set(second.split())) else "B"
        return f"{RATIONALE}Verdict: {winner}"

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def judged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("judged")
    store = make_store(root / "runs")
    runs = {RunDir(p).spec().decoder.name: RunDir(p) for p in sorted(store.iterdir()) if (p / "header.json").is_file()}
    greedy, top_p = runs["greedy"], runs["top-p"]
    result = judge_records(greedy.records(), top_p.records(), JudgeSettings(cache=str(root / "cache.jsonl")),
                           judge=MoreWordsJudge())
    result.update(run_a=greedy.run_id, run_b=top_p.run_id)
    path = root / "greedy-vs-top-p.json"
    path.write_text(json.dumps(result))
    return store, path, result


def test_judge_results_keep_the_rationale_in_both_orders(judged) -> None:
    _, _, result = judged
    by_prompt = {o["prompt_id"]: o for o in result["outcomes"]}
    # p1: 'the the ...' (1 word) loses to the fox; p2: blank lines lose; p3: the bird beats the empty text
    assert {p: o["outcome"] for p, o in by_prompt.items()} == {"p1": "b", "p2": "b", "p3": "a"}
    assert by_prompt["p1"]["answers"] == {"a_first": RATIONALE + "Verdict: B", "b_first": RATIONALE + "Verdict: A"}


def test_page_shows_verdicts_escaped_and_refuses_unknown_runs(judged, tmp_path: Path) -> None:
    store, path, _ = judged
    result = CliRunner().invoke(main, ["view", str(store), "--judged", str(path), "--out", str(tmp_path / "v")])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "v" / "index.html").read_text()
    assert "<b>bold</b>" not in page and HOSTILE not in page
    assert '<option value="0:a">greedy beat top-p:p=0.9,t=1.0</option>' in page
    meta, chunks = read_view_data(tmp_path / "v")
    prompts = {p[1]: p for c in chunks.values() for p in c["p"]}  # [suite, id, prompt, reference, tokens, html]
    blocks = "".join(p[5] for p in prompts.values())
    assert "<b>bold</b>" not in blocks and "&lt;b&gt;bold&lt;/b&gt; &amp; more" in blocks
    assert blocks.count("<details data-pair=\"0\">") == 3 and blocks.count("shown first</div>") == 6
    assert prompts["p1"][4] == "0:b" and prompts["p3"][4] == "0:a"
    assert meta["verdicts"] == {"0:b": [0, 1], "0:a": [2]}  # the filter's prompts, by their order on the page
    # a judge file of another store's run: one line, nothing written
    other = json.loads(path.read_text())
    other["run_b"] = "0123456789abcdef"
    (tmp_path / "other.json").write_text(json.dumps(other))
    for bad, message in ((tmp_path / "other.json", "--judged: run 0123456789abcdef was judged but is not among the runs viewed"),
                         (tmp_path / "missing.json", "--judged")):
        result = CliRunner().invoke(main, ["view", str(store), "--judged", str(bad), "--out", str(tmp_path / "w")])
        assert result.exit_code == 2, result.output
        (line,) = result.output.strip().splitlines()
        assert line.startswith(f"error: {message}" if "run" in message else "error: --judged"), line
        assert not (tmp_path / "w").exists()


def test_a_beat_b_filter_in_chromium(judged, tmp_path: Path) -> None:
    from test_html_browser import CHROMIUM, LAUNCH_ARGS, _browser_or_skip

    from bench.publish.view import write_view

    store, path, _ = judged
    sync_playwright = _browser_or_skip()
    page_path = write_view([str(store)], tmp_path / "v", judged=[str(path)])
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(page_path.as_uri())
            assert len(_visible(page)) == 6
            page.select_option("#judged", "0:a")  # greedy beat top-p: only p3
            assert sorted(_visible(page)) == [("p3", "greedy"), ("p3", "top-p:p=0.9,t=1.0")]
            page.select_option("#judged", "0:b")
            assert {pid for pid, _ in _visible(page)} == {"p1", "p2"}
            page.select_option("#judged", "0:tie")
            assert _visible(page) == [] and page.text_content("#count") == "0 of 6 continuations shown"
            page.select_option("#judged", "")
            assert len(_visible(page)) == 6
            # the rationale opens under its verdict, as text
            page.select_option("#judged", "0:b")  # only p1 and p2 are rendered
            assert page.locator("section.prompt").count() == 2 == len({pid for pid, _ in _visible(page)})
            page.click("section[data-prompt-id='p1'] details summary")
            assert page.is_visible("section[data-prompt-id='p1'] .why")
            assert RATIONALE.strip() in page.text_content("section[data-prompt-id='p1'] .why")
            assert errors == [] and page.evaluate("window.pwned") is None
        finally:
            browser.close()
