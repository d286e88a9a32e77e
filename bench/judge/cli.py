"""``bench judge RUN_A RUN_B``: pairwise LLM-judge preference of run A over run B."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click

from bench.errors import BenchError
from bench.runtime.threads import threads_option


def _records(path: str) -> tuple[str, list[dict[str, Any]]]:
    """A run folder (with generations.jsonl) or a generations JSONL file -> (label, records)."""
    from bench.publish import complete_runs
    from bench.store import GENERATIONS, HEADER, RunDir, read_records

    p = Path(path)
    f = p / GENERATIONS if p.is_dir() else p
    if not f.is_file():
        raise BenchError(f"{path} is neither a run folder with {GENERATIONS} nor a JSONL file")
    if p.is_dir() and (p / HEADER).is_file():  # a run: checked, and judged only when finished
        run = complete_runs([RunDir(p)], can_skip=False)[0]
        records = run.records()
    else:
        records = read_records(f)
    if not records:
        raise BenchError(f"{f} holds no generations")
    return (p.name if p.is_dir() else p.stem), records


@click.command("judge")
@click.argument("run_a")
@click.argument("run_b")
@click.option("--judge-url", default=None, help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1.")
@click.option("--judge-model", default=None, help="Model name to request from the endpoint.")
@click.option("--judge-key-env", default="OPENAI_API_KEY", show_default=True,
              help="Environment variable holding the API key (the key itself is never written).")
@click.option("--judge-local", default=None, metavar="PATH", help="Judge with a local Hugging Face model instead.")
@click.option("--judge-chat-template", default=None, metavar="plain|FILE",
              help="Render the judge's messages with this Jinja chat template ('plain': system, blank line, user) and send them to /completions; for served models without a chat template.")
@click.option("--template", default=None, metavar="PATH", help="Rubric TOML (default: the built-in coherence/diversity rubric).")
@click.option("--cache", default=None, metavar="PATH",
              help="Verdict cache JSONL (default: judge_verdicts.jsonl beside RUN_A).")
@click.option("--concurrency", type=int, default=4, show_default=True, help="Judge requests in flight at once.")
@click.option("--max-retries", type=int, default=5, show_default=True, help="Retries of a failed judge request.")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds per request.")
@click.option("--max-tokens", type=int, default=512, show_default=True, help="Most tokens the judge may answer with.")
@click.option("--device", default="auto", show_default=True, help="Device of a local judge.")
@click.option("--out", default=None, metavar="FILE", help="Also write the result as JSON here.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@threads_option
def judge(run_a: str, run_b: str, **kw: Any) -> None:
    """Which run's continuations better extend the same prompts? Both orders per pair; ties on disagreement."""
    from bench.judge import JudgeSettings
    from bench.judge.pairwise import judge_records
    from bench.outputs import writable_file
    from bench.runtime.threads import apply

    apply(kw.pop("threads"))
    if kw["out"]:
        writable_file(kw["out"], "--out", (run_a, run_b))  # before a verdict is paid for
    label_a, recs_a = _records(run_a)
    label_b, recs_b = _records(run_b)
    cache = kw["cache"] or str((Path(run_a) if Path(run_a).is_dir() else Path(run_a).parent).parent / "judge_verdicts.jsonl")
    settings = JudgeSettings(
        cache=cache, url=kw["judge_url"], model=kw["judge_model"], key_env=kw["judge_key_env"],
        local_model=kw["judge_local"], template=kw["template"], chat_template=kw["judge_chat_template"], concurrency=kw["concurrency"],
        max_retries=kw["max_retries"], timeout=kw["timeout"], max_tokens=kw["max_tokens"], device=kw["device"],
    )
    settings.validate()
    result = judge_records(recs_a, recs_b, settings)
    result.update(run_a=label_a, run_b=label_b)
    if kw["out"]:
        from bench.runtime import write_json_atomic

        Path(kw["out"]).parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(Path(kw["out"]), result)
    if kw["as_json"]:
        click.echo(json.dumps({k: v for k, v in result.items() if k != "outcomes"}, indent=2))
        return
    rate = result["win_rate_a"]
    lo, hi = result["ci"]
    shown = "n/a" if math.isnan(rate) else f"{rate:.3f} [{lo:.3f}, {hi:.3f}]"
    click.echo(f"A = {label_a}\nB = {label_b}\njudge {result['judge']}, rubric {result['template']}")
    click.echo(f"pairs {result['pairs']}: A wins {result['wins_a']}, B wins {result['wins_b']}, "
               f"ties {result['ties']}, invalid {result['invalid']}")
    click.echo(f"win rate of A (ties half): {shown}; sign test p = {result['sign_test_p']:.4g}")
    click.echo(f"requests {result['requests']} (retries {result['retries']}), "
               f"verdicts reused from cache {result['verdicts_cached_before']}, cache {cache}")
