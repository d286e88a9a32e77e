"""The sample viewer: every decoder's continuation of each prompt side by side, as one folder to open offline.

Numbers alone mislead (a degenerate decoder that emits blank lines can score well on word
diversity); reading the texts shows it. Per prompt the page shows the prompt, the human reference
and each run's continuation with its own metrics (rep-2, rep-4, distinct-2, ttr, length, finish
reason), whitespace kept visible, and (``--judged``) the pairwise judge's verdicts on the prompt with
its rationale in both orders. It can be searched and filtered by decoder, by a metric's range, by
finish reason and by verdict ("A beat B"), in the browser, with no network and no server.

A store can hold a million records, more than one HTML page can (Chromium gave up on 100k inline
records), so ``bench view --out DIR`` writes ``DIR/index.html`` (the filters and the script, no
records) and ``DIR/data-<digest>/``: a binary column file of what the filters need and the texts in
chunk files the page loads as it shows or searches them (:mod:`bench.publish.view_data`,
:mod:`bench.publish.view_js`). The records are read one at a time, not held as dicts. Every text
reaches the page as a text node, or escaped here (the verdicts' HTML).
"""

from __future__ import annotations

import html
import os
import re
import shutil
from pathlib import Path
from typing import Any, Callable

from bench.store import RunDir

SHOWN_METRICS = ("rep-2", "rep-4", "distinct-2", "ttr", "length-words", "length-tokens")
"""Per-continuation metrics shown and filterable, computed as the leaderboard's scorer computes them."""
PAGE = "index.html"
"""The page ``bench view --out DIR`` writes in DIR (beside its data folder)."""
PAGE_SIZE = 20
"""Prompts per page of the viewer."""
_DATA_DIR = re.compile(r"data-[0-9a-f]{16}")


def run_labels(runs: list[RunDir], records: dict[str, int]) -> dict[str, str]:
    """What each run's continuations are called on the page, by run id: the decoder with its
    arguments, the model when there are several, the run id when that is still ambiguous; a run
    with fewer ``records`` (by run id) than expected is marked ``[incomplete: 3/10 records]``."""
    from bench.leaderboard import suite_label

    specs = {run.run_id: run.spec() for run in runs}
    several = len({s.model.label for s in specs.values()}) > 1
    labels = {rid: f"{s.model.label} {s.decoder.label}" if several else s.decoder.label for rid, s in specs.items()}
    seen: dict[tuple[str, str], int] = {}
    for rid, spec in specs.items():
        key = (suite_label(spec), labels[rid])
        seen[key] = seen.get(key, 0) + 1
    labels = {rid: labels[rid] + (f" ({rid[:8]})" if seen[(suite_label(specs[rid]), labels[rid])] > 1 else "")
              for rid in specs}
    for run in runs:  # a run still in progress says so wherever its samples appear
        if records[run.run_id] < run.header()["expected_records"]:
            labels[run.run_id] += f" [incomplete: {incomplete_count(run, records[run.run_id])}]"
    return labels


def incomplete_count(run: RunDir, records: int) -> str:
    """``3/10 records`` for a run holding 3 of its 10 records."""
    return f"{records}/{run.header().get('expected_records', '?')} records"


def record_metrics(record: dict[str, Any]) -> dict[str, float]:
    """One continuation's own metrics, as the leaderboard's scorer gives them for it alone (NaN
    where undefined, e.g. rep-2 of one word); the page computes them from the same counts."""
    from bench.publish.view_data import continuation_counts, metrics_of

    return metrics_of(continuation_counts(record["continuation"], record.get("token_ids"))[0])


def check_judged_runs(judged: list[dict[str, Any]], runs: list[RunDir]) -> None:
    """One line when a ``bench judge --out`` result judged a run that is not among those viewed."""
    from bench.errors import BenchError

    ids = {run.run_id for run in runs}
    for result in judged:
        for side in ("run_a", "run_b"):
            if result[side] not in ids:
                raise BenchError(f"--judged: run {result[side]} was judged but is not among the runs viewed")


def read_verdicts(judged: list[dict[str, Any]], runs: list[RunDir], labels: dict[str, str]) -> list[dict[str, Any]]:
    """``bench judge --out`` results as pairs of the viewed runs: labels, and per (suite, prompt id) the
    outcomes of its samples."""
    from bench.leaderboard import suite_label

    check_judged_runs(judged, runs)
    by_id = {run.run_id: run for run in runs}
    pairs = []
    for result in judged:
        suite = suite_label(by_id[result["run_a"]].spec())
        prompts: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for o in result["outcomes"]:
            prompts.setdefault((suite, str(o["prompt_id"])), []).append(o)
        pairs.append({"a": labels[result["run_a"]], "b": labels[result["run_b"]], "judge": str(result.get("judge", "")),
                      "prompts": prompts})
    return pairs


def verdict_index(pairs: list[dict[str, Any]], keys: list[tuple[str, str]]) -> dict[str, list[int]]:
    """Per option of the judge filter (``PAIR:a|b|tie|invalid``), the prompts (by page order) holding it."""
    rank = {key: r for r, key in enumerate(keys)} if pairs else {}
    out: dict[str, list[int]] = {}
    for i, pair in enumerate(pairs):
        for key, outcomes in pair["prompts"].items():
            if key in rank:
                for outcome in dict.fromkeys(str(o.get("outcome")) for o in outcomes):
                    out.setdefault(f"{i}:{outcome}", []).append(rank[key])
    return {k: sorted(v) for k, v in out.items()}


def _verdicts(pairs: list[dict[str, Any]], key: tuple[str, str]) -> tuple[str, str]:
    """(the ``data-verdicts`` tokens, the HTML) of one prompt's judge verdicts, with the rationale."""
    tokens, lines = [], []
    for i, pair in enumerate(pairs):
        for o in sorted(pair["prompts"].get(key, []), key=lambda o: o.get("sample_index", 0)):
            outcome = str(o.get("outcome"))
            tokens.append(f"{i}:{outcome}")
            a, b = html.escape(pair["a"]), html.escape(pair["b"])
            said = {"a": f'<span class="verdict-a">{a}</span> beat {b}', "b": f'<span class="verdict-b">{b}</span> beat {a}',
                    "tie": f"{a} and {b}: tie", "invalid": f"{a} vs {b}: no valid verdict"}.get(outcome, html.escape(outcome))
            sample = f" (sample {o['sample_index']})" if o.get("sample_index") else ""
            answers = o.get("answers") if isinstance(o.get("answers"), dict) else None
            why = ("".join(f'<div class="label">{html.escape(shown)} shown first</div><div class="why">'
                           f'{html.escape(str(answers.get(k, "")))}</div>' for k, shown in (("a_first", pair["a"]), ("b_first", pair["b"])))
                   if answers else '<div class="note">no rationale recorded (identical texts are tied without '
                   'asking the judge; files of bench judge before it kept answers have none)</div>')
            lines.append(f'<details data-pair="{i}"><summary>judge {html.escape(pair["judge"])}{html.escape(sample)}: {said}'
                         f"</summary>{why}</details>")
    block = f'<div class="verdicts">{"".join(lines)}</div>' if lines else ""
    return " ".join(dict.fromkeys(tokens)), block



def _judge_filter(pairs: list[dict[str, Any]]) -> str:
    """The "A beat B" select: per judged pair, either side winning, or a tie."""
    if not pairs:
        return ""
    options = "".join(f'<option value="{i}:{o}">{html.escape(text)}</option>' for i, p in enumerate(pairs)
                      for o, text in (("a", f"{p['a']} beat {p['b']}"), ("b", f"{p['b']} beat {p['a']}"),
                                      ("tie", f"{p['a']} vs {p['b']}: tie")))
    return f'<fieldset><label>judge <select id="judged"><option value="">any</option>{options}</select></label></fieldset>'


def _filters(labels: list[str], finishes: list[str], pairs: list[dict[str, Any]] = ()) -> str:
    boxes = "".join(f'<label><input type="checkbox" class="decoder" value="{html.escape(lab)}" checked> '
                    f"{html.escape(lab)}</label>" for lab in labels)
    finish = "".join(f'<option value="{html.escape(f)}">{html.escape(f)}</option>' for f in finishes)
    metrics = "".join(f'<option value="{m.replace("-", "")}">{html.escape(m)}</option>' for m in SHOWN_METRICS)
    return ('<form class="filters">'
            f'<fieldset><label>search <input type="search" id="search" size="24"></label></fieldset>'
            f"<fieldset>decoders: {boxes}</fieldset>"
            f'<fieldset><label>finish <select id="finish"><option value="">any</option>{finish}</select></label></fieldset>'
            '<fieldset><label>degenerate <select id="degenerate"><option value="">shown</option>'
            '<option value="only">only</option><option value="hide">hidden</option></select></label></fieldset>'
            f"{_judge_filter(list(pairs))}"
            f'<fieldset><label>metric <select id="metric">{metrics}</select></label>'
            '<label>from <input type="number" id="min" step="any" size="6"></label>'
            '<label>to <input type="number" id="max" step="any" size="6"></label></fieldset>'
            '<div id="count" class="note">loading…</div>'
            '<div class="pager"><button type="button" id="prev">‹ previous</button> <span id="pages"></span> '
            '<button type="button" id="next">next ›</button> <label>go to page <input type="number" id="page" '
            'min="1" step="1"></label></div></form>')


def render_page(title: str, notes: str, labels: list[str], finishes: list[str], pairs: list[dict[str, Any]],
                data_dir: str) -> str:
    """``index.html``: the filters and the script, which loads the records from ``data_dir``."""
    from bench.publish.html import _check_offline
    from bench.publish.view_js import CSS, SCRIPT

    body = (f"<h1>{html.escape(title)}</h1><p class=\"note\">{html.escape(notes)}</p>"
            f"{_filters(labels, [f for f in finishes if f], pairs)}"
            '<div id="prompts"></div><noscript><p>This page needs JavaScript to show the samples.</p></noscript>'
            f'<script>{SCRIPT}</script><script src="{data_dir}/meta.js"></script>'
            f'<script src="{data_dir}/index.js"></script><script>VIEW.start();</script>')
    page = (f'<!DOCTYPE html>\n<html lang="en" data-busy="1"><head><meta charset="utf-8"><title>{html.escape(title)}'
            f"</title><style>{CSS}</style></head><body>{body}</body></html>\n")
    _check_offline(page)
    return page


def _notes(runs: list[RunDir], n_prompts: int, n: int, unfinished: int) -> str:
    notes = (f"{len(runs)} runs, {n_prompts} prompts, {n} continuations. Metrics are each continuation's own "
             "(rep-n and distinct-2 over its words, ttr over its token ids; n/a where undefined); "
             f"whitespace is shown as generated. {PAGE_SIZE} prompts a page.")
    if unfinished:
        notes += (f" {unfinished} of the runs are incomplete (marked [incomplete]); their samples are "
                  "those written so far, and 'bench run' with the same options finishes them.")
    return notes


def write_view(inputs: list[str], out: str | Path, *, title: str | None = None, judged: list[str] = (),
               note: Callable[[str], None] | None = None) -> Path:
    """Write ``out/index.html`` and its data folder for the runs under ``inputs`` (run folders or
    stores), with the verdicts of the ``bench judge --out`` files ``judged``; ``note`` hears of each
    incomplete run. Every record is read and checked before anything is written."""
    from bench.leaderboard import suite_label
    from bench.publish import find_runs
    from bench.publish.compare_many import read_judged
    from bench.publish.view_data import Collected, DataWriter, js_call, write_data

    results = read_judged(list(judged))
    runs = find_runs(inputs)
    check_judged_runs(results, runs)
    suites = [suite_label(run.spec()) for run in runs]
    col = Collected()
    col.read(runs, suites)
    records = {run.run_id: n for run, n in zip(runs, col.per_run)}
    labels = run_labels(runs, records)
    unfinished = [run for run in runs if records[run.run_id] < run.header()["expected_records"]]
    for run in unfinished:
        if note:
            note(f"run {run.run_id} is incomplete ({incomplete_count(run, records[run.run_id])}); the page shows "
                 "what it holds, marked [incomplete]")
    pairs = read_verdicts(results, runs, labels)
    decoders = sorted(set(labels.values()))
    ranked = sorted(range(len(runs)), key=lambda r: (labels[runs[r].run_id], runs[r].run_id))
    run_rank = [ranked.index(r) for r in range(len(runs))]
    run_decoder = [decoders.index(labels[run.run_id]) for run in runs]
    shape: dict[str, Any] = {}

    def data(writer: DataWriter) -> None:
        meta, keys = write_data(writer, col, run_rank, run_decoder,
                                (lambda key: _verdicts(pairs, key)) if pairs else None)
        shape.update(meta)
        writer.write("meta.js", js_call("meta", {**meta, "decoders": decoders, "verdicts": verdict_index(pairs, keys),
                                                 "pageSize": PAGE_SIZE}))

    def page(data_dir: str) -> str:
        notes = _notes(runs, shape["prompts"], shape["n"], len(unfinished))
        return render_page(title or "decbench samples", notes, decoders, shape["finishes"], pairs, data_dir)

    return _write_folder(Path(out), data, page)


def _write_folder(out: Path, data: Callable[[Any], None], page: Callable[[str], str]) -> Path:
    """The data into a temporary folder, renamed after its digest once whole, then the page over the
    old one: a reader sees the old page and data or the new ones, and a full disk leaves neither half."""
    from bench.publish.view_data import DataWriter
    from bench.runtime.provenance import write_text_atomic

    out.mkdir(parents=True, exist_ok=True)
    tmp, created = out / f".data-{os.getpid()}.tmp", None
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        writer = DataWriter(tmp)
        data(writer)
        name = f"data-{writer.digest.hexdigest()[:16]}"
        if (out / name).is_dir():
            shutil.rmtree(tmp)  # the same data, written before
        else:
            os.replace(tmp, out / name)
            created = out / name
        write_text_atomic(out / PAGE, page(name))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise
    for old in out.iterdir():  # data of earlier writes, now unreferenced
        if _DATA_DIR.fullmatch(old.name) and old.name != name and (old / "meta.js").is_file():
            shutil.rmtree(old, ignore_errors=True)
    return out / PAGE
