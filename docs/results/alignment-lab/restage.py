"""The stage table of the committed alignment-lab study, recomputed from its files alone
(study/summary.json, study/items.csv.gz, study/config.yaml): no model, no trained stage.

    python docs/results/alignment-lab/restage.py   # writes study/stages.csv, prints the counts the write-up cites

The trained stages' cards are not in the repository, so each judge's stage and seed are
read from its name (gemma3-270m-sft-s0, -sft-dpo-s1, -dpo-s0; the base otherwise)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from numbias.judge.config import JudgeConfig, read_yaml
from numbias.studies import stages

STUDY = Path(__file__).resolve().parent / "study"
NAME = re.compile(r"gemma3-270m-(sft-dpo|sft|dpo)-s(\d+)$")
STAGES = {"sft": "SFT", "sft-dpo": "SFT+DPO", "dpo": "DPO"}
RANGES = {"vader": (-4.0, 4.0), "simlex": (0.0, 10.0), "stsb": (0.0, 5.0)}


def stage_from_name(judge: JudgeConfig) -> tuple[str, int | None]:
    """A judge's stage and seed, as its name spells them."""
    match = NAME.match(judge.name)
    return ("base", None) if match is None else (STAGES[match[1]], int(match[2]))


def table() -> pd.DataFrame:
    judges = [JudgeConfig.model_validate(j) for j in read_yaml(STUDY / "config.yaml")["judges"]]
    summary = pd.DataFrame(json.loads((STUDY / "summary.json").read_text(encoding="utf-8")))
    items = pd.read_csv(STUDY / "items.csv.gz")
    stages.stage_of = stage_from_name  # the cards are not committed; the names say the same
    return stages.stage_table(judges, summary, items, ranges=RANGES, n_boot=1000, seed=0)


def counts(t: pd.DataFrame) -> pd.DataFrame:
    """Per comparison and metric: rows, rises and falls whose Holm-adjusted p is below 0.05."""
    rows = []
    for (stage, against), part in t.groupby(["stage", "against"], sort=False):
        for m in stages.METRICS:
            sig = part[f"Δ {m} p adj"] < 0.05
            rows.append({"stage": stage, "against": against, "metric": m, "rows": len(part),
                         "up, adjusted p < 0.05": int((sig & (part[f"Δ {m}"] > 0)).sum()),
                         "down, adjusted p < 0.05": int((sig & (part[f"Δ {m}"] < 0)).sum()),
                         "smallest p adj": float(part[f"Δ {m} p adj"].min())})
    return pd.DataFrame(rows)


if __name__ == "__main__":
    t = table()
    t.to_csv(STUDY / "stages.csv", index=False)
    print(counts(t).to_string(index=False, float_format=lambda v: f"{v:.3g}"))
