"""``numbias align``: base against aligned judges, and its tables."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from numbias.cli._common import RUNNING, Column, console, number, print_table, rich_progress, text
from numbias.cli._options import ForceOpt, Server, StudyFlags, Tailored, TaskFlags, WaitOpt, grouped
from numbias.util.errors import NumbiasError
from numbias.util.fmt import fmt_ci

if TYPE_CHECKING:
    import pandas as pd

    from numbias.studies.alignment import AlignConfig, AlignResults


@grouped
def align_cmd(
    config: Annotated[Path | None, typer.Argument(help="YAML alignment-study config (optional).")] = None,
    base: Annotated[list[str] | None, typer.Option(help="Base judge of a pair: name or GGUF path, repeatable.")] = None,
    aligned: Annotated[
        list[str] | None, typer.Option(help="Aligned judge paired with the --base at the same position (repeatable).")
    ] = None,
    sample: Annotated[
        bool, typer.Option(help="Also run the sampling protocol on the models (else its exact expectation).")
    ] = True,
    study: Annotated[StudyFlags, Tailored(omit=("judge",))] = StudyFlags(),
    tasks: Annotated[TaskFlags, Tailored(omit=("system_column",))] = TaskFlags(),
    wait: WaitOpt = False,
    force: ForceOpt = False,
    server: Server = Server(),
) -> None:
    """Base vs aligned judges (default: Gemma 3 270M base vs SmolLM2 135M instruct, plus Qwen)."""
    from numbias.studies.alignment import parse_align

    settings = study.read("align-config.yaml", config, base or aligned or tasks.task or tasks.data or tasks.option)
    if base or aligned:
        if len(base or []) != len(aligned or []):
            raise NumbiasError(f"give one --aligned per --base (got {len(base or [])} and {len(aligned or [])})")
        settings["pairs"] = [{"base": b, "aligned": a} for b, a in zip(base or [], aligned or [])]
        settings.setdefault("extra_aligned", [])
    if not sample:
        settings["sample"] = False
    settings.update(study.settings(tasks.configs()))
    _run_align(parse_align(settings), wait, force, server, study.source)


def _run_align(parsed: AlignConfig, wait: bool, force: bool, server: Server, source: Path | None) -> None:
    """Check what it writes, run the study (or re-analyse the ``source`` folder's
    files) under the folder's lock, write it, print the tables."""
    from numbias.judge.config import use_server
    from numbias.report.build import ALIGN_FILES, write
    from numbias.studies.alignment import align
    from numbias.studies.recompute import align_from
    from numbias.util.output import claim, one_writer

    claim(parsed.out, ALIGN_FILES, force=force)
    if source is None:
        use_server(
            [j for p in parsed.pairs for j in (p.base, p.aligned)] + list(parsed.extra_aligned),
            server.base_url,
            server.api_key_env,
        )
        RUNNING["store"] = Path(parsed.store or Path(parsed.out) / "store.sqlite")
    with one_writer(parsed.out, wait=wait):
        results = align_from(source, parsed) if source is not None else align(parsed, progress=rich_progress)
        folder = write(results, force=force)
    for note in results.study.notes:
        console.print(f"note: {note}")
    _print_alignment(results)
    _print_stages(results)
    extra = [name for name, rows in (("stages.csv", results.stages), ("diversity.csv", results.diversity)) if len(rows)]
    console.print(f"results in {folder}/ (alignment.csv, simulated_kurtosis.csv, {', '.join(extra + ['report.html'])})")


def _print_stages(results: AlignResults) -> None:
    """The trained stages against the base (exact expected scores) and each judge's
    output diversity, when the study has them."""
    from numbias.studies.stages import METRICS, effect_text, table_note

    if len(results.stages):
        shown = {
            "kurtosis": "kurtosis",
            "pearson": "Pearson r",
            "mode_share": "mode share",
            "sd_ratio": "SD ratio",
            "next_token_entropy": "next-token entropy",
        }
        columns: dict[str, Column] = {
            **{key: text(key) for key in ("task", "scale", "stage", "against", "seeds")},
            **{head: partial(effect_text, metric=metric) for metric, head in shown.items()},
        }
        print_table(
            "trained stages against the base, and DPO after SFT against SFT of the same seed (exact "
            "expected; reference → mean over seeds, Δ [95% CI], adjusted p; * the adjusted test rejects)",
            columns,
            results.stages[results.stages["rule"] == "expected"].to_dict("records"),
        )
        console.print(
            f"stages: {table_note(results.stages, [f'Δ {m}' for m in METRICS])} (stages.csv, every rule and metric)",
            highlight=False,
        )
    if len(results.diversity):
        names = ["judge", "stage", "seed", "generations", "distinct-1", "distinct-2", "mean words", "empty"]
        print_table(
            "output diversity (free generations on held-out instructions)",
            {name: number(name, 3, missing="") for name in names},
            results.diversity.to_dict("records"),
        )


def _print_alignment(results: AlignResults) -> None:
    """The paper's main table, the correlation of kurtosis with accuracy, and the paired shift."""
    from numbias.studies.stages import delta_text, table_note

    names = [
        "base",
        "aligned",
        "task",
        "scale",
        "scoring",
        "human kurtosis",
        "base kurtosis",
        "aligned kurtosis",
        "base r",
        "aligned r",
        *[c for c in ("base group r", "aligned group r") if c in results.table],
        "aligned SD ratio",
        "aligned out-of-scale",
    ]
    columns: dict[str, Column] = {
        **{name: number(name) for name in names},
        "Δ kurtosis": lambda r: delta_text(r, "Δ kurtosis").removeprefix("Δ "),
        "Δ r": lambda r: delta_text(r, "Δ r").removeprefix("Δ "),
    }
    print_table(
        "alignment study (layout of the paper's main table; Δ aligned − base [95% CI], adjusted p)",
        columns,
        results.table.to_dict("records"),
    )
    console.print(f"alignment: {table_note(results.table, ['Δ kurtosis', 'Δ r'])}", highlight=False)
    for note in dict.fromkeys(results.table["note"]):
        if note:
            console.print(f"note: {note}")
    for rule, iv in results.correlation.items():
        console.print(
            f"kurtosis vs Pearson r over all settings ({rule}): "
            f"{fmt_ci(iv.value, iv.low, iv.high, plain=True)} (paper: -0.60)"
        )
    print_shift(results.shift)


def print_shift(shift: pd.DataFrame) -> None:
    """One line per scoring: the paired counts of :func:`numbias.studies.alignment.paired_shift`."""
    from numbias.report.verdict import shift_sentence

    for r in shift.to_dict("records"):
        console.print(shift_sentence(r), highlight=False)
