"""Which system is better, and how sure: each system's mean human score estimated from
every judge-scored item and a few human labels (:mod:`numbias.core.systems`), every pair of
systems compared, and how well the estimates cover the truth at a labelling budget.

Input is a table with one row per output: the system that produced it (comma-separated
names where identical outputs of several systems were merged: the row counts for each),
a judge score, a human score where labelled, and optionally a group (the input every
system answered, e.g. the dialogue) that pairs outputs across systems. ``numbias score``
writes such a table; so can any other judge.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from numbias.core.inference import LEVEL
from numbias.core.scale import ScoreScale
from numbias.core.systems import (
    ASSUMPTION,
    Estimate,
    Side,
    by_system,
    corrected_pass_rate,
    finite_mean,
    labelled_mean,
    members,
    naive_mean,
    pairwise,
    ppi_mean,
    sides,
    system_agreement,
)
from numbias.data.dataset import read_table
from numbias.studies.bias import SYSTEM_CONVENTION
from numbias.studies.scoring import ScoredItems
from numbias.util.errors import NumbiasError

ESTIMATORS = ("naive", "labelled_only", "ppi")
"""The three estimates of a system's mean: the judge's (biased), the labels' alone, PPI++."""
NAMES = {
    "naive": "naive judge mean (biased)",
    "labelled_only": "labelled-only mean",
    "ppi": "prediction-powered (PPI++)",
}


@dataclass
class Items:
    """The rows compared: ``frame`` has ``id``, ``system`` (text, maybe several names),
    ``unit`` (pairs rows across systems), ``human`` (NaN: unlabelled) and ``judge`` (on
    the human scale); ``truth`` holds every row's human score when all are labelled."""

    frame: pd.DataFrame
    human_range: tuple[float, float]
    score: str
    notes: list[str] = field(default_factory=list)
    paired: bool = False

    @property
    def all_labelled(self) -> bool:
        return bool(self.frame["human"].notna().all())


def _table(data: str | Path | pd.DataFrame | ScoredItems) -> tuple[pd.DataFrame, tuple[float, float] | None, str]:
    """The rows, the judge's scale where known (a scored folder's or a scored set's) and
    where they came from."""
    if isinstance(data, ScoredItems):
        return data.frame(), (data.scale.lo, data.scale.hi), "scored items"
    if isinstance(data, pd.DataFrame):
        return data, None, "data frame"
    path = Path(data)
    if path.is_dir():
        if not (path / "scores.csv").is_file():
            raise NumbiasError(f"{path} holds no scores.csv: give a folder numbias score wrote, or a file")
        return read_table(path / "scores.csv"), _scored_scale(path / "scores.jsonl"), str(path / "scores.csv")
    return read_table(path), None, str(path)


def _scored_scale(path: Path) -> tuple[float, float] | None:
    """The scale a numbias score folder's scores are on (its first record says)."""
    if not path.is_file():
        return None
    with path.open(encoding="utf-8") as f:
        first = f.readline()
    scale = json.loads(first).get("scale") if first.strip() else None
    return (ScoreScale.parse(scale).lo, ScoreScale.parse(scale).hi) if scale else None


def _column(frame: pd.DataFrame, name: str, where: str, what: str) -> pd.Series:
    if name not in frame.columns:
        have = ", ".join(map(str, list(frame.columns)[:20]))
        raise NumbiasError(f"{where}: no column {name!r} for the {what} (columns: {have})")
    return frame[name]


def _default_score(frame: pd.DataFrame) -> str:
    """A saved calibrated judge's scores on the human scale if present, else the expected score."""
    for name in ("calibrated_human", "expected"):
        if name in frame.columns:
            return name
    raise NumbiasError(
        "no judge-score column: name it with score= / --score-column (numbias score writes "
        "calibrated_human and expected)"
    )


def _numbers(column: pd.Series, where: str, what: str, blank_ok: bool) -> np.ndarray:
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
    bad = column.notna() & ~np.isfinite(values) if blank_ok else ~np.isfinite(values)
    if bad.any():
        raise NumbiasError(
            f"{where}: {what} {column[bad].iloc[0]!r} of row {int(np.flatnonzero(bad)[0])} is not a finite number"
        )
    return values


def load_items(
    data: str | Path | pd.DataFrame | ScoredItems,
    *,
    system_column: str = "system",
    human: str = "human",
    score: str | None = None,
    group: str | None = None,
    human_range: tuple[float, float] | None = None,
    judge_range: tuple[float, float] | None = None,
) -> Items:
    """The rows to compare, checked: every row names a system and has a finite judge
    score; human scores (blank: unlabelled) lie in ``human_range`` (default: the labels'
    own range, noted). A judge score on another scale (``judge_range``, or the scale a
    scored folder names) is mapped linearly onto the human range, so the naive mean
    reads on the humans' scale. ``group`` (default: a ``group`` column where there is
    one) pairs rows across systems."""
    frame, scale, where = _table(data)
    judge_range = judge_range or scale
    if human_range is None and isinstance(data, ScoredItems) and np.isfinite(data.task.data.human_range).all():
        human_range = data.task.data.human_range
    score = score or _default_score(frame)
    if score == "calibrated_human":
        judge_range = None
    labels = _column(frame, system_column, where, "system").astype("string").fillna("")
    if empty := [i for i, label in enumerate(labels) if not members(label)]:
        raise NumbiasError(f"{where}: row {empty[0]} names no system in column {system_column!r}; every row needs one")
    out = pd.DataFrame(
        {
            "id": frame["id"].astype(str) if "id" in frame else np.arange(len(frame)).astype(str),
            "system": labels.to_numpy(dtype=object),
            "human": _numbers(_column(frame, human, where, "human score"), where, "human score", True),
            "judge": _numbers(_column(frame, score, where, "judge score"), where, "judge score", False),
        }
    )
    group = group or ("group" if "group" in frame.columns else None)
    out["unit"] = _column(frame, group, where, "group").astype(str).to_numpy() if group else out["id"]
    notes = [f"judge score: column {score!r} of {where}"]
    labelled = out["human"].dropna()
    if len(labelled) < 2:
        raise NumbiasError(f"{where}: {len(labelled)} rows have a human score; label at least two of each system")
    if human_range is None:
        human_range = (float(labelled.min()), float(labelled.max()))
        notes.append(
            f"human range {human_range[0]:g}-{human_range[1]:g} taken from the labels (give human_range to set it)"
        )
    elif ((labelled < human_range[0]) | (labelled > human_range[1])).any():
        bad = labelled[(labelled < human_range[0]) | (labelled > human_range[1])]
        raise NumbiasError(
            f"{where}: human score {bad.iloc[0]:g} of row {bad.index[0]} lies outside the human range "
            f"{human_range[0]:g}-{human_range[1]:g}"
        )
    if judge_range is not None and tuple(judge_range) != tuple(human_range):
        (jl, jh), (hl, hh) = judge_range, human_range
        out["judge"] = hl + (out["judge"] - jl) * (hh - hl) / (jh - jl)
        notes.append(f"judge scores on {jl:g}-{jh:g} mapped linearly onto the human range {hl:g}-{hh:g}")
    return Items(out, human_range, score, notes, paired=group is not None)


def draw_labels(items: Items, n: int, seed: int = 0) -> np.ndarray:
    """Which rows keep their human score when a labelling budget of ``n`` is simulated:
    ``n`` groups (every system's output of a drawn group labelled, as a rater judging
    all summaries of one dialogue) when rows are paired by group, else ``n`` rows of
    each system. Seeded; the rest count as unlabelled."""
    frame = items.frame
    rng = np.random.default_rng(seed)
    if items.paired:
        units = frame["unit"].unique()
        if n >= len(units):
            raise NumbiasError(f"labels {n} is not below the {len(units)} groups: nothing would be left unlabelled")
        return frame["unit"].isin(rng.choice(units, n, replace=False)).to_numpy()
    keep = np.zeros(len(frame), dtype=bool)
    for name, side in by_system(frame["system"].tolist()).items():
        if n >= len(side):
            raise NumbiasError(
                f"labels {n} is not below system {name!r}'s {len(side)} items: nothing would be left unlabelled"
            )
        keep[rng.choice(side, n, replace=False)] = True
    return keep


def _sides(frame: pd.DataFrame, human: np.ndarray) -> dict[str, Side]:
    """Each system's rows with ``human`` as the labels; fewer than two labels is an error."""
    parts = sides(frame["system"].to_numpy(), frame["unit"].to_numpy(), human, frame["judge"].to_numpy())
    for name, side in parts.items():
        if side.labelled.sum() < 2:
            raise NumbiasError(
                f"system {name!r} has {int(side.labelled.sum())} labelled item(s) of {len(side.units)}; "
                "each system needs at least two"
            )
    return parts


def estimates(side: Side, level: float = LEVEL, finite: bool = False) -> dict[str, Estimate]:
    """The three estimates of one system's mean human score; with ``finite`` the mean of
    exactly its items (:func:`numbias.core.systems.finite_mean`), else of the population they
    were drawn from."""
    lab = side.labelled
    y, yhat, rest = side.human[lab], side.judge[lab], side.judge[~lab]
    if finite:
        return {
            "naive": naive_mean(side.judge, level),
            "labelled_only": finite_mean(y, yhat, rest, lam=0.0, level=level),
            "ppi": finite_mean(y, yhat, rest, level=level),
        }
    return {
        "naive": naive_mean(side.judge, level),
        "labelled_only": labelled_mean(y, level),
        "ppi": ppi_mean(y, yhat, rest, level=level),
    }


def _pass_rates(
    parts: dict[str, Side], frame: pd.DataFrame, human: np.ndarray, threshold: float, n_boot: int, seed: int
) -> dict[str, dict[str, Estimate]]:
    """Per system: the judge's pass rate (biased), the labels' and the Rogan–Gladen
    corrected one, a pass being a score at or above ``threshold``; the judge's
    sensitivity and specificity are pooled over every labelled row (one judge, one rule)."""
    lab = np.isfinite(human)
    human_pass, judge_pass = human[lab] >= threshold, frame["judge"].to_numpy()[lab] >= threshold
    out = {}
    for k, (name, side) in enumerate(parts.items()):
        judged = side.judge >= threshold
        out[name] = {
            "pass_naive": naive_mean(judged.astype(float)),
            "pass_labelled": labelled_mean((side.human[side.labelled] >= threshold).astype(float)),
            "pass_corrected": corrected_pass_rate(judged, human_pass, judge_pass, n_boot=n_boot, seed=seed + k),
        }
    return out


def _system_rows(
    parts: dict[str, Side], truth: dict[str, float] | None, passes: dict[str, dict[str, Estimate]], level: float
) -> pd.DataFrame:
    rows = []
    for name, side in parts.items():
        row: dict[str, Any] = {"system": name, "items": len(side.units), "labelled": int(side.labelled.sum())}
        for key, e in {**estimates(side, level), **passes.get(name, {})}.items():
            row.update({key: e.value, f"{key}_low": e.low, f"{key}_high": e.high})
        row["lambda"] = estimates(side, level)["ppi"].lam
        if truth is not None:
            row["truth"] = truth[name]
        rows.append(row)
    return pd.DataFrame(rows)


@dataclass
class CompareResults:
    """Per-system estimates (``systems``), every pair (``pairs``: PPI++ difference A − B
    with its interval, Holm-adjusted p and P(A beats B)), system-level agreement of the
    judge with the humans, and what the numbers rest on (``notes``)."""

    systems: pd.DataFrame
    pairs: pd.DataFrame
    agreement: dict[str, Estimate]
    notes: list[str]
    settings: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """Everything as plain data (NaN as null)."""

        def plain(frame: pd.DataFrame) -> list[dict[str, Any]]:
            """Records with every float exact (pandas' JSON keeps ten digits)."""
            return [
                {k: v.item() if isinstance(v, np.generic) else v for k, v in row.items()}
                for row in frame.astype(object).where(frame.notna(), None).to_dict("records")
            ]

        def num(x: float) -> float | None:
            return float(x) if np.isfinite(x) else None

        return {
            "settings": self.settings,
            "systems": plain(self.systems),
            "pairs": plain(self.pairs),
            "agreement": {
                k: {"value": num(e.value), "low": num(e.low), "high": num(e.high), "systems": e.items}
                for k, e in self.agreement.items()
            },
            "notes": self.notes,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CompareResults:
        """What :meth:`to_json` wrote, read back (null as NaN), so a folder's page is
        rebuilt from its ``compare.json`` alone; a file that is not one is an error."""
        try:

            def frame(records: list[dict[str, Any]]) -> pd.DataFrame:
                return pd.DataFrame.from_records(records).fillna(np.nan).infer_objects()

            def num(x: float | None) -> float:
                return float("nan") if x is None else float(x)

            agreement = {
                k: Estimate(num(e["value"]), num(e["low"]), num(e["high"]), items=int(e["systems"]))
                for k, e in data["agreement"].items()
            }
            return cls(
                frame(data["systems"]),
                frame(data["pairs"]),
                agreement,
                [str(n) for n in data["notes"]],
                dict(data["settings"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise NumbiasError(f"not a numbias compare.json: {type(exc).__name__} {exc}") from None


def compare(
    data: str | Path | pd.DataFrame | ScoredItems,
    *,
    system_column: str = "system",
    human: str = "human",
    score: str | None = None,
    group: str | None = None,
    labels: int | None = None,
    seed: int = 0,
    human_range: tuple[float, float] | None = None,
    judge_range: tuple[float, float] | None = None,
    threshold: float | None = None,
    n_boot: int = 2000,
    level: float = LEVEL,
) -> CompareResults:
    """Each system's mean human score (naive judge mean, labelled-only, PPI++) and every
    pair A − B, from judge scores of every row and human scores of the labelled rows
    (those with one). ``data``: what :func:`numbias.score` returned, its folder, or any
    table with the columns named. ``labels`` simulates a budget when every row is
    labelled (:func:`draw_labels`); the full labels are then the truth. ``threshold``
    adds pass rates (a score at or above it passes) with the Rogan–Gladen correction.

    >>> import numpy as np, pandas as pd
    >>> import numbias
    >>> rng = np.random.default_rng(0)
    >>> rows = [{"system": s, "group": g, "human": np.clip(m + d + rng.normal(0, .5), 1, 5)}
    ...         for g, d in enumerate(rng.normal(0, .7, 120)) for s, m in (("A", 3.6), ("B", 3.0), ("C", 3.1))]
    >>> frame = pd.DataFrame(rows).assign(judge=lambda f: 0.6 * f.human + 2 + rng.normal(0, .4, len(f)))
    >>> results = numbias.compare(frame, score="judge", labels=40, human_range=(1, 5), n_boot=500)
    >>> shown = ["system", "labelled", "naive", "labelled_only", "ppi", "ppi_low", "ppi_high", "truth"]
    >>> results.systems[shown].round(2)   # the judge over-scores by about 0.8; PPI++ does not
      system  labelled  naive  labelled_only   ppi  ppi_low  ppi_high  truth
    0      A        40   4.11           3.53  3.56     3.38      3.74   3.63
    1      B        40   3.84           3.08  3.00     2.80      3.20   3.06
    2      C        40   3.87           3.06  3.00     2.81      3.20   3.08
    >>> results.pairs[["a", "b", "difference", "low", "high", "beats"]].round(2)
       a  b  difference   low  high  beats
    0  A  B        0.52  0.32  0.73   1.00
    1  A  C        0.52  0.35  0.70   1.00
    2  B  C        0.03 -0.15  0.21   0.62
    """
    items = load_items(
        data,
        system_column=system_column,
        human=human,
        score=score,
        group=group,
        human_range=human_range,
        judge_range=judge_range,
    )
    return _compare_items(items, labels=labels, seed=seed, threshold=threshold, n_boot=n_boot, level=level)


def _compare_items(
    items: Items, *, labels: int | None, seed: int, threshold: float | None, n_boot: int, level: float
) -> CompareResults:
    """:func:`compare` on items loaded and checked, apart from the loading, whose
    keywords only name the columns."""
    human_scores, truth, notes = _labelled(items, labels, seed)
    parts = _sides(items.frame, human_scores)
    passes = _pass_rates(parts, items.frame, human_scores, threshold, n_boot, seed) if threshold is not None else {}
    table = _system_rows(parts, truth, passes, level)
    pairs = pairwise(parts, n_boot=n_boot, seed=seed, level=level)
    notes += [f"assumes {ASSUMPTION}", SYSTEM_CONVENTION.replace("system-level r", "agreement")]
    settings = {
        "score": items.score,
        "labels": labels,
        "seed": seed,
        "human_range": list(items.human_range),
        "threshold": threshold,
        "level": level,
        "paired_by_group": items.paired,
        "bootstrap": n_boot,
    }
    return CompareResults(table, pairs, system_agreement(parts, level=level), notes, settings)


def _labelled(items: Items, labels: int | None, seed: int) -> tuple[np.ndarray, dict[str, float] | None, list[str]]:
    """The human scores the estimates read, the truth they are checked against (None
    unless ``labels`` draws a budget, when the full labels' means are the truth), and
    the items' notes with one that says which."""
    frame, truth, notes = items.frame, None, list(items.notes)
    human_scores = frame["human"].to_numpy()
    if labels is not None:
        if not items.all_labelled:
            raise NumbiasError(
                f"labels draws a labelling budget only when every row has a human score "
                f"({int(frame['human'].notna().sum())} of {len(frame)} rows have one)"
            )
        truth = {k: float(s.human.mean()) for k, s in _sides(frame, human_scores).items()}
        human_scores = np.where(draw_labels(items, labels, seed), human_scores, np.nan)
        notes.append(
            f"labels: {labels} {'groups' if items.paired else 'rows per system'} drawn (seed {seed}); "
            "truth = the mean of every row's human score"
        )
    elif items.all_labelled:
        notes.append(
            "every row is labelled: PPI++ has no unlabelled rows and equals the labelled-only mean "
            "(give labels to simulate a budget)"
        )
    return human_scores, truth, notes


BUDGETS = (25, 50, 100, 200)
"""Labelling budgets the coverage check draws by default (groups, or rows per system)."""


def coverage(
    data: str | Path | pd.DataFrame | ScoredItems,
    *,
    budgets: tuple[int, ...] = BUDGETS,
    draws: int = 200,
    seed: int = 0,
    level: float = LEVEL,
    **columns: Any,
) -> pd.DataFrame:
    """How often each estimator's interval covers every system's true mean human score
    when only ``n`` labels are drawn (for each ``n`` in ``budgets``, ``draws`` seeded
    draws, :func:`draw_labels`), on rows that are all labelled. One row per budget ×
    estimator × target: coverage over systems × draws (and the worst system's), mean
    interval width, width over the labelled-only mean's, mean error; the judge's
    item-level r with the humans beside it. Target "population": the intervals
    :func:`compare` reports (the mean of the population the items came from), which
    over-cover the mean of these very items as the labelled share grows; "these items":
    :func:`numbias.core.systems.finite_mean`'s, whose target is that mean. A budget that
    leaves nothing unlabelled is skipped. ``columns`` are :func:`load_items`'s keywords.

    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(1)
    >>> frame = pd.DataFrame([{"system": s, "group": g, "human": m + rng.normal(0, .8)}
    ...                       for g in range(600) for s, m in (("A", 3.5), ("B", 3.0))])
    >>> frame["judge"] = frame.human + 1 + rng.normal(0, .5, len(frame))   # biased by +1
    >>> table = coverage(frame, score="judge", budgets=(20, 60, 600), draws=100)   # 600 leaves none unlabelled
    >>> shown = table[table.target == "population"].reset_index(drop=True)
    >>> shown[["labels", "estimator", "coverage", "width_ratio"]].round(2)
       labels      estimator  coverage  width_ratio
    0      20          naive      0.00         0.21
    1      20  labelled_only      0.94         1.00
    2      20            ppi      0.94         0.59
    3      60          naive      0.00         0.38
    4      60  labelled_only      0.94         1.00
    5      60            ppi      0.98         0.61
    """
    items = load_items(data, **columns)
    if not items.all_labelled:
        raise NumbiasError("coverage needs every row labelled (the full labels are the truth)")
    frame = items.frame
    by = by_system(frame["system"].tolist())
    human, judge = frame["human"].to_numpy(), frame["judge"].to_numpy()
    truth = {name: human[rows].mean() for name, rows in by.items()}
    r = float(np.corrcoef(human, judge)[0, 1])
    out = []
    for n in budgets:
        try:
            masks = [draw_labels(items, n, seed + d) for d in range(draws)]
        except NumbiasError:
            continue
        for finite in (False, True):
            hits = _draw_hits(by, human, judge, masks, truth, level, finite)
            out += [{**row, "target": "these items" if finite else "population"} for row in _coverage_rows(hits, n, r)]
    return pd.DataFrame(out)


def _draw_hits(
    by: dict[str, np.ndarray],
    human: np.ndarray,
    judge: np.ndarray,
    masks: list[np.ndarray],
    truth: dict[str, float],
    level: float,
    finite: bool,
) -> dict[str, np.ndarray]:
    """Per estimator: (covered, width, error) for every draw × system."""
    out: dict[str, list[tuple[float, float, float]]] = {k: [] for k in ESTIMATORS}
    for mask in masks:
        for name, rows in by.items():
            side = Side(rows, np.where(mask[rows], human[rows], np.nan), judge[rows])
            for key, e in estimates(side, level, finite).items():
                out[key].append((e.low <= truth[name] <= e.high, e.high - e.low, e.value - truth[name]))
    return {k: np.array(v).reshape(len(masks), len(by), 3) for k, v in out.items()}


def _coverage_rows(hits: dict[str, np.ndarray], n: int, r: float, seed: int = 0) -> list[dict[str, Any]]:
    """One row per estimator; coverage and the width ratio carry 95% intervals over the
    draws (independent of each other; the systems of one draw are not)."""
    width = {key: np.nanmean(h[..., 1], axis=1) for key, h in hits.items()}
    pick = np.random.default_rng(seed).integers(0, len(width["labelled_only"]), (2000, len(width["labelled_only"])))
    rows = []
    for key, h in hits.items():
        per_draw = np.nanmean(h[..., 0], axis=1)
        half = stats.t.ppf(0.975, len(per_draw) - 1) * np.std(per_draw, ddof=1) / np.sqrt(len(per_draw))
        ratios = width[key][pick].mean(axis=1) / width["labelled_only"][pick].mean(axis=1)
        rows.append(
            {
                "labels": n,
                "estimator": key,
                "coverage": float(per_draw.mean()),
                "coverage_low": float(max(0.0, per_draw.mean() - half)),
                "coverage_high": float(min(1.0, per_draw.mean() + half)),
                "worst_system_coverage": float(np.nanmin(np.nanmean(h[..., 0], axis=0))),
                "mean_width": float(np.nanmean(h[..., 1])),
                "width_ratio": float(width[key].mean() / width["labelled_only"].mean()),
                "width_ratio_low": float(np.quantile(ratios, 0.025)),
                "width_ratio_high": float(np.quantile(ratios, 0.975)),
                "mean_error": float(np.nanmean(h[..., 2])),
                "draws": h.shape[0],
                "systems": h.shape[1],
                "judge_r": r,
            }
        )
    return rows
