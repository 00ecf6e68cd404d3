"""Mitigations of numerical bias and the automatic choice of setting.

Every calibrator follows one contract, scikit-learn's (:class:`Calibrator`): parameters
only in ``__init__``, among them ``rule`` (the scoring rule a setting sets), data only in
``fit(distributions, human, content_free=...)``, which returns self, learned state in
trailing-underscore attributes, made JSON-able by ``get_state`` and restored by
``set_state``; ``predict`` gives item scores on the judge's scale. Three kinds:

* distribution calibrators reshape each item's score distribution (``transform``)
  before the rule reads it: temperature scaling (exact, from the distributions the
  backend read at a grid of temperatures; a setting's fixed or fitted temperature), the
  paper's Beta-target distribution calibration, and the label-free batch and
  content-free (contextual) calibrations;
* score mappings map a rule's item scores monotonically onto the human scale:
  isotonic regression and quantile mapping;
* distribution regressions predict the human score from each item's whole
  distribution (its log-probabilities, at every scale of a range ensemble): ridge and
  ordinal (proportional-odds) regression.

Mitigations are found by name in an open registry (:func:`register_mitigation`, and
installed packages' entry points). A :class:`Setting` is scale × temperature ×
mitigation × rule. :func:`select` picks one on development items only (cross-fitted, so
label-using mitigations are judged on items they were not fitted on); the caller proves
it on held-out items.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Self, get_args

import numpy as np
from scipy import optimize, stats
from scipy.special import expit, logit
from sklearn.base import BaseEstimator
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold
from threadpoolctl import threadpool_limits

from numbias.core.distribution import ScoreDistribution, stack
from numbias.core.metrics import (
    Rule,
    group_codes,
    group_pearson,
    histogram,
    item_scores,
    kurtosis,
    normalised_entropy,
    pearson_defined,
    to_scale,
)
from numbias.core.sampling import PROTOCOL_TEMPERATURE
from numbias.core.scale import ScoreScale
from numbias.util.errors import NumbiasError, first_line
from numbias.util.plugins import Registry, import_ref, origin
from numbias.util.state import Stateful

_EPS = 1e-12


class UnfittableError(NumbiasError):
    """The fitting items cannot support this calibrator (e.g. constant human scores);
    selection gives such a setting no score instead of stopping."""


def _in_scale(dists: Sequence[ScoreDistribution]) -> np.ndarray:
    """Items × scores, each row renormalised over the in-scale scores."""
    probs, _ = stack(list(dists))
    mass = probs.sum(axis=1, keepdims=True)
    return np.divide(probs, mass, out=np.full_like(probs, 1.0 / probs.shape[1]), where=mass > 0)


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
    return [ScoreDistribution(d.scale, p, d.below, d.above, d.other, d.n_samples, d.temperature)
            for d, p in zip(dists, probs)]


def _unit(human: np.ndarray, scale: ScoreScale) -> np.ndarray:
    return (np.asarray(human, dtype=float) - scale.lo) / (scale.hi - scale.lo)


def _usable(scores: np.ndarray, human: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs where the rule gave a score (an item with no in-scale mass gives NaN)."""
    keep = ~np.isnan(scores) & ~np.isnan(human)
    if keep.sum() < 2 or np.ptp(scores[keep]) == 0:
        raise UnfittableError("a score mapping needs at least two distinct scores to fit")
    return scores[keep], human[keep]


def _rule_scores(distributions: Sequence[ScoreDistribution], rule: Rule) -> np.ndarray:
    probs, rest = stack(list(distributions))
    return item_scores(probs, rest, distributions[0].scale, rule)


class Calibrator(BaseEstimator, Stateful):
    """The one contract of every mitigation (scikit-learn's, so ``get_params``,
    ``set_params`` and ``sklearn.base.clone`` work): parameters only in ``__init__``,
    stored under their own names and including ``rule``; data only in :meth:`fit`;
    learned state in the trailing-underscore attributes named by ``state_keys``
    (numbers or arrays of them), which is what a saved judge keeps: the one state
    protocol (:class:`numbias.util.state.Stateful`), non-finite state a fitting failure.

    >>> import numpy as np
    >>> from numbias import IsotonicMapping, ScoreDistribution, ScoreScale
    >>> dists = [ScoreDistribution(ScoreScale(1, 3), np.eye(3)[k]) for k in (0, 1, 2, 2)]
    >>> cal = IsotonicMapping(rule="greedy").fit(dists, np.array([1.0, 1.5, 2.5, 3.5]))
    >>> cal.get_params()
    {'rule': 'greedy'}
    >>> state = cal.get_state()
    >>> state
    {'x_': [1.0, 2.0, 3.0], 'y_': [1.0, 1.5, 3.0]}
    >>> IsotonicMapping(rule="greedy").set_state(state).predict(dists)
    array([1. , 1.5, 3. , 3. ])
    """

    unfit_error: ClassVar[type[NumbiasError]] = UnfittableError
    uses_rule: ClassVar[bool] = True
    """False for calibrators that read the whole distribution, never a rule's score:
    selection then fits one of them per scale and temperature, not one per rule."""

    def __init__(self, rule: Rule = "expected") -> None:
        self.rule = rule

    def fit(self, distributions: Sequence[ScoreDistribution], human: np.ndarray | None = None, *,
            content_free: Sequence[ScoreDistribution] | None = None) -> Self:
        """``human``: on the judge's scale, aligned with ``distributions``;
        ``content_free``: the judge's distributions for content-free items."""
        raise NotImplementedError

    def predict(self, distributions: Sequence[ScoreDistribution]) -> np.ndarray:
        """Item scores on the judge's scale."""
        raise NotImplementedError

class NoMitigation(Calibrator):
    """The rule's scores as they are: the paper's default and every unmitigated setting."""

    def fit(self, distributions: Sequence[ScoreDistribution], human: np.ndarray | None = None, *,
            content_free: Sequence[ScoreDistribution] | None = None) -> Self:
        return self

    def predict(self, distributions: Sequence[ScoreDistribution]) -> np.ndarray:
        return _rule_scores(distributions, self.rule)


class DistributionCalibrator(Calibrator):
    """A calibrator that reshapes the distributions; the rule reads what it gives.

    >>> from numbias import DistributionCalibrator, ScoreDistribution, ScoreScale
    >>> class Soften(DistributionCalibrator):  # halfway to the uniform distribution
    ...     def fit(self, distributions, human=None, *, content_free=None):
    ...         return self
    ...     def transform(self, distributions):
    ...         return [ScoreDistribution(d.scale, (d.probs + d.probs.sum() / d.scale.size) / 2)
    ...                 for d in distributions]
    >>> sure = ScoreDistribution(ScoreScale(1, 3), [1.0, 0.0, 0.0])
    >>> Soften().fit([sure]).predict([sure]), Soften(rule="greedy").predict([sure])
    (array([1.5]), array([1.]))
    """

    def transform(self, distributions: Sequence[ScoreDistribution]) -> list[ScoreDistribution]:
        raise NotImplementedError

    def predict(self, distributions: Sequence[ScoreDistribution]) -> np.ndarray:
        return _rule_scores(self.transform(distributions), self.rule)


class ScoreMapping(Calibrator):
    """A calibrator that maps the rule's item scores onto the human scale: subclasses
    give ``fit_scores`` and ``map_scores``, which also serve scores from elsewhere.

    >>> import numpy as np
    >>> from numbias import ScoreDistribution, ScoreMapping, ScoreScale
    >>> class Shift(ScoreMapping):  # moves every score by the mean error on the fitting items
    ...     state_keys = ("shift_",)
    ...     def fit_scores(self, scores, human):
    ...         self.shift_ = float(np.mean(human - scores))
    ...         return self
    ...     def map_scores(self, scores):
    ...         return scores + self.shift_
    >>> dists = [ScoreDistribution(ScoreScale(1, 5), np.eye(5)[k]) for k in (2, 3, 4)]
    >>> cal = Shift(rule="greedy").fit(dists, np.array([2.0, 3.0, 4.0]))
    >>> cal.shift_, cal.predict(dists), cal.map_scores(np.array([4.5]))
    (-1.0, array([2., 3., 4.]), array([3.5]))
    """

    def fit(self, distributions: Sequence[ScoreDistribution], human: np.ndarray | None = None, *,
            content_free: Sequence[ScoreDistribution] | None = None) -> Self:
        if human is None:
            raise NumbiasError(f"{type(self).__name__} needs human scores")
        return self.fit_scores(_rule_scores(distributions, self.rule), np.asarray(human, dtype=float))

    def predict(self, distributions: Sequence[ScoreDistribution]) -> np.ndarray:
        return self.map_scores(_rule_scores(distributions, self.rule))

    def fit_scores(self, scores: np.ndarray, human: np.ndarray) -> Self:
        raise NotImplementedError

    def map_scores(self, scores: np.ndarray) -> np.ndarray:
        raise NotImplementedError


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


class _Interpolating(ScoreMapping):
    """A score mapping that interpolates between fitted knots ``x_`` → ``y_``."""

    state_keys: ClassVar[tuple[str, ...]] = ("x_", "y_")
    x_: np.ndarray
    y_: np.ndarray

    def map_scores(self, scores: np.ndarray) -> np.ndarray:
        return np.interp(scores, self.x_, self.y_)


class TemperatureScaling(DistributionCalibrator):
    """Rescale every step's log-probabilities by 1/T (exact for multi-token scores:
    the backend walked the trie at each grid temperature). T is fitted on the grid by
    the likelihood of the human score (mapped onto the scale and rounded), or by
    Pearson r of ``rule``'s scores.

    >>> import numpy as np
    >>> from numbias import ScoreDistribution, ScoreScale, TemperatureScaling
    >>> scale = ScoreScale(1, 3)
    >>> def sure_of(score):  # a judge sure of ``score``, read at T = 1, 0.5 and 2
    ...     def at(t):
    ...         p = np.exp(4 * np.eye(3)[score - 1] / t)
    ...         return ScoreDistribution(scale, p / p.sum(), temperature=t)
    ...     return ScoreDistribution(scale, at(1.0).probs, tempered={0.5: at(0.5), 2.0: at(2.0)})
    >>> dists = [sure_of(1), sure_of(2), sure_of(3)]
    >>> cal = TemperatureScaling().fit(dists, np.array([1.0, 2.0, 1.0]))  # it is wrong on the last item
    >>> cal.temperature_, {t: round(v, 2) for t, v in cal.scores_.items()}
    (2.0, {0.5: -2.67, 1.0: -1.37, 2.0: -0.91})
    >>> cal.transform(dists)[0].probs.round(2), cal.predict(dists).round(2)
    (array([0.79, 0.11, 0.11]), array([1.32, 2.  , 2.68]))
    """

    state_keys: ClassVar[tuple[str, ...]] = ("temperature_",)

    def __init__(self, *, criterion: str = "likelihood", rule: Rule = "expected") -> None:
        self.criterion = criterion
        self.rule = rule

    def fit(self, distributions: Sequence[ScoreDistribution], human: np.ndarray | None = None, *,
            content_free: Sequence[ScoreDistribution] | None = None) -> Self:
        if self.criterion not in ("likelihood", "pearson"):
            raise NumbiasError(f"temperature criterion must be 'likelihood' or 'pearson', got {self.criterion!r}")
        if human is None:
            raise NumbiasError("fitting a temperature needs human scores")
        human = np.asarray(human, dtype=float)
        grid = sorted(set.intersection(*({1.0, *d.tempered} for d in distributions)))
        scale = distributions[0].scale
        target = np.clip(np.rint(human - scale.lo), 0, scale.size - 1).astype(int)
        self.scores_: dict[float, float] = {}
        for t in grid:
            at = [d.at(t) for d in distributions]
            if self.criterion == "likelihood":
                p = _in_scale(at)[np.arange(len(at)), target]
                self.scores_[t] = float(np.mean(np.log(p + _EPS)))
            else:
                self.scores_[t] = pearson_defined(_rule_scores(at, self.rule), human)
        defined = {t: v for t, v in self.scores_.items() if not np.isnan(v)}
        if not defined:
            raise UnfittableError("no temperature on the grid gives a defined fit")
        self.temperature_ = max(defined, key=defined.__getitem__)
        return self

    def transform(self, distributions: Sequence[ScoreDistribution]) -> list[ScoreDistribution]:
        return [d.at(self.temperature_) for d in distributions]


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

    def fit(self, distributions: Sequence[ScoreDistribution], human: np.ndarray | None = None, *,
            content_free: Sequence[ScoreDistribution] | None = None) -> Self:
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
        self.marginal_ = _in_scale(distributions).mean(axis=0)
        self.weights_ = self.target_ / np.maximum(self.marginal_, _EPS)
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
    """

    def __init__(self, max_iter: int = 100, tol: float = 1e-4, max_weight: float = 1e6,
                 rule: Rule = "expected") -> None:
        self.max_iter = max_iter
        self.tol = tol
        self.max_weight = max_weight
        self.rule = rule

    def fit(self, distributions: Sequence[ScoreDistribution], human: np.ndarray | None = None, *,
            content_free: Sequence[ScoreDistribution] | None = None) -> Self:
        p = _in_scale(distributions)
        self.marginal_ = p.mean(axis=0)
        support = self.marginal_ > _EPS
        weights = support.astype(float)
        self.converged_ = False
        for self.n_iter_ in range(1, self.max_iter + 1):
            q = p * weights
            q /= np.maximum(q.sum(axis=1, keepdims=True), _EPS)
            m = q.mean(axis=0)
            if np.abs(m[support] - 1 / support.sum()).max() < self.tol:
                self.converged_ = True
                break
            weights[support] = np.clip(weights[support] / np.maximum(m[support], _EPS), 1 / self.max_weight,
                                       self.max_weight)
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
        self.max_weight = max_weight
        self.rule = rule

    def fit(self, distributions: Sequence[ScoreDistribution], human: np.ndarray | None = None, *,
            content_free: Sequence[ScoreDistribution] | None = None) -> Self:
        if not content_free:
            raise NumbiasError("contextual calibration needs the judge's distributions for content-free items")
        self.prior_ = _in_scale(content_free).mean(axis=0)
        weights = 1.0 / np.maximum(self.prior_, 1 / self.max_weight)
        self.weights_ = weights / weights.max()
        return self


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


def _part_units(distributions: Sequence[ScoreDistribution], rule: Rule) -> np.ndarray:
    """Items × parts: each part of a range ensemble scored by ``rule``, on the unit interval."""
    found = [d.meta.get("parts") for d in distributions]
    parts = [p for p in found if p is not None]
    if not parts or len(parts) < len(found):
        raise UnfittableError("weights over scales need a range ensemble (a setting whose scale joins scales)")
    columns = [[p[k] for p in parts] for k in range(len(parts[0]))]
    return np.column_stack([col[0].scale.to_unit(_rule_scores(col, rule)) for col in columns])


class EnsembleWeights(Calibrator):
    """A range ensemble weighted by how well each scale tracks the human scores on the
    fitting items: non-negative least squares of the (centred) human score on the
    parts' unit-scaled rule scores, the weights then summing to one; the prediction
    is the weighted mean on the ensemble's grid."""

    state_keys = ("weights_",)

    def fit(self, distributions: Sequence[ScoreDistribution], human: np.ndarray | None = None, *,
            content_free: Sequence[ScoreDistribution] | None = None) -> Self:
        units = _part_units(distributions, self.rule)
        if human is None:
            raise UnfittableError("weights over scales are fitted on human scores")
        keep = ~np.isnan(units).any(axis=1) & ~np.isnan(human)
        if keep.sum() < 3:
            raise UnfittableError("weights over scales need at least three scored items")
        x, y = units[keep] - units[keep].mean(axis=0), human[keep] - human[keep].mean()
        weights = optimize.nnls(x, y)[0]
        if weights.sum() <= 0:
            raise UnfittableError("no scale of the range ensemble tracks the human scores")
        self.weights_ = weights / weights.sum()
        return self

    def predict(self, distributions: Sequence[ScoreDistribution]) -> np.ndarray:
        return distributions[0].scale.from_unit(_part_units(distributions, self.rule) @ self.weights_)


RIDGE_ALPHAS = np.logspace(-3, 3, 13)
"""Ridge strengths distribution regression (ridge) chooses among by leave-one-out CV."""
ORDINAL_ALPHAS = np.logspace(-3, 0, 4)
"""L2 strengths (per fitting item) ordinal regression chooses among by k-fold CV."""


def _scale_features(distributions: Sequence[ScoreDistribution]) -> np.ndarray:
    """Items × (scores + 3): log-probability of every in-scale score (renormalised over
    the in-scale mass) and log of the below, above and other masses, floored at 1e-12."""
    _, rest = stack(list(distributions))
    return np.log(np.maximum(np.hstack([_in_scale(distributions), rest]), _EPS))


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

    def fit(self, distributions: Sequence[ScoreDistribution], human: np.ndarray | None = None, *,
            content_free: Sequence[ScoreDistribution] | None = None) -> Self:
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
    return w[n_features] + np.concatenate([[0.0], np.cumsum(np.exp(w[n_features + 1:]))])


def _level_probs(eta: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Items × levels probabilities of the cumulative-logit model P(y ≤ k) = σ(θ_k − η)."""
    cdf = expit(thresholds[None, :] - eta[:, None])
    return np.diff(cdf, axis=1, prepend=0.0, append=1.0)


def _ordinal_loss(w: np.ndarray, x: np.ndarray, codes: np.ndarray, n_levels: int,
                  alpha: float) -> tuple[float, np.ndarray]:
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
    grad = np.concatenate([x.T @ (g_up + g_low) + n * alpha * beta, [g_theta.sum()],
                           np.exp(w[p + 1:]) * np.cumsum(g_theta[::-1])[::-1][1:]])
    return float(-np.log(prob).sum() / n + 0.5 * alpha * beta @ beta), grad / n


def _fit_ordinal(x: np.ndarray, codes: np.ndarray, n_levels: int, alpha: float,
                 start: np.ndarray | None = None) -> np.ndarray:
    """The penalised maximum-likelihood parameters (β, then the cut-points' parameters),
    from ``start`` or from no slope and the levels' cumulative shares."""
    if start is None:
        share = np.cumsum(np.bincount(codes, minlength=n_levels))[:-1] / len(codes)
        theta = logit(np.clip(share, 1e-3, 1 - 1e-3))
        start = np.concatenate([np.zeros(x.shape[1]), theta[:1], np.log(np.maximum(np.diff(theta), 1e-3))])
    return optimize.minimize(_ordinal_loss, start, args=(x, codes, n_levels, alpha), jac=True,
                             method="L-BFGS-B", options={"ftol": 1e-7}).x  # a mean log-loss: 1e-7 is plenty


class OrdinalRegression(DistributionRegression):
    """Proportional-odds (cumulative-logit) regression of the human score, rounded to
    the scale's integer levels present on the fitting items, on the features; the
    prediction is the expected level. The L2 strength on the slopes is chosen among
    :data:`ORDINAL_ALPHAS` by ``folds``-fold cross-validated squared error."""

    state_keys: ClassVar[tuple[str, ...]] = ("mean_", "scale_", "coef_", "thresholds_", "levels_", "alpha_")

    def __init__(self, folds: int = 5, rule: Rule = "expected") -> None:
        self.folds = folds
        self.rule = rule

    def fit_features(self, x: np.ndarray, y: np.ndarray, scale: ScoreScale) -> Self:
        if self.folds < 2:
            raise NumbiasError(f"ordinal regression needs folds of 2 or more, got {self.folds}")
        self.levels_, codes = np.unique(np.clip(np.rint(y), scale.lo, scale.hi), return_inverse=True)
        if len(self.levels_) < 2:
            raise UnfittableError("ordinal regression needs human scores at two levels or more")
        with threadpool_limits(1, user_api="blas"):  # L-BFGS's small products: threads only cost (15x)
            self.alpha_ = self._cross_validate(x, y, codes)
            w = _fit_ordinal(x, codes, len(self.levels_), self.alpha_)
        self.coef_, self.thresholds_ = w[:x.shape[1]], _thresholds(w, x.shape[1])
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
                pred = _level_probs(x[held] @ w[:x.shape[1]], _thresholds(w, x.shape[1])) @ self.levels_
                errors[j] += np.sum((pred - y[held]) ** 2)
        return float(alphas[np.argmin(errors)])

    def predict_features(self, x: np.ndarray) -> np.ndarray:
        return _level_probs(x @ self.coef_, self.thresholds_) @ self.levels_


ENTRY_POINTS = "numbias.mitigations"
"""Installed packages add mitigations under this entry-point group: each entry point
names a :class:`MitigationSpec`, or a callable returning one or a list of them."""


@dataclass(frozen=True)
class MitigationSpec:
    """A mitigation by name: what builds its calibrator (a callable, or ``"module:attr"``
    imported on first use), the family whose best member the paper-style table reports,
    whether fitting reads human scores, and its row label in that table.

    >>> from numbias import all_mitigations
    >>> spec = all_mitigations()["isotonic"]
    >>> spec
    MitigationSpec(name='isotonic', factory=<class '...IsotonicMapping'>, family='score mapping',
    needs_labels=True, title='isotonic mapping')
    >>> spec.make()
    IsotonicMapping()
    """

    name: str
    factory: Callable[..., Calibrator] | str
    family: str
    needs_labels: bool
    title: str = ""

    def __post_init__(self) -> None:
        if not self.name or " · " in self.name or not self.family:
            raise NumbiasError(f"a mitigation needs a name without ' · ' and a family, got {self.name!r}")
        if not self.title:
            object.__setattr__(self, "title", self.name)

    def make(self) -> Calibrator:
        """A fresh calibrator with the factory's parameters."""
        factory = self.factory
        if isinstance(factory, str):
            factory = import_ref(factory, f"mitigation {self.name!r}")
        calibrator = factory()
        if not isinstance(calibrator, Calibrator) or "rule" not in calibrator.get_params():
            raise NumbiasError(f"mitigation {self.name!r}: its factory gave {type(calibrator).__name__}, "
                               "not a numbias Calibrator with a rule parameter")
        return calibrator


MITIGATION_REGISTRY: Registry[MitigationSpec] = Registry("mitigation", ENTRY_POINTS, of=MitigationSpec,
                                                         describe=lambda spec: origin(spec.factory))
"""Every known mitigation by name: built-in, registered, and (once read) installed."""


def register_mitigation(name: str, factory: Callable[..., Calibrator] | str, family: str, needs_labels: bool,
                        title: str | None = None, *, replace: bool = False) -> MitigationSpec:
    """Add a mitigation by name, for configs, selection and saved judges. ``factory``
    builds a :class:`Calibrator` with no arguments (a class, or ``"module:attr"``);
    ``title`` is its row in the paper-style table (default: the name).

    >>> from numbias import IsotonicMapping, QuantileMapping, all_mitigations, register_mitigation
    >>> from numbias.mitigations.calibrators import Setting
    >>> spec = register_mitigation("isotonic-median", lambda: IsotonicMapping(rule="median"), "score mapping", True)
    >>> all_mitigations()["isotonic-median"] is spec, spec.title, spec.make()
    (True, 'isotonic-median', IsotonicMapping(rule='median'))
    >>> Setting("0-9", "expected", 1.0, "isotonic-median").needs_labels
    True
    >>> register_mitigation("isotonic", QuantileMapping, "score mapping", True)
    Traceback (most recent call last):
    ...
    numbias.util.errors.NumbiasError: a mitigation named 'isotonic' is already registered ...
    """
    return MITIGATION_REGISTRY.register(name, MitigationSpec(name, factory, family, needs_labels, title or ""),
                                        replace=replace)


def all_mitigations() -> dict[str, MitigationSpec]:
    """Every mitigation by name: built-in, registered and installed.

    >>> from numbias import all_mitigations
    >>> found = all_mitigations()
    >>> found["none"].title, found["beta"].family, found["beta"].needs_labels, found["batch"].needs_labels
    ('original', 'distribution calibration', True, False)
    """
    return MITIGATION_REGISTRY.all()


def get_mitigation(name: str) -> MitigationSpec:
    """A mitigation by name, installed ones read only when it is not known yet."""
    return MITIGATION_REGISTRY.find(name)


BUILT_IN_MITIGATIONS = tuple(register_mitigation(*spec).name for spec in (
    ("none", NoMitigation, "original", False, "original"),
    ("beta", BetaCalibration, "distribution calibration", True, "beta calibration"),
    ("batch", BatchCalibration, "distribution calibration", False, "batch calibration"),
    ("contextual", ContextualCalibration, "distribution calibration", False, "contextual calibration"),
    ("isotonic", IsotonicMapping, "score mapping", True, "isotonic mapping"),
    ("quantile", QuantileMapping, "score mapping", True, "quantile mapping"),
    ("ridge", RidgeRegression, "distribution regression", True, "distribution regression (ridge)"),
    ("ordinal", OrdinalRegression, "distribution regression", True, "distribution regression (ordinal)"),
    ("weighted", EnsembleWeights, "range ensemble", True, "range ensemble (weights fitted on dev)"),
))
"""The built-in mitigations, in the order a study compares them."""
DEFAULT_MITIGATIONS = tuple(m for m in BUILT_IN_MITIGATIONS if m != "ordinal")
"""What ``mitigate`` compares unless told: every built-in but ordinal regression, whose
cross-validated fit costs more than all the others together (name it to add it)."""


PAPER_TEMPERATURES = (0.4, PROTOCOL_TEMPERATURE, 1.0, 1.3)
"""The temperatures the paper's temperature scaling compares."""
FIT: Literal["fit"] = "fit"
Temperature = float | Literal["fit"]
"""A setting's temperature: a fixed value read exactly, or ``"fit"`` (fitted on dev)."""


@dataclass(frozen=True)
class Setting:
    """One way to score: a scale, the temperature the distributions are read at
    (fixed, or ``"fit"``), a mitigation applied to them, and the rule that turns
    each into an item score. The paper's default is ``Setting("0-9", "protocol", 0.7)``."""

    scale: str
    rule: Rule
    temperature: Temperature = 1.0
    mitigation: str = "none"

    def __post_init__(self) -> None:
        if self.temperature != FIT:
            object.__setattr__(self, "temperature", float(self.temperature))
        get_mitigation(self.mitigation)

    @property
    def label(self) -> str:
        t = "T fitted" if self.temperature == FIT else f"T={self.temperature:g}"
        return f"{self.scale} · {self.rule} · {t} · {self.mitigation}"

    @property
    def needs_labels(self) -> bool:
        return self.temperature == FIT or get_mitigation(self.mitigation).needs_labels


@dataclass
class SettingData:
    """Everything a setting needs at one scale: the items' distributions and the
    judge's distributions for content-free items."""

    distributions: list[ScoreDistribution]
    content_free: list[ScoreDistribution]

    @property
    def scale(self) -> ScoreScale:
        return self.distributions[0].scale


_FITTED_T: OrderedDict[tuple[tuple[int, ...], bytes], tuple[list[ScoreDistribution], float]] = OrderedDict()
_FITTED_T_SIZE = 256


def _fitted_temperature(dists: list[ScoreDistribution], human: np.ndarray) -> float:
    """The likelihood-fitted temperature of these items, memoised: it depends on neither
    rule nor mitigation, and selection asks for it for every rule × mitigation on
    each fold. Keyed by the items' identities (the entry holds the items, so their ids
    stay theirs) and the labels' bytes."""
    key = (tuple(map(id, dists)), np.asarray(human, dtype=float).tobytes())
    if key in _FITTED_T:
        _FITTED_T.move_to_end(key)
        return _FITTED_T[key][1]
    temperature = TemperatureScaling().fit(dists, human).temperature_
    _FITTED_T[key] = (dists, temperature)
    if len(_FITTED_T) > _FITTED_T_SIZE:
        _FITTED_T.popitem(last=False)
    return temperature


class Fitted(Stateful):
    """A setting fitted on some items; ``predict`` scores any items at its scale:
    read at the (fitted) temperature, then the mitigation's calibrator (with the
    setting's rule) gives the scores. Its state (the one protocol, the setting being its
    parameters) nests the calibrator's parameters and state: ``Fitted(setting).set_state(saved)``."""

    state_keys: ClassVar[tuple[str, ...]] = ("temperature_", "params", "calibrator")

    def __init__(self, setting: Setting, temperature: float = float("nan"),
                 calibrator: Calibrator | None = None) -> None:
        self.setting = setting
        self.temperature_ = temperature
        self.calibrator = calibrator if calibrator is not None else get_mitigation(setting.mitigation).make()

    @classmethod
    def fit(cls, setting: Setting, data: SettingData, idx: np.ndarray, human: np.ndarray | None) -> Fitted:
        """``human`` is on the judge's scale, aligned with ``idx`` (None: label-free)."""
        if setting.needs_labels and human is None:
            raise NumbiasError(f"setting {setting.label} needs human scores to fit")
        dists = [data.distributions[i] for i in idx]
        if setting.temperature == FIT and human is not None:  # FIT needs labels: human is given (checked above)
            temperature = _fitted_temperature(dists, human)
        else:
            temperature = float(setting.temperature)
        free = [d.at(temperature) for d in data.content_free]
        calibrator = get_mitigation(setting.mitigation).make().set_params(rule=setting.rule)
        calibrator.fit([d.at(temperature) for d in dists], human, content_free=free)
        return cls(setting, temperature, calibrator)

    def predict(self, distributions: Sequence[ScoreDistribution]) -> np.ndarray:
        if not distributions:
            return np.zeros(0)
        return self.calibrator.predict([d.at(self.temperature_) for d in distributions])

    def get_state(self) -> dict[str, Any]:
        """The temperature, the calibrator's parameters and its learned state, as JSON."""
        params = self.calibrator.get_params(deep=False)
        try:
            json.dumps(params, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise NumbiasError(f"setting {self.setting.label}: calibrator parameters cannot be saved as JSON: "
                               f"{first_line(exc)}") from None
        return {"temperature_": self.temperature_, "params": params, "calibrator": self.calibrator.get_state()}

    def set_state(self, state: dict[str, Any]) -> Self:
        """Take what :meth:`get_state` gave (as saved in JSON): the registered mitigation's
        calibrator, its saved parameters (none saved, as in format /1: the factory's) and
        its learned state."""
        if "temperature_" not in state:
            raise NumbiasError(f"saved state for {self.setting.label} has no temperature_")
        calibrator = get_mitigation(self.setting.mitigation).make()
        params = {**state.get("params", {}), "rule": self.setting.rule}
        if unknown := sorted(set(params) - set(calibrator.get_params(deep=False))):
            raise NumbiasError(f"saved state for {self.setting.label} has unknown calibrator parameter(s) {unknown}")
        self.calibrator = calibrator.set_params(**params).set_state(state.get("calibrator", {}))
        self.temperature_ = float(state["temperature_"])
        return self


Criterion = Literal["pearson", "group_pearson", "entropy", "kurtosis"]
CRITERIA: tuple[Criterion, ...] = get_args(Criterion)
LABEL_CRITERIA: tuple[Criterion, ...] = ("pearson", "group_pearson")
"""Selection criteria, and those that read the development items' human scores
(``group_pearson`` also their groups: the mean within-group Pearson r)."""
_CRITERION_NAMES = {"pearson": "Pearson r", "group_pearson": "group-level Pearson"}


def _check_criterion(criterion: Criterion, human: np.ndarray | None, groups: np.ndarray | None) -> None:
    """Fail in one line, before any fitting, when a criterion lacks what it reads."""
    if criterion not in CRITERIA:
        raise NumbiasError(f"unknown selection criterion {criterion!r} (known: {', '.join(CRITERIA)})")
    if criterion == "group_pearson" and groups is None:
        raise NumbiasError("selection by group-level Pearson needs a group column")
    if criterion in LABEL_CRITERIA and human is None:
        raise NumbiasError(f"selection by {_CRITERION_NAMES[criterion]} needs human scores on the development items")


def label_free_score(scores: np.ndarray, scale: ScoreScale, criterion: Criterion) -> float:
    """Higher is better: normalised entropy of the score histogram, or minus the gap
    between the scores' kurtosis and that of a uniform spread (−1.2)."""
    scores = scores[~np.isnan(scores)]
    if criterion == "entropy":
        return normalised_entropy(histogram(scores, scale))
    if criterion == "kurtosis":
        k = kurtosis(scores)
        return -abs(k + 1.2) if not np.isnan(k) else float("nan")
    raise NumbiasError(f"unknown label-free criterion {criterion!r} (entropy, kurtosis)")


def cross_folds(n: int, folds: int, seed: int, groups: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(fit, held-out) item indices: scikit-learn's seeded, shuffled ``KFold`` over the
    items, or over the groups so that no group is split between fitting and scoring.
    The one fold function: cross-fitting a setting, the nested estimate of the
    selection, the cross-fitted comparison of the choice with the default, ``mitigate``'s
    k folds and ordinal regression's choice of strength share it.

    >>> sorted(held.tolist() for _, held in cross_folds(6, 3, 0, np.array(list("abcabc"))))
    [[0, 3], [1, 4], [2, 5]]
    """
    units = np.arange(n) if groups is None else group_codes(groups, n)
    k = int(units.max()) + 1 if n else 0
    if k < 2:
        raise UnfittableError(f"cross-fitting needs at least two {'items' if groups is None else 'groups'}")
    splitter = KFold(min(folds, k), shuffle=True, random_state=seed)
    out = []
    for _, part in splitter.split(np.arange(k)):
        held = np.isin(units, part)
        out.append((np.flatnonzero(~held), np.flatnonzero(held)))
    return out


def _accuracy(pred: np.ndarray, human: np.ndarray, groups: np.ndarray | None) -> float:
    """Item-level Pearson r, or with groups the mean within-group r."""
    if groups is None:
        return pearson_defined(pred, human)
    return group_pearson(pred, human, groups, n_boot=0).pearson.value


def dev_predictions(
    setting: Setting, data: SettingData, human: np.ndarray | None, human_range: tuple[float, float],
    *, folds: int = 5, seed: int = 0, groups: np.ndarray | None = None,
) -> np.ndarray:
    """The development items' scores as :func:`dev_score` judges them: a label-using
    setting cross-fitted (each fold predicted by a fit on the other folds; ``groups``
    kept whole), so the scores are held-out ones; any other setting fitted on all of
    them (``human`` None: every setting, and a label-using one fails)."""
    n = len(data.distributions)
    if human is None or not setting.needs_labels:
        return Fitted.fit(setting, data, np.arange(n), None).predict(data.distributions)
    on_scale = to_scale(human, human_range, data.scale)
    pred = np.full(n, np.nan)
    for train, part in cross_folds(n, folds, seed, groups):
        fitted = Fitted.fit(setting, data, train, on_scale[train])
        pred[part] = fitted.predict([data.distributions[i] for i in part])
    return pred


def dev_score(
    setting: Setting, data: SettingData, human: np.ndarray | None, human_range: tuple[float, float],
    *, criterion: Criterion = "pearson", folds: int = 5, seed: int = 0, groups: np.ndarray | None = None,
) -> float:
    """How good ``setting`` looks on the development items alone (NaN when it cannot
    be fitted there). With labels (criterion ``pearson`` or ``group_pearson``) a
    label-using setting is cross-fitted: each fold is scored by a fit on the other
    folds, so it is not flattered by scoring the items it was fitted on; for
    ``group_pearson`` the folds keep each group (``groups``, per dev item) whole."""
    _check_criterion(criterion, human, groups)
    groups = groups if criterion == "group_pearson" else None
    try:
        if criterion not in LABEL_CRITERIA or human is None:  # a label criterion has human (checked above)
            return label_free_score(dev_predictions(setting, data, None, human_range), data.scale, criterion)
        pred = dev_predictions(setting, data, human, human_range, folds=folds, seed=seed, groups=groups)
        return _accuracy(pred, human, groups)
    except UnfittableError:
        return float("nan")


def _uses_rule(setting: Setting) -> bool:
    factory = get_mitigation(setting.mitigation).factory
    return not isinstance(factory, type) or getattr(factory, "uses_rule", True)


def select(
    candidates: Sequence[Setting],
    data: dict[str, SettingData],
    human: np.ndarray | None,
    human_range: tuple[float, float],
    *,
    criterion: Criterion = "pearson",
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> tuple[Setting, dict[Setting, float]]:
    """The best candidate by its development score, and every candidate's score.

    Only development items come in (``groups``: their groups, for ``group_pearson``);
    with a label-free criterion (``entropy``, ``kurtosis``) no labels are used and
    label-using settings are skipped."""
    _check_criterion(criterion, human, groups)
    if criterion not in LABEL_CRITERIA:
        candidates = [c for c in candidates if not c.needs_labels]
        human = None
    scores, seen = {}, {}
    for c in candidates:  # a calibrator that ignores the rule scores the same at every rule
        key = c if _uses_rule(c) else (c.scale, c.temperature, c.mitigation)
        if key not in seen:
            seen[key] = dev_score(c, data[c.scale], human, human_range, criterion=criterion, seed=seed, groups=groups)
        scores[c] = seen[key]
    ranked = [c for c in candidates if not np.isnan(scores[c])]
    if not ranked:
        raise NumbiasError("no candidate setting has a defined development score")
    return max(ranked, key=lambda c: scores[c]), scores
