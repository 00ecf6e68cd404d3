"""The one contract every mitigation follows (:class:`Calibrator`, scikit-learn's), its
two common kinds, the unmitigated rule (:class:`NoMitigation`), and what the families
share (array helpers, parameter checks, the one fold function, the one dev/test split),
so that each family's module holds only its own arithmetic."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Self

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.model_selection import KFold, ShuffleSplit

from numbias.core.distribution import ScoreDistribution, stack
from numbias.core.metrics import KNOWN_RULES, Rule, group_codes, item_scores
from numbias.core.metrics import check_rule as checked_rule
from numbias.util.errors import NumbiasError
from numbias.util.state import Stateful

EPS = 1e-12
"""The floor under a probability a calibrator divides by or takes the log of."""


class UnfittableError(NumbiasError):
    """The fitting items cannot support this calibrator (e.g. constant human scores);
    selection gives such a setting no score instead of stopping."""


def check_rule(rule: object) -> None:
    """A rule :func:`numbias.core.metrics.item_scores` reads (a risk-averse ``quantile:Q``
    or ``mean-sd:L`` too), else the one line it would give."""
    if not isinstance(rule, str):
        raise NumbiasError(f"unknown rule {rule!r} (known: {KNOWN_RULES})")
    checked_rule(rule)


def check_number(owner: str, name: str, value: Any, low: float, *, integer: bool = False) -> None:
    """A parameter that is a number (an integer where ``integer``) of ``low`` or more, else one
    line naming it; a boolean or NaN is no number here."""
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, kinds) or not value >= low:
        raise NumbiasError(f"{owner} needs {name} of {low:g} or more, got {value!r}")


def in_scale(dists: Sequence[ScoreDistribution]) -> np.ndarray:
    """Items × scores, each row renormalised over the in-scale scores."""
    probs, _ = stack(list(dists))
    mass = probs.sum(axis=1, keepdims=True)
    return np.divide(probs, mass, out=np.full_like(probs, 1.0 / probs.shape[1]), where=mass > 0)


def rule_scores(distributions: Sequence[ScoreDistribution], rule: Rule) -> np.ndarray:
    """Each item's score by ``rule``."""
    probs, rest = stack(list(distributions))
    return item_scores(probs, rest, distributions[0].scale, rule)


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


def _pcg64(seed: int) -> np.random.RandomState:
    """numpy's default generator (PCG64) behind the legacy interface scikit-learn's splitters
    take: its permutations are ``np.random.default_rng(seed).permutation``'s."""
    return np.random.RandomState(np.random.PCG64(seed))


def holdout(n: int, size: int, seed: int, groups: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(dev, test) item indices: scikit-learn's seeded ``ShuffleSplit`` over the items, or
    over the groups so that no group is on both sides, dev the first shuffled ones until
    they hold ``size`` items. The shuffle is ``np.random.default_rng(seed)``'s permutation,
    the draw that chose the committed results' dev items. ``mitigate``'s dev/test split;
    :func:`cross_folds` gives its k folds.

    >>> [part.tolist() for part in holdout(6, 3, 0, np.array(list("aabbcc")))]
    [[0, 1, 4, 5], [2, 3]]
    """
    units = np.arange(n) if groups is None else group_codes(groups, n)
    k = int(units.max()) + 1 if n else 0
    sizes = np.bincount(units[units >= 0], minlength=k)[_pcg64(seed).permutation(k)]
    taken = int(np.searchsorted(np.cumsum(sizes), size)) + 1
    if size >= n or taken >= k:
        raise NumbiasError(f"dev split of {size} items leaves no test items (the task has {n})")
    rest, dev = next(ShuffleSplit(1, test_size=taken, random_state=_pcg64(seed)).split(np.arange(k)))
    return np.flatnonzero(np.isin(units, dev)), np.flatnonzero(np.isin(units, rest))


class Calibrator(BaseEstimator, Stateful):
    """The one contract of every mitigation (scikit-learn's, so ``get_params``,
    ``set_params`` and ``sklearn.base.clone`` work): parameters only in ``__init__``,
    stored under their own names and including ``rule``, and checked there (a value
    given to ``set_params`` is checked by the same ``__init__``); data only in :meth:`fit`;
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
    >>> cal.set_params(rule="mode")
    Traceback (most recent call last):
    ...
    numbias.util.errors.NumbiasError: unknown rule 'mode' (known: greedy, expected, median, protocol, quantile:Q, ...
    """

    unfit_error: ClassVar[type[NumbiasError]] = UnfittableError
    uses_rule: ClassVar[bool] = True
    """False for calibrators that read the whole distribution, never a rule's score:
    selection then fits one of them per scale and temperature, not one per rule."""

    def __init__(self, rule: Rule = "expected") -> None:
        check_rule(rule)
        self.rule = rule

    def set_params(self, **params: Any) -> Self:
        """scikit-learn's, after ``__init__`` has checked the new values: a calibrator
        never holds a parameter its constructor would refuse."""
        type(self)(**{**self.get_params(deep=False), **params})
        return super().set_params(**params)

    def fit(
        self,
        distributions: Sequence[ScoreDistribution],
        human: np.ndarray | None = None,
        *,
        content_free: Sequence[ScoreDistribution] | None = None,
    ) -> Self:
        """``human``: on the judge's scale, aligned with ``distributions``;
        ``content_free``: the judge's distributions for content-free items."""
        raise NotImplementedError

    def predict(self, distributions: Sequence[ScoreDistribution]) -> np.ndarray:
        """Item scores on the judge's scale."""
        raise NotImplementedError


class NoMitigation(Calibrator):
    """The rule's scores as they are: the paper's default and every unmitigated setting."""

    def fit(
        self,
        distributions: Sequence[ScoreDistribution],
        human: np.ndarray | None = None,
        *,
        content_free: Sequence[ScoreDistribution] | None = None,
    ) -> Self:
        return self

    def predict(self, distributions: Sequence[ScoreDistribution]) -> np.ndarray:
        return rule_scores(distributions, self.rule)


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
        return rule_scores(self.transform(distributions), self.rule)


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

    def fit(
        self,
        distributions: Sequence[ScoreDistribution],
        human: np.ndarray | None = None,
        *,
        content_free: Sequence[ScoreDistribution] | None = None,
    ) -> Self:
        if human is None:
            raise NumbiasError(f"{type(self).__name__} needs human scores")
        return self.fit_scores(rule_scores(distributions, self.rule), np.asarray(human, dtype=float))

    def predict(self, distributions: Sequence[ScoreDistribution]) -> np.ndarray:
        return self.map_scores(rule_scores(distributions, self.rule))

    def fit_scores(self, scores: np.ndarray, human: np.ndarray) -> Self:
        raise NotImplementedError

    def map_scores(self, scores: np.ndarray) -> np.ndarray:
        raise NotImplementedError
