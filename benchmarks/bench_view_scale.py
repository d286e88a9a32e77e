"""How ``bench view`` copes with a large store (issue 23): writing the folder, and the page in Chromium.

    python benchmarks/bench_view_scale.py [--records 1000000] [--work DIR] [--keep]

Writes a synthetic store of N records (two runs, greedy and top-k, over N/2 prompts, 20 to 60
words each: tests/test_view_scale.py's ``write_synthetic_store``), then measures:
- ``bench view`` writing the folder, as its own process under ``/usr/bin/time`` (wall seconds, CPU
  seconds, peak memory), and the folder's size;
- in headless Chromium (Debian's, driven by playwright): opening the page until the first page of
  prompts is shown, a filter (finish reason) until its page and count are shown, a search over
  every text until its first page is shown and until every chunk is read, and a longer query that
  extends it; the JS heap after all that.

Run it alone on an idle machine (``uptime`` load under 0.5), or under ``nice`` beside other work.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from test_view_scale import write_synthetic_store  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_scale import timed  # noqa: E402

IDLE = "document.documentElement.dataset.busy === '0'"
SHOWN = "document.querySelectorAll('section.prompt').length > 0"


def folder_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def browse(page_path: Path) -> dict[str, float]:
    """Seconds of each step in Chromium, from the action until the page shows its result."""
    from playwright.sync_api import sync_playwright

    sys.path.insert(0, str(ROOT / "tests"))
    from test_html_browser import CHROMIUM, LAUNCH_ARGS

    out: dict[str, float] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(600_000)
            start = time.perf_counter()
            page.goto(page_path.as_uri(), wait_until="commit")
            page.wait_for_function(f"({IDLE}) && ({SHOWN})", polling=20)
            out["open: first page shown (s)"] = time.perf_counter() - start
            print(f"open: first page shown: {out['open: first page shown (s)']:.2f} s", flush=True)

            def step(name: str, action, until: str = IDLE) -> None:
                begin = time.perf_counter()
                action()
                page.wait_for_function(until, polling=20)
                out[name] = time.perf_counter() - begin
                out[f"  count after {name.split(':')[0]}"] = page.text_content("#count")
                print(f"{name}: {out[name]:.2f} s ({page.text_content('#count')})", flush=True)

            step("filter: finish=length", lambda: page.select_option("#finish", "length"))
            step("clear filter", lambda: page.select_option("#finish", ""))
            if page.is_enabled("#next"):
                step("next page", lambda: page.click("#next"))
            begin = time.perf_counter()
            page.fill("#search", "zebra")
            page.wait_for_function("(ts => ts.length > 0 && ts.every(t => t.textContent.includes('zebra')))"
                                   "(Array.from(document.querySelectorAll('.cont .text')))", polling=20)
            out["search 'zebra': first page shown"] = time.perf_counter() - begin
            page.wait_for_function(IDLE, polling=20)
            out["search 'zebra': every chunk read"] = time.perf_counter() - begin
            out["  count after search"] = page.text_content("#count")
            first, every = out["search 'zebra': first page shown"], out["search 'zebra': every chunk read"]
            print(f"search 'zebra': first page {first:.2f} s, every chunk {every:.2f} s "
                  f"({out['  count after search']})", flush=True)
            step("refine 'zebra b' (chunks that matched)", lambda: page.fill("#search", "zebra b"))
            step("filter while searching: finish=eos", lambda: page.select_option("#finish", "eos"))
            out["JS heap used (MB)"] = page.evaluate("performance.memory.usedJSHeapSize") / 2**20
        finally:
            browser.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--work", type=Path, default=None, help="folder for the store and the page (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the store and the page")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-view-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        begin = time.perf_counter()
        store = write_synthetic_store(work / "runs", args.records)
        print(f"synthetic store of {args.records} records: {time.perf_counter() - begin:.1f} s, "
              f"{folder_mb(store):.0f} MB")
        view = work / "view"
        cost = timed([sys.executable, "-m", "bench.cli", "view", str(store), "--out", str(view)])
        print(f"bench view: {cost['wall_s']:.1f} s wall, {cost['cpu_s']:.1f} s CPU, peak {cost['peak_mb']:.0f} MB; "
              f"folder {folder_mb(view):.0f} MB ({sum(1 for _ in view.rglob('*.js'))} data files)")
        heap = browse(view / "index.html")["JS heap used (MB)"]
        print(f"JS heap used after all that: {heap:.0f} MB")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
