"""Range ensembles: one item read at several scales, mixed on a common grid, with
equal weights or weights fitted on development items."""

from __future__ import annotations

import numpy as np
import pytest

from numbias.core.distribution import ScoreDistribution, mixture
from numbias.core.scale import ScoreScale, ensemble_grid, ensemble_parts, setting_scale
from numbias.mitigations import EnsembleWeights, Fitted, Setting, SettingData, UnfittableError
from numbias.studies.mitigation import ensemble_data, parse_mitigate
from numbias.util.errors import NumbiasError

PARTS = ensemble_parts("0-9+1-5+1-10+0-10")


def _items(n: int, seed: int = 0) -> tuple[list[tuple[ScoreDistribution, ...]], np.ndarray]:
    """Items read at every part scale: the 1-5 reading tracks ``truth``, the others are noise."""
    rng = np.random.default_rng(seed)
    truth = rng.uniform(0, 1, n)
    items = []
    for t in truth:
        parts = []
        for scale in PARTS:
            centre = t if scale == ScoreScale(1, 5) else rng.uniform(0, 1)
            logits = -((scale.to_unit(scale.values) - centre) ** 2) * 40 + rng.normal(0, 0.3, scale.size)
            probs = np.exp(logits) / np.exp(logits).sum() * rng.uniform(0.6, 0.95)
            rest = 1 - probs.sum()
            at = {0.7: ScoreDistribution(scale, probs, rest / 3, rest / 3, rest / 3, temperature=0.7)}
            parts.append(ScoreDistribution(scale, probs, rest / 3, rest / 3, rest / 3, tempered=at))
        items.append(tuple(parts))
    return items, truth


def _expected(d: ScoreDistribution) -> float:
    return float(d.probs @ d.scale.values / d.probs.sum())


def test_the_grid_holds_every_part_exactly() -> None:
    assert ensemble_grid(PARTS) == ScoreScale(0, 180) == setting_scale("0-9+1-5+1-10+0-10")
    assert ensemble_grid(ensemble_parts("0-9+1-100+0-100")) == ScoreScale(0, 1000)  # lcm 9900: capped
    for bad in ("0-9", "0-9+0-9", "0-9+x"):
        with pytest.raises(NumbiasError):
            ensemble_parts(bad)


def test_plain_ensemble_is_the_mean_of_unit_scaled_expectations() -> None:
    items, _ = _items(50)
    grid = ensemble_grid(PARTS)
    for parts in items:
        mixed = mixture(parts, grid)
        assert mixed.total == pytest.approx(1.0)
        assert grid.to_unit(_expected(mixed)) == pytest.approx(
            np.mean([p.scale.to_unit(_expected(p)) for p in parts]), abs=1e-12
        )
        # re-reading at a temperature re-reads every part
        assert mixed.at(0.7).meta["parts"] == tuple(p.at(0.7) for p in parts)
    fitted = Fitted.fit(
        Setting("0-9+1-5+1-10+0-10", "expected", 1.0),
        SettingData([mixture(p, grid) for p in items], []),
        np.arange(50),
        None,
    )
    np.testing.assert_allclose(
        grid.to_unit(fitted.predict([mixture(p, grid) for p in items])),
        [np.mean([q.scale.to_unit(_expected(q)) for q in p]) for p in items],
    )


def test_fitted_weights_find_the_informative_scale() -> None:
    items, truth = _items(200)
    grid = ensemble_grid(PARTS)
    mixed = [mixture(p, grid) for p in items]
    weights = EnsembleWeights().fit(mixed, grid.from_unit(truth)).weights_
    assert weights[1] > 0.9 and weights.sum() == pytest.approx(1.0)
    pred = EnsembleWeights().set_state({"weights_": weights.tolist()}).predict(mixed)
    assert np.corrcoef(pred, truth)[0, 1] > 0.95
    with pytest.raises(UnfittableError):  # a single scale has no parts to weigh
        EnsembleWeights().fit(list(items[0][:1]) * 5, np.arange(5.0))


def test_mitigate_compares_ensembles_and_permuted_test_labels_change_nothing() -> None:
    from numbias.mitigations.selection import compare

    items, truth = _items(240)
    per_scale = {str(s): SettingData([p[k] for p in items], []) for k, s in enumerate(PARTS)}
    config = parse_mitigate(
        {
            "scales": [str(s) for s in PARTS],
            "rules": ["expected", "protocol"],
            "temperatures": [0.7, 1.0],
            "mitigations": ["none", "weighted", "isotonic"],
        }
    )
    assert config.ensembles == ["0-9+1-5+1-10+0-10"]
    data = per_scale | {e: ensemble_data(e, per_scale) for e in config.ensembles}
    dev, test = np.arange(120), np.arange(120, 240)
    first = compare(data, truth, (0.0, 1.0), dev, test, config.candidates())
    labels = {f.label for f in first[2]}
    assert {
        "range ensemble 0-9+1-5+1-10+0-10",
        "range ensemble (weights fitted on dev)",
        "best range ensemble (dev)",
    } <= labels
    shuffled = truth.copy()
    shuffled[test] = truth[test][::-1]
    second = compare(data, shuffled, (0.0, 1.0), dev, test, config.candidates())
    assert first[0] == second[0]
    np.testing.assert_equal(first[1], second[1])  # NaN (unfittable at one scale) equals NaN
    for a, b in zip(first[2], second[2]):
        np.testing.assert_array_equal(a.pred, b.pred)


def test_ensembles_must_join_the_study_scales() -> None:
    with pytest.raises(NumbiasError, match="not in scales"):
        parse_mitigate({"scales": ["0-9", "1-5"], "ensembles": ["0-9+1-10"]})
    assert parse_mitigate({"scales": ["0-9"]}).ensembles == []
    assert parse_mitigate({"scales": ["0-9", "1-5"], "ensembles": []}).ensembles == []
