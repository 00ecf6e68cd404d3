"""The distribution calibration family: every item's in-scale probabilities reweighted
by one vector of weights, towards a Beta fitted to the human scores (the paper's), or
label-free, against the batch's own marginal or the judge's prior for empty items."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Self

import numpy as np
from scipy import stats

from numbias.core.distribution import ScoreDistribution, stack
from numbias.core.metrics import Rule, item_scores
from numbias.core.scale import ScoreScale
from numbias.mitigations._base import EPS, DistributionCalibrator, UnfittableError, check_number, check_rule, in_scale
from numbias.util.errors import NumbiasError


def _reweighted(probs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Each row (an item's in-scale probabilities) times ``weights``, rescaled to keep
    the row's in-scale mass; a row the weights zero out is left as it was."""
    new = probs * weights
    total = new.sum(axis=1, keepdims=True)
    scale = np.divide(probs.sum(axis=1, keepdims=True), total, out=np.zeros_like(total), where=total > 0)
    return np.where(total > 0, new * scale, probs)


def _reweight(dists: Sequence[ScoreDistribution], weights: np.ndarray) -> list[ScoreDistribution]:
    """Multiply each item's in-scale probabilities by ``weights``, keeping the item's
    in-scale mass (out-of-scale and non-numeric masses are untouched)."""
    probs = _reweighted(stack(list(dists))[0], weights)
    return [
        ScoreDistribution(d.scale, p, d.below, d.above, d.other, d.n_samples, d.temperature)
        for d, p in zip(dists, probs)
    ]


class _Reweighting(DistributionCalibrator):
    """A calibrator that multiplies every item's in-scale probabilities by ``weights_``."""

    state_keys: ClassVar[tuple[str, ...]] = ("weights_",)
    weights_: np.ndarray

    def transform(self, distributions: Sequence[ScoreDistribution]) -> list[ScoreDistribution]:
        return _reweight(distributions, self.weights_)

    def predict(self, distributions: Sequence[ScoreDistribution]) -> np.ndarray:
        """The rule's scores of :meth:`transform`, computed on the stacked items (no
        per-item distributions built: selection predicts thousands of times)."""
        probs, rest = stack(list(distributions))
        return item_scores(_reweighted(probs, self.weights_), rest, distributions[0].scale, self.rule)


def _unit(human: np.ndarray, scale: ScoreScale) -> np.ndarray:
    return (np.asarray(human, dtype=float) - scale.lo) / (scale.hi - scale.lo)


def score_bins(scale: ScoreScale) -> np.ndarray:
    """Edges on [0, 1] of the bins that round to each score (as histograms round)."""
    centres = (scale.values - scale.lo) / (scale.hi - scale.lo)
    half = 0.5 / (scale.hi - scale.lo)
    return np.clip(np.append(centres - half, centres[-1] + half), 0, 1)


class BetaCalibration(_Reweighting):
    """The paper's distribution calibration (after generative calibration): the
    judge's marginal score distribution p(y) over the fitting items is reweighted
    towards q(y), a Beta distribution fitted (scipy, location 0, scale 1) to the human
    scores mapped onto [0, 1], integrated over the bins that round to each score.

    >>> import numpy as np
    >>> from numbias import BetaCalibration, ScoreDistribution, ScoreScale
    >>> scale = ScoreScale(1, 5)
    >>> pulled = [ScoreDistribution(scale, (np.eye(5)[k] + np.eye(5)[4]) / 2) for k in range(5)]  # half on 5
    >>> cal = BetaCalibration().fit(pulled, np.array([1.0, 2.0, 3.0, 4.0, 5.0]))
    >>> round(cal.a_, 2), round(cal.b_, 2)
    (0.32, 0.32)
    >>> cal.marginal_.round(2), cal.weights_.round(2)
    (array([0.1, 0.1, 0.1, 0.1, 0.6]), array([1.  , 0.5 , 0.4 , 0.5 , 0.17]))
    >>> cal.predict(pulled).round(2)
    array([1.57, 2.75, 3.59, 4.25, 5.  ])
    """

    state_keys: ClassVar[tuple[str, ...]] = ("a_", "b_", "weights_")

    def fit(
        self,
        distributions: Sequence[ScoreDistribution],
        human: np.ndarray | None = None,
        *,
        content_free: Sequence[ScoreDistribution] | None = None,
    ) -> Self:
        if human is None:
            raise NumbiasError("Beta calibration needs human scores")
        scale = distributions[0].scale
        u = np.clip(_unit(human, scale), 1e-3, 1 - 1e-3)
        u = u[~np.isnan(u)]
        if len(u) < 3 or np.ptp(u) == 0:
            raise UnfittableError("a Beta target needs human scores that vary")
        try:
            self.a_, self.b_, _, _ = (float(x) for x in stats.beta.fit(u, floc=0, fscale=1))
        except Exception as exc:  # scipy's FitSolverError and friends
            raise UnfittableError(f"the Beta fit failed: {exc}") from None
        self.target_ = np.diff(stats.beta.cdf(score_bins(scale), self.a_, self.b_))
        self.marginal_ = in_scale(distributions).mean(axis=0)
        self.weights_ = self.target_ / np.maximum(self.marginal_, EPS)
        self.weights_ /= self.weights_.max()
        return self


class BatchCalibration(_Reweighting):
    """Label-free: divide each item's distribution by the batch's mean distribution,
    so no score is favoured a priori. One division (``max_iter=1``) is the classic
    batch calibration; it only shrinks a strong pull towards one score, so by default
    the division is repeated until the calibrated batch's marginal is flat over the
    scores the judge gives at all (a score with no mass anywhere keeps none).

    >>> import numpy as np
    >>> from numbias import BatchCalibration, ScoreDistribution, ScoreScale
    >>> scale = ScoreScale(1, 3)
    >>> pulled = [ScoreDistribution(scale, p) for p in ([0.6, 0.2, 0.2], [0.4, 0.4, 0.2], [0.4, 0.2, 0.4])]
    >>> cal = BatchCalibration().fit(pulled)
    >>> cal.marginal_.round(2), cal.weights_.round(2), cal.converged_
    (array([0.47, 0.27, 0.27]), array([0.56, 1.  , 1.  ]), True)
    >>> np.mean([d.probs for d in cal.transform(pulled)], axis=0).round(2)
    array([0.33, 0.33, 0.33])
    >>> cal.predict(pulled).round(2)
    array([1.82, 1.97, 2.21])
    >>> BatchCalibration(max_iter=1).fit(pulled).weights_.round(2)  # the classic single division
    array([0.57, 1.  , 1.  ])
    >>> BatchCalibration(max_iter=0)
    Traceback (most recent call last):
    ...
    numbias.util.errors.NumbiasError: batch calibration needs max_iter of 1 or more, got 0
    """

    def __init__(
        self, max_iter: int = 100, tol: float = 1e-4, max_weight: float = 1e6, rule: Rule = "expected"
    ) -> None:
        check_number("batch calibration", "max_iter", max_iter, 1, integer=True)
        check_number("batch calibration", "tol", tol, 0)
        check_number("batch calibration", "max_weight", max_weight, 1)
        check_rule(rule)
        self.max_iter = max_iter
        self.tol = tol
        self.max_weight = max_weight
        self.rule = rule

    def fit(
        self,
        distributions: Sequence[ScoreDistribution],
        human: np.ndarray | None = None,
        *,
        content_free: Sequence[ScoreDistribution] | None = None,
    ) -> Self:
        p = in_scale(distributions)
        self.marginal_ = p.mean(axis=0)
        support = self.marginal_ > EPS
        weights = support.astype(float)
        self.converged_ = False
        for self.n_iter_ in range(1, self.max_iter + 1):
            q = p * weights
            q /= np.maximum(q.sum(axis=1, keepdims=True), EPS)
            m = q.mean(axis=0)
            if np.abs(m[support] - 1 / support.sum()).max() < self.tol:
                self.converged_ = True
                break
            weights[support] = np.clip(
                weights[support] / np.maximum(m[support], EPS), 1 / self.max_weight, self.max_weight
            )
            weights /= weights.max()
        self.weights_ = weights
        return self


class ContextualCalibration(_Reweighting):
    """Label-free: divide by the judge's distribution for content-free items (every
    field "N/A", and empty; given to ``fit``), i.e. its prior for a score before
    reading anything.

    >>> from numbias import ContextualCalibration, ScoreDistribution, ScoreScale
    >>> scale = ScoreScale(1, 3)
    >>> prior = ScoreDistribution(scale, [0.25, 0.25, 0.5])  # the judge's answer to an empty item
    >>> item = ScoreDistribution(scale, [0.25, 0.25, 0.5])  # an item it reads no differently
    >>> cal = ContextualCalibration().fit([item], content_free=[prior])
    >>> cal.weights_, cal.transform([item])[0].probs.round(2), cal.predict([item])
    (array([1. , 1. , 0.5]), array([0.33, 0.33, 0.33]), array([2.]))
    """

    def __init__(self, max_weight: float = 1e6, rule: Rule = "expected") -> None:
        check_number("contextual calibration", "max_weight", max_weight, 1)
        check_rule(rule)
        self.max_weight = max_weight
        self.rule = rule

    def fit(
        self,
        distributions: Sequence[ScoreDistribution],
        human: np.ndarray | None = None,
        *,
        content_free: Sequence[ScoreDistribution] | None = None,
    ) -> Self:
        if not content_free:
            raise NumbiasError("contextual calibration needs the judge's distributions for content-free items")
        self.prior_ = in_scale(content_free).mean(axis=0)
        weights = 1.0 / np.maximum(self.prior_, 1 / self.max_weight)
        self.weights_ = weights / weights.max()
        return self
