"""The viewer marks repeated 4-grams and, for runs with ``--log-probs``, shades each token by how
unlikely it was under the model (issue 25, part 3)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from bench.cli import main
from bench.publish.view import marked_repeats, shaded_tokens


def test_words_of_a_repeated_4gram_are_marked_and_nothing_else() -> None:
    out = marked_repeats("the cat sat on the cat sat on a mat <b>")
    assert out == ("<mark>the</mark> <mark>cat</mark> <mark>sat</mark> <mark>on</mark> <mark>the</mark> "
                   "<mark>cat</mark> <mark>sat</mark> <mark>on</mark> a mat &lt;b&gt;")
    assert "<mark>" not in marked_repeats("one two three four five six") and marked_repeats("") == ""


def test_tokens_are_shaded_by_improbability() -> None:
    trace = {"pieces": ["Once", " upon", "<x>"], "log_probs": [0.0, -0.6931, -4.6], "entropies": [0.1, 1.0, 3.0],
             "ranks": [1, 2, 40]}
    out = shaded_tokens(trace)
    assert 'rgba(230,120,0,0.00)" title="p=1.000 entropy=0.10 rank 1">Once<' in out
    assert 'rgba(230,120,0,0.50)" title="p=0.500 entropy=1.00 rank 2"> upon<' in out
    assert "&lt;x&gt;" in out and "rank 40" in out


def test_a_traced_run_is_shaded_on_the_page(tmp_path: Path, stories260k: str) -> None:
    suite = tmp_path / "p.jsonl"
    suite.write_text(json.dumps({"id": "a", "prompt": "Once upon a time there was"}) + "\n")
    result = CliRunner().invoke(main, ["run", "--model", stories260k, "--suite", str(suite), "--decoder", "top-k",
                                       "--max-new-tokens", "12", "--log-probs", "--out", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    record = json.loads(next((tmp_path / "runs").glob("*/generations.jsonl")).read_text())
    assert "".join(record["trace"]["pieces"]).strip() == record["continuation"].strip()
    result = CliRunner().invoke(main, ["view", str(tmp_path / "runs"), "--out", str(tmp_path / "page")])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "page" / "index.html").read_text()
    assert page.count('class="tok"') == len(record["token_ids"]) and "mean log-prob" in page
