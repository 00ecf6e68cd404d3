"""``numbias tasks``: every task a study can name, and whether its data is here."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from numbias.cli._common import console, print_table


def tasks_cmd(
    data_root: Annotated[
        Path | None,
        typer.Option(
            envvar="NUMBIAS_DATA",
            help="Folder holding the published benchmark data, to check which tasks can read theirs.",
        ),
    ] = None,
) -> None:
    """List every task (built-in, registered, installed): fields, human range, data."""
    from numbias.data.tasks import all_tasks

    print_table(
        "tasks",
        {
            "name": lambda t: t.name,
            "description": lambda t: t.description,
            "fields": lambda t: ", ".join(t.fields),
            "human range": lambda t: "{:g} to {:g}".format(*t.human_range),  # the scale's ends as the task names them
            "data from": lambda t: t.source,
            "data here": lambda t: t.data_status(data_root),
        },
        all_tasks().values(),
    )
    console.print("Any data file is a task too: --data items.csv --template @rubric.txt --human COLUMN.")
