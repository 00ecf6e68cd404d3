"""Judge the base and the positive control's stages on VADER words no study in docs/results
uses, into the store (resumable), and write every judged item's exact distribution to
``study/dists.csv.gz`` — the file analyse.py reads, with no model and no store.

The judges are llama.cpp on the GGUFs stage_gguf.py writes (base and stages differ only
in the merged LoRA deltas), one thread each, plain prompts (no chat template), the
default pruning. A smaller ``--words`` first gives every judge the same words early; a
larger one later reuses the store (the draws are nested).

    python docs/results/positive-control/judge.py --seeds 0 [--seeds 1] [--words 1000] [--scale 0-9]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from numbias.core.scale import ScoreScale
from numbias.data.tasks import TaskConfig, prepare
from numbias.judge.config import JudgeConfig
from numbias.judge.judging import Judge, collect
from numbias.judge.store import Store

HERE = Path(__file__).resolve().parent
MODELS = Path("results-store/positive-control")
STORE = Path("results-store/positive-control.sqlite")
SKIP = 1500
"""VADER words after the first 1,500 of the seeded draw (the 200/300/500-word studies and the replication use those)."""
SCALES = ("0-9", "1-5")
ARMS = ("leaning", "informed")


def judge(label: str) -> Judge:
    """A GGUF of MODELS as a plain llama.cpp judge on one thread."""
    return Judge(JudgeConfig(model=str(MODELS / f"{label}.gguf"), backend="llama.cpp", label=label,
                             options={"n_threads": 1, "chat": False}))


def rows(judged: object, label: str) -> pd.DataFrame:
    """One row per item: who judged it, the human score, and the whole distribution."""
    data, dists, scale = judged.data, judged.distributions, judged.scale  # type: ignore[attr-defined]
    frame = pd.DataFrame([d.probs for d in dists], columns=[f"p{v}" for v in scale.labels])
    frame.insert(0, "human", data.human)
    frame.insert(0, "id", data.ids)
    frame.insert(0, "scale", str(scale))
    frame.insert(0, "judge", label)
    frame["below"], frame["above"], frame["other"] = ([getattr(d, k) for d in dists] for k in ("below", "above", "other"))
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, action="append", required=True)
    parser.add_argument("--words", type=int, default=1000, help="the first N words of the unused draw")
    parser.add_argument("--scale", action="append", choices=SCALES, help="default: both, 0-9 first")
    args = parser.parse_args()
    task = prepare(TaskConfig(name="vader", options={"n": args.words, "skip": SKIP}))
    labels = ["base"] + [f"pc-{arm}-sft-s{seed}" for seed in args.seeds for arm in ARMS]
    out = HERE / "study" / "dists.csv.gz"
    kept = pd.read_csv(out) if out.is_file() else pd.DataFrame(columns=["judge", "scale", "id"])
    with Store(STORE) as store:
        for scale in args.scale or SCALES:
            for label in labels:
                done = kept[(kept.judge == label) & (kept.scale == scale)]
                if set(task.data.ids) <= set(done.id):
                    continue
                judged = collect(judge(label), task.label, task.data, task.template, ScoreScale.parse(scale), store)
                kept = pd.concat([kept[~((kept.judge == label) & (kept.scale == scale))], rows(judged, label)])
                out.parent.mkdir(exist_ok=True)
                kept.to_csv(out, index=False)
                print(f"{label} at {scale}: {len(judged.distributions)} words", flush=True)


if __name__ == "__main__":
    main()
