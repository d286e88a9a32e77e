"""Generations made by other tools, read into decbench runs: ``bench score --from lm-eval|inspect``.

- ``lm-eval``: the ``samples_<task>_<time>.jsonl`` that lm-evaluation-harness writes with
  ``--log_samples`` (a ``generate_until`` task). The ``results_<time>.json`` beside it gives the
  model, lm-eval's version, the seed and the dtype; without it they are recorded as unknown.
- ``inspect``: an inspect_ai eval log (``.eval`` or ``.json``), read with inspect_ai's own
  ``read_eval_log`` (so it needs ``inspect_ai`` installed; else one line says so).

Either becomes one run in a decbench store, scored and put on the leaderboard like decbench's
own runs. Its identity is the tool, its version, model, task, generation settings and the file's
content hash (:attr:`bench.specs.RunSpec.origin`): importing the same file again is the same run,
and an edited file is another. The header's ``resolved.import`` keeps the provenance: the file,
its hash, the tool's own configuration.

Prompt ids: lm-eval's document's own ``id`` field when every document has a distinct one (a task
that reads a decbench suite, so that ``bench compare`` pairs the prompts), else its ``doc_id``;
inspect's sample id (``FieldSpec(id="id")`` on a decbench suite gives the suite's ids). Sample index: lm-eval's repeat, inspect's epoch minus one. Foreign tools keep
no token ids, so the token metrics are left out, as for ``bench score FILE``.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import BenchError, parse_problem

TOOLS = ("lm-eval", "inspect")

_SAMPLES_NAME = re.compile(r"^samples_(?P<task>.+)_(?P<time>\d{4}-\d\d-\d\dT[\d.\-]+)\.jsonl$")


@dataclass
class ForeignRun:
    """What a foreign file says about the generations it holds."""

    tool: str
    """``lm-eval`` or ``inspect``."""
    tool_version: str
    """The tool's version as it recorded it (``unknown`` when it did not)."""
    model: str
    """The model as the tool named it (a Hub id or a local path)."""
    task: str
    """The task (the suite's name in decbench's tables)."""
    settings: dict[str, Any]
    """The generation settings the tool applied (lm-eval's ``gen_kwargs``, inspect's ``GenerateConfig``)."""
    records: list[dict[str, Any]]
    """``prompt_id``, ``sample_index``, ``prompt``, ``reference`` (or None) and ``continuation``."""
    source: Path
    sha256: str
    """Of the file's bytes."""
    max_new_tokens: int = 0
    """The token limit the tool applied; 0 when it recorded none."""
    seed: int = 0
    dtype: str = "unknown"
    prompt_ids_from: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)
    """The tool's own record of the run (configuration, versions, date), kept in the header."""


def read_foreign(tool: str, path: str) -> ForeignRun:
    """Read ``path`` as written by ``tool``; one line naming the file (and line) when it cannot be."""
    file = Path(path)
    if not file.is_file():
        raise BenchError(f"{path}: no such file")
    if tool == "lm-eval":
        return read_lm_eval(file)
    if tool == "inspect":
        return read_inspect(file)
    raise BenchError(f"--from {tool}: unknown tool; choose one of {', '.join(TOOLS)}")


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with open(file, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _prompt_ids(docs: list[Any], fallback: list[str]) -> tuple[list[str], str]:
    """The documents' own ``id`` when each has a distinct one, else ``fallback``."""
    ids = [d.get("id") if isinstance(d, dict) else None for d in docs]
    if ids and all(isinstance(i, (str, int)) and not isinstance(i, bool) for i in ids) and len(set(map(str, ids))) == len(ids):
        return [str(i) for i in ids], "doc.id"
    return fallback, ""


# ---- lm-evaluation-harness ------------------------------------------------------------------------

def _lm_eval_request(line: dict, where: str) -> tuple[str, dict]:
    """(context, gen_kwargs) of a ``generate_until`` sample, in the 0.4.x layouts (a dict of
    ``gen_args_N`` or, before 0.4.3, a list of argument lists)."""
    args = line.get("arguments")
    if isinstance(args, dict) and isinstance(args.get("gen_args_0"), dict):
        first = args["gen_args_0"]
        context, kwargs = first.get("arg_0"), first.get("arg_1")
    elif isinstance(args, list) and args and isinstance(args[0], list) and len(args[0]) == 2:
        context, kwargs = args[0]
    else:
        raise BenchError(f"{where}: no 'arguments' of a request; is this an lm-eval samples file (--log_samples)?")
    if not isinstance(context, str):
        raise BenchError(f"{where}: the request's context is not text")
    if not isinstance(kwargs, dict):
        raise BenchError(f"{where}: the request is not a generate_until request (a loglikelihood task has no "
                         "generations to score)")
    return context, kwargs


def _lm_eval_line(line: Any, where: str) -> tuple[int, dict, str, dict, list[str], Any]:
    if not isinstance(line, dict):
        raise BenchError(f"{where}: expected a JSON object, got {type(line).__name__}")
    doc_id = line.get("doc_id")
    if type(doc_id) is not int:
        raise BenchError(f"{where}: no integer 'doc_id'; is this an lm-eval samples file (--log_samples)?")
    context, kwargs = _lm_eval_request(line, where)
    resps = line.get("resps")
    if not (isinstance(resps, list) and len(resps) == 1 and isinstance(resps[0], list) and resps[0]
            and all(isinstance(t, str) for t in resps[0])):
        raise BenchError(f"{where}: 'resps' is not one request's list of generated texts")
    return doc_id, line.get("doc"), context, kwargs, resps[0], line.get("target")


def _lm_eval_results(samples: Path) -> tuple[Path | None, dict]:
    """The ``results_<time>.json`` written with the samples file, when it is beside it."""
    match = _SAMPLES_NAME.match(samples.name)
    if not match:
        return None, {}
    results = samples.with_name(f"results_{match['time']}.json")
    if not results.is_file():
        return None, {}
    try:
        data = json.loads(results.read_text(encoding="utf-8"))
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:
        raise BenchError(f"{results}: not lm-eval's results JSON ({parse_problem(exc)})") from None
    if not isinstance(data, dict):
        raise BenchError(f"{results}: not lm-eval's results JSON (not an object)")
    return results, data


def read_lm_eval(file: Path) -> ForeignRun:
    """An lm-eval ``--log_samples`` file (and the results JSON beside it)."""
    docs: dict[int, tuple] = {}
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise BenchError(f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        where = f"{file}, line {number}"
        try:
            line = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise BenchError(f"{where}: invalid JSON ({parse_problem(exc)})") from None
        doc_id, doc, context, kwargs, texts, target = _lm_eval_line(line, where)
        if doc_id in docs:  # one line per filter: the same generations filtered differently
            if docs[doc_id][3] != texts:
                raise BenchError(f"{where}: doc_id {doc_id} has other generations than on an earlier line")
            continue
        if docs and kwargs != next(iter(docs.values()))[2]:
            raise BenchError(f"{where}: generation settings {kwargs} differ from the first line's; one task per file")
        docs[doc_id] = (doc, context, kwargs, texts, target)
    if not docs:
        raise BenchError(f"{file}: empty file (no samples)")
    order = sorted(docs)
    ids, ids_from = _prompt_ids([docs[d][0] for d in order], [str(d) for d in order])
    records = [{"prompt_id": pid, "sample_index": i, "prompt": docs[d][1],
                "reference": docs[d][4] if isinstance(docs[d][4], str) else None, "continuation": t}
               for pid, d in zip(ids, order) for i, t in enumerate(docs[d][3])]
    results_file, results = _lm_eval_results(file)
    match = _SAMPLES_NAME.match(file.name)
    task = match["task"] if match else file.stem
    config = results.get("config") if isinstance(results.get("config"), dict) else {}
    settings = next(iter(docs.values()))[2]
    max_tokens = settings.get("max_gen_toks", 256)  # lm-eval's HF default when a task sets none
    seed = config.get("random_seed")
    dtype = _dtype_name(config.get("model_args"), config.get("model_dtype"))
    return ForeignRun(
        tool="lm-eval", tool_version=str(results.get("lm_eval_version", "unknown")),
        model=str(results.get("model_name") or _model_arg(config.get("model_args"), "pretrained") or "unknown"),
        task=task, settings=settings, records=records, source=file, sha256=_sha256(file),
        max_new_tokens=max_tokens if type(max_tokens) is int and max_tokens > 0 else 0,
        seed=seed if type(seed) is int else 0, dtype=dtype, prompt_ids_from=ids_from or "doc_id",
        provenance={"results_file": str(results_file) if results_file else None,
                    "config": config, "task_version": (results.get("versions") or {}).get(task),
                    "task_hash": (results.get("task_hashes") or {}).get(task),
                    "transformers_version": results.get("transformers_version"), "date": results.get("date")},
    )


def _model_arg(model_args: Any, key: str) -> str | None:
    """One of lm-eval's ``model_args``: a dict in its results, or the ``k=v,...`` string of older versions."""
    if isinstance(model_args, str):
        model_args = dict(item.partition("=")[::2] for item in model_args.split(",") if item)
    value = model_args.get(key) if isinstance(model_args, dict) else None
    return str(value) if value is not None else None


def _dtype_name(model_args: Any, recorded: Any) -> str:
    value = _model_arg(model_args, "dtype") or _model_arg(model_args, "torch_dtype") or recorded
    return str(value).removeprefix("torch.") if value else "unknown"


# ---- inspect_ai -----------------------------------------------------------------------------------

GENERATE_FIELDS = ("max_tokens", "temperature", "top_p", "top_k", "seed", "stop_seqs", "frequency_penalty",
                   "presence_penalty", "logit_bias", "num_choices", "best_of", "system_message", "reasoning_effort")
"""The fields of inspect's ``GenerateConfig`` that change what a model writes."""


def read_inspect(file: Path) -> ForeignRun:
    """An inspect_ai eval log, read by inspect_ai itself."""
    try:
        from inspect_ai.log import read_eval_log
    except ModuleNotFoundError:
        raise BenchError(f"--from inspect needs inspect_ai to read {file}: pip install inspect-ai") from None
    try:
        log = read_eval_log(str(file))
    except Exception as exc:  # inspect raises its own, zipfile's and pydantic's errors
        raise BenchError(f"{file}: not an inspect_ai eval log ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})") from None
    if log.status != "success":
        raise BenchError(f"{file}: the eval's status is '{log.status}', not 'success'; only finished logs are scored")
    samples = log.samples or []
    if not samples:
        raise BenchError(f"{file}: the log holds no samples (was it written with --no-log-samples?)")
    failed = [s for s in samples if s.error is not None]
    if failed:
        raise BenchError(f"{file}: sample {failed[0].id} (epoch {failed[0].epoch}) ended in an error; "
                         f"{len(failed)} of {len(samples)} samples have no generation")
    by_id: dict[str, list] = {}
    for s in samples:
        by_id.setdefault(str(s.id), []).append(s)
    order = sorted(by_id, key=lambda k: (by_id[k][0].id if isinstance(by_id[k][0].id, int) else 0, k))
    records = [{"prompt_id": pid, "sample_index": s.epoch - 1, "prompt": _input_text(s.input),
                "reference": _target_text(s.target), "continuation": s.output.completion}
               for pid in order for s in sorted(by_id[pid], key=lambda s: s.epoch)]
    config = log.eval.model_generate_config or log.plan.config
    settings = {k: getattr(config, k) for k in GENERATE_FIELDS if getattr(config, k, None) is not None}
    model_args = dict(log.eval.model_args or {})
    model = str(model_args.get("model_path") or log.eval.model)
    return ForeignRun(
        tool="inspect", tool_version=str((log.eval.packages or {}).get("inspect_ai", "unknown")),
        model=model, task=str(log.eval.task).split("/")[-1], settings=settings, records=records, source=file,
        sha256=_sha256(file), max_new_tokens=settings.get("max_tokens") or 0, seed=settings.get("seed") or 0,
        dtype=_dtype_name(model_args, None), prompt_ids_from="sample.id",
        provenance={"eval": json.loads(log.eval.model_dump_json(exclude_none=True)), "model": log.eval.model,
                    "task_version": log.eval.task_version, "started": log.stats.started_at,
                    "completed": log.stats.completed_at},
    )


def _input_text(value: Any) -> str:
    """A sample's input: its text, or its messages' texts (the chat the model was sent) joined."""
    if isinstance(value, str):
        return value
    return "\n\n".join(m.text for m in value)


def _target_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value or None
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
        return value[0] or None
    return None


# ---- into a decbench store ------------------------------------------------------------------------

def _setting_text(value: Any) -> Any:
    """A setting as a decoder argument: scalars as they are, lists and objects as JSON text."""
    return value if isinstance(value, (str, int, float, bool)) or value is None else json.dumps(value, sort_keys=True)


def foreign_spec(run: ForeignRun) -> Any:
    """The run's spec: the tool is the backend and the decoder, its settings the decoder's arguments."""
    from bench.specs import DecoderSpec, GenerationSpec, ModelSpec, RunSpec, SuiteSpec

    prompts = sorted({(r["prompt_id"], r["prompt"]) for r in run.records})
    suite_version = hashlib.sha256(json.dumps(prompts).encode()).hexdigest()[:16]
    samples = 1 + max(r["sample_index"] for r in run.records)
    return RunSpec(
        model=ModelSpec(run.model, display=run.model.rstrip("/").split("/")[-1] or run.model),
        decoder=DecoderSpec(run.tool, tuple(sorted((k, _setting_text(v)) for k, v in run.settings.items()))),
        suite=SuiteSpec(run.task, suite_version, source=str(run.source)),
        generation=GenerationSpec(run.max_new_tokens, samples, run.seed),
        backend=run.tool, backend_version=run.tool_version, dtype=run.dtype,
        origin=f"{run.tool}:{run.sha256[:16]}",
    )


def import_run(run: ForeignRun, out: str | Path) -> Any:
    """Write ``run`` as a run folder of the store ``out`` (records not yet there), and return it."""
    from bench.store import RunStore

    spec = foreign_spec(run)
    store = RunStore(out)
    resolved = {
        "imported_from": f"{run.tool} {run.tool_version}",  # a scalar: the leaderboard shows it as a column
        "import": {"tool": run.tool, "version": run.tool_version, "source": str(run.source.resolve()),
                   "sha256": run.sha256, "model": run.model, "task": run.task, "settings": run.settings,
                   "prompt_ids_from": run.prompt_ids_from, **run.provenance},
    }
    device = str((run.provenance.get("config") or {}).get("device") or "unknown")
    with store.writing(spec, expected_records=len(run.records), device=device,
                       resolved=json.loads(json.dumps(resolved, default=str))) as folder:
        done = folder.done_keys()
        missing = [dict(r, run_id=spec.run_id) for r in run.records if (r["prompt_id"], r["sample_index"]) not in done]
        if missing:
            store.append(folder, missing)
    return folder
