"""A clean replication of the committed VADER choice (docs/results/mitigate/qwen-vader.json).

1,000 VADER words that no committed study used (`skip: 500`: the 200-, 300- and 500-word
VADER studies took the first 500 rows of the same seeded draw), scored by the saved
judge and by the paper's default (0-9, the protocol's exact expectation at T = 0.7) with
the same judge, then both Pearson r with 95% CIs and the paired gain.

    python docs/results/replication/replicate.py          # score (Qwen on llama.cpp) and analyse
    python docs/results/replication/replicate.py --files  # recompute from the committed scores only

Scoring writes saved/ and default/ (scores.csv, scores.jsonl) and keeps its store in
results-store/replication-{saved,default}.sqlite, so a stopped run resumes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
SAVED = ROOT / "docs/results/mitigate/qwen-vader.json"
TASK = {"name": "vader", "options": {"n": 1000, "skip": 500}}
JUDGE = {"model": "qwen2.5-coder-0.5b-instruct", "options": {"prune": 1.0e-4, "n_threads": 1}}
N_BOOT, SEED = 10_000, 0


def score() -> None:
    """Score the fresh words with the saved judge and with the paper's default."""
    import numbias
    from numbias.studies.scoring import write_scores

    stores = ROOT / "results-store"
    stores.mkdir(exist_ok=True)
    saved = numbias.CalibratedJudge.load(SAVED)
    write_scores(numbias.score(TASK, store=stores / "replication-saved.sqlite", calibrated=saved), HERE / "saved")
    write_scores(numbias.score(TASK, JUDGE, "0-9", store=stores / "replication-default.sqlite"), HERE / "default")


def analyse() -> pd.DataFrame:
    """Both r with CIs and the paired gain, from the committed scores alone."""
    from scipy.stats import binomtest

    from numbias.core.inference import paired_effect
    from numbias.core.metrics import bootstrap, pearson_rows

    saved = pd.read_csv(HERE / "saved" / "scores.csv").set_index("id")
    default = pd.read_csv(HERE / "default" / "scores.csv").set_index("id").loc[saved.index]
    human = saved["human"].to_numpy()
    rows = []
    for name, scores in (("paper default (0-9, protocol)", default["protocol"]),
                         ("saved judge (qwen-vader.json)", saved["calibrated"])):
        r = bootstrap(scores.to_numpy(), human, pearson_rows, n_boot=N_BOOT, seed=SEED)
        rows.append({"row": name, "items": len(human), "pearson": r.value, "low": r.low, "high": r.high})
    gain = paired_effect(pearson_rows, default["protocol"].to_numpy(), saved["calibrated"].to_numpy(), human,
                         n_boot=N_BOOT, seed=SEED)
    rows.append({"row": "gain (saved − default, paired)", "items": gain.items, "pearson": gain.delta,
                 "low": gain.low, "high": gain.high, "p": gain.p})
    inside = (saved["low"] <= saved["human"]) & (saved["human"] <= saved["high"])
    ci = binomtest(int(inside.sum()), int(inside.size)).proportion_ci(method="wilson")
    rows.append({"row": "90% interval coverage", "items": int(inside.size), "pearson": float(inside.mean()),
                 "low": ci.low, "high": ci.high})
    return pd.DataFrame(rows)


def main(argv: list[str]) -> None:
    if "--files" not in argv:
        score()
    table = analyse()
    table.to_csv(HERE / "replication.csv", index=False)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main(sys.argv[1:])
