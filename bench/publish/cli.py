"""``bench leaderboard``, ``bench check`` and ``bench compare`` (attached by bench/cli.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from bench.errors import BenchError


def _console() -> Any:
    from rich.console import Console

    return Console(width=max(Console().width, 140))


def build_leaderboard(inputs: list[str], out: str, *, skip_incomplete: bool = False,
                      title: str | None = None, view: bool = False, per_seed: bool = False,
                      length_matched: bool = False) -> dict[str, Path]:
    """Merge the runs under ``inputs`` and write ``out``.csv, .md and .html, and the quality-diversity
    front of each suite as ``out``-front.png; returns the paths.

    With ``view``, also the sample viewer of the same runs in ``out``-samples/, linked from the page.
    """
    from bench.leaderboard import columns, rows_for_runs, write_csv
    from bench.publish import complete_runs, distinct_rows, find_runs, metric_columns
    from bench.publish.front import front_markdown, png_paths, write_front_png
    from bench.publish.html import render_html
    from bench.publish.markdown import render_markdown
    from bench.runtime.provenance import write_text_atomic

    from bench.outputs import writable_file

    name = Path(out).name
    if not name or name in (".", "..") or out.endswith(("/", os.sep)):
        raise BenchError(f"--out {out}: give a path and name, e.g. leaderboards/my-results")
    paths = {ext: writable_file(f"{out}.{ext}", "--out", tuple(inputs)) for ext in ("csv", "md", "html")}
    runs = complete_runs(find_runs(inputs), skip_incomplete=skip_incomplete)
    rows = distinct_rows(rows_for_runs(runs, per_seed=per_seed, length_matched=length_matched))
    metrics = metric_columns(columns(rows))
    by_suite: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_suite.setdefault(row["suite"], []).append(row)
    title = title or name
    models = sorted({r["model"] for r in rows if r["model"] != "human"})
    notes = [f"{len(runs)} runs of {', '.join(models)}; made with 'bench leaderboard'. "
             f"Run ids are in {name}.csv."]
    samples = None
    if view:
        from bench.publish.view import PAGE, write_view

        paths["samples"] = write_view([str(run.path) for run in runs], f"{out}-samples", title=f"{title}: samples")
        samples = f"{name}-samples/{PAGE}"
    write_csv(rows, paths["csv"])
    pngs = {suite: png for suite, png in png_paths(out, list(by_suite)).items()
            if write_front_png(by_suite[suite], suite, png)}
    from bench.publish.epochs import write_epochs_png

    epochs_png = Path(f"{out}-epochs.png")
    extra = ""
    if write_epochs_png(rows, epochs_png, f"{title}: metrics against hyperfitting epochs"):
        paths["epochs"] = epochs_png
        extra = f"\n## Against hyperfitting epochs\n\n![metrics against hyperfitting epochs]({epochs_png.name})\n"
    write_text_atomic(paths["md"], render_markdown(title, by_suite, metrics, notes) + front_markdown(by_suite, pngs)
                      + extra)
    write_text_atomic(paths["html"], render_html(title, by_suite, metrics, notes, samples=samples))
    return dict(paths, **{f"front {suite}": png for suite, png in pngs.items()})


@click.command()
@click.argument("inputs", nargs=-1, required=True, metavar="RUN_OR_STORE...")
@click.option("--out", required=True, metavar="DIR/NAME", help="Writes NAME.csv, NAME.md and NAME.html in DIR.")
@click.option("--skip-incomplete", is_flag=True, help="Leave out runs still in progress instead of failing.")
@click.option("--title", default=None, help="Page and document title (default: NAME).")
@click.option("--view", is_flag=True, help="Also write the sample viewer (bench view) in DIR/NAME-samples/, linked from the page.")
@click.option("--per-seed", is_flag=True, help="One row per seed instead of one row per decoder (mean over seeds).")
@click.option("--length-matched", is_flag=True,
              help="Add a human row of references cut to the generated length (mean words of each prompt's continuations).")
def leaderboard(inputs: tuple[str, ...], out: str, skip_incomplete: bool, title: str | None, view: bool,
                per_seed: bool, length_matched: bool) -> None:
    """Merge runs (run folders or stores) into one leaderboard per suite: CSV, Markdown and HTML.

    Rows that differ in a setting (prompts, max new tokens, seed, ...) show it as a column; runs of
    one decoder at several seeds give one row with the mean over seeds (--per-seed: a row each).
    """
    paths = build_leaderboard(list(inputs), out, skip_incomplete=skip_incomplete, title=title, view=view,
                              per_seed=per_seed, length_matched=length_matched)
    click.echo("wrote " + ", ".join(str(p) for p in paths.values()))


@click.command()
@click.argument("target", metavar="RUN_OR_CSV_OR_STORE")
@click.option("--baseline", required=True, type=click.Path(), help="The committed leaderboard CSV to hold to.")
@click.option("--tolerance", "tolerances", multiple=True, metavar="METRIC=VALUE",
              help="Allowed move in the wrong direction (default: the baseline's interval half-width, else 0).")
@click.option("--exact", is_flag=True, help="Every decoder must reproduce the baseline's tokens (tokens_sha); seeded "
              "sampled runs reproduce them on the baseline's platform.")
@click.option("--deterministic-only", is_flag=True, help="With --exact: compare the tokens of deterministic decoders "
              "only (a platform whose float arithmetic differs from the baseline's).")
@click.option("--verbose", "-v", is_flag=True, help="Show every metric, not only those that moved.")
@click.option("--skip-incomplete", is_flag=True,
              help="Leave out runs still in progress (their baseline rows then count as missing) instead of failing.")
def check(target: str, baseline: str, tolerances: tuple[str, ...], exact: bool, deterministic_only: bool,
          verbose: bool, skip_incomplete: bool) -> None:
    """Exit 1 when a metric regressed beyond its tolerance against BASELINE (direction aware)."""
    from bench.publish.check import check as run_check
    from bench.publish.check import parse_tolerances, render_report

    if deterministic_only and not exact:
        raise BenchError("--deterministic-only narrows --exact; give --exact with it")
    report = run_check(baseline, target, parse_tolerances(tolerances), exact=exact, skip_incomplete=skip_incomplete,
                       sampled_exact=not deterministic_only)
    _console().print(render_report(report, baseline, verbose))
    if report.failures:
        for failure in report.failures:
            click.echo(f"FAIL {failure}", err=True)
        click.echo(f"check failed: {len(report.failures)} problem(s) against {baseline}", err=True)
        click.get_current_context().exit(1)
    exact_note = (f"; {report.exact_checked} row(s) token-identical ({report.exact_sampled} of them sampled)"
                  if exact else "")
    click.echo(f"check passed against {baseline}{exact_note}")


@click.command()
@click.argument("runs", nargs=-1, metavar="A B [C ...]")
@click.option("--store", "stores", multiple=True, metavar="DIR",
              help="Run store(s) holding the runs named as CSV#run_id (the CSV's folder is searched too).")
@click.option("--n-boot", type=int, default=20_000, show_default=True,
              help="Paired bootstrap replicates (Monte Carlo error of p: 0.002 near p=0.05 at the default; printed).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap resampling.")
@click.option("--mauve-boot", type=int, default=None, metavar="N",
              help="Replicates of MAUVE's paired bootstrap, each drawing prompts and a k-means seed (default: "
                   "100, or --n-boot when smaller; 0: the stored scores' difference, untested). Needs the featurizer "
                   "(its cached features are reused).")
@click.option("--metric", "metrics", multiple=True, metavar="NAME",
              help="With three or more runs: the metrics shown (default: diversity, rep-2, rep-4, distinct-2 and "
                   "any model-based ones; 'all' for every one). The CSV always holds all.")
@click.option("--judged", "judged", multiple=True, metavar="FILE",
              help="With three or more runs: 'bench judge --out' files of pairs of them; adds a Bradley-Terry "
                   "ranking from the judge's verdicts, with intervals over prompts.")
@click.option("--csv", "csv_path", default=None, metavar="PATH", help="Also write the table as CSV.")
@click.option("--markdown", "md_path", default=None, metavar="PATH", help="Also write the table as Markdown.")
def compare(runs: tuple[str, ...], stores: tuple[str, ...], n_boot: int, seed: int, mauve_boot: int | None,
            metrics: tuple[str, ...], judged: tuple[str, ...], csv_path: str | None, md_path: str | None) -> None:
    """Per metric, B - A over the shared prompts with a paired bootstrap interval and p-value.

    A and B are run folders, or rows of a leaderboard CSV written CSV#run_id. With three or more
    runs, every pair, with p-values Holm-corrected within each metric, and a ranking by Pareto rank.
    """
    from bench.outputs import writable_file
    from bench.publish import compare as cmp

    from bench.stats import MAX_N_BOOT

    if len(runs) < 2:
        raise BenchError(f"bench compare needs two runs or more, got {len(runs)}")
    if not 1 <= n_boot <= MAX_N_BOOT or seed < 0:
        raise BenchError(f"--n-boot must be in 1..{MAX_N_BOOT:,} and --seed >= 0, got {str(n_boot)[:40]} and "
                         f"{str(seed)[:40]}")
    if mauve_boot is not None and not 0 <= mauve_boot <= MAX_N_BOOT:
        raise BenchError(f"--mauve-boot must be in 0..{MAX_N_BOOT:,}, got {str(mauve_boot)[:40]}")
    for option, path in (("--csv", csv_path), ("--markdown", md_path)):
        if path:
            writable_file(path, option, (*runs, *stores))
    if judged and len(runs) < 3:
        raise BenchError("--judged ranks three runs or more; for two, 'bench judge' gives the win rate")
    resolved = [cmp.resolve(r, stores) for r in runs]
    if len(resolved) > 2:
        return _compare_many(resolved, n_boot, seed, metrics, csv_path, md_path, judged, mauve_boot)
    a, b = resolved
    diffs, n_shared = cmp.compare_runs(a, b, n_boot=n_boot, seed=seed, mauve_boot=mauve_boot)
    heading = cmp.title(a, b, n_shared, n_boot)
    _console().print(cmp.render(diffs, heading))
    if csv_path:
        cmp.write_csv(diffs, csv_path)
    if md_path:
        cmp.write_markdown(diffs, md_path, heading)


HEADLINE_METRICS = ("diversity", "rep-2", "rep-4", "distinct-2")


BT_BOOT = 1000
"""Bootstrap replicates of the Bradley-Terry intervals (at most; fewer when --n-boot is smaller)."""


def _compare_many(runs: list[Any], n_boot: int, seed: int, metrics: tuple[str, ...], csv_path: str | None,
                  md_path: str | None, judged_files: tuple[str, ...] = (), mauve_boot: int | None = None) -> None:
    """Every pair of three or more runs (see :mod:`bench.publish.compare_many`)."""
    from bench.publish import compare_many as many
    from bench.runtime.provenance import write_text_atomic

    judged = many.read_judged(list(judged_files))  # read (and refused) before the bootstrap runs

    labels = [f"{r.spec().model.label} {r.spec().decoder.label}" for r in runs]
    if len(set(labels)) < len(labels):  # the same decoder twice (two seeds, two stores): tell them apart
        labels = [f"{label} ({r.run_id})" for label, r in zip(labels, runs)]
    boot = min(n_boot, BT_BOOT)
    ranked_by_judge = many.judge_ranking(runs, labels, judged, boot, seed) if judged else []
    pairs = many.compare_all(runs, labels, n_boot, seed, mauve_boot)
    known = list(dict.fromkeys(p.diff.metric for p in pairs))
    unknown = [m for m in metrics if m != "all" and m not in known]
    if unknown:
        raise BenchError(f"--metric {unknown[0]}: not a metric of these runs (they have: {', '.join(known)})")
    shown = known if "all" in metrics else list(metrics) or \
        [m for m in known if m in HEADLINE_METRICS or m in ("mauve", "coherence", "perplexity", "judge-win-rate")]
    heading = (f"{len(runs)} runs, {len(runs) * (len(runs) - 1) // 2} pairs, B - A over each pair's shared prompts, "
               f"{n_boot} paired bootstrap replicates; p_holm: Holm-corrected within each metric")
    _console().print(many.render(pairs, shown, heading))
    quality, ranked = many.ranking(runs, labels)
    if quality is None:
        click.echo("Pareto ranking: no quality metric on every run")
    else:
        click.echo(f"Pareto rank on the front of {quality} against diversity (1 = on the front):")
        for label, rank, diversity, value in ranked:
            click.echo(f"  {rank}  {label}: diversity {diversity:.4g}, {quality} {value:.4g}")
    if judged:
        click.echo(f"Bradley-Terry ranking from {len(judged)} judged pairs (log-strength, 95% interval over "
                   f"{boot} resamples of prompts; ties half a win, {many.PRIOR_TIES:g} virtual tie per pair):")
        for label, theta, lo, hi in ranked_by_judge:
            click.echo(f"  {theta:+.3f} [{lo:+.3f}, {hi:+.3f}]  {label}")
    rows = many.pair_rows(pairs)
    for path in (csv_path, md_path):
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    if csv_path:
        import csv
        import io

        buffer = io.StringIO(newline="")
        writer = csv.DictWriter(buffer, fieldnames=many.PAIR_COLUMNS)
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
        write_text_atomic(csv_path, buffer.getvalue())
    if md_path:
        from bench.publish.markdown import md_text

        lines = [f"# {md_text(heading)}", "", "| " + " | ".join(many.PAIR_COLUMNS) + " |",
                 "|" + "|".join(["---"] * len(many.PAIR_COLUMNS)) + "|"]
        lines += ["| " + " | ".join(md_text(format(v, ".4g") if isinstance(v, float) else "" if v is None else str(v))
                                  for v in row.values()) + " |" for row in rows if row["metric"] in shown]
        write_text_atomic(md_path, "\n".join(lines) + "\n")


@click.command()
@click.argument("inputs", nargs=-1, required=True, metavar="STORE_OR_RUN...")
@click.option("--out", required=True, type=click.Path(file_okay=False), metavar="DIR",
              help="Folder for the page: DIR/index.html and its data folder beside it, to open offline.")
@click.option("--title", default=None, help="Page title (default: decbench samples).")
@click.option("--judged", "judged", multiple=True, metavar="FILE",
              help="'bench judge --out' files of pairs of the runs: each prompt shows the verdicts and the judge's "
                   "rationale, and the page filters by them ('A beat B').")
def view(inputs: tuple[str, ...], out: str, title: str | None, judged: tuple[str, ...]) -> None:
    """Write a page to read the samples: per prompt, the prompt, the reference and every decoder's continuation.

    Each continuation shows its own metrics; the page searches and filters by decoder, metric range
    and finish reason, offline. Runs still in progress are shown with what they hold, marked
    [incomplete] on the page and named here.
    """
    from bench.outputs import writable_dir
    from bench.publish.view import write_view

    writable_dir(out, "--out", (*inputs, *judged))
    path = write_view(list(inputs), out, title=title, judged=list(judged),
                      note=lambda text: click.echo(f"note: {text}", err=True))
    click.echo(f"wrote {path}")
