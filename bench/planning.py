"""Plan a sweep (models x decoders x suites): every run's spec and prompts, nothing generated.

Planning does every check that can fail on user input (decoder names and arguments, which
decoders the backend can run, suite files, model paths, prompt lengths against the context)
before anything is written, so bad input exits with one line and leaves the store untouched.
:mod:`bench.generation` then generates what the store does not hold yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench import runtime
from bench.amateur import amateur_fingerprint, check_amateur
from bench.errors import BenchError
from bench.registry import DecoderInfo, get_decoder, load_plugins
from bench.specs import DecoderSpec, GenerationSpec, ModelSpec, Prompt, RunSpec, expand_grid, parse_decoder


@dataclass(frozen=True)
class RunOptions:
    """What ``bench run`` was asked for."""

    models: tuple[str, ...]
    """Hugging Face ids or local directories, each optionally ``NAME:key=value,...`` with model
    arguments (see :mod:`bench.model_args`); one leaderboard row each."""
    decoders: tuple[str, ...]
    """``NAME[:k=v,...]`` strings, or ``all``."""
    suites: tuple[str, ...]
    """Registered suite names or JSONL paths."""
    out: str = "runs"
    """The run store."""
    generation: GenerationSpec = GenerationSpec()
    """Lengths, samples per prompt and seed."""
    seeds: tuple[int, ...] = ()
    """Several base seeds (``--seeds``): one run per seed, the generation's own seed when empty."""
    num_prompts: int | None = None
    """Deterministic subset of each suite."""
    revision: str | None = None
    """Hub revision applied to every model."""
    hyperfit: str | None = None
    """A hyperfitted checkpoint for the decoders that require one."""
    amateur: str | None = None
    """The amateur model of contrastive decoding (``--amateur``), for the decoders that require one."""
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 16
    compile: bool = False
    """HF backend: static KV cache and a ``torch.compile``'d decode step (CUDA graphs on GPU)."""
    data_dir: str | None = None
    """Folder laid out like ``shared/data`` (``$BENCH_DATA_DIR``)."""
    suite_path: str | None = None
    """An explicit file for a registered suite (e.g. a copy of the cd-benchmark JSON)."""
    backend: str = "hf"
    """Generation backend: ``hf``, ``vllm`` or ``openai`` (see :mod:`bench.backends`)."""
    base_url: str | None = None
    """The OpenAI-compatible server of ``--backend openai``."""
    api_key_env: str = "OPENAI_API_KEY"
    """The environment variable holding the server's API key (the key itself is never stored)."""
    tensor_parallel_size: int = 1
    """GPUs per model for ``--backend vllm``."""
    gpu_memory_utilization: float | None = None
    """Fraction of memory vLLM may take (of GPU memory on CUDA, default 0.9; of RAM on CPU)."""
    kv_cache_gib: float | None = None
    """A fixed KV cache size for ``--backend vllm`` (default on CPU: 1 GiB)."""
    enforce_eager: bool = False
    """``--backend vllm`` without torch.compile (a start in seconds instead of minutes on CPU)."""
    executor: str = "local"
    """``local`` (this process) or ``ray`` (one Ray task per run, see :mod:`bench.executors.ray`)."""
    ray_address: str | None = None
    """An existing Ray cluster for ``--executor ray``; default: start a local one."""
    scores: tuple[str, ...] = ()
    """Model-based metrics to compute after generation (``--score``)."""
    score_settings: dict[str, Any] = field(default_factory=dict)
    """Featurizer, scorer and sentence models of the model-based metrics."""
    judge_against: str | None = None
    """Judge every other decoder's runs against this decoder's runs."""
    judge_settings: dict[str, Any] = field(default_factory=dict)
    """Judge endpoint or local model (the cache path is added by the executor)."""
    chat_template: bool = False
    """Render every prompt with the tokenizer's chat template (instruct models)."""
    system_prompt: str | None = None
    """A system turn for the chat template; implies ``chat_template``."""


@dataclass
class PlannedRun:
    spec: RunSpec
    prompts: list[Prompt]
    decoder_info: DecoderInfo
    resolved: dict[str, Any] = field(default_factory=dict)
    """Plan-time values recorded in the header (e.g. a calibrated temperature)."""

    released: int | None = None
    """The number of prompts, once :meth:`release_prompts` let them go."""

    @property
    def expected_records(self) -> int:
        n = self.released if self.released is not None else len(self.prompts)
        return n * self.spec.generation.samples_per_prompt

    def release_prompts(self) -> None:
        """Drop the prompts once generated (a million of them are 300 MB that scoring can use)."""
        if self.released is None:
            self.released, self.prompts = len(self.prompts), []


MAX_SAMPLES_PER_PROMPT = 1_000_000
"""A bound far above any study (a first-token distribution needs thousands): a larger value is a
typo that would otherwise plan a run of more records than memory holds."""


@dataclass
class Plan:
    runs: list[PlannedRun]
    skipped: list[tuple[str, str]]
    """(decoder, reason) for decoders that ``all`` could not run."""
    warnings: list[str] = field(default_factory=list)
    """Things the user should know before trusting the numbers (a hyperfit above its target loss)."""
    notices: list[str] = field(default_factory=list)
    """Things worth one line that change nothing (a model's sampling defaults, which are not applied)."""


def expand_decoders(names: tuple[str, ...], available: dict[str, bool]) -> tuple[list[DecoderSpec], list[tuple[str, str]]]:
    """Parse ``--decoder`` values, grids expanded (``top-p:p=0.8|0.9``, see :func:`bench.specs.expand_grid`);
    ``all`` means every registered decoder whose requirements are met, once, at its defaults."""
    registry = load_plugins()
    specs, skipped = [], []
    for text in (one for name in names for one in expand_grid(name)):
        if text.strip().lower() != "all":
            spec = parse_decoder(text)
            info = get_decoder(spec.name)
            missing = [r for r in info.requires if not available.get(r)]
            if missing and not any(spec.kwargs.get(w) is not None for w in info.waived_by):
                raise BenchError(f"decoder '{info.name}' needs --{missing[0]}: {info.requires_help}")
            specs.append(spec)
            continue
        for info in registry.decoders.values():
            missing = [r for r in info.requires if not available.get(r)]
            if missing:
                skipped.append((info.name, f"needs --{missing[0]}; {info.requires_help}"))
            else:
                specs.append(parse_decoder(info.name))
    unique = list(dict.fromkeys(specs))
    return unique, skipped


def check_prompt_lengths(prompts: list[Prompt], tokenizer: Any, config: Any, max_new_tokens: int, model: str,
                         chat: Any = None) -> None:
    limit = runtime.context_length(config)
    if limit is None:
        return
    for p in prompts:
        n = len(chat.ids(tokenizer, p.text) if chat is not None else tokenizer(p.text)["input_ids"])
        if n + max_new_tokens > limit:
            raise BenchError(
                f"prompt '{p.id}' is {n} tokens; with --max-new-tokens {max_new_tokens} it exceeds the "
                f"context of {model} ({limit} tokens)"
            )


def parse_seeds(repeated: tuple[int, ...], listed: str | None) -> tuple[int, ...]:
    """``--seed`` (repeatable) and ``--seeds 0,1,2`` as one tuple of distinct seeds."""
    seeds = list(repeated)
    if listed is not None:
        try:
            parsed = [int(x) for x in listed.split(",")]
        except ValueError:
            raise BenchError(f"--seeds {listed}: give integers separated by commas, e.g. 0,1,2") from None
        seeds = parsed if tuple(repeated) == (0,) else seeds + parsed  # --seeds replaces the default seed
    if len(set(seeds)) != len(seeds):
        raise BenchError(f"seed given twice: {', '.join(map(str, seeds))}")
    return tuple(seeds)


FAKE_MODEL = "fake"
"""The model name of ``--backend fake`` when no ``--model`` is given."""


def fake_label(backend: str, label: str) -> str:
    """A fake-backend row says it is fake: ``stories260K (fake)``, never a real model's bare name."""
    if backend != "fake":
        return label
    return label if label == FAKE_MODEL else f"{label} (fake)"


HUB_BACKENDS = ("hf", "vllm")
"""Backends that read ``--model`` from a folder or the Hugging Face Hub (the others name a served model)."""


def plan(options: RunOptions) -> Plan:
    from bench.hub import check_models
    from bench.locations import model_hint
    from bench.suite_loading import load_suite

    if not options.models and options.backend == "fake":
        options = replace(options, models=(FAKE_MODEL,))  # the fake backend reads no weights: any name will do
    if not options.models:
        raise BenchError("no model given: pass --model (a Hugging Face id or a local directory) or set BENCH_MODEL"
                         + model_hint())
    if options.backend in HUB_BACKENDS:
        from bench.model_args import parse_model

        check_models([parse_model(m).name for m in options.models])
    if options.batch_size < 1:
        raise BenchError(f"--batch-size must be >= 1, got {options.batch_size}")
    if options.compile and options.backend != "hf":
        raise BenchError(f"--compile applies to --backend hf only, not --backend {options.backend}")
    gen = options.generation
    if gen.max_new_tokens < 1 or gen.samples_per_prompt < 1:
        raise BenchError("--max-new-tokens and --samples-per-prompt must be >= 1")
    if gen.samples_per_prompt > MAX_SAMPLES_PER_PROMPT:
        raise BenchError(f"--samples-per-prompt is {str(gen.samples_per_prompt)[:40]}; at most "
                         f"{MAX_SAMPLES_PER_PROMPT:,} samples of a prompt per run")
    from bench.plan_checks import check_options

    check_options(options)
    registered = [s for s in options.suites if not s.lower().endswith(".jsonl")]
    if options.suite_path and len(registered) != 1:
        raise BenchError("--suite-path names the file of one registered suite; give exactly one such --suite with it")
    decoders, skipped = expand_decoders(options.decoders, {"hyperfit": bool(options.hyperfit),
                                                           "amateur": bool(options.amateur)})
    check_scoring(options, decoders)
    from bench.backends import model_files, plan_backend
    from bench.executors import check_executor

    decoders, backend_version, dtype = plan_backend(options, decoders, skipped)
    check_executor(options)
    suites = [
        load_suite(s, data_dir=options.data_dir, path=options.suite_path, num_prompts=options.num_prompts)
        for s in options.suites
    ]
    from bench.plan_checks import check_models, check_suites_for_scores

    check_suites_for_scores(options, suites)
    check_models(options)
    hyperfit_fp = _hyperfit_fingerprint(options.hyperfit) if options.hyperfit else ""
    hyperfit_info, warnings = _hyperfit_summary(options.hyperfit) if options.hyperfit else ({}, [])
    amateur_fp = amateur_fingerprint(options.amateur) if options.amateur else ""
    from bench.applied import defaults_notice, model_sampling_defaults

    runs, notices = [], []
    for text in options.models:
        base, model_dtype, tokenizer, config = plan_model(options, text, dtype)
        defaults = model_sampling_defaults(base.name, base.revision) if options.backend in ("hf", "vllm") else {}
        if defaults:
            notices.append(defaults_notice(base.label, defaults))
        if options.hyperfit and any(uses_hyperfit(get_decoder(d.name), d) for d in decoders):
            from bench.hyperfit.checkpoint import check_hyperfit

            check_hyperfit(options.hyperfit, base.name)
        if options.amateur and any(uses_amateur(get_decoder(d.name)) for d in decoders):
            check_amateur(options.amateur, base.name, tokenizer, config)
        for suite_spec, prompts in suites:
            check_prompt_lengths(prompts, tokenizer, config, gen.max_new_tokens, base.name, base.chat)
            for dspec in decoders:
                info = get_decoder(dspec.name)
                if info.check_model is not None and config is not None:
                    info.check_model(dspec, config)
                hyper = uses_hyperfit(info, dspec)
                model = replace(base, hyperfit=options.hyperfit, hyperfit_fingerprint=hyperfit_fp) if hyper else base
                if uses_amateur(info):
                    model = replace(model, amateur=options.amateur, amateur_fingerprint=amateur_fp)
                for seed in options.seeds or (gen.seed,):
                    spec = RunSpec(model, dspec, suite_spec, replace(gen, seed=seed), options.backend,
                                   backend_version, model_dtype)
                    runs.append(PlannedRun(spec, prompts, info, dict(hyperfit_info) if hyper else {}))
    return Plan(runs, skipped, warnings, notices)


def plan_model(options: RunOptions, text: str, run_dtype: str) -> tuple[ModelSpec, str, Any, Any]:
    """One ``--model`` value: its spec, the dtype its runs record, its tokenizer and config."""
    from bench.backends import backend_class, model_files
    from bench.model_args import check_chat_template, check_supported, parse_model

    request = parse_model(text)
    backend = backend_class(options.backend)
    check_supported(text, request, options.backend, backend.model_options)
    revision = request.get("revision") or options.revision
    scoped = replace(options, revision=revision, dtype=request.get("dtype") or options.dtype)
    tokenizer, config = model_files(scoped, request.name)
    chat = bool(options.chat_template or options.system_prompt)
    if chat:
        if "chat_template" not in backend.model_options:
            raise BenchError(f"--chat-template does not apply to --backend {options.backend}, which sends prompt text")
        check_chat_template(tokenizer, request.name)
    if options.backend in HUB_BACKENDS or Path(request.name).expanduser().exists():
        fingerprint, commit = runtime.model_identity(request.name, revision)
    else:  # a served or fake model's name is not a Hub id: never ask the Hub about it
        fingerprint, commit = "", None
    args = tuple(a for a in request.args if a[0] != "revision")
    from bench.runtime.naming import model_label

    from bench.runtime.gguf import gguf_file

    # A folder holding one GGUF file is that file: the same model, so the same run id either way.
    name = str(gguf_file(request.name) or request.name)
    spec = ModelSpec(name, revision, fingerprint, commit=commit, args=args, chat_template=chat,
                     system_prompt=options.system_prompt if chat else None,
                     display=request.label or fake_label(options.backend, model_label(request.name)))
    return spec, backend.run_dtype(scoped) if request.get("dtype") else run_dtype, tokenizer, config


def check_scoring(options: RunOptions, decoders: list[DecoderSpec]) -> None:
    """Plan-time checks of ``--score`` and ``--judge-against``: names, and that their models exist."""
    from bench.hub import check_models as check_hub_models

    if options.scores:
        from bench.scorers.model_based import ModelScoreSettings, check_names, check_score_models

        names = check_names(options.scores)
        settings = options.score_settings
        needed = {"mauve": "featurizer", "coherence": "scorer_model", "perplexity": "scorer_model"}
        for model in {settings.get(needed[n]) for n in names if n in needed} - {None}:
            check_hub_models([model])
            runtime.load_config(model)  # a missing featurizer or scorer stops the run before generating
        check_score_models(names, ModelScoreSettings.from_dict(settings))
        if "mauve" in names:
            from bench.scorers.mauve import check_length

            check_length(settings["featurizer"], settings.get("mauve_length"))
    if options.judge_against:
        target = get_decoder(options.judge_against.partition(":")[0]).name
        if not any(d.name == target for d in decoders):
            raise BenchError(f"--judge-against {options.judge_against}: that decoder is not among this run's decoders")
        judge = options.judge_settings
        if not (judge.get("url") or judge.get("local_model")):
            raise BenchError("--judge-against needs a judge: --judge-url URL --judge-model NAME, or --judge-local MODEL")
        if judge.get("local_model"):
            check_hub_models([judge["local_model"]])
            runtime.load_config(judge["local_model"])
            runtime.check_weights(judge["local_model"], role="judge model")
        if judge.get("chat_template"):
            from bench.judge.client import load_chat_template

            load_chat_template(judge["chat_template"])


def uses_hyperfit(info: DecoderInfo, spec: DecoderSpec) -> bool:
    """Whether the run's output depends on the hyperfitted checkpoint."""
    if info.runs_on_hyperfit:
        return True
    waived = any(spec.kwargs.get(w) is not None for w in info.waived_by)
    return "hyperfit" in info.requires and not waived


def _hyperfit_summary(path: str) -> tuple[dict[str, Any], list[str]]:
    """The hyperfit's final loss (for the run header and the leaderboard) and a warning when it
    stopped above its ``--stop-at-loss`` target."""
    from bench.hyperfit.checkpoint import read_metadata
    from bench.hyperfit.finish import loss_warning, target_warning

    meta = read_metadata(path) or {}
    loss = meta.get("final_loss")
    warnings = [f"--hyperfit {path}: {w}" for w in (target_warning(meta), loss_warning(meta)) if w]
    if meta.get("epoch_checkpoint") is not None:  # an epoch kept along the way (--save-every): no warning,
        warnings = []                             # its loss is high on purpose; the epoch is the axis
    info = {"hyperfit_loss": loss} if loss is not None else {}
    if isinstance(meta.get("epoch_checkpoint"), int):
        info["hyperfit_epoch"] = meta["epoch_checkpoint"]
    return info, warnings


def uses_amateur(info: DecoderInfo) -> bool:
    """Whether the run contrasts the model with the ``--amateur`` model (contrastive decoding)."""
    return "amateur" in info.requires


def _hyperfit_fingerprint(path: str) -> str:
    from bench.hyperfit.checkpoint import checkpoint_fingerprint

    return checkpoint_fingerprint(path)
