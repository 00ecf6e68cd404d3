"""The coverage check of issue 28 on DialSummEval: 14 systems (A–N) x 100 dialogues, every
summary rated 1-5 by three annotators on four criteria.

For one criterion and one judge it scores every summary (resumable: the distributions are
kept in OUT/store.sqlite or --store, so a stopped run picks up where it stopped), writes
OUT/scores.csv (numbias score's format, with the system and dialogue columns), then draws
n dialogues (n = 25, 50, 100, 200; a budget not below the dialogues scored is skipped),
``--draws`` times each, labels every system's summary of a drawn dialogue, and writes
OUT/coverage.csv: how often each estimator's 95% interval covers every system's true mean
human score (with an interval over the draws), and its width against the labelled-only
mean's. OUT/compare/ is one draw of numbias compare at the first budget, for the ranking.

``--publish DIR`` also writes the judge's scores and score probabilities without the human
labels or the texts (DIR/judge.csv.gz: the data has no licence to redistribute); ``--from
DIR`` recomputes coverage.csv and compare/ from them and the data read by path, no model.
``--limit N`` scores the first N summaries only (sorted by dialogue: whole dialogues when N
is a multiple of 14).

``--calibrate K`` also checks the judge calibrated: an isotonic map of its expected score
onto the human mean, fitted on K dialogues drawn once (seed 0) and then left out, so the
coverage draws label only the others (OUT/calibrated/: coverage.csv and compare/; and
OUT/calibrated/raw/coverage.csv, the raw judge on the same dialogues and draws). The
calibration's K × 14 labels are not counted in the budgets.

``--judge annotator`` uses the first annotator's rating as the predictor and the mean of
the others as the human score: the statistics checked on real labels at no model cost
(not an LLM judge; the output's ``predictor`` column says so). ``--dataset tmu-gfm``
runs that check on TMU-GFM (five GEC systems, identical outputs merged: a row may count
for several systems; the source sentence is the group).

    python scripts/systems_coverage.py --criterion relevance --judge qwen2.5-coder-0.5b-instruct \
        --out /tmp/qwen-relevance --store results-store/systems-qwen-relevance.sqlite \
        --publish docs/results/systems/qwen-relevance
    python scripts/systems_coverage.py --criterion relevance --judge qwen2.5-coder-0.5b-instruct \
        --from docs/results/systems/qwen-relevance --out docs/results/systems/qwen-relevance
    python scripts/systems_coverage.py --criterion relevance --judge annotator --out /tmp/annotator
    python scripts/systems_coverage.py --dataset tmu-gfm --criterion grammer --judge annotator \
        --budgets 50,100,200 --out /tmp/tmu
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

import numbias
from numbias.core.distribution import ScoreDistribution
from numbias.core.scale import ScoreScale
from numbias.mitigations import Fitted, Setting, SettingData
from numbias.studies.comparison import BUDGETS, coverage
from numbias.studies.scoring import write_scores

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dialsumm" / "dialsumm.jsonl"
TMU = SHARED.parents[1] / "tmu-gfm" / "tmu-gfm-dataset.csv"
"""TMU-GFM: five GEC systems' corrections of CoNLL-2013 sentences, identical outputs merged
(``system`` "lstm,cnn": the row counts for each); five annotators, 0-4."""
CRITERIA = {
    "relevance": "how well the summary selects the important content of the dialogue",
    "coherence": "how well-structured and well-organised the summary is as a whole",
    "consistency": "whether every fact in the summary is supported by the dialogue",
    "fluency": "the quality of the summary's individual sentences",
}
TEMPLATE = ("Dialogue:\n{dialogue}\n\nSummary:\n{summary}\n\nRate the summary's {criterion} ({definition}) "
            "from {lo} to {hi}. Answer with the number only.")


def items(path: Path, criterion: str, limit: int | None) -> pd.DataFrame:
    """One row per summary: the dialogue (the group), the system (model_id), the text
    and the human score (the three annotators' mean; their first and the others' mean too)."""
    frame = pd.read_json(path, lines=True)
    ratings = np.array([[a[criterion] for a in row] for row in frame["annotations"]], dtype=float)
    out = pd.DataFrame({"id": frame["id"].astype(str) + "-" + frame["model_id"], "dialogue": frame["id"].astype(str),
                        "model": frame["model_id"], "summary": frame["summary"],
                        "text": frame["dialogue"].str.replace(" | ", "\n", regex=False).str.strip("| "),
                        "human": ratings.mean(axis=1), "first": ratings[:, 0], "others": ratings[:, 1:].mean(axis=1)})
    out = out.sort_values(["dialogue", "model"]).reset_index(drop=True)
    return out.head(limit) if limit else out


def tmu_items(path: Path, criterion: str) -> pd.DataFrame:
    """TMU-GFM as rows: the source sentence is the group, ``system`` may name several
    systems; only the annotator predictor applies (no judge prompt for corrections here)."""
    frame = pd.read_csv(path)
    ratings = np.array([[float(x) for x in cell.split(",")] for cell in frame[criterion]])
    return pd.DataFrame({"id": frame.index.astype(str), "dialogue": frame["source"], "model": frame["system"],
                         "human": ratings.mean(axis=1), "first": ratings[:, 0], "others": ratings[:, 1:].mean(axis=1)})


def judged(rows: pd.DataFrame, criterion: str, judge: str, out: Path, store: Path | None) -> tuple[Path, str]:
    """The folder of scores and the judge-score column: the model's (resumable), or the
    first annotator's rating against the other two's mean."""
    if judge == "annotator":
        path = out / "annotator.csv"
        rows.rename(columns={"human": "all", "others": "human"}).to_csv(path, index=False)
        return path, "first"
    source = out / "items.csv"
    rows.rename(columns={"text": "dialogue_text"}).to_csv(source, index=False)
    template = TEMPLATE.replace("{criterion}", criterion).replace("{definition}", CRITERIA[criterion])
    task = {"file": str(source), "human": "human", "human_range": (1, 5), "group": "dialogue",
            "system_column": "model", "id": "id", "template": template.replace("{dialogue}", "{dialogue_text}")}
    start = time.monotonic()
    scored = numbias.score(task, {"model": judge, "options": {"n_threads": 1}}, "1-5",
                           store=store or out / "store.sqlite")
    seconds = time.monotonic() - start
    write_scores(scored, out, force=True)
    print(f"scored {len(rows)} summaries in {seconds:.0f} s ({seconds / len(rows):.1f} s per summary, "
          "items already in the store cost nothing)")
    return out, "expected"


JUDGE_FILE = "judge.csv.gz"
"""A published folder's judge scores: id, dialogue, system, every rule's score and the
probability of each score; no human score and no text (the data is read by path)."""


def judge_frame(scores: Path) -> pd.DataFrame:
    """A scores folder as one frame: every rule's score and the probability of each score."""
    frame = pd.read_csv(scores / "scores.csv")
    probs = pd.read_json(scores / "scores.jsonl", lines=True)
    return frame.join(pd.DataFrame(probs["probs"].tolist()).add_prefix("p_"))


def publish(scores: Path, dest: Path, args: argparse.Namespace) -> None:
    """The committed part of a run: the judge's scores without the human labels or the
    texts (DialSummEval has no licence to redistribute; its labels are joined by id), and
    the settings that recompute its tables."""
    frame = judge_frame(scores).drop(columns=["human"]).rename(columns={"group": "dialogue"})
    dest.mkdir(parents=True, exist_ok=True)
    frame.to_csv(dest / JUDGE_FILE, index=False, float_format="%.17g")
    settings = {"judge": args.judge, "criterion": args.criterion, "limit": args.limit,
                "summaries": len(frame), "dialogues": int(frame["dialogue"].nunique()),
                "budgets": [int(b) for b in args.budgets.split(",")], "draws": args.draws,
                "calibrate": args.calibrate}
    (dest / "settings.json").write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")


def from_published(folder: Path, rows: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """A published folder's judge scores joined with the human scores read from the data
    (in memory: the labels are never written beside the published scores)."""
    judge = pd.read_csv(folder / JUDGE_FILE)
    if not set(judge["id"]) <= set(rows["id"]):
        raise SystemExit(f"{folder / JUDGE_FILE} scores summaries the data does not hold")
    joined = judge.merge(rows[["id", "human"]], on="id", validate="one_to_one")
    return joined.rename(columns={"dialogue": "group"}), "expected"


def calibrated(scores: pd.DataFrame, k: int) -> pd.DataFrame:
    """The judge calibrated on ``k`` dialogues drawn once (seed 0): an isotonic map of its
    expected score onto the human mean (numbias's ``isotonic`` setting on the score
    probabilities), applied to the other dialogues' summaries, which alone are returned
    (column ``calibrated``): the calibration items never enter a coverage draw."""
    dialogues = np.sort(scores["group"].unique())
    if not 0 < k < len(dialogues):
        raise SystemExit(f"--calibrate takes 1 to {len(dialogues) - 1} dialogues, not {k}")
    chosen = np.random.default_rng(0).choice(dialogues, k, replace=False)
    scale = ScoreScale(1, 5)
    dists = [ScoreDistribution(scale, row) for row in scores[[f"p_{v}" for v in range(1, 6)]].to_numpy()]
    fit_on = np.flatnonzero(scores["group"].isin(chosen).to_numpy())
    fitted = Fitted.fit(Setting("1-5", "expected", 1.0, "isotonic"), SettingData(dists, []), fit_on,
                        scores["human"].to_numpy()[fit_on])
    out = scores.assign(calibrated=fitted.predict(dists))
    return out[~out["group"].isin(chosen)].reset_index(drop=True)


def describe(scores: pd.DataFrame) -> None:
    """The judge as the write-up states it: its item-level r with the human mean (95%
    interval resampling dialogues, 2,000 draws, seed 0), its greedy answers' shares and
    the spread of the system means, judge against humans."""
    judge, human, groups = scores["expected"].to_numpy(), scores["human"].to_numpy(), scores["group"].to_numpy()
    rows = {g: np.flatnonzero(groups == g) for g in np.unique(groups)}
    rng, names = np.random.default_rng(0), np.array(list(rows))
    boot = []
    for _ in range(2000):
        pick = np.concatenate([rows[g] for g in rng.choice(names, len(names))])
        boot.append(np.corrcoef(judge[pick], human[pick])[0, 1])
    low, high = np.quantile(boot, [0.025, 0.975])
    print(f"item-level r {np.corrcoef(judge, human)[0, 1]:.3f} [{low:.3f}, {high:.3f}] over {len(judge)} summaries")
    print("greedy answers:", scores["greedy"].value_counts(normalize=True).round(3).to_dict())
    means = scores.groupby("system")[["expected", "human"]].mean()
    print(means.round(2).T.to_string(), f"\nsd over systems: judge {means.expected.std():.3f}, human "
          f"{means.human.std():.3f}")


def check(scores: Path | pd.DataFrame, column: str, args: argparse.Namespace, scale: tuple[float, float],
          out: Path, dialogues: int, *, one_comparison: bool = True) -> None:
    """The coverage table over the budgets, and one comparison at the first budget, in ``out``."""
    columns = {"score": column, "human_range": scale, "group": "dialogue" if column == "first" else "group",
               "system_column": "model" if column == "first" else "system", "judge_range": scale}
    budgets = tuple(int(b) for b in args.budgets.split(","))
    if dialogues <= min(budgets):
        print(f"{dialogues} dialogues: too few for a budget of {min(budgets)}; no coverage check")
        return
    out.mkdir(parents=True, exist_ok=True)
    table = coverage(scores, budgets=budgets, draws=args.draws, **columns)
    table.insert(0, "predictor", args.judge)
    table.insert(1, "criterion", args.criterion)
    table.to_csv(out / "coverage.csv", index=False)
    print(table.round(3).to_string(index=False))
    if one_comparison:
        numbias.write(numbias.compare(scores, labels=budgets[0], **columns), out / "compare", force=True)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=["dialsumm", "tmu-gfm"], default="dialsumm",
                        help="tmu-gfm: criteria grammer, fluency, meaning; the annotator predictor only")
    parser.add_argument("--criterion", choices=[*sorted(CRITERIA), "grammer", "meaning"], default="relevance")
    parser.add_argument("--judge", default="annotator", help="a numbias judge name, or 'annotator'")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data", type=Path, help="the data file (default: the shared copy)")
    parser.add_argument("--limit", type=int, help="only the first N summaries (a smoke check)")
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--budgets", default=",".join(map(str, BUDGETS)))
    parser.add_argument("--store", type=Path, help="the judge's store (default: OUT/store.sqlite)")
    parser.add_argument("--calibrate", type=int, default=0,
                        help="also check the judge calibrated on K dialogues (isotonic), left out of the draws")
    parser.add_argument("--publish", type=Path, help="also write the judge's scores (no labels, no text) here")
    parser.add_argument("--from", dest="source", type=Path,
                        help="a published folder: recompute from its judge scores and settings.json, no model")
    args = parser.parse_args()
    tmu = args.dataset == "tmu-gfm"
    if tmu and (args.judge != "annotator" or args.criterion not in ("grammer", "fluency", "meaning")):
        parser.error("tmu-gfm takes --judge annotator and --criterion grammer, fluency or meaning")
    return args


def main() -> None:
    args = arguments()
    if args.source:
        stated = json.loads((args.source / "settings.json").read_text(encoding="utf-8"))
        args.judge, args.criterion, args.limit, args.draws = (stated[k] for k in ("judge", "criterion", "limit",
                                                                                   "draws"))
        args.budgets = ",".join(map(str, stated["budgets"]))
        args.calibrate = args.calibrate or stated.get("calibrate", 0)
    args.out.mkdir(parents=True, exist_ok=True)
    tmu = args.dataset == "tmu-gfm"
    data = args.data or (TMU if tmu else SHARED)
    rows = tmu_items(data, args.criterion) if tmu else items(data, args.criterion, args.limit)
    if args.source:
        scores, column = from_published(args.source, rows)
        describe(scores)
    else:
        scores, column = judged(rows, args.criterion, args.judge, args.out, args.store)
        if args.publish and column != "first":
            publish(scores, args.publish, args)
    scale, dialogues = (0.0, 4.0) if tmu else (1.0, 5.0), rows["dialogue"].nunique()
    check(scores, column, args, scale, args.out, dialogues)
    if args.calibrate and column != "first":
        frame = calibrated(scores if isinstance(scores, pd.DataFrame) else judge_frame(scores), args.calibrate)
        print(f"calibrated on {args.calibrate} dialogues, checked on the other {dialogues - args.calibrate}")
        check(frame, "calibrated", args, scale, args.out / "calibrated", dialogues - args.calibrate)
        print("the raw judge on the same dialogues and draws, for a like-for-like comparison")
        check(frame, "expected", args, scale, args.out / "calibrated" / "raw", dialogues - args.calibrate,
              one_comparison=False)


if __name__ == "__main__":
    main()
