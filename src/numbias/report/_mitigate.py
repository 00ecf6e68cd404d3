"""The page of ``numbias mitigate``: the verdicts, then each judge × task's rows with
their tests, the checks of the automatic choice, label efficiency and transfer. What
each shows is computed here; ``templates/mitigate.html.j2`` draws it."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
from markupsafe import Markup

from numbias.core.inference import resampling_note
from numbias.core.metrics import to_scale
from numbias.report._glossary import COLUMNS
from numbias.report._parts import card, cards, figure, notes, paired
from numbias.report._templates import macro
from numbias.report.html import Column, Section, page, table
from numbias.report.svg import PALETTE, Line, forest, lines
from numbias.report.verdict import CHOICE_ROW, DEFAULT_ROW, mitigate_verdicts
from numbias.studies.mitigation import Comparison, MitigateResults


def _draw(name: str, **values: object) -> Markup:
    return macro("mitigate.html.j2", name)(**values)


def mitigate_page(res: MitigateResults) -> str:
    """The page of ``numbias mitigate``: verdicts, then each comparison and the checks of the choice."""
    c = res.config
    split = f"{c.folds} folds" if c.folds else f"{c.dev} development items, the rest held out"
    subtitle = (
        f"{', '.join(j.name for j in c.judges)} on {', '.join(dict.fromkeys(x.task for x in res.comparisons))}"
        f" · scales {', '.join(c.scales)} · {split} · criterion {c.criterion}"
    )
    return page("numbias mitigation report", subtitle, mitigate_sections(res))


def mitigate_sections(res: MitigateResults) -> list[Section]:
    """The verdicts, each comparison, and the checks that were run (selection, label efficiency, transfer)."""
    verdicts = [
        card(f"{v.judge} on {v.task}", v.level, v.tiles(), v.finding(), v.advice(), v.badge)
        for v in mitigate_verdicts(res)
    ]
    parts: list[Section] = [("Verdict", cards(verdicts))]
    for c in res.comparisons:
        parts.append((f"Mitigations: {c.judge.name} · {c.task}", comparison_html(c, res.config.criterion)))
    if len(res.selection):
        parts.append(("What the choice is worth", _draw("worth", table=table(res.selection, COLUMNS))))
    if len(curve := res.label_curve):
        parts.append(("Label efficiency", label_figures(curve)))
    if len(res.transfer):
        parts.append(("Transfer", _draw("transfer", table=table(res.transfer, COLUMNS))))
    if res.notes:
        parts.append(("Notes", notes(res.notes)))
    return parts


def comparison_html(c: Comparison, criterion: str) -> Markup:
    """One judge × task: the table of rows, their test r with intervals, and the test
    histograms before (the paper's default) and after (the automatic choice)."""
    t = c.table
    svg = forest(
        t["row"].tolist(),
        t["pearson"].tolist(),
        t["pearson_low"].tolist(),
        t["pearson_high"].tolist(),
        highlight=[r == CHOICE_ROW for r in t["row"]],
        title=f"test Pearson r, {c.judge.name} · {c.task}",
        xlabel="test Pearson r with the humans (95% CI)",
        width=1140,
    )
    panels = []
    for label, color in ((DEFAULT_ROW, PALETTE[1]), (CHOICE_ROW, PALETTE[0])):
        scale = c.row_scales[label]
        setting = t.set_index("row").loc[label, "setting"]
        panels.append(
            figure(
                f"{'before' if label == DEFAULT_ROW else 'after'}: {label} ({setting})",
                paired(
                    scale,
                    c.test_scores[label],
                    to_scale(c.test_human, c.human_range, scale),
                    label,
                    f"{label}, test items",
                    color,
                    width=560,
                ),
            )
        )
    return _draw(
        "comparison",
        chosen=", ".join(dict.fromkeys(s.label for s in c.chosen)),
        criterion=criterion,
        table=table(t.drop(columns=["family"]), effect_columns(c)),
        note=effects_note(c),
        forest=figure("Test Pearson r of every row (95% CI); the automatic choice in colour.", svg),
        panels=panels,
    )


def effects_note(c: Comparison) -> str:
    """What the Δ r column resampled and corrected, in words."""
    if not c.effects:
        return "No row was tested against the default."
    note = resampling_note(next(iter(c.effects.values())), "holm", len(c.effects))
    return (
        f"Δ r: each row's test r minus the paper's default's; {note}. A row is called better or worse only "
        "where its adjusted p is below 0.05; the oracle reads the test labels and is not tested."
    )


def effect_columns(c: Comparison) -> dict[str, Column]:
    """The table's columns, the Δ r and adjusted-p tooltips saying what this table resampled and corrected."""
    note = effects_note(c)
    return {
        **COLUMNS,
        "Δ r": replace(COLUMNS["Δ r"], tip=f"{COLUMNS['Δ r'].tip}. {note}"),
        "p adjusted": replace(COLUMNS["p adjusted"], tip=f"{COLUMNS['p adjusted'].tip}. {note}"),
    }


def label_figures(curve: pd.DataFrame) -> Markup:
    """Mean test r (± one standard deviation over the draws) of each choice against the
    number of labels, per judge × task; the label-free choice at zero."""
    figs = []
    for (judge, task), part in curve.groupby(["judge", "task"], sort=False):
        sizes = sorted(set(part["labels"]))
        series = []
        for k, (choice, rows) in enumerate(part.groupby("choice", sort=False)):
            stats = rows.groupby("labels")["test pearson"].agg(["mean", "std"]).reindex(sizes)
            series.append(
                Line(
                    choice,
                    stats["mean"].tolist(),
                    stats["std"].fillna(0.0).tolist(),
                    PALETTE[k % len(PALETTE)],
                    choice == CHOICE_ROW,
                )
            )
        figs.append(
            figure(
                f"{judge} · {task}: test r against the number of labelled development items (0: the label-free choice)",
                lines(
                    [str(n) for n in sizes],
                    series,
                    title=f"label efficiency, {judge} · {task}",
                    xlabel="human labels used to choose and fit",
                    ylabel="test Pearson r",
                    width=1140,
                    height=320,
                ),
            )
        )
    return Markup("").join(figs)
