"""Peak resident memory of a block of code, sampled from /proc (Linux) in a background thread.

``ru_maxrss`` is one number per process, so two sides timed in one process (ours and the peer)
cannot be told apart by it; this samples the resident set every few milliseconds while a block
runs and reports the rise above what was resident when it began (the block's own working memory).
"""

from __future__ import annotations

import os
import threading
import time

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:
        return 0


class PeakMemory:
    """``with PeakMemory() as m: ...``; then ``m.peak`` (bytes resident at most) and ``m.rise``."""

    def __init__(self, every_s: float = 0.005):
        self.every_s, self.start, self.peak = every_s, 0, 0
        self._stop = threading.Event()

    def __enter__(self) -> "PeakMemory":
        self.start = self.peak = resident_bytes()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, resident_bytes())
            time.sleep(self.every_s)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, resident_bytes())

    @property
    def rise(self) -> int:
        return self.peak - self.start

    def mib(self) -> str:
        return f"peak {self.peak / 2**20:.0f} MiB (+{self.rise / 2**20:.0f})"
