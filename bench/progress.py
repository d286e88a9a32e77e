"""Progress of a sweep: a live bar on a terminal, plain lines in a file or CI log, nothing when quiet.

A redirected stderr cannot show a bar (rich draws nothing there), so a run writing to a log used
to be silent until its end; here each run start and, at most every ``interval`` seconds, the
count of records done is printed as one plain line instead. On a terminal the bar carries a
spinner and the elapsed time, so it visibly moves between batches, however large they are.
"""

from __future__ import annotations

import sys
import time
import warnings
from typing import Any, Callable, TextIO


class Progress:
    """Counts records done out of ``total``; see the module docstring for what is shown where."""

    def __init__(self, total: int, *, mode: str, stream: TextIO | None = None, interval: float = 10.0,
                 clock: Callable[[], float] = time.monotonic):
        self.total, self.mode, self.interval, self.clock = total, mode, interval, clock
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self.description = "generating"
        self.start = self.last_line = clock()
        self._bar: Any = None
        self._task: Any = None
        self._shown_warnings: set[str] = set()
        self._showwarning: Any = None

    def __enter__(self) -> "Progress":
        if self.mode == "bar":
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, SpinnerColumn, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                     MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                                     console=Console(file=self.stream), transient=True, refresh_per_second=4)
            self._bar.__enter__()
            self._task = self._bar.add_task(self.description, total=self.total)
        self._showwarning, warnings.showwarning = warnings.showwarning, self._warn
        return self

    def __exit__(self, *exc: Any) -> None:
        warnings.showwarning = self._showwarning
        if self._bar is not None:
            self._bar.__exit__(*exc)
        elif self.mode == "lines" and self.total and exc[0] is None:
            self._line()

    def describe(self, text: str) -> None:
        """A new phase (a run starting, a calibration): shown at once in both modes."""
        self.description = text
        if self._bar is not None:
            self._bar.update(self._task, description=text)
        elif self.mode == "lines":
            self._line()

    def advance(self, n: int) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.advance(self._task, n)
        elif self.mode == "lines" and self.clock() - self.last_line >= self.interval:
            self._line()

    def _warn(self, message: Any, category: type, filename: str, lineno: int, file: Any = None,
              line: Any = None) -> None:
        """A library warning as one line above the bar (never through it), each text once per sweep."""
        text = f"warning: {category.__name__}: {str(message).strip().splitlines()[0] if str(message).strip() else ''}"
        if self.mode == "quiet" or text in self._shown_warnings:
            return
        self._shown_warnings.add(text)
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=self.stream, flush=True)

    def _line(self) -> None:
        self.last_line = self.clock()
        share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        print(f"{self.description}: {self.done}/{self.total} records{share}, "
              f"{self.last_line - self.start:.0f} s elapsed", file=self.stream, flush=True)


def progress_mode(quiet: bool, stream: TextIO | None = None) -> str:
    """``quiet`` (nothing), ``bar`` on a terminal, else ``lines``."""
    if quiet:
        return "quiet"
    stream = stream if stream is not None else sys.stderr
    isatty = getattr(stream, "isatty", None)
    return "bar" if isatty is not None and isatty() else "lines"
