"""The sample viewer: every decoder's continuation of each prompt side by side, as one HTML page.

Numbers alone mislead (a degenerate decoder that emits blank lines can score well on word
diversity); reading the texts shows it. Per prompt the page shows the prompt, the human reference
and each run's continuation with its own metrics (rep-2, rep-4, distinct-2, ttr, length, finish
reason), whitespace kept visible, and (``--judged``) the pairwise judge's verdicts on the prompt with
its rationale in both orders. It can be searched and filtered by decoder, by a metric's range, by
finish reason and by verdict ("A beat B"), in the browser, with no network: the page is self-contained like the
leaderboard page (:mod:`bench.publish.html`) and every text in it is escaped.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

from bench.store import RunDir

SHOWN_METRICS = ("rep-2", "rep-4", "distinct-2", "ttr", "length-words", "length-tokens")
"""Per-continuation metrics shown and filterable, computed by the leaderboard's own scorer."""
PAGE = "index.html"
"""The file ``bench view --out DIR`` writes in DIR."""

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em auto;max-width:1600px;color:#222;padding:0 1em}
h1{font-size:1.5em}.note{color:#555}
form.filters{position:sticky;top:0;background:#fafafa;border:1px solid #ddd;padding:.6em;z-index:1;font-size:13px}
form.filters fieldset{display:inline-block;border:none;margin:0 1em 0 0;padding:0;vertical-align:top}
form.filters label{margin-right:.8em;white-space:nowrap}
section.prompt{border-top:2px solid #ccc;margin-top:1.5em;padding-top:.5em}
section.prompt h2{font-size:1em;color:#555;margin:.2em 0}
.text{white-space:pre-wrap;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;background:#f6f6f6;
  padding:.4em;border-radius:3px;margin:.2em 0;overflow-wrap:anywhere}
.text.empty::after{content:"(empty)";color:#999}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:.8em;margin-top:.6em}
.cont{border:1px solid #ddd;border-radius:4px;padding:.4em}.cont h3{font-size:13px;margin:0 0 .2em}
.metrics{font-size:11px;color:#444}.metrics span{margin-right:.7em;white-space:nowrap}
.label{font-size:12px;color:#666;margin-top:.3em}
form.filters input[type=number]{width:6em}
.hidden{display:none}
.verdicts{font-size:12px;margin:.4em 0}.verdicts details{margin:.2em 0}.verdicts .why{white-space:pre-wrap;
  font-family:ui-monospace,Menlo,Consolas,monospace;font-size:11px;background:#f3f6fb;padding:.3em;margin:.2em 0}
.verdict-a,.verdict-b{font-weight:600}
mark{background:#ffe08a;padding:0}.tok{border-radius:2px}.degenerate{color:#b00;font-weight:600}
"""

# Filtering: a continuation is shown when its decoder is ticked, its finish reason selected, the
# chosen metric within [min, max], and the search text (case-insensitive) found in it, its prompt
# or its reference, and (with --judged) the prompt holding the chosen verdict ("A beat B": a
# section's ``data-verdicts`` lists ``PAIR:a|b|tie|invalid`` over its samples); a prompt is shown
# while one of its continuations is. ``#decoder=LABEL`` in
# the address ticks that decoder alone (the leaderboard page links there).
_JS = """
(function(){
  var form = document.querySelector('form.filters');
  var conts = Array.prototype.slice.call(document.querySelectorAll('.cont'));
  var sections = Array.prototype.slice.call(document.querySelectorAll('section.prompt'));
  function num(id){var v = document.getElementById(id).value; return v === '' ? null : parseFloat(v);}
  function apply(){
    var on = {}; form.querySelectorAll('input.decoder').forEach(function(b){on[b.value] = b.checked;});
    var finish = document.getElementById('finish').value, metric = document.getElementById('metric').value;
    var degenerate = document.getElementById('degenerate').value;
    var lo = num('min'), hi = num('max'), q = document.getElementById('search').value.toLowerCase();
    var judged = document.getElementById('judged'), verdict = judged ? judged.value : '';
    var shown = 0;
    conts.forEach(function(c){
      var ok = on[c.dataset.decoder] && (finish === '' || c.dataset.finish === finish);
      if (ok && verdict) ok = (' ' + c.closest('section.prompt').dataset.verdicts + ' ').indexOf(' ' + verdict + ' ') >= 0;
      if (ok && degenerate) ok = (degenerate === 'only') === (c.dataset.degenerate === '1');
      if (ok && (lo !== null || hi !== null)){
        var v = parseFloat(c.dataset[metric]);
        ok = !isNaN(v) && (lo === null || v >= lo) && (hi === null || v <= hi);
      }
      if (ok && q){
        var s = c.closest('section.prompt');
        ok = (c.querySelector('.text').textContent + '\\n' + s.querySelector('.context').textContent).toLowerCase().indexOf(q) >= 0;
      }
      c.classList.toggle('hidden', !ok); if (ok) shown++;
    });
    sections.forEach(function(s){s.classList.toggle('hidden', !s.querySelector('.cont:not(.hidden)'));});
    document.getElementById('count').textContent = shown + ' of ' + conts.length + ' continuations shown';
  }
  form.addEventListener('input', apply); form.addEventListener('change', apply);
  form.addEventListener('submit', function(e){e.preventDefault();});
  var hash = decodeURIComponent(location.hash.slice(1));
  if (hash.indexOf('decoder=') === 0){
    var want = hash.slice(8), boxes = form.querySelectorAll('input.decoder');
    if (Array.prototype.some.call(boxes, function(b){return b.value === want;}))
      boxes.forEach(function(b){b.checked = b.value === want;});
  }
  apply();
})();
"""


def run_labels(runs: list[RunDir]) -> dict[str, str]:
    """What each run's continuations are called on the page, by run id: the decoder with its
    arguments, the model when there are several, the run id when that is still ambiguous."""
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
        if not run.is_complete():
            labels[run.run_id] += f" [incomplete: {incomplete_count(run)}]"
    return labels


def incomplete_count(run: RunDir) -> str:
    """``3/10 records`` for a run that is not complete."""
    expected = run.header().get("expected_records", "?")
    return f"{sum(1 for _ in run.records())}/{expected} records"


def record_metrics(record: dict[str, Any]) -> dict[str, float]:
    """One continuation's own metrics, by the leaderboard's scorer (NaN where undefined, e.g. rep-2 of one word)."""
    from bench.scorers.repetition import score_texts

    scores = score_texts([record["continuation"]], [record.get("token_ids") or []])
    return {m: scores[m] for m in SHOWN_METRICS}


def collect(runs: list[RunDir]) -> tuple[list[str], list[dict[str, Any]]]:
    """Run labels in a stable order, and per (suite, prompt) its text, reference and every run's samples."""
    from bench.leaderboard import suite_label

    labels = run_labels(runs)
    prompts: dict[tuple[str, str], dict[str, Any]] = {}
    for run in sorted(runs, key=lambda r: (labels[r.run_id], r.run_id)):
        suite = suite_label(run.spec())
        for rec in sorted(run.records(), key=lambda r: (r["prompt_id"], r["sample_index"])):
            entry = prompts.setdefault((suite, rec["prompt_id"]), {
                "id": rec["prompt_id"], "suite": suite, "prompt": rec["prompt"],
                "reference": rec.get("reference"), "samples": []})
            entry["samples"].append((labels[run.run_id], rec, record_metrics(rec)))
    return sorted(set(labels.values())), [prompts[k] for k in sorted(prompts)]


def read_verdicts(judged: list[dict[str, Any]], runs: list[RunDir]) -> list[dict[str, Any]]:
    """``bench judge --out`` results as pairs of the viewed runs: labels, and per (suite, prompt id) the
    outcomes of its samples; one line when a judged run is not among them."""
    from bench.errors import BenchError
    from bench.leaderboard import suite_label

    labels, by_id = run_labels(runs), {run.run_id: run for run in runs}
    pairs = []
    for result in judged:
        for side in ("run_a", "run_b"):
            if result[side] not in by_id:
                raise BenchError(f"--judged: run {result[side]} was judged but is not among the runs viewed")
        suite = suite_label(by_id[result["run_a"]].spec())
        prompts: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for o in result["outcomes"]:
            prompts.setdefault((suite, str(o["prompt_id"])), []).append(o)
        pairs.append({"a": labels[result["run_a"]], "b": labels[result["run_b"]], "judge": str(result.get("judge", "")),
                      "prompts": prompts})
    return pairs


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


def _fmt(name: str, value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:.0f}" if name.startswith("length") else f"{value:.3f}"


def _continuation(label: str, rec: dict[str, Any], metrics: dict[str, float]) -> str:
    from bench.leaderboard import degeneracy

    data = " ".join(f'data-{m.replace("-", "")}="{"" if math.isnan(v) else repr(float(v))}"' for m, v in metrics.items())
    finish = str(rec.get("finish_reason") or "")
    sample = f" sample {rec['sample_index']}" if rec.get("sample_index") else ""
    spans = " ".join(f"<span>{html.escape(m)} {_fmt(m, v)}</span>" for m, v in metrics.items())
    text = str(rec["continuation"])
    trace = rec.get("trace") if isinstance(rec.get("trace"), dict) else None
    body = shaded_tokens(trace) if trace and trace.get("pieces") else marked_repeats(text)
    if trace and trace.get("log_probs"):
        mean = sum(trace["log_probs"]) / len(trace["log_probs"])
        spans += f" <span>mean log-prob {mean:.3f}</span>"
    degenerate = bool(degeneracy([rec], None)["flags"])  # blank, whitespace runs, under 3 words: as the rows' flag
    if degenerate:
        spans += ' <span class="degenerate">degenerate</span>'
    return (f'<div class="cont" data-decoder="{html.escape(label)}" data-finish="{html.escape(finish)}" '
            f'data-degenerate="{int(degenerate)}" {data}>'
            f"<h3>{html.escape(label)}{html.escape(sample)}</h3>"
            f'<div class="metrics">{spans} <span>finish {html.escape(finish or "n/a")}</span></div>'
            f'<div class="text{" empty" if not text else ""}">{body}</div></div>')


REPEAT_N = 4
"""Word n-grams that occur twice or more in one continuation are marked (rep-4's n-grams)."""


def marked_repeats(text: str) -> str:
    """The text, escaped, with every word inside a repeated word 4-gram marked (``<mark>``)."""
    import re

    parts = re.split(r"(\s+)", text)  # words at even indices, the whitespace between them kept
    words = parts[0::2]
    seen: dict[tuple[str, ...], int] = {}
    for i in range(len(words) - REPEAT_N + 1):
        gram = tuple(words[i:i + REPEAT_N])
        seen[gram] = seen.get(gram, 0) + 1
    marked = [False] * len(words)
    for i in range(len(words) - REPEAT_N + 1):
        if seen[tuple(words[i:i + REPEAT_N])] > 1:
            marked[i:i + REPEAT_N] = [True] * REPEAT_N
    out = []
    for j, part in enumerate(parts):
        escaped = html.escape(part)
        out.append(f"<mark>{escaped}</mark>" if j % 2 == 0 and part and marked[j // 2] else escaped)
    return "".join(out)


def shaded_tokens(trace: dict[str, Any]) -> str:
    """Each token on a background as strong as it was unlikely under the model (probability 1: none),
    its probability, entropy and rank in its tooltip (``bench run --log-probs``)."""
    out = []
    bound = "≥" if trace.get("entropy") == "lower-bound" else "="  # a server's top-k logprobs bound it below
    below = f"below the top {trace.get('top_logprobs', '')}".rstrip()
    for piece, lp, h, rank in zip(trace["pieces"], trace["log_probs"], trace["entropies"], trace["ranks"]):
        p = math.exp(lp)
        tip = f"p={p:.3f} entropy{bound}{h:.2f} rank {rank if rank is not None else below}"
        out.append(f'<span class="tok" style="background:rgba(230,120,0,{1 - p:.2f})" title="{tip}">'
                   f"{html.escape(piece)}</span>")
    return "".join(out)


def _prompt_section(entry: dict[str, Any], pairs: list[dict[str, Any]]) -> str:
    ref = entry["reference"]
    reference = (f'<div class="label">reference</div><div class="text ref">{html.escape(ref)}</div>'
                 if ref is not None else "")
    conts = "".join(_continuation(label, rec, m) for label, rec, m in entry["samples"])
    tokens, verdicts = _verdicts(pairs, (entry["suite"], entry["id"]))
    return (f'<section class="prompt" data-prompt-id="{html.escape(entry["id"])}" data-verdicts="{html.escape(tokens)}">'
            f"<h2>{html.escape(entry['suite'])} / {html.escape(entry['id'])}</h2>"
            f'<div class="context"><div class="label">prompt</div><div class="text prompt-text">'
            f'{html.escape(entry["prompt"])}</div>{reference}</div>{verdicts}<div class="grid">{conts}</div></section>')


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
            '<div id="count" class="note"></div></form>')


def render_view(runs: list[RunDir], title: str = "decbench samples", judged: list[dict[str, Any]] = ()) -> str:
    """The whole page for ``runs``, with the verdicts of ``judged`` (``bench judge --out`` results) on their prompts."""
    from bench.publish.html import _check_offline

    pairs = read_verdicts(list(judged), runs)
    labels, prompts = collect(runs)
    finishes = sorted({str(rec.get("finish_reason") or "") for e in prompts for _, rec, _ in e["samples"]})
    n = sum(len(e["samples"]) for e in prompts)
    notes = (f"{len(runs)} runs, {len(prompts)} prompts, {n} continuations. Metrics are each continuation's own "
             "(rep-n and distinct-2 over its words, ttr over its token ids; n/a where undefined); "
             "whitespace is shown as generated.")
    unfinished = [r for r in runs if not r.is_complete()]
    if unfinished:
        notes += (f" {len(unfinished)} of the runs are incomplete (marked [incomplete]); their samples are "
                  "those written so far, and 'bench run' with the same options finishes them.")
    body = [f"<h1>{html.escape(title)}</h1>", f'<p class="note">{html.escape(notes)}</p>',
            _filters(labels, [f for f in finishes if f], pairs)]
    body += [_prompt_section(e, pairs) for e in prompts]
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_CSS}</style></head><body>{''.join(body)}<script>{_JS}</script></body></html>\n")
    _check_offline(page)
    return page


def write_view(inputs: list[str], out: str | Path, *, title: str | None = None, judged: list[str] = ()) -> Path:
    """Write ``out/index.html`` for the runs under ``inputs`` (run folders or stores), with the
    verdicts of the ``bench judge --out`` files ``judged``."""
    from bench.publish import find_runs
    from bench.publish.compare_many import read_judged
    from bench.runtime.provenance import write_text_atomic

    results = read_judged(list(judged))
    runs = find_runs(inputs)
    page = render_view(runs, title or "decbench samples", results)  # refused before anything is written
    path = Path(out) / PAGE
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, page)  # a full disk leaves no part page
    return path
