"""The range ensemble family: a judge read at several scales at once, each scale
weighted by how well it tracks the human scores, so the scales that carry signal
outweigh those that pile up."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Self

import numpy as np
from scipy import optimize

from numbias.core.distribution import ScoreDistribution
from numbias.core.metrics import Rule
from numbias.mitigations._base import Calibrator, UnfittableError, rule_scores


def _part_units(distributions: Sequence[ScoreDistribution], rule: Rule) -> np.ndarray:
    """Items × parts: each part of a range ensemble scored by ``rule``, on the unit interval."""
    found = [d.meta.get("parts") for d in distributions]
    parts = [p for p in found if p is not None]
    if not parts or len(parts) < len(found):
        raise UnfittableError("weights over scales need a range ensemble (a setting whose scale joins scales)")
    columns = [[p[k] for p in parts] for k in range(len(parts[0]))]
    return np.column_stack([col[0].scale.to_unit(rule_scores(col, rule)) for col in columns])


class EnsembleWeights(Calibrator):
    """A range ensemble weighted by how well each scale tracks the human scores on the
    fitting items: non-negative least squares of the (centred) human score on the
    parts' unit-scaled rule scores, the weights then summing to one; the prediction
    is the weighted mean on the ensemble's grid."""

    state_keys: ClassVar[tuple[str, ...]] = ("weights_",)

    def fit(
        self,
        distributions: Sequence[ScoreDistribution],
        human: np.ndarray | None = None,
        *,
        content_free: Sequence[ScoreDistribution] | None = None,
    ) -> Self:
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
