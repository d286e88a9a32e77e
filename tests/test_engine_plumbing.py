"""issue 13 without an engine: vLLM settings per platform, plan-time refusals, the run summary,
token ids from a server's answer, the judge's chat-template option, and no header-only folders.
These run everywhere (with or without vLLM installed)."""

from __future__ import annotations

import importlib.util

import pytest
from click.testing import CliRunner

from bench.backends.vllm_engine import CPU_KV_CACHE_GIB, EngineSettings
from bench.errors import BenchError


def bench(*args: str):
    from bench.cli import main

    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_cpu_engines_get_a_fixed_kv_cache_and_whole_prompt_scheduling():
    cpu = EngineSettings("m", None, "float32", "cpu").engine_kwargs(context=4096)
    assert cpu["kv_cache_memory_bytes"] == int(CPU_KV_CACHE_GIB * (1 << 30)) and "gpu_memory_utilization" not in cpu
    assert cpu["enable_chunked_prefill"] is False and cpu["max_num_batched_tokens"] >= 4096
    assert cpu["enable_prefix_caching"] is False and "enable_lora" not in cpu
    fraction = EngineSettings("m", None, "float32", "cpu", memory_fraction=0.2).engine_kwargs(512)
    assert fraction["gpu_memory_utilization"] == 0.2 and "kv_cache_memory_bytes" not in fraction
    cuda = EngineSettings("m", None, "bfloat16", "cuda", max_lora_rank=16).engine_kwargs(512)
    assert cuda["gpu_memory_utilization"] == 0.9 and "enable_chunked_prefill" not in cuda
    assert cuda["enable_lora"] and cuda["max_lora_rank"] == 16


def test_vllm_resource_checks_on_cpu_and_memory_options():
    from bench.backends.vllm import check_resources

    check_resources(1, None, gpus=0)
    with pytest.raises(BenchError, match="needs 2 CUDA GPU"):
        check_resources(2, None, gpus=0)
    with pytest.raises(BenchError, match="--kv-cache-gib must be > 0"):
        check_resources(1, None, gpus=0, kv_cache_gib=0)


def test_auto_dtype_follows_the_platform_like_hf():
    from bench.backends.vllm import resolve_dtype

    assert resolve_dtype("auto", "cpu") == "float32" and resolve_dtype("auto", "cuda") == "bfloat16"
    assert resolve_dtype("bfloat16", "cpu") == "bfloat16"


def test_vllm_version_names_the_distribution_that_provides_it(shared, tmp_path):
    from bench.backends.vllm import VLLMBackend

    if importlib.util.find_spec("vllm") is None:
        out = tmp_path / "runs"
        result = bench("run", "--backend", "vllm", "--model", str(shared / "models" / "stories260K-hd32"),
                       "--decoder", "greedy", "--num-prompts", "2", "--out", str(out))
        assert result.exit_code == 2 and "needs vLLM" in result.output and not out.exists()
        assert len(result.output.strip().splitlines()) == 1
    else:
        from importlib.metadata import packages_distributions, version

        dist = packages_distributions()["vllm"][0]
        assert VLLMBackend.version() in (version(dist), f"{dist} {version(dist)}")


def test_a_failing_engine_leaves_no_header_only_folder(tmp_path, monkeypatch, data_dir):
    from bench.backends.fake import FakeBackend

    def dies(self, *args, **kwargs):
        raise BenchError("vLLM failed while generating: EngineDeadError: gone")

    monkeypatch.setattr(FakeBackend, "continue_batch", dies)
    out = tmp_path / "runs"
    result = bench("run", "--backend", "fake", "--model", "m", "--decoder", "greedy", "--num-prompts", "2",
                   "--data-dir", data_dir, "--out", str(out))
    assert result.exit_code == 2 and "EngineDeadError" in result.output
    assert not [p for p in out.glob("*") if p.is_dir()]


def test_the_summary_reports_engine_start_apart_from_generation(tmp_path, data_dir):
    result = bench("run", "--backend", "fake", "--model", "m", "--decoder", "greedy", "--num-prompts", "2",
                   "--data-dir", data_dir, "--out", str(tmp_path / "runs"))
    assert result.exit_code == 0, result.output
    assert "s of generation" in result.output and "model loading and engine start" in result.output


def test_token_ids_only_from_the_server():
    from bench.backends.openai import served_token_ids

    assert served_token_ids({"text": "x", "token_ids": [5, 1, 7]}) == [5, 1, 7]
    assert served_token_ids({"logprobs": {"tokens": ["token_id:5", "token_id:1"]}}) == [5, 1]
    assert served_token_ids({"logprobs": {"tokens": [" the", " cat"]}}) is None  # strings are not ids
    assert served_token_ids({"text": "x"}) is None


def test_records_without_ids_say_so_and_token_metrics_are_unavailable():
    from bench.leaderboard import tokens_sha
    from bench.run_scores import score_records

    records = [{"prompt_id": "a", "sample_index": 0, "continuation": "one two three", "token_ids": None},
               {"prompt_id": "b", "sample_index": 0, "continuation": "four five", "token_ids": [4, 5]}]
    scores = score_records(records)
    assert "length-tokens" not in scores["metrics"] and "rep-2" in scores["metrics"]
    assert tokens_sha(records) == "unavailable"


def test_judge_chat_template_option(tmp_path):
    from bench.judge.client import OpenAIJudge, load_chat_template, render_chat

    assert render_chat("plain", "S", "U") == "S\n\nU\n"
    template = tmp_path / "t.jinja"
    template.write_text("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"
                        "{% if add_generation_prompt %}<assistant>{% endif %}")
    assert render_chat(load_chat_template(str(template)), "S", "U") == "<system>S<user>U<assistant>"
    with pytest.raises(BenchError, match="cannot read"):
        load_chat_template(str(tmp_path / "missing.jinja"))
    judge = OpenAIJudge("http://127.0.0.1:1/v1", "m", chat_template="plain")
    assert judge.url.endswith("/v1/completions") and judge.ident != OpenAIJudge("http://127.0.0.1:1/v1", "m").ident


def test_a_bad_judge_chat_template_is_refused_at_plan_time(tmp_path, data_dir):
    bad = tmp_path / "bad.jinja"
    bad.write_text("{% for m in messages %}")
    out = tmp_path / "runs"
    result = bench("run", "--backend", "fake", "--model", "m", "--decoder", "greedy", "--decoder", "temperature",
                   "--num-prompts", "2", "--judge-against", "greedy", "--judge-url", "http://127.0.0.1:1/v1",
                   "--judge-model", "m", "--judge-chat-template", str(bad), "--data-dir", data_dir, "--out", str(out))
    assert result.exit_code == 2 and "--judge-chat-template" in result.output and not out.exists()
    assert len(result.output.strip().splitlines()) == 1
