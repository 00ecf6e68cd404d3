"""``numbias models``: the embedded judges, the trained stages, and the GGUF converter's fetch."""

from __future__ import annotations

from typing import Annotated

import typer

from numbias.cli._common import cell, console, print_table
from numbias.util.fmt import fmt_num

models_app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@models_app.callback(invoke_without_command=True)
def _models_group(
    ctx: typer.Context,
    prepare: Annotated[bool, typer.Option(help="Assemble and verify every installed judge now (setup does).")] = False,
) -> None:
    """List the embedded judges and whether they are installed, then the trained stages."""
    if ctx.invoked_subcommand is None:
        models(prepare=prepare)


@models_app.command("fetch-converter")
def fetch_converter_cmd() -> None:
    """Fetch llama.cpp's GGUF converter into the cache (setup does this; needs the network).
    Exporting a trained stage or float32 weights to GGUF uses it; judging never fetches."""
    from numbias.models.weights import fetch_converter

    console.print(f"GGUF converter: {fetch_converter().parent}", markup=False, highlight=False, soft_wrap=True)


def models(prepare: bool = False) -> None:
    """The ``numbias models`` table; with ``prepare``, every installed judge is assembled
    and verified first."""
    from numbias.models.catalog import JUDGES, trained_stages

    if prepare:
        for spec in JUDGES.values():
            if spec.installed:
                spec.path()
    print_table(
        "embedded judges",
        {
            "name": lambda s: s.name,
            "kind": lambda s: s.kind,
            "licence": lambda s: s.licence,
            "size": lambda s: f"{fmt_num(s.size_bytes / 1e6, 0, plain=True)} MB",
            "installed": lambda s: "yes" if s.installed else "no",
            "install with": lambda s: s.install,
        },
        JUDGES.values(),
    )
    if stages := trained_stages():
        print_table(
            "trained stages (numbias train; backend transformers)",
            {
                "name": lambda s: s.name,
                "stage": lambda s: str(s.card.get("stage")),
                "from": lambda s: str(s.card.get("start", {}).get("name")),
                "seed": lambda s: str(s.card.get("seed")),
                "steps": lambda s: str(s.card.get("steps")),
                "final loss": lambda s: cell((s.card.get("loss") or [None])[-1], 3),
                "folder": lambda s: str(s.path),
            },
            stages,
        )
    console.print("Any local .gguf path is accepted as a judge too.")
