"""Faults lose nothing and say one line (issue 15): disk full, torn judge caches, Ctrl-C; injection
into Markdown and CSV; credentials never stored or printed; sampling at tiny temperatures."""

from __future__ import annotations

import csv
import errno
import json
import re
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.cli import main
from bench.errors import BenchError

PROMPTS = [{"id": f"p{i}", "prompt": f"Once upon a time a cat number {i} went", "reference": "to the park."}
           for i in range(6)]
KEY = "sk-proj-abcdef1234567890"


@pytest.fixture()
def prompts(tmp_path: Path) -> Path:
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PROMPTS))
    return path


def _run(stories260k: str, prompts: Path, out: Path, *extra: str) -> list[str]:
    return ["run", "--model", stories260k, "--suite", str(prompts), "--decoder", "greedy", "--max-new-tokens", "6",
            "--batch-size", "1", "--out", str(out), *extra]


def _lines(out: Path) -> list[dict]:
    return [json.loads(line) for f in out.glob("*/generations.jsonl") for line in f.read_text().splitlines()]


PROGRESS = re.compile(r"^\S.*: \d+/\d+ records \(\d+%\)")
"""The plain progress lines a run prints when stderr is not a terminal (bench/progress.py)."""


def _one_error_line(result) -> str:
    """The run's one error line; the progress lines of the work done before the fault may precede it."""
    lines = [line for line in result.stderr.strip().splitlines() if not PROGRESS.match(line)]
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


# --- disk full ---------------------------------------------------------------------------------------
def _enospc(path: str = "") -> OSError:
    return OSError(errno.ENOSPC, "No space left on device", path or None)


def test_disk_full_while_appending_keeps_whole_records(tmp_path, prompts, stories260k, monkeypatch):
    out = tmp_path / "runs"
    real_fsync, calls = os.fsync, []

    def fsync(fd):  # the third batch hits a full disk
        calls.append(fd)
        if len(calls) == 3:
            raise _enospc()
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    line = _one_error_line(CliRunner().invoke(main, _run(stories260k, prompts, out)))
    assert line == f"error: no space left on {out} (2 records kept; rerun to resume)"
    assert len(_lines(out)) == 2  # the failed batch was cut back: no partial line
    assert not list(out.rglob("*.tmp"))
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert CliRunner().invoke(main, _run(stories260k, prompts, out)).exit_code == 0
    recs = _lines(out)
    assert len(recs) == 6 and len({r["prompt_id"] for r in recs}) == 6


@pytest.mark.parametrize("command", ["view", "leaderboard", "compare-markdown", "compare-csv"])
def test_disk_full_while_publishing_leaves_no_partial_file(tmp_path, prompts, stories260k, monkeypatch, command):
    out = tmp_path / "runs"
    assert CliRunner().invoke(main, _run(stories260k, prompts, out)).exit_code == 0
    run = next(p.parent for p in out.glob("*/header.json"))
    dest = tmp_path / "pub"
    argv = {"view": ["view", str(out), "--out", str(dest)],
            "leaderboard": ["leaderboard", str(out), "--out", str(dest / "board")],
            "compare-markdown": ["compare", str(run), str(run), "--n-boot", "10", "--markdown", str(dest / "c.md")],
            "compare-csv": ["compare", str(run), str(run), "--n-boot", "10", "--csv", str(dest / "c.csv")]}[command]
    real = Path.write_text

    def write_text(self, data, *a, **kw):
        if self.name.endswith(".tmp") and str(self).startswith(str(dest)):
            real(self, data[: len(data) // 2], *a, **kw)  # half of it reaches the disk, then it is full
            raise _enospc(str(self))
        return real(self, data, *a, **kw)

    monkeypatch.setattr(Path, "write_text", write_text)
    result = CliRunner().invoke(main, argv)
    assert result.exit_code != 0
    # what failed is absent, not half there (the leaderboard's CSV is written whole before its pages)
    partial = (".tmp", ".html", ".md") + ((".csv",) if command == "compare-csv" else ())
    assert not [p for p in dest.rglob("*") if p.is_file() and p.suffix in partial], sorted(dest.rglob("*"))


def test_disk_full_while_writing_scores_leaves_no_empty_tmp(tmp_path, prompts, stories260k, monkeypatch):
    out = tmp_path / "runs"
    real = Path.write_text

    def write_text(self, data, *a, **kw):
        if self.name == "scores.json.tmp":
            real(self, "", *a, **kw)  # the file is created, then the disk is full
            raise _enospc(str(self))
        return real(self, data, *a, **kw)

    monkeypatch.setattr(Path, "write_text", write_text)
    line = _one_error_line(CliRunner().invoke(main, _run(stories260k, prompts, out)))
    assert line == f"error: no space left on {out} (6 records kept; rerun to resume)"
    assert not list(out.rglob("scores.json.tmp")) and len(_lines(out)) == 6
    monkeypatch.setattr(Path, "write_text", real)
    result = CliRunner().invoke(main, _run(stories260k, prompts, out))
    assert result.exit_code == 0 and "0 records generated" in result.output


def test_disk_full_on_a_real_tmpfs(tmp_path, stories260k):
    """A 1 MB tmpfs as --out, nearly filled: one line, nothing torn, the rerun after freeing space completes."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    try:
        prompts = tmp_path / "many.jsonl"
        prompts.write_text("".join(json.dumps({"id": f"q{i}", "prompt": f"Once upon a time {i}"}) + "\n" for i in range(40)))
        filler = mnt / "filler"
        free = os.statvfs(mnt).f_bavail * os.statvfs(mnt).f_frsize
        filler.write_bytes(b"x" * (free - 24 * 1024))
        out = mnt / "runs"
        argv = ["run", "--model", stories260k, "--suite", str(prompts), "--decoder", "greedy", "--max-new-tokens", "48",
                "--batch-size", "1", "--out", str(out)]
        line = _one_error_line(CliRunner().invoke(main, argv))
        assert line.startswith(f"error: no space left on {out} (") and line.endswith(" records kept; rerun to resume)")
        kept = int(line.split("(")[1].split()[0])
        assert len(_lines(out)) == kept  # every line whole
        assert not list(out.rglob("*.tmp"))
        filler.unlink()
        assert CliRunner().invoke(main, argv).exit_code == 0
        recs = _lines(out)
        assert len(recs) == 40 and len({r["prompt_id"] for r in recs}) == 40
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


# --- the judge cache ---------------------------------------------------------------------------------
class CountingJudge:
    """A judge that prefers the continuation with GOOD and counts what it is paid for."""

    ident, requests, retries = "fake:judge", 0, 0

    def __init__(self, fail_on: int | None = None):
        self.fail_on, self.calls = fail_on, []

    def complete(self, system: str, user: str) -> str:
        self.calls.append(user)
        a = user.split("[Continuation A]")[1].split("[Continuation B]")[0]
        return "Sûr. Verdict: A" if "GOOD" in a else "Sûr. Verdict: B"

    def close(self) -> None:
        pass


def _judge_runs(n: int = 4):
    a = [{"prompt_id": f"p{i}", "sample_index": 0, "prompt": f"P {i}", "continuation": f"GOOD é {i}"} for i in range(n)]
    b = [{"prompt_id": f"p{i}", "sample_index": 0, "prompt": f"P {i}", "continuation": f"bad ü {i}"} for i in range(n)]
    return a, b


def test_judge_cache_torn_inside_a_utf8_character_is_repaired(tmp_path):
    from bench.judge import JudgeSettings
    from bench.judge.pairwise import judge_records

    cache = tmp_path / "verdicts.jsonl"
    s = JudgeSettings(cache=str(cache), n_boot=50)
    a, b = _judge_runs()
    judge_records(a, b, s, judge=CountingJudge())
    whole = cache.read_bytes()
    lines = whole.splitlines(keepends=True)
    last = lines[-1]
    cut = last.index("û".encode()) + 1
    cache.write_bytes(b"".join(lines[:-1]) + last[:cut])  # a full disk cut the last verdict inside a character
    judge = CountingJudge()
    res = judge_records(a, b, s, judge=judge)
    assert len(judge.calls) == 1 and res["wins_a"] == 4  # only the torn verdict is asked again
    assert cache.read_bytes() == whole  # the torn tail was cut off, the verdict appended on a fresh line
    again = CountingJudge()
    judge_records(a, b, s, judge=again)
    assert again.calls == []  # nothing paid twice


def test_judge_cache_with_an_old_merged_line_still_opens(tmp_path):
    from bench.judge.cache import VerdictCache

    cache = tmp_path / "verdicts.jsonl"
    good = json.dumps({"key": "k1", "verdict": "first"}) + "\n"
    cache.write_bytes(good.encode() + b'{"key": "k2", "verdict": "fi\xc3' + good.encode().replace(b"k1", b"k3"))
    opened = VerdictCache(cache)
    assert opened.get("k1") and opened.get("k3") is None and len(opened) == 1  # the merged line is skipped


def test_judge_disk_full_keeps_verdicts_and_says_one_line(tmp_path, monkeypatch):
    from bench.judge import JudgeSettings
    from bench.judge.pairwise import judge_records

    cache = tmp_path / "verdicts.jsonl"
    s = JudgeSettings(cache=str(cache), concurrency=1, n_boot=50)
    real_fsync, calls = os.fsync, []

    def fsync(fd):
        calls.append(fd)
        if len(calls) >= 4:
            raise _enospc()
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    a, b = _judge_runs()
    with pytest.raises(BenchError, match=rf"^no space left on {cache} \(3 verdicts kept; rerun to resume\)$"):
        judge_records(a, b, s, judge=CountingJudge())
    assert len(cache.read_text().splitlines()) == 3 and cache.read_text().endswith("\n")
    monkeypatch.setattr(os, "fsync", real_fsync)
    judge = CountingJudge()
    judge_records(a, b, s, judge=judge)
    assert len(judge.calls) == 8 - 3


# --- Ctrl-C ------------------------------------------------------------------------------------------
def test_ctrl_c_says_how_to_resume_and_exits_130(tmp_path, prompts, stories260k):
    out = tmp_path / "runs"
    many = tmp_path / "many.jsonl"
    # Enough work that the run is still going when the signal comes, even on an idle machine.
    many.write_text("".join(json.dumps({"id": f"q{i}", "prompt": f"Once upon a time {i}"}) + "\n" for i in range(200)))
    cmd = [sys.executable, "-m", "bench.cli", "run", "--model", stories260k, "--suite", str(many), "--decoder", "greedy",
           "--max-new-tokens", "48", "--batch-size", "1", "--out", str(out)]
    # A shell's background job inherits SIGINT ignored, and Python then installs no handler for it:
    # give the child the default disposition, as a terminal's Ctrl-C would find it.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while time.time() < deadline and sum(f.read_text().count("\n") for f in out.glob("*/generations.jsonl")) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "run the same command again to resume" in err and "Traceback" not in err
    kept = _lines(out)
    assert 2 <= len(kept) < 200
    assert CliRunner().invoke(main, cmd[3:]).exit_code == 0
    assert len({r["prompt_id"] for r in _lines(out)}) == 200 == len(_lines(out))


def test_keyboard_interrupt_in_process_exits_130(tmp_path, prompts, stories260k, monkeypatch):
    from bench.store import RunStore

    real, seen = RunStore.append, []

    def append(self, run, records):
        if seen:
            raise KeyboardInterrupt
        seen.append(1)
        real(self, run, records)

    monkeypatch.setattr(RunStore, "append", append)
    result = CliRunner().invoke(main, _run(stories260k, prompts, tmp_path / "runs"))
    assert result.exit_code == 130 and "run the same command again to resume" in result.stderr
    assert len(_lines(tmp_path / "runs")) == 1


# --- tiny temperatures -------------------------------------------------------------------------------
@pytest.mark.parametrize("t", ["1e-39", "1e-300", "1e-45"])
def test_sampling_at_a_tiny_temperature_is_greedy(stories260k, t):
    from bench.backends.hf import HFBackend
    from bench.specs import build_decoder, parse_decoder

    backend = HFBackend(stories260k, device="cpu")
    texts = [p["prompt"] for p in PROMPTS]
    greedy = backend.continue_batch(texts, build_decoder(parse_decoder("greedy")), max_new_tokens=12, seeds=[0] * 6)
    for spec in (f"temperature:t={t}", f"top-k:k=10,t={t}", f"top-p:p=0.9,t={t}"):
        tiny = backend.continue_batch(texts, build_decoder(parse_decoder(spec)), max_new_tokens=12, seeds=list(range(6)))
        assert [c.token_ids for c in tiny] == [c.token_ids for c in greedy], spec


# --- Markdown and CSV injection ----------------------------------------------------------------------
def _rows() -> list[dict]:
    row = {"suite": "a\nb.jsonl", "suite_version": "1", "model": "m|<svg onload=alert(1)>", "decoder": "greedy",
           "decoder_args": "", "n": 5, "n_prompts": 5, "rep-2": 0.5, "rep-2_lo": 0.4, "rep-2_hi": 0.6,
           "run_id": "r1", "tokens_sha": "abc"}
    evil = dict(row, model='=HYPERLINK("http://evil","x")', decoder="top-k", decoder_args="k=5", run_id="r2")
    return [row, evil, dict(row, model="+cmd", run_id="r3", decoder="top-p"), dict(row, model="@SUM(A1)", decoder="t", run_id="r4"),
            dict(row, model="-2+3", decoder="u", run_id="r5")]


def test_markdown_escapes_names_and_title():
    from bench.publish.markdown import render_markdown

    rows = _rows()
    md = render_markdown("Title | <b>x</b>\n# injected", {rows[0]["suite"]: rows}, ["rep-2"], ["notes <i>"])
    assert "<svg" not in md and "<b>" not in md and "<i>" not in md
    assert "\n# injected" not in md and md.splitlines()[0].startswith("# Title \\| &lt;b&gt;")
    table = [ln for ln in md.splitlines() if ln.startswith("| ")]
    header_cells = table[0].count(" | ")
    for ln in table:  # no extra column: every unescaped pipe is a cell border
        assert ln.replace("\\|", "").count(" | ") == header_cells, ln
    assert any(ln.startswith("## a b.jsonl") for ln in md.splitlines())


def test_csv_neutralises_formulas_and_reads_back(tmp_path):
    from bench.leaderboard import write_csv
    from bench.publish import read_table

    path = tmp_path / "lb.csv"
    write_csv(_rows(), path)
    with open(path, newline="") as f:
        cells = [r["model"] for r in csv.DictReader(f)]
    assert all(not c.startswith(("=", "+", "-", "@")) for c in cells), cells
    assert cells[1] == "'=HYPERLINK(\"http://evil\",\"x\")"
    _, rows = read_table(path)
    assert [r["model"] for r in rows] == [r["model"] for r in _rows()]  # read back as the runs name them
    assert rows[0]["rep-2"] == 0.5


# --- credentials -------------------------------------------------------------------------------------
def test_redact():
    from bench.http import redact

    text = (f"http://user:{KEY}@host:8000/v1?api_key={KEY}&x=1 Authorization: Bearer {KEY} "
            "https://h/v1?token=abc123&key=zzz")
    out = redact(text)
    assert KEY not in out and "abc123" not in out and "zzz" not in out and "user:" not in out
    assert "http://***@host:8000/v1?api_key=***&x=1" in out and "Bearer ***" in out
    assert redact("my key is hunter22 ok", ["hunter22"]) == "my key is *** ok"


class EchoingServer:
    """Answers 401 with a body that echoes the Authorization header and the URL, as some servers do."""

    def __init__(self):
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                body = json.dumps({"error": f"invalid key {self.headers.get('Authorization')} for {self.path}"})
                self.send_response(401)
                self.end_headers()
                self.wfile.write(body.encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()


@pytest.fixture()
def echoing():
    srv = EchoingServer()
    yield srv
    srv.server.shutdown()
    srv.server.server_close()


def test_judge_never_prints_or_stores_credentials(tmp_path, echoing, monkeypatch):
    monkeypatch.setenv("MY_JUDGE_KEY", KEY)
    a, b = _judge_runs(2)
    for name, recs in (("a.jsonl", a), ("b.jsonl", b)):
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in recs))
    url = f"http://admin:hunter2pass@127.0.0.1:{echoing.port}/v1?api_key={KEY}"
    result = CliRunner().invoke(main, ["judge", str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl"), "--judge-url", url,
                                       "--judge-model", "m", "--judge-key-env", "MY_JUDGE_KEY",
                                       "--cache", str(tmp_path / "c.jsonl")])
    line = _one_error_line(result)
    assert "HTTP 401" in line and KEY not in line and "hunter2pass" not in line
    from bench.judge import JudgeSettings

    recorded = JudgeSettings(cache="c", url=url).recorded()
    assert KEY not in json.dumps(recorded) and "hunter2pass" not in json.dumps(recorded)


def test_openai_backend_never_prints_or_stores_credentials(echoing, monkeypatch, stories260k):
    from bench.backends.openai import OpenAIBackend
    from bench.specs import build_decoder, parse_decoder

    monkeypatch.setenv("MY_KEY", KEY)
    backend = OpenAIBackend(f"http://u:hunter2pass@127.0.0.1:{echoing.port}", stories260k, api_key_env="MY_KEY",
                            concurrency=1)
    assert "hunter2pass" not in backend.device
    with pytest.raises(BenchError) as info:
        backend.continue_batch(["Once"], build_decoder(parse_decoder("greedy")), max_new_tokens=2, seeds=[0])
    assert "HTTP 401" in str(info.value) and KEY not in str(info.value) and "hunter2pass" not in str(info.value)
