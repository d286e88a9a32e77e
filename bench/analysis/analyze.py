"""Run every experiment of the analysis and gather the results (no files written here)."""

from __future__ import annotations


import time
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.analysis.contexts import Pair, generate, load_pair, run_pass
from bench.analysis.control import ControlCollector, RankCollector, RankSummary, control_row, summarize_ranks
from bench.analysis.geometry import GeometryCollector, LensCollector
from bench.analysis.reweight import DEFAULT_ALPHAS, Sweep, run_sweep
from bench.stats import MAX_N_BOOT, Estimate, bootstrap_mean
from bench.errors import BenchError, check
from bench.runtime.threads import current as current_threads


@dataclass(frozen=True)
class Options:
    """Everything that changes the analysis' numbers; written to ``settings.json``."""

    model: str
    hyperfit: str
    suite: str
    num_prompts: int | None = 64
    max_new_tokens: int = 128
    batch_size: int = 16
    device: str = "auto"
    dtype: str = "auto"
    seed: int = 0
    tail_rank: int = 10
    top_k: int = 500
    alphas: tuple[float, ...] = DEFAULT_ALPHAS
    reweight_greedy: bool = True
    calib_prompts: int = 32
    calib_tokens: int = 64
    logit_lens: bool = False
    n_boot: int = 1000
    data_dir: str | None = None
    suite_path: str | None = None

    def validate(self) -> None:
        check(self.max_new_tokens >= 1, f"--max-new-tokens must be >= 1, got {self.max_new_tokens}")
        check(self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}")
        check(self.tail_rank >= 1, f"--tail-rank must be >= 1, got {self.tail_rank}")
        check(self.top_k >= 1, f"--top-k must be >= 1, got {self.top_k}")
        check(len(self.alphas) > 0, "--alphas: give at least one alpha")
        check(self.calib_prompts >= 1 and self.calib_tokens >= 1, "--calib-prompts and --calib-tokens must be >= 1")
        check(1 <= self.n_boot <= MAX_N_BOOT, f"--n-boot must be in 1..{MAX_N_BOOT:,}, got {str(self.n_boot)[:40]}")


@dataclass
class Results:
    options: Options
    prompts: int
    vocab_size: int
    layers: int
    control: list[dict[str, Any]]
    calibration: dict[str, Any]
    """The entropy-matched decoder's resolved calibration (T*, target and achieved entropy)."""
    ranks: RankSummary
    sweep: Sweep
    geometry: list[dict[str, Any]]
    lens: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    examples: dict[str, str] = field(default_factory=dict)
    """The first prompt's continuation under each control condition."""

    def settings(self) -> dict[str, Any]:
        return {"options": asdict(self.options), "prompts": self.prompts, "vocab_size": self.vocab_size,
                "layers": self.layers, "entropy_matched_calibration": self.calibration,
                "static_reweight_calibration": self.sweep.calibration, "timings_s": self.timings,
                "threads": current_threads()}


def _geometry_rows(geo: GeometryCollector, n_boot: int, seed: int) -> list[dict[str, Any]]:
    pr_base, pr_hyper = geo.participation_ratios()
    return [{"layer": layer, "pr_base": pr_base[layer], "pr_hyper": pr_hyper[layer],
             "delta_dim": pr_hyper[layer] - pr_base[layer],
             "cosine": bootstrap_mean(geo.cosine[:, layer], n_boot, seed),
             "l2": bootstrap_mean(geo.l2[:, layer], n_boot, seed)} for layer in range(len(pr_base))]


def _lens_rows(lens: LensCollector, n_boot: int, seed: int) -> list[dict[str, Any]]:
    layers = lens.agreement["base"].shape[1]
    return [{"layer": layer, "base": bootstrap_mean(lens.agreement["base"][:, layer], n_boot, seed),
             "hyper": bootstrap_mean(lens.agreement["hyper"][:, layer], n_boot, seed)} for layer in range(layers)]


def analyze(opts: Options, pair: Pair | None = None, log: Any = None) -> Results:
    """Load the pair (unless given), generate, run the teacher-forced passes and the sweep."""
    from bench.decoding import Greedy
    from bench.suite_loading import load_suite
    from decoders.entropy_matched import entropy_matched
    from decoders.temperature import temperature

    opts.validate()
    say = log or (lambda msg: None)
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 3)
        clock = now

    _, prompts = load_suite(opts.suite, data_dir=opts.data_dir, path=opts.suite_path, num_prompts=opts.num_prompts)
    if pair is None:
        pair = load_pair(opts.model, opts.hyperfit, device=opts.device, dtype=opts.dtype)
    if any(len(ids) == 0 for ids in pair.base.encode([p.text for p in prompts])):
        raise BenchError(f"suite '{opts.suite}' has a prompt that encodes to no tokens")
    lap("load")
    gen = dict(max_new_tokens=opts.max_new_tokens, batch_size=opts.batch_size, seed=opts.seed)
    n, nb, seed = len(prompts), opts.n_boot, opts.seed

    say(f"generating: hyperfitted greedy, base T=1 ({n} prompts); calibrating T* on {min(opts.calib_prompts, n)} "
        f"prompts x {opts.calib_tokens} tokens" + (f" (--calib-prompts {opts.calib_prompts} capped at {n})"
                                                   if opts.calib_prompts > n else ""))
    hyper_conts = generate(pair.hyper, prompts, Greedy(), **gen)
    base_conts = generate(pair.base, prompts, temperature(t=1.0), **gen)
    matched = entropy_matched(mode="global", calib_prompts=opts.calib_prompts, calib_tokens=opts.calib_tokens)
    calibration = matched.calibrate(pair.base, pair.hyper, prompts)
    matched_conts = generate(pair.base, prompts, matched, **gen)
    lap("generate")

    say("teacher-forced passes: control, ranks, geometry" + (", logit lens" if opts.logit_lens else ""))
    t_star = float(calibration["temperature"])
    conditions = [("base T=1", "base model, sampled at T=1", base_conts, "base", 1.0),
                  ("base T*", f"base model, sampled at entropy-matched T*={t_star:.4f}", matched_conts, "base", t_star),
                  ("hyperfitted greedy", "hyperfitted model, greedy", hyper_conts, "hyper", 1.0)]
    control = []
    ranks, geo = RankCollector(n), GeometryCollector(n)
    lens = LensCollector(n, pair.base.model, pair.hyper.model) if opts.logit_lens else None
    for name, desc, conts, source, t in conditions:
        ctl = ControlCollector(n, source=source, temperature=t)
        extra = [ranks, geo] + ([lens] if lens else []) if source == "hyper" else []
        run_pass(pair, prompts, conts, [ctl, *extra], batch_size=opts.batch_size, hidden=bool(extra))
        texts = [pair.base.decode(c) for c in conts]
        control.append(control_row(name, desc, texts, conts, ctl, nb, seed))
    lap("teacher_forced")

    say(f"static reweighting sweep over alpha = {', '.join(map(str, opts.alphas))}")
    sweep = run_sweep(pair, prompts, prompts[: opts.calib_prompts], opts.alphas, top_k=opts.top_k,
                      greedy=opts.reweight_greedy, calib_tokens=opts.calib_tokens,
                      max_new_tokens=opts.max_new_tokens, batch_size=opts.batch_size, seed=seed, n_boot=nb)
    lap("sweep")
    geometry = _geometry_rows(geo, nb, seed)
    examples = {name: pair.base.decode(conts[0]) for name, _, conts, _, _ in conditions}
    return Results(opts, n, int(pair.base.model.get_output_embeddings().weight.size(0)), len(geometry) - 1,
                   control, calibration, summarize_ranks(ranks, opts.tail_rank, nb, seed), sweep, geometry,
                   _lens_rows(lens, nb, seed) if lens else [], timings, examples)


def estimate_dict(e: Estimate, prefix: str) -> dict[str, float]:
    """Flatten an Estimate into CSV columns ``prefix``, ``prefix_low``, ``prefix_high``."""
    return {prefix: e.value, f"{prefix}_low": e.low, f"{prefix}_high": e.high}
