"""Each format against the digits on the same words: paired item-bootstrap effects on
the judge's accuracy (Pearson r of the expected score), its pile-up (mode share of the
greedy answers, i.e. the most likely label of the scale; excess kurtosis of the expected
scores) and its spread (SD ratio), all read at temperature 1, with Holm's correction
over the whole table. Reads the folder's own items.csv only.

    python docs/results/formats/analyse.py docs/results/formats

writes formats.csv beside items.csv and prints the table the README states, as text
and as the README's Markdown (each cell: digits → format, Δ [95% CI], Holm p).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from numbias.core.inference import adjust, paired_effect
from numbias.core.metrics import kurtosis_rows, mode_share_rows, pearson_rows, sd_ratio_rows
from numbias.core.scale import ScoreScale

DIGITS = "1-5"
N_BOOT = 40_000
"""Resamples per test: a p-value that no resample reaches (one no resample crossed zero
for) is below 2/(B+1) = 5e-5, and ``paired_effect`` then extrapolates it from a normal
tail; with B = 4,000 the Monte Carlo error of p moved one Holm decision across 0.05."""


def statistics(scale: ScoreScale, human_range: tuple[float, float]) -> dict[str, tuple[str, object]]:
    """What is compared, and the rule it is read on."""
    return {
        "pearson": ("expected", pearson_rows),
        "kurtosis": ("expected", kurtosis_rows),
        "sd_ratio": ("expected", sd_ratio_rows(scale, human_range)),
        "mode_share": ("greedy", mode_share_rows(scale)),
    }


def effects(items: pd.DataFrame, human_ranges: dict[str, tuple[float, float]]) -> pd.DataFrame:
    """One row per judge, task, format and statistic: the format's value, the digits',
    their paired difference with its (unadjusted) 95% interval and raw and Holm-adjusted
    p. Mode shares are compared only where the digits' greedy answers are not all one label."""
    rows, found = [], []
    for (judge, task), part in items.groupby(["judge", "task"], sort=False):
        digits = part[part["scale"] == DIGITS].set_index("id")
        for scale_text, other in part[part["scale"] != DIGITS].groupby("scale", sort=False):
            other = other.set_index("id").loc[digits.index]
            for name, (rule, statistic) in statistics(ScoreScale.parse(DIGITS), human_ranges[task]).items():
                a, b, human = (
                    digits[rule].to_numpy(float),
                    other[rule].to_numpy(float),
                    digits["human"].to_numpy(float),
                )
                if name == "mode_share" and len(np.unique(a)) == 1:
                    continue  # every greedy answer one label: a share of 1 has no bootstrap to speak of
                effect = paired_effect(statistic, a, b, human, n_boot=N_BOOT, seed=0)
                value = lambda x: float(statistic(x[None], human[None])[0])  # noqa: E731
                rows.append(
                    {
                        "judge": judge,
                        "task": task,
                        "format": scale_text,
                        "statistic": name,
                        "rule": rule,
                        "digits": value(a),
                        "format_value": value(b),
                    }
                )
                found.append(effect)
    table = pd.DataFrame(rows)
    for k, e in enumerate(adjust(found)):
        table.loc[k, ["delta", "low", "high", "p", "p_holm", "items"]] = [
            e.delta,
            e.low,
            e.high,
            e.p,
            e.p_adjusted,
            e.items,
        ]
    return table


def _cell(row: pd.Series) -> str:
    """One comparison as the README writes it; '≤ 0.001' where no resample crossed zero
    (the resamples support no smaller Holm p)."""
    p = "≤ 0.001" if row["p_holm"] <= 0.001 else f"{row['p_holm']:.3f}"
    sign = lambda x: f"{x:+.2f}".replace("-", "−")  # noqa: E731
    plain = lambda x: f"{x:.2f}".replace("-", "−")  # noqa: E731
    return (
        f"{plain(row['digits'])} → {plain(row['format_value'])}, Δ {sign(row['delta'])} "
        f"[{sign(row['low'])}, {sign(row['high'])}], {p}"
    )


def markdown(table: pd.DataFrame) -> str:
    """The table as the README's Markdown: a row per judge, task and format."""
    names = ["pearson", "mode_share", "kurtosis", "sd_ratio"]
    lines = ["| judge | task | format | r | mode share (greedy) | kurtosis | SD ratio |", "|---" * 7 + "|"]
    for (judge, task, fmt), part in table.groupby(["judge", "task", "format"], sort=False):
        cells = {row["statistic"]: _cell(row) for _, row in part.iterrows()}
        lines.append(f"| {judge} | {task} | {fmt} | " + " | ".join(cells.get(n, "—") for n in names) + " |")
    return "\n".join(lines)


def main(folder: Path) -> None:
    items = pd.read_csv(folder / "items.csv")
    data = pd.read_csv(folder / "data.csv.gz").drop_duplicates("task")
    human_ranges = {
        t: (float(lo), float(hi)) for t, lo, hi in data[["task", "human_lo", "human_hi"]].itertuples(index=False)
    }
    table = effects(items, human_ranges)
    table.to_csv(folder / "formats.csv", index=False, float_format="%.6g")
    with pd.option_context("display.width", 200):
        print(table.round(3).to_string(index=False))
    print(markdown(table))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
