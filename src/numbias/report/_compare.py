"""The page of ``numbias compare``: each system's mean by every estimator, every pair
with P(A beats B), system-level agreement with the humans and the notes. What each
shows is computed here; ``templates/compare.html.j2`` draws it."""

from __future__ import annotations

import math

import pandas as pd
from markupsafe import Markup

from numbias.report._glossary import SYSTEM_COLUMNS
from numbias.report._parts import figure, notes
from numbias.report._templates import macro
from numbias.report.html import Column, Section, page, table
from numbias.report.svg import forest, heatmap
from numbias.studies.comparison import NAMES, CompareResults


def compare_page(res: CompareResults) -> str:
    """The page of ``numbias compare``: the systems, every pair, the agreement and notes."""
    s = res.settings
    budget = f"{s['labels']} labels drawn (seed {s['seed']})" if s["labels"] else "the labels given"
    subtitle = f"{len(res.systems)} systems · judge score {s['score']} · {budget}"
    return page("numbias system comparison", subtitle, compare_sections(res))


def compare_sections(res: CompareResults) -> list[Section]:
    """The systems (table and forest of means), the pairs, the agreement and the notes."""
    t = res.systems
    rows = [(name, key) for name in t["system"] for key in NAMES]
    by = t.set_index("system")
    svg = forest(
        [f"{name} · {NAMES[key]}" for name, key in rows],
        [by.loc[n, k] for n, k in rows],
        [by.loc[n, f"{k}_low"] for n, k in rows],
        [by.loc[n, f"{k}_high"] for n, k in rows],
        highlight=[k == "ppi" for _, k in rows],
        title="each system's mean human score",
        xlabel="mean on the human scale (95% CI); grey tick: the true mean",
        width=900,
        marks=[by.loc[n, "truth"] if "truth" in by else float("nan") for n, _ in rows],
        mark_label="true mean",
    )
    agreement = pd.DataFrame(
        [
            {"measure": k, "r": e.value, "r_low": e.low, "r_high": e.high, "systems": e.items}
            for k, e in res.agreement.items()
        ]
    )
    r = Column("r", "r [95% CI]", "correlation over systems; Fisher-z interval over the systems")
    return [
        (
            "Systems",
            table(t, SYSTEM_COLUMNS)
            + figure("Naive judge mean (biased), labelled-only and PPI++ mean of every system; PPI++ in colour.", svg),
        ),
        ("Pairs", pair_matrix(res) + table(res.pairs, SYSTEM_COLUMNS)),
        ("Agreement with the humans", macro("compare.html.j2", "agreement")(table=table(agreement, {"r": r}))),
        ("Notes", notes(res.notes)),
    ]


def pair_matrix(res: CompareResults) -> Markup:
    """P(row beats column) for every ordered pair as a heat map, with A − B and its interval as tooltips."""
    names = res.systems["system"].tolist()
    values = [[math.nan] * len(names) for _ in names]
    tips = [[""] * len(names) for _ in names]
    for r in res.pairs.to_dict("records"):
        i, j = names.index(r["a"]), names.index(r["b"])
        values[i][j], values[j][i] = r["beats"], 1 - r["beats"]
        ci = f"[{r['low']:+.2f}, {r['high']:+.2f}]"
        tips[i][j] = f"{r['a']} − {r['b']} = {r['difference']:+.2f} {ci}"
        tips[j][i] = f"{r['b']} − {r['a']} = {-r['difference']:+.2f} [{-r['high']:+.2f}, {-r['low']:+.2f}]"
    svg = heatmap(names, names, values, tips, title="P(row beats column)")
    return figure(
        "Probability that the row's system beats the column's (bootstrap over items); hover for the "
        "difference and its 95% CI.",
        svg,
    )
