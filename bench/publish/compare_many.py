"""``bench compare A B C ...``: every pair of runs, Holm-corrected, and a ranking (issue 25, part 4).

With more than two runs, each pair (i < j) is compared as ``bench compare`` compares two (a paired
bootstrap over their shared prompts, :func:`bench.publish.compare.compare_runs`). Testing many pairs
inflates false positives, so within each metric the pairs' p-values are Holm-corrected (step-down:
the k-th smallest of m p-values is multiplied by m - k + 1, kept monotone, capped at 1); a verdict
is significant when the corrected p is below 0.05. The family is one metric's pairs: metrics
answer different questions and are read one at a time.

The runs are also ranked by Pareto rank on the quality-diversity front the leaderboard draws
(diversity against the first quality metric every run has: MAUVE, coherence, else rep-2): rank 1
is the front, rank 2 the front once rank 1 is set aside, and so on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.publish.compare import ALPHA, Diff, compare_runs
from bench.store import RunDir


@dataclass
class PairDiff:
    """One metric of one pair: B - A with its Holm-corrected p-value."""

    a: str
    b: str
    diff: Diff
    p_holm: float | None = None

    @property
    def verdict(self) -> str:
        if self.p_holm is None:
            return self.diff.verdict
        return self.diff.verdict if self.p_holm < ALPHA else "n.s."


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input's order."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def compare_all(runs: list[RunDir], labels: list[str], n_boot: int, seed: int,
                mauve_boot: int | None = None) -> list[PairDiff]:
    """Every pair's comparison, with Holm-corrected p-values within each metric (MAUVE's too)."""
    out: list[PairDiff] = []
    for i in range(len(runs)):
        for j in range(i + 1, len(runs)):
            diffs, _ = compare_runs(runs[i], runs[j], n_boot=n_boot, seed=seed, mauve_boot=mauve_boot)
            out += [PairDiff(labels[i], labels[j], d) for d in diffs]
    for metric in dict.fromkeys(p.diff.metric for p in out):
        tested = [p for p in out if p.diff.metric == metric and p.diff.p is not None]
        for pair, adjusted in zip(tested, holm([p.diff.p for p in tested])):
            pair.p_holm = adjusted
    return out


def pareto_ranks(points: list[tuple[float, float]], higher_is_better: tuple[bool, bool]) -> list[int]:
    """Non-dominated sorting: 1 for the front, 2 for the front of the rest, ..."""
    from bench.publish.front import pareto_mask

    ranks, left, rank = [0] * len(points), list(range(len(points))), 1
    while left:
        mask = pareto_mask([points[i] for i in left], higher_is_better)
        for i, on in zip(left, mask):
            if on:
                ranks[i] = rank
        left = [i for i, on in zip(left, mask) if not on]
        rank += 1
    return ranks


def ranking(runs: list[RunDir], labels: list[str]) -> tuple[str | None, list[tuple[str, int, float, float]]]:
    """(quality metric, [(label, Pareto rank, diversity, quality)]) by rank, or (None, []) without a quality metric."""
    from bench.leaderboard import rows_for_runs
    from bench.metrics import METRICS
    from bench.publish.front import DIVERSITY, quality_metric

    rows = [next(r for r in rows_for_runs([run], per_seed=True) if r.get("model") != "human") for run in runs]
    quality = quality_metric(rows)
    if quality is None:
        return None, []
    points = [(float(r[DIVERSITY]), float(r[quality])) for r in rows]
    ranks = pareto_ranks(points, (True, METRICS[quality].direction != "lower"))
    order = sorted(range(len(runs)), key=lambda i: (ranks[i], -points[i][0]))
    return quality, [(labels[i], ranks[i], *points[i]) for i in order]


PAIR_COLUMNS = ["metric", "A", "B", "B-A", "ci_lo", "ci_hi", "p", "p_holm", "verdict"]


def pair_rows(pairs: list[PairDiff]) -> list[dict[str, Any]]:
    return [{"metric": p.diff.metric, "A": p.a, "B": p.b, "B-A": p.diff.diff, "ci_lo": p.diff.lo, "ci_hi": p.diff.hi,
             "p": p.diff.p, "p_holm": p.p_holm, "verdict": p.verdict} for p in pairs]


def render(pairs: list[PairDiff], metrics: list[str], heading: str) -> Any:
    from rich.table import Table

    from bench.publish.compare import _num

    table = Table(title=heading)
    for col in PAIR_COLUMNS:
        table.add_column(col, justify="left" if col in ("metric", "A", "B", "verdict") else "right")
    styles = {"B better": "green", "B worse": "red", "differs": "yellow"}
    for row in pair_rows([p for p in pairs if p.diff.metric in metrics]):
        cells = [_num(v, ".4g") if isinstance(v, float) or v is None else str(v) for v in row.values()]
        if row["verdict"] in styles:
            cells[-1] = f"[{styles[row['verdict']]}]{cells[-1]}[/]"
        table.add_row(*cells)
    return table


# --- Bradley-Terry from pairwise judge verdicts -------------------------------------------------

PRIOR_TIES = 1.0
"""Virtual ties added to every judged pair of runs (half a win each way), so that a run winning all
its pairs keeps a finite strength; it pulls strengths towards each other by that much."""


def read_judged(paths: list[str]) -> list[dict[str, Any]]:
    """``bench judge --out`` files: run_a, run_b and the outcome of each prompt; one line if malformed."""
    import json
    from pathlib import Path

    from bench.errors import BenchError

    out = []
    for path in paths:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as exc:
            raise BenchError(f"--judged {path}: not a readable 'bench judge --out' file ({type(exc).__name__})") from None
        if not (isinstance(data, dict) and isinstance(data.get("outcomes"), list) and data.get("run_a")
                and data.get("run_b")):
            raise BenchError(f"--judged {path}: not a 'bench judge --out' file (no run_a, run_b and outcomes)")
        out.append(data)
    return out


def _wins(judged: list[dict[str, Any]], index: dict[str, int], prompts: dict[str, int] | None = None) -> Any:
    """wins[i, j]: how often run i beat run j (ties half each), each prompt weighted by its draw count."""
    import numpy as np

    wins = np.zeros((len(index), len(index)))
    for result in judged:
        a, b = index[result["run_a"]], index[result["run_b"]]
        for o in result["outcomes"]:
            weight = 1.0 if prompts is None else prompts.get(o["prompt_id"], 0)
            if o["outcome"] == "a":
                wins[a, b] += weight
            elif o["outcome"] == "b":
                wins[b, a] += weight
            elif o["outcome"] == "tie":
                wins[a, b] += weight / 2
                wins[b, a] += weight / 2
    return wins


def bradley_terry(wins: Any, judged_pairs: Any, iterations: int = 500) -> Any:
    """Log-strengths (mean 0) by Hunter's (2004) MM algorithm, with :data:`PRIOR_TIES` per judged pair."""
    import numpy as np

    w = wins + judged_pairs * PRIOR_TIES / 2
    games = w + w.T
    p = np.ones(len(w))
    for _ in range(iterations):
        denom = (games / (p[:, None] + p[None, :])).sum(axis=1)
        new = w.sum(axis=1) / np.where(denom > 0, denom, 1)
        new = new / np.exp(np.log(new).mean())
        if np.allclose(new, p, rtol=1e-10, atol=0):
            p = new
            break
        p = new
    return np.log(p)


def judge_ranking(runs: list[RunDir], labels: list[str], judged: list[dict[str, Any]], n_boot: int,
                  seed: int) -> list[tuple[str, float, float, float]]:
    """(label, log-strength, 95% low, high) by strength; intervals resample prompts, every judge file together."""
    import numpy as np

    from bench.errors import BenchError
    from bench.stats import percentile_interval

    index = {run.run_id: i for i, run in enumerate(runs)}
    for result in judged:
        for side in ("run_a", "run_b"):
            if result[side] not in index:
                raise BenchError(f"--judged: run {result[side]} was judged but is not among the runs compared")
    judged_pairs = np.zeros((len(runs), len(runs)))
    for result in judged:
        a, b = index[result["run_a"]], index[result["run_b"]]
        judged_pairs[a, b] = judged_pairs[b, a] = 1
    if not _connected(judged_pairs):
        raise BenchError("--judged: the judged pairs do not connect every run; judge more pairs to rank them all")
    theta = bradley_terry(_wins(judged, index), judged_pairs)
    prompts = sorted({o["prompt_id"] for r in judged for o in r["outcomes"]})
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot):
        counts = np.bincount(rng.integers(0, len(prompts), len(prompts)), minlength=len(prompts))
        draws.append(bradley_terry(_wins(judged, index, dict(zip(prompts, counts))), judged_pairs))
    draws = np.array(draws)
    rows = [(labels[i], float(theta[i]), *percentile_interval(draws[:, i])) for i in range(len(runs))]
    return sorted(rows, key=lambda r: -r[1])


def _connected(adjacency: Any) -> bool:
    seen, todo = {0}, [0]
    while todo:
        i = todo.pop()
        for j in map(int, adjacency[i].nonzero()[0]):
            if j not in seen:
                seen.add(j)
                todo.append(j)
    return len(seen) == len(adjacency)
