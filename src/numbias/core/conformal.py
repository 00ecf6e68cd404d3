"""Split-conformal prediction intervals for judge scores, on the human scale.

A point prediction (a calibrated or a plain judge score) is first mapped onto the
human scale by a least-squares line, so even an uncalibrated score gets an interval
there; the radius is the split-conformal quantile of the absolute residuals on
held-out predictions (e.g. cross-fitted development items), so a new item's human
score lies in ``point ± radius`` with probability at least ``coverage`` whenever the
new item is exchangeable with the fitting ones. The ends are ratings humans can give:
never outside the human range (``limits``: clipped to it, which loses no coverage,
since every human score lies inside), and with discrete ratings (``levels``, e.g.
the integers 1–5) rounded outward onto the levels, which only widens the interval.
Coverage measured on labelled items comes with its Wilson interval."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar, NamedTuple, Self

import numpy as np
from scipy import stats

from numbias.util.errors import NumbiasError
from numbias.util.state import Stateful

_TOL = 1e-9
"""Float slack in the conformal rank and in rounding onto levels (3 − 1e-15 is level 3)."""


def items_needed(coverage: float) -> int:
    """The fewest fitting items for which the split-conformal radius at ``coverage``
    is finite: the ⌈(n + 1)·coverage⌉-th smallest residual must exist."""
    return math.ceil(coverage / (1 - coverage) - _TOL)


def _pairs(pred: Sequence[float] | np.ndarray, human: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The items with both a prediction and a human score (an unscored item is NaN)."""
    pred, human = np.asarray(pred, dtype=float), np.asarray(human, dtype=float)
    if pred.shape != human.shape or pred.ndim != 1:
        raise NumbiasError(
            f"a conformal interval needs one human score per prediction, got {pred.shape} "
            f"predictions and {human.shape} human scores"
        )
    keep = ~np.isnan(pred) & ~np.isnan(human)
    return pred[keep], human[keep]


def _outward(low: np.ndarray, high: np.ndarray, levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each end rounded outward to the nearest level (low down, high up), clipped to the levels."""
    last = len(levels) - 1
    down = np.clip(np.searchsorted(levels, low + _TOL, side="right") - 1, 0, last)
    up = np.clip(np.searchsorted(levels, high - _TOL, side="left"), 0, last)
    return np.where(np.isnan(low), np.nan, levels[down]), np.where(np.isnan(high), np.nan, levels[up])


def rating_grid(human: Sequence[float] | np.ndarray, human_range: tuple[float, float]) -> list[float] | None:
    """The ratings humans can give, read from their scores: every integer of the range
    when all scores are integers (1–5 stars), else None (mean ratings: any value in the
    range).

    >>> rating_grid([1, 3, 5, 2], (1, 5)), rating_grid([1.5, 3.25], (1, 5))
    ([1.0, 2.0, 3.0, 4.0, 5.0], None)
    """
    h = np.asarray(human, dtype=float)
    h = h[np.isfinite(h)]
    lo, hi = human_range
    if not len(h) or np.any(np.abs(h - np.round(h)) > _TOL) or math.ceil(lo - _TOL) > math.floor(hi + _TOL):
        return None
    return [float(v) for v in range(math.ceil(lo - _TOL), math.floor(hi + _TOL) + 1)]


class ConformalInterval(Stateful):
    """Split-conformal interval of the human score given a point prediction, after
    scikit-learn's estimator contract: parameters only in ``__init__`` (``coverage``;
    ``levels``: the discrete ratings humans can give, e.g. 1..7 or the averages of
    ten integer ratings, or None for continuous scores; ``limits``: the human range
    (lo, hi) that point and ends are clipped to, or None), data only in :meth:`fit`,
    which returns self, learned state in ``slope_``, ``intercept_`` and ``radius_``
    (saved and restored by the one state protocol, :class:`numbias.util.state.Stateful`)."""

    state_keys: ClassVar[tuple[str, ...]] = ("slope_", "intercept_", "radius_")

    def __init__(
        self, coverage: float = 0.9, levels: Sequence[float] | None = None, limits: Sequence[float] | None = None
    ) -> None:
        self.coverage = coverage
        self.levels = levels
        self.limits = limits

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The parameters by name, as scikit-learn's ``get_params`` gives them."""
        return {"coverage": self.coverage, "levels": self.levels, "limits": self.limits}

    def _levels(self) -> np.ndarray | None:
        if self.levels is None:
            return None
        levels = np.unique(np.asarray(self.levels, dtype=float))
        if not len(levels) or not np.all(np.isfinite(levels)):
            raise NumbiasError(f"conformal levels must be finite numbers, got {self.levels!r}")
        return levels

    def fit(self, pred: Sequence[float] | np.ndarray, human: Sequence[float] | np.ndarray) -> Self:
        """Learn the line from ``pred`` to the human scale and the radius, from held-out
        predictions and the same items' human scores (NaN pairs are left out)."""
        if not 0 < self.coverage < 1:
            raise NumbiasError(f"conformal coverage must be between 0 and 1, got {self.coverage!r}")
        self._levels()
        pred, human = _pairs(pred, human)
        n, needed = len(pred), items_needed(self.coverage)
        if n < needed:
            raise NumbiasError(
                f"a {self.coverage:.0%} conformal interval needs at least {needed} scored items "
                f"with human scores, got {n}"
            )
        if np.ptp(pred) > 0:
            line = stats.linregress(pred, human)
            self.slope_, self.intercept_ = float(line.slope), float(line.intercept)
        else:  # predictions that do not vary say nothing: the interval is the humans' own spread
            self.slope_, self.intercept_ = 0.0, float(human.mean())
        residuals = np.sort(np.abs(human - (self.slope_ * pred + self.intercept_)))
        self.radius_ = float(residuals[math.ceil((n + 1) * self.coverage - _TOL) - 1])
        return self

    def predict(self, pred: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The point on the human scale, and the interval's low and high ends (NaN where
        ``pred`` is NaN; with ``limits``, all inside the human range; with ``levels``,
        ends on the levels)."""
        point = self.slope_ * np.asarray(pred, dtype=float) + self.intercept_
        low, high = point - self.radius_, point + self.radius_
        if self.limits is not None:
            lo, hi = (float(v) for v in self.limits)
            point, low, high = (np.clip(a, lo, hi) for a in (point, low, high))
        levels = self._levels()
        if levels is not None:
            low, high = _outward(low, high, levels)
        return point, low, high


class Coverage(NamedTuple):
    """The share of items inside their interval, its 95% Wilson interval, the mean
    width and how many items were counted."""

    share: float
    low: float
    high: float
    width: float
    items: int

    def text(self) -> str:
        """``88% [84%, 91%] of 300 items``."""
        if not self.items:
            return "no items"
        return f"{self.share:.0%} [{self.low:.0%}, {self.high:.0%}] of {self.items} items"


def coverage(
    low: Sequence[float] | np.ndarray, high: Sequence[float] | np.ndarray, human: Sequence[float] | np.ndarray
) -> Coverage:
    """Coverage with its Wilson interval (``scipy.stats.binomtest``), so a coverage
    measured on few items reads as uncertain as it is.

    >>> c = coverage([1, 1, 2, 2], [3, 3, 4, 4], [2, 5, 3, 3])
    >>> c.share, c.items, round(c.low, 2), round(c.high, 2)
    (0.75, 4, 0.3, 0.95)
    """
    low, high, human = (np.asarray(a, dtype=float) for a in (low, high, human))
    keep = ~(np.isnan(low) | np.isnan(high) | np.isnan(human))
    n = int(keep.sum())
    if not n:
        return Coverage(float("nan"), float("nan"), float("nan"), float("nan"), 0)
    inside = int(np.sum((low[keep] <= human[keep]) & (human[keep] <= high[keep])))
    ci = stats.binomtest(inside, n).proportion_ci(0.95, method="wilson")
    return Coverage(inside / n, float(ci.low), float(ci.high), float(np.mean(high[keep] - low[keep])), n)


def coverage_and_width(
    low: Sequence[float] | np.ndarray, high: Sequence[float] | np.ndarray, human: Sequence[float] | np.ndarray
) -> tuple[float, float]:
    """The share of items whose human score lies in [low, high] and the mean width
    (items with a NaN end or no human score left out; NaN, NaN when none is left)."""
    low, high, human = (np.asarray(a, dtype=float) for a in (low, high, human))
    keep = ~(np.isnan(low) | np.isnan(high) | np.isnan(human))
    if not keep.any():
        return float("nan"), float("nan")
    inside = (low[keep] <= human[keep]) & (human[keep] <= high[keep])
    return float(inside.mean()), float(np.mean(high[keep] - low[keep]))
