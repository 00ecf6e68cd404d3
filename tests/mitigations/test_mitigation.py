"""Mitigations and automatic selection, on exact synthetic distributions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from numbias.core.distribution import TEMPERATURES, ScoreDistribution, stack
from numbias.core.metrics import group_pearson, item_scores
from numbias.core.scale import ScoreScale
from numbias.data.prompt import PromptTemplate
from numbias.judge.config import JudgeConfig
from numbias.mitigations import (
    CRITERIA,
    LABEL_CRITERIA,
    BatchCalibration,
    BetaCalibration,
    ContextualCalibration,
    Fitted,
    IsotonicMapping,
    QuantileMapping,
    Setting,
    SettingData,
    TemperatureScaling,
    cross_folds,
    dev_score,
    holdout,
    select,
)
from numbias.mitigations.selection import PAPER_DEFAULT, compare
from numbias.report.build import write
from numbias.studies.calibrated import CalibratedJudge
from numbias.studies.mitigation import parse_mitigate
from numbias.util.errors import NumbiasError

SCALES = {s: ScoreScale.parse(s) for s in ("0-9", "1-5")}


def _dist(logits: np.ndarray, scale: ScoreScale, other_logit: float = -1.0) -> ScoreDistribution:
    """A single-token judge: softmax over the scores plus one non-numeric outcome, at
    every grid temperature (exactly what a backend reads for one-token scores)."""

    def at(t: float) -> ScoreDistribution:
        z = np.append(logits, other_logit) / t
        p = np.exp(z - z.max())
        p /= p.sum()
        return ScoreDistribution(scale, p[:-1], 0.0, 0.0, p[-1], temperature=None if t == 1.0 else t)

    main = at(1.0)
    main.tempered.update({t: at(t) for t in TEMPERATURES if t != 1.0})
    return main


def _judge(
    human: np.ndarray, scale: ScoreScale, *, signal: float, bias_to: int, bias: float, noise: float = 0.3, seed: int = 0
) -> list[ScoreDistribution]:
    """Logits peaked at the human score (on this scale) plus a pull towards one score."""
    rng = np.random.default_rng(seed)
    target = scale.from_unit(human)
    values = scale.values
    out = []
    for t in target:
        logits = -signal * (values - t) ** 2 / scale.size + rng.normal(0, noise, scale.size)
        logits[bias_to] += bias
        out.append(_dist(logits, scale))
    return out


@pytest.fixture(scope="module")
def synthetic() -> tuple[dict[str, SettingData], np.ndarray]:
    rng = np.random.default_rng(0)
    human = rng.beta(2, 2, size=300)
    data = {
        "0-9": SettingData(
            _judge(human, SCALES["0-9"], signal=0.8, bias_to=8, bias=3.0, noise=2.0),
            [_dist(np.eye(10)[8] * 3.0, SCALES["0-9"])],
        ),
        "1-5": SettingData(
            _judge(human, SCALES["1-5"], signal=3.0, bias_to=3, bias=0.5, seed=1),
            [_dist(np.eye(5)[3] * 0.5, SCALES["1-5"])],
        ),
    }
    return data, human


def test_temperature_one_is_identity(synthetic) -> None:
    data = synthetic[0]["0-9"]
    dists = data.distributions
    for a in dists:
        assert a.at(1.0) is a
    fitted = Fitted.fit(Setting("0-9", "expected", 1.0), data, np.arange(len(dists)), None)
    probs = np.vstack([d.probs for d in dists])
    np.testing.assert_array_equal(fitted.predict(dists), probs @ np.arange(10) / probs.sum(axis=1))
    # a different temperature does change the scores
    assert not np.allclose(
        Fitted.fit(Setting("0-9", "expected", 0.4), data, np.arange(5), None).predict(dists), fitted.predict(dists)
    )


def test_fitted_temperature_flattens_an_overconfident_judge() -> None:
    rng = np.random.default_rng(3)
    human = rng.uniform(0, 1, 400)
    scale = SCALES["0-9"]
    # the "true" judge has T = 1; this one is three times too sharp
    dists = [
        _dist(3 * (-((scale.values - t) ** 2) / 4 + rng.normal(0, 0.5, 10)), scale) for t in scale.from_unit(human)
    ]
    cal = TemperatureScaling().fit(dists, scale.from_unit(human))
    assert cal.temperature_ > 1.5
    assert TemperatureScaling(criterion="pearson").fit(dists, scale.from_unit(human)).temperature_ > 1.0
    assert cal.scores_[cal.temperature_] == max(cal.scores_.values())


def test_batch_calibration_recovers_a_flat_marginal() -> None:
    scale = SCALES["0-9"]
    # items whose unbiased answers spread evenly over the scale, all pulled towards 8
    dists = []
    for k in range(500):
        logits = np.full(10, -4.0)
        logits[k % 10] = 0.0
        logits[8] += 5.0
        dists.append(_dist(logits, scale, other_logit=-30))
    before = np.mean([d.probs / d.probs.sum() for d in dists], axis=0)
    assert before[8] > 0.5
    out = BatchCalibration().fit(dists).transform(dists)
    after = np.mean([d.probs / d.probs.sum() for d in out], axis=0)
    np.testing.assert_allclose(after, 0.1, atol=0.01)
    # the in-scale mass of every item is kept
    np.testing.assert_allclose([d.probs.sum() for d in out], [d.probs.sum() for d in dists])


def test_beta_fit_matches_scipy(synthetic) -> None:
    data, human = synthetic
    scale = SCALES["0-9"]
    cal = BetaCalibration().fit(data["0-9"].distributions, scale.from_unit(human))
    a, b, _, _ = stats.beta.fit(np.clip(human, 1e-3, 1 - 1e-3), floc=0, fscale=1)
    assert (cal.a_, cal.b_) == pytest.approx((a, b))
    assert cal.a_ / (cal.a_ + cal.b_) == pytest.approx(human.mean(), abs=0.02)  # Beta(2, 2) sample
    assert cal.target_.sum() == pytest.approx(1.0)
    # reweighting moves the marginal towards the target
    out = cal.transform(data["0-9"].distributions)
    after = np.mean([d.probs / d.probs.sum() for d in out], axis=0)
    before = cal.marginal_
    assert np.abs(after - cal.target_).sum() < np.abs(before - cal.target_).sum()


def test_isotonic_is_monotone_and_quantile_matches_human() -> None:
    rng = np.random.default_rng(1)
    scores = rng.normal(7, 1, 300)
    human = 3 * np.tanh(scores - 7) + rng.normal(0, 0.5, 300)
    iso = IsotonicMapping().fit_scores(scores, human)
    grid = np.linspace(0, 12, 500)
    assert np.all(np.diff(iso.map_scores(grid)) >= 0)
    q = QuantileMapping().fit_scores(scores, human)
    mapped = q.map_scores(scores)
    np.testing.assert_allclose(np.quantile(mapped, [0.1, 0.5, 0.9]), np.quantile(human, [0.1, 0.5, 0.9]), atol=0.1)


@pytest.mark.parametrize("mapping", [IsotonicMapping, QuantileMapping])
def test_score_mappings_fit_the_rule_scores_of_the_distributions(synthetic, mapping: type) -> None:
    data, human = synthetic
    dists, on_scale = data["0-9"].distributions, SCALES["0-9"].from_unit(human)
    probs, rest = stack(dists)
    greedy = item_scores(probs, rest, SCALES["0-9"], "greedy")
    fitted = mapping(rule="greedy").fit(dists, on_scale)
    by_scores = mapping().fit_scores(greedy, on_scale)
    np.testing.assert_array_equal(fitted.predict(dists), by_scores.map_scores(greedy))
    with pytest.raises(NumbiasError, match="needs human scores"):
        mapping().fit(dists)


def test_distribution_calibrators_predict_the_rule_scores_of_their_transform(synthetic) -> None:
    data, human = synthetic
    d = data["0-9"]
    for cal in (
        BetaCalibration(rule="protocol").fit(d.distributions, SCALES["0-9"].from_unit(human)),
        BatchCalibration(rule="median").fit(d.distributions),
        ContextualCalibration(rule="expected").fit(d.distributions, content_free=d.content_free),
    ):
        probs, rest = stack(cal.transform(d.distributions))
        np.testing.assert_array_equal(cal.predict(d.distributions), item_scores(probs, rest, d.scale, cal.rule))
    # the content-free prior comes in with the data, at fit
    cal = ContextualCalibration().fit(d.distributions, content_free=d.content_free)
    np.testing.assert_allclose(cal.prior_, d.content_free[0].probs / d.content_free[0].probs.sum())
    with pytest.raises(NumbiasError, match="content-free items"):
        ContextualCalibration().fit(d.distributions)


def test_selection_prefers_the_informative_setting(synthetic) -> None:
    data, human = synthetic
    candidates = [
        Setting(s, r, 1.0, m) for s in data for r in ("greedy", "expected") for m in ("none", "batch", "isotonic")
    ]
    chosen, scores = select(candidates, data, human, (0.0, 1.0))
    assert chosen.scale == "1-5" and scores[chosen] == max(scores.values())
    # label-free selection skips label-using mitigations and reads no labels
    chosen_free, free = select(candidates, data, None, (0.0, 1.0), criterion="entropy")
    assert all(c.mitigation != "isotonic" for c in free)


def test_changing_test_labels_never_changes_the_selection(synthetic) -> None:
    data, human = synthetic
    candidates = [
        Setting(s, r, t, m)
        for s in data
        for r in ("greedy", "expected", "protocol")
        for t in (0.7, 1.0, "fit")
        for m in ("none", "beta", "contextual", "quantile")
    ]
    dev, test = np.arange(150), np.arange(150, 300)
    first = compare(data, human, (0.0, 1.0), dev, test, candidates)
    shuffled = human.copy()
    shuffled[test] = np.random.default_rng(9).permutation(human[test])[::-1]
    second = compare(data, shuffled, (0.0, 1.0), dev, test, candidates)
    assert first[0] == second[0] and first[1] == second[1]
    # every row's setting and test predictions are fixed before a test label is read
    assert [(f.label, f.setting) for f in first[2]] == [(f.label, f.setting) for f in second[2]]
    for a, b in zip(first[2], second[2]):
        np.testing.assert_array_equal(a.pred, b.pred)
    assert PAPER_DEFAULT in {f.setting for f in first[2]}


def test_calibrated_judge_round_trip(tmp_path, synthetic) -> None:
    data, human = synthetic
    template = PromptTemplate("Rate {word} from {lo} to {hi}.")
    for temperature, mitigation in [
        (1.0, "none"),
        (0.7, "none"),
        ("fit", "none"),
        (0.7, "beta"),
        (1.0, "batch"),
        (0.7, "contextual"),
        ("fit", "isotonic"),
        (1.3, "quantile"),
    ]:
        setting = Setting("0-9", "expected", temperature, mitigation)
        cj = CalibratedJudge.fit(
            JudgeConfig(model="smollm2-135m-instruct"),
            template,
            setting,
            data["0-9"],
            SCALES["0-9"].from_unit(human),
            (0.0, 1.0),
            fitted_on="synthetic",
        )
        loaded = CalibratedJudge.load(cj.save(tmp_path / f"{mitigation}-{temperature}.json"))
        dists = data["0-9"].distributions[:50]
        np.testing.assert_allclose(loaded.fitted.predict(dists), cj.fitted.predict(dists))
        assert loaded.setting == setting and loaded.template == template


def test_bad_saved_judge(tmp_path) -> None:
    with pytest.raises(NumbiasError, match="does not exist"):
        CalibratedJudge.load(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(NumbiasError, match="not a saved numbias judge"):
        CalibratedJudge.load(tmp_path / "bad.json")


def test_fitted_needs_the_stored_temperature(synthetic) -> None:
    dists = synthetic[0]["0-9"].distributions
    with pytest.raises(NumbiasError, match="temperature 0.33 was not read"):
        Fitted.fit(Setting("0-9", "expected", 0.33), synthetic[0]["0-9"], np.arange(10), None).predict(dists)


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"mitigations": ["none", "magic"]}, "unknown mitigation"),
        ({"scales": ["1-5"]}, "paper's default"),
        ({"temperatures": [1.0, "fit"]}, "paper's default"),
        ({"temperatures": [0.7, "hot"]}, "numbers or 'fit'"),
        ({"criterion": "vibes"}, "criterion must be"),
        ({"rules": ["mean"]}, "unknown rule"),
    ],
)
def test_bad_mitigate_config(config: dict, fragment: str) -> None:
    with pytest.raises(NumbiasError, match=fragment):
        parse_mitigate(config)


@pytest.mark.model
@pytest.mark.subprocess  # a llama.cpp judge with 24+ items is scored in worker processes by default
def test_mitigate_end_to_end_and_saved_judge(smollm2, tmp_path) -> None:
    """A small real study: every table row is present, the saved choice reproduces
    the study's own scores for the same items."""
    from numbias.data.tasks import TASKS
    from numbias.studies.calibrated import CalibratedJudge
    from numbias.studies.mitigation import mitigate

    res = mitigate(
        {
            "judges": ["smollm2-135m-instruct"],
            "tasks": [{"name": "vader", "options": {"n": 40}}],
            "scales": ["0-9", "1-5"],
            "dev": 20,
            "bootstrap": 50,
            "out": str(tmp_path),
            "sample": True,
            "sampling": {"n": 3},
        }
    )
    comp = res.comparisons[0]
    rows = set(comp.table["row"])
    assert {
        "original (paper default)",
        "temperature 0.4",
        "beta calibration",
        "contextual calibration",
        "isotonic mapping",
        "scale 1-5",
        "automatic choice",
    } <= rows
    # the paper's own temperature scaling: the sampling protocol at each of its temperatures
    assert {f"sampled protocol T={t:g} (paper)" for t in (0.4, 0.7, 1.0, 1.3)} <= rows
    sampled = comp.table["row"].str.startswith("sampled")
    assert (comp.table.loc[~sampled, "n test"] == 20).all()
    assert (comp.table.loc[sampled, "n test"] <= 20).all()  # items with no number in 3 answers drop out
    path = comp.calibrated().save(tmp_path / "judge.json")
    judge = CalibratedJudge.load(path)
    data = TASKS["vader"].load(n=40)
    records = data.records()[:3]
    scores = judge.score(records)
    dists = comp.data[judge.setting.scale].distributions
    ids = data.ids
    expected = comp.calibrated().fitted.predict([dists[ids.index(i)] for i in data.ids[:3]])
    np.testing.assert_allclose(scores, expected, atol=1e-6)
    assert (write(res) / "report.html").exists()


def test_calibrators_survive_degenerate_fitting_items(synthetic) -> None:
    """Constant human scores, scores no item ever gets, items with no in-scale mass:
    a setting that cannot be fitted gets no development score instead of a crash."""
    data, human = synthetic
    d = data["0-9"]
    with pytest.raises(NumbiasError):
        BetaCalibration().fit(d.distributions, np.full(len(human), 4.0))
    # a score with no mass anywhere keeps none, and the weights stay finite
    zeroed = [
        ScoreDistribution(x.scale, np.append(x.probs[:-1], 0.0), 0, 0, x.other + x.probs[-1]) for x in d.distributions
    ]
    cal = BatchCalibration().fit(zeroed)
    assert np.all(np.isfinite(cal.weights_)) and cal.weights_[-1] == 0
    # NaN item scores (no numeric mass) are left out of the mappings' fit
    empty = ScoreDistribution(d.scale, np.zeros(10), 0, 0, 1.0)
    scores = np.append(np.linspace(0, 9, 50), np.nan)
    mapped = IsotonicMapping().fit_scores(scores, np.append(np.linspace(0, 1, 50), 0.5)).map_scores(scores[:50])
    assert np.all(np.isfinite(mapped))
    assert np.isnan(Fitted.fit(Setting("0-9", "expected"), d, np.arange(5), None).predict([empty])[0])
    constant = SettingData(d.distributions, d.content_free)
    from numbias.mitigations import dev_score

    assert np.isnan(dev_score(Setting("0-9", "expected", 1.0, "beta"), constant, np.full(len(human), 0.5), (0.0, 1.0)))


@pytest.mark.slow
@pytest.mark.parametrize("split", [{"dev": 150}, {"folds": 3}])
def test_task_comparison_single_split_and_folds(synthetic, split: dict) -> None:
    import pandas as pd

    from numbias.data.dataset import Dataset
    from numbias.data.tasks import PreparedTask
    from numbias.studies.mitigation import compare_task

    data, human = synthetic
    frame = pd.DataFrame({"id": [str(i) for i in range(len(human))], "human": human, "word": "w"})
    task = PreparedTask("synthetic", Dataset("synthetic", frame, ("word",), (0.0, 1.0)), PromptTemplate("Rate {word}."))
    config = parse_mitigate(
        {
            "scales": ["0-9", "1-5"],
            "rules": ["expected", "protocol"],
            "ensembles": [],
            "temperatures": [0.7, 1.0, "fit"],
            "bootstrap": 50,
            **split,
        }
    )
    comp = compare_task(JudgeConfig(model="smollm2-135m-instruct"), task, data, {}, config)
    table = comp.table.set_index("row")
    expected_n = 150 if "dev" in split else 300
    assert (table["n test"] == expected_n).all()
    assert len(comp.chosen) == (1 if "dev" in split else 3)
    assert {
        "original (paper default)",
        "temperature 1",
        "temperature (fitted on dev)",
        "beta calibration",
        "scale 1-5",
        "best score range (dev)",
        "automatic choice",
    } <= set(table.index)
    # the informative 1-5 judge wins on every fold
    assert all(c.scale == "1-5" for c in comp.chosen)
    assert table.loc["automatic choice", "pearson"] > table.loc["original (paper default)", "pearson"]
    if "dev" in split:  # each row's 90% interval, fitted on dev, holds about 90% of the test items
        coverage = table["interval coverage"].dropna()
        assert len(coverage) == len(table) and coverage.between(0.8, 1.0).all()
        assert (table["interval coverage_low"] < coverage).all() and (coverage < table["interval coverage_high"]).all()
        assert (table["interval width"] > 0).all()
        assert {"pre-specified: distribution regression (ridge)", "label-free (entropy) choice"} <= set(table.index)
        assert comp.honesty is not None and comp.honesty.recommended  # 1-5 beats the default on dev
    else:
        assert "interval coverage" not in table
    _check_the_effects(comp)


def _check_the_effects(comp) -> None:
    """Every row but the default (and the oracle) against the default: Δ r, its paired
    interval, p, and Holm's adjustment over the rows of this table."""
    from numbias.core.inference import holm

    table = comp.table.set_index("row")
    default = table.loc["original (paper default)"]
    assert np.isnan(default[["Δ r", "p", "p adjusted"]].astype(float)).all() and default["vs default"] == ""
    tested = table.drop(index=["original (paper default)"])
    tested = tested[tested["family"] != "oracle"]
    assert set(comp.effects) == set(tested.index) and len(tested) > 5
    np.testing.assert_allclose(tested["Δ r"], tested["pearson"] - default["pearson"], atol=1e-12)
    assert (tested["Δ r_low"] <= tested["Δ r"]).all() and (tested["Δ r"] <= tested["Δ r_high"]).all()
    np.testing.assert_array_equal(tested["p adjusted"], holm(tested["p"].to_numpy()))
    assert (tested["p adjusted"] >= tested["p"]).all() and (tested["p adjusted"] > tested["p"]).any()
    for row, r in tested.iterrows():  # a row is marked only where the adjusted test rejects
        expected = ("better" if r["Δ r"] > 0 else "worse") if r["p adjusted"] < 0.05 else "within noise"
        assert r["vs default"] == expected, row
    assert table.loc["automatic choice", "vs default"] == "better"


def test_the_mode_moves_with_temperature_for_multi_token_scores() -> None:
    """Not a bug: "end of number" is many tokens, "0" after "1" is one, and each step
    is rescaled on its own, so on 1-10 the most probable score can change with T."""
    from numbias.backends.fake import FakeBackend
    from numbias.data.prompt import Prompt

    pieces = ["1", "0", "x", "y", "z"]
    table = {(): [3.0, -9, -9, -9, -9], (0,): [-9, 1.0, 0.4, 0.4, 0.4], (0, 1): [-9, -9, 3.0, 3.0, 3.0]}
    dist = next(FakeBackend(pieces, table).score([Prompt("q")], ScoreScale(1, 10)))
    assert np.argmax(dist.probs) == 0  # "1": the three end tokens together outweigh "0"
    assert np.argmax(dist.at(0.4).probs) == 9  # "10": sharpened, the single "0" wins


def _peaked(target: np.ndarray, scale: ScoreScale) -> list[ScoreDistribution]:
    """A sharp judge centred on ``target`` (on the unit interval) for each item."""
    return [_dist(-2.0 * (scale.values - t) ** 2, scale, other_logit=-30) for t in scale.from_unit(target)]


@pytest.fixture(scope="module")
def grouped() -> tuple[dict[str, SettingData], np.ndarray, np.ndarray]:
    """30 documents × 6 system outputs. Human scores = document level + output quality.
    The 1-5 judge sees only the document level (good item-level r, none within a
    document); the 0-9 judge sees only output quality (the reverse)."""
    rng = np.random.default_rng(4)
    groups = np.repeat([f"doc{i}" for i in range(30)], 6)
    level = np.repeat(rng.uniform(0.2, 0.8, 30), 6)
    quality = rng.uniform(-0.15, 0.15, len(groups))
    human = level + quality
    data = {
        "1-5": SettingData(_peaked(level + rng.uniform(-0.15, 0.15, len(groups)), SCALES["1-5"]), []),
        "0-9": SettingData(_peaked(0.5 + 2 * quality, SCALES["0-9"]), []),
    }
    return data, human, groups


def test_group_pearson_selection_picks_the_best_judge_within_groups(grouped) -> None:
    data, human, groups = grouped
    candidates = [Setting(s, "expected", 1.0, m) for s in data for m in ("none", "isotonic")]
    by_items, _ = select(candidates, data, human, (0.0, 1.0))
    by_groups, group_scores = select(candidates, data, human, (0.0, 1.0), criterion="group_pearson", groups=groups)
    assert by_items.scale == "1-5" and by_groups.scale == "0-9"
    assert group_scores[by_groups] == max(group_scores.values()) > 0.8
    assert all(np.isfinite(v) for v in group_scores.values())  # the label-using isotonic settings cross-fit
    # a label-free setting's score is group_pearson's point value over the dev items
    plain = Setting("0-9", "expected")
    pred = Fitted.fit(plain, data["0-9"], np.arange(len(human)), None).predict(data["0-9"].distributions)
    assert group_scores[plain] == pytest.approx(group_pearson(pred, human, groups).pearson.value)


def test_group_folds_keep_groups_whole(grouped) -> None:
    _, human, groups = grouped
    held_out = []
    for train, part in cross_folds(len(groups), 5, 0, groups):
        assert not set(groups[train]) & set(groups[part])
        held_out.extend(part)
    assert sorted(held_out) == list(range(len(groups)))
    # item folds do split groups
    assert any(set(groups[t]) & set(groups[p]) for t, p in cross_folds(len(groups), 5, 0, None))


def test_group_criterion_needs_groups_and_labels(grouped) -> None:
    data, human, groups = grouped
    assert set(LABEL_CRITERIA) < set(CRITERIA) and "group_pearson" in LABEL_CRITERIA
    setting = Setting("0-9", "expected")
    with pytest.raises(NumbiasError, match="needs a group column"):
        select([setting], data, human, (0.0, 1.0), criterion="group_pearson")
    with pytest.raises(NumbiasError, match="needs a group column"):
        dev_score(setting, data["0-9"], human, (0.0, 1.0), criterion="group_pearson")
    with pytest.raises(NumbiasError, match="group-level Pearson needs human scores"):
        select([setting], data, None, (0.0, 1.0), criterion="group_pearson", groups=groups)
    with pytest.raises(NumbiasError, match="one group per item"):
        select([setting], data, human, (0.0, 1.0), criterion="group_pearson", groups=groups[:10])
    with pytest.raises(NumbiasError, match="unknown selection criterion"):
        select([setting], data, human, (0.0, 1.0), criterion="vibes")


def test_mitigates_folds_are_the_one_fold_function() -> None:
    """``mitigate``'s k folds are :func:`cross_folds` and its dev/test split :func:`holdout`
    (seeded, groups kept whole), which draws the committed results' dev items: numpy's
    default generator's permutation, the items pinned here."""
    from numbias.studies.mitigation import MitigateConfig, make_splits

    for groups in (None, np.repeat(np.arange(20), 3)):
        got, want = make_splits(60, MitigateConfig(folds=3, seed=4), groups), cross_folds(60, 3, 4, groups)
        assert len(got) == len(want) == 3
        assert all(np.array_equal(a, c) and np.array_equal(b, d) for (a, b), (c, d) in zip(got, want))
    ((dev, test),) = make_splits(500, MitigateConfig(dev=200))
    assert (len(dev), len(test), dev[:12].tolist(), int(dev.sum())) == (
        200,
        300,
        [0, 2, 5, 10, 15, 18, 19, 27, 31, 32, 36, 38],
        51517,
    )
    assert dev.tolist() == sorted(np.random.default_rng(0).permutation(500)[:200]) and test.tolist() == sorted(
        set(range(500)) - set(dev.tolist())
    )
    documents = np.array([f"doc{i % 17}" for i in range(90)])  # doc0-doc4 hold 6 items, the rest 5
    ((dev, test),) = make_splits(90, MitigateConfig(dev=30, seed=3), documents)
    assert dev.tolist() == [
        3,
        8,
        10,
        11,
        13,
        16,
        20,
        25,
        27,
        28,
        30,
        33,
        37,
        42,
        44,
        45,
        47,
        50,
        54,
        59,
        61,
        62,
        64,
        67,
        71,
        76,
        78,
        79,
        81,
        84,
        88,
    ]
    assert len(test) == 59 and not set(documents[dev]) & set(documents[test])


@pytest.mark.parametrize(("n", "size", "groups"), [(10, 10, None), (10, 9, np.repeat(np.arange(2), 5))])
def test_a_holdout_that_leaves_no_test_items_is_one_line(n: int, size: int, groups: np.ndarray | None) -> None:
    with pytest.raises(NumbiasError, match=rf"^dev split of {size} items leaves no test items \(the task has {n}\)$"):
        holdout(n, size, 0, groups)


def test_row_labels_are_defined_once() -> None:
    from numbias.mitigations import FIT
    from numbias.mitigations.selection import FITTED_TEMPERATURE_ROW, family_row, scale_row, temperature_row

    assert (temperature_row(1.0), temperature_row(FIT), scale_row("1-5"), scale_row("0-9+1-5")) == (
        "temperature 1",
        FITTED_TEMPERATURE_ROW,
        "scale 1-5",
        "range ensemble 0-9+1-5",
    )
    assert (family_row("score range"), family_row("score range", dev=False)) == (
        "best score range (dev)",
        "best score range",
    )
