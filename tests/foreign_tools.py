"""Run the real lm-evaluation-harness and inspect_ai on a local model (for ``bench score --from``).

Used by the live tests (``pytest -m peers`` in ``.venv-peers``: ``make peers-env``) and by
``scripts/make_foreign_fixtures.py``, which wrote the files in ``tests/fixtures/foreign/``.
Both tools run offline: the task reads a decbench JSONL suite from disk.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PROMPTS = [
    "Once upon a time, there was a little girl",
    "The dog ran to the park and",
    "Tom had a big red ball. One day,",
    "Lily liked to play in the sun. She",
]
REFERENCE = "and they were happy."

LM_EVAL_TASK = """task: stories_continue
dataset_path: json
dataset_kwargs:
  data_files:
    test: {prompts}
test_split: test
output_type: generate_until
doc_to_text: "{{{{prompt}}}}"
doc_to_target: "{{{{reference}}}}"
generation_kwargs:
  until: []
  max_gen_toks: {max_tokens}
  do_sample: false
metric_list:
  - metric: exact_match
metadata:
  version: 1.0
"""

INSPECT_TASK = """from inspect_ai import Task, task
from inspect_ai.dataset import FieldSpec, json_dataset
from inspect_ai.scorer import match
from inspect_ai.solver import generate


@task
def stories():
    return Task(dataset=json_dataset({prompts!r}, FieldSpec(input="prompt", target="reference", id="id")),
                solver=generate(), scorer=match())
"""

OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "INSPECT_DISPLAY": "plain",
           "TOKENIZERS_PARALLELISM": "false"}


def write_suite(folder: Path) -> Path:
    """A decbench JSONL suite (ids p0..p3) that both tools read as their dataset."""
    path = folder / "prompts.jsonl"
    path.write_text("".join(json.dumps({"id": f"p{i}", "prompt": p, "reference": REFERENCE}) + "\n"
                            for i, p in enumerate(PROMPTS)))
    return path


def _run(command: list[str], cwd: Path) -> None:
    done = subprocess.run(command, cwd=cwd, env={**os.environ, **OFFLINE}, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def run_lm_eval(model: str, folder: Path, max_tokens: int = 16) -> Path:
    """``lm_eval --log_samples`` with greedy decoding; returns the samples file."""
    tasks = folder / "lm_eval_task"
    tasks.mkdir(parents=True, exist_ok=True)
    (tasks / "stories.yaml").write_text(LM_EVAL_TASK.format(prompts=write_suite(folder), max_tokens=max_tokens))
    out = folder / "lm_eval_out"
    _run([str(Path(sys.executable).with_name("lm_eval")), "--model", "hf", "--model_args",
          f"pretrained={model},dtype=float32", "--include_path", str(tasks), "--tasks", "stories_continue",
          "--log_samples", "--output_path", str(out), "--device", "cpu", "--batch_size", "2", "--seed", "1234"], folder)
    return next(out.rglob("samples_stories_continue_*.jsonl"))


def run_inspect(model: str, folder: Path, max_tokens: int = 16, epochs: int = 2) -> Path:
    """``inspect eval`` on the hf provider, sampling at T=0.8, top-p 0.9, seed 7; returns the log."""
    folder.mkdir(parents=True, exist_ok=True)
    task = folder / "inspect_task.py"
    task.write_text(INSPECT_TASK.format(prompts=str(write_suite(folder))))
    logs = folder / "inspect_logs"
    _run([str(Path(sys.executable).with_name("inspect")), "eval", task.name, "--model", "hf/local",
          "-M", f"model_path={model}", "-M", "device=cpu", "--max-tokens", str(max_tokens), "--temperature", "0.8",
          "--top-p", "0.9", "--seed", "7", "--epochs", str(epochs), "--log-dir", str(logs)], folder)
    return next(logs.glob("*.eval"))
