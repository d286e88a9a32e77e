"""The sample viewer on a large store (issue 23): tens of thousands of records written as a folder
that opens in headless Chromium in seconds, filters and searches with the right counts, and pages.

The store is synthetic (records written straight into ``generations.jsonl``, as ``bench run``
would write them) so that it costs a second to make; ``benchmarks/bench_view_scale.py`` makes a
million the same way. The browser part is skipped with its reason when chromium or playwright is
missing (scripts/install_browser.sh), like tests/test_view.py.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest

from bench.specs import DecoderSpec, GenerationSpec, ModelSpec, RunSpec, SuiteSpec
from bench.store import GENERATIONS, RunStore

SYLLABLES = ("ba", "ko", "mi", "tu", "re", "lo", "na", "si", "de", "gu", "po", "ve")
"""Words of the synthetic texts are two or three of these: never 'zebra' nor 'quokka'."""
DECODERS = (("greedy", ()), ("top-k", (("k", 50),)))
N_RECORDS = 24_000


def marked(i: int) -> bool:
    """Prompts whose top-k continuation holds the word 'zebra'."""
    return i % 997 == 3


def quokka(i: int) -> bool:
    """Prompts whose own text holds 'Quokka' (a search finds both their continuations)."""
    return i % 1999 == 11


def finish_of(i: int, decoder: str) -> str:
    return "length" if (i % 3 == 0) == (decoder == "greedy") else "eos"


def write_synthetic_store(root: Path, n_records: int, seed: int = 0) -> Path:
    """A store of two runs (greedy, top-k) over ``n_records // 2`` prompts, one sample each."""
    rng = random.Random(seed)
    vocab = [a + b + (c if k % 3 else "") for k, (a, b, c) in
             enumerate((rng.choice(SYLLABLES), rng.choice(SYLLABLES), rng.choice(SYLLABLES)) for _ in range(300))]
    ids = {w: k for k, w in enumerate(vocab)}
    n_prompts = n_records // 2
    store = RunStore(root)
    suite = SuiteSpec("jsonl", "synthetic", "synthetic.jsonl")
    for name, args in DECODERS:
        spec = RunSpec(ModelSpec("fake"), DecoderSpec(name, args), suite, GenerationSpec(64, 1, 0))
        run = store.open(spec, expected_records=n_prompts, device="cpu", resolved={})
        with open(run.path / GENERATIONS, "w", encoding="utf-8") as f:
            for i in range(n_prompts):
                words = rng.choices(vocab, k=rng.randint(20, 60))
                if name == "top-k" and marked(i):
                    words[rng.randrange(len(words))] = "zebra"
                text = "\n\n\n" if name == "greedy" and i % 50 == 1 else " ".join(words)
                prompt = f"ba{i} kot mi" + (" Quokka" if quokka(i) else "")
                f.write(json.dumps({
                    "run_id": spec.run_id, "prompt_id": f"p{i:07d}", "sample_index": 0, "prompt": prompt,
                    "reference": None, "continuation": text, "token_ids": [ids.get(w, 300) for w in words],
                    "num_tokens": len(words), "finish_reason": finish_of(i, name),
                    "model": "fake", "hyperfit": None, "decoder": name, "decoder_args": dict(args), "seed": None,
                    "seconds": 0.0}) + "\n")
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from bench.publish.view import write_view

    root = tmp_path_factory.mktemp("scale")
    store = write_synthetic_store(root / "runs", N_RECORDS)
    return write_view([str(store)], root / "view")


def test_the_folder_is_compact_and_holds_every_record(folder: Path) -> None:
    from test_view import read_view_data

    meta, chunks = read_view_data(folder.parent)
    assert meta["n"] == N_RECORDS and meta["prompts"] == N_RECORDS // 2
    assert len(chunks) == len(meta["chunks"]) - 1 > 5  # texts in several chunks, loaded as needed
    assert sum(len(c["t"]) for c in chunks.values()) == N_RECORDS
    assert folder.stat().st_size < 100_000  # the page holds no records
    assert [c["p"][0][1] for _, c in sorted(chunks.items())][:2] == ["p0000000", f"p{meta['chunks'][1]:07d}"]


def _idle(page) -> None:
    page.wait_for_function("document.documentElement.dataset.busy === '0'", timeout=20_000)


def _shown(page) -> list[str]:
    _idle(page)
    return page.eval_on_selector_all("section.prompt", "ss => ss.map(s => s.dataset.promptId)")


def test_a_large_store_opens_filters_and_searches_in_chromium(folder: Path) -> None:
    from test_html_browser import CHROMIUM, LAUNCH_ARGS, _browser_or_skip

    sync_playwright = _browser_or_skip()
    n_prompts = N_RECORDS // 2
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            start = time.monotonic()
            page.goto(folder.as_uri())
            first = _shown(page)
            opened = time.monotonic() - start
            assert first == [f"p{i:07d}" for i in range(20)], first
            assert opened < 10, f"the first page took {opened:.1f} s"
            assert page.text_content("#count") == f"{N_RECORDS} of {N_RECORDS} continuations shown"
            assert page.locator(".cont").count() == 40
            # a filter: finish reason, over every record
            page.select_option("#finish", "length")
            want = sum(finish_of(i, d) == "length" for i in range(n_prompts) for d, _ in DECODERS)
            _idle(page)
            assert page.text_content("#count") == f"{want} of {N_RECORDS} continuations shown"
            assert set(page.eval_on_selector_all(".cont", "cs => cs.map(c => c.dataset.finish)")) == {"length"}
            page.select_option("#finish", "")
            # a search reads every chunk: 'zebra' is in the top-k continuation of a few prompts
            page.fill("#search", "ZEBRA")
            zebras = [f"p{i:07d}" for i in range(n_prompts) if marked(i)]
            assert _shown(page) == zebras[:20]
            assert page.text_content("#count") == f"{len(zebras)} of {N_RECORDS} continuations shown"
            assert set(page.eval_on_selector_all(".cont", "cs => cs.map(c => c.dataset.decoder)")) == {"top-k:k=50"}
            assert all("zebra" in t for t in page.eval_on_selector_all(".cont .text", "ts => ts.map(t => t.textContent)"))
            # search and filter together; a longer query (the same prefix) keeps to the chunks that matched
            page.uncheck("input.decoder[value='top-k:k=50']")
            assert _shown(page) == [] and page.text_content("#count") == f"0 of {N_RECORDS} continuations shown"
            page.check("input.decoder[value='top-k:k=50']")
            page.fill("#search", "quokk")
            page.fill("#search", "quokka")
            quokkas = [f"p{i:07d}" for i in range(n_prompts) if quokka(i)]
            assert _shown(page) == quokkas[:20] and page.locator(".cont").count() == 2 * min(len(quokkas), 20)
            assert page.text_content("#count") == f"{2 * len(quokkas)} of {N_RECORDS} continuations shown"
            # pages
            page.fill("#search", "")
            assert _shown(page) == first
            page.click("#next")
            assert _shown(page) == [f"p{i:07d}" for i in range(20, 40)]
            page.fill("#page", "600")
            assert _shown(page) == [f"p{i:07d}" for i in range(11980, 12000)]
            assert "page 600 of 600" in page.text_content("#pages")
            assert errors == []
        finally:
            browser.close()
