"""What a benchmark is doing while it does it: its stages, and a count within one (enterprises generated,
a night's tasks done).

On a terminal (stderr) that is a rich bar on stderr, gone when the benchmark ends, so what stays is its
figures; elsewhere (a log, a pipe, the tests) each stage is one line on stdout, as before the bar, and
counts show nothing. The figures themselves are the benchmarks' own prints on stdout either way.
"""
from __future__ import annotations

import sys
from collections.abc import Callable


class Stages:
    """``with Stages("bench extract", 4) as stage: stage("floor (a): paging every resource"); ...``"""

    def __init__(self, title: str, total: int, *, terminal: bool | None = None):
        self.title, self.total, self.started = title, total, 0
        self.terminal = sys.stderr.isatty() if terminal is None else terminal
        self._progress = self._stage = self._count = None

    def __enter__(self) -> Stages:
        if self.terminal:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                                       TimeElapsedColumn)

            # Prints to stdout go above the bar when stdout is the same terminal; into their file otherwise.
            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                      MofNCompleteColumn(), TimeElapsedColumn(), console=Console(stderr=True),
                                      transient=True, refresh_per_second=5, redirect_stdout=sys.stdout.isatty())
            self._progress.start()
            self._stage = self._progress.add_task(self.title, total=self.total)
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __call__(self, label: str, *, unplanned: bool = False) -> None:
        """The next stage begins (``unplanned``: one not counted in the total, e.g. generating a dataset)."""
        self.total += unplanned
        self.started += 1
        if self._progress is None:
            print(f"{label}...", flush=True)
            return
        if self._count is not None:
            self._progress.remove_task(self._count)
            self._count = None
        self._progress.update(self._stage, total=self.total, completed=self.started - 1,
                              description=f"{self.title}: {label}")

    def count(self, unit: str) -> Callable[[int, int], None]:
        """``update(done, total)`` of a count within the current stage (a second bar; nothing off a terminal)."""
        if self._progress is None:
            return lambda done, total: None
        self._count = self._progress.add_task(f"  {unit}", total=None)
        task, progress = self._count, self._progress
        return lambda done, total: progress.update(task, completed=done, total=total)
