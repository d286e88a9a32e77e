"""The runtime layer: devices, dtypes, the pickle rule in every command, and the KV-cache argument."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.cli import main
from bench.errors import BenchError
from bench.runtime import cache_kwargs, resolve_device, resolve_dtype

PROMPTS = [{"id": "a", "prompt": "Once upon a time", "reference": "there was a girl."},
           {"id": "b", "prompt": "The dog ran to the park", "reference": "and found a ball."}]


def cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def assert_one_line_error(result, needle: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert needle in result.stderr, result.stderr


@pytest.mark.parametrize("device", ["gpu", "cuda0", "cuda:x", "cuda:-1", "tpu", ""])
def test_bogus_devices_are_one_line_errors(device: str) -> None:
    with pytest.raises(BenchError, match="unknown device"):
        resolve_device(device)


def test_devices_and_dtypes() -> None:
    import torch

    assert resolve_device("cpu") == "cpu" and resolve_device("CPU") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        for device in ("cuda", "cuda:0", "cuda:3"):
            with pytest.raises(BenchError, match="no CUDA device"):
                resolve_device(device)
    else:
        n = torch.cuda.device_count()
        assert resolve_device(f"cuda:{n - 1}") == f"cuda:{n - 1}"
        with pytest.raises(BenchError, match="does not exist"):
            resolve_device(f"cuda:{n}")
    assert resolve_dtype("auto", "cpu") == "float32"
    assert resolve_dtype("auto", "cuda:1") == "bfloat16"
    assert resolve_dtype("float16", "cpu") == "float16"
    with pytest.raises(BenchError, match="unknown dtype"):
        resolve_dtype("int8", "cpu")


def test_every_command_refuses_a_bogus_device(tmp_path: Path, stories260k: str) -> None:
    suite = tmp_path / "p.jsonl"
    suite.write_text("".join(json.dumps(p) + "\n" for p in PROMPTS))
    out = tmp_path / "out"
    assert_one_line_error(cli("run", "--model", stories260k, "--suite", str(suite), "--decoder", "greedy",
                              "--device", "gpu", "--out", str(out)), "'gpu'")
    assert_one_line_error(cli("hyperfit", "--model", stories260k, "--data", str(suite), "--out", str(out),
                              "--device", "cuda:x"), "'cuda:x'")
    assert not out.exists()


def test_cache_argument_follows_the_forward_signature() -> None:
    class New:
        def forward(self, input_ids=None, cache=None, use_cache=None): ...

    class Old:
        def forward(self, input_ids=None, past_key_values=None, use_cache=None): ...

    assert cache_kwargs(New(), "c") == {"cache": "c"}
    assert cache_kwargs(Old(), "c") == {"past_key_values": "c"}


@pytest.mark.parametrize("decoder", ["greedy", "contrastive"])
def test_generation_emits_no_past_key_values_warning(stories260k: str, decoder: str) -> None:
    from bench.backends.hf import HFBackend
    from bench.specs import build_decoder, parse_decoder

    backend = HFBackend(stories260k, device="cpu")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outs = backend.continue_batch(["Once upon a time", "The dog"], build_decoder(parse_decoder(decoder)),
                                      max_new_tokens=4, seeds=[1, 2])
    assert all(len(o.token_ids) > 0 for o in outs)
    messages = [str(w.message) for w in caught if issubclass(w.category, FutureWarning)]
    assert not [m for m in messages if "past_key_values" in m], messages


# --- the pickle rule, in every command that loads a model --------------------------------------------


@pytest.fixture(scope="module")
def pickle_model(tmp_path_factory: pytest.TempPathFactory, tiny_llama: str) -> str:
    """tiny_llama (stories260K's tokenizer and vocabulary) with its weights as pytorch_model.bin only."""
    import torch
    from safetensors.torch import load_file

    folder = tmp_path_factory.mktemp("pickle-only")
    for f in Path(tiny_llama).iterdir():
        if f.is_file() and f.suffix != ".safetensors":
            shutil.copy(f, folder / f.name)
    torch.save(load_file(str(Path(tiny_llama) / "model.safetensors")), folder / "pytorch_model.bin")
    return str(folder)


@pytest.fixture()
def suite(tmp_path: Path) -> Path:
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PROMPTS))
    return path


def _run(out: Path, suite: Path, *args: str):
    return cli("run", "--suite", str(suite), "--max-new-tokens", "4", "--out", str(out), *args)


def test_run_refuses_pickle_models_before_generating(tmp_path: Path, suite: Path, stories260k: str,
                                                     pickle_model: str) -> None:
    out = tmp_path / "runs"
    assert_one_line_error(_run(out, suite, "--model", pickle_model, "--decoder", "greedy"), "pickle")
    assert_one_line_error(_run(out, suite, "--model", stories260k, "--hyperfit", pickle_model,
                               "--decoder", "greedy-hyperfit"), "pickle")
    assert_one_line_error(_run(out, suite, "--model", stories260k, "--decoder", "greedy", "--score", "coherence",
                               "--scorer-model", pickle_model), "pickle")
    assert_one_line_error(_run(out, suite, "--model", stories260k, "--decoder", "greedy", "--decoder", "top-k",
                               "--judge-against", "greedy", "--judge-local", pickle_model), "pickle")
    assert not out.exists()


def test_hyperfit_analyze_score_and_judge_refuse_pickle_models(tmp_path: Path, suite: Path, stories260k: str,
                                                               pickle_model: str) -> None:
    text = tmp_path / "data.txt"
    text.write_text("Once upon a time there was a cat. " * 200)
    assert_one_line_error(cli("hyperfit", "--model", pickle_model, "--data", str(text), "--out",
                              str(tmp_path / "hf"), "--device", "cpu"), "pickle")
    assert not (tmp_path / "hf").exists()
    assert_one_line_error(cli("analyze", "--model", stories260k, "--hyperfit", pickle_model, "--suite", str(suite),
                              "--out", str(tmp_path / "report"), "--device", "cpu"), "pickle")
    assert not (tmp_path / "report").exists()
    gens = tmp_path / "gens.jsonl"
    gens.write_text("".join(json.dumps({"prompt": p["prompt"], "continuation": p["reference"]}) + "\n"
                            for p in PROMPTS))
    assert_one_line_error(cli("score", str(gens), "--score", "perplexity", "--scorer-model", pickle_model), "pickle")
    records = tmp_path / "records.jsonl"
    records.write_text("".join(json.dumps({"prompt_id": p["id"], "sample_index": 0, "prompt": p["prompt"],
                                           "continuation": p["reference"]}) + "\n" for p in PROMPTS))
    cache = tmp_path / "verdicts.jsonl"
    assert_one_line_error(cli("judge", str(records), str(records), "--judge-local", pickle_model,
                              "--cache", str(cache)), "pickle")
    assert not cache.exists() or cache.read_text() == ""


def test_pickle_models_load_when_allowed(tmp_path: Path, suite: Path, pickle_model: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_ALLOW_PICKLE", "1")
    result = _run(tmp_path / "runs", suite, "--model", pickle_model, "--decoder", "greedy")
    assert result.exit_code == 0, result.output
    assert "2 records generated" in result.output


def test_in_place_cache_layer_equals_concatenation_and_grows():
    """The in-place layer returns what DynamicLayer's concatenation would, also past its capacity,
    and keep() moves each row's chosen entry next to the prefix and drops the rest."""
    import torch
    from transformers.cache_utils import DynamicLayer

    from bench.runtime.inplace_cache import InPlaceLayer

    torch.manual_seed(0)
    plain = DynamicLayer()
    plain.update(torch.randn(2, 3, 4, 8), torch.randn(2, 3, 4, 6))
    layer = InPlaceLayer(plain, capacity=5)
    for step in range(3):  # 4 + 3 > 5: the second update grows the buffers
        keys, values = torch.randn(2, 3, 3, 8), torch.randn(2, 3, 3, 6)
        expected = plain.update(keys, values)
        got = layer.update(keys, values)
        assert all(torch.equal(g, e) for g, e in zip(got, expected))
        assert layer.get_seq_length() == plain.get_seq_length()
    n = layer.get_seq_length() - 3
    chosen = torch.tensor([n + 2, n])
    layer.keep(n, torch.arange(2), chosen)
    assert layer.keys.shape[-2] == layer.values.shape[-2] == n + 1
    assert torch.equal(layer.keys[:, :, :n], plain.keys[:, :, :n])
    assert torch.equal(layer.keys[0, :, n], plain.keys[0, :, n + 2])
    assert torch.equal(layer.values[1, :, n], plain.values[1, :, n])


def test_in_place_cache_layer_survives_reorder_and_reset():
    """transformers' own cache methods replace or drop the tensors; updates stay correct after them."""
    import torch
    from transformers.cache_utils import DynamicLayer

    from bench.runtime.inplace_cache import grow_in_place

    torch.manual_seed(1)

    class Cache:  # the one attribute grow_in_place touches
        layers = [DynamicLayer()]

    plain, cache = DynamicLayer(), Cache()
    first = torch.randn(3, 2, 4, 8), torch.randn(3, 2, 4, 8)
    plain.update(*first)
    cache.layers[0].update(*first)
    grow_in_place(cache, 16)
    layer = cache.layers[0]
    assert type(layer).__name__ == "InPlaceLayer"
    order = torch.tensor([2, 0, 1])
    plain.reorder_cache(order)
    layer.reorder_cache(order)
    step = torch.randn(3, 2, 1, 8), torch.randn(3, 2, 1, 8)
    assert all(torch.equal(g, e) for g, e in zip(layer.update(*step), plain.update(*step)))
    plain.reset()
    layer.reset()
    assert all(torch.equal(g, e) for g, e in zip(layer.update(*first), plain.update(*first)))
