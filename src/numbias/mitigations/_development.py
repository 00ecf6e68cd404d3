"""A setting judged on the development items alone (cross-fitted where it reads
labels, so it is not flattered by the items it was fitted on), and the best of
several (:func:`select`): the choice the caller then proves on held-out items."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

import numpy as np

from numbias.core.metrics import group_pearson, histogram, kurtosis, normalised_entropy, pearson_defined, to_scale
from numbias.core.scale import ScoreScale
from numbias.mitigations._base import UnfittableError, cross_folds
from numbias.mitigations._registry import get_mitigation
from numbias.mitigations._setting import Fitted, Setting, SettingData
from numbias.util.errors import NumbiasError

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


def _accuracy(pred: np.ndarray, human: np.ndarray, groups: np.ndarray | None) -> float:
    """Item-level Pearson r, or with groups the mean within-group r."""
    if groups is None:
        return pearson_defined(pred, human)
    return group_pearson(pred, human, groups, n_boot=0).pearson.value


def dev_predictions(
    setting: Setting,
    data: SettingData,
    human: np.ndarray | None,
    human_range: tuple[float, float],
    *,
    folds: int = 5,
    seed: int = 0,
    groups: np.ndarray | None = None,
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
    setting: Setting,
    data: SettingData,
    human: np.ndarray | None,
    human_range: tuple[float, float],
    *,
    criterion: Criterion = "pearson",
    folds: int = 5,
    seed: int = 0,
    groups: np.ndarray | None = None,
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
