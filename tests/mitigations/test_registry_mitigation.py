"""A mitigation from outside the package (tests/plugin_calibrator.py), registered by name
or installed through the entry point ``numbias.mitigations``, joins selection, the
paper-style table and saved judges as a built-in does; every built-in keeps
scikit-learn's estimator contract."""

from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

import numbias
from numbias.core.distribution import ScoreDistribution, mixture, paired, stack
from numbias.core.metrics import item_scores, to_scale
from numbias.core.scale import ScoreScale
from numbias.mitigations import (
    BUILT_IN_MITIGATIONS,
    ENTRY_POINTS,
    MITIGATION_REGISTRY,
    BatchCalibration,
    Calibrator,
    ContextualCalibration,
    Fitted,
    IsotonicMapping,
    MitigationSpec,
    OrdinalRegression,
    Setting,
    SettingData,
    TemperatureScaling,
    all_mitigations,
    get_mitigation,
    register_mitigation,
    select,
)
from numbias.studies.calibrated import CalibratedJudge
from numbias.studies.mitigation import parse_mitigate
from numbias.util.errors import NumbiasError
from numbias.util.plugins import forget
from plugin_calibrator import LinearMap

SCALE = ScoreScale.parse("0-9")


@pytest.fixture(autouse=True)
def _registry() -> Iterator[None]:
    """Whatever a test registers or installs is gone after it."""
    before = dict(MITIGATION_REGISTRY)
    forget(ENTRY_POINTS)
    yield
    MITIGATION_REGISTRY.clear()
    MITIGATION_REGISTRY.update(before)
    forget(ENTRY_POINTS)


@pytest.fixture
def linear() -> MitigationSpec:
    return register_mitigation("linear", LinearMap, "linear map", True, "linear map")


@pytest.fixture(scope="module")
def items() -> tuple[SettingData, np.ndarray]:
    """200 one-token judgements pulled towards 7, and their human scores on the scale."""
    rng = np.random.default_rng(0)
    human = rng.uniform(0, 9, 200)
    dists = []
    for h in human:
        logits = -((SCALE.values - h) ** 2) / 6 + rng.normal(0, 0.5, SCALE.size)
        logits[7] += 1.5
        p = np.exp(np.append(logits, -1.0))
        p /= p.sum()
        dists.append(ScoreDistribution(SCALE, p[:-1], 0.0, 0.0, p[-1]))
    free = [ScoreDistribution(SCALE, np.full(10, 0.05) + np.eye(10)[7] * 0.4, 0.0, 0.0, 0.1)]
    return SettingData(dists, free), human


def _expected(dists: list[ScoreDistribution]) -> np.ndarray:
    probs, rest = stack(dists)
    return item_scores(probs, rest, SCALE, "expected")


@pytest.mark.parametrize("name", BUILT_IN_MITIGATIONS)
def test_every_built_in_is_a_scikit_learn_estimator(items, name: str) -> None:
    data, human = items
    if get_mitigation(name).family == "range ensemble":  # reads the parts of a range ensemble
        data = SettingData(
            [mixture((d, d.at(0.7) if d.tempered else d), d.scale) for d in data.distributions], data.content_free
        )
    if get_mitigation(name).family == "contrast":  # reads an amateur's distribution of each item
        data = SettingData([paired(d, d.at(0.7) if d.tempered else d) for d in data.distributions], data.content_free)
    cal = get_mitigation(name).make()
    params = cal.get_params()
    assert "rule" in params
    assert clone(cal.set_params(rule="greedy")).get_params() == {**params, "rule": "greedy"}
    assert cal.fit(data.distributions, human, content_free=data.content_free) is cal
    # a fresh instance with the same parameters and the saved state predicts the same
    rebuilt = type(cal)(**json.loads(json.dumps(cal.get_params()))).set_state(json.loads(json.dumps(cal.get_state())))
    np.testing.assert_array_equal(rebuilt.predict(data.distributions), cal.predict(data.distributions))


def test_temperature_scaling_is_a_scikit_learn_estimator() -> None:
    cal = TemperatureScaling(criterion="pearson", rule="median")
    assert clone(cal).get_params() == {"criterion": "pearson", "rule": "median"}
    with pytest.raises(NumbiasError, match="temperature criterion"):
        cal.set_params(criterion="vibes").fit([], np.zeros(0))


BAD_PARAMETERS = [
    (
        lambda: TemperatureScaling(criterion="vibes"),
        "temperature criterion must be 'likelihood' or 'pearson', got 'vibes'",
    ),
    (lambda: BatchCalibration(max_iter=0), "batch calibration needs max_iter of 1 or more, got 0"),
    (lambda: BatchCalibration(max_iter=2.5), "batch calibration needs max_iter of 1 or more, got 2.5"),
    (lambda: BatchCalibration(tol=float("nan")), "batch calibration needs tol of 0 or more, got nan"),
    (lambda: BatchCalibration(max_weight=0.5), "batch calibration needs max_weight of 1 or more, got 0.5"),
    (lambda: ContextualCalibration(max_weight=True), "contextual calibration needs max_weight of 1 or more, got True"),
    (lambda: OrdinalRegression(folds=1), "ordinal regression needs folds of 2 or more, got 1"),
    (
        lambda: IsotonicMapping(rule="mode"),
        "unknown rule 'mode' (known: greedy, expected, median, protocol, quantile:Q, mean-sd:L)",
    ),
]


@pytest.mark.parametrize(("make", "message"), BAD_PARAMETERS, ids=[m for _, m in BAD_PARAMETERS])
def test_a_bad_parameter_stops_in_init_in_one_line_naming_it(make: Callable[[], Calibrator], message: str) -> None:
    with pytest.raises(NumbiasError) as stopped:
        make()
    assert str(stopped.value) == message


def test_set_params_and_saved_state_pass_the_same_checks(items) -> None:
    """A value given later, or read back from a saved judge, meets the constructor's
    checks, and a refused one leaves the calibrator as it was."""
    cal = BatchCalibration(max_iter=5)
    with pytest.raises(NumbiasError, match="needs max_iter of 1 or more, got 0"):
        cal.set_params(max_iter=0)
    assert cal.max_iter == 5
    data, _ = items
    fitted = Fitted.fit(Setting("0-9", "expected", 1.0, "batch"), data, np.arange(50), None)
    saved = json.loads(json.dumps(fitted.get_state()))
    saved["params"]["tol"] = -1.0
    with pytest.raises(NumbiasError, match="batch calibration needs tol of 0 or more, got -1.0"):
        Fitted(fitted.setting).set_state(saved)


def test_a_registered_mitigation_joins_settings_and_selection(items, linear) -> None:
    data, human = items
    setting = Setting("0-9", "expected", 1.0, "linear")
    assert setting.needs_labels and all_mitigations()["linear"] is linear
    fitted = Fitted.fit(setting, data, np.arange(100), human[:100])
    slope, intercept = np.polyfit(_expected(data.distributions[:100]), human[:100], 1)
    np.testing.assert_allclose(fitted.predict(data.distributions), slope * _expected(data.distributions) + intercept)
    candidates = [Setting("0-9", "expected", 1.0, m) for m in ("none", "linear")]
    _, scores = select(candidates, {"0-9": data}, human, (0.0, 9.0))
    assert all(np.isfinite(v) for v in scores.values())
    assert parse_mitigate({"mitigations": ["none", "linear"]}).mitigations == ["none", "linear"]


def test_bad_registrations_are_one_line_errors(items) -> None:
    data, human = items
    with pytest.raises(NumbiasError, match="unknown mitigation 'nope'"):
        Setting("0-9", "expected", 1.0, "nope")
    with pytest.raises(NumbiasError, match="already registered"):
        register_mitigation("beta", LinearMap, "linear map", True)
    assert register_mitigation("beta", LinearMap, "linear map", True, replace=True).title == "beta"
    register_mitigation("not-one", dict, "odd", False)
    with pytest.raises(NumbiasError, match="not a numbias Calibrator"):
        Fitted.fit(Setting("0-9", "expected", 1.0, "not-one"), data, np.arange(10), None)
    register_mitigation("missing", "no_such_module:Thing", "odd", False)
    with pytest.raises(NumbiasError, match="cannot import no_such_module:Thing"):
        Fitted.fit(Setting("0-9", "expected", 1.0, "missing"), data, np.arange(10), None)


def test_restore_takes_saved_parameters_and_state(items, linear) -> None:
    data, _ = items
    setting = Setting("0-9", "expected", 1.0, "linear")
    state = {"temperature_": 1.0, "params": {"ridge": 3.0, "rule": "expected"}, "calibrator": {"coef_": [2.0, 1.0]}}
    fitted = Fitted(setting).set_state(state)
    assert fitted.calibrator.ridge == 3.0 and fitted.get_state() == state
    np.testing.assert_allclose(fitted.predict(data.distributions), 2 * _expected(data.distributions) + 1)
    with pytest.raises(NumbiasError, match=r"unknown calibrator parameter\(s\) \['alpha'\]"):
        Fitted(setting).set_state({**state, "params": {"alpha": 1.0}})
    with pytest.raises(NumbiasError, match="has keys"):
        Fitted(setting).set_state({**state, "calibrator": {}})


@pytest.mark.slow
def test_a_registered_mitigation_in_the_study_and_a_saved_judge(tmp_path: Path, linear) -> None:
    rows = pd.DataFrame(
        {
            "id": [f"w{i}" for i in range(60)],
            "word": [f"word{i}" for i in range(60)],
            "stars": [i % 5 + 1 for i in range(60)],
        }
    )
    rows.to_csv(tmp_path / "items.csv", index=False)
    res = numbias.mitigate(
        {
            "judges": [{"model": "toy", "backend": "plugin-judge"}],  # registered: a saved judge names no code
            "tasks": [
                {
                    "file": str(tmp_path / "items.csv"),
                    "human": "stars",
                    "human_range": [1, 5],
                    "template": "Rate {word} from {lo} to {hi}.",
                }
            ],
            "dev": 30,
            "bootstrap": 50,
            "sample": False,
            "scales": ["0-9", "1-5"],
            "mitigations": ["none", "linear"],
            "out": str(tmp_path / "m"),
        }
    )
    comp = res.comparisons[0]
    table = comp.table.set_index("row")
    assert table.loc["linear map", "family"] == "linear map"
    assert table.loc["best linear map (dev)", "setting"].endswith(" · linear")
    best = [r for r in comp.table["row"] if r.startswith("best ")]
    assert best == [
        "best temperature (dev)",
        "best linear map (dev)",
        "best score range (dev)",
        "best range ensemble (dev)",
    ]
    # the user's calibrator survives save and load
    setting = Setting("0-9", "protocol", 0.7, "linear")
    data = comp.data["0-9"]
    judge = CalibratedJudge.fit(
        comp.judge, comp.template, setting, data, to_scale(comp.human, comp.human_range, data.scale), comp.human_range
    )
    path = judge.save(tmp_path / "judge.json")
    saved = json.loads(path.read_text())
    assert saved["format"] == "numbias.calibrated-judge/3"
    assert saved["state"]["params"] == {"ridge": 0.0, "rule": "protocol"}
    loaded = CalibratedJudge.load(path)
    assert isinstance(loaded.fitted.calibrator, LinearMap) and loaded.setting == setting
    np.testing.assert_array_equal(loaded.fitted.predict(data.distributions), judge.fitted.predict(data.distributions))
    new = [{"word": f"word{i}"} for i in range(5)]
    np.testing.assert_array_equal(loaded.score(new), judge.score(new))
    del MITIGATION_REGISTRY["linear"]
    with pytest.raises(NumbiasError, match="setting.mitigation: unknown mitigation 'linear'"):
        CalibratedJudge.load(path)


def test_the_saved_format_1_judge_still_loads() -> None:
    path = Path(__file__).resolve().parents[1] / "fixtures" / "calibrated-judge-format-1.json"
    judge = CalibratedJudge.load(path)
    assert judge.setting == Setting("0-10", "greedy", 0.4, "none")
    assert judge.fitted.temperature_ == 0.4 and judge.fitted.calibrator.get_params() == {"rule": "greedy"}


def _installed(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """An installed package's entry point ``value`` in the group numbias.mitigations."""
    real = importlib.metadata.entry_points

    def entry_points(**kwargs: str) -> object:
        if kwargs.get("group") == ENTRY_POINTS:
            return [importlib.metadata.EntryPoint("plugin", value, ENTRY_POINTS)]
        return real(**kwargs)

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    forget(ENTRY_POINTS)


def test_entry_point_mitigations_appear_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    _installed(monkeypatch, "plugin_calibrator:SPEC")
    assert Setting("0-9", "expected", 1.0, "linear").needs_labels
    assert get_mitigation("linear").family == "linear map"
    assert parse_mitigate({"mitigations": ["none", "linear"]}).mitigations == ["none", "linear"]
    assert "linear" in all_mitigations()


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("no_such_module:SPEC", "failed to load"),
        ("plugin_calibrator:LinearMap", "gave LinearMap, not a numbias MitigationSpec"),
    ],
)
def test_broken_entry_points_are_one_line_errors(monkeypatch: pytest.MonkeyPatch, value: str, fragment: str) -> None:
    _installed(monkeypatch, value)
    with pytest.raises(NumbiasError, match=fragment):
        get_mitigation("linear")


def test_an_entry_point_cannot_take_a_registered_name(monkeypatch: pytest.MonkeyPatch) -> None:
    register_mitigation("linear", LinearMap, "another family", True)
    _installed(monkeypatch, "plugin_calibrator:SPEC")
    clash = "already registered .*; entry point 'plugin' of group numbias.mitigations cannot take its name"
    with pytest.raises(NumbiasError, match=clash):
        all_mitigations()
