"""Progress bars for long work (rich), one style everywhere."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")

console = Console(stderr=True)


def progress_enabled() -> bool:
    """Bars are drawn unless NEURALDIFFUSER_PROGRESS=0 (tests set it)."""
    return os.environ.get("NEURALDIFFUSER_PROGRESS", "1") != "0"


def make_progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        transient=False,
        disable=not progress_enabled(),
        refresh_per_second=4 if sys.stderr.isatty() else 0.2,
    )


def track(iterable: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a progress bar."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    with make_progress() as progress:
        task = progress.add_task(description, total=total, info="")
        for item in iterable:
            yield item
            progress.advance(task)


@contextmanager
def progress_bar(description: str, total: int | None):
    """A bar you advance yourself: ``with progress_bar('train', n) as bar: bar.advance(info='loss 0.1')``."""
    with make_progress() as progress:
        task = progress.add_task(description, total=total, info="")

        class _Bar:
            def advance(self, n: int = 1, info: str | None = None) -> None:
                if info is None:
                    progress.advance(task, n)
                else:
                    progress.update(task, advance=n, info=info)

            def set_completed(self, n: int) -> None:
                progress.update(task, completed=n)

        yield _Bar()
