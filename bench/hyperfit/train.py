"""Hyperfitting: fine-tune a pretrained causal LM to near-zero training loss on a small dataset.

Methods: ``full`` (all parameters; Carlsson et al. 2025), ``lora`` (LoRA through peft on every
block) and ``late-lora`` (LoRA on the last N transformer blocks only; "Late-Stage LoRA", Li et
al. 2026). A plain PyTorch loop: one shuffle per epoch from (seed, epoch), Adam(W), an optional
learning-rate schedule computed from the global step, state saved at every epoch end so that a
killed run continues where it stopped and reaches the same weights as an uninterrupted one.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from bench import runtime
from bench.errors import BenchError, check
from bench.hyperfit import checkpoint as ckpt
from bench.hyperfit.data import build_sequences
from bench.hyperfit.finish import finish, write_loss_files
from bench.runtime import git_commit, package_versions

METHODS = ("full", "lora", "late-lora")
SCHEDULES = ("constant", "linear", "cosine")
FORMAT_VERSION = 2

# LoRA targets per architecture (model_type); other architectures get every linear layer of a block.
_DEFAULT_TARGETS = {
    **dict.fromkeys(
        ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "olmo", "olmo2"),
        ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    ),
    "gpt2": ("c_attn", "c_proj", "c_fc"),
    "gpt_neox": ("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"),
}


@dataclass(frozen=True)
class Recipe:
    """Every value that shapes the training. Defaults: the recipe of Carlsson et al. (2025)."""

    method: str = "full"
    num_sequences: int = 2000
    seq_len: int = 256
    epochs: int = 20
    lr: float = 1e-6
    weight_decay: float = 0.0
    batch_size: int = 8
    schedule: str = "constant"
    seed: int = 0
    lora_r: int = 16
    lora_alpha: float = 32.0
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] | None = None
    """None: the architecture's defaults (see ``_DEFAULT_TARGETS``)."""
    late_layers: int = 5
    skip_last: int = 0
    """late-lora: of the last ``late_layers`` blocks, leave out the last this many (late_layers=5,
    skip_last=1: the four blocks before the final one)."""
    stop_at_loss: float | None = None
    dtype: str = "float32"
    """Dtype the weights are loaded and trained in."""
    bf16: bool = False
    """CUDA autocast to bfloat16 (weights stay in ``dtype``)."""

    def validate(self) -> None:
        check(self.method in METHODS, f"unknown method '{self.method}' (choose from {', '.join(METHODS)})")
        check(self.schedule in SCHEDULES, f"unknown schedule '{self.schedule}' (choose from {', '.join(SCHEDULES)})")
        for name in ("num_sequences", "epochs", "batch_size", "lora_r", "late_layers"):
            check(getattr(self, name) >= 1, f"--{name.replace('_', '-')} must be at least 1")
        check(self.seq_len >= 2, "--seq-len must be at least 2")
        check(self.lr > 0 and math.isfinite(self.lr), "--lr must be a positive number")
        check(self.weight_decay >= 0, "--weight-decay must be >= 0")
        check(0 <= self.lora_dropout < 1, "--lora-dropout must be in [0, 1)")
        check(self.lora_alpha > 0, "--lora-alpha must be positive")
        check(self.stop_at_loss is None or self.stop_at_loss > 0, "--stop-at-loss must be positive")
        check(0 <= self.skip_last < self.late_layers,
              f"--skip-last must be in 0..{self.late_layers - 1} (below --late-layers), got {self.skip_last}")
        check(self.skip_last == 0 or self.method == "late-lora", "--skip-last applies to --method late-lora only")
        runtime.torch_dtype(self.dtype)

    def identity(self) -> dict[str, Any]:
        """The values a resumed run must share with the saved one (what the weights depend on).

        Not included: ``stop_at_loss``, and ``epochs`` under a constant schedule, so a finished
        run can be extended (2 epochs, then 4) with the result of an uninterrupted 4-epoch run.
        """
        d = asdict(self)
        d.pop("stop_at_loss")
        if not self.skip_last:
            d.pop("skip_last")  # checkpoints made before the option existed keep their identity
        if self.schedule == "constant":
            d.pop("epochs")
        if self.method == "full":
            for key in ("lora_r", "lora_alpha", "lora_dropout", "target_modules", "late_layers", "skip_last"):
                d.pop(key, None)
        elif self.method == "lora":
            d.pop("late_layers")
            d.pop("skip_last", None)
        if d.get("target_modules") is not None:
            d["target_modules"] = list(d["target_modules"])
        return d


@dataclass
class TrainResult:
    """What :func:`train` did."""

    metadata: dict[str, Any]
    """The run's ``hyperfit.json``."""
    model: Any = None
    """The trained model (a PeftModel for LoRA methods); None when the run was already finished."""
    trained: bool = False
    """False when the directory already held the finished run and nothing was trained."""


# --- model surgery ------------------------------------------------------------------------------


def find_blocks(model: Any) -> tuple[str, Any]:
    """Name and ModuleList of the transformer blocks (the list as long as the model's depth)."""
    import torch

    depth = getattr(model.config.get_text_config(), "num_hidden_layers", None)
    candidates = [
        (name, module) for name, module in model.named_modules()
        if isinstance(module, torch.nn.ModuleList) and len(module) == depth
    ]
    if not candidates:
        raise BenchError(f"cannot find the transformer blocks of {type(model).__name__}")
    return max(candidates, key=lambda c: sum(p.numel() for p in c[1].parameters()))


def _adaptable_modules(model: Any, prefix: str = "") -> dict[str, str]:
    """Full name -> leaf name of every module LoRA can adapt (linear, GPT-2 Conv1D, embedding)."""
    import torch
    from transformers.pytorch_utils import Conv1D

    kinds = (torch.nn.Linear, Conv1D, torch.nn.Embedding)
    return {
        name: name.rsplit(".", 1)[-1] for name, module in model.named_modules()
        if isinstance(module, kinds) and name.startswith(prefix)
    }


def resolve_targets(model: Any, recipe: Recipe) -> list[str]:
    """The LoRA target module names: leaf names for ``lora``, full names for ``late-lora``."""
    blocks_name, blocks = find_blocks(model)
    in_blocks = _adaptable_modules(model, blocks_name + ".")
    wanted = recipe.target_modules or _DEFAULT_TARGETS.get(
        model.config.model_type, tuple(sorted({leaf for leaf in in_blocks.values()
                                               if not leaf.startswith(("wte", "wpe", "embed"))})))
    scope = in_blocks if recipe.method == "late-lora" else _adaptable_modules(model)
    available = sorted(set(scope.values()))
    unknown = [t for t in wanted if t not in available]
    if unknown:
        raise BenchError(
            f"unknown target modules {', '.join(unknown)} for {model.config.model_type}; "
            f"this model has: {', '.join(available)}"
        )
    if recipe.method == "lora":
        return list(wanted)
    depth = len(blocks)
    if recipe.late_layers > depth:
        raise BenchError(f"--late-layers {recipe.late_layers} is larger than the model's {depth} transformer blocks")
    late = tuple(f"{blocks_name}.{i}." for i in range(depth - recipe.late_layers, depth - recipe.skip_last))
    return sorted(name for name, leaf in in_blocks.items() if leaf in wanted and name.startswith(late))


def apply_method(model: Any, recipe: Recipe, log: Callable[[str], None]) -> tuple[Any, list[str] | None]:
    """Wrap the model for the method; return it and the resolved LoRA targets (None for full)."""
    if recipe.method == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        targets = None
    else:
        from peft import LoraConfig, get_peft_model

        from transformers.pytorch_utils import Conv1D

        targets = resolve_targets(model, recipe)
        # GPT-2's Conv1D stores weights transposed; peft needs to be told (else it warns and guesses).
        conv1d = any(isinstance(m, Conv1D) for n, m in model.named_modules()
                     if n.rsplit(".", 1)[-1] in targets or n in targets)
        config = LoraConfig(
            r=recipe.lora_r, lora_alpha=recipe.lora_alpha, lora_dropout=recipe.lora_dropout,
            target_modules=targets, bias="none", task_type="CAUSAL_LM", fan_in_fan_out=conv1d,
        )
        model = get_peft_model(model, config)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    log(f"method {recipe.method}: {trainable:,} trainable of {total:,} parameters "
        f"({100 * trainable / total:.2f}%)")
    return model, targets


# --- the run directory --------------------------------------------------------------------------


def _check_same_run(out: Path, meta: dict[str, Any], fresh: dict[str, Any]) -> None:
    """Refuse a directory holding another model's, data's or recipe's run; nothing is written."""
    differences = []
    old_base, new_base = meta.get("base_model", {}), fresh["base_model"]
    same = ckpt.same_base(old_base, new_base["name"])
    if same is None:  # neither fingerprint nor commit to compare: the name decides
        same = old_base.get("name") == new_base["name"]
    if not same:
        differences.append(f"model {old_base.get('name')!r} (now {new_base['name']!r})")
    if meta.get("data", {}).get("sha256") != fresh["data"]["sha256"]:
        differences.append(f"data {meta.get('data', {}).get('source')!r} (now {fresh['data']['source']!r})")
    old_id, new_id = meta.get("identity", {}), fresh["identity"]
    for key in sorted(set(old_id) | set(new_id)):
        if old_id.get(key) != new_id.get(key):
            differences.append(f"{key}={old_id.get(key)!r} (now {new_id.get(key)!r})")
    if differences:
        raise BenchError(f"'{out}' holds another hyperfit run: " + "; ".join(differences)
                         + "; choose another --out")


def _is_done(meta: dict[str, Any], recipe: Recipe) -> bool:
    if not meta.get("epochs_done"):
        return False
    if meta["epochs_done"] >= recipe.epochs:
        return True
    loss = meta.get("final_loss")
    return recipe.stop_at_loss is not None and loss is not None and loss < recipe.stop_at_loss


def _new_metadata(model_name: str, data: Any, recipe: Recipe) -> dict[str, Any]:
    recipe_dict = asdict(recipe)
    if recipe_dict["target_modules"] is not None:
        recipe_dict["target_modules"] = list(recipe_dict["target_modules"])
    return {
        "format": FORMAT_VERSION,
        "base_model": {"name": model_name, **ckpt.base_fingerprint(model_name)},
        "method": recipe.method,
        "output": "full" if recipe.method == "full" else "adapter",
        "recipe": recipe_dict,
        "identity": recipe.identity(),
        "data": {"source": data.source, "sha256": data.sha256, "total_tokens": data.total_tokens,
                 "num_sequences": recipe.num_sequences, "seq_len": recipe.seq_len},
        "epochs_done": 0,
        "steps_done": 0,
        "final_loss": None,
        "epoch_losses": [],
        "finished": False,
        "stopped_early": False,
        "versions": package_versions(),
        "git_commit": git_commit(),
    }


# --- training -----------------------------------------------------------------------------------


def resolve_device(device: str, recipe: Recipe) -> str:
    """:func:`bench.runtime.resolve_device`, and BenchError for CUDA-only options without CUDA."""
    device = runtime.resolve_device(device)
    if recipe.bf16 and not device.startswith("cuda"):
        raise BenchError("--bf16 (autocast) needs CUDA; on CPU use --dtype bfloat16 or float32")
    return device


def _lr_factor(schedule: str, step: int, total: int) -> float:
    if schedule == "constant":
        return 1.0
    frac = min(step / max(total, 1), 1.0)
    return 1.0 - frac if schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * frac))


def _default_log(message: str) -> None:
    from rich.console import Console

    Console(stderr=True).print(message, highlight=False, markup=False)


def _prepare_out(out: Path, resume: bool | None) -> dict[str, Any] | None:
    """The metadata of the run already in ``out`` (None if none); refuse a foreign directory."""
    if out.exists() and not out.is_dir():
        raise BenchError(f"--out '{out}' exists and is not a directory")
    meta = ckpt.read_metadata(out) if out.is_dir() else None
    if meta is None and out.is_dir() and any(out.iterdir()):
        raise BenchError(f"--out '{out}' is not empty and holds no hyperfit run; choose another directory")
    if resume and meta is None:
        raise BenchError(f"--resume: '{out}' holds no hyperfit run to resume")
    return meta


def _run_epochs(model: Any, optimizer: Any, data: Any, recipe: Recipe, device: str, out: Path,
                meta: dict[str, Any], progress: dict[str, Any], on_epoch_end: Callable | None,
                log: Callable[[str], None], show_progress: bool) -> None:
    """Train from ``progress['epoch']`` to ``recipe.epochs`` (or the stop loss), saving state each epoch."""
    import torch
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    seqs, bs = data.sequences, recipe.batch_size
    n = len(seqs)
    per_epoch = math.ceil(n / bs)
    total = per_epoch * recipe.epochs
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("loss {task.fields[loss]}"), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), disable=not show_progress) as bar:
        task = bar.add_task("hyperfit", total=total, completed=progress["epoch"] * per_epoch, loss="-")
        for epoch in range(progress["epoch"], recipe.epochs):
            model.train()
            # One generator per epoch: the order does not depend on where a run was resumed.
            order = torch.randperm(n, generator=torch.Generator().manual_seed(recipe.seed * 1_000_003 + epoch))
            weighted = 0.0
            bar.update(task, description=f"epoch {epoch + 1}/{recipe.epochs}")
            for b in range(per_epoch):
                batch = seqs[order[b * bs:(b + 1) * bs]].to(device)
                step = epoch * per_epoch + b
                for group in optimizer.param_groups:
                    group["lr"] = recipe.lr * _lr_factor(recipe.schedule, step, total)
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=recipe.bf16):
                    loss = model(input_ids=batch, labels=batch, use_cache=False).loss
                if not torch.isfinite(loss):
                    raise BenchError(f"training diverged: loss {loss.item()} at epoch {epoch + 1}, step {step + 1}; "
                                     "lower --lr or train in float32")
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                value = loss.item()
                weighted += value * len(batch)
                progress["history"].append([epoch + 1, step + 1, value])
                bar.update(task, advance=1, loss=f"{value:.4f}")
            epoch_loss = weighted / n
            progress["epoch"] = epoch + 1
            progress["epoch_losses"].append(epoch_loss)
            meta.update(epochs_done=epoch + 1, steps_done=(epoch + 1) * per_epoch, final_loss=epoch_loss,
                        epoch_losses=list(progress["epoch_losses"]))
            ckpt.save_state(out, model, optimizer, progress)
            write_loss_files(out, progress["history"], plot=False)
            ckpt.write_metadata(out, meta)
            log(f"epoch {epoch + 1}/{recipe.epochs}: mean training loss {epoch_loss:.5f}")
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1, epoch_loss)
            if recipe.stop_at_loss is not None and epoch_loss < recipe.stop_at_loss:
                log(f"stopping: mean loss {epoch_loss:.5f} < --stop-at-loss {recipe.stop_at_loss}")
                break


def train(
    model_name: str,
    data_source: str,
    out: str | Path,
    recipe: Recipe = Recipe(),
    *,
    device: str = "auto",
    gradient_checkpointing: bool = False,
    resume: bool | None = None,
    log: Callable[[str], None] | None = None,
    show_progress: bool = True,
    on_epoch_end: Callable[[int, float], None] | None = None,
    save_every: int | None = None,
) -> TrainResult:
    """Hyperfit ``model_name`` on ``data_source`` into ``out``; see the module docstring.

    ``resume``: None continues an unfinished run of the same model/data/recipe found in ``out``
    (or starts a new one); True additionally requires that ``out`` holds such a run.
    ``on_epoch_end(epoch, mean_loss)`` runs after each epoch's state is saved. ``save_every``: keep a
    loadable checkpoint of every K-th epoch, and of the last, in ``out/epochs/`` (not part of the
    recipe: it changes no weights).
    """
    import torch

    recipe.validate()
    log = log or _default_log
    device = resolve_device(device, recipe)
    out = Path(out)
    old = _prepare_out(out, resume)
    runtime.check_weights(model_name)  # before the data is read or anything is written
    try:
        tokenizer = runtime.load_tokenizer(model_name, left_pad=False)
    except BenchError as e:
        raise BenchError(f"cannot load the tokenizer of '{model_name}': {str(e).partition(': ')[2]}") from None
    data = build_sequences(tokenizer, data_source, recipe.seq_len, recipe.num_sequences)
    meta = _new_metadata(model_name, data, recipe)
    if old is not None:
        _check_same_run(out, old, meta)
        if ckpt.is_finished(out, old) and _is_done(old, recipe):
            log(f"'{out}' already holds this run, finished after {old['epochs_done']} epochs "
                f"(loss {old['final_loss']:.5f}); nothing to train")
            return TrainResult(old)

    if old is not None and old.get("epochs_done") and ckpt.state_dir(out) is not None:
        ckpt.check_state(out, old)  # a damaged or foreign state stops here, before the model loads
    torch.manual_seed(recipe.seed)
    model = ckpt.load_base_model(model_name, recipe.dtype)
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model, targets = apply_method(model, recipe, log)
    model.to(device)
    meta.update(
        lora_targets=targets,
        trainable_parameters=sum(p.numel() for p in model.parameters() if p.requires_grad),
        total_parameters=sum(p.numel() for p in model.parameters()),
    )
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                  lr=recipe.lr, weight_decay=recipe.weight_decay)
    progress: dict[str, Any] = {"epoch": 0, "history": [], "epoch_losses": []}
    if old is not None and old.get("epochs_done"):
        if ckpt.state_dir(out) is None:
            raise BenchError(f"'{out}' has no state/ left to continue its run from; choose another --out")
        progress = ckpt.load_state(out, model, optimizer)
        log(f"resuming '{out}' after epoch {progress['epoch']}")
        meta.update(epochs_done=progress["epoch"], epoch_losses=progress["epoch_losses"],
                    final_loss=progress["epoch_losses"][-1] if progress["epoch_losses"] else None)
    out.mkdir(parents=True, exist_ok=True)
    with one_writer(out):
        if ckpt.read_metadata(out) != old:  # another run wrote here between our look and the lock
            raise BenchError(f"--out '{out}': another 'bench hyperfit' wrote this folder while this one was "
                             "starting; run the command again (it then resumes that run or refuses it)")
        ckpt.write_metadata(out, meta)
        if not _is_done(meta, recipe):  # killed after its last epoch: only the final save is left
            _run_epochs(model, optimizer, data, recipe, device, out, meta, progress,
                        _keeping_epochs(out, model, tokenizer, meta, recipe, save_every, on_epoch_end, log), log,
                        show_progress)
        finish(out, model, tokenizer, recipe, meta, progress["history"], log)
    return TrainResult(meta, model, True)


def _keeping_epochs(out: Path, model: Any, tokenizer: Any, meta: dict[str, Any], recipe: Recipe,
                    save_every: int | None, on_epoch_end: Callable | None, log: Callable[[str], None]) -> Callable | None:
    """``on_epoch_end`` that first keeps the epoch's checkpoint when ``save_every`` asks for it."""
    if not save_every:
        return on_epoch_end

    def keep(epoch: int, loss: float) -> None:
        last = epoch == recipe.epochs or (recipe.stop_at_loss is not None and loss < recipe.stop_at_loss)
        if epoch % save_every == 0 or last:
            model.eval()
            path = ckpt.save_epoch(out, epoch, model, tokenizer, meta)
            log(f"kept epoch {epoch} in '{path}'")
        if on_epoch_end is not None:
            on_epoch_end(epoch, loss)

    return keep


@contextmanager
def one_writer(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on the folder ``out`` itself (``flock`` on its descriptor: nothing is
    written for it), or refuse in one line when another process holds it. Two runs with different
    settings into one folder crashed the first and left the folder as the second's."""
    import fcntl
    import os

    fd = os.open(out, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BenchError(f"--out '{out}': another 'bench hyperfit' is writing this folder; wait for it to "
                             "finish or give another --out") from None
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
