"""``numbias report``: a results folder's page rebuilt from its own files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from numbias.cli._common import console
from numbias.cli._options import ForceOpt, WaitOpt


def report_cmd(
    folder: Annotated[Path, typer.Argument(help="Results folder of numbias run, align, mitigate or compare.")],
    open_: Annotated[bool, typer.Option("--open", help="Open the report in the web browser.")] = False,
    wait: WaitOpt = False,
    force: ForceOpt = False,
) -> None:
    """Rebuild a results folder's report.html from its own files (no model, store or data file)."""
    import webbrowser

    from numbias.report.build import rebuild

    path = rebuild(folder, wait=wait, force=force)
    console.print(f"wrote {path}", highlight=False)
    if open_ and not webbrowser.open(path.resolve().as_uri()):
        console.print(f"no web browser found; open {path} yourself", highlight=False)
