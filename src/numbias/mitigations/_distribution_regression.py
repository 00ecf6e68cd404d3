"""The distribution regression family: the human score predicted from each item's
whole distribution (its log-probabilities, at every scale of a range ensemble) rather
than from one rule's score, by ridge or by ordinal (proportional-odds) regression."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Self

import numpy as np
from scipy import optimize
from scipy.special import expit, logit
from sklearn.linear_model import RidgeCV
from threadpoolctl import threadpool_limits

from numbias.core.distribution import ScoreDistribution, stack
from numbias.core.metrics import Rule
from numbias.core.scale import ScoreScale
from numbias.mitigations._base import (
    EPS,
    Calibrator,
    UnfittableError,
    check_number,
    check_rule,
    cross_folds,
    in_scale,
)
from numbias.util.errors import NumbiasError

RIDGE_ALPHAS = np.logspace(-3, 3, 13)
"""Ridge strengths distribution regression (ridge) chooses among by leave-one-out CV."""
ORDINAL_ALPHAS = np.logspace(-3, 0, 4)
"""L2 strengths (per fitting item) ordinal regression chooses among by k-fold CV."""


def _scale_features(distributions: Sequence[ScoreDistribution]) -> np.ndarray:
    """Items × (scores + 3): log-probability of every in-scale score (renormalised over
    the in-scale mass) and log of the below, above and other masses, floored at 1e-12."""
    _, rest = stack(list(distributions))
    return np.log(np.maximum(np.hstack([in_scale(distributions), rest]), EPS))


def _features(distributions: Sequence[ScoreDistribution]) -> np.ndarray:
    """Items × features of distribution regression: one scale's log-probabilities, or
    for a range ensemble's mixtures (``meta["parts"]``) every part's, side by side, so
    the same regression reads all the scales at once."""
    found = [d.meta.get("parts") for d in distributions]
    if not any(found):
        return _scale_features(distributions)
    parts = [p for p in found if p]
    if len(parts) < len(found) or len({len(p) for p in parts}) > 1:
        raise NumbiasError("distribution regression needs every item read at the same scales")
    return np.hstack([_scale_features([p[k] for p in parts]) for k in range(len(parts[0]))])


class DistributionRegression(Calibrator):
    """Predicts the human score from each item's whole distribution rather than from
    one rule's score (so ``rule`` plays no part): the features (:func:`_features`) are
    standardised on the fitting items (``mean_``, ``scale_``); subclasses give
    ``fit_features`` and ``predict_features``. Predictions are clipped to the scale."""

    mean_: np.ndarray
    scale_: np.ndarray
    uses_rule: ClassVar[bool] = False

    def fit(
        self,
        distributions: Sequence[ScoreDistribution],
        human: np.ndarray | None = None,
        *,
        content_free: Sequence[ScoreDistribution] | None = None,
    ) -> Self:
        if human is None:
            raise NumbiasError(f"{type(self).__name__} needs human scores")
        x, y = _features(distributions), np.asarray(human, dtype=float)
        keep = ~np.isnan(y)
        if keep.sum() < 3 or np.ptp(y[keep]) == 0:
            raise UnfittableError("distribution regression needs at least three human scores that vary")
        self.mean_ = x[keep].mean(axis=0)
        spread = x[keep].std(axis=0)
        self.scale_ = np.where(spread > 1e-9, spread, 1.0)  # a constant feature stays at 0
        return self.fit_features(self._standardise(x[keep]), y[keep], distributions[0].scale)

    def predict(self, distributions: Sequence[ScoreDistribution]) -> np.ndarray:
        scale = distributions[0].scale
        return np.clip(self.predict_features(self._standardise(_features(distributions))), scale.lo, scale.hi)

    def _standardise(self, x: np.ndarray) -> np.ndarray:
        if x.shape[1] != len(self.mean_):
            raise NumbiasError(f"{type(self).__name__} was fitted on {len(self.mean_)} features, got {x.shape[1]}")
        return (x - self.mean_) / self.scale_

    def fit_features(self, x: np.ndarray, y: np.ndarray, scale: ScoreScale) -> Self:
        raise NotImplementedError

    def predict_features(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class RidgeRegression(DistributionRegression):
    """Ridge regression of the human score on the features, its strength chosen among
    :data:`RIDGE_ALPHAS` by scikit-learn's efficient leave-one-out cross-validation."""

    state_keys: ClassVar[tuple[str, ...]] = ("mean_", "scale_", "coef_", "intercept_", "alpha_")

    def fit_features(self, x: np.ndarray, y: np.ndarray, scale: ScoreScale) -> Self:
        model = RidgeCV(alphas=RIDGE_ALPHAS).fit(x, y)
        self.coef_, self.intercept_, self.alpha_ = model.coef_, float(model.intercept_), float(model.alpha_)
        return self

    def predict_features(self, x: np.ndarray) -> np.ndarray:
        return x @ self.coef_ + self.intercept_


def _thresholds(w: np.ndarray, n_features: int) -> np.ndarray:
    """Increasing cut-points from unconstrained parameters: the first, then log-gaps."""
    return w[n_features] + np.concatenate([[0.0], np.cumsum(np.exp(w[n_features + 1 :]))])


def _level_probs(eta: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Items × levels probabilities of the cumulative-logit model P(y ≤ k) = σ(θ_k − η)."""
    cdf = expit(thresholds[None, :] - eta[:, None])
    return np.diff(cdf, axis=1, prepend=0.0, append=1.0)


def _ordinal_loss(
    w: np.ndarray, x: np.ndarray, codes: np.ndarray, n_levels: int, alpha: float
) -> tuple[float, np.ndarray]:
    """Mean negative log-likelihood plus ``alpha``/2 ‖β‖², and its gradient (for L-BFGS)."""
    n, p = x.shape
    beta, theta = w[:p], _thresholds(w, p)
    eta = x @ beta
    upper = np.append(theta, np.inf)[codes] - eta
    lower = np.insert(theta, 0, -np.inf)[codes] - eta
    # P(level) = σ(upper) − σ(lower), from the side that keeps its precision
    prob = np.maximum(np.where(lower > 0, expit(-lower) - expit(-upper), expit(upper) - expit(lower)), 1e-300)
    g_up = expit(upper) * expit(-upper) / prob
    g_low = -expit(lower) * expit(-lower) / prob
    g_theta = -(np.bincount(codes, g_up, n_levels)[:-1] + np.bincount(codes, g_low, n_levels)[1:])
    grad = np.concatenate(
        [
            x.T @ (g_up + g_low) + n * alpha * beta,
            [g_theta.sum()],
            np.exp(w[p + 1 :]) * np.cumsum(g_theta[::-1])[::-1][1:],
        ]
    )
    return float(-np.log(prob).sum() / n + 0.5 * alpha * beta @ beta), grad / n


def _fit_ordinal(
    x: np.ndarray, codes: np.ndarray, n_levels: int, alpha: float, start: np.ndarray | None = None
) -> np.ndarray:
    """The penalised maximum-likelihood parameters (β, then the cut-points' parameters),
    from ``start`` or from no slope and the levels' cumulative shares."""
    if start is None:
        share = np.cumsum(np.bincount(codes, minlength=n_levels))[:-1] / len(codes)
        theta = logit(np.clip(share, 1e-3, 1 - 1e-3))
        start = np.concatenate([np.zeros(x.shape[1]), theta[:1], np.log(np.maximum(np.diff(theta), 1e-3))])
    return optimize.minimize(
        _ordinal_loss, start, args=(x, codes, n_levels, alpha), jac=True, method="L-BFGS-B", options={"ftol": 1e-7}
    ).x  # a mean log-loss: 1e-7 is plenty


class OrdinalRegression(DistributionRegression):
    """Proportional-odds (cumulative-logit) regression of the human score, rounded to
    the scale's integer levels present on the fitting items, on the features; the
    prediction is the expected level. The L2 strength on the slopes is chosen among
    :data:`ORDINAL_ALPHAS` by ``folds``-fold cross-validated squared error."""

    state_keys: ClassVar[tuple[str, ...]] = ("mean_", "scale_", "coef_", "thresholds_", "levels_", "alpha_")

    def __init__(self, folds: int = 5, rule: Rule = "expected") -> None:
        check_number("ordinal regression", "folds", folds, 2, integer=True)
        check_rule(rule)
        self.folds = folds
        self.rule = rule

    def fit_features(self, x: np.ndarray, y: np.ndarray, scale: ScoreScale) -> Self:
        self.levels_, codes = np.unique(np.clip(np.rint(y), scale.lo, scale.hi), return_inverse=True)
        if len(self.levels_) < 2:
            raise UnfittableError("ordinal regression needs human scores at two levels or more")
        with threadpool_limits(1, user_api="blas"):  # L-BFGS's small products: threads only cost (15x)
            self.alpha_ = self._cross_validate(x, y, codes)
            w = _fit_ordinal(x, codes, len(self.levels_), self.alpha_)
        self.coef_, self.thresholds_ = w[: x.shape[1]], _thresholds(w, x.shape[1])
        return self

    def _cross_validate(self, x: np.ndarray, y: np.ndarray, codes: np.ndarray) -> float:
        """The strength with the least held-out squared error (strongest first, each fit
        warm-starting the next; ties go to the stronger)."""
        alphas = ORDINAL_ALPHAS[::-1]
        errors = np.zeros(len(alphas))
        for train, held in cross_folds(len(y), self.folds, 0):
            w = None
            for j, alpha in enumerate(alphas):
                w = _fit_ordinal(x[train], codes[train], len(self.levels_), alpha, w)
                pred = _level_probs(x[held] @ w[: x.shape[1]], _thresholds(w, x.shape[1])) @ self.levels_
                errors[j] += np.sum((pred - y[held]) ** 2)
        return float(alphas[np.argmin(errors)])

    def predict_features(self, x: np.ndarray) -> np.ndarray:
        return _level_probs(x @ self.coef_, self.thresholds_) @ self.levels_
