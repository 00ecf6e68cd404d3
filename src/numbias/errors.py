"""User-facing errors: the CLI prints them as one line and exits with code 2; signals
that stop a command, as :class:`Interrupted`."""

import signal
import threading
from typing import Any


class NumbiasError(Exception):
    """A problem with the user's input (file, column, scale, model, server answer).

    Every problem a user can cause is one of these, so a caller catches one type:

    >>> import numbias
    >>> try:
    ...     numbias.ScoreScale.parse("nine")
    ... except numbias.NumbiasError as exc:
    ...     print(exc)
    scale 'nine' is not of the form LO-HI with integers, e.g. 0-9
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
    return {number: signal.signal(number, interrupt) for number in (signal.SIGINT, signal.SIGTERM)
            if signal.getsignal(number) is not signal.SIG_IGN}
