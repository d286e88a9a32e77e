"""Prompt suites: the real WikiText and contrastive-decoding files, JSONL files, subsets."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import types
from pathlib import Path

import pytest

from bench.errors import BenchError
from bench.suite_loading import describe_suites, load_suite, subset
from bench.specs import Prompt
from suites import wikitext as wikitext_module
from suites.jsonl import load_jsonl

SHARED = Path(os.environ.get("BENCH_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
DATA = SHARED / "data"
WIKI_FILE = DATA / "wikitext" / "wiki.test.raw"
CD_FILE = DATA / "cd-benchmark" / "wikitext_gpt2-xl_contrastive_k5_alpha0.6.json"

needs_shared = pytest.mark.skipif(not WIKI_FILE.is_file() or not CD_FILE.is_file(), reason=f"no shared data in {SHARED}")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    """Tests choose their own data locations."""
    monkeypatch.delenv("BENCH_DATA_DIR", raising=False)
    monkeypatch.delenv("BENCH_CD_BENCHMARK", raising=False)


@pytest.fixture
def no_hub(monkeypatch):
    """Make the Hub fallback fail at once instead of retrying for a network that is not there."""

    def fail():
        raise ConnectionError("offline in tests")

    monkeypatch.setattr(wikitext_module, "_hub_lines", fail)


# --- wikitext -------------------------------------------------------------------------------------


@needs_shared
def test_wikitext_prompts_follow_the_construction():
    spec, prompts = load_suite("wikitext", data_dir=str(DATA))
    assert (spec.name, spec.version, spec.num_prompts) == ("wikitext", "1", None)
    assert spec.source == str(WIKI_FILE.resolve())
    assert len(prompts) == 1500  # the documented count for the test split
    lines = WIKI_FILE.read_text(encoding="utf-8").split("\n")
    for p in prompts:
        assert re.fullmatch(r"wt103-test-L\d+", p.id)
        line = lines[int(p.id.removeprefix("wt103-test-L")) - 1]
        assert not line.strip().startswith("=")  # no heading
        assert len(p.text.split()) == 32 and p.text == p.text.strip()
        assert p.reference and p.reference.strip() and p.reference == p.reference.rstrip()
        assert len(p.reference.split()) >= 32
        # Prompt + reference is the paragraph with its own spacing (' @-@ ', ' , ').
        assert p.text + p.reference == line.strip()
    assert len({p.id for p in prompts}) == len(prompts)


@needs_shared
def test_wikitext_ids_are_stable():
    _, prompts = load_suite("wikitext", data_dir=str(DATA))
    assert prompts[0].id == "wt103-test-L4"
    assert prompts[0].text.startswith("Robert Boulter is an English film , television and theatre actor .")
    assert prompts[0].reference.startswith(" a starring role in the play Herons")
    assert prompts[-1].id == "wt103-test-L4357"
    digest = hashlib.sha256("\n".join(p.id for p in prompts).encode()).hexdigest()
    _, again = load_suite("wikitext", path=str(WIKI_FILE))
    assert hashlib.sha256("\n".join(p.id for p in again).encode()).hexdigest() == digest
    assert again == prompts


@needs_shared
def test_wikitext_from_hub_rows_matches_the_file(monkeypatch):
    """Hub rows keep their newline and have '' for blank lines; the prompts must not change."""
    rows = [{"text": "" if line == " " else line + "\n"} for line in WIKI_FILE.read_text(encoding="utf-8").split("\n")[:-1]]
    calls = []

    def load_dataset(name, config, split):
        calls.append((name, config, split))
        return rows

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    spec, prompts = load_suite("wikitext", data_dir=str(SHARED / "no-such-dir"))
    assert calls == [("Salesforce/wikitext", "wikitext-103-raw-v1", "test")]
    assert spec.source.startswith("hf://Salesforce/wikitext")
    _, local = load_suite("wikitext", data_dir=str(DATA))
    assert prompts == local


@needs_shared
def test_data_dir_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("BENCH_DATA_DIR", str(DATA))
    spec, prompts = load_suite("wikitext", num_prompts=3)
    assert spec.source == str(WIKI_FILE.resolve()) and len(prompts) == 3


def test_heading_detection():
    assert wikitext_module.is_heading(" = Robert Boulter = \n")
    assert wikitext_module.is_heading(" = = = Legacy = = = ")
    assert not wikitext_module.is_heading(" The = sign is used in equations = ")
    long_heading = " = " + " ".join(["word"] * 80) + " = "
    assert wikitext_module.build_prompts([long_heading, " ", ""]) == ()


def test_wikitext_missing_files(tmp_path, no_hub):
    with pytest.raises(BenchError, match=r"no file at .*nope\.raw"):
        load_suite("wikitext", path=str(tmp_path / "nope.raw"))
    with pytest.raises(BenchError) as err:
        load_suite("wikitext", data_dir=str(tmp_path))
    message = str(err.value)
    assert str(tmp_path / "wikitext" / "wiki.test.raw") in message
    assert "Salesforce/wikitext" in message and "--data-dir" in message and "BENCH_DATA_DIR" in message
    with pytest.raises(BenchError, match="BENCH_DATA_DIR"):
        load_suite("wikitext")


def test_wikitext_file_without_paragraphs(tmp_path):
    short = tmp_path / "wiki.test.raw"
    short.write_text(" \n = Title = \n Too short a paragraph . \n")
    with pytest.raises(BenchError, match="no paragraph"):
        load_suite("wikitext", path=str(short))


# --- cd-wikitext ----------------------------------------------------------------------------------


@needs_shared
def test_cd_wikitext_matches_the_json():
    entries = json.loads(CD_FILE.read_text(encoding="utf-8"))
    spec, prompts = load_suite("cd-wikitext", data_dir=str(DATA))
    assert (spec.name, spec.version, spec.source) == ("cd-wikitext", "1", str(CD_FILE.resolve()))
    assert len(prompts) == 1314
    assert prompts[0].id == "cd-wikitext-0000" and prompts[-1].id == "cd-wikitext-1313"
    assert prompts[0].text == entries[0]["prefix_text"]
    assert prompts[0].text.startswith("Headlam served as Officer Commanding North @-@ Western Area in 1946")
    assert [p.reference for p in prompts] == [e["reference_text"] for e in entries]


@needs_shared
def test_cd_wikitext_file_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("BENCH_CD_BENCHMARK", str(CD_FILE))
    spec, prompts = load_suite("cd_wikitext", data_dir=str(tmp_path))  # env wins over the data dir
    assert spec.source == str(CD_FILE.resolve()) and len(prompts) == 1314


def test_cd_wikitext_missing_file(monkeypatch, tmp_path):
    with pytest.raises(BenchError) as err:
        load_suite("cd-wikitext", data_dir=str(tmp_path))
    message = str(err.value)
    assert str(tmp_path / "cd-benchmark") in message and "BENCH_CD_BENCHMARK" in message and "--data-dir" in message
    monkeypatch.setenv("BENCH_CD_BENCHMARK", str(tmp_path / "x.json"))
    with pytest.raises(BenchError, match=r"x\.json \(\$BENCH_CD_BENCHMARK\)"):
        load_suite("cd-wikitext")
    with pytest.raises(BenchError, match="the given path"):
        load_suite("cd-wikitext", path=str(tmp_path / "y.json"))


def test_cd_wikitext_wrong_file(tmp_path):
    wrong = tmp_path / "other.json"
    wrong.write_text(json.dumps([{"prefix_text": "a", "reference_text": "b"}]))
    with pytest.raises(BenchError, match="holds 1 entries, expected a list of 1314"):
        load_suite("cd-wikitext", path=str(wrong))
    wrong.write_text("{not json")
    with pytest.raises(BenchError, match="as JSON"):
        load_suite("cd-wikitext", path=str(wrong))


# --- subsets --------------------------------------------------------------------------------------


def _prompts(n: int) -> list[Prompt]:
    return [Prompt(id=f"p{i}", text=f"text {i}") for i in range(n)]


def test_subset_is_deterministic_nested_and_in_suite_order():
    prompts = _prompts(200)
    previous: set[str] = set()
    for n in range(1, 201):
        chosen = subset(prompts, n)
        ids = [p.id for p in chosen]
        assert len(ids) == n
        assert ids == [p.id for p in prompts if p.id in set(ids)]  # suite order
        assert previous <= set(ids)  # nested
        previous = set(ids)
    assert subset(prompts, 10) == subset(list(reversed(prompts)), 10)[::-1]  # depends on ids only
    assert [p.id for p in subset(prompts, 10)] != [f"p{i}" for i in range(10)]  # not the head
    assert subset(prompts, 500) == prompts and subset(prompts, None) == prompts


@needs_shared
def test_num_prompts_on_a_real_suite():
    spec, ten = load_suite("wikitext", data_dir=str(DATA), num_prompts=10)
    _, eleven = load_suite("wikitext", data_dir=str(DATA), num_prompts=11)
    assert spec.num_prompts == 10 and len(ten) == 10
    assert set(p.id for p in ten) < set(p.id for p in eleven)
    assert ten == load_suite("wikitext", data_dir=str(DATA), num_prompts=10)[1]
    lines = sorted(int(p.id.removeprefix("wt103-test-L")) for p in ten)
    assert lines[-1] - lines[0] > 1000  # spread over the split, not one article
    spec_all, everything = load_suite("wikitext", data_dir=str(DATA), num_prompts=10_000)
    assert len(everything) == 1500 and spec_all.num_prompts is None


@pytest.mark.parametrize("bad", [0, -3, True, 2.5])
def test_num_prompts_must_be_positive(tmp_path, bad):
    file = tmp_path / "p.jsonl"
    file.write_text('{"prompt": "x"}\n')
    with pytest.raises(BenchError, match="--num-prompts"):
        load_suite(str(file), num_prompts=bad)


# --- JSONL ----------------------------------------------------------------------------------------


def test_jsonl_happy_path(tmp_path):
    file = tmp_path / "prompts.jsonl"
    lines = [
        {"prompt": "Once upon a time", "reference": " there was a cat."},
        {"prompt": " Keep  my spacing\n", "id": 7, "extra": {"ignored": True}},
        {"prompt": "The third", "id": "custom", "reference": None},
    ]
    file.write_text(json.dumps(lines[0]) + "\n\n   \n" + json.dumps(lines[1]) + "\n" + json.dumps(lines[2]) + "\n")
    spec, prompts = load_suite(str(file))
    assert spec.name == "jsonl" and spec.source == str(file.resolve()) and spec.num_prompts is None
    assert spec.version == hashlib.sha256(file.read_bytes()).hexdigest()[:16]
    assert prompts == [
        Prompt("line-1", "Once upon a time", " there was a cat."),
        Prompt("7", " Keep  my spacing\n", None),
        Prompt("custom", "The third", None),
    ]
    file.write_text(file.read_text() + '{"prompt": "more"}\n')
    assert load_suite(str(file))[0].version != spec.version


def test_jsonl_relative_path_without_extension(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("my_prompts.txt").write_text('{"prompt": "a"}\r\n{"prompt": "b"}\r\n')  # CRLF is fine
    spec, prompts = load_suite("my_prompts.txt")
    assert spec.name == "jsonl" and spec.source == str(tmp_path / "my_prompts.txt")
    assert [p.text for p in prompts] == ["a", "b"]


@pytest.mark.parametrize(
    "content, line, message",
    [
        ("", None, "empty"),
        ("\n  \n\n", None, "empty"),
        ('{"prompt": "ok"}\n{"prompt": "bad"\n', 2, "invalid JSON"),
        ('{"prompt": "ok"}\n\n["a list"]\n', 3, "expected a JSON object, got an array"),
        ('"just a string"\n', 1, "expected a JSON object, got a string"),
        ('{"id": "x"}\n', 1, "missing 'prompt'"),
        ('{"prompt": ""}\n', 1, "'prompt' is empty"),
        ('{"prompt": "  \\n "}\n', 1, "'prompt' is empty"),
        ('{"prompt": 3}\n', 1, "'prompt' must be a string, got a number"),
        ('{"prompt": null}\n', 1, "'prompt' must be a string, got null"),
        ('{"prompt": "a", "id": 1.5}\n', 1, "'id' must be a string or an integer"),
        ('{"prompt": "a", "id": true}\n', 1, "'id' must be a string or an integer, got a boolean"),
        ('{"prompt": "a", "id": ["x"]}\n', 1, "'id' must be a string or an integer, got an array"),
        ('{"prompt": "a", "id": ""}\n', 1, "'id' is empty"),
        ('{"prompt": "a", "reference": 5}\n', 1, "'reference' must be a string, got a number"),
        ('{"prompt": "a", "id": "x"}\n{"prompt": "b", "id": "x"}\n', 2, "duplicate id 'x' \\(first used on line 1\\)"),
        ('{"prompt": "a", "id": 1}\n{"prompt": "b", "id": "1"}\n', 2, "duplicate id '1'"),
        ('{"prompt": "a", "id": "line-2"}\n{"prompt": "b"}\n', 2, "duplicate id 'line-2'"),
    ],
)
def test_jsonl_malformed(tmp_path, content, line, message):
    file = tmp_path / "bad.jsonl"
    file.write_text(content)
    with pytest.raises(BenchError) as err:
        load_suite(str(file))
    text = str(err.value)
    assert str(file) in text
    assert re.search(message, text), text
    if line is not None:
        assert text.startswith(f"{file}, line {line}: "), text


def test_jsonl_not_utf8(tmp_path):
    file = tmp_path / "bad.jsonl"
    file.write_bytes(b'{"prompt": "ok"}\n{"prompt": "caf\xe9"}\n')
    with pytest.raises(BenchError, match=r"bad\.jsonl, line 2: not UTF-8"):
        load_jsonl(file)


def test_jsonl_missing_file_and_suite_path(tmp_path):
    with pytest.raises(BenchError, match="does not exist"):
        load_suite(str(tmp_path / "missing.jsonl"))
    with pytest.raises(BenchError, match="folder"):
        load_jsonl(tmp_path)
    file = tmp_path / "p.jsonl"
    file.write_text('{"prompt": "x"}\n')
    # --suite-path is for registered suites; a JSONL value is its own path.
    assert load_suite(str(file), path=str(tmp_path / "other.json"))[1] == [Prompt("line-1", "x")]


# --- registry -------------------------------------------------------------------------------------


def test_unknown_suite_suggests_a_name():
    with pytest.raises(BenchError, match="did you mean 'wikitext'"):
        load_suite("wikitxt")


def test_describe_suites():
    described = describe_suites()
    assert [name for name, _, _ in described] == ["cd-wikitext", "wikitext"]
    assert all(version == "1" and description for _, version, description in described)
