"""Item scores from distributions, and the bias and accuracy of a judge (vectorised).

A constant score vector has no kurtosis or correlation: those come back as NaN and
the reason is recorded in ``notes``, never as a crash or a flood of warnings."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial.distance import jensenshannon

from numbias.core.inference import Statistic
from numbias.core.scale import ScoreScale
from numbias.util.errors import NumbiasError

Rule = str
"""A rule's name: one of :data:`RULES`, or a risk-averse rule ``quantile:Q`` or ``mean-sd:L``."""
RULES: tuple[Rule, ...] = ("greedy", "expected", "median", "protocol")
"""greedy: the most probable score; expected: mean over in-scale scores; median;
protocol: the paper's mean of n clipped samples (exact expectation: out-of-scale
numbers clipped to the ends, non-numbers dropped); a study reads it from the
distribution at the protocol's sampling temperature."""
RISK_AVERSE = ("quantile", "mean-sd")
"""Rules with a parameter, after Wang et al. (EMNLP Findings 2025), where the mean beats
the mode and a judge that errs high gains from caution: ``quantile:Q``, the lowest score
whose cumulative in-scale mass reaches Q (``quantile:0.5`` is the median), and
``mean-sd:L``, the expected score less L standard deviations of the distribution."""
KNOWN_RULES = ", ".join([*RULES, "quantile:Q", "mean-sd:L"])


def _number(x: float) -> str:
    """A parameter written short (``0.25``, ``1``) unless that loses digits."""
    short = f"{x:g}"
    return short if float(short) == x else repr(x)


def check_rule(rule: str) -> Rule:
    """A rule's name checked and written one way (``quantile:.25`` is ``quantile:0.25``).

    >>> check_rule("quantile:.25"), check_rule("mean-sd: 1.0"), check_rule("greedy")
    ('quantile:0.25', 'mean-sd:1', 'greedy')
    >>> check_rule("quantile:1.5")
    Traceback (most recent call last):
    ...
    numbias.util.errors.NumbiasError: rule 'quantile:1.5': Q must be above 0 and below 1
    """
    if rule in RULES:
        return rule
    name, colon, given = str(rule).partition(":")
    if not colon or name.strip() not in RISK_AVERSE:
        raise NumbiasError(f"unknown rule {rule!r} (known: {KNOWN_RULES})")
    name = name.strip()
    try:
        x = float(given)
    except ValueError:
        raise NumbiasError(f"rule {rule!r}: {given.strip()!r} is not a number") from None
    if name == "quantile" and not 0 < x < 1:
        raise NumbiasError(f"rule {rule!r}: Q must be above 0 and below 1")
    if name == "mean-sd" and not (np.isfinite(x) and x >= 0):
        raise NumbiasError(f"rule {rule!r}: L must be a finite number, 0 or more")
    return f"{name}:{_number(x)}"


def is_rule(name: str) -> bool:
    """Whether ``name`` is a rule (a study's other answer columns are sampled modes)."""
    try:
        check_rule(name)
    except NumbiasError:
        return False
    return True


def pearson_defined(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r over the items both define (NaN with fewer than three)."""
    keep = ~np.isnan(a) & ~np.isnan(b)
    return float(pearson_rows(a[keep], b[keep])) if keep.sum() > 2 else float("nan")


def item_scores(probs: np.ndarray, rest: np.ndarray, scale: ScoreScale, rule: Rule) -> np.ndarray:
    """``probs`` items × scores; ``rest`` items × (below, above, other). Every rule acts
    on the scale's values, whatever its labels.

    >>> scale, probs, rest = ScoreScale(1, 3), np.array([[0.25, 0.25, 0.5]]), np.zeros((1, 3))
    >>> [float(item_scores(probs, rest, scale, r)[0]) for r in ("greedy", "expected", "quantile:0.25", "mean-sd:1")]
    [3.0, 2.25, 1.0, 1.420...]
    """
    values = scale.values
    if rule == "greedy":
        return values[np.argmax(probs, axis=1)]
    if rule == "expected":
        mass = probs.sum(axis=1)
        return np.divide(probs @ values, mass, out=np.full(len(probs), np.nan), where=mass > 0)
    if rule == "median":
        return _quantile(probs, values, 0.5)
    if rule == "protocol":
        clipped = probs.copy()
        clipped[:, 0] += rest[:, 0]
        clipped[:, -1] += rest[:, 1]
        mass = clipped.sum(axis=1)
        return np.divide(clipped @ values, mass, out=np.full(len(probs), np.nan), where=mass > 0)
    name, _, given = check_rule(rule).partition(":")
    if name == "quantile":
        return _quantile(probs, values, float(given))
    mass = probs.sum(axis=1)
    safe = np.where(mass > 0, mass, 1.0)
    mean = probs @ values / safe
    sd = np.sqrt(np.maximum((probs * (values[None, :] - mean[:, None]) ** 2).sum(axis=1) / safe, 0.0))
    return np.where(mass > 0, mean - float(given) * sd, np.nan)


def _quantile(probs: np.ndarray, values: np.ndarray, q: float) -> np.ndarray:
    """The lowest value whose cumulative in-scale mass reaches ``q`` of it, per item."""
    cdf = np.cumsum(probs, axis=1)
    total = cdf[:, -1:]
    idx = np.argmax(cdf >= q * total, axis=1)
    return np.where(total[:, 0] > 0, values[idx], np.nan)


def to_scale(human: np.ndarray, human_range: tuple[float, float], scale: ScoreScale) -> np.ndarray:
    """Human scores mapped linearly onto the judge's range."""
    lo, hi = human_range
    return scale.from_unit((np.asarray(human, dtype=float) - lo) / (hi - lo))


def histogram(scores: np.ndarray, scale: ScoreScale) -> np.ndarray:
    """Share of items per integer score (continuous scores rounded to the nearest;
    items without a score, NaN, are left out)."""
    scores = np.asarray(scores, dtype=float)
    scores = scores[~np.isnan(scores)]
    idx = np.clip(np.rint(scores - scale.lo), 0, scale.size - 1).astype(int)
    return np.bincount(idx, minlength=scale.size) / max(len(scores), 1)


def normalised_entropy(hist: np.ndarray) -> float:
    p = hist[hist > 0]
    return float(-(p * np.log(p)).sum() / np.log(len(hist)))


@dataclass
class Interval:
    value: float
    low: float
    high: float


@dataclass
class SettingMetrics:
    """Bias and accuracy of one setting (judge × task × scale × rule)."""

    n: int
    kurtosis: float
    human_kurtosis: float
    entropy: float
    mode_share: float
    mode: float
    distinct: int
    js_divergence: float
    wasserstein: float
    pearson: Interval
    spearman: Interval
    kendall: Interval
    human_ceiling: float
    group_pearson: Interval
    groups: int
    notes: list[str] = field(default_factory=list)
    sd_ratio: float = float("nan")
    """The judge's item-score SD over the humans', on the unit scale (:func:`sd_ratio`)."""
    human_mode_share: float = float("nan")
    """The humans' share (mapped onto the scale) of the judge's most given score's bin."""
    out_of_scale: float = float("nan")
    """Mean over items of the mass on numbers outside the scale (the protocol clips it to the ends)."""
    non_numeric: float = float("nan")
    """Mean over items of the mass on answers that are not numbers."""

    def flat(self) -> dict[str, float | int | str]:
        out: dict[str, float | int | str] = {}
        for key, value in asdict(self).items():
            if isinstance(value, dict):
                out[key] = value["value"]
                out[f"{key}_low"], out[f"{key}_high"] = value["low"], value["high"]
            elif key == "notes":
                out[key] = "; ".join(value)
            else:
                out[key] = value
        return out


def _constant(x: np.ndarray) -> bool:
    return bool(np.ptp(x) == 0) if len(x) else True


def kurtosis(x: np.ndarray) -> float:
    """Excess (Fisher) kurtosis, as the paper reports; NaN for a constant vector."""
    if len(x) < 4 or _constant(x):
        return float("nan")
    return float(stats.kurtosis(x, fisher=True, bias=True))


def pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r along the last axis: one r per row of resamples at once."""
    a = a - a.mean(axis=-1, keepdims=True)
    b = b - b.mean(axis=-1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=-1) * (b * b).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(axis=-1) / den, np.nan)


def kurtosis_rows(scores: np.ndarray, human: np.ndarray | None = None) -> np.ndarray:
    """Excess kurtosis along the last axis, as :func:`kurtosis` (NaN for a constant row
    or fewer than four items); ``human`` is unused: the signature of an inference statistic."""
    x = np.asarray(scores, dtype=float)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        k = np.asarray(stats.kurtosis(x, axis=-1, fisher=True, bias=True), dtype=float)
    return np.where((np.ptp(x, axis=-1) == 0) | (x.shape[-1] < 4), np.nan, k)


def mean_rows(values: np.ndarray, human: np.ndarray | None = None) -> np.ndarray:
    """The mean along the last axis (an item-level mass or entropy averaged over items)."""
    return np.asarray(values, dtype=float).mean(axis=-1)


def histogram_rows(scores: np.ndarray, scale: ScoreScale) -> np.ndarray:
    """:func:`histogram` along the last axis, for rows of resampled items without NaN:
    ``(..., items)`` → ``(..., scale.size)`` shares."""
    x = np.asarray(scores, dtype=float)
    idx = np.clip(np.rint(x - scale.lo), 0, scale.size - 1).astype(int)
    flat = idx.reshape(-1, idx.shape[-1])
    offset = (np.arange(len(flat)) * scale.size)[:, None]
    counts = np.bincount((flat + offset).ravel(), minlength=len(flat) * scale.size)
    return counts.reshape(*idx.shape[:-1], scale.size) / max(idx.shape[-1], 1)


def entropy_rows(scale: ScoreScale) -> Statistic:
    """The statistic "normalised entropy of the score histogram" (:func:`normalised_entropy`) on ``scale``'s bins."""

    def statistic(scores: np.ndarray, human: np.ndarray | None = None) -> np.ndarray:
        h = histogram_rows(scores, scale)
        plogp = np.where(h > 0, h * np.log(np.where(h > 0, h, 1.0)), 0.0)
        return -plogp.sum(axis=-1) / np.log(scale.size)

    return statistic


def mode_share_rows(scale: ScoreScale) -> Statistic:
    """The statistic "share of the items given the most given score" on ``scale``'s bins."""

    def statistic(scores: np.ndarray, human: np.ndarray | None = None) -> np.ndarray:
        return histogram_rows(scores, scale).max(axis=-1)

    return statistic


def mode_excess_rows(scale: ScoreScale) -> Statistic:
    """The statistic "share of the items in the scores' own most frequent bin, minus the
    humans' share of that bin": the bin is chosen again on every resample, so a
    bootstrap of it carries the choice's own noise (fixing the observed mode would not).
    It is 0 for the humans' own scores, so ``paired_effect(stat, human, scores, human)``
    is the judge's pile-up excess.

    >>> scale = ScoreScale.parse("1-5")
    >>> float(mode_excess_rows(scale)(np.array([3.0, 3, 3, 4]), np.array([3.0, 4, 5, 1])))
    0.5
    """

    def statistic(scores: np.ndarray, human: np.ndarray) -> np.ndarray:
        judge, people = histogram_rows(scores, scale), histogram_rows(human, scale)
        at = judge.argmax(axis=-1)[..., None]
        return (np.take_along_axis(judge, at, -1) - np.take_along_axis(people, at, -1))[..., 0]

    return statistic


def sd_ratio(scores: np.ndarray, human: np.ndarray, human_range: tuple[float, float], scale: ScoreScale) -> float:
    """The judge's item-score SD over the humans', both on the unit scale: near 0 when
    the judge barely varies (its kurtosis then describes jitter, not a pile-up)."""
    return float(sd_ratio_rows(scale, human_range)(np.asarray(scores, dtype=float), np.asarray(human, dtype=float)))


def sd_ratio_rows(scale: ScoreScale, human_range: tuple[float, float]) -> Statistic:
    """:func:`sd_ratio` along the last axis (NaN where the humans do not vary)."""
    lo, hi = human_range

    def statistic(scores: np.ndarray, human: np.ndarray) -> np.ndarray:
        judge = np.std(scale.to_unit(scores), axis=-1)
        people = np.std((np.asarray(human, dtype=float) - lo) / (hi - lo), axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(people > 0, judge / np.where(people > 0, people, 1.0), np.nan)

    return statistic


def _spearman_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return pearson_rows(stats.rankdata(a, axis=-1), stats.rankdata(b, axis=-1))


def _kendall_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.array([stats.kendalltau(x, y).statistic for x, y in zip(np.atleast_2d(a), np.atleast_2d(b))])


def bootstrap(
    judge: np.ndarray,
    human: np.ndarray,
    statistic: Callable[[np.ndarray, np.ndarray], np.ndarray],
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> Interval:
    """Paired percentile bootstrap 95% CI, reproducible for a seed."""
    value = float(statistic(judge[None, :], human[None, :])[0])
    if np.isnan(value):
        return Interval(value, float("nan"), float("nan"))
    idx = np.random.default_rng(seed).integers(0, len(judge), size=(n_boot, len(judge)))
    boots = statistic(judge[idx], human[idx])
    boots = boots[~np.isnan(boots)]
    low, high = np.percentile(boots, [2.5, 97.5]) if len(boots) else (np.nan, np.nan)
    return Interval(value, float(low), float(high))


def human_ceiling(ratings: list[list[float]], *, splits: int = 50, seed: int = 0) -> float:
    """Split-half reliability of the raters, stepped up with Spearman–Brown."""
    usable = [np.asarray(r, dtype=float) for r in ratings if len(r) >= 2]
    if len(usable) < 4:
        return float("nan")
    rng = np.random.default_rng(seed)
    rs = []
    for _ in range(splits):
        halves = np.array([[p[: len(p) // 2].mean(), p[len(p) // 2 :].mean()] for p in map(rng.permutation, usable)])
        rs.append(pearson_rows(halves[:, 0], halves[:, 1]))
    r = float(np.nanmean(rs))
    return 2 * r / (1 + r)


@dataclass
class GroupAccuracy:
    """Within-group Pearson r averaged over groups, as multi-system summarisation and
    dialogue evaluation report it (items sharing a source document are not independent)."""

    pearson: Interval
    groups: int
    """Groups that entered the mean."""
    skipped: int
    notes: list[str] = field(default_factory=list)


def _aligned(groups: np.ndarray, n: int) -> np.ndarray:
    """``groups`` as an array, checked to hold one label per item."""
    groups = np.asarray(groups)
    if groups.shape != (n,):
        raise NumbiasError(f"groups has shape {groups.shape}, expected one group per item ({n})")
    return groups


def group_codes(groups: np.ndarray, n: int) -> np.ndarray:
    """An integer group per item (-1: no group), whatever type the labels have."""
    return pd.factorize(_aligned(groups, n))[0]


def _within_group_r(x: np.ndarray, y: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
    """Pearson r of every group present (NaN where undefined) and how many groups are
    skipped for each reason; one pass over the items sorted by group."""
    if not len(x):
        return np.zeros(0), {}
    order = np.argsort(codes, kind="stable")
    x, y, c = x[order], y[order], codes[order]
    starts = np.flatnonzero(np.r_[True, c[1:] != c[:-1]])
    size = np.diff(np.r_[starts, len(c)])

    def spread(v: np.ndarray) -> np.ndarray:
        return np.maximum.reduceat(v, starts) - np.minimum.reduceat(v, starts)

    dx = x - np.repeat(np.add.reduceat(x, starts) / size, size)
    dy = y - np.repeat(np.add.reduceat(y, starts) / size, size)
    sxy, sxx, syy = (np.add.reduceat(v, starts) for v in (dx * dy, dx * dx, dy * dy))
    single = size < 3  # two items always correlate at +-1: the sign of one difference
    flat_human = ~single & (spread(y) == 0)
    flat_judge = ~single & ~flat_human & (spread(x) == 0)
    den = np.sqrt(sxx * syy)
    ok = ~(single | flat_human | flat_judge) & (den > 0)
    r = np.divide(sxy, den, out=np.full(len(starts), np.nan), where=ok)
    return r, {
        "of fewer than three items": int(single.sum()),
        "with constant human scores": int(flat_human.sum()),
        "where the judge gave one score": int(flat_judge.sum()),
    }


def group_pearson(
    scores: np.ndarray,
    human: np.ndarray,
    groups: np.ndarray,
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> GroupAccuracy:
    """Mean within-group Pearson r with a percentile 95% CI from resampling groups (the
    independent units), reproducible for a seed; ``n_boot=0`` gives the point value only.
    Groups where r is undefined are skipped and counted in ``notes``."""
    scores, human = np.asarray(scores, dtype=float), np.asarray(human, dtype=float)
    codes = group_codes(groups, len(scores))
    dropped = {
        "with no numeric answer": np.isnan(scores),
        "with no human score": np.isnan(human),
        "with no group": codes < 0,
    }
    notes = [f"{int(m.sum())} item(s) {why} dropped" for why, m in dropped.items() if m.any()]
    keep = ~np.any(list(dropped.values()), axis=0)
    r, skipped = _within_group_r(scores[keep], human[keep], codes[keep])
    notes += [f"{k} group(s) {why} skipped" for why, k in skipped.items() if k]
    r = r[~np.isnan(r)]
    if not len(r):
        notes.append("no group has three items with varying judge and human scores: group-level Pearson undefined")
        return GroupAccuracy(Interval(np.nan, np.nan, np.nan), 0, sum(skipped.values()), notes)
    boots = r[np.random.default_rng(seed).integers(0, len(r), size=(n_boot, len(r)))].mean(axis=1)
    low, high = np.percentile(boots, [2.5, 97.5]) if len(boots) else (np.nan, np.nan)
    return GroupAccuracy(Interval(float(r.mean()), float(low), float(high)), len(r), sum(skipped.values()), notes)


def evaluate(
    scores: np.ndarray,
    human: np.ndarray,
    human_range: tuple[float, float],
    scale: ScoreScale,
    *,
    ratings: list[list[float]] | None = None,
    groups: np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    masses: tuple[np.ndarray, np.ndarray] | None = None,
) -> SettingMetrics:
    """Every metric of one setting; with ``groups`` (e.g. each item's source document)
    also the group-level Pearson r; with ``masses`` (each item's out-of-scale and
    non-numeric mass) their means over all items, so a format failure is told from a pile-up."""
    notes: list[str] = []
    out_of_scale, non_numeric = (
        (float(np.mean(m)) if len(m) else float("nan") for m in masses) if masses else (float("nan"), float("nan"))
    )
    keep = ~np.isnan(scores)
    groups = _aligned(groups, len(scores))[keep] if groups is not None else None
    if not keep.all():
        notes.append(f"{int((~keep).sum())} item(s) with no numeric answer dropped")
        scores, human = scores[keep], human[keep]
        ratings = [r for r, k in zip(ratings, keep) if k] if ratings else ratings
    if _constant(scores):
        notes.append("judge gave every item the same score: kurtosis and correlations undefined")
    grouped = group_pearson(scores, human, groups, n_boot=n_boot, seed=seed) if groups is not None else None
    notes += grouped.notes if grouped else []
    mapped = to_scale(human, human_range, scale)
    hist, hhist = histogram(scores, scale), histogram(mapped, scale)
    mode_idx = int(np.argmax(hist))
    return SettingMetrics(
        n=int(len(scores)),
        kurtosis=kurtosis(scores),
        human_kurtosis=kurtosis(human),
        entropy=normalised_entropy(hist),
        mode_share=float(hist[mode_idx]),
        mode=float(scale.lo + mode_idx),
        distinct=int(np.count_nonzero(hist)),
        js_divergence=float(jensenshannon(hist, hhist, base=2) ** 2),
        wasserstein=float(stats.wasserstein_distance(scores, mapped) / (scale.hi - scale.lo)),
        pearson=bootstrap(scores, human, pearson_rows, n_boot=n_boot, seed=seed),
        spearman=bootstrap(scores, human, _spearman_rows, n_boot=n_boot, seed=seed),
        kendall=bootstrap(scores, human, _kendall_rows, n_boot=min(n_boot, 200), seed=seed),
        human_ceiling=human_ceiling(ratings, seed=seed) if ratings else float("nan"),
        group_pearson=grouped.pearson if grouped else Interval(np.nan, np.nan, np.nan),
        groups=grouped.groups if grouped else 0,
        sd_ratio=sd_ratio(scores, human, human_range, scale) if len(scores) else float("nan"),
        human_mode_share=float(hhist[mode_idx]),
        out_of_scale=out_of_scale,
        non_numeric=non_numeric,
        notes=notes,
    )
