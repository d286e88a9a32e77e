"""The ``bench`` command line."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from bench.cli_help import SectionedCommand
from bench.errors import BenchError
from bench.runtime.devices import DTYPES, PRECISIONS
from bench.runtime.threads import threads_option
from bench.locations import default_data_dir


INTERRUPTED_EXIT = 130
"""Exit code after Ctrl-C (128 + SIGINT), as shells report it."""


class BenchGroup(click.Group):
    """Turns bad input and faults into ``error: <one line>`` and exit code 2, never a traceback.

    :class:`BenchError`, click's usage errors (a bad option value), a full disk and a file-system
    error on a named file are each one line; Ctrl-C says how to resume and exits 130.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BenchError as exc:
            self._fail(ctx, str(exc))
        except click.UsageError as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":
                raise  # 'bench judge' alone: that command's help page
            self._fail(ctx, exc.format_message())
        except KeyboardInterrupt:
            click.echo("\ninterrupted: everything written so far is kept; run the same command again to resume",
                       err=True)
            ctx.exit(INTERRUPTED_EXIT)
        except OSError as exc:
            from bench.outputs import disk_full_message, is_disk_full

            if is_disk_full(exc):
                self._fail(ctx, disk_full_message(exc))
            if exc.filename is None:
                raise
            self._fail(ctx, f"{exc.filename}: {exc.strerror or type(exc).__name__}")

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Errors in the group's own options (``bench --frob``) are one line too."""
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":
                raise  # plain 'bench': the help page
            self._fail(ctx, exc.format_message())
            raise AssertionError("unreachable")

    @staticmethod
    def _fail(ctx: click.Context, message: str) -> None:
        line = " ".join(str(message).split()) or "failed"
        click.echo(f"error: {line}", err=True)
        ctx.exit(BenchError.exit_code)


@click.group(cls=BenchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="decbench")
def main() -> None:
    """decbench: which decoder, on which checkpoint, gives the best open-ended text?

    \b
    bench run --suite wikitext --decoder all      generate, score, print the leaderboard
    bench decoders                                every decoder with its parameters
    bench suites                                  every prompt suite
    bench score FILE.jsonl                        score generations made elsewhere
    bench hyperfit --model M --data F --out DIR   make a hyperfitted checkpoint
    bench analyze --model M --hyperfit DIR ...    the "Beyond Temperature" report
    bench view STORE --out DIR                    read the samples side by side (HTML)
    bench leaderboard / check / compare           publish, gate regressions, compare runs
    bench judge RUN_A RUN_B                       pairwise LLM-judge preferences
    """
    _quiet_transformers()


def _quiet_transformers() -> None:
    """No weight-loading bars or advisory warnings: our own progress bar and errors are the output.

    Environment variables, read when transformers is imported, so listing commands stay fast.
    """
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def model_score_options(command):
    """The options of the model-based scores, shared by ``bench run`` and ``bench score``."""
    options = [
        click.option("--score", "scores", multiple=True, metavar="NAME",
                     help="Also compute a model-based metric: mauve, coherence, coherence-sim or perplexity; repeatable."),
        click.option("--featurizer", default="gpt2-large", show_default=True, help="MAUVE featurizer (HF id or local path)."),
        click.option("--featurizer-dtype", type=click.Choice(PRECISIONS), default="float32",
                     show_default=True, help="Precision of the MAUVE featurizer: float32 gives mauve-text's features; "
                     "bfloat16/float16 are faster on hardware with half-precision units, ~1% off."),
        click.option("--mauve-length", type=click.IntRange(min=1), default=None,
                     help="Cut continuation and reference to this many featurizer tokens, keeping pairs that reach it "
                     "(the literature: 128)."),
        click.option("--scorer-model", default="facebook/opt-2.7b", show_default=True,
                     help="LM for coherence (mean log p of the continuation given the prompt) and perplexity."),
        click.option("--sentence-model", default="all-MiniLM-L6-v2", show_default=True,
                     help="sentence-transformers model for coherence-sim (SimCTG's coherence)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def score_settings(kw: dict[str, Any]) -> dict[str, Any]:
    """The model-score settings from the options of :func:`model_score_options` (and ``--device``)."""
    keys = ("featurizer", "featurizer_dtype", "mauve_length", "scorer_model", "sentence_model", "device")
    return {k: kw[k] for k in keys}


class OneModel(click.ParamType):
    """A model name; ``$BENCH_MODEL`` is one model, spaces and all (click splits a repeated option's
    variable on whitespace, which made ``/data/my models/m`` three models)."""

    name = "text"
    envvar_list_splitter = "\n"

    def convert(self, value: Any, param: Any, ctx: Any) -> str:
        return str(value)


ONE_MODEL = OneModel()


def run_options(kw: dict[str, Any]) -> Any:
    """The :class:`bench.planning.RunOptions` of ``bench run``'s option values (shared with :func:`decbench.run`)."""
    from bench.planning import RunOptions
    from bench.specs import GenerationSpec

    from bench.planning import parse_seeds

    if isinstance(kw["models"], str):  # a single value from $BENCH_MODEL
        kw["models"] = (kw["models"],)
    seeds = parse_seeds((kw["seed"],) if isinstance(kw["seed"], int) else tuple(kw["seed"]), kw.get("seeds"))
    return RunOptions(
        models=tuple(kw["models"] or ()), decoders=kw["decoders"], suites=kw["suites"], out=kw["out"],
        generation=GenerationSpec(kw["max_new_tokens"], kw["samples_per_prompt"], seeds[0],
                                  log_probs=bool(kw.get("log_probs")) or kw.get("log_probs_from") == "server",
                                  log_probs_from=kw.get("log_probs_from") or "model"), seeds=seeds,
        num_prompts=kw["num_prompts"], revision=kw["revision"], hyperfit=kw["hyperfit"], amateur=kw["amateur"],
        device=kw["device"], dtype=kw["dtype"], batch_size=kw["batch_size"], compile=kw.get("compile", False),
        data_dir=kw["data_dir"], suite_path=kw["suite_path"],
        backend=kw["backend"], base_url=kw["base_url"], api_key_env=kw["api_key_env"],
        tensor_parallel_size=kw["tensor_parallel_size"], gpu_memory_utilization=kw["gpu_memory_utilization"],
        kv_cache_gib=kw.get("kv_cache_gib"), enforce_eager=bool(kw.get("enforce_eager")),
        executor=kw["executor"], ray_address=kw["ray_address"],
        scores=tuple(kw["scores"]), judge_against=kw["judge_against"],
        score_settings=score_settings(kw),
        judge_settings={"url": kw["judge_url"], "model": kw["judge_model"], "key_env": kw["judge_key_env"],
                        "local_model": kw["judge_local"], "device": kw["device"],
                        "chat_template": kw.get("judge_chat_template")},
        chat_template=kw.get("chat_template", False), system_prompt=kw.get("system_prompt"),
    )


RUN_SECTIONS = (
    ("What to run", ("config", "models", "decoders", "suites", "num_prompts", "hyperfit", "amateur", "revision",
                     "chat_template", "system_prompt", "data_dir", "suite_path")),
    ("Generation", ("max_new_tokens", "samples_per_prompt", "log_probs", "log_probs_from", "seed", "seeds", "batch_size", "compile", "device",
                    "dtype", "threads")),
    ("Where results go", ("out",)),
    ("Model-based scores", ("scores", "featurizer", "featurizer_dtype", "mauve_length", "scorer_model", "sentence_model")),
    ("LLM judge", ("judge_against", "judge_url", "judge_model", "judge_key_env", "judge_local", "judge_chat_template")),
    ("Backends and executors", ("backend", "base_url", "api_key_env", "tensor_parallel_size", "gpu_memory_utilization",
                                "kv_cache_gib", "enforce_eager", "executor", "ray_address")),
)
"""How ``bench run --help`` groups its options."""


@main.command(cls=SectionedCommand, sections=RUN_SECTIONS)
@click.option("--suite", "suites", multiple=True, default=("wikitext",), show_default=True,
              help="A registered suite (see 'bench suites') or a .jsonl file of prompts; repeatable.")
@click.option("--decoder", "decoders", multiple=True, default=("all",), show_default=True,
              help="NAME[:key=value,...] (see 'bench decoders'), repeatable; 'all' runs every decoder whose needs are met; "
                   "key=v1|v2 is a grid (one decoder per value).")
@click.option("--model", "models", multiple=True, envvar="BENCH_MODEL", metavar="NAME[:key=value,...]", type=ONE_MODEL,
              help="Hugging Face id or local directory; repeat to compare checkpoints. Model arguments: revision, dtype, "
              "device_map, attn_implementation, quantization (e.g. gpt2:attn_implementation=eager). Default: $BENCH_MODEL.")
@click.option("--revision", default=None, help="Hub revision (branch, tag or commit) of the model.")
@click.option("--chat-template", is_flag=True, default=False,
              help="Render each prompt as a user turn with the tokenizer's chat template (instruct models).")
@click.option("--system-prompt", default=None, metavar="TEXT", help="A system turn for --chat-template (implies it).")
@click.option("--hyperfit", default=None, metavar="PATH",
              help="A hyperfitted checkpoint (full model or PEFT adapter over --model) for greedy-hyperfit and entropy-matched.")
@click.option("--amateur", default=None, metavar="PATH",
              help="The amateur model of contrastive-decoding (same tokenizer as --model, safetensors).")
@click.option("--out", default="runs", show_default=True, metavar="DIR",
              help="Run store: one folder per run plus leaderboard.csv; a later run adds to it and resumes what is unfinished.")
@click.option("--num-prompts", type=int, default=None, help="A deterministic subset of N prompts per suite.")
@click.option("--max-new-tokens", type=int, default=256, show_default=True,
              help="Most tokens generated per continuation; a continuation also stops at EOS.")
@click.option("--samples-per-prompt", type=int, default=1, show_default=True,
              help="Continuations per prompt (sampling decoders get a different seed for each).")
@click.option("--log-probs", is_flag=True,
              help="Store per-token traces: each token's log-probability under the model, the step's entropy "
                   "and the token's rank (computed by the HF model; part of the run identity).")
@click.option("--log-probs-from", type=click.Choice(["model", "server"]), default=None,
              help="Where --log-probs traces come from: the local HF model (default; exact) or, on --backend openai, "
                   "the server's own logprobs (top 20: entropy a lower bound, rank null below the top 20); "
                   "'server' implies --log-probs.")
@click.option("--seed", type=int, multiple=True, default=(0,), show_default=True,
              help="Base seed; each record's seed derives from (seed, prompt id, sample index). Repeat for several seeds.")
@click.option("--seeds", default=None, metavar="S1,S2,...",
              help="Several base seeds, e.g. 0,1,2: one run per seed, one leaderboard row per decoder (mean over seeds).")
@click.option("--batch-size", type=int, default=16, show_default=True,
              help="Prompts generated together; records do not depend on it, only speed and memory do.")
@click.option("--compile", is_flag=True,
              help="HF backend: static KV cache and a torch.compile'd decode step (CUDA graphs on GPU); pays on "
              "GPUs for long runs, each new batch shape compiles once.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--dtype", type=click.Choice(DTYPES), default="auto", show_default=True,
              help="Weights and compute precision; auto: bfloat16 on CUDA, float32 on CPU.")
@click.option("--data-dir", envvar="BENCH_DATA_DIR", default=default_data_dir, metavar="DIR",
              help="Local data folder (wikitext/, cd-benchmark/). Default: $BENCH_DATA_DIR, else $BENCH_SHARED/data, "
                   "else the shared/data folder beside the checkout.")
@click.option("--suite-path", default=None, help="An explicit file for a registered suite (e.g. a copy of the cd-benchmark JSON).")
@model_score_options
@click.option("--judge-against", default=None, metavar="DECODER",
              help="Judge every other decoder's continuations against this decoder's (pairwise LLM judge, both orders).")
@click.option("--judge-url", default=None, help="OpenAI-compatible endpoint of the judge.")
@click.option("--judge-model", default=None, help="Model name sent to --judge-url.")
@click.option("--judge-key-env", default="OPENAI_API_KEY", show_default=True, help="Environment variable holding the judge's API key.")
@click.option("--judge-local", default=None, metavar="MODEL", help="Judge with a local Hugging Face model instead of an endpoint.")
@click.option("--judge-chat-template", default=None, metavar="plain|FILE",
              help="Render the judge's messages with this Jinja chat template ('plain': system, blank line, user) and send them to /completions; for served models without a chat template.")
@click.option("--backend", type=click.Choice(["hf", "vllm", "openai", "fake"]), default="hf", show_default=True,
              help="Generate with transformers (hf, runs every decoder), the offline vLLM engine, an OpenAI-compatible "
              "server, or fake (made-up words, no model: for trying the harness and for tests).")
@click.option("--base-url", default=None, help="The server of --backend openai, e.g. http://127.0.0.1:8000/v1.")
@click.option("--api-key-env", default="OPENAI_API_KEY", show_default=True,
              help="Environment variable holding the server's API key (the key is never stored).")
@click.option("--tensor-parallel-size", type=int, default=1, show_default=True, help="GPUs per model (--backend vllm).")
@click.option("--gpu-memory-utilization", type=float, default=None,
              help="Fraction of memory vLLM may take (--backend vllm): of GPU memory on CUDA (default 0.9), of RAM "
              "on CPU (default: a fixed KV cache, see --kv-cache-gib).")
@click.option("--kv-cache-gib", type=float, default=None,
              help="A fixed KV cache size in GiB for --backend vllm instead of a memory fraction (default on CPU: 1).")
@click.option("--enforce-eager", is_flag=True,
              help="--backend vllm without torch.compile: starts in seconds instead of minutes on CPU, generates slower.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Generate in this process, or as one Ray task per run.")
@click.option("--ray-address", default=None, help="An existing Ray cluster (HOST:PORT, ray://HOST:PORT or auto); default: a local one.")
@click.option("--config", default=None, metavar="SWEEP.toml",
              help="A sweep file: these options as TOML (decoder grids, lists of seeds and lengths); see sweeps/example.toml.")
@threads_option
def run(**kw: Any) -> None:
    """Generate continuations for every model x decoder x suite, score them and print the leaderboard.

    Runs are stored by identity under --out; the same command resumes an interrupted run and
    skips finished ones.
    """
    from bench.grid import load_sweep, plan_sweep
    from bench.runtime.threads import apply

    apply(kw.pop("threads"))
    config = kw.pop("config")
    variants = [kw]
    if config:
        ctx = click.get_current_context()
        given = {name for name in kw if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE}
        overridden: list[str] = []
        variants = load_sweep(config, kw, ctx.command.params, given, overridden)
        for key in overridden:
            click.echo(f"note: the command line's --{key.replace('_', '-')} overrides '{key}' in {config}", err=True)
    try:
        options = [run_options(v) for v in variants]
        the_plan = plan_sweep(options)
    except BenchError as exc:
        raise _from_sweep_file(exc, config, kw, variants) from None
    for name, reason in the_plan.skipped:
        click.echo(f"skipped {name}: {reason}", err=True)
    for warning in the_plan.warnings:
        click.echo(f"warning: {warning}", err=True)
    for notice in the_plan.notices:
        click.echo(f"notice: {notice}", err=True)
    from bench.sweep import execute

    execute(the_plan, options[0])


def _from_sweep_file(exc: BenchError, config: str | None, flags: dict[str, Any],
                     variants: list[dict[str, Any]]) -> BenchError:
    """A planning error about a value the sweep file set names the file (the message names the option)."""
    if not config or str(exc).startswith(config):
        return exc
    from_file = {k for v in variants for k, value in v.items() if value != flags.get(k)}
    message = str(exc)
    mentioned = [k for k in from_file if f"--{k.replace('_', '-')}" in message or f"'{k}'" in message]
    if mentioned or ("decoders" in from_file and message.startswith("decoder '")):
        return BenchError(f"{config}: {message}")
    return exc


@main.command()
def decoders() -> None:
    """List every decoder with its parameters, defaults and what it needs."""
    from rich.console import Console
    from rich.table import Table

    from bench.registry import load_plugins

    table = Table(title="decoders", show_lines=True)
    for col in ("name", "parameters (default)", "kind", "needs", "description"):
        table.add_column(col)
    for info in load_plugins().decoders.values():
        params = "\n".join(f"{p.name}={p.default} ({p.type.__name__}): {p.help}" for p in info.params) or "-"
        needs = ", ".join(f"--{r}" for r in info.requires) or "-"
        if info.waived_by:
            needs += " or " + ", ".join(f"{w}=" for w in info.waived_by)
        table.add_row(info.name, params, "sampling" if info.sampling else "deterministic", needs, info.description)
    Console(width=max(120, Console().width)).print(table)


@main.command()
def suites() -> None:
    """List the registered prompt suites (any .jsonl file of prompts works too)."""
    from rich.console import Console
    from rich.table import Table

    from bench.suite_loading import describe_suites

    table = Table(title="suites")
    for col in ("name", "version", "description"):
        table.add_column(col)
    for name, version, description in describe_suites():
        table.add_row(name, version, description)
    table.add_row("PATH.jsonl", "file hash", "one JSON object per line: prompt, optional id and reference")
    Console(width=max(120, Console().width)).print(table)


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--from", "tool", type=click.Choice(["lm-eval", "inspect"]), default=None,
              help="FILE was written by another tool: lm-eval (a --log_samples samples_*.jsonl) or inspect "
              "(an inspect_ai eval log). It becomes a run, scored like decbench's own.")
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="With --from: the run store to add the run to (then 'bench leaderboard/compare/view' take it).")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON instead of a table.")
@model_score_options
@click.option("--device", default="auto", show_default=True, help="Device of the scoring models: auto, cpu, cuda or cuda:N.")
@threads_option
def score(file: str, tool: str | None, out: str | None, as_json: bool, scores: tuple[str, ...], threads: int | None,
          **kw: Any) -> None:
    """Score a JSONL of generations made elsewhere (field 'continuation'; 'reference' adds a human row).

    --score adds model-based metrics to the generations row: mauve needs 'reference' on every
    line, coherence, coherence-sim and perplexity need 'prompt'.

    --from lm-eval|inspect reads another tool's file instead; with --out the run joins a store.
    """
    from bench.runtime.threads import apply
    from bench.scorers.files import score_file

    apply(threads)
    if tool:
        return _score_foreign(tool, file, out, as_json, scores, score_settings(kw))
    if out:
        raise BenchError("--out: only with --from (a decbench JSONL is scored in place; 'bench run' makes stores)")
    rows = score_file(file, scores, score_settings(kw))
    if rows[0].get("mauve-cut-at-context") and not as_json:
        click.echo(f"note: MAUVE: {rows[0]['mauve-cut-at-context']} texts ran past the featurizer's context and were "
                   "cut there; --mauve-length 128 is the literature's convention", err=True)
    if rows[0].get("flags") and not as_json:
        click.echo(f"warning: {file}: {rows[0]['flags']}; the word metrics describe degenerate text", err=True)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"scores of {file}")
    keys = [k for k in rows[0] if k != "system"]
    table.add_column("system", overflow="fold")
    for k in keys:
        table.add_column(k, justify="right", overflow="fold", min_width=len(k))
    for r in rows:
        table.add_row(r["system"], *[f"{r[k]:.4f}" if isinstance(r.get(k), float) else str(r.get(k, "")) for k in keys])
    Console(width=max(160, Console().width)).print(table)  # every column readable, even when piped


def _score_foreign(tool: str, file: str, out: str | None, as_json: bool, scores: tuple[str, ...],
                   settings: dict[str, Any]) -> None:
    """``bench score --from TOOL FILE``: the file becomes a run of the store ``out`` (else a temporary one)."""
    import tempfile
    from pathlib import Path

    from bench.foreign import import_run, read_foreign
    from bench.leaderboard import LEADERBOARD, build_rows, render, rows_for_runs, write_csv
    from bench.outputs import writable_dir
    from bench.run_scores import add_model_scores
    from bench.scorers.model_based import check_names
    from bench.store import RunStore

    check_names(list(scores))
    if out:
        writable_dir(out, "--out", inputs=(file,))
    foreign = read_foreign(tool, file)
    with tempfile.TemporaryDirectory(prefix="bench-score-") as scratch:
        run = import_run(foreign, out or scratch)
        if scores:
            add_model_scores(run, scores, settings)
        rows = rows_for_runs([run])
        if out:
            write_csv(build_rows(RunStore(out)), Path(out) / LEADERBOARD)
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    from rich.console import Console

    Console(width=max(160, Console().width)).print(render(rows))
    click.echo(f"{len(foreign.records)} generations from {tool} {foreign.tool_version} ({foreign.model}, task "
               f"{foreign.task})" + (f": run {run.run_id} in {out}" if out else ""), err=True)


PLUGIN_COMMANDS = (
    ("bench.hyperfit.cli", "hyperfit"),
    ("bench.publish.cli", "leaderboard"),
    ("bench.publish.cli", "check"),
    ("bench.publish.cli", "compare"),
    ("bench.publish.cli", "view"),
    ("bench.analysis.cli", "analyze"),
    ("bench.judge.cli", "judge"),
    ("bench.parity", "parity"),
    ("bench.reproduce.cli", "reproduce"),
)
"""Commands that live in their own modules, attached to the group by name."""


def _attach_plugin_commands() -> None:
    import importlib

    for module, name in PLUGIN_COMMANDS:
        try:
            command = getattr(importlib.import_module(module), name)
        except ModuleNotFoundError as exc:
            if exc.name and module.startswith(exc.name):
                continue  # that part of the package is not there
            raise
        main.add_command(command)


_attach_plugin_commands()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
