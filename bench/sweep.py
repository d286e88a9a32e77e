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
    generating = 0.0
    with Progress(sum(todo.values()), mode=progress_mode(quiet)) as progress:
        # Runs of the same model are adjacent in the plan, and its hyperfit runs go last, so each
        # model (and each vLLM engine) is loaded once.
        for planned in engine_order(plan.runs):
            spec = planned.spec
            if not todo[spec.run_id]:
                continue
            label = f"{spec.model.label} {spec.decoder.label}"
            progress.describe(label)
            result = generate(
                planned, backends, store, batch_size=options.batch_size, on_records=progress.advance,
                on_calibrate=lambda active, label=label: progress.describe(f"{label}: calibrating" if active else label),
            )
            generated += result.generated
            tokens += result.tokens
            generating += result.seconds
    for planned in plan.runs:
        planned.release_prompts()  # generated: what follows reads the store
    add_requested_scores(plan, options, store)
    rows = build_rows(store)
    write_csv(rows, Path(options.out) / LEADERBOARD)
    if quiet:
        return rows
    shown, others = rows_of_plan(rows, plan)
    Console(width=max(Console().width, 150)).print(render(shown))
    if others:
        click.echo(f"{others} other leaderboard row{'s' if others != 1 else ''} in {options.out} not shown: "
                   f"bench leaderboard {options.out} lists them all")
    for row in shown:
        if row.get("flags"):
            click.echo(f"warning: {row['model']} {row['decoder']} ({row['suite']}): {row['flags']}; "
                       "its metrics describe degenerate text", err=True)
    seconds = time.perf_counter() - start
    rate = f", {tokens / generating:.0f} tokens/s" if generated and generating > 0 else ""
    click.echo(
        f"{len(plan.runs)} runs: {generated} records generated ({tokens} tokens in {generating:.1f} s of "
        f"generation{rate}; model loading and engine start {backends.load_seconds:.1f} s; {seconds:.1f} s in all), "
        f"{sum(r.expected_records for r in plan.runs) - generated} already stored; leaderboard: "
        f"{Path(options.out) / LEADERBOARD}"
    )
    return rows


def rows_of_plan(rows: list[dict[str, Any]], plan: Plan) -> tuple[list[dict[str, Any]], int]:
    """The leaderboard rows of the runs this command planned (and their suites' human rows), and how
    many rows of other runs the store holds besides. A row merged over seeds is the plan's when one of
    its runs is."""
    from bench.leaderboard import suite_label

    planned = {p.spec.run_id for p in plan.runs}
    suites = {suite_label(p.spec) for p in plan.runs}  # as the rows name them (a JSONL suite by its file)
    shown, others = [], 0
    for row in rows:
        if row.get("model") == "human":
            if row.get("suite") in suites:
                shown.append(row)
        elif planned & set(str(row.get("run_id", "")).split("+")):
            shown.append(row)
        else:
            others += 1
    return shown, others


def engine_order(runs: list[Any]) -> list[Any]:
    """The plan's runs with each model's runs on the hyperfit checkpoint after its base runs (stable)."""
    models = list(dict.fromkeys(p.spec.model.name for p in runs))
    return sorted(runs, key=lambda p: (models.index(p.spec.model.name), bool(p.decoder_info.runs_on_hyperfit)))


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
