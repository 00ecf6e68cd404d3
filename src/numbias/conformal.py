"""Split-conformal prediction intervals for judge scores, on the human scale.

A point prediction (a calibrated or a plain judge score) is first mapped onto the
human scale by a least-squares line, so even an uncalibrated score gets an interval
there; the radius is the split-conformal quantile of the absolute residuals on
held-out predictions (e.g. cross-fitted development items), so a new item's human
score lies in ``point ± radius`` with probability at least ``coverage`` whenever the
new item is exchangeable with the fitting ones. With discrete ratings (``levels``)
the ends are rounded outward onto the levels, which only widens the interval."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Self

import numpy as np
from scipy import stats

from numbias.errors import NumbiasError

_TOL = 1e-9
"""Float slack in the conformal rank and in rounding onto levels (3 − 1e-15 is level 3)."""
_STATE = ("slope_", "intercept_", "radius_")


def items_needed(coverage: float) -> int:
    """The fewest fitting items for which the split-conformal radius at ``coverage``
    is finite: the ⌈(n + 1)·coverage⌉-th smallest residual must exist."""
    return math.ceil(coverage / (1 - coverage) - _TOL)


def _pairs(pred: Sequence[float] | np.ndarray, human: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The items with both a prediction and a human score (an unscored item is NaN)."""
    pred, human = np.asarray(pred, dtype=float), np.asarray(human, dtype=float)
    if pred.shape != human.shape or pred.ndim != 1:
        raise NumbiasError(f"a conformal interval needs one human score per prediction, got {pred.shape} "
                           f"predictions and {human.shape} human scores")
    keep = ~np.isnan(pred) & ~np.isnan(human)
    return pred[keep], human[keep]


def _outward(low: np.ndarray, high: np.ndarray, levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each end rounded outward to the nearest level (low down, high up), clipped to the levels."""
    last = len(levels) - 1
    down = np.clip(np.searchsorted(levels, low + _TOL, side="right") - 1, 0, last)
    up = np.clip(np.searchsorted(levels, high - _TOL, side="left"), 0, last)
    return np.where(np.isnan(low), np.nan, levels[down]), np.where(np.isnan(high), np.nan, levels[up])


class ConformalInterval:
    """Split-conformal interval of the human score given a point prediction, after
    scikit-learn's estimator contract: parameters only in ``__init__`` (``coverage``,
    and ``levels``: the discrete ratings humans can give, e.g. 1..7 or the averages of
    ten integer ratings, or None for continuous scores), data only in :meth:`fit`,
    which returns self, learned state in ``slope_``, ``intercept_`` and ``radius_``."""

    def __init__(self, coverage: float = 0.9, levels: Sequence[float] | None = None) -> None:
        self.coverage = coverage
        self.levels = levels

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The parameters by name, as scikit-learn's ``get_params`` gives them."""
        return {"coverage": self.coverage, "levels": self.levels}

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
            raise NumbiasError(f"a {self.coverage:.0%} conformal interval needs at least {needed} scored items "
                               f"with human scores, got {n}")
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
        ``pred`` is NaN; with ``levels``, ends on the levels)."""
        point = self.slope_ * np.asarray(pred, dtype=float) + self.intercept_
        low, high = point - self.radius_, point + self.radius_
        levels = self._levels()
        if levels is not None:
            low, high = _outward(low, high, levels)
        return point, low, high

    def get_state(self) -> dict[str, float]:
        """The learned state as JSON-able numbers."""
        return {key: float(getattr(self, key)) for key in _STATE}

    def set_state(self, state: dict[str, Any]) -> Self:
        """Take state saved by :meth:`get_state` (on an instance with the saved parameters)."""
        if set(state) != set(_STATE):
            raise NumbiasError(f"saved conformal interval has keys {sorted(state)}, expected {sorted(_STATE)}")
        for key in _STATE:
            setattr(self, key, float(state[key]))
        return self


def coverage_and_width(low: Sequence[float] | np.ndarray, high: Sequence[float] | np.ndarray,
                       human: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """The share of items whose human score lies in [low, high] and the mean width
    (items with a NaN end or no human score left out; NaN, NaN when none is left)."""
    low, high, human = (np.asarray(a, dtype=float) for a in (low, high, human))
    keep = ~(np.isnan(low) | np.isnan(high) | np.isnan(human))
    if not keep.any():
        return float("nan"), float("nan")
    inside = (low[keep] <= human[keep]) & (human[keep] <= high[keep])
    return float(inside.mean()), float(np.mean(high[keep] - low[keep]))
