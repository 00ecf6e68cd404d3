"""Mitigations of numerical bias and the automatic choice of setting.

Two kinds of calibrator, both scikit-learn style (``fit`` returns self, learned state
in trailing-underscore attributes, JSON-able through ``state()`` and restored by
:meth:`Fitted.restore`):

* distribution calibrators reshape each item's score distribution before a scoring
  rule reads it: temperature scaling (exact, from the distributions the backend read
  at a grid of temperatures; a setting's fixed or fitted temperature), the paper's
  Beta-target distribution calibration, and the label-free batch and content-free
  (contextual) calibrations;
* score mappings map a rule's item scores monotonically onto the human scale:
  isotonic regression and quantile mapping.

A :class:`Setting` is scale × temperature × mitigation × rule. :func:`select` picks one on
development items only (cross-fitted, so label-using mitigations are judged on items
they were not fitted on); the caller proves it on held-out items.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from scipy import stats
from sklearn.isotonic import IsotonicRegression

from numbias.distribution import ScoreDistribution, stack
from numbias.errors import NumbiasError
from numbias.metrics import (
    group_codes,
    _pearson_rows,
    group_pearson,
    histogram,
    item_scores,
    kurtosis,
    normalised_entropy,
    to_scale,
)
from numbias.scale import ScoreScale

_EPS = 1e-12


class UnfittableError(NumbiasError):
    """The fitting items cannot support this calibrator (e.g. constant human scores);
    selection gives such a setting no score instead of stopping."""


def _in_scale(dists: Sequence[ScoreDistribution]) -> np.ndarray:
    """Items × scores, each row renormalised over the in-scale scores."""
    probs, _ = stack(list(dists))
    mass = probs.sum(axis=1, keepdims=True)
    return np.divide(probs, mass, out=np.full_like(probs, 1.0 / probs.shape[1]), where=mass > 0)


def _reweight(dists: Sequence[ScoreDistribution], weights: np.ndarray) -> list[ScoreDistribution]:
    """Multiply each item's in-scale probabilities by ``weights``, keeping the item's
    in-scale mass (out-of-scale and non-numeric masses are untouched)."""
    out = []
    for d in dists:
        mass = d.probs.sum()
        new = d.probs * weights
        total = new.sum()
        probs = new * (mass / total) if total > 0 else d.probs
        out.append(ScoreDistribution(d.scale, probs, d.below, d.above, d.other, d.n_samples, d.temperature))
    return out


def _unit(human: np.ndarray, scale: ScoreScale) -> np.ndarray:
    return (np.asarray(human, dtype=float) - scale.lo) / (scale.hi - scale.lo)


class DistributionCalibrator(Protocol):
    name: str
    needs_labels: bool
    state_keys: tuple[str, ...]

    def fit(self, distributions: Sequence[ScoreDistribution], human: np.ndarray | None = None) -> Any: ...

    def transform(self, distributions: Sequence[ScoreDistribution]) -> list[ScoreDistribution]: ...

    def state(self) -> dict[str, Any]: ...


def _finite_state(obj: Any) -> dict[str, Any]:
    """The learned attributes as JSON-able values; non-finite state is a fitting failure."""
    out: dict[str, Any] = {}
    for key in obj.state_keys:
        value = np.asarray(getattr(obj, key), dtype=float)
        if not np.all(np.isfinite(value)):
            raise UnfittableError(f"{obj.name} learned non-finite {key}")
        out[key] = value.tolist()
    return out


def _usable(scores: np.ndarray, human: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs where the rule gave a score (an item with no in-scale mass gives NaN)."""
    keep = ~np.isnan(scores) & ~np.isnan(human)
    if keep.sum() < 2 or np.ptp(scores[keep]) == 0:
        raise UnfittableError("a score mapping needs at least two distinct scores to fit")
    return scores[keep], human[keep]


class _Reweighting:
    """A calibrator that multiplies every item's in-scale probabilities by ``weights_``."""

    name: str
    state_keys: tuple[str, ...] = ("weights_",)
    weights_: np.ndarray

    def transform(self, distributions: Sequence[ScoreDistribution]) -> list[ScoreDistribution]:
        return _reweight(distributions, self.weights_)

    def state(self) -> dict[str, Any]:
        return _finite_state(self)


class _Interpolating:
    """A score mapping that interpolates between fitted knots ``x_`` → ``y_``."""

    name: str
    needs_labels = True
    state_keys = ("x_", "y_")
    x_: np.ndarray
    y_: np.ndarray

    def predict(self, scores: np.ndarray) -> np.ndarray:
        return np.interp(scores, self.x_, self.y_)

    def state(self) -> dict[str, Any]:
        return _finite_state(self)


class TemperatureScaling:
    """Rescale every step's log-probabilities by 1/T (exact for multi-token scores:
    the backend walked the trie at each grid temperature). T is fitted on the grid by
    the likelihood of the human score (mapped onto the scale and rounded), or by
    Pearson r of ``rule``'s scores."""

    name = "temperature scaling"
    needs_labels = True
    state_keys = ("temperature_",)

    def __init__(self, *, criterion: str = "likelihood", rule: str = "expected") -> None:
        if criterion not in ("likelihood", "pearson"):
            raise NumbiasError(f"temperature criterion must be 'likelihood' or 'pearson', got {criterion!r}")
        self.criterion = criterion
        self.rule = rule

    def fit(self, distributions: Sequence[ScoreDistribution], human: np.ndarray | None = None) -> TemperatureScaling:
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
                probs, rest = stack(at)
                self.scores_[t] = _pearson(item_scores(probs, rest, scale, self.rule), human)
        defined = {t: v for t, v in self.scores_.items() if not np.isnan(v)}
        if not defined:
            raise UnfittableError("no temperature on the grid gives a defined fit")
        self.temperature_ = max(defined, key=defined.__getitem__)
        return self

    def transform(self, distributions: Sequence[ScoreDistribution]) -> list[ScoreDistribution]:
        return [d.at(self.temperature_) for d in distributions]

    def state(self) -> dict[str, Any]:
        return {"temperature_": float(self.temperature_)}


def score_bins(scale: ScoreScale) -> np.ndarray:
    """Edges on [0, 1] of the bins that round to each score (as histograms round)."""
    centres = (scale.values - scale.lo) / (scale.hi - scale.lo)
    half = 0.5 / (scale.hi - scale.lo)
    return np.clip(np.append(centres - half, centres[-1] + half), 0, 1)


class BetaCalibration(_Reweighting):
    """The paper's distribution calibration (after generative calibration): the
    judge's marginal score distribution p(y) over the fitting items is reweighted
    towards q(y), a Beta distribution fitted (scipy, location 0, scale 1) to the human
    scores mapped onto [0, 1], integrated over the bins that round to each score."""

    name = "beta calibration"
    needs_labels = True
    state_keys = ("a_", "b_", "weights_")

    def fit(self, distributions: Sequence[ScoreDistribution], human: np.ndarray | None = None) -> BetaCalibration:
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
    scores the judge gives at all (a score with no mass anywhere keeps none)."""

    name = "batch calibration"
    needs_labels = False

    def __init__(self, max_iter: int = 100, tol: float = 1e-4, max_weight: float = 1e6) -> None:
        self.max_iter = max_iter
        self.tol = tol
        self.max_weight = max_weight

    def fit(self, distributions: Sequence[ScoreDistribution], human: np.ndarray | None = None) -> BatchCalibration:
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
    field "N/A", and empty), i.e. its prior for a score before reading anything."""

    name = "contextual calibration"
    needs_labels = False

    def __init__(self, content_free: Sequence[ScoreDistribution] | None = None, max_weight: float = 1e6) -> None:
        self.content_free = content_free
        self.max_weight = max_weight

    def fit(self, distributions: Sequence[ScoreDistribution], human: np.ndarray | None = None) -> ContextualCalibration:
        if not self.content_free:
            raise NumbiasError("contextual calibration needs the judge's distributions for content-free items")
        self.prior_ = _in_scale(self.content_free).mean(axis=0)
        weights = 1.0 / np.maximum(self.prior_, 1 / self.max_weight)
        self.weights_ = weights / weights.max()
        return self


class IsotonicMapping(_Interpolating):
    """Monotone map from a rule's item score to the human score (scikit-learn)."""

    name = "isotonic mapping"

    def fit(self, scores: np.ndarray, human: np.ndarray) -> IsotonicMapping:
        model = IsotonicRegression(out_of_bounds="clip").fit(*_usable(scores, human))
        self.x_, self.y_ = model.X_thresholds_, model.y_thresholds_
        return self


class QuantileMapping(_Interpolating):
    """Map a score's quantile among the fitting items to the same quantile of the
    human scores: the judge's score histogram takes the humans' shape."""

    name = "quantile mapping"

    def fit(self, scores: np.ndarray, human: np.ndarray) -> QuantileMapping:
        scores, human = _usable(scores, human)
        q = np.linspace(0, 1, 101)
        # ties among judge quantiles: average the human quantiles they cover
        x, idx = np.unique(np.quantile(scores, q), return_inverse=True)
        self.x_ = x
        self.y_ = np.bincount(idx, weights=np.quantile(human, q)) / np.bincount(idx)
        return self


PAPER_TEMPERATURES = (0.4, 0.7, 1.0, 1.3)
FIT = "fit"
"""A setting's temperature: a fixed value read exactly, or ``"fit"`` (fitted on dev)."""
MITIGATIONS = ("none", "beta", "batch", "contextual", "isotonic", "quantile")
FAMILIES = {"none": "original", "beta": "distribution calibration", "batch": "distribution calibration",
            "contextual": "distribution calibration", "isotonic": "score mapping", "quantile": "score mapping"}
_LABEL_FREE = {"none", "batch", "contextual"}


def make_calibrator(mitigation: str, content_free: Sequence[ScoreDistribution] | None = None) -> Any:
    """A fresh calibrator (or mapping) for a mitigation name; ``None`` for ``none``."""
    factories: dict[str, Callable[[], Any]] = {
        "none": lambda: None, "beta": BetaCalibration, "batch": BatchCalibration,
        "contextual": lambda: ContextualCalibration(content_free), "isotonic": IsotonicMapping,
        "quantile": QuantileMapping}
    try:
        return factories[mitigation]()
    except KeyError:
        raise NumbiasError(f"unknown mitigation {mitigation!r} (known: {', '.join(MITIGATIONS)})") from None


@dataclass(frozen=True)
class Setting:
    """One way to score: a scale, the temperature the distributions are read at
    (fixed, or ``"fit"``), a mitigation applied to them, and the rule that turns
    each into an item score. The paper's default is ``Setting("0-9", "protocol", 0.7)``."""

    scale: str
    rule: str
    temperature: float | str = 1.0
    mitigation: str = "none"

    def __post_init__(self) -> None:
        if self.temperature != FIT:
            object.__setattr__(self, "temperature", float(self.temperature))
        make_calibrator(self.mitigation, content_free=[])

    @property
    def label(self) -> str:
        t = "T fitted" if self.temperature == FIT else f"T={self.temperature:g}"
        return f"{self.scale} · {self.rule} · {t} · {self.mitigation}"

    @property
    def needs_labels(self) -> bool:
        return self.temperature == FIT or self.mitigation not in _LABEL_FREE


@dataclass
class SettingData:
    """Everything a setting needs at one scale: the items' distributions and the
    judge's distributions for content-free items."""

    distributions: list[ScoreDistribution]
    content_free: list[ScoreDistribution]

    @property
    def scale(self) -> ScoreScale:
        return self.distributions[0].scale


class Fitted:
    """A setting fitted on some items; ``predict`` scores any items at its scale:
    read at the (fitted) temperature, calibrate, apply the rule or the mapping."""

    def __init__(self, setting: Setting, temperature: float, calibrator: Any) -> None:
        self.setting = setting
        self.temperature_ = temperature
        self.calibrator = calibrator

    @classmethod
    def fit(cls, setting: Setting, data: SettingData, idx: np.ndarray, human: np.ndarray | None) -> Fitted:
        """``human`` is on the judge's scale, aligned with ``idx`` (None: label-free)."""
        if setting.needs_labels and human is None:
            raise NumbiasError(f"setting {setting.label} needs human scores to fit")
        dists = [data.distributions[i] for i in idx]
        if setting.temperature == FIT:
            temperature = TemperatureScaling(rule=setting.rule).fit(dists, human).temperature_
        else:
            temperature = float(setting.temperature)
        dists = [d.at(temperature) for d in dists]
        free = [d.at(temperature) for d in data.content_free]
        cal = make_calibrator(setting.mitigation, free)
        if isinstance(cal, (IsotonicMapping, QuantileMapping)):
            cal.fit(_rule_scores(dists, setting.rule), human)
        elif cal is not None:
            cal.fit(dists, human)
        return cls(setting, temperature, cal)

    def predict(self, distributions: Sequence[ScoreDistribution]) -> np.ndarray:
        if not distributions:
            return np.zeros(0)
        distributions = [d.at(self.temperature_) for d in distributions]
        cal = self.calibrator
        if isinstance(cal, (IsotonicMapping, QuantileMapping)):
            return cal.predict(_rule_scores(distributions, self.setting.rule))
        if cal is not None:
            distributions = cal.transform(distributions)
        return _rule_scores(distributions, self.setting.rule)

    def state(self) -> dict[str, Any]:
        return {"temperature_": self.temperature_,
                "calibrator": self.calibrator.state() if self.calibrator is not None else {}}

    @classmethod
    def restore(cls, setting: Setting, state: dict[str, Any]) -> Fitted:
        """A fitted setting rebuilt from :meth:`state` (as saved in JSON)."""
        cal = make_calibrator(setting.mitigation, content_free=[])
        expected = set(cal.state_keys) if cal is not None else set()
        given = state.get("calibrator", {})
        if set(given) != expected or "temperature_" not in state:
            raise NumbiasError(f"saved state for {setting.label} has keys {sorted(given)}, expected {sorted(expected)}")
        for key, value in given.items():
            setattr(cal, key, np.asarray(value, dtype=float) if isinstance(value, list) else float(value))
        return cls(setting, float(state["temperature_"]), cal)


def _rule_scores(distributions: Sequence[ScoreDistribution], rule: str) -> np.ndarray:
    probs, rest = stack(list(distributions))
    return item_scores(probs, rest, distributions[0].scale, rule)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    keep = ~np.isnan(a) & ~np.isnan(b)
    return float(_pearson_rows(a[keep], b[keep])) if keep.sum() > 2 else float("nan")


CRITERIA = ("pearson", "group_pearson", "entropy", "kurtosis")
LABEL_CRITERIA = ("pearson", "group_pearson")
"""Selection criteria, and those that read the development items' human scores
(``group_pearson`` also their groups: the mean within-group Pearson r)."""
_CRITERION_NAMES = {"pearson": "Pearson r", "group_pearson": "group-level Pearson"}


def _check_criterion(criterion: str, human: np.ndarray | None, groups: np.ndarray | None) -> None:
    """Fail in one line, before any fitting, when a criterion lacks what it reads."""
    if criterion not in CRITERIA:
        raise NumbiasError(f"unknown selection criterion {criterion!r} (known: {', '.join(CRITERIA)})")
    if criterion == "group_pearson" and groups is None:
        raise NumbiasError("selection by group-level Pearson needs a group column")
    if criterion in LABEL_CRITERIA and human is None:
        raise NumbiasError(f"selection by {_CRITERION_NAMES[criterion]} needs human scores on the development items")


def label_free_score(scores: np.ndarray, scale: ScoreScale, criterion: str) -> float:
    """Higher is better: normalised entropy of the score histogram, or minus the gap
    between the scores' kurtosis and that of a uniform spread (−1.2)."""
    scores = scores[~np.isnan(scores)]
    if criterion == "entropy":
        return normalised_entropy(histogram(scores, scale))
    if criterion == "kurtosis":
        k = kurtosis(scores)
        return -abs(k + 1.2) if not np.isnan(k) else float("nan")
    raise NumbiasError(f"unknown label-free criterion {criterion!r} (entropy, kurtosis)")


def _folds(n: int, folds: int, seed: int, groups: np.ndarray | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Cross-fitting (fit, held-out) item indices from a seeded permutation of the items,
    or of the groups, so that no group is split between fitting and scoring."""
    units = np.arange(n) if groups is None else group_codes(groups, n)
    k = int(units.max()) + 1 if n else 0
    if k < 2:
        raise UnfittableError(f"cross-fitting needs at least two {'items' if groups is None else 'groups'}")
    order = np.random.default_rng(seed).permutation(k)
    for part in np.array_split(order, min(folds, k)):
        held = np.isin(units, part)
        yield np.flatnonzero(~held), np.flatnonzero(held)


def _accuracy(pred: np.ndarray, human: np.ndarray, groups: np.ndarray | None) -> float:
    """Item-level Pearson r, or with groups the mean within-group r."""
    if groups is None:
        return _pearson(pred, human)
    return group_pearson(pred, human, groups, n_boot=0).pearson.value


def dev_score(
    setting: Setting, data: SettingData, human: np.ndarray | None, human_range: tuple[float, float],
    *, criterion: str = "pearson", folds: int = 5, seed: int = 0, groups: np.ndarray | None = None,
) -> float:
    """How good ``setting`` looks on the development items alone (NaN when it cannot
    be fitted there). With labels (criterion ``pearson`` or ``group_pearson``) a
    label-using setting is cross-fitted: each fold is scored by a fit on the other
    folds, so it is not flattered by scoring the items it was fitted on; for
    ``group_pearson`` the folds keep each group (``groups``, per dev item) whole."""
    _check_criterion(criterion, human, groups)
    n = len(data.distributions)
    everything = np.arange(n)
    groups = groups if criterion == "group_pearson" else None
    try:
        if criterion not in LABEL_CRITERIA:
            return label_free_score(Fitted.fit(setting, data, everything, None).predict(data.distributions),
                                    data.scale, criterion)
        if not setting.needs_labels:
            return _accuracy(Fitted.fit(setting, data, everything, None).predict(data.distributions), human, groups)
        on_scale = to_scale(human, human_range, data.scale)
        pred = np.full(n, np.nan)
        for train, part in _folds(n, folds, seed, groups):
            fitted = Fitted.fit(setting, data, train, on_scale[train])
            pred[part] = fitted.predict([data.distributions[i] for i in part])
        return _accuracy(pred, human, groups)
    except UnfittableError:
        return float("nan")


def select(
    candidates: Sequence[Setting],
    data: dict[str, SettingData],
    human: np.ndarray | None,
    human_range: tuple[float, float],
    *,
    criterion: str = "pearson",
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
    scores = {c: dev_score(c, data[c.scale], human, human_range, criterion=criterion, seed=seed, groups=groups)
              for c in candidates}
    ranked = [c for c in candidates if not np.isnan(scores[c])]
    if not ranked:
        raise NumbiasError("no candidate setting has a defined development score")
    return max(ranked, key=lambda c: scores[c]), scores
