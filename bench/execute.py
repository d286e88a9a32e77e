"""Execute a plan: load each model once, generate what is missing, score, write the leaderboard."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from bench.executors import run_planned
from bench.runner import Plan, PlannedRun, RunOptions, missing_work
from bench.store import GENERATIONS, RunStore, read_records


class Backends:
    """Loaded backends, keyed by (model, hyperfit checkpoint or None); one model's worth at a time."""

    def __init__(self, options: RunOptions):
        self.options = options
        self.loaded: dict[tuple[str, str | None], Any] = {}

    def get(self, model: str, hyperfit: str | None = None) -> Any:
        key = (model, hyperfit)
        if key not in self.loaded:
            if any(k[0] != model for k in self.loaded):
                self.loaded.clear()  # moving to another model: free the previous one first
            self.loaded[key] = self._load(model, hyperfit)
        return self.loaded[key]

    def hf(self, model: str, hyperfit: str | None = None) -> Any:
        """The HF backend of a model (for calibration), whatever ``--backend`` generates with."""
        if self.options.backend == "hf":
            return self.get(model, hyperfit)
        key = (model, hyperfit, "hf")
        if key not in self.loaded:
            self.loaded[key] = self._load(model, hyperfit, "hf")
        return self.loaded[key]

    def _load(self, name: str, hyperfit: str | None, kind: str | None = None) -> Any:
        from bench.backends.hf import HFBackend
        from bench.runtime import load_tokenizer, resolve_device, resolve_dtype

        opts = self.options
        if (kind or opts.backend) != "hf":
            from bench.backends import load_backend

            return load_backend(opts, name, hyperfit)
        if hyperfit is None:
            return HFBackend(name, revision=opts.revision, device=opts.device, dtype=opts.dtype)
        from bench.hyperfit.checkpoint import load_hyperfit

        device = resolve_device(opts.device)
        dtype = resolve_dtype(opts.dtype, device)
        model, _ = load_hyperfit(hyperfit, name, dtype=dtype, device=device)
        return HFBackend(name, revision=opts.revision, device=device, dtype=dtype, model=model.eval(),
                         tokenizer=load_tokenizer(name, opts.revision))


def _pending(planned: PlannedRun, store: RunStore) -> int:
    done = {(r["prompt_id"], r["sample_index"]) for r in read_records(store.root / planned.spec.run_id / GENERATIONS)}
    return len(missing_work(planned, done))


def execute(plan: Plan, options: RunOptions) -> list[dict[str, Any]]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from bench.leaderboard import LEADERBOARD, build_rows, render, write_csv

    if options.executor == "ray":
        from bench.executors.ray import generate_on_ray

        generate_on_ray(plan, options)  # the pass below then finds the runs complete and only scores
    store = RunStore(options.out)
    pending = {planned.spec.run_id: _pending(planned, store) for planned in plan.runs}
    backends = Backends(options)
    start = time.perf_counter()
    generated = tokens = 0
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("generating", total=sum(pending.values()))
        # Runs of the same model are adjacent in the plan, so each model is loaded once.
        for planned in plan.runs:
            spec = planned.spec
            if not pending[spec.run_id]:
                continue
            progress.update(task, description=f"{spec.model.label} {spec.decoder.label}")
            result = run_planned(
                planned, backends, store, batch_size=options.batch_size, on_records=lambda n: progress.advance(task, n),
                on_calibrate=lambda: progress.update(task, description=f"{spec.model.label} {spec.decoder.label}: calibrating"),
            )
            generated += result.generated
            tokens += result.tokens
    add_requested_scores(plan, options, store)
    rows = build_rows(store)
    write_csv(rows, Path(options.out) / LEADERBOARD)
    Console(width=max(Console().width, 150)).print(render(rows))
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
    from bench.scoring import add_judge_result, add_model_scores
    from bench.store import RunDir

    runs = {p.spec.run_id: RunDir(store.root / p.spec.run_id) for p in plan.runs}
    if options.scores:
        for run in runs.values():
            add_model_scores(run, options.scores, options.score_settings)
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
                         and p.spec.model.name == spec.model.name and p.spec.suite == spec.suite), None)
        if opponent is not None:
            add_judge_result(runs[spec.run_id], runs[opponent.spec.run_id], opponent.spec.decoder.label, settings)
