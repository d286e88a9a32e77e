"""``bench parity RUN_A RUN_B``: do two runs of one spec on two backends, dtypes or devices agree?

HF against vLLM, float32 against bfloat16, CPU against GPU: the same decoder, suite, lengths and
seed; only where it ran differs. The question is whether a difference is a fault or the expected
arithmetic of another kernel.

- A deterministic decoder (greedy, beam, contrastive, ...): each record pair is equal token for
  token, or its first differing position is found and, with ``--margins``, the reference model (run
  A's, loaded with the HF backend in float32) says how close its top two logits were there. A
  near-tie (margin under ``--tie-margin``) is the expected kind of difference; a wide margin is a
  fault. Agreement = the share of records equal or diverging at a near-tie.
- A sampling decoder: the records' random streams differ across backends, so tokens are not
  comparable; the first token's distribution over all samples of a prompt is. Per prompt, the
  total-variation distance between A's and B's first tokens, averaged over prompts, and a
  chi-square test of homogeneity summed over prompts (its p-value; it wants about 20 or more
  samples a prompt to be trusted).

``--fail-below X`` makes it a gate: exit 1 when the agreement (deterministic) or the p-value
(sampling) is below X.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import click

from bench.errors import BenchError

TIE_MARGIN = 0.05
"""Default near-tie margin, in logits, between float32 runs (other kernels differ by far less)."""
HALF_TIE_MARGIN = 0.5
"""Default near-tie margin when either run is bfloat16 or float16 (8 or 11 bits of mantissa)."""
SAME_FIELDS = ("decoder", "suite", "generation")
"""What two runs must share to be compared: everything but where they ran (backend, dtype, device)."""


@dataclass
class Divergence:
    """Where a record pair first differs."""

    prompt_id: str
    sample_index: int
    position: int
    token_a: int | None
    token_b: int | None
    margin: float | None = None
    """Top-1 minus top-2 logit of the reference model there (None without ``--margins``)."""
    top_two: bool | None = None
    """Whether the two chosen tokens are the reference's top two."""


@dataclass
class Parity:
    kind: str
    """``deterministic`` or ``sampling``."""
    pairs: int
    equal: int = 0
    divergences: list[Divergence] = field(default_factory=list)
    mean_tv: float | None = None
    chi2: float | None = None
    dof: int | None = None
    p_value: float | None = None

    def agreement(self, tie_margin: float) -> float:
        excused = sum(1 for d in self.divergences if d.margin is not None and d.margin < tie_margin)
        return (self.equal + excused) / self.pairs if self.pairs else math.nan

    def score(self, tie_margin: float) -> float:
        """What ``--fail-below`` compares: the agreement, or the chi-square p-value."""
        return self.agreement(tie_margin) if self.kind == "deterministic" else float(self.p_value)


def check_comparable(spec_a: Any, spec_b: Any) -> list[str]:
    """The fields the two runs differ in (allowed: backend, version, dtype, model naming); one line if more."""
    a, b = spec_a.to_dict(), spec_b.to_dict()
    for key in SAME_FIELDS:
        if a[key] != b[key]:
            raise BenchError(f"the runs differ in {key} ({json.dumps(a[key])[:80]} against {json.dumps(b[key])[:80]}); "
                             "parity compares one spec run in two places")
    return [k for k in ("backend", "backend_version", "dtype", "model") if a[k] != b[k]]


def _key(record: dict[str, Any]) -> tuple[str, int]:
    return record["prompt_id"], record["sample_index"]


def _tokens(record: dict[str, Any]) -> list[Any]:
    return record["token_ids"] if record.get("token_ids") is not None else record["continuation"].split()


def deterministic(records_a: list[dict[str, Any]], records_b: list[dict[str, Any]]) -> Parity:
    b_by_key = {_key(r): r for r in records_b}
    shared = [(r, b_by_key[_key(r)]) for r in records_a if _key(r) in b_by_key]
    out = Parity("deterministic", len(shared))
    for ra, rb in shared:
        ta, tb = _tokens(ra), _tokens(rb)
        if ta == tb:
            out.equal += 1
            continue
        pos = next((i for i, (x, y) in enumerate(zip(ta, tb)) if x != y), min(len(ta), len(tb)))
        pick = lambda t: t[pos] if pos < len(t) and isinstance(t[pos], int) else None  # noqa: E731
        out.divergences.append(Divergence(ra["prompt_id"], ra["sample_index"], pos, pick(ta), pick(tb)))
    return out


def first_token_test(records_a: list[dict[str, Any]], records_b: list[dict[str, Any]]) -> Parity:
    """Total variation and a chi-square test of homogeneity of the first token, per prompt, summed."""
    import torch

    def firsts(records: list[dict[str, Any]]) -> dict[str, Counter]:
        out: dict[str, Counter] = {}
        for r in records:
            tokens = _tokens(r)
            out.setdefault(r["prompt_id"], Counter())[tokens[0] if tokens else None] += 1
        return out

    fa, fb = firsts(records_a), firsts(records_b)
    shared = sorted(set(fa) & set(fb))
    tvs, chi2, dof = [], 0.0, 0
    for pid in shared:
        ca, cb = fa[pid], fb[pid]
        na, nb = sum(ca.values()), sum(cb.values())
        tokens = sorted(set(ca) | set(cb), key=str)
        tvs.append(0.5 * sum(abs(ca[t] / na - cb[t] / nb) for t in tokens))
        if len(tokens) < 2:
            continue
        for t in tokens:  # the 2 x K table's expected counts under one shared distribution
            total = ca[t] + cb[t]
            for observed, n in ((ca[t], na), (cb[t], nb)):
                expected = total * n / (na + nb)
                chi2 += (observed - expected) ** 2 / expected
        dof += len(tokens) - 1
    p = float(torch.special.gammaincc(torch.tensor(dof / 2, dtype=torch.float64),
                                      torch.tensor(chi2 / 2, dtype=torch.float64))) if dof else 1.0
    pairs = sum(min(sum(fa[p_].values()), sum(fb[p_].values())) for p_ in shared)
    return Parity("sampling", pairs, mean_tv=sum(tvs) / len(tvs) if tvs else math.nan, chi2=chi2, dof=dof, p_value=p)


def add_margins(result: Parity, spec: Any, records: list[dict[str, Any]], device: str = "cpu") -> None:
    """The reference model's top-2 logit margin at each divergence (run A's model, HF, float32)."""
    import torch

    from bench.model_args import ChatTemplate
    from bench.runtime import load_model, load_tokenizer

    if not result.divergences:
        return
    model = load_model(spec.model.name, revision=spec.model.revision, dtype="float32", device=device)
    tokenizer = load_tokenizer(spec.model.name, spec.model.revision, left_pad=False)
    by_key = {_key(r): r for r in records}
    chat = ChatTemplate(spec.model.system_prompt) if spec.model.chat_template else None
    for d in result.divergences:
        record = by_key[(d.prompt_id, d.sample_index)]
        if record.get("token_ids") is None:
            continue
        prompt = chat.ids(tokenizer, record["prompt"]) if chat else tokenizer(record["prompt"])["input_ids"]
        ids = torch.tensor([prompt + record["token_ids"][: d.position]], device=device)
        with torch.inference_mode():
            logits = model(input_ids=ids).logits[0, -1].double()
        top = torch.topk(logits, 2)
        d.margin = float(top.values[0] - top.values[1])
        d.top_two = {d.token_a, d.token_b} == set(top.indices.tolist())


@click.command("parity")
@click.argument("run_a")
@click.argument("run_b")
@click.option("--margins", is_flag=True,
              help="Load run A's model (HF, float32) to measure the top-2 logit margin where records diverge.")
@click.option("--tie-margin", type=float, default=None,
              help="A divergence whose margin is below this (logits) is a near-tie, not a fault [default: "
                   "0.5 when either run is bfloat16 or float16, else 0.05].")
@click.option("--fail-below", type=float, default=None, metavar="X",
              help="Exit 1 when the agreement (deterministic) or the p-value (sampling) is below X.")
@click.option("--device", default="cpu", show_default=True, help="Device of the reference model for --margins.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def parity(run_a: str, run_b: str, margins: bool, tie_margin: float | None, fail_below: float | None, device: str,
           as_json: bool) -> None:
    """Do two runs of one spec (two backends, dtypes or devices) agree? Records or first-token distributions."""
    from bench.publish import complete_runs, find_runs
    from bench.registry import get_decoder

    from bench.runtime.devices import resolve_device

    device = resolve_device(device)  # one line for a device torch would not understand, before any work
    if tie_margin is not None and not (tie_margin >= 0 and math.isfinite(tie_margin)):
        raise BenchError(f"--tie-margin must be a finite number >= 0, got {tie_margin}")
    if fail_below is not None and not 0 <= fail_below <= 1:
        raise BenchError(f"--fail-below must be in [0, 1], got {fail_below}")
    runs = []
    for path in (run_a, run_b):
        found = find_runs([path])
        if len(found) != 1:
            raise BenchError(f"{path} holds {len(found)} runs; name one run folder")
        runs.append(complete_runs(found, can_skip=False)[0])
    spec_a, spec_b = runs[0].spec(), runs[1].spec()
    differs = check_comparable(spec_a, spec_b)
    if tie_margin is None:  # half precision rounds logits of about 20 by 0.1 and more: measured, docs/backends.md
        tie_margin = HALF_TIE_MARGIN if {spec_a.dtype, spec_b.dtype} & {"bfloat16", "float16"} else TIE_MARGIN
    records_a, records_b = runs[0].records(), runs[1].records()
    if get_decoder(spec_a.decoder.name).sampling:
        result = first_token_test(records_a, records_b)
    else:
        result = deterministic(records_a, records_b)
        if margins:
            add_margins(result, spec_a, records_a, device)
    if not result.pairs:
        raise BenchError("the runs share no records (no prompt id and sample index in common)")
    score = result.score(tie_margin)
    passed = fail_below is None or score >= fail_below
    _report(result, spec_a, spec_b, differs, tie_margin, score, fail_below, passed, as_json)
    if not passed:
        raise SystemExit(1)


def _report(result: Parity, spec_a: Any, spec_b: Any, differs: list[str], tie_margin: float, score: float,
            fail_below: float | None, passed: bool, as_json: bool) -> None:
    where = lambda s: f"{s.backend} {s.dtype} ({s.model.label})"  # noqa: E731
    if as_json:
        click.echo(json.dumps({"kind": result.kind, "pairs": result.pairs, "equal": result.equal,
                               "agreement": result.agreement(tie_margin) if result.kind == "deterministic" else None,
                               "mean_tv": result.mean_tv, "chi2": result.chi2, "dof": result.dof,
                               "p_value": result.p_value, "differs_in": differs, "passed": passed,
                               "divergences": [vars(d) for d in result.divergences]}, indent=2))
        return
    click.echo(f"A = {where(spec_a)}\nB = {where(spec_b)}\n{spec_a.decoder.label}, {result.kind}; "
               f"the runs differ in: {', '.join(differs) or 'nothing (the same spec: two devices or machines)'}")
    if result.kind == "deterministic":
        click.echo(f"records {result.pairs}: equal {result.equal}, diverging {len(result.divergences)}; "
                   f"agreement {result.agreement(tie_margin):.4f} (equal, or diverging at a near-tie under "
                   f"{tie_margin:g} logits)")
        for d in result.divergences[:20]:
            margin = "margin not measured (--margins)" if d.margin is None else \
                f"margin {d.margin:.4f}: {'near-tie' if d.margin < tie_margin else 'REAL'}" + \
                ("" if d.top_two else ", not the top two")
            click.echo(f"  {d.prompt_id}#{d.sample_index} at token {d.position}: {d.token_a} vs {d.token_b}, {margin}")
        if len(result.divergences) > 20:
            click.echo(f"  ... {len(result.divergences) - 20} more (--json lists all)")
    else:
        click.echo(f"first tokens of {result.pairs} paired samples: mean total variation {result.mean_tv:.4f}; "
                   f"chi-square {result.chi2:.2f} on {result.dof} df, p = {result.p_value:.4g}")
    if fail_below is not None:
        click.echo(f"parity {'PASS' if passed else 'FAIL'}: {score:.4g} {'>=' if passed else '<'} {fail_below:g}")
