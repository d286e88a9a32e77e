"""Run a planned sweep: generate what is missing (locally or on Ray), score, write the leaderboard."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from bench.errors import BenchError
from bench.generation import Backends, generate, pending
from bench.planning import Plan, RunOptions
from bench.store import GENERATIONS, RunStore, read_records


def execute(plan: Plan, options: RunOptions, *, quiet: bool = False) -> list[dict[str, Any]]:
    """Generate, score and write the leaderboard; print progress, the table and a summary unless
    ``quiet``. A full disk is one line saying how many records are safe."""
    from bench.outputs import disk_full_message, is_disk_full

    try:
        return _execute(plan, options, quiet=quiet)
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        store = RunStore(options.out)
        kept = sum(len(read_records(store.root / p.spec.run_id / GENERATIONS)) for p in plan.runs)
        raise BenchError(disk_full_message(exc, options.out, f"{kept} records kept")) from None


def _execute(plan: Plan, options: RunOptions, *, quiet: bool) -> list[dict[str, Any]]:
    from rich.console import Console

    from bench.leaderboard import LEADERBOARD, build_rows, render, write_csv
    from bench.progress import Progress, progress_mode

    if options.executor == "ray":
        from bench.executors.ray import generate_on_ray

        generate_on_ray(plan, options)  # the pass below then finds the runs complete and only scores
    store = RunStore(options.out)
    todo = {planned.spec.run_id: pending(planned, store) for planned in plan.runs}
    backends = Backends(options)
    start = time.perf_counter()
    generated = tokens = 0
    with Progress(sum(todo.values()), mode=progress_mode(quiet)) as progress:
        # Runs of the same model are adjacent in the plan, so each model is loaded once.
        for planned in plan.runs:
            spec = planned.spec
            if not todo[spec.run_id]:
                continue
            label = f"{spec.model.label} {spec.decoder.label}"
            progress.describe(label)
            result = generate(
                planned, backends, store, batch_size=options.batch_size, on_records=progress.advance,
                on_calibrate=lambda: progress.describe(f"{label}: calibrating"),
            )
            generated += result.generated
            tokens += result.tokens
    add_requested_scores(plan, options, store)
    rows = build_rows(store)
    write_csv(rows, Path(options.out) / LEADERBOARD)
    if quiet:
        return rows
    Console(width=max(Console().width, 150)).print(render(rows))
    for row in rows:
        if row.get("flags"):
            click.echo(f"warning: {row['model']} {row['decoder']} ({row['suite']}): {row['flags']}; "
                       "its metrics describe degenerate text", err=True)
    seconds = time.perf_counter() - start
    rate = f", {tokens / seconds:.0f} tokens/s" if generated else ""
    click.echo(
        f"{len(plan.runs)} runs: {generated} records generated ({tokens} tokens in {seconds:.1f} s{rate}), "
        f"{sum(r.expected_records for r in plan.runs) - generated} already stored; leaderboard: "
        f"{Path(options.out) / LEADERBOARD}"
    )
    return rows


def add_requested_scores(plan: Plan, options: RunOptions, store: RunStore) -> None:
    """``--score`` metrics for every planned run, and ``--judge-against`` win rates."""
    from bench.run_scores import add_judge_result, add_model_scores
    from bench.store import RunDir

    runs = {p.spec.run_id: RunDir(store.root / p.spec.run_id) for p in plan.runs}
    if options.scores:
        from bench.scorers.mauve import cut_note

        for run in runs.values():
            add_model_scores(run, options.scores, options.score_settings)
            note = cut_note(run.scores().get("model_based", {}).get("mauve", {}).get("settings", {}))
            if note:
                click.echo(f"note: {run.run_id}: {note}", err=True)
    if not options.judge_against:
        return
    target = options.judge_against.partition(":")[0].replace("_", "-")
    settings = dict({k: v for k, v in options.judge_settings.items() if v is not None},
                    cache=str(store.root / "judge_verdicts.jsonl"))
    for planned in plan.runs:
        spec = planned.spec
        if spec.decoder.name == target:
            continue
        opponent = next((p for p in plan.runs if p.spec.decoder.name == target
                         and p.spec.model.name == spec.model.name and p.spec.suite == spec.suite
                         and p.spec.generation == spec.generation), None)  # a sweep's seeds and lengths pair up
        if opponent is not None:
            add_judge_result(runs[spec.run_id], runs[opponent.spec.run_id], opponent.spec.decoder.label, settings)
