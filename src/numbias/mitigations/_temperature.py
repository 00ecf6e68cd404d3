"""Temperature scaling: the judge read at another temperature, exactly (the backend
walked the score trie at each temperature of a grid), so a setting's temperature can
be fixed or fitted on the development items like any calibrator."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Self

import numpy as np

from numbias.core.distribution import ScoreDistribution
from numbias.core.metrics import Rule, pearson_defined
from numbias.mitigations._base import EPS, DistributionCalibrator, UnfittableError, check_rule, in_scale, rule_scores
from numbias.util.errors import NumbiasError

TEMPERATURE_CRITERIA = ("likelihood", "pearson")
"""What a temperature is fitted by: the human score's likelihood, or Pearson r of the rule's scores."""


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
    >>> TemperatureScaling(criterion="vibes")
    Traceback (most recent call last):
    ...
    numbias.util.errors.NumbiasError: temperature criterion must be 'likelihood' or 'pearson', got 'vibes'
    """

    state_keys: ClassVar[tuple[str, ...]] = ("temperature_",)

    def __init__(self, *, criterion: str = "likelihood", rule: Rule = "expected") -> None:
        if criterion not in TEMPERATURE_CRITERIA:
            raise NumbiasError(f"temperature criterion must be 'likelihood' or 'pearson', got {criterion!r}")
        check_rule(rule)
        self.criterion = criterion
        self.rule = rule

    def fit(
        self,
        distributions: Sequence[ScoreDistribution],
        human: np.ndarray | None = None,
        *,
        content_free: Sequence[ScoreDistribution] | None = None,
    ) -> Self:
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
                p = in_scale(at)[np.arange(len(at)), target]
                self.scores_[t] = float(np.mean(np.log(p + EPS)))
            else:
                self.scores_[t] = pearson_defined(rule_scores(at, self.rule), human)
        defined = {t: v for t, v in self.scores_.items() if not np.isnan(v)}
        if not defined:
            raise UnfittableError("no temperature on the grid gives a defined fit")
        self.temperature_ = max(defined, key=defined.__getitem__)
        return self

    def transform(self, distributions: Sequence[ScoreDistribution]) -> list[ScoreDistribution]:
        return [d.at(self.temperature_) for d in distributions]
