"""``bench analyze``: the command line of :func:`bench.analysis.analyze.analyze`.

``bench/cli.py`` attaches it to the ``bench`` group; BenchError is left to the group, which
prints it and exits 2.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import click

from bench.analysis.reweight import DEFAULT_ALPHAS
from bench.runtime.devices import DTYPES
from bench.runtime.threads import threads_option
from bench.locations import default_data_dir

_ALPHAS = ",".join(map(str, DEFAULT_ALPHAS))


@click.command("analyze")
@click.option("--model", required=True, envvar="BENCH_MODEL", help="Base model: Hugging Face id or local directory.")
@click.option("--hyperfit", required=True, metavar="PATH", help="Hyperfitted checkpoint of --model (full or PEFT adapter).")
@click.option("--suite", required=True, help="A registered suite or a .jsonl file of prompts.")
@click.option("--num-prompts", type=int, default=64, show_default=True, help="Deterministic subset of N prompts.")
@click.option("--max-new-tokens", type=int, default=128, show_default=True, help="Most tokens generated per continuation.")
@click.option("--out", default="analysis", show_default=True, type=click.Path(file_okay=False), metavar="DIR",
              help="Report folder (report.md, CSVs, PNGs, settings.json).")
@click.option("--batch-size", type=int, default=16, show_default=True, help="Prompts per forward pass.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--dtype", type=click.Choice(DTYPES), default="auto",
              show_default=True, help="auto: bfloat16 on CUDA, float32 on CPU.")
@click.option("--seed", type=int, default=0, show_default=True, help="Base seed of the per-prompt sampling seeds.")
@click.option("--tail-rank", type=int, default=10, show_default=True, help="Base rank beyond which an override is deep-tail.")
@click.option("--top-k", type=int, default=500, show_default=True,
              help="static-reweight: tokens whose rank rises most that get an offset (capped at the vocabulary).")
@click.option("--alphas", default=_ALPHAS, show_default=True, help="static-reweight: comma-separated alphas >= 0.")
@click.option("--reweight-decoding", type=click.Choice(["greedy", "sample"]), default="greedy", show_default=True,
              help="How the reweighted base model decodes in the sweep (sample: T=1 with the per-prompt seeds).")
@click.option("--calib-prompts", type=int, default=32, show_default=True, help="Calibration prompts (T* and the offset).")
@click.option("--calib-tokens", type=int, default=64, show_default=True, help="Greedy tokens per calibration prompt.")
@click.option("--logit-lens", is_flag=True, help="Also run the logit lens (experiment 5).")
@click.option("--n-boot", type=int, default=1000, show_default=True, help="Bootstrap resamples for the intervals.")
@click.option("--data-dir", envvar="BENCH_DATA_DIR", default=default_data_dir, metavar="DIR",
              help="Local data folder (wikitext/, cd-benchmark/). Default: $BENCH_DATA_DIR, else $BENCH_SHARED/data, "
                   "else the shared/data folder beside the checkout (as bench run).")
@click.option("--suite-path", default=None, help="An explicit file for a registered suite.")
@threads_option
def analyze(**kw: Any) -> None:
    """Reproduce the experiments of "Beyond Temperature" (Li et al. 2026) on --model and --hyperfit.

    \b
    1. entropy-matched control: base at T=1 and at T*, hyperfitted greedy
    2. rank reordering of the hyperfitted model's greedy tokens under the base model
    3. static vocabulary reweighting sweep (decoder 'static-reweight')
    4. layer-wise geometry: participation ratio, cosine, L2
    5. logit lens (--logit-lens)
    """
    from bench.analysis.analyze import Options, analyze as run_analysis
    from bench.analysis.report import write_report
    from bench.analysis.reweight import parse_alphas
    from bench.outputs import writable_dir

    from bench.runtime.threads import apply

    out = writable_dir(kw["out"], "--out")
    apply(kw.pop("threads"))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    opts = Options(
        model=kw["model"], hyperfit=kw["hyperfit"], suite=kw["suite"], num_prompts=kw["num_prompts"],
        max_new_tokens=kw["max_new_tokens"], batch_size=kw["batch_size"], device=kw["device"], dtype=kw["dtype"],
        seed=kw["seed"], tail_rank=kw["tail_rank"], top_k=kw["top_k"], alphas=parse_alphas(kw["alphas"]),
        reweight_greedy=kw["reweight_decoding"] == "greedy", calib_prompts=kw["calib_prompts"],
        calib_tokens=kw["calib_tokens"], logit_lens=kw["logit_lens"], n_boot=kw["n_boot"],
        data_dir=kw["data_dir"], suite_path=kw["suite_path"],
    )
    from bench.hub import check_models

    check_models([opts.model])
    results = run_analysis(opts, log=lambda msg: click.echo(msg, err=True))
    _write_whole(results, out, write_report)
    click.echo(f"report: {out / 'report.md'}")


def _write_whole(results: Any, out: Path, write_report: Any) -> None:
    """Write the report into a hidden sibling folder and move its files in only once all are written,
    so a failure half way leaves no half-written report (and an older one untouched)."""
    partial = out.parent / f".{out.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        write_report(results, partial)
        out.mkdir(parents=True, exist_ok=True)
        for f in sorted(partial.iterdir()):
            os.replace(f, out / f.name)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
