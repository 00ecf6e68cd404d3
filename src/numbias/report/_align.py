"""The page of ``numbias align``: the study's page with the pairs' findings first and
their sections after the summary (the alignment table with its changes, the paired
view, base against aligned histograms, trained stages, output diversity). What each
shows is computed here; ``templates/align.html.j2`` draws it."""

from __future__ import annotations

import numpy as np
import pandas as pd
from markupsafe import Markup

from numbias.report._glossary import COLUMNS
from numbias.report._parts import figure, mapped, notes, paired
from numbias.report._study import study_sections, summary_row
from numbias.report._templates import macro
from numbias.report.html import Column, Section, page, table
from numbias.report.svg import PALETTE, Point, scatter
from numbias.report.verdict import align_lead
from numbias.studies.alignment import JITTER, AlignResults
from numbias.studies.stages import effect_text, table_note
from numbias.util.fmt import fmt_num


def _draw(name: str, **values: object) -> Markup:
    return macro("align.html.j2", name)(**values)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def align_page(res: AlignResults) -> str:
    """The study's page with the pairs' findings first and their sections after the summary."""
    study = res.study
    subtitle = (
        f"{_plural(len(res.config.pairs) + len(res.config.extra_aligned), 'base/aligned pair')} on "
        f"{', '.join(dict.fromkeys(s.task for s in study.sets))} · scales {', '.join(res.config.scales)}"
    )
    lead = _draw("lead", lines=[line[0].upper() + line[1:] for line in align_lead(res)])
    return page("numbias alignment report", subtitle, study_sections(study, align_sections(res), lead))


def align_sections(res: AlignResults) -> list[Section]:
    """The sections align adds after the summary; stages and diversity where they were measured."""
    table_notes = [n for n in dict.fromkeys(res.table["note"]) if n]
    return [
        ("Alignment study: base vs aligned", align_table(res) + notes(table_notes) + paired_view(res.table)),
        ("Aligned against base, setting by setting", _draw("shift", table=table(res.shift, COLUMNS))),
        ("Base vs aligned histograms", align_histograms(res)),
        ("Simulated kurtosis of the n-sample protocol mean", table(res.simulated, COLUMNS)),
        *(
            (("Trained stages against the base: changes with 95% CIs over items and seeds", stage_summary(res.stages)),)
            if len(res.stages)
            else ()
        ),
        *(
            (
                (
                    "Output diversity: free generations on held-out instructions",
                    _draw("diversity", table=table(res.diversity, COLUMNS)),
                ),
            )
            if len(res.diversity)
            else ()
        ),
    ]


STAGE_SHOWN = {
    "kurtosis": "kurtosis",
    "pearson": "Pearson r",
    "mode_share": "mode share",
    "entropy": "score entropy",
    "sd_ratio": "SD ratio",
    "out_of_scale": "out-of-scale mass",
    "non_numeric": "non-numeric mass",
    "next_token_entropy": "next-token entropy",
}


def stage_summary(stages: pd.DataFrame) -> Markup:
    """One row per task × scale × rule × stage and what it is set against (the base, or
    for DPO after SFT the SFT model of the same seed): each metric as reference → stage
    mean, Δ [95% CI] and the Holm-adjusted p, marked only when the adjusted test rejects."""
    note = table_note(stages, [f"Δ {m}" for m in STAGE_SHOWN])
    known = {
        **COLUMNS,
        **{
            label: Column(label, label, f"reference → the stage's mean over seeds, Δ [95% CI], adjusted p. {note}")
            for label in STAGE_SHOWN.values()
        },
    }
    rows = []
    for r in stages.to_dict("records"):
        row = {k: r[k] for k in ("task", "scale", "rule", "stage", "against", "seeds")}
        row["mode"] = f"{r['base mode']:g} → {r['mode']:g}"
        row |= {label: effect_text(r, metric) for metric, label in STAGE_SHOWN.items()}
        rows.append(row)
    return _draw("stages", table=table(pd.DataFrame(rows), known), note=note)


def align_table(res: AlignResults) -> Markup:
    """The alignment table with its changes' CIs and adjusted p, and a footnote saying
    what was resampled and how the p-values were corrected."""
    note = table_note(res.table, ["Δ kurtosis", "Δ r"])
    tip = f"aligned minus base on the same items, 95% CI, Holm-adjusted p. {note}"
    known = {
        **COLUMNS,
        "Δ kurtosis": Column("Δ kurtosis", "Δ kurtosis [95% CI]", tip),
        "Δ kurtosis p adj": Column("Δ kurtosis p adj", "Δ kurtosis p (adjusted)", note, digits=3),
        "Δ r": Column("Δ r", "Δ r [95% CI]", tip),
        "Δ r p adj": Column("Δ r p adj", "Δ r p (adjusted)", note, digits=3),
    }
    jitter = [*(f"{who} {label}" for label in JITTER for who in ("base", "aligned")), "humans in aligned mode's bin"]
    shown = res.table.drop(columns=["note", "items", "Δ kurtosis p", "Δ r p", *jitter])
    spread = res.table[["base", "aligned", "task", "scale", "scoring", *jitter]]
    return _draw("changes", changes=table(shown, known), note=note, spread=table(spread, COLUMNS))


def paired_view(table_: pd.DataFrame) -> Markup:
    """Each setting's move from base to aligned in the kurtosis–accuracy plane: an
    arrow per pair × task × scale × scoring."""
    scorings = list(dict.fromkeys(table_["scoring"]))
    color = {s: PALETTE[k % len(PALETTE)] for k, s in enumerate(scorings)}
    points, links = [], []
    for r in table_.to_dict("records"):
        where = f"{r['task']} · {r['scale']} · {r['scoring']}"
        points.append(
            Point(
                r["base kurtosis"],
                r["base r"],
                "",
                "#555",
                f"{r['base']} (base) · {where}: kurtosis {r['base kurtosis']:.2f}, r {r['base r']:.2f}",
            )
        )
        points.append(
            Point(
                r["aligned kurtosis"],
                r["aligned r"],
                f"{r['scale']}",
                color[r["scoring"]],
                f"{r['aligned']} · {where}: kurtosis {r['aligned kurtosis']:.2f}, r {r['aligned r']:.2f}",
            )
        )
        links.append((len(points) - 2, len(points) - 1))
    xlog = bool((table_[["base kurtosis", "aligned kurtosis"]].abs() > 10).any().any())
    humans = table_.drop_duplicates("task")
    vlines = [
        (float(r["human kurtosis"]), "humans" if len(humans) == 1 else f"humans ({r['task']})")
        for r in humans.to_dict("records")
        if np.isfinite(r["human kurtosis"])
    ]
    svg = scatter(
        points,
        title="base to aligned, setting by setting",
        xlabel="excess kurtosis" + (" (signed log axis)" if xlog else ""),
        ylabel="Pearson r with the humans",
        xlog=xlog,
        links=links,
        vlines=vlines,
        legend=[("base", "#555"), *((s, color[s]) for s in scorings)],
        width=760,
        height=380,
    )
    return figure(
        "The paired view: each arrow goes from the base judge to the aligned one on the same items; "
        "right and down is the paper's claim (more peaked, less accurate).",
        svg,
    )


def align_histograms(res: AlignResults) -> Markup:
    """Per pair × task × scale, the base's and the aligned judge's histograms side by
    side, each paired with the humans' (the protocol's exact expectation)."""
    sets = {(s.judge, s.task, str(s.scale)): s for s in res.study.sets if s.mode == "exact"}
    rows = []
    for r in res.table.drop_duplicates(["base", "aligned", "task", "scale"]).to_dict("records"):
        panels = []
        for role, color in (("base", PALETTE[1]), ("aligned", PALETTE[0])):
            s = sets[(r[role], r["task"], r["scale"])]
            row = summary_row(res.study.summary, s.judge, s.task, str(s.scale), "protocol")
            panels.append(
                figure(
                    f"{role}: {s.judge} · {s.task} · {s.scale} · protocol — kurtosis "
                    f"{fmt_num(row['kurtosis'])}, r {fmt_num(row['pearson'])}",
                    paired(s.scale, s.scores("protocol"), mapped(s), role, f"{role} {s.judge}", color, width=560),
                )
            )
        rows.append(panels)
    return _draw("pairs", rows=rows)
