"""Distribution regression (ridge, ordinal): the human score predicted from each item's
whole distribution, at one scale or at every scale of a range ensemble."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from numbias.core.distribution import TEMPERATURES, ScoreDistribution
from numbias.core.scale import ScoreScale
from numbias.mitigations import (
    BUILT_IN_MITIGATIONS,
    Fitted,
    OrdinalRegression,
    RidgeRegression,
    Setting,
    SettingData,
    UnfittableError,
    dev_score,
    get_mitigation,
)
from numbias.mitigations._distribution_regression import _features
from numbias.util.errors import NumbiasError

SCALE = ScoreScale.parse("0-9")
SMALL = ScoreScale.parse("1-5")


def _item(logits: np.ndarray, scale: ScoreScale, other: float) -> ScoreDistribution:
    """A one-token judge's distribution (scores + one non-numeric outcome) at every grid temperature."""

    def at(t: float) -> ScoreDistribution:
        z = np.append(logits, other) / t
        p = np.exp(z - z.max())
        p /= p.sum()
        return ScoreDistribution(scale, p[:-1], 0.0, 0.0, p[-1], temperature=None if t == 1.0 else t)

    main = at(1.0)
    main.tempered.update({t: at(t) for t in TEMPERATURES if t != 1.0})
    return main


def _items(n: int, scale: ScoreScale = SCALE, seed: int = 0) -> list[ScoreDistribution]:
    rng = np.random.default_rng(seed)
    return [_item(rng.normal(0, 1, scale.size), scale, rng.normal(-1, 0.5)) for _ in range(n)]


@pytest.fixture(scope="module")
def linear() -> tuple[list[ScoreDistribution], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Items whose human score is a known linear function of their features, plus noise."""
    dists = _items(400)
    x = _features(dists)
    w = np.random.default_rng(1).normal(0, 0.3, x.shape[1])
    w[-3:-1] = 0.0  # below and above are empty: constant features
    truth = 4.5 + (x - x.mean(axis=0)) @ w
    human = truth + np.random.default_rng(2).normal(0, 0.05, len(truth))
    return dists, x, w, truth, human


def test_features_are_log_probabilities_and_masses() -> None:
    d = ScoreDistribution(SMALL, np.array([0.1, 0.2, 0.0, 0.1, 0.1]), 0.1, 0.0, 0.4)
    x = _features([d])[0]
    np.testing.assert_allclose(x[:5], np.log(np.maximum(d.probs / 0.5, 1e-12)))
    np.testing.assert_allclose(x[5:], np.log([0.1, 1e-12, 0.4]))


def test_features_of_a_mixture_are_every_part_side_by_side() -> None:
    big, small = _items(30), _items(30, SMALL, seed=5)
    grid = ScoreScale(0, 36)
    mixed = [
        ScoreDistribution(grid, np.full(grid.size, 1 / grid.size), meta={"parts": (a, b)}) for a, b in zip(big, small)
    ]
    np.testing.assert_array_equal(_features(mixed), np.hstack([_features(big), _features(small)]))
    assert _features(mixed).shape == (30, SCALE.size + 3 + SMALL.size + 3)
    with pytest.raises(NumbiasError, match="read at the same scales"):
        _features([mixed[0], big[0]])


def test_regression_reads_every_scale_of_a_range_ensemble() -> None:
    """The signal is only at the second scale: the regression finds it there."""
    big, small = _items(300), _items(300, SMALL, seed=5)
    human = 1 + 2 * _features(small)[:, 4] - _features(small)[:, 0]
    grid = ScoreScale(0, 36)
    mixed = [
        ScoreDistribution(grid, np.full(grid.size, 1 / grid.size), meta={"parts": (a, b)}) for a, b in zip(big, small)
    ]
    human = grid.from_unit((human - human.min()) / np.ptp(human))
    cal = RidgeRegression().fit(mixed[:200], human[:200])
    assert stats.pearsonr(cal.predict(mixed[200:]), human[200:])[0] > 0.99
    assert np.abs(cal.coef_[SCALE.size + 3 :]).sum() > 10 * np.abs(cal.coef_[: SCALE.size + 3]).sum()


def test_ridge_recovers_a_known_linear_map(linear) -> None:
    dists, x, w, truth, human = linear
    cal = RidgeRegression().fit(dists[:300], human[:300])
    pred = cal.predict(dists[300:])
    assert stats.pearsonr(pred, truth[300:])[0] > 0.99
    np.testing.assert_allclose(pred, truth[300:], atol=0.1)
    # on the raw features, the coefficients are the map's
    np.testing.assert_allclose(cal.coef_ / cal.scale_, w, atol=0.05)
    assert cal.alpha_ in {float(a) for a in np.logspace(-3, 3, 13)}


def test_ordinal_recovers_a_monotone_relation() -> None:
    dists = _items(500, seed=3)
    x = _features(dists)
    rng = np.random.default_rng(4)
    latent = (x - x.mean(axis=0)) @ rng.normal(0, 0.5, x.shape[1])
    latent = 3 * latent / latent.std()
    human = np.digitize(latent + rng.logistic(0, 0.5, len(latent)), [-4, -2.5, -1, 0, 1, 2.5, 4]) + 1.0
    cal = OrdinalRegression().fit(dists[:350], human[:350])
    pred = cal.predict(dists[350:])
    assert stats.spearmanr(pred, latent[350:])[0] > 0.9
    assert stats.spearmanr(pred, human[350:])[0] > 0.8
    np.testing.assert_array_equal(cal.levels_, np.unique(human[:350]))
    assert np.all(np.diff(cal.thresholds_) > 0) and np.all((pred >= 1) & (pred <= 8))


def test_ordinal_bins_human_scores_to_the_scale_levels(linear) -> None:
    dists, _, _, _, human = linear
    cal = OrdinalRegression(folds=3).fit(dists, human)
    np.testing.assert_array_equal(cal.levels_, np.unique(np.clip(np.rint(human), 0, 9)))
    assert stats.pearsonr(cal.predict(dists), human)[0] > 0.9
    with pytest.raises(UnfittableError, match="two levels"):
        OrdinalRegression().fit(dists[:20], np.full(20, 4.0) + np.linspace(0, 0.2, 20))
    with pytest.raises(NumbiasError, match="folds of 2 or more"):
        OrdinalRegression(folds=1).fit(dists, human)


@pytest.mark.parametrize("mitigation", ["ridge", "ordinal"])
@pytest.mark.parametrize("temperature", [1.0, 0.7, "fit"])
def test_fitted_regressions_survive_save_and_load(linear, mitigation: str, temperature: float | str) -> None:
    dists, _, _, _, human = linear
    data = SettingData(dists, [])
    setting = Setting("0-9", "expected", temperature, mitigation)
    fitted = Fitted.fit(setting, data, np.arange(200), human[:200])
    state = json.loads(json.dumps(fitted.get_state(), allow_nan=False))
    restored = Fitted(setting).set_state(state)
    np.testing.assert_array_equal(restored.predict(dists), fitted.predict(dists))
    assert restored.get_state() == fitted.get_state()


@pytest.mark.parametrize("mitigation", ["ridge", "ordinal"])
def test_labels_of_other_items_change_nothing(linear, mitigation: str) -> None:
    dists, _, _, _, human = linear
    data, fit_on, rest = SettingData(dists, []), np.arange(250), np.arange(250, 400)
    setting = Setting("0-9", "expected", 1.0, mitigation)
    shuffled = human.copy()
    shuffled[rest] = np.random.default_rng(7).permutation(human[rest])[::-1]
    first = Fitted.fit(setting, data, fit_on, human[fit_on])
    second = Fitted.fit(setting, data, fit_on, shuffled[fit_on])
    assert first.get_state() == second.get_state()
    np.testing.assert_array_equal(first.predict([dists[i] for i in rest]), second.predict([dists[i] for i in rest]))


def test_regressions_are_built_in_and_ignore_the_rule(linear) -> None:
    dists, _, _, _, human = linear
    for name, title in [("ridge", "distribution regression (ridge)"), ("ordinal", "distribution regression (ordinal)")]:
        spec = get_mitigation(name)
        assert name in BUILT_IN_MITIGATIONS and spec.family == "distribution regression" and spec.needs_labels
        assert spec.title == title
    greedy = RidgeRegression(rule="greedy").fit(dists, human).predict(dists)
    np.testing.assert_array_equal(greedy, RidgeRegression().fit(dists, human).predict(dists))
    with pytest.raises(NumbiasError, match="needs human scores"):
        RidgeRegression().fit(dists)
    with pytest.raises(UnfittableError, match="vary"):
        RidgeRegression().fit(dists[:10], np.full(10, 3.0))
    with pytest.raises(NumbiasError, match="fitted on 13 features"):
        RidgeRegression().fit(dists, human).predict(_items(3, SMALL))


def test_regressions_take_part_in_the_selection(linear) -> None:
    dists, _, _, truth, human = linear
    data = SettingData(dists, [])
    unit = (human - 0.0) / 9.0
    scores = {m: dev_score(Setting("0-9", "expected", 1.0, m), data, unit, (0.0, 1.0)) for m in ("none", "ridge")}
    assert scores["ridge"] > 0.99 > scores["none"]
