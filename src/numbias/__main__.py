"""``python -m numbias`` and the ``numbias`` command: SIGINT and SIGTERM are handled
from the first moment, before the command line's own imports."""

import sys

from numbias.util.errors import NOT_STARTED, Interrupted, handle_signals


def launch() -> None:
    """Handle signals, then load and run the command line."""
    handle_signals()
    try:
        from numbias.cli import main
    except Interrupted as exc:
        sys.stderr.write(NOT_STARTED + "\n")
        sys.exit(exc.exit_code)
    main()


if __name__ == "__main__":
    launch()
