"""Generate one planned run: the one place where records are made, for every executor.

:func:`generate` loads (or reuses) the run's backend, calibrates the decoder when it declares a
calibration, and appends the records the store does not hold yet, batch by batch. The local
executor (:mod:`bench.sweep`) and the Ray executor (:mod:`bench.executors.ray`) both call it, so
they produce the same store.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, replace
from typing import Any, Callable

from bench.decoding import record_seed
from bench.planning import PlannedRun, RunOptions
from bench.specs import ModelSpec, Prompt, RunSpec, build_decoder
from bench.store import GENERATIONS, HEADER, RunDir, RunStore, read_records


class Backends:
    """Loaded backends, keyed by (kind, model spec, hyperfit checkpoint or None); one model at a time."""

    def __init__(self, options: RunOptions):
        self.options = options
        self.loaded: dict[tuple[str, ModelSpec, str | None], Any] = {}
        self.load_seconds = 0.0
        """Seconds spent loading models and starting engines (reported apart from generation)."""
        self.amateurs: dict[str, Any] = {}

    def get(self, model: ModelSpec, hyperfit: str | None = None, *, kind: str | None = None) -> Any:
        """The backend of ``options.backend`` (or ``kind``) for ``model`` and a checkpoint."""
        from bench.backends import load_backend

        # The checkpoint is the key's own part; the amateur is loaded apart (Backends.amateur).
        model = replace(model, hyperfit=None, hyperfit_fingerprint="", amateur=None, amateur_fingerprint="")
        key = (kind or self.options.backend, model, hyperfit)
        if key not in self.loaded:
            if any(k[1] != model for k in self.loaded):
                self.loaded.clear()  # moving to another model: free the previous one first
            start = time.perf_counter()
            self.loaded[key] = load_backend(self.options, model, hyperfit, kind)
            self.load_seconds += time.perf_counter() - start
        return self.loaded[key]

    def amateur(self, path: str) -> Any:
        """The amateur model of contrastive decoding, loaded once next to the expert, on its device
        and in its dtype (kept when the expert changes: one amateur serves every ``--model``)."""
        if path not in self.amateurs:
            from bench import runtime

            device = runtime.resolve_device(self.options.device)
            self.amateurs[path] = runtime.load_model(path, dtype=runtime.resolve_dtype(self.options.dtype, device),
                                                     device=device, role="--amateur")
        return self.amateurs[path]

    def reference(self, model: ModelSpec, hyperfit: str | None = None) -> Any:
        """The HF backend of a model, whatever ``--backend`` generates with: calibration measures
        the local weights' logits, which only the reference backend exposes."""
        return self.get(model, hyperfit, kind="hf")


@dataclass
class RunResult:
    run: RunDir
    generated: int
    tokens: int
    seconds: float


def missing_work(planned: PlannedRun, done: set[tuple[str, int]]) -> list[tuple[Prompt, int]]:
    """The (prompt, sample index) pairs of a run that the store does not hold yet."""
    n = planned.spec.generation.samples_per_prompt
    return [(p, i) for p in planned.prompts for i in range(n) if (p.id, i) not in done]


def pending(planned: PlannedRun, store: RunStore) -> int:
    """How many records of ``planned`` are still to generate (none, without parsing, for a run
    whose current scores count them all: its run id pins its prompts)."""
    run = RunDir(store.root / planned.spec.run_id)
    if (run.path / HEADER).is_file() and (run.scored_count() or 0) >= planned.expected_records:
        return 0
    return len(missing_work(planned, run.done_keys()))


def generate(planned: PlannedRun, backends: Backends, store: RunStore, *, batch_size: int,
             on_records: Callable[[int], None] = lambda n: None,
             on_calibrate: Callable[[bool], None] = lambda active: None) -> RunResult:
    """Generate the records ``planned`` is missing, appending each batch to the store as it finishes.

    A decoder that declares a calibration (entropy-matched, static-reweight) is calibrated first,
    on the HF backend whatever ``--backend`` is; the calibrated values then travel to the engine
    inside the decoder's :class:`bench.decoding.EngineParams`, and into the run header.
    ``on_calibrate(True)`` is called when the calibration starts, ``on_calibrate(False)`` when it ends.
    """
    spec, info = planned.spec, planned.decoder_info
    backend = backends.get(spec.model, spec.model.hyperfit if info.runs_on_hyperfit else None)
    decoder = build_decoder(spec.decoder)
    if spec.model.amateur:
        decoder.amateur = backends.amateur(spec.model.amateur)
    if decoder.calibrates:
        on_calibrate(True)
        base = backends.reference(spec.model)
        reference = backends.reference(spec.model, spec.model.hyperfit) if spec.model.hyperfit else base
        planned.resolved.update(decoder.calibrate(base, reference, planned.prompts))
        on_calibrate(False)
    from bench.applied import applied_settings, model_sampling_defaults
    from bench.traces import token_traces

    planned.resolved["applied"] = applied_settings(backend, decoder, spec.generation.max_new_tokens)
    defaults = model_sampling_defaults(spec.model.name, spec.model.revision) if spec.backend != "fake" else {}
    if defaults:
        planned.resolved["model_sampling_defaults"] = {**defaults, "applied": False}
    new_run = not (store.root / spec.run_id).exists()
    try:
        with store.writing(spec, expected_records=planned.expected_records, device=backend.device,
                           resolved=planned.resolved) as run:
            tracer = None
            if spec.generation.log_probs and spec.generation.log_probs_from == "model":
                # the HF model of the weights that decode (the checkpoint's, for one)
                scorer = backends.reference(spec.model, spec.model.hyperfit if info.runs_on_hyperfit else None)
                tracer = lambda prompts, ids: token_traces(scorer, prompts, ids)  # noqa: E731
            return _generate_records(planned, backend, decoder, store, run, batch_size, on_records, tracer)
    except BaseException:
        if new_run and not (store.root / spec.run_id / GENERATIONS).exists():
            shutil.rmtree(store.root / spec.run_id, ignore_errors=True)  # never leave a folder holding only its header
        raise


def _generate_records(planned: PlannedRun, backend: Any, decoder: Any, store: RunStore, run: RunDir,
                      batch_size: int, on_records: Callable[[int], None],
                      tracer: Callable[[list[str], list[Any]], list[Any]] | None = None) -> RunResult:
    """The batches of :func:`generate`, appended to ``run`` as each finishes (under the run's lock)."""
    spec, info = planned.spec, planned.decoder_info
    # Read under the lock: what another process wrote meanwhile is not generated again.
    todo = missing_work(planned, run.done_keys())
    # Longest prompts first: less padding per batch, and the memory peak comes early.
    lengths = {p.id: len(t) for p, t in zip(planned.prompts, backend.encode([p.text for p in planned.prompts]))}
    todo.sort(key=lambda item: -lengths[item[0].id])
    generated = tokens = 0
    start = time.perf_counter()
    for b in range(0, len(todo), batch_size):
        chunk = todo[b : b + batch_size]
        seeds = [record_seed(spec.generation.seed, p.id, i) for p, i in chunk]
        t0 = time.perf_counter()
        outs = backend.continue_batch([p.text for p, _ in chunk], decoder,
                                      max_new_tokens=spec.generation.max_new_tokens, seeds=seeds)
        per_record = (time.perf_counter() - t0) / len(chunk)
        records = [record(spec, run.run_id, p, i, seed if info.sampling else None, out,
                          out.text if out.text is not None else backend.decode(out.token_ids), per_record)
                   for (p, i), seed, out in zip(chunk, seeds, outs)]
        if tracer is not None:
            for r, trace in zip(records, tracer([p.text for p, _ in chunk], [o.token_ids for o in outs])):
                r["trace"] = trace
        elif spec.generation.log_probs:  # --log-probs-from server: the backend's own
            for r, out in zip(records, outs):
                r["trace"] = out.trace
        store.append(run, records)
        generated += len(records)
        tokens += sum(len(o.token_ids) if o.token_ids is not None else (o.num_tokens or 0) for o in outs)
        on_records(len(records))
    return RunResult(run, generated, tokens, time.perf_counter() - start)


def record(spec: RunSpec, run_id: str, prompt: Prompt, index: int, seed: int | None, out: Any, text: str,
           seconds: float) -> dict[str, Any]:
    """One line of ``generations.jsonl``: the decoder's arguments travel with every record."""
    return {
        "run_id": run_id,
        "prompt_id": prompt.id,
        "sample_index": index,
        "prompt": prompt.text,
        "reference": prompt.reference,
        "continuation": text,
        "token_ids": out.token_ids,
        "num_tokens": out.num_tokens if out.num_tokens is not None or out.token_ids is None else len(out.token_ids),
        "finish_reason": out.finish_reason,
        "model": spec.model.name,
        "hyperfit": spec.model.hyperfit,
        **({"amateur": spec.model.amateur} if spec.model.amateur else {}),
        "decoder": spec.decoder.name,
        "decoder_args": spec.decoder.kwargs,
        "seed": seed,
        "seconds": round(seconds, 6),
    }
