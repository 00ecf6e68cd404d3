"""``numbias correlate``: kurtosis against accuracy pooled over results folders."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from numbias.cli._align import print_shift
from numbias.cli._common import console
from numbias.util.errors import NumbiasError, first_line, readable_file
from numbias.util.fmt import fmt_ci


def correlate_cmd(
    folders: Annotated[list[Path], typer.Argument(help="Results folders (each with a summary.json).")],
) -> None:
    """Kurtosis against Pearson r across every setting of one or more results folders
    (a study run in parts, pooled)."""
    import pandas as pd

    from numbias.studies.alignment import adjust_table, kurtosis_accuracy, paired_shift

    frames = []
    for folder in folders:
        path = folder / "summary.json"
        try:
            frames.append(pd.read_json(readable_file(path, "results file")))
        except NumbiasError as exc:  # a FIFO is never opened, a folder or a loop is named
            raise NumbiasError(f"cannot read {path}: {exc}") from None
        except (OSError, ValueError) as exc:
            raise NumbiasError(f"cannot read {path}: {first_line(exc)}") from None
    summary = pd.concat(frames, ignore_index=True)
    if not {"rule", "kurtosis", "pearson"} <= set(summary.columns):
        raise NumbiasError("summary.json lacks rule/kurtosis/pearson columns: is it a numbias results folder?")
    rules = list(dict.fromkeys(summary["rule"]))
    correlation = kurtosis_accuracy(summary, rules)
    if not correlation:
        counts = summary.dropna(subset=["kurtosis", "pearson"]).groupby("rule").size().to_dict()
        raise NumbiasError(
            f"too few settings with a kurtosis and a Pearson r to correlate (need 3 per rule; have {counts or 'none'})"
        )
    for rule, iv in correlation.items():
        n = int(summary[summary.rule == rule].dropna(subset=["kurtosis", "pearson"]).shape[0])
        console.print(
            f"kurtosis vs Pearson r over {n} settings ({rule}): "
            f"{fmt_ci(iv.value, iv.low, iv.high, plain=True)} (paper: -0.60)"
        )
    tables = [folder / "alignment.csv" for folder in folders]
    if missing := [str(t.parent) for t in tables if not t.is_file()]:
        if len(missing) < len(tables):
            console.print(f"no paired view: {', '.join(missing)} has no alignment.csv (not a `numbias align` folder)")
        return
    try:
        pooled = pd.concat([pd.read_csv(t) for t in tables], ignore_index=True)
        tested = {"Δ kurtosis p", "Δ r p"} <= set(pooled.columns)  # tables from before the tests have none
        print_shift(paired_shift(adjust_table(pooled) if tested else pooled))
    except (OSError, ValueError, KeyError) as exc:
        raise NumbiasError(f"cannot read the alignment tables: {first_line(exc)}") from None
