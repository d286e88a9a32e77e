"""``bench reproduce beyond-temperature``: one option per :class:`~bench.reproduce.settings.Settings` field.

Options are made from the dataclass itself (name, type, and the field's docstring as help), so
the command line cannot drift from the settings; an option not given keeps the preset's value.
BenchError is left to the ``bench`` group, which prints it and exits 2.
"""

from __future__ import annotations

import ast
import inspect
from dataclasses import MISSING, fields
from typing import Any

import click

from bench.reproduce.settings import PRESETS, Settings
from bench.runtime.threads import threads_option


def _field_docs() -> dict[str, str]:
    """Each field's docstring (the string literal right after it in the class body)."""
    tree = ast.parse(inspect.getsource(Settings))
    body, docs = tree.body[0].body, {}
    for node, after in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant):
            docs[node.target.id] = " ".join(str(after.value.value).split())
    return docs


def _parse_list(kind: type) -> Any:
    def parse(ctx: Any, param: Any, value: str | None) -> Any:
        if value is None:
            return None
        items = [v.strip() for v in value.split(",") if v.strip()]
        try:
            return tuple(kind(v) for v in items)
        except ValueError:
            raise click.BadParameter(f"'{value}' is not a comma-separated list of {kind.__name__}") from None
    return parse


def _setting_options(command: Any) -> Any:
    docs = _field_docs()
    for f in reversed(fields(Settings)):
        name = "--" + f.name.replace("_", "-")
        default = None if f.default is MISSING else f.default
        help_text = docs.get(f.name, "") + " Default: the preset's."
        if f.name in ("model", "data"):
            command = click.option(name, default=None, help=help_text)(command)
        elif isinstance(default, bool):
            command = click.option(f"{name}/--no-{name[2:]}", default=None, help=help_text)(command)
        elif isinstance(default, tuple):
            kind = float if f.name == "alphas" else str
            command = click.option(name, default=None, callback=_parse_list(kind), metavar="A,B,...",
                                   help=help_text)(command)
        elif f.name == "stop_at_loss":
            command = click.option(name, type=float, default=None, help=help_text)(command)
        elif default is None:  # an optional text setting (the judge's)
            command = click.option(name, type=str, default=None, help=docs.get(f.name, ""))(command)
        else:
            command = click.option(name, type=type(default), default=None, help=help_text)(command)
    return command


@click.group("reproduce")
def reproduce() -> None:
    """Reproduce a paper's experiments on any model, as one resumable study."""


@reproduce.command("beyond-temperature")
@click.option("--out", required=True, type=click.Path(file_okay=False), metavar="DIR",
              help="Study folder: report.md, report.html, tables/, settings.json, and the stores it resumes from.")
@click.option("--preset", type=click.Choice(PRESETS), default="cpu", show_default=True,
              help="ci: stories260K in minutes; cpu: SmolLM2-135M under 90 min on 2 cores; paper: Carlsson et al.'s recipe (a GPU).")
@click.option("--data-dir", envvar="BENCH_DATA_DIR", default=None, metavar="DIR",
              help="Local data folder of the registered suites. Default: $BENCH_DATA_DIR, else the shared data folder.")
@threads_option
@_setting_options
def beyond_temperature(out: str, preset: str, data_dir: str | None, threads: int | None, **options: Any) -> None:
    """Hyperfit, decode, score, mechanism, intervention and statistics of "Beyond Temperature"
    (Li et al. 2026) on --model; a killed study continues where it stopped.

    \b
    Tables (DIR/tables/): methods, control, rank_reordering, reweighting, geometry, intervention, claims,
    and judge with --judge-url/--judge-model or --judge-local.
    """
    import os

    from bench.locations import default_data_dir
    from bench.outputs import writable_dir
    from bench.reproduce.beyond_temperature import run_study
    from bench.reproduce.settings import preset as preset_settings, with_options
    from bench.reproduce.study import Study
    from bench.runtime.threads import apply

    settings = with_options(preset_settings(preset), options)
    folder = writable_dir(out, "--out")
    from bench.hub import check_models

    check_models([settings.model] + ([settings.judge_local] if settings.judge_local else []))
    if settings.judge_local:  # a missing judge stops the study before anything is trained
        from bench import runtime

        runtime.load_config(settings.judge_local)
        runtime.check_weights(settings.judge_local, role="judge model")
    if settings.judge_chat_template:
        from bench.judge.client import load_chat_template

        load_chat_template(settings.judge_chat_template)
    apply(threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    study = Study(folder, settings, preset, log=lambda msg: click.echo(msg, err=True),
                  data_dir=data_dir or default_data_dir())
    run_study(study)
    click.echo(f"report: {folder / 'report.md'}")
