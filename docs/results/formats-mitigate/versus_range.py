"""The label-free rows against the paper's best single-number mitigation, score range
adjustment (the row "best score range (dev)": the range chosen on development items),
on the same test items, per judge and task: paired item-bootstrap Δ r (40,000
resamples, seed 0), Holm over every row compared in the folder. Reads the folder's
predictions.csv.gz only.

    python docs/results/formats-mitigate/versus_range.py docs/results/formats-mitigate
    python docs/results/formats-mitigate/versus_range.py docs/results/formats-tasks-mitigate
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from numbias.core.inference import adjust, paired_effect
from numbias.core.metrics import pearson_rows

BASELINE = "best score range (dev)"
LABEL_FREE = ("format ensemble (label-free)", "contrast (λ label-free", "label-free (entropy) choice")
"""Rows whose title starts with one of these read no label."""


def versus(predictions: pd.DataFrame) -> pd.DataFrame:
    """One row per judge, task and label-free row: Δ r against the baseline [95% CI], raw
    and Holm p."""
    keys, found = [], []
    for (judge, task), part in predictions.groupby(["judge", "task"], sort=False):
        wide = part.pivot_table(index="id", columns="row", values="prediction")
        human = part.drop_duplicates("id").set_index("id").loc[wide.index, "human"].to_numpy(float)
        base = wide[BASELINE].to_numpy(float)
        for r in (r for r in wide.columns if r.startswith(LABEL_FREE)):
            keys.append((judge, task, r))
            found.append(paired_effect(pearson_rows, base, wide[r].to_numpy(float), human, n_boot=40_000, seed=0))
    return pd.DataFrame(
        [
            {
                "judge": judge,
                "task": task,
                "row": r,
                "delta_r": e.delta,
                "low": e.low,
                "high": e.high,
                "p": e.p,
                "p_holm": e.p_adjusted,
                "items": e.items,
            }
            for (judge, task, r), e in zip(keys, adjust(found))
        ]
    )


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    table = versus(pd.read_csv(folder / "predictions.csv.gz"))
    table.to_csv(folder / "versus_range.csv", index=False, float_format="%.6g")
    with pd.option_context("display.width", 250, "display.max_colwidth", 60):
        print(table.round(3).to_string(index=False))
