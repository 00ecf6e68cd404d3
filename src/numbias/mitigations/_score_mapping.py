"""The score mapping family: a rule's item scores mapped monotonically onto the human
scale, by isotonic regression or by matching quantiles, so the judge's scores take the
humans' level and spread without touching its distributions."""

from __future__ import annotations

from typing import ClassVar, Self

import numpy as np
from sklearn.isotonic import IsotonicRegression

from numbias.mitigations._base import ScoreMapping, UnfittableError


def _usable(scores: np.ndarray, human: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs where the rule gave a score (an item with no in-scale mass gives NaN)."""
    keep = ~np.isnan(scores) & ~np.isnan(human)
    if keep.sum() < 2 or np.ptp(scores[keep]) == 0:
        raise UnfittableError("a score mapping needs at least two distinct scores to fit")
    return scores[keep], human[keep]


class _Interpolating(ScoreMapping):
    """A score mapping that interpolates between fitted knots ``x_`` → ``y_``."""

    state_keys: ClassVar[tuple[str, ...]] = ("x_", "y_")
    x_: np.ndarray
    y_: np.ndarray

    def map_scores(self, scores: np.ndarray) -> np.ndarray:
        return np.interp(scores, self.x_, self.y_)


class IsotonicMapping(_Interpolating):
    """Monotone map from a rule's item score to the human score (scikit-learn).

    >>> import numpy as np
    >>> from numbias import IsotonicMapping, ScoreDistribution, ScoreScale
    >>> dists = [ScoreDistribution(ScoreScale(0, 9), np.eye(10)[k]) for k in (5, 6, 7, 8)]
    >>> cal = IsotonicMapping(rule="greedy").fit(dists, np.array([1.0, 3.0, 2.0, 9.0]))
    >>> cal.predict(dists), cal.map_scores(np.array([4.0, 7.5, 9.0]))
    (array([1. , 2.5, 2.5, 9. ]), array([1.  , 5.75, 9.  ]))
    """

    def fit_scores(self, scores: np.ndarray, human: np.ndarray) -> Self:
        model = IsotonicRegression(out_of_bounds="clip").fit(*_usable(scores, human))
        self.x_, self.y_ = model.X_thresholds_, model.y_thresholds_
        return self


class QuantileMapping(_Interpolating):
    """Map a score's quantile among the fitting items to the same quantile of the
    human scores: the judge's score histogram takes the humans' shape.

    >>> import numpy as np
    >>> from numbias import QuantileMapping, ScoreDistribution, ScoreScale
    >>> dists = [ScoreDistribution(ScoreScale(0, 9), np.eye(10)[k]) for k in (6, 7, 7, 8, 9)]
    >>> QuantileMapping(rule="greedy").fit(dists, np.array([0.0, 2.0, 4.0, 6.0, 8.0])).predict(dists)
    array([0., 3., 3., 6., 8.])
    """

    def fit_scores(self, scores: np.ndarray, human: np.ndarray) -> Self:
        scores, human = _usable(scores, human)
        q = np.linspace(0, 1, 101)
        # ties among judge quantiles: average the human quantiles they cover
        x, idx = np.unique(np.quantile(scores, q), return_inverse=True)
        self.x_ = x
        self.y_ = np.bincount(idx, weights=np.quantile(human, q)) / np.bincount(idx)
        return self
