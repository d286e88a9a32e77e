"""Judge two runs' continuations pair by pair, in both orders, through the verdict cache."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.errors import BenchError
from bench.judge import JudgeSettings
from bench.judge.cache import VerdictCache, verdict_key
from bench.judge.client import JudgeUnavailable, LocalJudge, OpenAIJudge
from bench.judge.stats import summarize
from bench.judge.template import Template, load_template
from bench.outputs import disk_full_message, is_disk_full


def make_judge(s: JudgeSettings):
    """The endpoint or local judge the settings name."""
    if bool(s.url) == bool(s.local_model):
        raise BenchError("give exactly one judge: an endpoint (--judge-url with --judge-model) or --judge-local PATH")
    if s.url:
        if not s.model:
            raise BenchError("--judge-url needs --judge-model")
        return OpenAIJudge(s.url, s.model, s.key_env, s.timeout, s.max_retries, s.backoff, s.max_backoff, s.max_tokens,
                           chat_template=s.chat_template)
    return LocalJudge(s.local_model, s.device, max_tokens=min(s.max_tokens, 64))


def align(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Records of both runs on the same (prompt id, sample index), in a fixed order."""
    by_key = {(r["prompt_id"], r["sample_index"]): r for r in b}
    pairs = []
    for r in sorted(a, key=lambda r: (r["prompt_id"], r["sample_index"])):
        other = by_key.get((r["prompt_id"], r["sample_index"]))
        if other is None:
            continue
        if other["prompt"] != r["prompt"]:
            raise BenchError(f"prompt '{r['prompt_id']}' differs between the two runs; judge runs of the same suite")
        pairs.append((r, other))
    if not pairs:
        raise BenchError("the two runs share no (prompt, sample); judge runs of the same suite")
    return pairs


def _verdict(judge, template: Template, cache: VerdictCache, prompt: str, first: str, second: str) -> tuple[str, str]:
    """(``first``/``second``/``tie``/``invalid``, the judge's answer) for one ordered pair, from the cache or the judge."""
    key = verdict_key(judge.ident, template.ident, prompt, first, second)
    hit = cache.get(key)
    if hit is not None:
        return hit["verdict"], str(hit.get("answer") or "")
    system, user = template.render(prompt, first, second)
    answer = judge.complete(system, user)
    verdict = template.parse(answer)
    cache.put({"key": key, "judge": judge.ident, "template": template.ident, "verdict": verdict, "answer": answer})
    return verdict, answer


def combine(ab: str, ba: str) -> str:
    """Outcome of a pair from its two orders: ``ab`` shows A first, ``ba`` shows B first."""
    if "invalid" in (ab, ba):
        return "invalid"
    pref_ab = {"first": "a", "second": "b", "tie": "tie"}[ab]
    pref_ba = {"first": "b", "second": "a", "tie": "tie"}[ba]
    return pref_ab if pref_ab == pref_ba else "tie"


def judge_records(a: list[dict[str, Any]], b: list[dict[str, Any]], s: JudgeSettings, judge=None) -> dict[str, Any]:
    """Judge every shared pair in both orders; raises BenchError when the judge becomes unreachable."""
    s.validate()
    template = load_template(s.template)
    pairs = align(a, b)
    cache = VerdictCache(s.cache)
    cached_before = len(cache)
    judge = judge or make_judge(s)
    stop = threading.Event()
    failure: list[str] = []

    def job(rec_a: dict[str, Any], rec_b: dict[str, Any]) -> tuple[str, dict[str, str] | None] | None:
        """(outcome, the judge's answers in both orders: its rationale), None once stopped."""
        try:
            if stop.is_set():
                return None
            if rec_a["continuation"] == rec_b["continuation"]:
                return "tie", None  # identical texts: nothing to judge, nothing to pay
            ab, why_ab = _verdict(judge, template, cache, rec_a["prompt"], rec_a["continuation"], rec_b["continuation"])
            if stop.is_set():
                return None
            ba, why_ba = _verdict(judge, template, cache, rec_a["prompt"], rec_b["continuation"], rec_a["continuation"])
            return combine(ab, ba), {"a_first": why_ab, "b_first": why_ba}
        except JudgeUnavailable as exc:
            stop.set()
            failure.append(str(exc))
            return None
        except BaseException:
            stop.set()  # a full disk or a refused request: the other workers stop asking
            raise

    try:
        with ThreadPoolExecutor(max_workers=s.concurrency) as pool:
            outcomes = list(pool.map(lambda p: job(*p), pairs))
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        raise BenchError(disk_full_message(exc, s.cache, f"{len(cache)} verdicts kept")) from None
    finally:
        judge.close()
    if failure:
        raise BenchError(f"{failure[0]}; {len(cache)} verdicts kept in {s.cache} (run again to resume)")
    result = summarize([o for o, _ in outcomes], n_boot=s.n_boot, seed=s.seed,
                       prompt_ids=[ra["prompt_id"] for ra, _ in pairs])
    result.update(
        judge=judge.ident, template=template.ident, requests=judge.requests, retries=judge.retries,
        verdicts_cached_before=cached_before, verdicts_new=len(cache) - cached_before, settings=s.recorded(),
        outcomes=[{"prompt_id": ra["prompt_id"], "sample_index": ra["sample_index"], "outcome": o,
                   **({"answers": why} if why else {})} for (ra, _), (o, why) in zip(pairs, outcomes)],
    )
    return result
