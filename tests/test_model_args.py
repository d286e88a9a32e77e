"""Model arguments (``--model NAME:key=value``) and chat templates: parsing, identity, loading, refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.errors import BenchError
from bench.model_args import ChatTemplate, parse_model
from bench.specs import DecoderSpec, GenerationSpec, ModelSpec, RunSpec, SuiteSpec

TEMPLATE = ("{% for m in messages %}{% if m['role'] == 'system' %}[SYS] {{ m['content'] }}\n"
            "{% else %}[USER] {{ m['content'] }}\n{% endif %}{% endfor %}"
            "{% if add_generation_prompt %}[STORY]{% endif %}")


def _bench(args: list[str]):
    from bench.cli import main

    return CliRunner().invoke(main, args)


@pytest.fixture()
def prompts(tmp_path: Path) -> str:
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps({"id": f"p{i}", "prompt": t}) + "\n"
                            for i, t in enumerate(["Once upon a time", "The little dog", "Lily saw a big"])))
    return str(path)


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory: pytest.TempPathFactory, stories260k: str) -> str:
    """stories260K with a chat template in its tokenizer config."""
    path = tmp_path_factory.mktemp("chat") / "stories-chat"
    shutil.copytree(stories260k, path)
    config = json.loads((path / "tokenizer_config.json").read_text())
    config["chat_template"] = TEMPLATE
    (path / "tokenizer_config.json").write_text(json.dumps(config))
    return str(path)


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------
def test_parse_model_arguments():
    assert parse_model("gpt2").args == () and parse_model("gpt2").name == "gpt2"
    assert parse_model("./ckpt:v2").name == "./ckpt:v2"  # not key=value: part of the path
    request = parse_model("org/m:dtype=bfloat16,attn_implementation=eager,revision=abc")
    assert request.name == "org/m"
    assert request.args == (("attn_implementation", "eager"), ("dtype", "bfloat16"), ("revision", "abc"))


@pytest.mark.parametrize("text, needle", [
    ("m:dtpye=float32", "unknown model argument 'dtpye'; did you mean 'dtype'?"),
    ("m:dtype=float32,dtype=bfloat16", "given twice"),
    ("m:dtype=float8", "dtype must be one of"),
    ("m:attn_implementation=fast", "attn_implementation must be one of"),
    ("m:quantization=3bit", "quantization must be one of"),
    ("m:revision=", "has no value"),
])
def test_bad_model_arguments_are_one_line(text, needle):
    with pytest.raises(BenchError, match=needle) as caught:
        parse_model(text)
    assert "\n" not in str(caught.value)


def test_a_setting_whose_library_is_missing_is_refused(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else real(name, *a))
    with pytest.raises(BenchError, match="needs the 'bitsandbytes' package"):
        parse_model("m:quantization=4bit")


# ---------------------------------------------------------------------------------------------
# Identity
# ---------------------------------------------------------------------------------------------
def _spec(model: ModelSpec) -> RunSpec:
    return RunSpec(model, DecoderSpec("greedy"), SuiteSpec("wikitext", "1"), GenerationSpec())


def test_unset_model_arguments_leave_the_identity_as_it_was():
    plain = _spec(ModelSpec("m", None, "abc"))
    assert not {"args", "chat_template", "system_prompt"} & set(plain.identity()["model"])
    ids = {plain.run_id}
    for changed in (ModelSpec("m", None, "abc", args=(("attn_implementation", "eager"),)),
                    ModelSpec("m", None, "abc", chat_template=True),
                    ModelSpec("m", None, "abc", chat_template=True, system_prompt="Be brief.")):
        ids.add(_spec(changed).run_id)
        assert RunSpec.from_dict(_spec(changed).to_dict()) == _spec(changed)
    assert len(ids) == 4


# ---------------------------------------------------------------------------------------------
# End to end
# ---------------------------------------------------------------------------------------------
def _records(out: Path) -> dict[str, list[dict]]:
    runs = {}
    for header in out.glob("*/header.json"):
        spec = json.loads(header.read_text())["spec"]
        key = spec["model"]["name"].split("/")[-1] + json.dumps(spec["model"].get("args", []))
        runs[key] = [json.loads(x) for x in (header.parent / "generations.jsonl").read_text().splitlines()]
    return runs


def test_model_arguments_load_and_label_their_runs(stories260k, prompts, tmp_path):
    out = tmp_path / "runs"
    result = _bench(["run", "--model", stories260k, "--model", f"{stories260k}:attn_implementation=eager",
                     "--model", f"{stories260k}:dtype=bfloat16", "--suite", prompts, "--decoder", "greedy",
                     "--max-new-tokens", "16", "--device", "cpu", "--out", str(out)])
    assert result.exit_code == 0, result.output
    runs = _records(out)
    assert len(runs) == 3
    plain, eager = runs["stories260K[]"], runs['stories260K[["attn_implementation", "eager"]]']
    # Two attention kernels, the same float32 greedy text; separate runs.
    assert [r["token_ids"] for r in plain] == [r["token_ids"] for r in eager]
    headers = [json.loads(h.read_text())["spec"] for h in out.glob("*/header.json")]
    assert sorted(h["dtype"] for h in headers) == ["bfloat16", "float32", "float32"]
    board = (out / "leaderboard.csv").read_text()
    assert "stories260K:attn_implementation=eager" in board and "stories260K:dtype=bfloat16" in board


def test_model_arguments_a_backend_cannot_apply_are_refused(prompts, tmp_path):
    result = _bench(["run", "--backend", "fake", "--model", "m:attn_implementation=eager", "--suite", prompts,
                     "--decoder", "greedy", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "does not apply to --backend fake" in result.output
    assert not (tmp_path / "o").exists()


def test_chat_template_is_refused_without_one(stories260k, prompts, tmp_path):
    result = _bench(["run", "--model", stories260k, "--suite", prompts, "--decoder", "greedy", "--chat-template",
                     "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "has no chat template" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


def test_chat_template_renders_each_prompt(chat_model, prompts, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "runs"
    result = _bench(["run", "--model", chat_model, "--suite", prompts, "--decoder", "greedy", "--max-new-tokens", "12",
                     "--system-prompt", "Be kind.", "--device", "cpu", "--out", str(out)])
    assert result.exit_code == 0, result.output
    (records,) = _records(out).values()
    header = json.loads(next(out.glob("*/header.json")).read_text())["spec"]["model"]
    assert header["chat_template"] is True and header["system_prompt"] == "Be kind."
    tok = AutoTokenizer.from_pretrained(chat_model)
    model = AutoModelForCausalLM.from_pretrained(chat_model).eval()
    for r in records:
        ids = ChatTemplate("Be kind.").ids(tok, r["prompt"])
        assert tok.decode(ids).startswith("[SYS] Be kind.") and "[USER] " + r["prompt"] in tok.decode(ids)
        want = model.generate(torch.tensor([ids]), max_new_tokens=12, do_sample=False,
                              pad_token_id=tok.eos_token_id)[0, len(ids):].tolist()
        eos = tok.eos_token_id
        assert r["token_ids"] == (want[: want.index(eos)] if eos in want else want)


def test_the_loaded_model_has_its_arguments(stories260k):
    import torch

    from bench.backends import load_backend
    from bench.planning import RunOptions

    options = RunOptions(models=(stories260k,), decoders=("greedy",), suites=("wikitext",), device="cpu")
    eager = load_backend(options, ModelSpec(stories260k, args=(("attn_implementation", "eager"),)), None)
    assert eager.model.config._attn_implementation == "eager"
    sdpa = load_backend(options, ModelSpec(stories260k, args=(("attn_implementation", "sdpa"),)), None)
    assert sdpa.model.config._attn_implementation == "sdpa"
    half = load_backend(options, ModelSpec(stories260k, args=(("dtype", "bfloat16"),)), None)
    assert half.model.dtype == torch.bfloat16 and half.dtype == "bfloat16"
