"""GGUF models and model labels without the real model: bad files are one line, labels are names.

The real GGUF model (SmolLM2-135M-Instruct) is tested in ``tests/test_real_model.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bench.cli import main
from bench.errors import BenchError
from bench.runtime import gguf
from bench.runtime.naming import model_label


def write_gguf(path: Path, architecture: str = "frobnicator") -> Path:
    """A well-formed GGUF file of an architecture transformers does not know."""
    from gguf import GGUFWriter

    writer = GGUFWriter(str(path), architecture)
    writer.add_name("Frob 1M")
    writer.add_tensor("token_embd.weight", np.zeros((4, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))


def bench(*args: str):
    return CliRunner().invoke(main, ["run", "--decoder", "greedy", "--num-prompts", "1", *args])


def one_line_error(result, *needles: str) -> str:
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def test_an_architecture_transformers_cannot_read_is_one_line(tmp_path, data_dir):
    model = write_gguf(tmp_path / "frob.gguf")
    out = tmp_path / "runs"
    line = one_line_error(bench("--model", str(model), "--data-dir", data_dir, "--out", str(out)),
                          "GGUF", "frobnicator", "not supported")
    assert line.endswith(".")  # the whole cause, not a cut first line
    assert not out.exists()
    assert not list((tmp_path / "cache" / "gguf").glob("*")) or not any(
        (p / gguf.MARKER).exists() for p in (tmp_path / "cache" / "gguf").iterdir())


def test_a_truncated_file_is_one_line(tmp_path, data_dir, smollm2_gguf):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(Path(smollm2_gguf).read_bytes()[:100])
    one_line_error(bench("--model", str(broken), "--data-dir", data_dir, "--out", str(tmp_path / "r")),
                   "broken.gguf", "not a readable GGUF file")


def test_a_missing_file_and_a_folder_of_two_are_one_line(tmp_path, data_dir):
    one_line_error(bench("--model", str(tmp_path / "nothing.gguf"), "--data-dir", data_dir), "no such GGUF file")
    write_gguf(tmp_path / "a.gguf")
    write_gguf(tmp_path / "b.gguf")
    one_line_error(bench("--model", str(tmp_path), "--data-dir", data_dir), "2 GGUF files", "a.gguf")


def test_a_folder_without_config_names_the_cause(tmp_path, data_dir):
    (tmp_path / "empty").mkdir()
    one_line_error(bench("--model", str(tmp_path / "empty"), "--data-dir", data_dir),
                   "no config.json", "not a transformers model folder")


def test_a_folder_with_a_config_is_not_a_gguf_model(tmp_path):
    write_gguf(tmp_path / "x.gguf")
    (tmp_path / "config.json").write_text("{}")
    assert gguf.gguf_file(tmp_path) is None and gguf.resolve(str(tmp_path)) == str(tmp_path)
    assert gguf.gguf_file(tmp_path / "x.gguf") == tmp_path / "x.gguf"


def test_the_fingerprint_follows_the_content(tmp_path):
    model = write_gguf(tmp_path / "m.gguf")
    before = gguf.fingerprint(model)
    write_gguf(model, "otherarch")
    assert gguf.fingerprint(model) != before
    assert gguf.converted_dir(model).name.startswith(gguf.file_sha256(model)[:16])


def save_config(folder: Path, **fields) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", **fields}))
    return folder


@pytest.mark.parametrize("folder, fields, label", [
    ("models/stories260K", {}, "stories260K"),
    ("smollm2/hf", {}, "smollm2/hf"),
    ("exp/checkpoint-500", {"_name_or_path": "HuggingFaceTB/SmolLM2-135M"}, "SmolLM2-135M"),
    ("exp/final", {"_name_or_path": "/abs/path/model"}, "exp/final"),
])
def test_labels_are_the_models_own_names(tmp_path, folder, fields, label):
    path = save_config(tmp_path / folder, **fields)
    assert model_label(str(path)) == label


def test_label_of_a_gguf_is_its_stem_and_of_a_hub_id_its_name(tmp_path):
    (tmp_path / "hf").mkdir()
    model = write_gguf(tmp_path / "hf" / "Tiny-1M.Q8_0.gguf")
    assert model_label(str(model)) == model_label(str(model.parent)) == "Tiny-1M.Q8_0"
    assert model_label("HuggingFaceTB/SmolLM2-135M") == "SmolLM2-135M"


def test_label_argument_is_display_only():
    from bench.model_args import parse_model

    request = parse_model("some/model:label=mine,dtype=float32")
    assert request.label == "mine" and request.args == (("dtype", "float32"),)
    with pytest.raises(BenchError, match="'label' has no value"):
        parse_model("some/model:label=")


def test_display_is_not_in_the_run_identity():
    from dataclasses import replace

    from bench.specs import GenerationSpec, ModelSpec, RunSpec, SuiteSpec, parse_decoder

    spec = RunSpec(ModelSpec("m", fingerprint="abc"), parse_decoder("greedy"), SuiteSpec("wikitext", "1"),
                   GenerationSpec())
    named = replace(spec, model=replace(spec.model, display="nice"))
    assert named.run_id == spec.run_id and named.model.label == "nice" and spec.model.label == "m"
    assert RunSpec.from_dict(named.to_dict()).model.display == "nice"
