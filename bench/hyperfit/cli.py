"""``bench hyperfit``: the command line of :func:`bench.hyperfit.train.train`.

The lead attaches it to the ``bench`` group with ``main.add_command(hyperfit)``; BenchError is
left to the group, which prints it and exits 2.
"""

from __future__ import annotations

import click

from bench.hyperfit.train import METHODS, SCHEDULES, Recipe
from bench.runtime.devices import DEVICES_HELP, PRECISIONS
from bench.runtime.threads import threads_option

_D = Recipe()  # defaults: Carlsson et al. (2025)


def _targets(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    names = tuple(t.strip() for t in value.split(",") if t.strip())
    return names or None


@click.command("hyperfit")
@click.option("--model", required=True, envvar="BENCH_MODEL",
              help="Base model: Hugging Face id or local directory. Default: $BENCH_MODEL.")
@click.option("--data", "data_source", required=True,
              help="Training text: a .txt or .jsonl (field 'text') file, a folder of them, "
                   "or a Hugging Face dataset name[:config][@split] (column 'text').")
@click.option("--out", required=True, type=click.Path(file_okay=False), metavar="DIR",
              help="Checkpoint folder (weights or adapter, hyperfit.json, loss.csv, loss.png); an unfinished run in it is continued.")
@click.option("--method", type=click.Choice(METHODS), default=_D.method, show_default=True,
              help="full: all parameters; lora: LoRA on every block; late-lora: LoRA on the last blocks.")
@click.option("--num-sequences", type=int, default=_D.num_sequences, show_default=True, help="Training sequences cut from --data.")
@click.option("--seq-len", type=int, default=_D.seq_len, show_default=True, help="Tokens per sequence.")
@click.option("--epochs", type=int, default=_D.epochs, show_default=True, help="Passes over the sequences.")
@click.option("--lr", type=float, default=_D.lr, show_default=True, help="Adam learning rate.")
@click.option("--weight-decay", type=float, default=_D.weight_decay, show_default=True,
              help="Decoupled weight decay (0 = plain Adam).")
@click.option("--batch-size", type=int, default=_D.batch_size, show_default=True, help="Sequences per optimizer step.")
@click.option("--schedule", type=click.Choice(SCHEDULES), default=_D.schedule, show_default=True,
              help="Learning-rate schedule over all steps.")
@click.option("--seed", type=int, default=_D.seed, show_default=True, help="Shuffling and LoRA init.")
@click.option("--lora-r", type=int, default=_D.lora_r, show_default=True, help="LoRA rank (lora, late-lora).")
@click.option("--lora-alpha", type=float, default=_D.lora_alpha, show_default=True, help="LoRA scaling numerator (lora, late-lora).")
@click.option("--lora-dropout", type=float, default=_D.lora_dropout, show_default=True, help="Dropout on the LoRA path (lora, late-lora).")
@click.option("--target-modules", default=None,
              help="Comma-separated LoRA target module names (default: chosen per architecture).")
@click.option("--late-layers", type=int, default=_D.late_layers, show_default=True,
              help="late-lora: number of last transformer blocks that get LoRA.")
@click.option("--skip-last", type=int, default=_D.skip_last, show_default=True,
              help="late-lora: leave the last N of the --late-layers blocks out (1: every late block but the final one).")
@click.option("--stop-at-loss", type=float, default=None,
              help="End early once an epoch's mean training loss is below this.")
@click.option("--device", default="auto", show_default=True, help=f"{DEVICES_HELP}.")
@click.option("--dtype", type=click.Choice(PRECISIONS), default=_D.dtype,
              show_default=True, help="Dtype the weights are loaded and trained in.")
@click.option("--bf16", is_flag=True, help="CUDA only: autocast to bfloat16, weights stay in --dtype.")
@click.option("--gradient-checkpointing", is_flag=True, help="Trade compute for activation memory.")
@click.option("--resume", is_flag=True,
              help="Require continuing the run in --out (an unfinished run of the same "
                   "model/data/recipe is continued even without this flag).")
@click.option("--save-every", type=int, default=None, metavar="K",
              help="Keep a loadable checkpoint of every K-th epoch (and the last) in OUT/epochs/; "
                   "'bench run --hyperfit OUT@every' then decodes each.")
@threads_option
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def hyperfit(model: str, data_source: str, out: str, method: str, num_sequences: int, seq_len: int,
             epochs: int, lr: float, weight_decay: float, batch_size: int, schedule: str, seed: int,
             lora_r: int, lora_alpha: float, lora_dropout: float, target_modules: str | None,
             late_layers: int, skip_last: int, stop_at_loss: float | None, device: str, dtype: str, bf16: bool,
             gradient_checkpointing: bool, resume: bool, save_every: int | None, threads: int | None,
             no_progress: bool) -> None:
    """Fine-tune MODEL to near-zero training loss on a small dataset (hyperfitting).

    Defaults are the recipe of Carlsson et al. (2025): 2000 sequences of 256 tokens, 20 epochs,
    Adam with learning rate 1e-6 and no weight decay, batch size 8, all parameters, no schedule.
    The run saves its state at every epoch end; running the same command again continues it.
    """
    from bench.errors import BenchError
    from bench.hyperfit.train import train
    from bench.outputs import writable_dir

    writable_dir(out, "--out")
    if save_every is not None and save_every < 1:
        raise BenchError(f"--save-every must be >= 1, got {save_every}")
    from bench.runtime.threads import apply

    apply(threads)
    recipe = Recipe(
        method=method, num_sequences=num_sequences, seq_len=seq_len, epochs=epochs, lr=lr,
        weight_decay=weight_decay, batch_size=batch_size, schedule=schedule, seed=seed,
        lora_r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout,
        target_modules=_targets(target_modules), late_layers=late_layers, skip_last=skip_last,
        stop_at_loss=stop_at_loss, dtype=dtype, bf16=bf16,
    )
    from bench.hub import check_models

    check_models([model])
    result = train(model, data_source, out, recipe, device=device,
                   gradient_checkpointing=gradient_checkpointing, resume=resume or None,
                   show_progress=not no_progress, save_every=save_every)
    meta = result.metadata
    click.echo(f"{out}: {meta['epochs_done']} epochs, final mean training loss {meta['final_loss']:.5f}"
               + ("" if result.trained else " (already finished; nothing trained)"))
