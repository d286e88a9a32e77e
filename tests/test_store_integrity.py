"""What the store reads is checked (issue 24, part 4).

A record of another run, a partial record, a header that does not hash to its folder, a format
from the future, a miscounted ``expected_records`` and a ``scores.json`` of the wrong shape are
each one line naming the file (and the line, for records), through every reader: ``bench
leaderboard``, ``bench compare``, ``bench view``, ``bench check`` and ``decbench.load``. Nothing is
written, and a torn last line stays resumable.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Callable

import pytest
from click.testing import CliRunner

import decbench
from bench.cli import main
from bench.errors import BenchError


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".lock"}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("integrity")
    prompts = root / "p.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"ba{i} kot", "reference": "mit lon re"}) + "\n"
                               for i in range(3)))
    result = CliRunner().invoke(main, ["run", "--backend", "fake", "--suite", str(prompts), "--decoder", "greedy",
                                       "--decoder", "top-k:k=5", "--max-new-tokens", "4", "--out", str(root / "runs")])
    assert result.exit_code == 0, result.output
    return root


def _runs(store: Path) -> list[Path]:
    return sorted(p.parent for p in store.glob("*/header.json"))


def _json_edit(path: Path, edit: Callable[[dict], None]) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _append(path: Path, line: str) -> None:
    with open(path, "a") as f:
        f.write(line + "\n")


def _foreign(a: Path, b: Path) -> None:
    _append(a / "generations.jsonl", (b / "generations.jsonl").read_text().splitlines()[0])


def _partial(key: str) -> Callable[[Path, Path], None]:
    def edit(a: Path, b: Path) -> None:
        record = json.loads((a / "generations.jsonl").read_text().splitlines()[0])
        del record[key]
        _append(a / "generations.jsonl", json.dumps(record))
    return edit


def _header(edit: Callable[[dict], None]) -> Callable[[Path, Path], None]:
    return lambda a, b: _json_edit(a / "header.json", edit)


def _scores(edit: Callable[[dict], None]) -> Callable[[Path, Path], None]:
    return lambda a, b: _json_edit(a / "scores.json", edit)


CASES: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    "record-of-another-run": (_foreign, r"generations.jsonl: line 4: this record belongs to run '"),
    "record-empty": (lambda a, b: _append(a / "generations.jsonl", "{}"), r"line 4: this record is not a complete"),
    "record-no-prompt-id": (_partial("prompt_id"), r"line 4: this record has no prompt_id"),
    "record-no-sample-index": (_partial("sample_index"), r"line 4: this record has no valid sample_index"),
    "record-no-continuation": (_partial("continuation"), r"line 4: this record has no continuation"),
    "record-bad-token-ids": (lambda a, b: _append(a / "generations.jsonl", json.dumps(dict(
        json.loads((a / "generations.jsonl").read_text().splitlines()[0]), sample_index=7, token_ids="1 2"))),
        r"line 4: this record has token_ids that are not a list"),
    "record-deep-json": (lambda a, b: _append(a / "generations.jsonl", "[" * 100000 + "]" * 100000),
                         r"line 4 is not a JSON object"),
    "record-huge-int": (lambda a, b: _append(a / "generations.jsonl", '{"sample_index": ' + "9" * 5000 + "}"),
                        r"line 4 is not a JSON object"),
    "header-edited-spec": (_header(lambda h: h["spec"]["generation"].update(max_new_tokens=5)),
                           r"header.json: its spec has run id \w+, not its folder's"),
    "header-edited-run-id": (_header(lambda h: h.update(run_id="0" * 16)), r"header.json: its spec has run id"),
    "header-future-format": (_header(lambda h: h.update(format=99)), r"header.json has format 99, written by a newer"),
    "header-format-text": (_header(lambda h: h.update(format="2")), r"header.json: 'format' is '2'"),
    "header-expected-text": (_header(lambda h: h.update(expected_records="3")),
                             r"header.json: 'expected_records' is '3', not a count"),
    "header-expected-float": (_header(lambda h: h.update(expected_records=2.5)), r"'expected_records' is '2.5'"),
    "header-expected-bool": (_header(lambda h: h.update(expected_records=True)), r"'expected_records' is 'True'"),
    "header-expected-negative": (_header(lambda h: h.update(expected_records=-1)), r"'expected_records' is '-1'"),
    "scores-metric-text": (_scores(lambda s: s["generations"]["metrics"].update({"rep-2": "low"})),
                           r"scores.json: 'generations.metrics.rep-2' is 'low', not a number"),
    "scores-metric-bool": (_scores(lambda s: s["generations"]["metrics"].update({"rep-2": True})),
                           r"'generations.metrics.rep-2' is 'True'"),
    "scores-ci-one-number": (_scores(lambda s: s["generations"]["ci"].update({"rep-2": 0.5})),
                             r"'generations.ci.rep-2' is '0.5', not an interval"),
    "scores-ci-three": (_scores(lambda s: s["generations"]["ci"].update({"rep-2": [0, 1, 2]})),
                        r"'generations.ci.rep-2' is '\[0, 1, 2\]'"),
    "scores-generations-list": (_scores(lambda s: s.update(generations=[1])), r"'generations' is not a table"),
    "scores-human-text": (_scores(lambda s: s.update(human={"metrics": {"rep-2": "x"}, "ci": {}})),
                          r"'human.metrics.rep-2' is 'x'"),
    "scores-model-based": (_scores(lambda s: s.update(model_based={"mauve": {"value": "high", "ci": [0, 1]}})),
                           r"'model_based.mauve.metrics.mauve' is 'high'"),
    "scores-judge": (_scores(lambda s: s.update(judge={"win_rate": 0.5, "ci": "wide"})), r"'judge.ci.win_rate'"),
}


@pytest.fixture()
def damaged(pristine: Path, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[Path, str]:
    store = tmp_path / "runs"
    shutil.copytree(pristine / "runs", store)
    a, b = _runs(store)
    edit, pattern = CASES[request.param]
    edit(a, b)
    return store, pattern, request.param


COMMANDS = {
    "leaderboard": lambda store, tmp: ["leaderboard", str(store), "--out", str(tmp / "board")],
    "compare": lambda store, tmp: ["compare", *map(str, _runs(store))],
    "view": lambda store, tmp: ["view", str(store), "--out", str(tmp / "page")],
    "check": lambda store, tmp: ["check", str(store), "--baseline", str(store / "leaderboard.csv")],
}


@pytest.mark.parametrize("damaged", list(CASES), indirect=True)
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_damaged_store_is_one_line_naming_the_file(damaged: tuple[Path, str, str], command: str, tmp_path: Path) -> None:
    import re

    store, pattern, case = damaged
    if command == "view" and case.startswith("scores-"):
        pytest.skip("bench view shows records, not scores.json")
    before = _snapshot(tmp_path)
    result = CliRunner().invoke(main, COMMANDS[command](store, tmp_path))
    lines = result.stderr.splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert re.search(pattern, lines[0]), lines[0]
    assert "Traceback" not in result.output
    assert _snapshot(tmp_path) == before  # nothing written, nothing repaired behind the user's back


@pytest.mark.parametrize("damaged", ["record-of-another-run", "record-empty", "header-edited-spec",
                                     "header-future-format", "scores-metric-text"], indirect=True)
def test_decbench_load_raises_the_projects_error(damaged: tuple[Path, str, str]) -> None:
    store, pattern, _ = damaged
    with pytest.raises(BenchError, match=pattern):
        decbench.load(store)


def test_a_torn_last_line_stays_resumable(pristine: Path, tmp_path: Path) -> None:
    store = tmp_path / "runs"
    shutil.copytree(pristine / "runs", store)
    a, _ = _runs(store)
    lines = (a / "generations.jsonl").read_text().splitlines(keepends=True)
    (a / "generations.jsonl").write_text("".join(lines[:2]) + lines[2][:15])
    (a / "scores.json").unlink()
    prompts = pristine / "p.jsonl"
    result = CliRunner().invoke(main, ["run", "--backend", "fake", "--suite", str(prompts), "--decoder", "greedy",
                                       "--decoder", "top-k:k=5", "--max-new-tokens", "4", "--out", str(store)])
    assert result.exit_code == 0, result.output
    def without_timing(text: str) -> list[dict]:
        return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in text.splitlines()]

    assert without_timing((a / "generations.jsonl").read_text()) == without_timing("".join(lines))
