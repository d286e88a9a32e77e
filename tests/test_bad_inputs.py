"""A corpus of bad inputs across every subcommand (issue 15).

Each case must exit 2 with exactly one line on stderr, starting with ``error:``, no traceback, and
leave the workspace (the run store, every input file, every output place) byte for byte as it was.
The cases run in-process with click's CliRunner (the whole corpus takes well under a minute);
a few run as real processes. ``BENCH_CORPUS_LOG=FILE`` appends one line per case (name, handled)
so the count tried and handled can be reported.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.cli import main

PROMPTS = [{"id": f"p{i}", "prompt": f"Once upon a time there was a cat number {i}",
            "reference": "and it liked to play in the sun all day long."} for i in range(5)]

# Placeholders: {ws} workspace, {store} the run store, {run} its one run folder, {model} stories260K,
# {F} a regular file, {D} an empty folder, {P} a good prompt file, {G} a generations JSONL,
# {CSV} the store's leaderboard CSV, {Pk} a pickle-only model folder, {Same} a copy of {model}.
RUN = ["run", "--model", "{model}", "--suite", "{P}", "--decoder", "greedy", "--max-new-tokens", "4", "--out", "{store}"]
JUDGE = ["judge", "{G}", "{G2}", "--judge-url", "http://127.0.0.1:9/v1", "--judge-model", "m", "--cache", "{ws}/c.jsonl"]
HYPER = ["hyperfit", "--model", "{model}", "--data", "{ws}/train.txt", "--out", "{ws}/hf-out", "--num-sequences", "2",
         "--seq-len", "8", "--epochs", "1", "--no-progress"]
HF_STATE = ["hyperfit", "--model", "{model}", "--data", "{ws}/train.txt", "--num-sequences", "2", "--seq-len", "8",
            "--epochs", "2", "--no-progress", "--out"]
ANALYZE = ["analyze", "--model", "{model}", "--hyperfit", "{ws}/missing-ckpt", "--suite", "{P}", "--out", "{ws}/an"]


def _bad_suites() -> dict[str, bytes]:
    """Malformed prompt files: name -> bytes."""
    line = lambda obj: (json.dumps(obj) + "\n").encode()  # noqa: E731
    return {
        "empty.jsonl": b"", "blank.jsonl": b"\n\n  \n", "notjson.jsonl": b"{prompt: x}\n",
        "array.jsonl": line([1, 2]), "string.jsonl": line("hello"), "number.jsonl": b"3\n",
        "noprompt.jsonl": line({"id": "a"}), "emptyprompt.jsonl": line({"prompt": "   "}),
        "numprompt.jsonl": line({"prompt": 3}), "nullprompt.jsonl": line({"prompt": None}),
        "listprompt.jsonl": line({"prompt": ["a"]}), "dupid.jsonl": line({"id": "a", "prompt": "x"}) * 2,
        "boolid.jsonl": line({"id": True, "prompt": "x"}), "listid.jsonl": line({"id": [1], "prompt": "x"}),
        "emptyid.jsonl": line({"id": " ", "prompt": "x"}), "numref.jsonl": line({"prompt": "x", "reference": 5}),
        "latin1.jsonl": '{"prompt": "caf\xe9"}\n'.encode("latin-1"), "random.jsonl": bytes(range(256)) * 4,
        "surrogate.jsonl": b'{"prompt": "Once \\ud800"}\n', "surrogate-ref.jsonl": b'{"prompt": "x", "reference": "\\udfff"}\n',
        "surrogate-id.jsonl": b'{"id": "\\ud800", "prompt": "x"}\n', "truncated.jsonl": b'{"prompt": "Once upon',
        "second-bad.jsonl": line({"prompt": "ok"}) + b"{bad\n", "nul.jsonl": b"\x00\x00\x00\n",
        "long.jsonl": line({"prompt": "Once " * 2000}),
        # issue 24, part 5: what json.loads itself cannot read
        "hugeint.jsonl": b'{"id": ' + b"9" * 5000 + b', "prompt": "x", "continuation": "y", "text": "z"}\n',
        "deep.jsonl": b'{"prompt": "x", "continuation": "y", "text": "z", "a": ' + b"[" * 100000 + b"]" * 100000 + b"}\n",
    }


HOSTILE_MODELS = ("vocab-absurd", "hidden-absurd", "layers-absurd", "truncated-weights", "header-2-60",
                  "header-not-json", "empty-weights", "config-deep", "config-huge-int", "config-a-list")
HOSTILE_STATES = ("progress-invalid", "progress-hostile", "progress-huge-int", "weights-truncated", "pickle",
                  "trainer-json-list", "trainer-tensors-missing", "weights-of-another-run")


CASES: list[tuple[str, list[str]]] = [
    # --- bench run: numbers ---
    ("run-num-prompts-0", RUN + ["--num-prompts", "0"]),
    ("run-num-prompts-neg", RUN + ["--num-prompts", "-3"]),
    ("run-num-prompts-text", RUN + ["--num-prompts", "many"]),
    ("run-max-new-tokens-0", RUN + ["--max-new-tokens", "0"]),
    ("run-max-new-tokens-neg", RUN + ["--max-new-tokens", "-5"]),
    ("run-max-new-tokens-float", RUN + ["--max-new-tokens", "2.5"]),
    ("run-max-new-tokens-huge", RUN + ["--max-new-tokens", "100000000"]),
    ("run-samples-0", RUN + ["--samples-per-prompt", "0"]),
    ("run-samples-neg", RUN + ["--samples-per-prompt", "-1"]),
    ("run-batch-0", RUN + ["--batch-size", "0"]),
    ("run-batch-neg", RUN + ["--batch-size", "-8"]),
    ("run-seed-text", RUN + ["--seed", "abc"]),
    ("run-tp-0", RUN + ["--tensor-parallel-size", "0"]),
    ("run-tp-neg", RUN + ["--tensor-parallel-size", "-2"]),
    ("run-tp-2-on-hf", RUN + ["--tensor-parallel-size", "2"]),
    ("run-gmu-nan", RUN + ["--gpu-memory-utilization", "nan"]),
    ("run-gmu-inf", RUN + ["--gpu-memory-utilization", "inf"]),
    ("run-gmu-0", RUN + ["--gpu-memory-utilization", "0"]),
    ("run-gmu-1.5", RUN + ["--gpu-memory-utilization", "1.5"]),
    ("run-gmu-on-hf", RUN + ["--gpu-memory-utilization", "0.5"]),
    # --- bench run: devices, dtypes, backends, executors ---
    ("run-device-bogus", RUN + ["--device", "bogus"]),
    ("run-device-cuda-x", RUN + ["--device", "cuda:x"]),
    ("run-device-empty", RUN + ["--device", ""]),
    ("run-device-cuda", RUN + ["--device", "cuda"]),
    ("run-device-cuda-7", RUN + ["--device", "cuda:7"]),
    ("run-dtype-bogus", RUN + ["--dtype", "float8"]),
    ("run-backend-bogus", RUN + ["--backend", "tgi"]),
    ("run-openai-no-url", RUN + ["--backend", "openai"]),
    ("run-openai-ftp", RUN + ["--backend", "openai", "--base-url", "ftp://host/v1"]),
    ("run-openai-closed-port", RUN + ["--backend", "openai", "--base-url", "http://127.0.0.1:9/v1"]),
    ("run-openai-creds-bad-scheme", RUN + ["--backend", "openai", "--base-url", "htp://u:sk-secret123456@h/v1"]),
    ("run-executor-bogus", RUN + ["--executor", "slurm"]),
    # --- bench run: decoders ---
    ("run-decoder-unknown", RUN + ["--decoder", "nucleus"]),  # "beam" is a decoder now
    ("run-decoder-empty", RUN + ["--decoder", ""]),
    ("run-decoder-colon", RUN + ["--decoder", ":"]),
    ("run-decoder-unknown-arg", RUN + ["--decoder", "greedy:x=1"]),
    ("run-decoder-no-value", RUN + ["--decoder", "temperature:t"]),
    ("run-decoder-no-name", RUN + ["--decoder", "temperature:=1"]),
    ("run-temperature-0", RUN + ["--decoder", "temperature:t=0"]),
    ("run-temperature-neg", RUN + ["--decoder", "temperature:t=-1"]),
    ("run-temperature-nan", RUN + ["--decoder", "temperature:t=nan"]),
    ("run-temperature-inf", RUN + ["--decoder", "temperature:t=inf"]),
    ("run-temperature-text", RUN + ["--decoder", "temperature:t=hot"]),
    ("run-temperature-twice", RUN + ["--decoder", "temperature:t=1,t=2"]),
    ("run-top-p-0", RUN + ["--decoder", "top-p:p=0"]),
    ("run-top-p-1.5", RUN + ["--decoder", "top-p:p=1.5"]),
    ("run-top-p-nan", RUN + ["--decoder", "top-p:p=nan"]),
    ("run-top-p-t-0", RUN + ["--decoder", "top-p:t=0"]),
    ("run-top-k-0", RUN + ["--decoder", "top-k:k=0"]),
    ("run-top-k-neg", RUN + ["--decoder", "top-k:k=-3"]),
    ("run-top-k-float", RUN + ["--decoder", "top-k:k=1.5"]),
    ("run-contrastive-k-0", RUN + ["--decoder", "contrastive:k=0"]),
    ("run-contrastive-alpha-2", RUN + ["--decoder", "contrastive:alpha=2"]),
    ("run-contrastive-alpha-neg", RUN + ["--decoder", "contrastive:alpha=-0.1"]),
    ("run-typical-tau-1", RUN + ["--decoder", "typical:tau=1"]),
    ("run-eta-0", RUN + ["--decoder", "eta:eta=0"]),
    ("run-epsilon-nan", RUN + ["--decoder", "epsilon:eps=nan"]),
    ("run-min-p-0", RUN + ["--decoder", "min-p:p=0"]),
    ("run-beam-n-0", RUN + ["--decoder", "beam:n=0"]),
    ("run-dola-layers-word", RUN + ["--decoder", "dola:layers=middle"]),
    ("run-dola-layer-too-deep", RUN + ["--decoder", "dola:layers=2+9"]),
    ("run-greedy-hyperfit-no-ckpt", RUN + ["--decoder", "greedy-hyperfit"]),
    ("run-static-reweight-no-ckpt", RUN + ["--decoder", "static-reweight"]),
    ("run-entropy-matched-no-target", RUN + ["--decoder", "entropy-matched"]),
    ("run-entropy-matched-bad-mode", RUN + ["--decoder", "entropy-matched:target=2.0,mode=sometimes"]),
    ("run-entropy-matched-neg-target", RUN + ["--decoder", "entropy-matched:target=-1"]),
    ("run-hyperfit-missing", RUN + ["--decoder", "greedy-hyperfit", "--hyperfit", "{ws}/no-ckpt"]),
    ("run-hyperfit-is-file", RUN + ["--decoder", "greedy-hyperfit", "--hyperfit", "{F}"]),
    # --- bench run: models ---
    ("run-model-missing", ["run", "--model", "{ws}/no-model", "--suite", "{P}", "--decoder", "greedy", "--out", "{store}"]),
    ("run-model-empty-dir", ["run", "--model", "{D}", "--suite", "{P}", "--decoder", "greedy", "--out", "{store}"]),
    ("run-model-file", ["run", "--model", "{F}", "--suite", "{P}", "--decoder", "greedy", "--out", "{store}"]),
    ("run-model-pickle-only", ["run", "--model", "{Pk}", "--suite", "{P}", "--decoder", "greedy", "--out", "{store}"]),
    ("run-good-then-pickle-only", RUN + ["--model", "{Pk}", "--num-prompts", "3"]),
    ("run-no-model", ["run", "--suite", "{P}", "--decoder", "greedy", "--out", "{store}"]),
    # --- bench run: suites ---
    ("run-suite-unknown", RUN[:3] + ["--suite", "nosuchsuite", "--decoder", "greedy", "--out", "{store}"]),
    ("run-suite-missing-file", RUN[:3] + ["--suite", "{ws}/none.jsonl", "--decoder", "greedy", "--out", "{store}"]),
    ("run-suite-dir", RUN[:3] + ["--suite", "{ws}/dir.jsonl", "--decoder", "greedy", "--out", "{store}"]),
    ("run-suite-path-two-suites", RUN + ["--suite", "wikitext", "--suite", "cd-wikitext", "--suite-path", "{F}"]),
    ("run-suite-path-missing", RUN[:3] + ["--suite", "cd-wikitext", "--suite-path", "{ws}/none.json", "--out", "{store}"]),
    ("run-suite-path-garbage", RUN[:3] + ["--suite", "cd-wikitext", "--suite-path", "{ws}/random.bin", "--out", "{store}"]),
    ("run-data-dir-missing", RUN[:3] + ["--suite", "wikitext", "--data-dir", "{ws}/nodata", "--out", "{store}"]),
    *[(f"run-suite-{name[:-6]}", RUN[:3] + ["--suite", "{ws}/bad/" + name, "--decoder", "greedy", "--out", "{store}"])
      for name in _bad_suites()],
    # --- bench run: outputs ---
    ("run-out-file", RUN[:-1] + ["{F}"]),
    ("run-out-under-file", RUN[:-1] + ["{F}/sub"]),
    ("run-out-deep-under-file", RUN[:-1] + ["{F}/a/b/c"]),
    # --- bench run: scoring and judging ---
    ("run-score-unknown", RUN + ["--score", "bleu"]),
    ("run-score-mauve-few-refs", RUN + ["--score", "mauve", "--featurizer", "{model}"]),
    ("run-score-mauve-missing-featurizer", RUN + ["--score", "mauve", "--featurizer", "{ws}/no-feat"]),
    ("run-score-perplexity-missing-model", RUN + ["--score", "perplexity", "--scorer-model", "{ws}/no-lm"]),
    ("run-mauve-length-0", RUN + ["--mauve-length", "0"]),
    ("run-featurizer-dtype-bogus", RUN + ["--featurizer-dtype", "int8"]),
    ("run-judge-against-unknown", RUN + ["--judge-against", "beam"]),
    ("run-judge-against-absent", RUN + ["--judge-against", "top-k", "--judge-local", "{model}"]),
    ("run-judge-against-no-judge", RUN + ["--decoder", "top-k", "--judge-against", "greedy"]),
    ("run-judge-against-missing-local", RUN + ["--decoder", "top-k", "--judge-against", "greedy", "--judge-local", "{ws}/nj"]),
    ("run-unknown-option", RUN + ["--colour", "red"]),
    # --- bench score ---
    ("score-missing", ["score", "{ws}/none.jsonl"]),
    ("score-dir", ["score", "{D}"]),
    ("score-empty", ["score", "{ws}/bad/empty.jsonl"]),
    ("score-random", ["score", "{ws}/random.bin"]),
    ("score-no-continuation", ["score", "{P}"]),
    ("score-array-line", ["score", "{ws}/bad/array.jsonl"]),
    ("score-unknown-metric", ["score", "{G}", "--score", "bleu"]),
    ("score-mauve-few", ["score", "{G}", "--score", "mauve", "--featurizer", "{model}"]),
    ("score-mauve-length-0", ["score", "{G}", "--mauve-length", "0"]),
    ("score-featurizer-dtype", ["score", "{G}", "--featurizer-dtype", "int4"]),
    ("score-device-bogus", ["score", "{G}", "--score", "perplexity", "--scorer-model", "{model}", "--device", "gpu9"]),
    ("score-perplexity-missing", ["score", "{G}", "--score", "perplexity", "--scorer-model", "{ws}/no-lm"]),
    # --- bench leaderboard ---
    ("lb-no-inputs", ["leaderboard", "--out", "{ws}/lb/x"]),
    ("lb-missing-input", ["leaderboard", "{ws}/nothing", "--out", "{ws}/lb/x"]),
    ("lb-empty-dir", ["leaderboard", "{D}", "--out", "{ws}/lb/x"]),
    ("lb-file-input", ["leaderboard", "{F}", "--out", "{ws}/lb/x"]),
    ("lb-out-under-file", ["leaderboard", "{store}", "--out", "{F}/sub/x"]),
    ("lb-out-dir-only", ["leaderboard", "{store}", "--out", "{ws}/lb/"]),
    ("lb-out-dot", ["leaderboard", "{store}", "--out", "."]),
    ("lb-out-is-dir", ["leaderboard", "{store}", "--out", "{ws}/outdir"]),
    ("lb-truncated-header", ["leaderboard", "{ws}/trunc", "--out", "{ws}/lb/x"]),
    ("lb-garbage-header", ["leaderboard", "{ws}/garbage", "--out", "{ws}/lb/x"]),
    ("lb-incomplete", ["leaderboard", "{ws}/incomplete", "--out", "{ws}/lb/x"]),
    ("lb-corrupt-records", ["leaderboard", "{ws}/corrupt", "--out", "{ws}/lb/x"]),
    ("lb-missing-out", ["leaderboard", "{store}"]),
    # --- bench check ---
    ("check-baseline-missing", ["check", "{store}", "--baseline", "{ws}/none.csv"]),
    ("check-baseline-random", ["check", "{store}", "--baseline", "{ws}/random.bin"]),
    ("check-baseline-dir", ["check", "{store}", "--baseline", "{D}"]),
    ("check-baseline-empty", ["check", "{store}", "--baseline", "{ws}/bad/empty.jsonl"]),
    ("check-baseline-not-leaderboard", ["check", "{store}", "--baseline", "{ws}/other.csv"]),
    ("check-baseline-header-only", ["check", "{store}", "--baseline", "{ws}/header-only.csv"]),
    ("check-baseline-non-numeric", ["check", "{store}", "--baseline", "{ws}/nonnum.csv"]),
    ("check-baseline-cut-row", ["check", "{store}", "--baseline", "{ws}/cut.csv"]),
    ("check-baseline-unknown-metric", ["check", "{store}", "--baseline", "{ws}/unknown-metric.csv"]),
    ("check-target-missing", ["check", "{ws}/nothing", "--baseline", "{CSV}"]),
    ("check-target-truncated", ["check", "{ws}/trunc", "--baseline", "{CSV}"]),
    ("check-target-incomplete", ["check", "{ws}/incomplete", "--baseline", "{CSV}"]),
    ("check-tolerance-no-eq", ["check", "{store}", "--baseline", "{CSV}", "--tolerance", "rep-2"]),
    ("check-tolerance-text", ["check", "{store}", "--baseline", "{CSV}", "--tolerance", "rep-2=lots"]),
    ("check-tolerance-neg", ["check", "{store}", "--baseline", "{CSV}", "--tolerance", "rep-2=-1"]),
    ("check-tolerance-nan", ["check", "{store}", "--baseline", "{CSV}", "--tolerance", "rep-2=nan"]),
    ("check-tolerance-unknown", ["check", "{store}", "--baseline", "{CSV}", "--tolerance", "bleu=1"]),
    ("check-no-baseline", ["check", "{store}"]),
    # --- bench compare ---
    ("compare-missing", ["compare", "{ws}/nothing", "{run}"]),
    ("compare-one-run", ["compare", "{run}"]),
    ("compare-judged-two-runs", ["compare", "{run}", "{run}", "--judged", "{F}"]),
    ("compare-judged-not-json", ["compare", "{run}", "{run}", "{run}", "--judged", "{F}", "--n-boot", "20"]),
    ("compare-judged-missing", ["compare", "{run}", "{run}", "{run}", "--judged", "{ws}/none.json", "--n-boot", "20"]),
    ("compare-three-unknown-metric", ["compare", "{run}", "{run}", "{run}", "--metric", "bleu", "--n-boot", "20"]),
    ("compare-store-many", ["compare", "{ws}/two", "{run}"]),
    ("compare-csv-no-row", ["compare", "{CSV}#nope", "{run}"]),
    ("compare-csv-missing", ["compare", "{ws}/none.csv#x", "{run}"]),
    ("compare-truncated", ["compare", "{ws}/trunc", "{run}"]),
    ("compare-n-boot-0", ["compare", "{run}", "{run}", "--n-boot", "0"]),
    ("compare-n-boot-neg", ["compare", "{run}", "{run}", "--n-boot", "-5"]),
    ("compare-seed-neg", ["compare", "{run}", "{run}", "--seed", "-1"]),
    ("compare-csv-under-file", ["compare", "{run}", "{run}", "--csv", "{F}/x.csv"]),
    ("compare-md-under-file", ["compare", "{run}", "{run}", "--markdown", "{F}/x.md"]),
    ("compare-csv-is-dir", ["compare", "{run}", "{run}", "--csv", "{D}"]),
    # --- bench judge ---
    ("judge-missing-a", ["judge", "{ws}/none", "{G}", "--judge-local", "{model}"]),
    ("judge-empty-file", ["judge", "{ws}/bad/empty.jsonl", "{G}", "--judge-local", "{model}"]),
    ("judge-corrupt", ["judge", "{ws}/corrupt.jsonl", "{G}", "--judge-local", "{model}"]),
    ("judge-no-judge", ["judge", "{G}", "{G2}", "--cache", "{ws}/c.jsonl"]),
    ("judge-two-judges", JUDGE + ["--judge-local", "{model}"]),
    ("judge-url-no-model", ["judge", "{G}", "{G2}", "--judge-url", "http://127.0.0.1:9/v1", "--cache", "{ws}/c.jsonl"]),
    ("judge-url-ftp", JUDGE[:3] + ["--judge-url", "ftp://u:sk-secret123456@h/v1", "--judge-model", "m"]),
    ("judge-timeout-neg", JUDGE + ["--timeout", "-1"]),
    ("judge-timeout-nan", JUDGE + ["--timeout", "nan"]),
    ("judge-timeout-0", JUDGE + ["--timeout", "0"]),
    ("judge-timeout-inf", JUDGE + ["--timeout", "inf"]),
    ("judge-max-tokens-neg", JUDGE + ["--max-tokens", "-5"]),
    ("judge-max-tokens-0", JUDGE + ["--max-tokens", "0"]),
    ("judge-concurrency-0", JUDGE + ["--concurrency", "0"]),
    ("judge-max-retries-neg", JUDGE + ["--max-retries", "-1"]),
    ("judge-cache-dir", JUDGE + ["--cache", "{D}"]),
    ("judge-cache-under-file", JUDGE + ["--cache", "{F}/c.jsonl"]),
    ("judge-out-under-file", JUDGE + ["--out", "{F}/o.json"]),
    ("judge-out-dir", JUDGE + ["--out", "{D}"]),
    ("judge-template-missing", JUDGE + ["--template", "{ws}/none.toml"]),
    ("judge-template-garbage", JUDGE + ["--template", "{ws}/random.bin"]),
    ("judge-local-missing", ["judge", "{G}", "{G2}", "--judge-local", "{ws}/no-judge", "--cache", "{ws}/c.jsonl"]),
    ("judge-local-device-bogus", ["judge", "{G}", "{G2}", "--judge-local", "{model}", "--device", "tpu",
                                  "--cache", "{ws}/c.jsonl"]),
    ("judge-no-shared-prompts", ["judge", "{G}", "{ws}/other-gens.jsonl", "--judge-local", "{model}",
                                 "--cache", "{ws}/c.jsonl"]),
    # --- bench hyperfit ---
    ("hyperfit-out-file", HYPER[:5] + ["--out", "{F}"]),
    ("hyperfit-out-under-file", HYPER[:5] + ["--out", "{F}/sub"]),
    ("hyperfit-model-missing", ["hyperfit", "--model", "{ws}/no-model", "--data", "{ws}/train.txt", "--out", "{ws}/hf-out"]),
    ("hyperfit-data-missing", ["hyperfit", "--model", "{model}", "--data", "{ws}/no-data.txt", "--out", "{ws}/hf-out"]),
    ("hyperfit-data-empty", ["hyperfit", "--model", "{model}", "--data", "{ws}/empty.txt", "--out", "{ws}/hf-out"]),
    ("hyperfit-num-sequences-0", HYPER + ["--num-sequences", "0"]),
    ("hyperfit-seq-len-0", HYPER + ["--seq-len", "0"]),
    ("hyperfit-epochs-0", HYPER + ["--epochs", "0"]),
    ("hyperfit-lr-neg", HYPER + ["--lr", "-1"]),
    ("hyperfit-lr-nan", HYPER + ["--lr", "nan"]),
    ("hyperfit-weight-decay-neg", HYPER + ["--weight-decay", "-0.1"]),
    ("hyperfit-batch-0", HYPER + ["--batch-size", "0"]),
    ("hyperfit-lora-r-0", HYPER + ["--method", "lora", "--lora-r", "0"]),
    ("hyperfit-lora-dropout-2", HYPER + ["--method", "lora", "--lora-dropout", "2"]),
    ("hyperfit-late-layers-0", HYPER + ["--method", "late-lora", "--late-layers", "0"]),
    ("hyperfit-threads-0", HYPER + ["--threads", "0"]),
    ("hyperfit-method-bogus", HYPER + ["--method", "qlora"]),
    ("hyperfit-device-bogus", HYPER + ["--device", "tpu"]),
    ("hyperfit-resume-nothing", HYPER + ["--resume"]),
    ("hyperfit-save-every-0", HYPER + ["--save-every", "0"]),
    ("run-hyperfit-every-without-epochs", RUN + ["--hyperfit", "{Same}@every", "--decoder", "greedy-hyperfit"]),
    ("run-hyperfit-at-bogus", RUN + ["--hyperfit", "{Same}@epoch=x", "--decoder", "greedy-hyperfit"]),
    # --- bench analyze ---
    ("analyze-out-file", ANALYZE[:-1] + ["{F}"]),
    ("analyze-out-under-file", ANALYZE[:-1] + ["{F}/an"]),
    ("analyze-hyperfit-missing", ANALYZE),
    ("analyze-hyperfit-is-base", ANALYZE[:3] + ["--hyperfit", "{Same}", "--suite", "{P}", "--out", "{ws}/an",
                                                 "--num-prompts", "2", "--max-new-tokens", "4", "--n-boot", "10"]),
    ("analyze-num-prompts-0", ANALYZE + ["--num-prompts", "0"]),
    ("analyze-max-new-tokens-0", ANALYZE + ["--max-new-tokens", "0"]),
    ("analyze-batch-0", ANALYZE + ["--batch-size", "0"]),
    ("analyze-top-k-0", ANALYZE + ["--top-k", "0"]),
    ("analyze-tail-rank-0", ANALYZE + ["--tail-rank", "0"]),
    ("analyze-n-boot-0", ANALYZE + ["--n-boot", "0"]),
    ("analyze-alphas-text", ANALYZE + ["--alphas", "a,b"]),
    ("analyze-alphas-empty", ANALYZE + ["--alphas", ""]),
    ("analyze-alphas-neg", ANALYZE + ["--alphas", "-1"]),
    ("analyze-calib-0", ANALYZE + ["--calib-prompts", "0"]),
    ("analyze-device-bogus", ANALYZE + ["--device", "bogus"]),
    ("analyze-suite-missing", ANALYZE[:5] + ["--suite", "{ws}/none.jsonl", "--out", "{ws}/an"]),
    # --- issue 24, part 5: files no parser should trust ---
    ("score-huge-int", ["score", "{ws}/bad/hugeint.jsonl"]),
    ("score-deep", ["score", "{ws}/bad/deep.jsonl"]),
    ("run-config-deep-toml", RUN + ["--config", "{ws}/deep.toml"]),
    ("run-config-huge-int-toml", RUN + ["--config", "{ws}/hugeint.toml"]),
    ("run-config-zero-tokens", RUN[:-6] + ["--config", "{ws}/zero-tokens.toml", "--out", "{store}"]),
    ("run-config-beam-past-vocab", RUN[:5] + ["--config", "{ws}/beam-600.toml", "--out", "{store}"]),
    ("judge-template-deep-toml", JUDGE + ["--template", "{ws}/deep.toml"]),
    ("hyperfit-data-huge-int", HYPER[:3] + ["--data", "{ws}/bad/hugeint.jsonl"] + HYPER[5:]),
    ("hyperfit-data-deep", HYPER[:3] + ["--data", "{ws}/bad/deep.jsonl"] + HYPER[5:]),
    # --- hostile model folders ---
    *[(f"run-model-{name}", ["run", "--model", "{ws}/hostile/" + name] + RUN[3:]) for name in HOSTILE_MODELS],
    ("run-model-chat-template-blocked", ["run", "--model", "{ws}/hostile/blocked-template"] + RUN[3:]
     + ["--chat-template"]),
    ("judge-local-chat-template-blocked", ["judge", "{G}", "{G2}", "--judge-local", "{ws}/hostile/blocked-template",
                                           "--cache", "{ws}/c.jsonl"]),
    ("judge-local-truncated", ["judge", "{G}", "{G2}", "--judge-local", "{ws}/hostile/truncated-weights",
                               "--cache", "{ws}/c.jsonl"]),
    ("hyperfit-model-truncated", ["hyperfit", "--model", "{ws}/hostile/truncated-weights"] + HYPER[3:]),
    ("hyperfit-model-vocab-absurd", ["hyperfit", "--model", "{ws}/hostile/vocab-absurd"] + HYPER[3:]),
    ("run-amateur-truncated", RUN + ["--decoder", "contrastive-decoding", "--amateur", "{ws}/hostile/truncated-weights"]),
    # --- decoder values refused at plan time, before loading ---
    ("run-beam-n-past-vocab", RUN + ["--decoder", "beam:n=600"]),
    ("run-beam-n-huge", RUN + ["--decoder", "beam:n=" + "9" * 30]),
    ("run-beam-n-over-bound", RUN + ["--decoder", "beam:n=5000"]),
    ("run-contrastive-k-past-vocab", RUN + ["--decoder", "contrastive:k=600"]),
    ("run-contrastive-k-near-int64", RUN + ["--decoder", "contrastive:k=9223372036854775000"]),
    ("run-contrastive-k-huge", RUN + ["--decoder", "contrastive:k=" + "9" * 30]),
    ("run-top-k-past-int64", RUN + ["--decoder", "top-k:k=" + "9" * 30]),
    ("run-entropy-calib-tokens-huge", RUN + ["--decoder", "entropy-matched:target=2,calib_tokens=9000000000000000000"]),
    ("run-entropy-calib-prompts-huge", RUN + ["--decoder", "entropy-matched:target=2,calib_prompts=9000000000000"]),
    ("run-samples-huge", RUN + ["--samples-per-prompt", "9" * 22]),
    ("run-samples-over-bound", RUN + ["--samples-per-prompt", "2000000"]),
    ("run-log-probs-on-fake", ["run", "--backend", "fake", "--suite", "{P}", "--log-probs", "--out", "{store}"]),
    ("run-log-probs-openai-served-only", ["run", "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1",
                                          "--model", "served-name", "--suite", "{P}", "--log-probs",
                                          "--out", "{store}"]),
    ("compare-n-boot-huge", ["compare", "{run}", "{run}", "--n-boot", "9" * 13]),
    ("analyze-n-boot-huge", ANALYZE + ["--n-boot", "9" * 13]),
    # --- a hyperfit resume state that is corrupt or hostile (never unpickled) ---
    *[(f"hyperfit-state-{name}", HF_STATE + ["{ws}/states/" + name]) for name in HOSTILE_STATES],
    # --- bench parity ---
    ("parity-missing", ["parity", "{ws}/nothing", "{run}"]),
    ("parity-store-many", ["parity", "{ws}/two", "{run}"]),
    ("parity-incomplete", ["parity", "{ws}/incomplete", "{run}"]),
    ("parity-corrupt", ["parity", "{ws}/corrupt", "{run}"]),
    ("parity-fail-below-2", ["parity", "{run}", "{run}", "--fail-below", "2"]),
    ("parity-tie-margin-nan", ["parity", "{run}", "{run}", "--tie-margin", "nan"]),
    ("parity-tie-margin-neg", ["parity", "{run}", "{run}", "--tie-margin", "-1"]),
    ("parity-device-bogus", ["parity", "{run}", "{run}", "--margins", "--device", "bogus"]),
    # --- the group ---
    ("unknown-command", ["frobnicate"]),
    ("unknown-top-option", ["--frob"]),
]


def _model_copy(src: str, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for f in Path(src).iterdir():
        if f.is_file():
            shutil.copy(f, dst / f.name)
    return dst


def _edit_config(folder: Path, **changes: object) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


def _hostile_models(root: Path, model: str) -> None:
    """Copies of ``model`` with one hostile file each (issue 24, part 5)."""
    import struct

    made = {name: _model_copy(model, root / name) for name in HOSTILE_MODELS + ("blocked-template",)}
    _edit_config(made["vocab-absurd"], vocab_size=10 ** 12)
    _edit_config(made["hidden-absurd"], hidden_size=10 ** 9)
    _edit_config(made["layers-absurd"], num_hidden_layers=10 ** 6)
    weights = (Path(model) / "model.safetensors").read_bytes()
    (made["truncated-weights"] / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    (made["header-2-60"] / "model.safetensors").write_bytes(struct.pack("<Q", 2 ** 60) + weights[8:])
    (made["header-not-json"] / "model.safetensors").write_bytes(struct.pack("<Q", 16) + b"not a json table" + weights[8:])
    (made["empty-weights"] / "model.safetensors").write_bytes(b"")
    (made["config-deep"] / "config.json").write_text('{"a": ' + "[" * 100000 + "]" * 100000 + "}")
    text = (made["config-huge-int"] / "config.json").read_text()
    (made["config-huge-int"] / "config.json").write_text(text.replace('"vocab_size": 512', '"vocab_size": ' + "9" * 5000))
    (made["config-a-list"] / "config.json").write_text("[1, 2, 3]")
    tok = made["blocked-template"] / "tokenizer_config.json"
    tok.write_text(json.dumps(dict(json.loads(tok.read_text()), chat_template="{{ ''.__class__.__mro__ }}")))


def _hostile_states(root: Path, model: str) -> None:
    """Hyperfit folders stopped after epoch 1 of 2, each with one damaged file in ``state/``."""
    import pickle

    base = root / "_base"
    result = CliRunner().invoke(main, ["hyperfit", "--model", model, "--data", str(root.parent / "train.txt"),
                                       "--num-sequences", "2", "--seq-len", "8", "--epochs", "1", "--no-progress",
                                       "--out", str(base)])
    assert result.exit_code == 0, result.output

    class Hostile:
        def __reduce__(self):
            return (os.system, (f"touch {root}/PWNED",))

    for name in HOSTILE_STATES:
        folder = root / name
        shutil.copytree(base, folder)
        state = folder / "state"
        if name == "progress-invalid":
            (state / "progress.json").write_text("{not json")
        elif name == "progress-hostile":
            (state / "progress.json").write_text('{"epoch": "x", "history": {}, "epoch_losses": ["a"]}')
        elif name == "progress-huge-int":
            (state / "progress.json").write_text('{"epoch": ' + "9" * 5000 + ', "history": [], "epoch_losses": []}')
        elif name == "weights-truncated":
            data = (state / "weights.safetensors").read_bytes()
            (state / "weights.safetensors").write_bytes(data[: len(data) // 2])
        elif name == "pickle":
            (state / "trainer.pt").write_bytes(pickle.dumps(Hostile()))
        elif name == "trainer-json-list":
            (state / "trainer.json").write_text("[1, 2]")
        elif name == "trainer-tensors-missing":
            (state / "trainer.safetensors").unlink()
        elif name == "weights-of-another-run":
            import torch
            from safetensors.torch import save_file

            save_file({"lm_head.weight": torch.zeros(3, 4)}, str(state / "weights.safetensors"))
    shutil.rmtree(base)


def _tree_hash(root: Path) -> str:
    """Paths, kinds and contents of everything under ``root``."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode("utf-8", "surrogateescape"))
        if p.is_file():
            h.update(hashlib.sha256(p.read_bytes()).digest())
        h.update(b"d" if p.is_dir() else b"f")
    return h.hexdigest()


def _copy_run(src: Path, dst_store: Path) -> Path:
    dst = dst_store / src.name
    shutil.copytree(src, dst)
    return dst


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory, stories260k: str) -> dict[str, str]:
    """The workspace every case runs against: one finished run, inputs good and bad."""
    root = tmp_path_factory.mktemp("corpus")
    good = root / "prompts.jsonl"
    good.write_text("".join(json.dumps(p) + "\n" for p in PROMPTS))
    store = root / "runs"
    result = CliRunner().invoke(main, ["run", "--model", stories260k, "--suite", str(good), "--decoder", "greedy",
                                       "--max-new-tokens", "4", "--out", str(store)])
    assert result.exit_code == 0, result.output
    run = next(p for p in store.iterdir() if p.is_dir())
    (root / "F").write_text("a regular file\n")
    (root / "D").mkdir()
    (root / "dir.jsonl").mkdir()
    (root / "outdir").mkdir()
    (root / "outdir.csv").mkdir()
    (root / "random.bin").write_bytes(bytes((i * 37 + 11) % 256 for i in range(4096)))
    bad = root / "bad"
    bad.mkdir()
    for name, data in _bad_suites().items():
        (bad / name).write_bytes(data)
    gens = (run / "generations.jsonl").read_text()
    (root / "gens.jsonl").write_text(gens)
    other = [dict(json.loads(line), continuation="something else entirely") for line in gens.splitlines()]
    (root / "gens2.jsonl").write_text("".join(json.dumps(r) + "\n" for r in other))
    (root / "other-gens.jsonl").write_text("".join(json.dumps(dict(r, prompt_id="zz" + r["prompt_id"])) + "\n"
                                                   for r in other))
    (root / "corrupt.jsonl").write_text(gens.splitlines()[0] + "\n{not json\n" + gens.splitlines()[1] + "\n")
    csv_text = (store / "leaderboard.csv").read_text()
    (root / "leaderboard.csv").write_text(csv_text)
    head, *rows = csv_text.splitlines()
    cols = head.split(",")
    cells = rows[0].split(",")
    cells[cols.index("rep-2")] = "n/a"
    (root / "nonnum.csv").write_text("\n".join([head, ",".join(cells), *rows[1:]]) + "\n")
    (root / "cut.csv").write_text("\n".join([head, ",".join(rows[0].split(",")[:5])]) + "\n")
    (root / "header-only.csv").write_text(head + "\n")
    (root / "other.csv").write_text("a,b,c\n1,2,3\n")
    (root / "unknown-metric.csv").write_text(head + ",bleu,bleu_lo,bleu_hi\n" + rows[0] + ",1,0,2\n")
    for name, header in (("trunc", (run / "header.json").read_text()[:57]), ("garbage", '{"spec": 3}\n')):
        copy = _copy_run(run, root / name)
        (copy / "header.json").write_text(header)
    incomplete = _copy_run(run, root / "incomplete")
    lines = (incomplete / "generations.jsonl").read_text().splitlines()
    (incomplete / "generations.jsonl").write_text("\n".join(lines[:2]) + "\n")
    (incomplete / "scores.json").unlink(missing_ok=True)
    corrupt = _copy_run(run, root / "corrupt")
    (corrupt / "generations.jsonl").write_text(lines[0] + "\n{oops\n" + "\n".join(lines[1:]) + "\n")
    (corrupt / "scores.json").unlink(missing_ok=True)
    two = root / "two"
    _copy_run(run, two)
    shutil.copytree(run, two / ("x" + run.name))
    pickle_only = root / "pickle-only"
    pickle_only.mkdir()
    for f in Path(stories260k).iterdir():
        if f.is_file() and f.suffix != ".safetensors":
            shutil.copy(f, pickle_only / f.name)
    (pickle_only / "pytorch_model.bin").write_bytes(b"not really a pickle")
    same = root / "same-as-base"
    shutil.copytree(stories260k, same)
    (root / "train.txt").write_text("Once upon a time there was a little cat. " * 40)
    (root / "empty.txt").write_text("")
    (root / "deep.toml").write_text("a = " + "[" * 100000 + "]" * 100000 + "\n")
    (root / "hugeint.toml").write_text("max_new_tokens = " + "9" * 5000 + "\n")
    (root / "zero-tokens.toml").write_text("max_new_tokens = 0\n")
    (root / "beam-600.toml").write_text('decoders = ["beam:n=600"]\n')
    _hostile_models(root / "hostile", stories260k)
    _hostile_states(root / "states", stories260k)
    return {"ws": str(root), "store": str(store), "run": str(run), "model": stories260k, "F": str(root / "F"),
            "D": str(root / "D"), "P": str(good), "G": str(root / "gens.jsonl"), "G2": str(root / "gens2.jsonl"),
            "CSV": str(root / "leaderboard.csv"), "Pk": str(pickle_only), "Same": str(same)}


def _log(name: str, handled: bool, why: str = "") -> None:
    log = os.environ.get("BENCH_CORPUS_LOG")
    if log:
        with open(log, "a") as f:
            f.write(f"{name}\t{'handled' if handled else 'MISHANDLED'}\t{why}\n")


@pytest.mark.parametrize("name,argv", CASES, ids=[c[0] for c in CASES])
def test_bad_input(name: str, argv: list[str], ws: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BENCH_MODEL", raising=False)
    monkeypatch.delenv("BENCH_ALLOW_PICKLE", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret123456")
    root = Path(ws["ws"])
    before = _tree_hash(root)
    result = CliRunner().invoke(main, [a.format(**ws) for a in argv])
    stderr_lines = result.stderr.splitlines()
    problems = []
    if result.exit_code != 2:
        problems.append(f"exit {result.exit_code}")
    if len(stderr_lines) != 1 or not stderr_lines[0].startswith("error: "):
        problems.append(f"stderr {stderr_lines[:3]!r}")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        problems.append(f"exception {type(result.exception).__name__}: {result.exception}")
    if "Traceback" in result.output or "sk-secret123456" in result.output:
        problems.append("traceback or secret in the output")
    if _tree_hash(root) != before:
        problems.append("workspace changed")
    _log(name, not problems, "; ".join(problems))
    assert not problems, f"{name}: {'; '.join(problems)}\n{result.output[-2000:]}"


def test_corpus_size() -> None:
    """The corpus stays large: every subcommand, 150+ cases."""
    assert len(CASES) >= 150
    assert {c[1][0] for c in CASES} >= {"run", "score", "leaderboard", "check", "compare", "judge", "hyperfit", "analyze"}
    assert len({c[0] for c in CASES}) == len(CASES)


REAL_PROCESS = ["run-out-under-file", "check-baseline-random", "judge-timeout-nan", "lb-truncated-header",
                "run-suite-surrogate", "judge-cache-dir"]


@pytest.mark.parametrize("name", REAL_PROCESS)
def test_bad_input_in_a_real_process(name: str, ws: dict[str, str]) -> None:
    argv = dict(CASES)[name]
    root = Path(ws["ws"])
    before = _tree_hash(root)
    env = {k: v for k, v in os.environ.items() if k not in ("BENCH_MODEL", "BENCH_ALLOW_PICKLE")}
    proc = subprocess.run([sys.executable, "-m", "bench.cli", *[a.format(**ws) for a in argv]], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert _tree_hash(root) == before


@pytest.mark.parametrize("name,toml", [("run-config-zero-tokens", "zero-tokens.toml"),
                                       ("run-config-beam-past-vocab", "beam-600.toml"),
                                       ("run-config-deep-toml", "deep.toml")])
def test_a_sweep_files_error_names_the_file(name: str, toml: str, ws: dict[str, str]) -> None:
    argv = dict(CASES)[name]
    result = CliRunner().invoke(main, [a.format(**ws) for a in argv])
    assert result.exit_code == 2 and result.stderr.startswith(f"error: {ws['ws']}/{toml}: "), result.stderr
