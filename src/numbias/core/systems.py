"""System-level estimates from a judge and a few human labels.

A user compares systems (models, prompts, checkpoints) by the mean human score each
would get. Three estimates of that mean, each with a 95% interval:

- the **naive** judge mean over every item: biased by the judge's own numerical bias,
  its interval counting only which items were drawn, never the judge's error;
- the **labelled-only** mean of the human scores (classical, unbiased, wide);
- the **prediction-powered** mean (PPI++, Angelopoulos, Duchi & Zrnic 2023): the judge's
  mean over the unlabelled items, rectified by the judge's error on the labelled ones,
  with the power-tuning weight λ chosen from the data. Unbiased whatever the judge;
  narrower than labelled-only when the judge tracks the humans. The formulas are
  ``ppi-python``'s (``ppi_mean_pointestimate``/``ppi_mean_ci`` with ``lam=None``), which
  the tests use as an oracle.

Differences A − B are prediction-powered too: paired by unit (e.g. the dialogue every
system summarised) when both systems cover the same units, so the shared difficulty of a
unit cancels; otherwise the two estimates' variances add. ``P(A beats B)`` comes from a
bootstrap of the units. A binary variant (pass rate) corrects the judge's pass rate by
its sensitivity and specificity on the labelled items (Rogan–Gladen, as Lee et al. 2025
propose for LLM judges).

Every estimator assumes the labelled items are a random draw of the items (labels
missing completely at random); the outputs say so.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats

from numbias.core.inference import LEVEL, Effect, adjust

ASSUMPTION = "labelled items are a random draw of each system's items (missing completely at random)"
"""What every estimate here relies on, printed beside it."""


@dataclass(frozen=True)
class Estimate:
    """A mean (or correlation, or pass rate) with its ``level`` interval: ``labelled``
    human labels and ``items`` items entered it; ``lam`` is PPI++'s weight on the judge
    (0: labelled-only, 1: plain PPI; NaN where there is none)."""

    value: float
    low: float
    high: float
    labelled: int = 0
    items: int = 0
    lam: float = float("nan")

    def text(self, digits: int = 2) -> str:
        """``3.91 [3.80, 4.02]``, or ``undefined``."""
        if not np.isfinite(self.value):
            return "undefined"
        return f"{self.value:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def _q(level: float, df: int | None = None) -> float:
    """The two-sided quantile: Student t with ``df`` degrees of freedom, else normal."""
    return float(stats.t.ppf(0.5 + level / 2, df) if df else stats.norm.ppf(0.5 + level / 2))


def _interval(
    value: float, se: float, level: float, labelled: int, items: int, lam: float = float("nan"), df: int | None = None
) -> Estimate:
    half = _q(level, df) * se
    return Estimate(float(value), float(value - half), float(value + half), labelled, items, float(lam))


STUDENT = True
"""Intervals from labels use Student t with (labels − 1) degrees of freedom: with 25 labels
the normal quantile of ``ppi-python`` covers about 92% at 95%; ``student=False`` gives
``ppi-python``'s normal intervals exactly."""


def naive_mean(judge: np.ndarray, level: float = LEVEL) -> Estimate:
    """The judge's mean over every item with a normal interval over items: what a user
    reports today. Biased by the judge; shown only to be compared with the others.

    >>> naive_mean(np.array([3.0, 4.0, 5.0])).text()
    '4.00 [3.08, 4.92]'
    """
    judge = np.asarray(judge, dtype=float)
    if len(judge) < 2:
        return Estimate(float("nan"), float("nan"), float("nan"), 0, len(judge))
    return _interval(judge.mean(), judge.std() / math.sqrt(len(judge)), level, 0, len(judge))


def labelled_mean(human: np.ndarray, level: float = LEVEL, *, student: bool = STUDENT) -> Estimate:
    """The human scores' mean with the classical interval (PPI with λ = 0); with
    ``student=False`` the normal one ``ppi-python``'s ``classical_mean_ci`` gives."""
    human = np.asarray(human, dtype=float)
    if len(human) < 2:
        return Estimate(float("nan"), float("nan"), float("nan"), len(human), len(human))
    return _interval(
        human.mean(),
        human.std() / math.sqrt(len(human)),
        level,
        len(human),
        len(human),
        0.0,
        df=len(human) - 1 if student else None,
    )


def _ppi(
    y: np.ndarray, yhat: np.ndarray, unlabelled: np.ndarray, lam: float | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PPI++ estimate, standard error and λ along the last axis (rows are resamples).
    λ = cov(Y, Ŷ) / ((1 + n/N) var(Ŷ)), clipped to [0, 1]; without unlabelled items, 0."""
    n, big_n = y.shape[-1], unlabelled.shape[-1]
    if lam is not None:
        weight = np.full(y.shape[:-1], float(lam))
    elif big_n == 0:
        weight = np.zeros(y.shape[:-1])
    else:
        cov = ((y - y.mean(-1, keepdims=True)) * (yhat - yhat.mean(-1, keepdims=True))).mean(-1)
        var = np.concatenate([yhat, unlabelled], axis=-1).var(-1, ddof=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            weight = np.clip(np.where(var > 0, cov / ((1 + n / big_n) * np.where(var > 0, var, 1)), 0.0), 0, 1)
    w = weight[..., None]
    rectifier = y - w * yhat
    imputed = (w * unlabelled).mean(-1) if big_n else np.zeros(y.shape[:-1])
    theta = imputed + rectifier.mean(-1)
    spread = (w * unlabelled).std(-1) ** 2 / big_n if big_n else 0.0
    se = np.sqrt(spread + rectifier.std(-1) ** 2 / n)
    return theta, se, weight


def finite_mean(
    y: np.ndarray,
    yhat: np.ndarray,
    unlabelled: np.ndarray,
    *,
    lam: float | None = None,
    level: float = LEVEL,
    student: bool = STUDENT,
) -> Estimate:
    """The mean human score of exactly these n + N items (not of the population they
    were drawn from): the n labels as they are, the N unlabelled items' mean estimated by
    the judge rectified on the labels (the survey regression estimator; ``lam=0``: the
    labels alone). Only the rectifier varies, with the finite-population correction
    (1 − n / (n + N)): what a coverage check against the mean of a fully labelled set
    measures, where labelling half the items halves the variance.

    >>> e = finite_mean(np.array([1.0, 2, 3, 4]), np.array([1.0, 2, 3, 4]) + 1, np.array([6.0, 7]))
    >>> round(e.value, 2), round(e.high - e.low, 6)   # a perfect judge (after its offset) leaves no doubt
    (3.5, 0.0)
    >>> e = finite_mean(np.array([1.0, 3, 2, 4]), np.array([2.0, 2, 5, 1]), np.array([3.0, 3]))
    >>> round(e.value, 2), e.low < 2.5 < e.high, e.lam < 0   # a judge pointing the wrong way is turned round
    (2.44, True, True)
    """
    y, yhat, unlabelled = (np.asarray(a, dtype=float) for a in (y, yhat, unlabelled))
    n, big_n = len(y), len(unlabelled)
    if n < 2:
        return Estimate(float("nan"), float("nan"), float("nan"), n, n + big_n)
    if lam is None:
        var = float(yhat.var())  # the labelled items' regression slope of human on judge
        lam = float(np.mean((y - y.mean()) * (yhat - yhat.mean())) / var) if var > 0 and big_n else 0.0
    rest = y - lam * yhat
    value = (y.sum() + big_n * (lam * unlabelled.mean() + rest.mean())) / (n + big_n) if big_n else y.mean()
    se = rest.std(ddof=1) * math.sqrt((1 - n / (n + big_n)) / n)
    return _interval(value, se, level, n, n + big_n, lam, df=n - 1 if student else None)


def ppi_mean(
    y: np.ndarray,
    yhat: np.ndarray,
    unlabelled: np.ndarray,
    *,
    lam: float | None = None,
    level: float = LEVEL,
    student: bool = STUDENT,
) -> Estimate:
    """The prediction-powered mean of the human score: ``y`` and ``yhat`` the labelled
    items' human and judge scores, ``unlabelled`` the judge's scores of the rest. The
    interval's quantile is Student t with n − 1 degrees of freedom (:data:`STUDENT`).

    >>> rng = np.random.default_rng(0)
    >>> truth = rng.normal(3, 1, 1000)
    >>> judge = truth + 1 + rng.normal(0, 0.5, 1000)   # biased by +1
    >>> e = ppi_mean(truth[:100], judge[:100], judge[100:])
    >>> e.low < 3 < e.high, 0.5 < e.lam <= 1, naive_mean(judge).low > 3.5
    (True, True, True)
    """
    y, yhat, unlabelled = (np.asarray(a, dtype=float) for a in (y, yhat, unlabelled))
    if len(y) < 2:
        return Estimate(float("nan"), float("nan"), float("nan"), len(y), len(y) + len(unlabelled))
    theta, se, weight = _ppi(y, yhat, unlabelled, lam)
    return _interval(
        float(theta),
        float(se),
        level,
        len(y),
        len(y) + len(unlabelled),
        float(weight),
        df=len(y) - 1 if student else None,
    )


def _beats(boot: np.ndarray) -> float:
    """Share of resamples with A ahead (ties count half); NaN where a resample has no estimate."""
    if not np.isfinite(boot).all():
        return float("nan")
    return float(np.mean(boot > 0) + 0.5 * np.mean(boot == 0))


def _p(delta: float, se: float, df: int | None) -> float:
    """Two-sided p of no difference, with the interval's quantile (t with ``df``, else normal)."""
    if not se > 0:
        return float("nan")
    return float(2 * (stats.t.sf(abs(delta) / se, df) if df else stats.norm.sf(abs(delta) / se)))


@dataclass(frozen=True)
class Side:
    """One system's items: unit keys, human scores (NaN: unlabelled) and judge scores."""

    units: np.ndarray
    human: np.ndarray
    judge: np.ndarray

    @property
    def labelled(self) -> np.ndarray:
        return np.isfinite(self.human)


def _draw(rng: np.random.Generator, n: int, n_boot: int) -> np.ndarray:
    return rng.integers(0, n, size=(n_boot, n)) if n else np.zeros((n_boot, 0), dtype=int)


def _boot_ppi(
    y: np.ndarray, yhat: np.ndarray, unlabelled: np.ndarray, rng: np.random.Generator, n_boot: int
) -> np.ndarray:
    """PPI++ estimates (λ re-tuned) on resamples of the labelled and unlabelled items
    (NaN with fewer than two labels, as :func:`ppi_mean`)."""
    if len(y) < 2:
        return np.full(n_boot, np.nan)
    li, ui = _draw(rng, len(y), n_boot), _draw(rng, len(unlabelled), n_boot)
    return _ppi(y[li], yhat[li], unlabelled[ui])[0]


def paired_units(a: Side, b: Side) -> bool:
    """Whether A and B cover the same units, each once: then their difference is taken
    unit by unit."""
    ua, ub = pd.Index(a.units), pd.Index(b.units)
    return bool(ua.is_unique and ub.is_unique and len(ua) == len(ub) and ua.sort_values().equals(ub.sort_values()))


def ppi_difference(
    a: Side, b: Side, *, n_boot: int = 2000, seed: int = 0, level: float = LEVEL, student: bool = STUDENT
) -> tuple[Effect, float]:
    """PPI++ estimate of mean(A) − mean(B) as an :class:`Effect` (``delta`` = A − B, p
    from its interval) and P(A beats B) from a bootstrap over units. Paired by unit when
    :func:`paired_units` and two or more units are labelled for both (such a unit is
    labelled for the difference); otherwise the two systems' estimates are independent
    and their variances add."""
    rng = np.random.default_rng(seed)
    order = pd.Index(b.units).get_indexer(a.units) if paired_units(a, b) else None
    if order is not None and np.isfinite(a.human - b.human[order]).sum() >= 2:
        human, judge = a.human - b.human[order], a.judge - b.judge[order]
        lab = np.isfinite(human)
        df = int(lab.sum()) - 1 if student else None
        est = ppi_mean(human[lab], judge[lab], judge[~lab], level=level, student=student)
        boot = _boot_ppi(human[lab], judge[lab], judge[~lab], rng, n_boot)
        se = (est.high - est.value) / _q(level, df)
        return Effect(
            est.value,
            est.low,
            est.high,
            _p(est.value, se, df),
            len(human),
            resampled=f"{int(lab.sum())} labelled of {len(human)} paired units",
        ), _beats(boot)
    df = min(int(a.labelled.sum()), int(b.labelled.sum())) - 1 if student else None  # the fewer labels: conservative
    ea, eb = (
        ppi_mean(s.human[s.labelled], s.judge[s.labelled], s.judge[~s.labelled], level=level, student=False)
        for s in (a, b)
    )
    se = math.hypot(*((e.high - e.value) / _q(level) for e in (ea, eb)))
    delta = ea.value - eb.value
    boot = np.subtract(
        *(_boot_ppi(s.human[s.labelled], s.judge[s.labelled], s.judge[~s.labelled], rng, n_boot) for s in (a, b))
    )
    half = _q(level, df) * se
    return Effect(
        delta,
        delta - half,
        delta + half,
        _p(delta, se, df),
        len(a.units) + len(b.units),
        resampled="independent systems",
    ), _beats(boot)


def pairwise(sides: dict[str, Side], *, n_boot: int = 2000, seed: int = 0, level: float = LEVEL) -> pd.DataFrame:
    """Every pair A, B (A listed first): PPI++ difference A − B with its interval, p
    (Holm-adjusted over the pairs) and P(A beats B)."""
    rows, effects = [], []
    for k, (a, b) in enumerate(combinations(sides, 2)):
        effect, beats = ppi_difference(sides[a], sides[b], n_boot=n_boot, seed=seed + k, level=level)
        effects.append(effect)
        rows.append({"a": a, "b": b, "beats": beats, "paired": effect.resampled != "independent systems"})
    columns = ["a", "b", "difference", "low", "high", "p", "p_holm", "beats", "paired", "units"]
    if not rows:
        return pd.DataFrame(columns=columns)
    for row, e in zip(rows, adjust(effects)):
        row.update(
            {
                "difference": e.delta,
                "low": e.low,
                "high": e.high,
                "p": e.p,
                "p_holm": e.p_adjusted,
                "units": e.resampled,
            }
        )
    return pd.DataFrame(rows)[columns]


def rogan_gladen(rate: float, sensitivity: float, specificity: float) -> float:
    """The true pass rate behind a judge's observed ``rate``, given its sensitivity and
    specificity, clipped to [0, 1]; NaN when the judge is no better than chance.

    >>> round(rogan_gladen(0.62, 0.9, 0.8), 3)
    0.6
    """
    youden = sensitivity + specificity - 1
    if not np.isfinite(youden) or youden <= 0:
        return float("nan")
    return float(np.clip((rate + specificity - 1) / youden, 0, 1))


def _sens_spec(human: np.ndarray, judge: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sensitivity and specificity along the last axis (boolean pass indicators)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        sens = (human & judge).sum(-1) / human.sum(-1)
        spec = (~human & ~judge).sum(-1) / (~human).sum(-1)
    return sens, spec


def corrected_pass_rate(
    judge_pass: np.ndarray,
    human_pass: np.ndarray,
    judge_pass_labelled: np.ndarray,
    *,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = LEVEL,
) -> Estimate:
    """A system's pass rate: the judge's pass rate over its items, corrected by the
    judge's sensitivity and specificity on the labelled items (Rogan–Gladen), with a
    percentile bootstrap interval resampling both; clipped to [0, 1].

    >>> rng = np.random.default_rng(1)
    >>> truth = rng.random(2000) < 0.3
    >>> judged = np.where(truth, rng.random(2000) < 0.9, rng.random(2000) < 0.2)   # over-passes
    >>> e = corrected_pass_rate(judged, truth[:300], judged[:300])
    >>> round(float(judged.mean()), 2), e.low < 0.3 < e.high
    (0.4, True)
    """
    judge_pass, human_pass, judge_lab = (
        np.asarray(a, dtype=bool) for a in (judge_pass, human_pass, judge_pass_labelled)
    )
    sens, spec = _sens_spec(human_pass, judge_lab)
    value = rogan_gladen(float(judge_pass.mean()), float(sens), float(spec))
    if not np.isfinite(value) or len(human_pass) < 2:
        return Estimate(float("nan"), float("nan"), float("nan"), len(human_pass), len(judge_pass))
    rng = np.random.default_rng(seed)
    rate = judge_pass[_draw(rng, len(judge_pass), n_boot)].mean(-1)
    li = _draw(rng, len(human_pass), n_boot)
    sens_b, spec_b = _sens_spec(human_pass[li], judge_lab[li])
    youden = sens_b + spec_b - 1
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = np.where(youden > 0, np.clip((rate + spec_b - 1) / youden, 0, 1), np.nan)
    boot = boot[np.isfinite(boot)]
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(boot, [tail, 100 - tail]) if len(boot) else (np.nan, np.nan)
    return Estimate(value, float(low), float(high), len(human_pass), len(judge_pass))


def _kendall(a: np.ndarray, b: np.ndarray) -> float:
    return float(stats.kendalltau(a, b).statistic)


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(stats.spearmanr(a, b).statistic)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(stats.pearsonr(a, b).statistic)


AGREEMENT: dict[str, tuple[Callable[[np.ndarray, np.ndarray], float], float, int]] = {
    "pearson": (_pearson, 1.0, 3),
    "spearman": (_spearman, 1.06, 3),
    "kendall": (_kendall, 0.437, 4),
}
"""System-level correlations of judge means with human means: the statistic, and the
variance of its Fisher z as ``c / (systems - d)`` (Fieller, Hartley & Pearson 1957)."""


def system_agreement(sides: dict[str, Side], *, level: float = LEVEL) -> dict[str, Estimate]:
    """Pearson, Spearman and Kendall between the systems' judge means (over every item
    the judge scored: the naive means a user compares) and human means (over each
    system's labelled items), with Fisher-z intervals over the systems (Fieller's
    variances for the rank correlations). The systems are the sample: which items were
    labelled is not in the interval, and with few labels a system the human means are
    noisy, so the estimate varies from one label draw to the next. Resampling items
    within systems does not give a usable interval: it adds that noise a second time,
    so its percentile interval can lie wholly below the estimate (0.86 against
    [0.34, 0.86] for 14 systems with 10 labels each). Systems with fewer than two
    labelled items are left out; an interval needs more systems than ``d``.

    >>> rng = np.random.default_rng(0)
    >>> sides = {s: Side(np.arange(50), m + rng.normal(0, 1, 50), m + rng.normal(0, 1, 50))
    ...          for s, m in zip("ABCDE", [1, 2, 3, 4, 5])}
    >>> r = system_agreement(sides)
    >>> r["pearson"].value > 0.9, r["kendall"].items
    (True, 5)
    >>> r["pearson"].low <= r["pearson"].value <= r["pearson"].high
    True
    """
    kept = {k: s for k, s in sides.items() if s.labelled.sum() >= 2}
    nan = Estimate(float("nan"), float("nan"), float("nan"), 0, len(kept))
    if len(kept) < 3:
        return {name: nan for name in AGREEMENT}
    judge = np.array([s.judge[np.isfinite(s.judge)].mean() for s in kept.values()])
    human = np.array([s.human[s.labelled].mean() for s in kept.values()])
    labelled = int(sum(s.labelled.sum() for s in kept.values()))
    z = stats.norm.ppf(0.5 + level / 2)
    out = {}
    for name, (statistic, c, d) in AGREEMENT.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # constant means: the correlation is NaN, shown as such
            value = statistic(judge, human)
        half = z * math.sqrt(c / (len(kept) - d)) if len(kept) > d else float("nan")
        with np.errstate(divide="ignore"):  # r = ±1: z is infinite, the interval the point
            low, high = np.tanh(np.arctanh(value) + np.array([-half, half]))
        out[name] = Estimate(value, float(low), float(high), labelled, len(kept))
    return out


def members(label: object) -> list[str]:
    """The systems an item belongs to: a comma-separated label (identical outputs of
    several systems merged, as TMU-GFM does) names each, and the item counts for each.

    >>> members("lstm, cnn"), members("A")
    (['lstm', 'cnn'], ['A'])
    """
    return [name.strip() for name in str(label).split(",") if name.strip()]


def by_system(labels: np.ndarray | list[object]) -> dict[str, np.ndarray]:
    """Each system's item positions, systems in order of first appearance, an item of
    several systems (:func:`members`) in each of them.

    >>> {k: v.tolist() for k, v in by_system(["A", "B,A", "B"]).items()}
    {'A': [0, 1], 'B': [1, 2]}
    """
    by: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        for name in members(label):
            by.setdefault(name, []).append(i)
    return {name: np.array(rows) for name, rows in by.items()}


def sides(system: np.ndarray, units: np.ndarray, human: np.ndarray, judge: np.ndarray) -> dict[str, Side]:
    """Each system's items (:func:`by_system`) as a :class:`Side`."""
    units, human, judge = np.asarray(units), np.asarray(human, dtype=float), np.asarray(judge, dtype=float)
    return {name: Side(units[idx], human[idx], judge[idx]) for name, idx in by_system(system).items()}
