"""Progress for long commands (seed, projections rebuild and check).

A bar on stderr, drawn only when stderr is a terminal and the output is not
`--json`: piped, redirected or machine-read runs see nothing but the command's
own output. The work reports through `infrastructure.progress.Progress`; this
module is the only one that knows the bar's library.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from dateline.infrastructure.progress import Progress as Reporter


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


@contextmanager
def progress_bar(description: str, unit: str, *, quiet: bool = False) -> Iterator[Reporter | None]:
    """A reporter that draws a bar on stderr while the block runs, or None
    (nothing drawn) when `quiet` or stderr is not a terminal. The bar goes
    away at the end; the command's summary line says what was done."""
    if quiet or not stderr_is_terminal():
        yield None
        return
    # Here, not at the top: the other commands do not pay for importing rich.
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn(description),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(file=sys.stderr, force_terminal=True),
        transient=True,
    )
    task = bar.add_task(description, total=None)

    def advance(done: int, total: int | None) -> None:
        bar.update(task, advance=done, total=total)

    with bar:
        yield advance


def rate(count: int, seconds: float, unit: str) -> str:
    """`1,234 events/s`: the count over the seconds, whole units."""
    per_second = count / seconds if seconds > 0 else 0.0
    return f"{per_second:,.0f} {unit}/s"
