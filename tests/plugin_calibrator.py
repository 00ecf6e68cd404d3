"""A mitigation as a user's package would provide it, outside numbias: a least-squares
line from a rule's item score to the human score (family "linear map"), reached by name
(``plugin_calibrator:LinearMap``) or through the entry point ``numbias.mitigations``."""

from __future__ import annotations

from typing import Self

import numpy as np

from numbias.mitigations import MitigationSpec, ScoreMapping, UnfittableError


class LinearMap(ScoreMapping):
    """human ≈ slope · score + intercept, fitted by least squares on the fitting items."""

    state_keys = ("coef_",)

    def __init__(self, ridge: float = 0.0, rule: str = "expected") -> None:
        self.ridge = ridge
        self.rule = rule

    def fit_scores(self, scores: np.ndarray, human: np.ndarray) -> Self:
        keep = ~np.isnan(scores) & ~np.isnan(human)
        if keep.sum() < 2 or np.ptp(scores[keep]) == 0:
            raise UnfittableError("a linear map needs two distinct scores")
        x = np.column_stack([scores[keep], np.ones(keep.sum())])
        self.coef_ = np.linalg.solve(x.T @ x + self.ridge * np.diag([1.0, 0.0]), x.T @ human[keep])
        return self

    def map_scores(self, scores: np.ndarray) -> np.ndarray:
        return self.coef_[0] * scores + self.coef_[1]


SPEC = MitigationSpec("linear", "plugin_calibrator:LinearMap", "linear map", True, "linear map")
