"""Mitigations of numerical bias and the automatic choice of setting.

Two kinds of calibrator, both scikit-learn style (``fit`` returns self, learned state
in trailing-underscore attributes, JSON-able through ``state``/``from_state``):

* distribution calibrators reshape each item's score distribution before a scoring
  rule reads it: temperature scaling (exact, from the distributions the backend read
  at a grid of temperatures), the paper's Beta-target distribution calibration, and
  the label-free batch and content-free (contextual) calibrations;
* score mappings map a rule's item scores monotonically onto the human scale:
  isotonic regression and quantile mapping.

A :class:`Setting` is scale × rule × mitigation. :func:`select` picks one on
development items only (cross-fitted, so label-using mitigations are judged on items
they were not fitted on); the caller proves it on held-out items.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from scipy import stats
from sklearn.isotonic import IsotonicRegression

from numbias.distribution import ScoreDistribution, stack
from numbias.errors import NumbiasError
from numbias.metrics import _pearson_rows, histogram, item_scores, kurtosis, normalised_entropy, to_scale
from numbias.scale import ScoreScale

_EPS = 1e-12


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

    def fit(self, distributions: Sequence[ScoreDistribution], human: np.ndarray | None = None) -> Any: ...

    def transform(self, distributions: Sequence[ScoreDistribution]) -> list[ScoreDistribution]: ...

    def state(self) -> dict[str, Any]: ...


def restore(mitigation: str, state: dict[str, Any]) -> Any:
    """A fitted calibrator rebuilt from its ``state()`` (as saved in JSON)."""
    cal = make_calibrator(mitigation, content_free=[])
    for key, value in state.items():
        setattr(cal, key, np.asarray(value, dtype=float) if isinstance(value, list) else value)
    return cal


class TemperatureScaling:
    """Rescale every step's log-probabilities by 1/T (exact for multi-token scores:
    the backend walked the trie at each grid temperature). ``temperature`` fixes T;
    otherwise T is fitted on the grid by the likelihood of the human score (mapped
    onto the scale and rounded) or by Pearson r of the rule's scores."""

    needs_labels = True

    def __init__(self, temperature: float | None = None, *, criterion: str = "likelihood", rule: str = "expected"):
        if criterion not in ("likelihood", "pearson"):
            raise NumbiasError(f"temperature criterion must be 'likelihood' or 'pearson', got {criterion!r}")
        self.temperature = temperature
        self.criterion = criterion
        self.rule = rule
        self.needs_labels = temperature is None
        self.name = f"T={temperature:g}" if temperature is not None else "temperature (fitted)"

    def fit(self, distributions: Sequence[ScoreDistribution], human: np.ndarray | None = None) -> TemperatureScaling:
        if self.temperature is not None:
            self.temperature_ = float(self.temperature)
            return self
        if human is None:
            raise NumbiasError("fitting a temperature needs human scores")
        grid = sorted(set.intersection(*({1.0, *d.tempered} for d in distributions)))
        scale = distributions[0].scale
        target = np.clip(np.rint(np.asarray(human) - scale.lo), 0, scale.size - 1).astype(int)
        best, best_t = -np.inf, 1.0
        self.scores_: dict[float, float] = {}
        for t in grid:
            at = [d.at(t) for d in distributions]
            if self.criterion == "likelihood":
                p = _in_scale(at)[np.arange(len(at)), target]
                value = float(np.mean(np.log(p + _EPS)))
            else:
                probs, rest = stack(at)
                value = float(_pearson_rows(item_scores(probs, rest, scale, self.rule), np.asarray(human)))
            self.scores_[t] = value
            if value > best:
                best, best_t = value, t
        self.temperature_ = best_t
        return self

    def transform(self, distributions: Sequence[ScoreDistribution]) -> list[ScoreDistribution]:
        return [d.at(self.temperature_) for d in distributions]

    def state(self) -> dict[str, Any]:
        return {"temperature_": self.temperature_}


class BetaCalibration:
    """The paper's distribution calibration (after generative calibration): the
    judge's marginal score distribution p(y) over the fitting items is reweighted
    towards q(y), a Beta distribution fitted (scipy, location 0, scale 1) to the human
    scores mapped onto [0, 1] and discretised into the scale's bins."""

    name = "beta calibration"
    needs_labels = True

    def fit(self, distributions: Sequence[ScoreDistribution], human: np.ndarray | None = None) -> BetaCalibration:
        if human is None:
            raise NumbiasError("Beta calibration needs human scores")
        scale = distributions[0].scale
        u = np.clip(_unit(human, scale), 1e-3, 1 - 1e-3)
        self.a_, self.b_, _, _ = (float(x) for x in stats.beta.fit(u, floc=0, fscale=1))
        edges = np.linspace(0, 1, scale.size + 1)
        self.target_ = np.diff(stats.beta.cdf(edges, self.a_, self.b_))
        self.marginal_ = _in_scale(distributions).mean(axis=0)
        self.weights_ = self.target_ / np.maximum(self.marginal_, _EPS)
        return self

    def transform(self, distributions: Sequence[ScoreDistribution]) -> list[ScoreDistribution]:
        return _reweight(distributions, self.weights_)

    def state(self) -> dict[str, Any]:
        return {"a_": self.a_, "b_": self.b_, "weights_": self.weights_.tolist()}


class BatchCalibration:
    """Label-free: divide each item's distribution by the batch's mean distribution,
    so no score is favoured a priori. One division (``max_iter=1``) is the classic
    batch calibration; it only shrinks a strong pull towards one score, so by default
    the division is repeated until the calibrated batch's marginal is flat."""

    name = "batch calibration"
    needs_labels = False

    def __init__(self, max_iter: int = 100, tol: float = 1e-4) -> None:
        self.max_iter = max_iter
        self.tol = tol

    def fit(self, distributions: Sequence[ScoreDistribution], human: np.ndarray | None = None) -> BatchCalibration:
        p = _in_scale(distributions)
        self.marginal_ = p.mean(axis=0)
        weights = np.ones(p.shape[1])
        for self.n_iter_ in range(1, self.max_iter + 1):
            q = p * weights
            q /= q.sum(axis=1, keepdims=True)
            m = q.mean(axis=0)
            if self.n_iter_ > 1 and np.abs(m - 1 / len(m)).max() < self.tol:
                break
            weights = weights / np.maximum(m, _EPS)
        self.weights_ = weights / weights.max()
        return self

    def transform(self, distributions: Sequence[ScoreDistribution]) -> list[ScoreDistribution]:
        return _reweight(distributions, self.weights_)

    def state(self) -> dict[str, Any]:
        return {"weights_": self.weights_.tolist()}


class ContextualCalibration:
    """Label-free: divide by the judge's distribution for content-free items (every
    field "N/A", and empty), i.e. its prior for a score before reading anything."""

    name = "contextual calibration"
    needs_labels = False

    def __init__(self, content_free: Sequence[ScoreDistribution] | None = None) -> None:
        self.content_free = content_free

    def fit(self, distributions: Sequence[ScoreDistribution], human: np.ndarray | None = None) -> ContextualCalibration:
        if not self.content_free:
            raise NumbiasError("contextual calibration needs the judge's distributions for content-free items")
        self.prior_ = _in_scale(self.content_free).mean(axis=0)
        self.weights_ = 1.0 / np.maximum(self.prior_, _EPS)
        return self

    def transform(self, distributions: Sequence[ScoreDistribution]) -> list[ScoreDistribution]:
        return _reweight(distributions, self.weights_)

    def state(self) -> dict[str, Any]:
        return {"weights_": self.weights_.tolist()}


class IsotonicMapping:
    """Monotone map from a rule's item score to the human score (scikit-learn)."""

    name = "isotonic mapping"
    needs_labels = True

    def fit(self, scores: np.ndarray, human: np.ndarray) -> IsotonicMapping:
        model = IsotonicRegression(out_of_bounds="clip").fit(scores, human)
        self.x_, self.y_ = model.X_thresholds_, model.y_thresholds_
        return self

    def predict(self, scores: np.ndarray) -> np.ndarray:
        return np.interp(scores, self.x_, self.y_)

    def state(self) -> dict[str, Any]:
        return {"x_": self.x_.tolist(), "y_": self.y_.tolist()}


class QuantileMapping:
    """Map a score's quantile among the fitting items to the same quantile of the
    human scores: the judge's score histogram takes the humans' shape."""

    name = "quantile mapping"
    needs_labels = True

    def fit(self, scores: np.ndarray, human: np.ndarray) -> QuantileMapping:
        q = np.linspace(0, 1, 101)
        self.x_ = np.quantile(scores, q)
        self.y_ = np.quantile(human, q)
        return self

    def predict(self, scores: np.ndarray) -> np.ndarray:
        # ties among judge quantiles: average the human quantiles they cover
        x, idx = np.unique(self.x_, return_inverse=True)
        y = np.bincount(idx, weights=self.y_) / np.bincount(idx)
        return np.interp(scores, x, y)

    def state(self) -> dict[str, Any]:
        return {"x_": self.x_.tolist(), "y_": self.y_.tolist()}


_MAPPINGS: dict[str, type[IsotonicMapping] | type[QuantileMapping]] = {
    "isotonic": IsotonicMapping,
    "quantile": QuantileMapping,
}
PAPER_TEMPERATURES = (0.4, 0.7, 1.0, 1.3)
MITIGATIONS = ("none", *(f"T={t:g}" for t in PAPER_TEMPERATURES), "temperature", "beta", "batch", "contextual",
               "isotonic", "quantile")
"""Names accepted in a :class:`Setting`; ``T=x`` is any fixed temperature on the grid."""
FAMILIES = {"none": "original", "temperature": "temperature", "beta": "distribution calibration",
            "batch": "distribution calibration", "contextual": "distribution calibration",
            "isotonic": "score mapping", "quantile": "score mapping"}


def family(mitigation: str) -> str:
    return "temperature" if mitigation.startswith("T=") else FAMILIES[mitigation]


def make_calibrator(mitigation: str, content_free: Sequence[ScoreDistribution] | None = None) -> Any:
    """A fresh calibrator (or mapping) for a mitigation name; ``None`` for ``none``."""
    if mitigation == "none":
        return None
    if mitigation.startswith("T="):
        try:
            return TemperatureScaling(float(mitigation[2:]))
        except ValueError:
            raise NumbiasError(f"bad temperature in mitigation {mitigation!r}") from None
    factories: dict[str, Callable[[], Any]] = {
        "temperature": TemperatureScaling, "beta": BetaCalibration, "batch": BatchCalibration,
        "contextual": lambda: ContextualCalibration(content_free), **_MAPPINGS}
    try:
        return factories[mitigation]()
    except KeyError:
        raise NumbiasError(f"unknown mitigation {mitigation!r} (known: {', '.join(MITIGATIONS)}, T=<x>)") from None


def needs_labels(mitigation: str) -> bool:
    cal = make_calibrator(mitigation, content_free=[])
    return bool(cal is not None and cal.needs_labels)


@dataclass(frozen=True)
class Setting:
    """One way to score: a scale, a rule reading each distribution, a mitigation."""

    scale: str
    rule: str
    mitigation: str = "none"

    @property
    def label(self) -> str:
        return f"{self.scale} · {self.rule} · {self.mitigation}"


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
    """A setting fitted on some items; ``predict`` scores any items at its scale."""

    def __init__(self, setting: Setting, calibrator: Any) -> None:
        self.setting = setting
        self.calibrator = calibrator

    @classmethod
    def fit(cls, setting: Setting, data: SettingData, idx: np.ndarray, human: np.ndarray | None) -> Fitted:
        """``human`` is on the judge's scale, aligned with ``idx``."""
        cal = make_calibrator(setting.mitigation, data.content_free)
        dists = [data.distributions[i] for i in idx]
        if isinstance(cal, (IsotonicMapping, QuantileMapping)):
            assert human is not None
            cal.fit(_rule_scores(dists, setting.rule), human)
        elif cal is not None:
            cal.fit(dists, human)
        return cls(setting, cal)

    def predict(self, distributions: Sequence[ScoreDistribution]) -> np.ndarray:
        cal = self.calibrator
        if isinstance(cal, (IsotonicMapping, QuantileMapping)):
            return cal.predict(_rule_scores(distributions, self.setting.rule))
        if cal is not None:
            distributions = cal.transform(distributions)
        return _rule_scores(distributions, self.setting.rule)


def _rule_scores(distributions: Sequence[ScoreDistribution], rule: str) -> np.ndarray:
    probs, rest = stack(list(distributions))
    return item_scores(probs, rest, distributions[0].scale, rule)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    keep = ~np.isnan(a)
    return float(_pearson_rows(a[keep], b[keep])) if keep.sum() > 2 else float("nan")


def label_free_score(scores: np.ndarray, scale: ScoreScale, criterion: str) -> float:
    """Higher is better: normalised entropy of the score histogram, or minus the gap
    between the scores' kurtosis and that of a uniform spread (−1.2)."""
    scores = scores[~np.isnan(scores)]
    if criterion == "entropy":
        return normalised_entropy(histogram(scores, scale))
    if criterion == "kurtosis":
        k = kurtosis(scores)
        return -abs(k + 1.2) if not np.isnan(k) else -np.inf
    raise NumbiasError(f"unknown selection criterion {criterion!r} (pearson, entropy, kurtosis)")


def dev_score(
    setting: Setting, data: SettingData, human: np.ndarray | None, human_range: tuple[float, float],
    *, criterion: str = "pearson", folds: int = 5, seed: int = 0,
) -> float:
    """How good ``setting`` looks on the development items alone. With labels
    (criterion ``pearson``) a label-using mitigation is cross-fitted: each fold is
    scored by a calibrator fitted on the other folds."""
    n = len(data.distributions)
    if criterion != "pearson":
        return label_free_score(Fitted.fit(setting, data, np.arange(n), None).predict(data.distributions),
                                data.scale, criterion)
    assert human is not None
    on_scale = to_scale(human, human_range, data.scale)
    if not needs_labels(setting.mitigation):
        return _pearson(Fitted.fit(setting, data, np.arange(n), None).predict(data.distributions), human)
    order = np.random.default_rng(seed).permutation(n)
    pred = np.full(n, np.nan)
    for part in np.array_split(order, folds):
        train = np.setdiff1d(order, part)
        fitted = Fitted.fit(setting, data, train, on_scale[train])
        pred[part] = fitted.predict([data.distributions[i] for i in part])
    return _pearson(pred, human)


def select(
    candidates: Sequence[Setting],
    data: dict[str, SettingData],
    human: np.ndarray | None,
    human_range: tuple[float, float],
    *,
    criterion: str = "pearson",
    seed: int = 0,
) -> tuple[Setting, dict[Setting, float]]:
    """The best candidate by its development score, and every candidate's score.

    Only development items come in; with a label-free criterion (``entropy``,
    ``kurtosis``) no labels are used and label-using mitigations are skipped."""
    if criterion != "pearson":
        candidates = [c for c in candidates if not needs_labels(c.mitigation)]
        human = None
    elif human is None:
        raise NumbiasError("selection by Pearson r needs human scores on the development items")
    scores = {c: dev_score(c, data[c.scale], human, human_range, criterion=criterion, seed=seed) for c in candidates}
    ranked = [c for c in candidates if not np.isnan(scores[c])]
    if not ranked:
        raise NumbiasError("no candidate setting has a defined development score")
    return max(ranked, key=lambda c: scores[c]), scores
