"""bench hyperfit: training methods, checkpoints, resumption and every refused input.

Real tiny models: stories260K (pretrained Llama, 5 blocks) and a randomly initialised 8-block GPT-2
with the GPT-2 tokenizer, trained on a 20 kB excerpt of Grimm's Fairy Tales.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from bench.errors import BenchError
from bench.hyperfit import checkpoint_fingerprint, load_hyperfit
from bench.hyperfit.cli import hyperfit
from bench.hyperfit.data import build_sequences
from bench.hyperfit import checkpoint as ckpt
from bench.hyperfit.train import Recipe, train

SHARED = Path(os.environ.get("BENCH_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
STORIES = str(SHARED / "models" / "stories260K")
GRIMM = SHARED / "data" / "pd-stories" / "grimms_fairy_tales_pg52521.txt"
SMALL = Recipe(num_sequences=8, seq_len=64, epochs=4, lr=1e-3, batch_size=4)
QUIET = {"log": lambda message: None, "show_progress": False}


@pytest.fixture(scope="module")
def text(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("data") / "grimm.txt"
    path.write_text(GRIMM.read_text(encoding="utf-8")[:20_000], encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def gpt2_8_blocks(tmp_path_factory) -> str:
    """A randomly initialised 8-block GPT-2 saved with the GPT-2 tokenizer."""
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    path = tmp_path_factory.mktemp("gpt2-8l")
    torch.manual_seed(0)
    config = GPT2Config(n_layer=8, n_embd=32, n_head=2, n_positions=128, vocab_size=50257,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    GPT2LMHeadModel(config).save_pretrained(path)
    AutoTokenizer.from_pretrained(str(SHARED / "models" / "gpt2-tokenizer")).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, text):
    out = tmp_path_factory.mktemp("runs") / "full"
    return out, train(STORIES, text, out, SMALL, device="cpu", **QUIET)


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, text):
    out = tmp_path_factory.mktemp("runs") / "lora"
    recipe = Recipe(method="lora", num_sequences=8, seq_len=64, epochs=4, lr=1e-2, batch_size=4,
                    lora_r=4, lora_alpha=8, lora_dropout=0.0)
    return out, train(STORIES, text, out, recipe, device="cpu", **QUIET)


def _logits(model, ids: torch.Tensor) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(input_ids=ids).logits


def _digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.rglob("*")) if p.is_file()}


# --- methods ------------------------------------------------------------------------------------


def test_full_training_lowers_loss_and_checkpoint_loads(full_run, text):
    out, result = full_run
    meta = result.metadata
    assert result.trained and meta["finished"] and meta["epochs_done"] == 4
    assert meta["epoch_losses"][-1] < 0.8 * meta["epoch_losses"][0]
    assert meta["trainable_parameters"] == meta["total_parameters"] == 260_032
    for name in ("model.safetensors", "config.json", "tokenizer.json", "loss.csv", "loss.png", "hyperfit.json"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "hyperfit.json").read_text())
    assert saved["base_model"]["name"] == STORIES and len(saved["base_model"]["fingerprint"]) == 16
    assert saved["data"]["source"] == text and len(saved["data"]["sha256"]) == 64
    assert saved["recipe"]["lr"] == 1e-3 and saved["method"] == "full"
    assert set(saved["versions"]) >= {"torch", "transformers", "peft"} and "git_commit" in saved
    assert (out / "loss.csv").read_text().splitlines()[0] == "epoch,step,loss"
    assert len((out / "loss.csv").read_text().splitlines()) == 1 + 4 * 2

    model, loaded_meta = load_hyperfit(out, STORIES, dtype="float32", device="cpu")
    assert loaded_meta == saved
    ids = torch.randint(0, 512, (2, 16), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(_logits(model, ids), _logits(result.model, ids), rtol=0, atol=1e-5)
    fp = checkpoint_fingerprint(out)
    assert fp == checkpoint_fingerprint(out) and len(fp) == 16


def test_lora_training_saves_an_adapter_that_merges_to_the_same_logits(lora_run):
    out, result = lora_run
    meta = result.metadata
    assert meta["epoch_losses"][-1] < 0.9 * meta["epoch_losses"][0]
    assert 0 < meta["trainable_parameters"] < meta["total_parameters"]
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    assert not (out / "model.safetensors").exists()
    assert set(meta["lora_targets"]) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    model, _ = load_hyperfit(out, STORIES, dtype="float32", device="cpu")
    assert type(model).__name__ == "LlamaForCausalLM"  # merged and unloaded, no peft wrapper
    ids = torch.randint(0, 512, (2, 16), generator=torch.Generator().manual_seed(2))
    # merging W + BA into one matrix reorders float sums: ~1e-5 absolute on logits of size ~10
    torch.testing.assert_close(_logits(model, ids), _logits(result.model, ids), rtol=1e-5, atol=5e-5)


def test_late_lora_changes_only_the_last_blocks(tmp_path, gpt2_8_blocks, text):
    from transformers import AutoModelForCausalLM

    recipe = Recipe(method="late-lora", late_layers=3, num_sequences=8, seq_len=64, epochs=3,
                    lr=1e-2, batch_size=4, lora_r=4, lora_alpha=8, lora_dropout=0.0)
    result = train(gpt2_8_blocks, text, tmp_path / "late", recipe, device="cpu", **QUIET)
    meta = result.metadata
    assert meta["epoch_losses"][-1] < meta["epoch_losses"][0]
    assert meta["lora_targets"] and all(t.startswith(("transformer.h.5.", "transformer.h.6.", "transformer.h.7."))
                                        for t in meta["lora_targets"])
    merged, _ = load_hyperfit(tmp_path / "late", gpt2_8_blocks, dtype="float32", device="cpu")
    base = AutoModelForCausalLM.from_pretrained(gpt2_8_blocks).state_dict()
    changed_blocks = set()
    for name, tensor in merged.state_dict().items():
        changed = not torch.equal(tensor, base[name])
        block = int(name.split(".")[2]) if name.startswith("transformer.h.") else None
        if block is None or block < 5:
            assert not changed, f"{name} changed but is outside the last 3 blocks"
        elif changed:
            changed_blocks.add(block)
    assert changed_blocks == {5, 6, 7}
    ids = torch.randint(0, 50257, (2, 16), generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(_logits(merged, ids), _logits(result.model, ids), rtol=1e-5, atol=5e-5)


# --- resumption ---------------------------------------------------------------------------------


def test_extending_two_epochs_to_four_matches_an_uninterrupted_run(tmp_path, full_run, text):
    out = tmp_path / "resumed"
    args = ["--model", STORIES, "--data", text, "--out", str(out), "--num-sequences", "8",
            "--seq-len", "64", "--lr", "1e-3", "--batch-size", "4", "--device", "cpu", "--no-progress"]
    first = CliRunner().invoke(hyperfit, args + ["--epochs", "2"], catch_exceptions=False)
    assert first.exit_code == 0 and "2 epochs" in first.output
    second = CliRunner().invoke(hyperfit, args + ["--epochs", "4", "--resume"], catch_exceptions=False)
    assert second.exit_code == 0 and "4 epochs" in second.output
    reference = load_file(str(full_run[0] / "model.safetensors"))
    resumed = load_file(str(out / "model.safetensors"))
    assert reference.keys() == resumed.keys()
    for name in reference:  # bit-identical on CPU: same shuffles, same optimizer state
        assert torch.equal(reference[name], resumed[name]), name
    assert json.loads((out / "hyperfit.json").read_text())["epoch_losses"] == full_run[1].metadata["epoch_losses"]


def test_a_killed_run_resumes_by_default_and_matches(tmp_path, text):
    """LoRA with dropout: the resumed run also needs the restored RNG state to match."""
    recipe = Recipe(method="lora", num_sequences=8, seq_len=64, epochs=4, lr=1e-2, batch_size=4,
                    lora_r=4, lora_alpha=8, lora_dropout=0.2)
    train(STORIES, text, tmp_path / "whole", recipe, device="cpu", **QUIET)

    def kill_after_two(epoch: int, loss: float) -> None:
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(STORIES, text, tmp_path / "killed", recipe, device="cpu", on_epoch_end=kill_after_two, **QUIET)
    meta = json.loads((tmp_path / "killed" / "hyperfit.json").read_text())
    assert meta["epochs_done"] == 2 and not meta["finished"]
    with pytest.raises(BenchError, match=r"run in .* is unfinished \(2 epochs done\)"):
        load_hyperfit(tmp_path / "killed", STORIES)
    train(STORIES, text, tmp_path / "killed", recipe, device="cpu", **QUIET)
    whole = load_file(str(tmp_path / "whole" / "adapter_model.safetensors"))
    resumed = load_file(str(tmp_path / "killed" / "adapter_model.safetensors"))
    for name in whole:
        assert torch.equal(whole[name], resumed[name]), name


def test_gradient_checkpointing_gives_the_same_training(tmp_path, text):
    recipe = Recipe(num_sequences=4, seq_len=64, epochs=1, lr=1e-3, batch_size=2)
    plain = train(STORIES, text, tmp_path / "plain", recipe, device="cpu", **QUIET)
    ckpt = train(STORIES, text, tmp_path / "gc", recipe, device="cpu", gradient_checkpointing=True, **QUIET)
    assert ckpt.metadata["final_loss"] == pytest.approx(plain.metadata["final_loss"], rel=1e-5)
    assert ckpt.metadata["identity"] == plain.metadata["identity"]


def test_stop_at_loss_ends_early_and_a_lower_target_continues(tmp_path, text):
    out = tmp_path / "stop"
    recipe = Recipe(num_sequences=4, seq_len=64, epochs=5, lr=1e-3, batch_size=2, stop_at_loss=100.0)
    meta = train(STORIES, text, out, recipe, device="cpu", **QUIET).metadata
    assert meta["epochs_done"] == 1 and meta["finished"] and meta["stopped_early"]
    assert not train(STORIES, text, out, recipe, device="cpu", **QUIET).trained
    longer = Recipe(num_sequences=4, seq_len=64, epochs=2, lr=1e-3, batch_size=2)
    meta = train(STORIES, text, out, longer, device="cpu", **QUIET).metadata
    assert meta["epochs_done"] == 2 and meta["finished"] and not meta["stopped_early"]
    assert len(meta["epoch_losses"]) == 2


def test_a_missing_model_is_refused(tmp_path, text):
    with pytest.raises(BenchError, match="cannot load the tokenizer of"):
        train(str(tmp_path / "no-model"), text, tmp_path / "o", SMALL, device="cpu", **QUIET)


def test_a_finished_run_is_not_retrained(full_run, text):
    out, _ = full_run
    before = _digest(out)
    result = train(STORIES, text, out, SMALL, device="cpu", **QUIET)
    assert not result.trained and result.model is None and _digest(out) == before


# --- refused input ------------------------------------------------------------------------------


def test_another_models_or_recipes_run_is_refused_and_kept(full_run, gpt2_8_blocks, text):
    out, _ = full_run
    before = _digest(out)
    with pytest.raises(BenchError, match="another hyperfit run: model"):
        train(gpt2_8_blocks, text, out, SMALL, device="cpu", **QUIET)
    with pytest.raises(BenchError, match=r"lr=0\.001 \(now 0\.002\)"):
        train(STORIES, text, out, Recipe(num_sequences=8, seq_len=64, epochs=4, lr=2e-3, batch_size=4),
              device="cpu", **QUIET)
    with pytest.raises(BenchError, match="another hyperfit run: data"):
        train(STORIES, str(GRIMM.with_name("tiny_shakespeare.txt")), out, SMALL, device="cpu", **QUIET)
    assert _digest(out) == before


def test_a_foreign_directory_and_impossible_options_are_refused(tmp_path, text):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(BenchError, match="not empty and holds no hyperfit run"):
        train(STORIES, text, tmp_path, SMALL, device="cpu", **QUIET)
    with pytest.raises(BenchError, match="holds no hyperfit run to resume"):
        train(STORIES, text, tmp_path / "new", SMALL, device="cpu", resume=True, **QUIET)
    with pytest.raises(BenchError, match="--lr must be a positive"):
        train(STORIES, text, tmp_path / "new", Recipe(lr=0), device="cpu", **QUIET)
    bf16 = CliRunner().invoke(hyperfit, ["--model", STORIES, "--data", text, "--out", str(tmp_path / "b"),
                                         "--device", "cpu", "--bf16"])
    assert isinstance(bf16.exception, BenchError) and "needs CUDA" in str(bf16.exception)
    if not torch.cuda.is_available():
        with pytest.raises(BenchError, match="no CUDA device"):
            train(STORIES, text, tmp_path / "new", SMALL, device="cuda", **QUIET)
    assert not (tmp_path / "new").exists() and not (tmp_path / "b").exists()


def test_too_little_data_says_how_many_sequences_it_holds(tmp_path, text):
    with pytest.raises(BenchError, match=r"i\.e\. \d+ sequences of 64 tokens; 100000 were asked for"):
        train(STORIES, text, tmp_path / "o", Recipe(num_sequences=100_000, seq_len=64), device="cpu", **QUIET)


def test_unknown_targets_and_too_many_late_layers(tmp_path, text):
    with pytest.raises(BenchError, match="unknown target modules c_attn for llama; this model has: .*q_proj"):
        train(STORIES, text, tmp_path / "o", Recipe(method="lora", target_modules=("c_attn",), num_sequences=2,
                                                    seq_len=32), device="cpu", **QUIET)
    with pytest.raises(BenchError, match="--late-layers 6 is larger than the model's 5 transformer blocks"):
        train(STORIES, text, tmp_path / "o", Recipe(method="late-lora", late_layers=6, num_sequences=2,
                                                    seq_len=32), device="cpu", **QUIET)
    assert not (tmp_path / "o").exists()


# --- data sources -------------------------------------------------------------------------------


def test_data_sources_txt_jsonl_and_dataset(tmp_path, text):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(STORIES)
    paragraphs = [p for p in Path(text).read_text().split("\n\n") if p.strip()][:40]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps({"text": p}) + "\n" for p in paragraphs))
    from_jsonl = build_sequences(tok, str(tmp_path / "a.jsonl"), 32, 4)
    assert from_jsonl.sequences.shape == (4, 32) and from_jsonl.sequences.dtype == torch.int64
    assert tok.eos_token_id in from_jsonl.sequences.flatten().tolist()  # documents joined with EOS
    assert build_sequences(tok, str(tmp_path / "a.jsonl"), 32, 4).sha256 == from_jsonl.sha256
    assert build_sequences(tok, text, 32, 4).sha256 != from_jsonl.sha256

    import pandas as pd

    (tmp_path / "ds").mkdir()
    pd.DataFrame({"text": paragraphs}).to_csv(tmp_path / "ds" / "train.csv", index=False)
    from_dataset = build_sequences(tok, str(tmp_path / "ds") + "@train", 32, 4)
    assert torch.equal(from_dataset.sequences, from_jsonl.sequences)

    (tmp_path / "txts").mkdir()
    for i, paragraph in enumerate(paragraphs):
        (tmp_path / "txts" / f"{i:03d}.txt").write_text(paragraph)
    assert build_sequences(tok, str(tmp_path / "txts"), 32, 4).sha256 == from_jsonl.sha256

    (tmp_path / "bad.jsonl").write_text(json.dumps({"content": "x"}) + "\n")
    with pytest.raises(BenchError, match="needs a string field 'text'"):
        build_sequences(tok, str(tmp_path / "bad.jsonl"), 32, 1)
    with pytest.raises(BenchError, match="does not exist"):
        build_sequences(tok, str(tmp_path / "missing.txt"), 32, 1)
    (tmp_path / "ds2").mkdir()
    pd.DataFrame({"body": paragraphs}).to_csv(tmp_path / "ds2" / "train.csv", index=False)
    with pytest.raises(BenchError, match="has no column 'text'"):
        build_sequences(tok, str(tmp_path / "ds2"), 32, 1)


# --- load_hyperfit errors -----------------------------------------------------------------------


def test_load_hyperfit_refuses_missing_and_non_model_paths(tmp_path):
    with pytest.raises(BenchError, match="does not exist"):
        load_hyperfit(tmp_path / "nope", STORIES)
    with pytest.raises(BenchError, match="neither a model directory nor a PEFT adapter"):
        load_hyperfit(tmp_path, STORIES)


def test_load_hyperfit_refuses_an_adapter_of_another_base(tmp_path, lora_run, gpt2_8_blocks):
    out, _ = lora_run
    with pytest.raises(BenchError, match="was trained from"):
        load_hyperfit(out, gpt2_8_blocks)  # caught by hyperfit.json's base fingerprint
    bare = tmp_path / "bare"
    shutil.copytree(out, bare, ignore=shutil.ignore_patterns("hyperfit.json", "state", "tokenizer*"))
    with pytest.raises(BenchError, match="was trained on .*stories260K.*not on base model"):
        load_hyperfit(bare, gpt2_8_blocks)  # caught by adapter_config's base_model_name_or_path


def test_load_hyperfit_refuses_another_vocabulary_or_tokenizer(tmp_path, gpt2_8_blocks):
    with pytest.raises(BenchError, match="vocabulary of 50257 tokens, base model .* 512"):
        load_hyperfit(gpt2_8_blocks, STORIES)
    other = tmp_path / "other-tokenizer"
    shutil.copytree(STORIES, other, ignore=shutil.ignore_patterns("original"))
    tokenizer = json.loads((other / "tokenizer.json").read_text())
    vocab = tokenizer["model"]["vocab"]
    first, second = [t for t in vocab if t.startswith("▁") and len(t) > 3][:2]
    vocab[first], vocab[second] = vocab[second], vocab[first]  # same tokens, two ids swapped
    (other / "tokenizer.json").write_text(json.dumps(tokenizer))
    with pytest.raises(BenchError, match="tokenizer of hyperfit checkpoint .* differs"):
        load_hyperfit(other, STORIES)
    model, meta = load_hyperfit(STORIES, STORIES)  # the base itself is a valid full checkpoint
    assert meta is None and model.config.vocab_size == 512


@pytest.mark.parametrize("arch", ["llama", "gpt2", "gpt_neox", "qwen2"])
def test_default_targets_exist_for_each_architecture(arch):
    from transformers import AutoConfig, AutoModelForCausalLM

    from bench.hyperfit.train import apply_method, find_blocks, resolve_targets

    sizes = {"gpt2": dict(n_layer=4, n_embd=16, n_head=2)}.get(
        arch, dict(num_hidden_layers=4, hidden_size=16, num_attention_heads=2, num_key_value_heads=2,
                   intermediate_size=32))
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(arch, vocab_size=64, **sizes))
    blocks_name, blocks = find_blocks(model)
    assert len(blocks) == 4
    leaf_targets = resolve_targets(model, Recipe(method="lora"))
    late_targets = resolve_targets(model, Recipe(method="late-lora", late_layers=2))
    assert {t.rsplit(".", 1)[-1] for t in late_targets} == set(leaf_targets)
    assert all(t.startswith((f"{blocks_name}.2.", f"{blocks_name}.3.")) for t in late_targets)
    wrapped, _ = apply_method(model, Recipe(method="late-lora", late_layers=2), lambda m: None)
    trainable = [n for n, p in wrapped.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n and (".2." in n or ".3." in n) for n in trainable)


# --- never deadlocked (issue 14 part 6) ---------------------------------------------------------


def test_a_run_killed_after_its_last_epoch_is_finished_by_bench_hyperfit(tmp_path, full_run, text):
    """Measured: 'bench hyperfit' said "already finished; nothing to train" while 'bench run --hyperfit'
    said the run was unfinished, and no model.safetensors existed: no way out but a new folder."""
    out = tmp_path / "killed-last"

    def kill_after_last(epoch: int, loss: float) -> None:
        if epoch == SMALL.epochs:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(STORIES, text, out, SMALL, device="cpu", on_epoch_end=kill_after_last, **QUIET)
    assert not (out / "model.safetensors").exists()
    with pytest.raises(BenchError, match="unfinished .*run 'bench hyperfit' again"):
        load_hyperfit(out, STORIES)
    result = train(STORIES, text, out, SMALL, device="cpu", **QUIET)
    assert result.trained and result.metadata["finished"] and result.metadata["epochs_done"] == SMALL.epochs
    load_hyperfit(out, STORIES)  # 'bench run --hyperfit' accepts it now
    whole, finished = load_file(str(full_run[0] / "model.safetensors")), load_file(str(out / "model.safetensors"))
    for name in whole:
        assert torch.equal(whole[name], finished[name]), name
    assert not (out / ".final.new").exists()


def test_a_finished_run_whose_weights_went_missing_is_saved_again(tmp_path, full_run, text):
    out = tmp_path / "lost"
    shutil.copytree(full_run[0], out)
    (out / "model.safetensors").unlink()
    result = train(STORIES, text, out, SMALL, device="cpu", **QUIET)
    assert result.trained and (out / "model.safetensors").is_file()
    load_hyperfit(out, STORIES)


def test_a_failing_plot_never_leaves_the_run_unfinished(tmp_path, text, monkeypatch):
    """Measured: without matplotlib the plot raised after training and the run stayed unfinished."""
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises ImportError
    logged: list[str] = []
    recipe = Recipe(num_sequences=4, seq_len=64, epochs=1, lr=1e-3, batch_size=2)
    meta = train(STORIES, text, tmp_path / "noplot", recipe, device="cpu", log=logged.append,
                 show_progress=False).metadata
    assert meta["finished"] and (tmp_path / "noplot" / "loss.csv").is_file()
    assert any("loss.png not written" in m for m in logged)
    load_hyperfit(tmp_path / "noplot", STORIES)


def test_stopping_above_the_stop_at_loss_target_warns(tmp_path, text):
    """Measured: a hyperfit ending at loss 1.26 against --stop-at-loss 0.05 said nothing."""
    logged: list[str] = []
    recipe = Recipe(num_sequences=4, seq_len=64, epochs=1, lr=1e-3, batch_size=2, stop_at_loss=0.05)
    meta = train(STORIES, text, tmp_path / "short", recipe, device="cpu", log=logged.append,
                 show_progress=False).metadata
    assert meta["finished"] and meta["reached_target"] is False
    assert any(m.startswith("warning: the hyperfit stopped at loss") and "target 0.05" in m for m in logged)


# --- one writer per folder (issue 24, part 6) ----------------------------------------------------


def test_a_second_hyperfit_into_a_busy_folder_refuses_in_one_line(tmp_path, text):
    """While another process holds the folder, a second run with other settings refuses and writes nothing."""
    import fcntl
    import os

    out = tmp_path / "busy"
    out.mkdir()
    fd = os.open(out, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as the first 'bench hyperfit' holds it
    try:
        args = ["--model", STORIES, "--data", text, "--out", str(out), "--num-sequences", "8", "--seq-len", "64",
                "--epochs", "1", "--batch-size", "4", "--device", "cpu", "--no-progress"]
        from bench.cli import main

        result = CliRunner().invoke(main, ["hyperfit", *args])  # main turns errors into one line, exit 2
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines()[-1].startswith("error: --out") and "another 'bench hyperfit' is " \
        "writing this folder" in result.output
    assert list(out.iterdir()) == []


def test_a_run_written_between_the_look_and_the_lock_is_not_overwritten(tmp_path, text, monkeypatch):
    from bench.hyperfit import train as train_module

    out = tmp_path / "raced"
    original = train_module.one_writer

    def other_writer_first(folder):  # another run writes its metadata just before this one locks
        ckpt.write_metadata(folder, {"identity": {"method": "lora"}, "other": True})
        return original(folder)

    monkeypatch.setattr(train_module, "one_writer", other_writer_first)
    with pytest.raises(BenchError, match="another 'bench hyperfit' wrote this folder"):
        train(STORIES, text, out, Recipe(num_sequences=8, seq_len=64, epochs=1, batch_size=4), device="cpu", **QUIET)
    assert ckpt.read_metadata(out)["other"] is True
