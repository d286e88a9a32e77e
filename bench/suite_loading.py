"""Turn a ``--suite`` value into a :class:`SuiteSpec` and its prompts, optionally a subset.

``--suite`` is either a registered name (``wikitext``, ``cd-wikitext``; see ``bench suites``) or
a path to a JSONL file of prompts (see :mod:`suites.jsonl`). A value ending in ``.jsonl`` is
always a file; another value is a registered name when one is registered under it, else a file
when one exists there (so a stray file called ``wikitext`` cannot shadow the suite).

``--num-prompts N`` picks a deterministic, nested subset: the prompts are ranked by the sha256
of their id and the first N kept, then returned in the suite's own order. Hash order spreads the
subset over the whole suite (not just its first article), and because ranks never change,
``subset(N)`` is contained in ``subset(N + 1)``: a larger run extends a smaller one.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from bench.errors import BenchError
from bench.registry import get_suite, load_plugins
from bench.specs import LoadedSuite, Prompt, SuiteSpec

DATA_DIR_ENV = "BENCH_DATA_DIR"
"""Environment variable naming a data folder laid out like ``shared/data``."""


def resolve_data_dir(data_dir: str | None) -> str | None:
    """``data_dir`` when given, else ``$BENCH_DATA_DIR`` when set and non-empty, else ``None``."""
    if data_dir:
        return data_dir
    return os.environ.get(DATA_DIR_ENV) or None


def is_jsonl_suite(name_or_path: str) -> bool:
    """True when ``--suite`` names a JSONL file rather than a registered suite."""
    if name_or_path.lower().endswith(".jsonl"):
        return True
    if name_or_path.strip().lower().replace("_", "-") in load_plugins().suites:
        return False
    return Path(name_or_path).is_file()


def subset(prompts: tuple[Prompt, ...] | list[Prompt], num_prompts: int | None) -> list[Prompt]:
    """The first ``num_prompts`` prompts by sha256 of their id, in the suite's own order.

    ``None`` or a value at least the suite's size gives every prompt.
    """
    prompts = list(prompts)
    if num_prompts is None or num_prompts >= len(prompts):
        return prompts
    ranked = sorted(range(len(prompts)), key=lambda i: hashlib.sha256(prompts[i].id.encode()).hexdigest())
    keep = set(ranked[:num_prompts])
    return [p for i, p in enumerate(prompts) if i in keep]


def _check_num_prompts(num_prompts: int | None) -> None:
    if num_prompts is None:
        return
    if isinstance(num_prompts, bool) or not isinstance(num_prompts, int) or num_prompts < 1:
        raise BenchError(f"--num-prompts must be an integer >= 1, got {num_prompts!r}")


def _load(name_or_path: str, data_dir: str | None, path: str | None) -> tuple[str, LoadedSuite]:
    """(suite name for the spec, loaded suite)."""
    if is_jsonl_suite(name_or_path):
        from suites.jsonl import load_jsonl

        # The value is its own path; ``path`` (--suite-path) belongs to registered suites in the same run.
        return "jsonl", load_jsonl(name_or_path)
    info = get_suite(name_or_path)
    loaded = info.loader(data_dir=resolve_data_dir(data_dir), path=path)
    # The registry's version is the one users see in 'bench suites'; the two must agree.
    if loaded.version != info.version:
        raise BenchError(f"suite '{info.name}': loader returned version {loaded.version}, registered {info.version}")
    return info.name, loaded


def load_suite(
    name_or_path: str,
    *,
    data_dir: str | None = None,
    path: str | None = None,
    num_prompts: int | None = None,
) -> tuple[SuiteSpec, list[Prompt]]:
    """Load a registered suite or a JSONL file and apply ``num_prompts``.

    ``data_dir`` defaults to ``$BENCH_DATA_DIR``; ``path`` overrides a registered suite's file
    and is ignored for a JSONL file.
    The spec's ``num_prompts`` is ``None`` when the subset is the whole suite, so asking for
    more prompts than exist names the same run as asking for all of them.
    """
    _check_num_prompts(num_prompts)
    name, loaded = _load(name_or_path, data_dir, path)
    if not loaded.prompts:
        raise BenchError(f"suite '{name_or_path}' has no prompts (source: {loaded.source})")
    prompts = subset(loaded.prompts, num_prompts)
    effective = num_prompts if num_prompts is not None and num_prompts < len(loaded.prompts) else None
    spec = SuiteSpec(name=name, version=loaded.version, source=loaded.source, num_prompts=effective)
    return spec, prompts


def describe_suites() -> list[tuple[str, str, str]]:
    """(name, version, description) of every registered suite, sorted by name."""
    suites = load_plugins().suites
    return [(s.name, s.version, s.description) for s in sorted(suites.values(), key=lambda s: s.name)]
