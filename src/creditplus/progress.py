"""One progress bar for the long commands (``platform generate``, ``nightly``, ``demo``): rich, on stderr,
drawn only when stderr is a terminal (a log or a pipe gets nothing), gone when the work ends."""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def bar(description: str, *, remaining: bool = False) -> Iterator[Callable[..., None]]:
    """Yields ``update(done, total, description=None)``; ``remaining`` adds the estimated time left."""
    if not sys.stderr.isatty():
        yield lambda done, total, description=None: None
        return
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, *([TimeRemainingColumn()] if remaining else []), console=Console(stderr=True),
                  transient=True, refresh_per_second=5) as progress:
        task = progress.add_task(description, total=None)

        def update(done: int, total: int, description: str | None = None) -> None:
            progress.update(task, completed=done, total=total,
                            **({"description": description} if description is not None else {}))
        yield update
