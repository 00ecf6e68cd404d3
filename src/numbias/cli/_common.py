"""What the commands share: the two consoles, progress, the one table printer (every
number in it by :mod:`numbias.util.fmt`) and the store an interrupt reports."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from numbias.util.fmt import MISSING, fmt_ci, fmt_num

console = Console(width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True, markup=False, emoji=False, highlight=False)

RUNNING: dict[str, Path] = {}
"""The store the running command keeps its finished items in (``store``), for the line
an interrupt prints."""

Column = Callable[[Any], str]
"""A table column: the text of its cell in a row."""


@contextmanager
def log_progress(description: str, total: int, every: float = 30.0) -> Iterator[Callable[[int], None]]:
    """Progress as plain lines on stderr, at most one per ``every`` seconds and one at the
    end, for logs and CI (rich draws its bar only on a terminal)."""
    start = last = time.monotonic()
    done = 0

    def advance(n: int) -> None:
        nonlocal done, last
        done += n
        if (now := time.monotonic()) - last >= every:
            last = now
            err_console.print(f"{description}: {done}/{total} ({now - start:.0f} s)", highlight=False)

    yield advance
    err_console.print(f"{description}: {done}/{total} done in {time.monotonic() - start:.0f} s", highlight=False)


@contextmanager
def rich_progress(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar on a terminal, else :func:`log_progress`."""
    if not err_console.is_terminal:
        with log_progress(description, total) as advance:
            yield advance
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err_console, transient=False) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)


def cell(value: Any, digits: int = 2, missing: str = MISSING) -> str:
    """A cell: a float (or a missing number) as the terminal writes numbers, anything else as text."""
    if value is None or isinstance(value, float):
        return fmt_num(value, digits, plain=True, missing=missing)
    return str(value)


def number(key: str, digits: int = 2, missing: str = MISSING) -> Column:
    """The column of a record's ``key``, by :func:`cell`."""
    return lambda row: cell(row[key], digits, missing)


def text(key: str) -> Column:
    """The column of a record's ``key`` as text (a count stays as it is stored)."""
    return lambda row: str(row[key])


def interval(key: str, signed: bool = False) -> Column:
    """The column of a record's ``key`` with its 95% CI (``key_low``, ``key_high``)."""
    return lambda row: fmt_ci(row.get(key), row.get(f"{key}_low"), row.get(f"{key}_high"), signed=signed, plain=True)


def print_table(
    title: str,
    columns: Mapping[str, Column],
    rows: Iterable[Any],
    *,
    words: Collection[str] | None = None,
    caption: str | None = None,
) -> None:
    """Print a table, one cell per row and column; the ``words`` columns left-aligned and
    the rest (numbers) right-aligned, or every column left-aligned when ``words`` is None."""
    table = Table(title=title, caption=caption)
    for name in columns:
        table.add_column(name, justify="left" if words is None or name in words else "right")
    for row in rows:
        table.add_row(*(get(row) for get in columns.values()))
    console.print(table)
