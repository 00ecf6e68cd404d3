"""Split-conformal intervals on the human scale: their coverage on continuous and
discrete ratings, their state, and the calibrated judge that saves one."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from numbias.core.conformal import ConformalInterval, coverage, coverage_and_width, items_needed, rating_grid
from numbias.core.distribution import ScoreDistribution
from numbias.core.scale import ScoreScale
from numbias.data.prompt import PromptTemplate
from numbias.judge.config import JudgeConfig
from numbias.mitigations import Setting, SettingData, dev_predictions
from numbias.studies.calibrated import FORMAT, CalibratedJudge
from numbias.studies.scoring import score, write_scores
from numbias.util.errors import NumbiasError

SCALE = ScoreScale.parse("0-9")


def _draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Predictions on a judge's 0-9 scale and human scores on 1-7 that follow them, with noise."""
    pred = rng.uniform(0, 9, n)
    return pred, 1.5 + 0.6 * pred + rng.normal(0, 0.7, n)


def test_coverage_is_nominal_on_continuous_scores() -> None:
    rng = np.random.default_rng(0)
    covered, widths = [], []
    for _ in range(200):
        pred, human = _draw(rng, 400)
        _, low, high = ConformalInterval(0.9).fit(pred[:200], human[:200]).predict(pred[200:])
        c, w = coverage_and_width(low, high, human[200:])
        covered.append(c)
        widths.append(w)
    assert abs(np.mean(covered) - 0.9) < 0.02
    # the width is that of the noise's 90% band, 2 × 1.645 × 0.7
    assert np.mean(widths) == pytest.approx(2 * 1.645 * 0.7, rel=0.05)


@pytest.mark.parametrize("levels", [np.arange(1.0, 8.0), np.arange(10, 71) / 10])
def test_discrete_ratings_keep_the_coverage_and_land_on_the_levels(levels: np.ndarray) -> None:
    """Integer ratings 1-7, or averages of ten integer ratings: ends rounded outward."""
    rng = np.random.default_rng(1)
    covered = []
    for _ in range(200):
        pred, human = _draw(rng, 400)
        human = levels[np.abs(human[:, None] - levels[None, :]).argmin(axis=1)]
        _, low, high = ConformalInterval(0.9, levels).fit(pred[:200], human[:200]).predict(pred[200:])
        assert np.isin(low, levels).all() and np.isin(high, levels).all()
        assert (low >= levels[0]).all() and (high <= levels[-1]).all()
        covered.append(coverage_and_width(low, high, human[200:])[0])
    assert np.mean(covered) >= 0.9 - 0.02


def test_the_map_puts_uncalibrated_scores_on_the_human_scale() -> None:
    pred = np.linspace(0, 9, 50)
    interval = ConformalInterval().fit(pred, 1 + 0.5 * pred)
    assert (interval.slope_, interval.intercept_, interval.radius_) == pytest.approx((0.5, 1.0, 0.0), abs=1e-12)
    point, low, high = interval.predict(np.array([4.0, np.nan]))
    assert [point[0], low[0], high[0]] == pytest.approx([3.0] * 3) and np.isnan([point[1], low[1], high[1]]).all()
    # rounded outward onto the levels, within float slack (2.9999999999 is level 3)
    _, low, high = ConformalInterval(levels=[1, 2, 3, 4, 5]).fit(pred, 1 + 0.5 * pred).predict(np.array([4.0, 20.0]))
    assert low.tolist() == [3.0, 5.0] and high.tolist() == [3.0, 5.0]
    # predictions that do not vary: the humans' mean and spread
    flat = ConformalInterval().fit(np.full(20, 2.0), np.arange(20.0))
    assert (flat.slope_, flat.intercept_) == (0.0, 9.5)


def test_too_few_items_is_a_one_line_error() -> None:
    assert items_needed(0.9) == 9 and items_needed(0.95) == 19 and items_needed(0.5) == 1
    for level in (0.5, 0.8, 0.9, 0.95, 0.99):
        n = items_needed(level)
        assert math.ceil((n + 1) * level - 1e-9) <= n < math.ceil(n * level - 1e-9) + 1
    pred = np.arange(9.0)
    ConformalInterval(0.9).fit(pred, pred)
    with pytest.raises(NumbiasError, match="needs at least 9 scored items with human scores, got 8"):
        ConformalInterval(0.9).fit(np.append(pred[:8], 1.0), np.append(pred[:8], np.nan))
    with pytest.raises(NumbiasError, match="between 0 and 1"):
        ConformalInterval(1.0).fit(pred, pred)
    with pytest.raises(NumbiasError, match="one human score per prediction"):
        ConformalInterval().fit(pred, pred[:5])
    with pytest.raises(NumbiasError, match="finite numbers"):
        ConformalInterval(levels=[1, np.inf]).fit(pred, pred)


def test_state_round_trip() -> None:
    pred, human = _draw(np.random.default_rng(2), 100)
    interval = ConformalInterval(0.8, [1, 2, 3, 4, 5, 6, 7]).fit(pred, human)
    saved = json.loads(json.dumps({"params": interval.get_params(), "state": interval.get_state()}))
    rebuilt = ConformalInterval(**saved["params"]).set_state(saved["state"])
    for a, b in zip(rebuilt.predict(pred), interval.predict(pred)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(NumbiasError, match="has keys"):
        ConformalInterval().set_state({"slope_": 1.0})


def test_coverage_and_width_leave_out_unscored_items() -> None:
    low, high = np.array([1.0, 2.0, np.nan, 0.0]), np.array([3.0, 3.0, 1.0, 1.0])
    assert coverage_and_width(low, high, np.array([3.0, 4.0, 1.0, np.nan])) == (0.5, 1.5)
    assert np.isnan(coverage_and_width(low[2:3], high[2:3], np.ones(1))).all()


def _dist(target: float, rng: np.random.Generator) -> ScoreDistribution:
    logits = -((SCALE.values - target) ** 2) / 4 + rng.normal(0, 0.5, SCALE.size)
    p = np.exp(np.append(logits, -1.0))
    p /= p.sum()
    return ScoreDistribution(SCALE, p[:-1], 0.0, 0.0, p[-1])


@pytest.fixture(scope="module")
def judged() -> tuple[SettingData, np.ndarray]:
    """200 judgements of items whose human scores (on 1-5) they follow."""
    rng = np.random.default_rng(3)
    human = rng.uniform(1, 5, 200)
    return SettingData([_dist((h - 1) / 4 * 9, rng) for h in human], []), human


def _fit(judged: tuple[SettingData, np.ndarray], mitigation: str = "isotonic", n: int = 200) -> CalibratedJudge:
    data, human = judged
    part = SettingData(data.distributions[:n], [])
    template = PromptTemplate("Rate {word} from {lo} to {hi}.")
    return CalibratedJudge.fit(
        JudgeConfig(model="toy", backend="plugin-judge"),
        template,
        Setting("0-9", "expected", 1.0, mitigation),
        part,
        (human[:n] - 1) / 4 * 9,
        (1.0, 5.0),
        fitted_on="synthetic",
    )


def test_a_calibrated_judge_fits_its_interval_on_cross_fitted_scores(judged) -> None:
    data, human = judged
    judge = _fit(judged)
    pred = dev_predictions(judge.setting, data, human, (1.0, 5.0))
    expected = ConformalInterval(0.9).fit(pred, human)
    assert judge.interval.get_state() == pytest.approx(expected.get_state())
    low, high = judge.bounds(pred)
    assert 0.85 < coverage_and_width(low, high, human)[0] < 0.95
    small = _fit(judged, "none", 8)
    assert small.interval is None and "needs at least 9" in small.interval_note
    assert np.isnan(small.bounds(np.ones(3))).all()


def test_intervals_stay_on_the_humans_scale(judged) -> None:
    """Mean ratings on 1-5: no end leaves [1, 5]; integer ratings: every end is one of 1..5."""
    data, human = judged
    pred = _fit(judged).fitted.predict(data.distributions)
    raw = ConformalInterval(0.9).fit(pred, human).predict(pred)  # unclipped, the interval leaves the range
    assert raw[1].min() < 1 or raw[2].max() > 5
    low, high = _fit(judged).bounds(pred)
    assert low.min() >= 1 and high.max() <= 5 and (low <= high).all()
    assert not np.isin(low, np.arange(1.0, 6.0)).all()  # mean ratings: any value in the range
    stars = np.clip(np.round(human), 1, 5)
    integer = _fit((data, stars))
    assert integer.interval.get_params()["levels"] == [1.0, 2.0, 3.0, 4.0, 5.0]
    low, high = integer.bounds(integer.fitted.predict(data.distributions))
    assert np.isin(low, np.arange(1.0, 6.0)).all() and np.isin(high, np.arange(1.0, 6.0)).all()
    assert 0.85 <= coverage(low, high, stars).share  # rounding outward keeps the coverage


def test_the_rating_grid_and_coverage_with_its_interval() -> None:
    assert rating_grid(np.array([1.0, 2.0, np.nan, 5.0]), (1, 5)) == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert rating_grid(np.array([1.0, 2.5]), (1, 5)) is None
    got = coverage(np.zeros(200), np.ones(200), np.r_[np.full(180, 0.5), np.full(20, 2.0)])
    assert (got.share, got.items, got.width) == (0.9, 200, 1.0)
    wilson = stats.binomtest(180, 200).proportion_ci(0.95, method="wilson")
    assert (got.low, got.high) == pytest.approx((wilson.low, wilson.high))
    # by hand: Wilson's centre and half-width at z = 1.96
    z, p, n = stats.norm.ppf(0.975), 0.9, 200
    centre, half = (
        (p + z * z / (2 * n)) / (1 + z * z / n),
        z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)),
    )
    assert (got.low, got.high) == pytest.approx((centre - half, centre + half))
    assert got.text() == "90% [85%, 93%] of 200 items"


def _items_file(tmp_path: Path) -> dict:
    path = tmp_path / "new.csv"
    pd.DataFrame({"id": [f"n{i}" for i in range(6)], "word": ["good", "bad", "fine", "grim", "nice", "okay"]}).to_csv(
        path, index=False
    )
    return {"file": str(path)}


def test_save_and_load_keep_the_interval_and_scores_carry_it(tmp_path: Path, judged) -> None:
    judge = _fit(judged)
    path = judge.save(tmp_path / "judge.json")
    saved = json.loads(path.read_text())
    assert saved["format"] == FORMAT == "numbias.calibrated-judge/3"
    loaded = CalibratedJudge.load(path)
    assert loaded.interval.get_state() == judge.interval.get_state()
    assert loaded.interval.get_params() == judge.interval.get_params()
    scored = score(_items_file(tmp_path), calibrated=loaded, store=tmp_path / "s.sqlite")
    low, high = judge.bounds(scored.calibrated)
    np.testing.assert_array_equal(scored.low, low)
    np.testing.assert_array_equal(scored.high, high)
    assert (scored.low < scored.high).all()
    written = pd.read_csv(write_scores(scored, tmp_path / "out")[1])
    assert list(written.columns[-4:]) == ["calibrated", "calibrated_human", "low", "high"]
    np.testing.assert_allclose(written["low"], low)


def test_scoring_labelled_items_reports_the_coverage_with_its_interval(tmp_path: Path, judged) -> None:
    path = tmp_path / "rated.csv"
    pd.DataFrame(
        {
            "id": [f"n{i}" for i in range(6)],
            "word": ["good", "bad", "fine", "grim", "nice", "okay"],
            "stars": [5, 1, 3, 2, 4, 3],
        }
    ).to_csv(path, index=False)
    scored = score(
        {"file": str(path), "human": "stars", "human_range": [1, 5]},
        calibrated=_fit(judged),
        store=tmp_path / "s.sqlite",
    )
    found = coverage(scored.low, scored.high, np.array([5, 1, 3, 2, 4, 3.0]))
    assert f"the 90% interval holds the human score of {found.text()} (95% Wilson interval)" in " ".join(scored.notes)
    assert found.items == 6 and found.low < found.share <= found.high


def test_a_format_2_judge_still_loads_without_an_interval(tmp_path: Path, judged) -> None:
    judge = _fit(judged)
    old = json.loads(judge.save(tmp_path / "judge.json").read_text())
    old["format"] = "numbias.calibrated-judge/2"
    del old["interval"], old["interval_note"]
    (tmp_path / "old.json").write_text(json.dumps(old))
    loaded = CalibratedJudge.load(tmp_path / "old.json")
    assert loaded.interval is None and "saved in format numbias.calibrated-judge/2" in loaded.interval_note
    dists = judged[0].distributions[:20]
    np.testing.assert_array_equal(loaded.fitted.predict(dists), judge.fitted.predict(dists))
    scored = score(_items_file(tmp_path), calibrated=loaded, store=tmp_path / "s.sqlite")
    assert np.isnan(scored.low).all() and np.isnan(scored.high).all()
    assert any("no conformal interval" in note and "low and high are empty" in note for note in scored.notes)
    bad = {**json.loads((tmp_path / "judge.json").read_text()), "interval": {"params": {"coverage": 0.9}}}
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(NumbiasError, match="interval.state: Field required"):
        CalibratedJudge.load(tmp_path / "bad.json")
