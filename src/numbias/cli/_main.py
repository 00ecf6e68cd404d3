"""The ``numbias`` app: its commands, each refusing an option given twice, and ``main``,
which turns every stop into one line on stderr and its exit code, never a traceback;
results already computed are in the store and survive any stop."""

from __future__ import annotations

import signal
import sys
from contextlib import suppress
from typing import Any

import typer
from typer.core import TyperGroup

from numbias.cli._align import align_cmd
from numbias.cli._common import RUNNING, err_console
from numbias.cli._compare import compare_cmd
from numbias.cli._correlate import correlate_cmd
from numbias.cli._mitigate import mitigate_cmd
from numbias.cli._models import models_app
from numbias.cli._report import report_cmd
from numbias.cli._run import run_cmd
from numbias.cli._score import score
from numbias.cli._tasks import tasks_cmd
from numbias.cli._train import train_cmd
from numbias.util.errors import NOT_STARTED, Interrupted, NumbiasError, handle_signals, one_line


class _Commands(TyperGroup):
    """The commands, each refusing an option given twice: click keeps the last value of
    a single-value option, so ``--data a.csv --data b.csv`` would judge only ``b.csv``."""

    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[Any, Any, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None:
            _refuse_repeats(command, rest)
        return name, command, rest


def _refuse_repeats(command: Any, args: list[str]) -> None:
    """A one-line error for a single-value option (or flag) given more than once."""
    single = [p for p in command.params if p.param_type_name == "option" and not p.multiple and not p.count]
    by_flag = {flag: p for p in single for flag in (*p.opts, *p.secondary_opts)}
    seen: dict[str, str] = {}
    tokens = iter(args)
    for token in tokens:
        if token == "--":
            break
        flag = token.split("=", 1)[0] if token.startswith("--") else token
        param = by_flag.get(flag)
        if param is None:
            continue
        if param.name in seen:
            raise NumbiasError(f"{flag} is given twice ({seen[param.name]} and {token}): give it once")
        seen[str(param.name)] = token
        if not param.is_flag and "=" not in token:
            next(tokens, None)


def _app() -> typer.Typer:
    """The app: every command, in the order ``numbias --help`` lists them, then ``models``."""
    app = typer.Typer(
        cls=_Commands,
        add_completion=False,
        no_args_is_help=False,
        pretty_exceptions_enable=False,
        help="Find, measure and remove numerical bias in LLM-as-a-judge evaluators.",
    )
    for name, command in (
        ("train", train_cmd),
        ("tasks", tasks_cmd),
        ("score", score),
        ("run", run_cmd),
        ("align", align_cmd),
        ("correlate", correlate_cmd),
        ("mitigate", mitigate_cmd),
        ("compare", compare_cmd),
        ("report", report_cmd),
    ):
        app.command(name)(command)
    app.add_typer(models_app, name="models")
    return app


app = _app()


def print_error(message: str) -> None:
    """An error as one plain line on stderr: no markup or emoji codes read from what the
    user typed (``my:thumbs_up:file.csv`` stays as written), however long the input."""
    sys.stderr.write(f"error: {one_line(message)}\n")
    sys.stderr.flush()


def main() -> None:
    """The command line: every stop ends as one line on stderr and its exit code (2 for
    bad input, 130 for Ctrl-C, 143 for SIGTERM), never a traceback."""
    previous = handle_signals()
    try:
        _run()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _run() -> None:
    """The app, its outcome turned into a line and an exit code."""
    RUNNING.clear()
    try:
        code = app(standalone_mode=False)
    except NumbiasError as exc:
        print_error(str(exc))
        sys.exit(2)
    except Interrupted as exc:
        _interrupted(exc.exit_code)
    except (typer.Exit, SystemExit) as exc:
        sys.exit(getattr(exc, "exit_code", getattr(exc, "code", 0)))
    except Exception as exc:  # typer's (vendored click) usage errors: a mistyped command or option
        format_message = getattr(exc, "format_message", None)
        if callable(format_message) and isinstance(getattr(exc, "exit_code", None), int):
            print_error(f"{format_message()} (see numbias --help)")
            sys.exit(2)
        raise
    if code == 130:  # typer's answer to a KeyboardInterrupt our handlers did not raise (another thread's main)
        _interrupted(code)
    if isinstance(code, int) and code:
        sys.exit(code)


def _interrupted(code: int) -> None:
    """Say what an interrupt kept, in one line, and exit with ``code`` (a second signal
    while saying it is ignored)."""
    from numbias.judge.store import count_items

    with suppress(ValueError):  # signals are set in the main thread only
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, signal.SIG_IGN)
    store = RUNNING.get("store")
    if store is None:
        line = NOT_STARTED
    elif not store.is_file():
        line = f"interrupted before any item was stored in {store}; run the same command to start again"
    else:
        kept = count_items(store)  # None: the store could not be read just now
        line = (
            f"interrupted: {'' if kept is None else f'{kept} '}finished items are kept in {store}; run the same "
            "command to resume"
        )
    err_console.print(line, markup=False, highlight=False, soft_wrap=True)
    sys.exit(code)
