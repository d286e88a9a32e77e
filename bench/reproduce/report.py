"""``DIR/report.md`` and a self-contained ``DIR/report.html``, from whatever stages have finished.

The report is a list of blocks (headings, paragraphs, tables, figures) rendered twice: Markdown
with PNGs in ``DIR/plots/``, and HTML with the same PNGs inlined, so the HTML file is the whole
report offline. It is rewritten after every stage.
"""

from __future__ import annotations

import base64
import csv
import html
import math
from pathlib import Path
from typing import Any

from bench.reproduce.study import Study

GEOMETRY_TEXT = (
    "Participation ratio PR = (sum_i l_i)^2 / sum_i l_i^2 of the eigenvalues l_i of the covariance of the "
    "hidden states, per layer (layer 0: the embeddings; layer l: the output of block l-1 counted from 0; the last "
    "layer is the final block's output after the final norm, the state the unembedding reads), over every real "
    "token of each prompt followed by the Late-Stage LoRA checkpoint's greedy continuation, except each row's first "
    "token (the attention sink), for both models on the same tokens. Delta Dim = PR(hyperfitted) - PR(base), the "
    "mean over hyperfit seeds; its 95% interval resamples prompts (exact per resample, from per-prompt moments) and is centred on the "
    "estimate, because a resample's repeated prompts lower every participation ratio.")


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _num(text: Any, digits: int = 3) -> str:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return str(text or "")
    return "" if math.isnan(value) else f"{value:.{digits}f}"


def _ci(row: dict[str, str], key: str, low: str | None = None, high: str | None = None) -> str:
    lo, hi = row.get(low or f"{key}_low", ""), row.get(high or f"{key}_high", "")
    return f"{_num(row.get(key))} [{_num(lo)}, {_num(hi)}]" if lo not in ("", None) else _num(row.get(key))


def _blocks(study: Study) -> list[tuple[Any, ...]]:
    s, tables, res = study.settings, study.path("tables"), study.results
    b: list[tuple[Any, ...]] = [("h1", "Beyond Temperature, reproduced"), ("p", _what_was_run(study))]
    if (tables / "methods.csv").exists():
        rows = _read(tables / "methods.csv")
        b += [("h2", "1. Hyperfit"), ("table", ["method", "seed", "trainable", "total", "epochs", "first loss",
                                              "final loss", "wall s"],
                                     [[r["method"], r["seed"], r["trainable_parameters"], r["total_parameters"], r["epochs"],
                                       _num(r["first_epoch_loss"]), _num(r["final_loss"], 4), _num(r["wall_s"], 0)] for r in rows])]
        b += _figure(study, "loss.png", "Mean training loss per epoch of every hyperfit.")
    if (tables / "control.csv").exists():
        rows = _read(tables / "control.csv")
        extra = [m for m in s.scores if m in rows[0]]
        b += [("h2", "2-3. Decode and score"),
              ("p", f"{s.num_prompts} prompts of {s.suite}, {s.max_new_tokens} new tokens; sampled decoders at "
                    f"{s.sampling_seeds} seeds; every value is the mean over runs with a 95% bootstrap interval over "
                    "prompts (the same prompt draws for every run of a row)."),
              ("table", ["condition", "hyperfit", "runs", "diversity", "rep-2", "rep-3", "distinct-2", "ttr", *extra, "T*"],
               [[r["condition"], r["hyperfit"], r["runs"], _ci(r, "diversity"), _ci(r, "rep-2"), _ci(r, "rep-3"),
                 _ci(r, "distinct-2"), _ci(r, "ttr"), *[_num(r.get(m)) for m in extra], _num(r.get("temperature"))]
                for r in rows])]
    b += _judge_blocks(study)
    if (tables / "geometry.csv").exists():
        ranks = _read(tables / "rank_reordering.csv")
        b += [("h2", "4. Mechanism"), ("h3", "Rank reordering"),
              ("p", f"Along each hyperfitted model's greedy continuations, the base model's rank of the chosen token; "
                    f"an override has base rank > 1, a deep-tail override base rank > {s.tail_rank}."),
              ("table", ["hyperfit seed", "steps", "override", "deep tail (of overrides)", "deep tail (of steps)", "median rank"],
               [[r["hyperfit_seed"], r["steps"], _ci(r, "override"), _ci(r, "deep_tail"), _ci(r, "deep_tail_all"),
                 _num(r["median_rank"], 1)] for r in ranks])]
        b += _figure(study, "ranks.png", "Base-model rank of the hyperfitted greedy tokens (log-spaced bins).")
        sweep = _read(tables / "reweighting.csv") if (tables / "reweighting.csv").exists() else []
        if sweep:
            b += [("h3", "Static reweighting"),
                  ("p", "The base model with alpha times one fixed logit offset (toward the tokens whose rank rises most "
                        "after hyperfitting), decoded greedily; alpha 0 is base greedy."),
                  ("table", ["alpha", "diversity", "rep-2", "rep-3", "ttr"],
                   [[r["alpha"], _ci(r, "diversity"), _ci(r, "rep-2"), _ci(r, "rep-3"), _ci(r, "ttr")] for r in sweep])]
        geo = _read(tables / "geometry.csv")
        b += [("h3", "Layer-wise geometry"), ("p", GEOMETRY_TEXT),
              ("table", ["layer", "", "PR base", "PR hyperfit", "Delta Dim [95% CI]"],
               [[r["layer"], r["block"] + (" (final)" if r["final"] == "True" else ""), _num(r["pr_base"], 2),
                 _num(r["pr_hyperfit"], 2), _ci(r, "delta_dim", "ci_low", "ci_high")] for r in geo])]
        b += _figure(study, "geometry.png", "Delta Dim per layer with its 95% interval; the final layer is marked.")
        b += _figure(study, "lens.png", "Logit lens: share of positions whose layer's top-1 is the final top-1.")
    if (tables / "intervention.csv").exists():
        rows = _read(tables / "intervention.csv")
        b += [("h2", "5. Intervention"),
              ("p", "Each variant decoded greedily; its final layer's Delta Dim against the base model over the same "
                    "tokens as the geometry above."),
              ("table", ["variant", "seeds", "PR final", "Delta Dim final", "diversity", "rep-2", "rep-3"],
               [[r["variant"], r["seeds"], _num(r["pr_final"], 2), _ci(r, "delta_dim"), _ci(r, "diversity"),
                 _ci(r, "rep-2"), _ci(r, "rep-3")] for r in rows])]
    if (tables / "claims.csv").exists():
        rows = _read(tables / "claims.csv")
        b += [("h2", "6. Claims"),
              ("p", f"Each claim is a paired bootstrap over the {s.num_prompts} prompts ({s.n_boot_p:,} replicates) that "
                    "also resamples hyperfit seeds (shared by the two sides when both are indexed by them) and sampling "
                    "seeds; statistic = B - A; p inverts the percentile interval; p_holm is Holm's step-down adjustment "
                    f"over all {len(rows)} claims; a claim holds when p_holm < {s.alpha} in the claimed direction."),
              ("table", ["claim", "B - A [95% CI]", "p", "p (Holm)", "verdict"],
               [[r["claim"], _ci(r, "statistic", "ci_low", "ci_high"), _num(r["p"], 4), _num(r["p_holm"], 4), r["verdict"]]
                for r in rows])]
    return b


def _judge_blocks(study: Study) -> list[tuple[Any, ...]]:
    if "judge" not in study.results:
        return []
    judge = study.results["judge"].get("configured")
    if not judge or not study.path("tables", "judge.csv").exists():
        return [("h3", "Pairwise judge"), ("p", "No judge was given (--judge-url with --judge-model, or --judge-local), "
                                                "so no pairwise preferences were asked for.")]
    who = judge.get("judge_model") and f"{judge['judge_model']} at {judge['judge_url']}" or judge.get("judge_local")
    rows = _read(study.path("tables", "judge.csv"))
    invalid, pairs = sum(int(r["invalid"]) for r in rows), sum(int(r["pairs"]) for r in rows)
    warn = ([("p", f"{invalid} of {pairs} pairs are invalid (an answer in either order named no verdict): "
                   "this judge cannot follow the rubric, and its win rates say little.")] if invalid > pairs / 4 else [])
    return [("h3", "Pairwise judge"),
            ("p", f"Judge: {who}, built-in rubric. Greedy on each Late-Stage LoRA hyperfit against every other run of "
                  "the table above (a control calibrated on a checkpoint only against that checkpoint's greedy), each "
                  "pair in both orders: a win needs both orders to agree, anything else is a tie. Win rate of the "
                  "hyperfit: wins + ties/2 over valid pairs, with a 95% interval resampling prompts and hyperfit seeds."),
            ("table", ["opponent", "runs", "pairs", "hyperfit wins", "opponent wins", "ties", "invalid",
                       "win rate [95% CI]", "sign test p"],
             [[r["opponent"], r["runs"], r["pairs"], r["wins_hyperfit"], r["wins_opponent"], r["ties"], r["invalid"],
               _ci(r, "win_rate", "ci_low", "ci_high"), _num(r["sign_test_p"], 4)] for r in rows]), *warn]


def _what_was_run(study: Study) -> str:
    s = study.settings
    timing = ", ".join(f"{k} {v:.0f} s" for k, v in study.timings.items())
    return (f"Model {s.model}; hyperfit data {s.data} ({s.num_sequences} sequences x {s.seq_len} tokens, at most "
            f"{s.epochs} epochs, stop below loss {s.stop_at_loss}); Late-Stage LoRA (last {s.late_layers} blocks) at "
            f"{s.hyperfit_seeds} seeds, full fine-tuning, LoRA and the intervention LoRAs at {s.other_seeds}; "
            f"{s.num_prompts} prompts of {s.suite} x {s.max_new_tokens} new tokens; sampled decoders at {s.sampling_seeds} "
            f"seeds; intervals from {s.n_boot:,} bootstrap replicates, claims from {s.n_boot_p:,}. Preset "
            f"'{study.preset}'; every setting and version is in settings.json. Stage time: {timing or 'none yet'}.")


def _figure(study: Study, name: str, caption: str) -> list[tuple[Any, ...]]:
    path = study.path("plots", name)
    return [("img", path, caption)] if path.exists() else []


def render_markdown(blocks: list[tuple[Any, ...]], root: Path) -> str:
    out = []
    for kind, *rest in blocks:
        if kind in ("h1", "h2", "h3"):
            out.append("#" * int(kind[1]) + " " + rest[0])
        elif kind == "p":
            out.append(rest[0])
        elif kind == "table":
            header, rows = rest
            out.append("\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                                 + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]))
        elif kind == "img":
            out.append(f"![{rest[1]}]({rest[0].relative_to(root).as_posix()})\n\n*{rest[1]}*")
    return "\n\n".join(out) + "\n"


def render_html(blocks: list[tuple[Any, ...]]) -> str:
    e = html.escape
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>Beyond Temperature, reproduced</title><style>"
             "body{font-family:sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;line-height:1.45}"
             "table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}td,th{border:1px solid #ccc;padding:.25rem .5rem}"
             "th{background:#f3f3f3}img{max-width:100%}figcaption{color:#555;font-size:.85rem}</style></head><body>"]
    for kind, *rest in blocks:
        if kind in ("h1", "h2", "h3"):
            parts.append(f"<{kind}>{e(rest[0])}</{kind}>")
        elif kind == "p":
            parts.append(f"<p>{e(rest[0])}</p>")
        elif kind == "table":
            header, rows = rest
            parts.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>"
                         + "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>" for r in rows)
                         + "</table>")
        elif kind == "img":
            data = base64.b64encode(Path(rest[0]).read_bytes()).decode()
            parts.append(f"<figure><img alt='{e(rest[1])}' src='data:image/png;base64,{data}'>"
                         f"<figcaption>{e(rest[1])}</figcaption></figure>")
    return "".join(parts) + "</body></html>\n"


def write_report(study: Study) -> None:
    from bench.reproduce.plots import draw_plots

    draw_plots(study)
    blocks = _blocks(study)
    for name, text in (("report.md", render_markdown(blocks, study.out)), ("report.html", render_html(blocks))):
        path = study.path(name)
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
