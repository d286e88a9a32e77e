"""``cd-wikitext``: the WikiText prompts of the contrastive-decoding benchmark (Li et al. 2022).

The 1314 prompts (``prefix_text``) and human references (``reference_text``) of
``wikitext_gpt2-xl_contrastive_k5_alpha0.6.json`` from
``yxuansu/Contrastive_Search_versus_Contrastive_Decoding``, the suite that Su & Xu 2022 and later
decoding papers report on. Texts are used exactly as stored (the references start with the space
that follows the prefix). Ids are ``cd-wikitext-0000`` .. ``cd-wikitext-1313`` in file order.

The file is looked up in this order: the explicit path, ``$BENCH_CD_BENCHMARK``, then
``<data-dir>/cd-benchmark/wikitext_gpt2-xl_contrastive_k5_alpha0.6.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.registry import suite
from bench.specs import LoadedSuite, Prompt

VERSION = "1"
NUM_PROMPTS = 1314
"""Entries in the benchmark file; another count means another file."""
FILE_ENV = "BENCH_CD_BENCHMARK"
"""Environment variable naming the JSON file itself."""
LOCAL_FILE = ("cd-benchmark", "wikitext_gpt2-xl_contrastive_k5_alpha0.6.json")
"""Location of the file inside ``--data-dir``."""
ID_FORMAT = "cd-wikitext-{:04d}"


def _find_file(data_dir: str | None, path: str | None) -> Path:
    """The first candidate location that holds a file; BenchError listing all of them otherwise."""
    from bench.suite_loading import DATA_DIR_ENV, resolve_data_dir

    if path is not None:
        candidates = [(Path(path), "the given path")]
    else:
        candidates = []
        if os.environ.get(FILE_ENV):
            candidates.append((Path(os.environ[FILE_ENV]), f"${FILE_ENV}"))
        data_dir = resolve_data_dir(data_dir)
        if data_dir:
            candidates.append((Path(data_dir, *LOCAL_FILE), "--data-dir"))
    for candidate, _ in candidates:
        if candidate.is_file():
            return candidate
    looked = ", ".join(f"{c} ({why})" for c, why in candidates) or f"nowhere (no --data-dir, ${DATA_DIR_ENV} or ${FILE_ENV})"
    raise BenchError(
        f"suite 'cd-wikitext': benchmark file not found; looked at {looked}; set ${FILE_ENV} to the file "
        f"or point --data-dir / ${DATA_DIR_ENV} at a folder holding {'/'.join(LOCAL_FILE)}"
    )


def _entry_prompt(entry: Any, index: int, file: Path) -> Prompt:
    if not isinstance(entry, dict):
        raise BenchError(f"suite 'cd-wikitext': {file}: entry {index} is not an object")
    for key in ("prefix_text", "reference_text"):
        if not isinstance(entry.get(key), str):
            raise BenchError(f"suite 'cd-wikitext': {file}: entry {index} has no string '{key}'")
    if not entry["prefix_text"].strip():
        raise BenchError(f"suite 'cd-wikitext': {file}: entry {index} has an empty 'prefix_text'")
    return Prompt(id=ID_FORMAT.format(index), text=entry["prefix_text"], reference=entry["reference_text"])


@suite(
    "cd-wikitext",
    version=VERSION,
    description=f"the {NUM_PROMPTS} WikiText prompts and references of the contrastive-decoding benchmark",
)
def load_cd_wikitext(data_dir: str | None = None, path: str | None = None) -> LoadedSuite:
    """Load the benchmark's prompts and references, in file order."""
    file = _find_file(data_dir, path)
    try:
        entries = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BenchError(f"suite 'cd-wikitext': cannot read {file} as JSON ({e})") from None
    if not isinstance(entries, list) or len(entries) != NUM_PROMPTS:
        found = f"{len(entries)} entries" if isinstance(entries, list) else f"a JSON {type(entries).__name__}"
        raise BenchError(
            f"suite 'cd-wikitext': {file} holds {found}, expected a list of {NUM_PROMPTS}; "
            "is it the contrastive-decoding WikiText file?"
        )
    prompts = tuple(_entry_prompt(entry, i, file) for i, entry in enumerate(entries))
    return LoadedSuite(prompts=prompts, source=str(file.resolve()), version=VERSION)
