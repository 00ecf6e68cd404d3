"""One place for the inference behind every comparison numbias prints.

A comparison is a statistic (Pearson r with the humans, kurtosis, a mode share …) of
one condition minus the same statistic of another, on the same items. Its uncertainty
counts the items — resampled together, so the pairing is kept — and, where the
conditions were trained with several seeds, the seeds: the spread of the per-seed
differences enters through a t interval whose degrees of freedom say how few seeds
there are. A table of many comparisons is a family, corrected by Holm (the default:
it controls the chance of any false mark) or Benjamini–Hochberg (the false-discovery
rate); an effect is marked only when its adjusted p is below ``alpha``.

Item resampling is ``scipy.stats.bootstrap`` (percentile or BCa); the p-value inverts
the percentile interval, so "the 95% CI excludes 0" and "p < 0.05" agree before
correction (where 0 lies beyond every resample, a normal approximation extrapolates p;
see :func:`_p_from_boot`). With seeds, adding the item bootstrap's variance to the
seeds' counts the seed × item interaction twice: the interval is conservative there.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from scipy import stats

from numbias.util.fmt import fmt_ci, fmt_num

Statistic = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``statistic(scores, human)`` along the last axis: one value per row of resampled items."""
Method = Literal["percentile", "BCa"]
Correction = Literal["holm", "bh"]
LEVEL = 0.95
ALPHA = 0.05


@dataclass(frozen=True)
class Effect:
    """A change with its interval and test: ``delta`` = statistic(b) − statistic(a),
    ``low``/``high`` its ``level`` interval, ``p`` the two-sided p-value before and
    ``p_adjusted`` after correction across the family it was printed in (NaN until
    :func:`adjust` sets it). ``items`` and ``seeds`` say what was counted."""

    delta: float
    low: float
    high: float
    p: float
    items: int
    seeds: int = 1
    p_adjusted: float = float("nan")
    resampled: str = "items"
    groups: int = 0
    """Groups resampled whole (0: items resampled one by one)."""

    @property
    def defined(self) -> bool:
        return bool(np.isfinite(self.delta) and np.isfinite(self.low) and np.isfinite(self.high))

    def significant(self, alpha: float = ALPHA) -> bool:
        """Whether the (adjusted, when set) test rejects "no change" at ``alpha``; never
        for a change without an interval (its resamples were not all defined)."""
        p = self.p_adjusted if np.isfinite(self.p_adjusted) else self.p
        return bool(self.defined and np.isfinite(p) and p < alpha)

    def text(self, digits: int = 2) -> str:
        """``+0.12 [+0.03, +0.21]``, or ``undefined`` when the change cannot be computed."""
        if not np.isfinite(self.delta):
            return "undefined"
        if not self.defined:
            return f"{fmt_num(self.delta, digits, signed=True, plain=True)} [no interval]"
        return fmt_ci(self.delta, self.low, self.high, digits, signed=True, plain=True)


UNDEFINED = Effect(float("nan"), float("nan"), float("nan"), float("nan"), 0)


def _rows(x: np.ndarray | Sequence[float]) -> np.ndarray:
    """A condition's scores as seeds × items (one row when it has no seeds)."""
    x = np.asarray(x, dtype=float)
    return x[None, :] if x.ndim == 1 else x


def _value(statistic: Statistic, x: np.ndarray, human: np.ndarray) -> np.ndarray:
    """The statistic of every seed row, averaged over seeds, for item resamples ``…×n``."""
    per_seed = np.stack([statistic(row, human) for row in x])
    return per_seed.mean(axis=0)


P_FLOOR = 1e-12
"""The smallest p reported: beyond it a normal tail says nothing a reader can use."""


def _p_from_boot(boot: np.ndarray) -> float:
    """Two-sided p inverting the percentile interval: how far 0 lies in the tails.
    Where 0 lies beyond every resample, a normal (Wald) approximation from the
    resamples' mean and sd extrapolates it (never above the resampling floor 2/(B + 1),
    never below :data:`P_FLOOR`), so that a correction over a table of many rows is not
    stuck at that floor times the number of rows. A statistic undefined on any resample
    has no p (NaN): the defined resamples alone would be a conditional, biased sample."""
    if not len(boot) or not np.isfinite(boot).all():
        return float("nan")
    tail = min(np.sum(boot <= 0), np.sum(boot >= 0))
    floor = 2 / (len(boot) + 1)
    if tail == 0 and len(boot) > 1 and (sd := float(np.std(boot, ddof=1))) > 0:
        return float(max(P_FLOOR, min(floor, 2 * stats.norm.sf(abs(float(np.mean(boot))) / sd))))
    return float(min(1.0, 2 * (tail + 1) / (len(boot) + 1)))


def paired_effect(
    statistic: Statistic,
    a: np.ndarray | Sequence[float],
    b: np.ndarray | Sequence[float],
    human: np.ndarray | Sequence[float] | None = None,
    *,
    paired_seeds: bool = False,
    n_boot: int = 2000,
    seed: int = 0,
    method: Method = "percentile",
    level: float = LEVEL,
    groups: np.ndarray | Sequence[object] | None = None,
) -> Effect:
    """statistic(b) − statistic(a) on the same items, with its interval and p.

    ``a`` and ``b`` are items (1-D) or seeds × items; a condition with seeds enters as
    the mean of its per-seed statistics. ``paired_seeds`` pairs row k of ``a`` with row
    k of ``b`` (a later stage against the earlier stage of the same seed). Without
    seeds: a paired item bootstrap. With seeds: the item bootstrap's variance plus the
    per-seed differences' variance over the number of seeds, in a t interval with
    Welch–Satterthwaite degrees of freedom. ``groups`` (one per item, no seeds): whole
    groups are resampled, so items of one source document stay together.

    >>> rng = np.random.default_rng(0)
    >>> human = rng.normal(size=300)
    >>> worse, better = human + 2 * rng.normal(size=300), human + 0.5 * rng.normal(size=300)
    >>> from numbias.core.metrics import pearson_rows
    >>> e = paired_effect(pearson_rows, worse, better, human, n_boot=500)
    >>> 0 < e.low < e.delta < e.high and e.p < 0.01
    True
    """
    a, b = _rows(a), _rows(b)
    h = np.zeros(a.shape[1]) if human is None else np.asarray(human, dtype=float)
    keep = np.isfinite(h) & np.isfinite(a).all(axis=0) & np.isfinite(b).all(axis=0)
    a, b, h = a[:, keep], b[:, keep], h[keep]
    n = len(h)
    if paired_seeds and a.shape[0] != b.shape[0]:
        raise ValueError(f"paired seeds need as many seeds on both sides, not {a.shape[0]} and {b.shape[0]}")
    delta = float(_value(statistic, b, h) - _value(statistic, a, h)) if n else float("nan")
    seeds = max(a.shape[0], b.shape[0])
    if groups is not None:
        if seeds > 1:
            raise ValueError("groups are resampled whole only for conditions without seeds")
        return _group_effect(statistic, a[0], b[0], h, np.asarray(groups)[keep], delta, n_boot, seed, method, level)
    if n < 3 or not np.isfinite(delta):
        return replace(UNDEFINED, delta=delta, items=n, seeds=seeds)
    boot, low, high = _item_bootstrap(statistic, a, b, h, n_boot, seed, method, level)
    if seeds == 1:
        return Effect(delta, low, high, _p_from_boot(boot), n, 1, resampled="items")
    return _with_seeds(delta, boot, _seed_parts(statistic, a, b, h, paired_seeds), n, seeds, level)


def _item_bootstrap(
    statistic: Statistic,
    a: np.ndarray,
    b: np.ndarray,
    h: np.ndarray,
    n_boot: int,
    seed: int,
    method: Method,
    level: float,
) -> tuple[np.ndarray, float, float]:
    """The paired item bootstrap of statistic(b) − statistic(a) (seeds × items each): its
    resampled differences, which the seeded interval builds on, and its own interval."""

    def diff(idx: np.ndarray, axis: int = -1) -> np.ndarray:
        return _value(statistic, b[:, idx], h[idx]) - _value(statistic, a[:, idx], h[idx])

    with warnings.catch_warnings():  # a statistic undefined on some resamples gives no interval, said as text
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        res = stats.bootstrap(
            (np.arange(len(h)),),
            diff,
            vectorized=True,
            n_resamples=n_boot,
            method=method,
            confidence_level=level,
            random_state=np.random.default_rng(seed),
        )
    boot = np.asarray(res.bootstrap_distribution, dtype=float)
    return boot, float(res.confidence_interval.low), float(res.confidence_interval.high)


def _group_effect(
    statistic: Statistic,
    a: np.ndarray,
    b: np.ndarray,
    h: np.ndarray,
    groups: np.ndarray,
    delta: float,
    n_boot: int,
    seed: int,
    method: Method,
    level: float,
) -> Effect:
    """The paired bootstrap with whole groups resampled (a cluster bootstrap): each
    resample draws groups with replacement and takes every item of each."""
    members = [np.flatnonzero(groups == g) for g in dict.fromkeys(groups.tolist())]
    if len(members) < 3 or not np.isfinite(delta):
        return replace(UNDEFINED, delta=delta, items=len(h), groups=len(members), resampled="groups")

    def diff(picked: np.ndarray) -> float:
        idx = np.concatenate([members[int(g)] for g in picked])
        return float(statistic(b[idx], h[idx]) - statistic(a[idx], h[idx]))

    res = stats.bootstrap(
        (np.arange(len(members)),),
        diff,
        vectorized=False,
        n_resamples=n_boot,
        method=method,
        confidence_level=level,
        random_state=np.random.default_rng(seed),
    )
    boot = np.asarray(res.bootstrap_distribution, dtype=float)
    return Effect(
        delta,
        float(res.confidence_interval.low),
        float(res.confidence_interval.high),
        _p_from_boot(boot),
        len(h),
        1,
        resampled="groups",
        groups=len(members),
    )


def _seed_parts(
    statistic: Statistic, a: np.ndarray, b: np.ndarray, h: np.ndarray, paired: bool
) -> list[tuple[float, int]]:
    """(variance of the mean over seeds, its degrees of freedom) of each seeded part:
    the per-seed differences when paired, else each side with more than one seed."""
    sa = np.array([statistic(row, h) for row in a], dtype=float)
    sb = np.array([statistic(row, h) for row in b], dtype=float)
    sides = [sb - sa] if paired else [s for s in (sa, sb) if len(s) > 1]
    return [(float(np.var(s, ddof=1)) / len(s), len(s) - 1) for s in sides]


def _with_seeds(
    delta: float, boot: np.ndarray, parts: list[tuple[float, int]], items: int, seeds: int, level: float
) -> Effect:
    """t interval from the item variance (bootstrap) plus the seed variances, with
    Welch–Satterthwaite degrees of freedom."""
    boot = boot[np.isfinite(boot)]
    parts = [(float(np.var(boot, ddof=1)) if len(boot) > 1 else float("nan"), max(items - 1, 1)), *parts]
    var = sum(v for v, _ in parts)
    if not np.isfinite(var) or var <= 0:
        return Effect(delta, float("nan"), float("nan"), float("nan"), items, seeds, resampled="items × seeds")
    df = var**2 / sum(v**2 / d for v, d in parts)
    se = math.sqrt(var)
    half = float(stats.t.ppf(0.5 + level / 2, df)) * se
    p = float(2 * stats.t.sf(abs(delta) / se, df))
    return Effect(delta, delta - half, delta + half, p, items, seeds, resampled="items × seeds")


def holm(p: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN stays NaN and does not count).

    >>> holm([0.01, 0.04, 0.03, float("nan")]).round(2).tolist()
    [0.03, 0.06, 0.06, nan]
    """
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    m = len(order)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def benjamini_hochberg(p: Sequence[float] | np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (scipy's), NaN kept out of the family."""
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = stats.false_discovery_control(p[ok], method="bh")
    return out


def adjust(effects: Sequence[Effect], correction: Correction = "holm") -> list[Effect]:
    """The family's effects with ``p_adjusted`` set: Holm or Benjamini–Hochberg over all
    of them (undefined ones stay out of the count)."""
    p = [e.p for e in effects]
    adjusted = holm(p) if correction == "holm" else benjamini_hochberg(p)
    return [replace(e, p_adjusted=float(q)) for e, q in zip(effects, adjusted)]


def resamples_for(family: int, at_least: int = 1000, alpha: float = ALPHA) -> int:
    """Item resamples enough for a family of ``family`` tests: a bootstrap p cannot fall
    below 2/(B+1), so Holm could never reject with too few; this puts that floor at
    half of ``alpha`` / ``family``.

    >>> resamples_for(10), resamples_for(500)
    (1000, 40000)
    """
    return max(at_least, math.ceil(4 * family / alpha))


def _span(values: Sequence[int]) -> str:
    return f"{min(values)}" if min(values) == max(values) else f"{min(values)}–{max(values)}"


def _what(effects: Sequence[Effect]) -> str:
    """The kinds of resampling among ``effects``, with their item and seed counts."""
    grouped = [e for e in effects if e.items and e.groups]
    single = [e.items for e in effects if e.items and e.seeds == 1 and not e.groups]
    seeded = [e for e in effects if e.items and e.seeds > 1]
    parts = (
        [
            f"{_span([e.groups for e in grouped])} groups ({_span([e.items for e in grouped])} items) resampled "
            "whole (paired bootstrap)"
        ]
        if grouped
        else []
    )
    parts += [f"{_span(single)} items resampled in pairs (bootstrap)"] if single else []
    if seeded:
        parts.append(
            f"{_span([e.items for e in seeded])} items resampled and {_span([e.seeds for e in seeded])} "
            "seeds (t interval, Welch–Satterthwaite df)"
        )
    return "; ".join(parts) or "nothing resampled"


def resampling_note(
    effect: Effect | Sequence[Effect], correction: Correction = "holm", family: int | None = None
) -> str:
    """What an interval resampled and how its p was corrected, for a tooltip or footnote;
    given a table's effects, every kind among them and (by default) the family's size.

    >>> e = Effect(0.1, 0.0, 0.2, 0.04, 50)
    >>> resampling_note([e, replace(e, seeds=3, items=40)])
    '95% CI: 50 items resampled in pairs (bootstrap); 40 items resampled and 3 seeds (t interval,
    Welch–Satterthwaite df); p adjusted by Holm over the 2 comparisons of this table'
    """
    effects = [effect] if isinstance(effect, Effect) else list(effect)
    if family is None and not isinstance(effect, Effect):
        family = sum(np.isfinite(e.p) for e in effects)
    what = _what(effects)
    name = "Holm" if correction == "holm" else "Benjamini–Hochberg"
    fam = f" over the {family} comparisons of this table" if family else ""
    return f"95% CI: {what}; p adjusted by {name}{fam}"
