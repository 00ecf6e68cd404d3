"""The contrast family: an expert judge's distribution divided, label by label, by an
amateur's that shares its bias (another model, or the base a stage was trained from),
so what both say for any item cancels and what the expert knows of the item stays.
λ is fixed, fitted on development labels, or chosen without labels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Self, get_args

import numpy as np

from numbias.core.distribution import (
    AMATEUR,
    ScoreDistribution,
    check_lambda,
    contrast_rows,
    mixture,
    mixture_rows,
    stack,
)
from numbias.core.metrics import Rule, item_scores, pearson_defined
from numbias.core.scale import ScoreScale
from numbias.mitigations._base import DistributionCalibrator, UnfittableError
from numbias.util.errors import NumbiasError

Choice = Literal["fixed", "labels", "spread"]
CHOICES: tuple[Choice, ...] = get_args(Choice)
"""How λ is set: given, fitted on development labels (Pearson r), or label-free (the
λ whose item scores spread most on the fitting items)."""
DEFAULT_LAMBDA = 0.5
"""The fixed λ when none is given: halfway between the expert alone and the full ratio."""
LAMBDAS = tuple(round(0.1 * k, 1) for k in range(11))
"""The λ the fitted and label-free variants choose among when none are given: 0, 0.1, …, 1."""
CONTRAST = "contrast"
"""The ``meta`` key a study's paired items carry its contrast settings under
(``{"lam": λ, "lambdas": [...]}``): what a variant built with ``lam`` or ``lambdas``
None reads."""


def _pair(d: ScoreDistribution) -> ScoreDistribution:
    """An item's amateur distribution, else one line saying where it comes from."""
    if (amateur := d.meta.get(AMATEUR)) is None:
        raise NumbiasError(
            "a contrast needs the amateur judge's distribution of every item at the same scale "
            "(mitigate pairs them when given contrast: {amateur: JUDGE})"
        )
    if amateur.scale != d.scale:
        raise NumbiasError(f"a contrast needs both judges on one scale, got {d.scale} and {amateur.scale}")
    return amateur


def _columns(distributions: Sequence[ScoreDistribution]) -> list[list[ScoreDistribution]]:
    """The items as one column per scale read: the items themselves, or a range
    ensemble's parts (every item an ensemble of the same scales)."""
    if all("parts" in d.meta for d in distributions) and distributions:
        return [list(col) for col in zip(*(d.meta["parts"] for d in distributions))]
    if any("parts" in d.meta for d in distributions):
        raise NumbiasError("a contrast cannot mix range ensembles with single scales")
    return [list(distributions)]


@dataclass(frozen=True)
class _Stacked:
    """Items stacked once for every λ: for each scale read (one, or a range ensemble's
    parts), the scale, the expert's in-scale probabilities and masses and the amateur's
    probabilities; ``grid``: the ensemble's."""

    columns: list[tuple[ScoreScale, np.ndarray, np.ndarray, np.ndarray]]
    grid: ScoreScale | None

    @classmethod
    def of(cls, distributions: Sequence[ScoreDistribution]) -> _Stacked:
        if not distributions:
            raise UnfittableError("a contrast has no items to read")
        columns = []
        for column in _columns(distributions):
            probs, rest = stack(column)
            columns.append((column[0].scale, probs, rest, stack([_pair(d) for d in column])[0]))
        return cls(columns, distributions[0].scale if "parts" in distributions[0].meta else None)

    def read(self, lam: float) -> list[tuple[ScoreScale, np.ndarray, np.ndarray]]:
        """Each scale's items contrasted at ``lam``: its probabilities and masses."""
        return [(scale, contrast_rows(probs, amateur, lam), rest) for scale, probs, rest, amateur in self.columns]

    def scores(self, lam: float, rule: Rule) -> np.ndarray:
        """Each item's score by ``rule`` on its contrasted distribution (a range
        ensemble's parts mixed on its grid as :func:`numbias.core.distribution.mixture` mixes them)."""
        read = self.read(lam)
        if self.grid is None:
            return item_scores(read[0][1], read[0][2], read[0][0], rule)
        return item_scores(*mixture_rows(read, self.grid), self.grid, rule)


def contrasted(distributions: Sequence[ScoreDistribution], lam: float) -> list[ScoreDistribution]:
    """Each item's expert distribution contrasted with its amateur's at ``lam`` (a
    range ensemble's parts each contrasted, then mixed on its grid)."""
    if not distributions:
        return []
    stacked = _Stacked.of(distributions)
    parts = [[ScoreDistribution(scale, p, *r) for p, r in zip(probs, rest)] for scale, probs, rest in stacked.read(lam)]
    if stacked.grid is None:
        return parts[0]
    return [mixture(item, stacked.grid) for item in zip(*parts)]


def _check_lambdas(lambdas: Any) -> None:
    if lambdas is None:
        return
    if isinstance(lambdas, (str, bytes)) or not isinstance(lambdas, Sequence) or not lambdas:
        raise NumbiasError(f"a contrast needs a non-empty list of λ to choose among, got {lambdas!r}")
    for lam in lambdas:
        check_lambda(lam)


def _spread(scores: np.ndarray) -> float:
    """The standard deviation of the defined scores (NaN with fewer than two)."""
    defined = scores[np.isfinite(scores)]
    return float(np.std(defined)) if len(defined) > 1 else float("nan")


class Contrast(DistributionCalibrator):
    """Scores read from ``log p_expert − λ·log p_amateur`` over the scale's labels
    (:func:`numbias.core.distribution.contrast`), the items' amateur distributions
    carried in their ``meta`` (:func:`numbias.core.distribution.paired`). ``choose``:
    ``fixed`` uses ``lam``; ``labels`` the λ of ``lambdas`` whose rule scores have the
    highest Pearson r with the human scores; ``spread`` (label-free: it never reads
    them) the λ whose rule scores have the largest standard deviation. ``lam`` or
    ``lambdas`` None: the study's (the items' ``meta["contrast"]``), else
    :data:`DEFAULT_LAMBDA` and :data:`LAMBDAS`. The λ used is the state ``lam_``.

    >>> from numbias import ScoreScale
    >>> from numbias.core.distribution import paired
    >>> scale = ScoreScale(1, 3)
    >>> amateur = ScoreDistribution(scale, [0.1, 0.2, 0.7])  # leans high whatever the item
    >>> items = [paired(ScoreDistribution(scale, p), amateur) for p in ([0.2, 0.3, 0.5], [0.05, 0.25, 0.7])]
    >>> Contrast(lam=0.0).fit(items).predict(items).round(2), Contrast(lam=1.0).fit(items).predict(items).round(2)
    (array([2.3 , 2.65]), array([1.69, 2.18]))
    """

    state_keys: ClassVar[tuple[str, ...]] = ("lam_",)

    def __init__(
        self,
        rule: Rule = "expected",
        choose: Choice = "fixed",
        lam: float | None = None,
        lambdas: Sequence[float] | None = None,
    ) -> None:
        super().__init__(rule)
        if choose not in CHOICES:
            raise NumbiasError(f"a contrast chooses λ by one of {', '.join(CHOICES)}, got {choose!r}")
        if lam is not None:
            check_lambda(lam)
        _check_lambdas(lambdas)
        self.choose, self.lam, self.lambdas = choose, lam, lambdas

    def _given(self, distributions: Sequence[ScoreDistribution]) -> tuple[float, tuple[float, ...]]:
        """The fixed λ and the λ to choose among: the parameters, else the study's, else the defaults."""
        first = distributions[0].meta if distributions else {}
        study = (first["parts"][0].meta if "parts" in first else first).get(CONTRAST, {})
        lam = self.lam if self.lam is not None else study.get("lam", DEFAULT_LAMBDA)
        lambdas = self.lambdas if self.lambdas is not None else study.get("lambdas", LAMBDAS)
        return check_lambda(lam), tuple(check_lambda(v) for v in lambdas)

    def fit(
        self,
        distributions: Sequence[ScoreDistribution],
        human: np.ndarray | None = None,
        *,
        content_free: Sequence[ScoreDistribution] | None = None,
    ) -> Self:
        lam, lambdas = self._given(distributions)
        stacked = _Stacked.of(distributions)  # every item has its amateur, on the same scale
        if self.choose == "fixed":
            self.lam_ = lam
            return self
        if self.choose == "labels":
            if human is None:
                raise UnfittableError("λ fitted on labels needs human scores")
            labels = np.asarray(human, dtype=float)
            found = [pearson_defined(stacked.scores(v, self.rule), labels) for v in lambdas]
        else:
            found = [_spread(stacked.scores(v, self.rule)) for v in lambdas]
        if np.isnan(found).all():
            raise UnfittableError(
                f"no λ gives a defined {'Pearson r' if self.choose == 'labels' else 'spread'} on the fitting items"
            )
        self.lam_ = lambdas[int(np.nanargmax(found))]
        return self

    def transform(self, distributions: Sequence[ScoreDistribution]) -> list[ScoreDistribution]:
        return contrasted(distributions, self.lam_)

    def predict(self, distributions: Sequence[ScoreDistribution]) -> np.ndarray:
        return _Stacked.of(distributions).scores(self.lam_, self.rule) if distributions else np.zeros(0)
