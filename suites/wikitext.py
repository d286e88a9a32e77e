"""``wikitext``: open-ended continuation prompts from the WikiText-103 raw test split.

Construction (version 1), deterministic and independent of any tokenizer:

1. Read the raw test split, one line per row: ``<data-dir>/wikitext/wiki.test.raw`` (the file is
   the same in wikitext-2-raw and wikitext-103-raw), or the Hub dataset
   ``Salesforce/wikitext`` / ``wikitext-103-raw-v1`` / ``test`` when no local copy is found.
   Line *n* (1-based) of the file is row *n - 1* of the Hub dataset.
2. A paragraph is a line that is neither blank nor a section heading (`` = Title = ``,
   `` = = Subsection = = ``).
3. Paragraphs with fewer than ``MIN_WORDS`` (64) whitespace-separated words are skipped, so every
   reference has at least ``MIN_WORDS - PROMPT_WORDS`` words.
4. The prompt is the paragraph's first ``PROMPT_WORDS`` (32) words and the reference is the rest
   of the paragraph. Both are cut from the original text, so WikiText's own spacing (`` @-@ ``,
   `` , ``) is kept, as in the contrastive-decoding benchmark. The prompt has no leading or trailing
   whitespace; the reference starts with the whitespace that followed the prompt's last word
   (normally one space) and has no trailing whitespace or newline.
5. The prompt id is ``wt103-test-L<n>`` with *n* the 1-based line number, so ids do not move
   when the construction's thresholds change.

The test split gives 1500 prompts (of 2185 paragraphs in 4358 lines).
"""

from __future__ import annotations

import re
from pathlib import Path

from bench.errors import BenchError
from bench.registry import suite
from bench.specs import LoadedSuite, Prompt

VERSION = "1"
PROMPT_WORDS = 32
"""Whitespace words in each prompt."""
MIN_WORDS = 64
"""Paragraphs with fewer whitespace words are skipped."""
ID_PREFIX = "wt103-test-L"
LOCAL_FILE = ("wikitext", "wiki.test.raw")
"""Location of the raw test split inside ``--data-dir``."""
HUB_DATASET = ("Salesforce/wikitext", "wikitext-103-raw-v1", "test")
"""(dataset, config, split) tried when no local file is found."""

_WORD = re.compile(r"\S+")


def is_heading(line: str) -> bool:
    """True for WikiText section headings such as `` = Title = `` or `` = = Sub = = ``."""
    text = line.strip()
    return len(text) >= 3 and text.startswith("= ") and text.endswith(" =")


def paragraph_prompt(line: str, line_number: int) -> Prompt | None:
    """The prompt made from one line of the split, or ``None`` when the line is not used."""
    if not line.strip() or is_heading(line):
        return None
    words = list(_WORD.finditer(line))
    if len(words) < MIN_WORDS:
        return None
    # Cut at character offsets (not " ".join) so the original spacing survives untouched.
    cut = words[PROMPT_WORDS - 1].end()
    return Prompt(
        id=f"{ID_PREFIX}{line_number}",
        text=line[words[0].start():cut],
        reference=line[cut:].rstrip(),
    )


def build_prompts(lines: list[str]) -> tuple[Prompt, ...]:
    """Prompts of the split given as its lines (``lines[0]`` is line 1)."""
    prompts = (paragraph_prompt(line, i + 1) for i, line in enumerate(lines))
    return tuple(p for p in prompts if p is not None)


def _read_lines(file: Path) -> list[str]:
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise BenchError(f"suite 'wikitext': {file} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise BenchError(f"suite 'wikitext': cannot read {file}: {e.strerror}") from None
    # split("\n"), not splitlines(): Wikipedia text may hold U+2028 and the like inside a line.
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _hub_lines() -> list[str]:
    """The split's rows from the Hugging Face Hub; raises whatever ``datasets`` raises."""
    import datasets

    name, config, split = HUB_DATASET
    rows = datasets.load_dataset(name, config, split=split)
    return [row["text"] for row in rows]


@suite(
    "wikitext",
    version=VERSION,
    description=f"WikiText-103 test paragraphs of >= {MIN_WORDS} words: first {PROMPT_WORDS} words as prompt, rest as reference",
)
def load_wikitext(data_dir: str | None = None, path: str | None = None) -> LoadedSuite:
    """Load the suite from ``path``, ``<data_dir>/wikitext/wiki.test.raw`` or the Hub, in that order."""
    from bench.suite_loading import DATA_DIR_ENV, resolve_data_dir

    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise BenchError(f"suite 'wikitext': no file at {file}")
        return _loaded(build_prompts(_read_lines(file)), str(file.resolve()))
    data_dir = resolve_data_dir(data_dir)
    local = Path(data_dir, *LOCAL_FILE) if data_dir else None
    if local is not None and local.is_file():
        return _loaded(build_prompts(_read_lines(local)), str(local.resolve()))
    try:
        lines = _hub_lines()
    except Exception as e:  # any failure (offline, missing package, auth) means: use a local copy
        local_note = f"{local} (not found)" if local is not None else f"no local copy (no --data-dir or ${DATA_DIR_ENV})"
        raise BenchError(
            f"suite 'wikitext': looked at {local_note}, then the Hub dataset {'/'.join(HUB_DATASET)}, which failed "
            f"({_one_line(e)}); point --data-dir or ${DATA_DIR_ENV} at a folder holding "
            f"{'/'.join(LOCAL_FILE)}"
        ) from None
    return _loaded(build_prompts(lines), "hf://" + "/".join(HUB_DATASET))


def _one_line(e: Exception) -> str:
    first = (str(e).strip().splitlines() or [""])[0][:120]
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


def _loaded(prompts: tuple[Prompt, ...], source: str) -> LoadedSuite:
    if not prompts:
        raise BenchError(f"suite 'wikitext': {source} has no paragraph of >= {MIN_WORDS} words")
    return LoadedSuite(prompts=prompts, source=source, version=VERSION)
