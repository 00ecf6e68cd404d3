"""User-facing errors: the CLI prints them as one line and exits with code 2; signals
that stop a command, as :class:`Interrupted`."""

from __future__ import annotations

import errno
import os
import signal
import stat
import threading
from pathlib import Path
from typing import Any


class NumbiasError(Exception):
    """A problem with the user's input (file, column, scale, model, server answer).

    Every problem a user can cause is one of these, so a caller catches one type:

    >>> import numbias
    >>> try:
    ...     numbias.ScoreScale.parse("nine")
    ... except numbias.NumbiasError as exc:
    ...     print(exc)
    scale 'nine' is not of the form LO-HI with integers (e.g. 0-9), reversed:LO-HI, letters:A-E or words:poor,fair,good
    """


def first_line(exc: BaseException | str) -> str:
    """The first line of an error's message (or its type when it has none): library
    errors span many lines, and numbias reports each problem on one."""
    text = str(exc).strip()
    if text:
        return text.splitlines()[0]
    return type(exc).__name__ if isinstance(exc, BaseException) else ""


class Interrupted(BaseException):
    """Ctrl-C (SIGINT) or SIGTERM, raised by the command line's signal handlers: a
    ``BaseException`` like ``KeyboardInterrupt``, so no ``except Exception`` swallows it,
    and its own type, so the command line alone turns it into a line and an exit code."""

    def __init__(self, signal_number: int) -> None:
        super().__init__(signal_number)
        self.exit_code = 128 + signal_number


NOT_STARTED = "interrupted before any work started; run the same command to start again"
"""What an interrupt says before a command has a store."""


def interrupt(number: int, _frame: object) -> None:
    """The signal handler: stop where the command is, as :class:`Interrupted`."""
    raise Interrupted(number)


def handle_signals() -> dict[int, Any]:
    """Make SIGINT and SIGTERM raise :class:`Interrupted` (in the main thread; a signal
    the caller ignores, SIGINT of a background job, stays ignored); the handlers replaced."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {
        number: signal.signal(number, interrupt)
        for number in (signal.SIGINT, signal.SIGTERM)
        if signal.getsignal(number) is not signal.SIG_IGN
    }


LINE_LIMIT = 300
"""The most characters an error line shows: a value quoted from a hostile file can be
megabytes long, and the line must stay readable."""


def one_line(message: str, limit: int = LINE_LIMIT) -> str:
    """``message`` as a single line of at most ``limit`` characters: line breaks become
    spaces, other control characters (a terminal escape in a file name) their escapes,
    and the rest is cut with an ellipsis, so any error prints as one plain line.

    >>> one_line("a\\nb \\x1b[31m" + "x" * 20, limit=16)
    'a b \\\\x1b[31mxxx…'
    """
    joined = " ".join(str(message).splitlines())
    text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in joined)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def validation_message(exc: Any) -> str:
    """A pydantic ``ValidationError`` as one line, ``field.path: message``, naming the
    field (pydantic's own first line names only the model)."""
    errors = exc.errors()
    if not errors:
        return first_line(exc)
    error = errors[0]
    # a union's member shows in the path as its type ("literal['fit']"): only names and indices name the field
    where = ".".join(str(p) for p in error.get("loc", ()) if isinstance(p, int) or str(p).isidentifier()) or "value"
    if error.get("type") == "extra_forbidden":
        return f"unknown key {where!r}"
    message = str(error.get("msg", "")).removeprefix("Value error, ")
    return f"{where}: {message}" if where != "value" else message


def readable_file(path: str | Path, what: str) -> Path:
    """``path`` when it is a regular file numbias can read; otherwise a one-line error
    that says what it is instead (missing, a folder, a FIFO that would block the read, a
    symlink loop, a device, unreadable), naming it as ``what`` ("data file", "model file")."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        broken = " (a symlink to nothing)" if path.is_symlink() else ""
        raise NumbiasError(f"{what} {path} does not exist{broken}") from None
    except OSError as exc:
        raise NumbiasError(f"{what} {path} {_os_problem(exc)}") from None
    if stat.S_ISDIR(mode):
        raise NumbiasError(f"{what} {path} is a folder, not a file")
    if stat.S_ISFIFO(mode):
        raise NumbiasError(f"{what} {path} is a FIFO, not a regular file")
    if not stat.S_ISREG(mode):
        raise NumbiasError(f"{what} {path} is a device or socket, not a regular file")
    if not os.access(path, os.R_OK):
        raise NumbiasError(f"{what} {path} cannot be read: permission denied")
    return path


def _os_problem(exc: OSError) -> str:
    """Why a path cannot be opened, in words."""
    if exc.errno == errno.ELOOP:
        return "is a symlink loop"
    if exc.errno == errno.EACCES:
        return "cannot be read: permission denied"
    if exc.errno == errno.ENOTDIR:
        return "does not exist (a part of it is a file, not a folder)"
    if exc.errno == errno.ENAMETOOLONG:
        return "is not a usable path: its name is too long"
    return f"cannot be read: {exc.strerror or first_line(exc)}"
