"""The contrast family: an expert judge's distribution contrasted with an amateur's over
the scale's labels, λ fixed, fitted on development labels or chosen without them."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

from numbias.core.distribution import (
    AMATEUR,
    AMATEUR_FLOOR,
    ScoreDistribution,
    check_lambda,
    contrast,
    mixture,
    paired,
)
from numbias.core.scale import ScoreScale, ensemble_grid, ensemble_parts
from numbias.mitigations import (
    CONTRAST,
    LAMBDAS,
    Contrast,
    Fitted,
    Setting,
    SettingData,
    UnfittableError,
    get_mitigation,
    select,
)
from numbias.mitigations._base import rule_scores
from numbias.studies.mitigation import parse_mitigate
from numbias.util.errors import NumbiasError

SCALE = ScoreScale(1, 5)
PLANTED = 0.6


def _dist(probs: np.ndarray, scale: ScoreScale = SCALE, **masses: float) -> ScoreDistribution:
    return ScoreDistribution(scale, np.asarray(probs, dtype=float), **masses)


def _random(rng: np.random.Generator, scale: ScoreScale = SCALE, mass: float = 0.9) -> ScoreDistribution:
    probs = rng.dirichlet(np.ones(scale.size)) * mass
    return _dist(probs, scale, below=(1 - mass) / 2, other=(1 - mass) / 2)


def test_lambda_zero_is_the_expert() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        expert = _random(rng)
        expert = _dist(np.where(np.arange(5) == 2, 0.0, expert.probs), below=expert.below, other=expert.other)
        got = contrast(expert, _random(rng), 0.0)
        np.testing.assert_allclose(got.probs, expert.probs, rtol=1e-12, atol=0)
        assert (got.below, got.above, got.other) == (expert.below, expert.above, expert.other)
        assert got.probs[2] == 0.0  # a label the expert rules out stays out


def test_a_judge_against_itself_at_one_is_uniform() -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        judge = _random(rng, mass=float(rng.uniform(0.5, 1.0)))
        got = contrast(judge, judge, 1.0)
        np.testing.assert_allclose(got.probs, np.full(5, judge.probs.sum() / 5), rtol=1e-12)
    items = [paired(d, d) for d in (_random(rng) for _ in range(5))]
    np.testing.assert_allclose(Contrast(lam=1.0).fit(items).predict(items), 3.0, rtol=1e-12)  # the middle of 1-5


def test_the_amateur_floor_and_the_hand_computed_contrast() -> None:
    """A label the amateur gives no probability counts with a share of AMATEUR_FLOOR: its
    log-ratio boost is -λ·log(1e-12); the rest is a softmax over labels by hand."""
    expert, amateur = _dist([0.25, 0.25, 0.0, 0.3, 0.1]), _dist([0.5, 0.0, 0.2, 0.2, 0.1])
    for lam in (0.3, 1.0):
        logits = np.log([0.25, 0.25, 1e-300, 0.3, 0.1]) - lam * np.log([0.5, AMATEUR_FLOOR, 0.2, 0.2, 0.1])
        hand = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum() * 0.9
        hand[2] = 0.0
        np.testing.assert_allclose(contrast(expert, amateur, lam).probs, hand, rtol=1e-12)
    assert AMATEUR_FLOOR == 1e-12


def _planted(n: int, seed: int = 0) -> tuple[list[ScoreDistribution], np.ndarray]:
    """Items whose expert reads the truth plus a bias the amateur shares, the bias's
    strength random per item: the amateur is softmax(bias / 0.6), so the contrast at λ
    = 0.6 removes the bias exactly."""
    rng = np.random.default_rng(seed)
    truth = rng.uniform(1, 5, n)
    values = SCALE.values
    items = []
    for t in truth:
        bias = rng.uniform(0, 4) * (values == 4) + rng.normal(0, 1, 5)
        expert = special.softmax(-((values - t) ** 2) / 2 + bias)
        amateur = special.softmax(bias / PLANTED)
        items.append(paired(_dist(expert * 0.95, other=0.05), _dist(amateur)))
    return items, truth


def test_fitted_lambda_recovers_a_planted_lambda() -> None:
    items, truth = _planted(200)
    fitted = Contrast(choose="labels").fit(items, truth)
    assert fitted.lam_ == PLANTED and PLANTED in LAMBDAS
    r = {lam: np.corrcoef(Contrast(lam=lam).fit(items).predict(items), truth)[0, 1] for lam in LAMBDAS}
    assert max(r, key=r.__getitem__) == PLANTED and r[PLANTED] > r[0.0] + 0.1
    # the prediction at the fitted λ is the expert's bias-free reading
    free = [_dist(special.softmax(np.log(d.probs) - PLANTED * np.log(d.meta[AMATEUR].probs)) * 0.95) for d in items]
    np.testing.assert_allclose(fitted.predict(items), [f.probs @ SCALE.values / 0.95 for f in free], rtol=1e-10)


def test_the_label_free_lambda_never_reads_labels(monkeypatch: pytest.MonkeyPatch) -> None:
    """Selection by dev Pearson r hands every label-free variant no labels; it picks the
    λ of the widest spread, the same whatever labels it might have been shown."""
    items, truth = _planted(120, seed=1)
    free = Contrast(choose="spread").fit(items)
    sds = {lam: np.std(Contrast(lam=lam).fit(items).predict(items)) for lam in LAMBDAS}
    assert free.lam_ == max(sds, key=sds.__getitem__)
    assert Contrast(choose="spread").fit(items, truth[::-1]).lam_ == free.lam_
    seen: list[tuple[str, object]] = []
    original = Contrast.fit

    def spy(self: Contrast, distributions: list, human: np.ndarray | None = None, **kw: object) -> Contrast:
        seen.append((self.choose, human))
        return original(self, distributions, human, **kw)

    monkeypatch.setattr(Contrast, "fit", spy)
    data = {"1-5": SettingData(items, [])}
    candidates = [Setting("1-5", "expected", 1.0, m) for m in ("none", "contrast", "contrast-fit", "contrast-free")]
    _, scores = select(candidates, data, truth, (1.0, 5.0))
    assert not np.isnan(list(scores.values())).any()
    assert {choose for choose, _ in seen} == {"fixed", "labels", "spread"}
    assert all(human is None for choose, human in seen if choose != "labels")
    assert any(human is not None for choose, human in seen if choose == "labels")
    assert not get_mitigation("contrast-free").needs_labels and get_mitigation("contrast-fit").needs_labels


def test_the_study_lambda_reaches_the_variants_and_the_state_keeps_it() -> None:
    items, truth = _planted(60, seed=2)
    study = [paired(d, d.meta[AMATEUR], **{CONTRAST: {"lam": 0.3, "lambdas": (0.2, 0.9)}}) for d in items]
    assert Contrast().fit(study).lam_ == 0.3
    assert Contrast(lam=0.7).fit(study).lam_ == 0.7  # a parameter given wins
    assert Contrast(choose="labels").fit(study, truth).lam_ in (0.2, 0.9)
    fitted = Fitted.fit(Setting("1-5", "expected", 1.0, "contrast"), SettingData(study, []), np.arange(60), None)
    assert fitted.get_state()["calibrator"] == {"lam_": 0.3}
    again = Fitted(fitted.setting).set_state(fitted.get_state())
    np.testing.assert_array_equal(again.predict(items), fitted.predict(items))


def test_paired_items_carry_the_amateur_at_every_temperature_and_through_an_ensemble() -> None:
    rng = np.random.default_rng(3)
    parts = ensemble_parts("1-5+0-9")
    grid = ensemble_grid(parts)
    experts = [ScoreDistribution(s, _random(rng, s).probs, tempered={0.7: _random(rng, s)}) for s in parts]
    amateurs = [ScoreDistribution(s, _random(rng, s).probs, tempered={0.7: _random(rng, s)}) for s in parts]
    pairs = [paired(e, a) for e, a in zip(experts, amateurs)]
    assert pairs[0].at(0.7).meta[AMATEUR] is amateurs[0].tempered[0.7]
    mixed = mixture(pairs, grid)
    got = Contrast(lam=0.4).fit([mixed]).transform([mixed.at(0.7)])[0]
    hand = mixture([contrast(e.tempered[0.7], a.tempered[0.7], 0.4) for e, a in zip(experts, amateurs)], grid)
    np.testing.assert_allclose(got.probs, hand.probs, rtol=1e-12)


@pytest.mark.parametrize("rule", ["expected", "protocol", "median", "greedy", "quantile:0.25"])
def test_scores_read_all_items_at_once_as_the_rule_reads_each_contrasted_item(rule: str) -> None:
    rng = np.random.default_rng(4)
    parts = ensemble_parts("1-5+0-9+letters:A-C")
    grid = ensemble_grid(parts)
    single = [paired(_random(rng), _random(rng)) for _ in range(30)]
    mixed = [mixture([paired(_random(rng, s), _random(rng, s)) for s in parts], grid) for _ in range(30)]
    for items in (single, mixed):
        cal = Contrast(rule=rule, lam=0.7).fit(items)
        np.testing.assert_allclose(cal.predict(items), rule_scores(cal.transform(items), rule), rtol=1e-12)


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda: contrast(_dist(np.ones(5) / 5), _dist(np.ones(10) / 10, ScoreScale(0, 9)), 0.5), "on one scale"),
        (lambda: paired(_dist(np.ones(5) / 5), _dist(np.ones(10) / 10, ScoreScale(0, 9))), "on one scale"),
        (lambda: contrast(_dist(np.ones(5) / 5), _dist(np.ones(5) / 5), 1.5), "λ from 0 to 1"),
        (lambda: check_lambda(True), "λ from 0 to 1"),
        (lambda: Contrast(lam=-0.1), "λ from 0 to 1"),
        (lambda: Contrast(lambdas=[]), "non-empty list"),
        (lambda: Contrast(choose="vibes"), "chooses λ by one of fixed, labels, spread"),
        (lambda: Contrast().set_params(lam=2), "λ from 0 to 1"),
        (lambda: Contrast().fit([_dist(np.ones(5) / 5)]), "amateur judge's distribution"),
        (lambda: parse_mitigate({"contrast": {"amateur": "smollm2-135m-instruct", "lam": 1.2}}), "λ from 0 to 1"),
        (
            lambda: parse_mitigate({"contrast": {"amateur": "smollm2-135m-instruct", "lambdas": [0.5, 3]}}),
            "λ from 0 to 1",
        ),
        (lambda: parse_mitigate({"contrast": {"amateur": "smollm2-135m-instruct", "lambdas": []}}), "non-empty list"),
        (lambda: parse_mitigate({"mitigations": ["none", "contrast-fit"]}), "need an amateur judge"),
        (lambda: parse_mitigate({"contrast": {"lam": 0.5}}), "amateur"),
        (
            lambda: parse_mitigate(
                {
                    "judges": [{"model": "a", "backend": "labeller", "label": "x"}],
                    "contrast": {"amateur": {"model": "b", "backend": "labeller", "label": "x"}},
                }
            ),
            "give it a label",
        ),
    ],
)
def test_bad_contrast_input_is_one_line(make: object, fragment: str) -> None:
    with pytest.raises(NumbiasError, match=fragment) as info:
        make()  # type: ignore[operator]
    assert "\n" not in str(info.value)


def test_no_defined_lambda_is_unfittable() -> None:
    flat = [paired(_dist(np.ones(5) / 5), _dist(np.ones(5) / 5)) for _ in range(5)]
    with pytest.raises(UnfittableError, match="no λ gives a defined spread"):
        Contrast(choose="spread").fit(flat[:1])
    with pytest.raises(UnfittableError, match="needs human scores"):
        Contrast(choose="labels").fit(flat)


def test_contrast_joins_the_study_only_with_an_amateur() -> None:
    config = parse_mitigate({"contrast": {"amateur": "smollm2-135m-instruct", "lambdas": [1, 0.5, 0.5]}})
    assert config.mitigations[-3:] == ["contrast", "contrast-fit", "contrast-free"]
    assert config.contrast is not None and config.contrast.lambdas == [0.5, 1.0]
    assert "contrast" not in parse_mitigate({}).mitigations
    named = parse_mitigate({"contrast": {"amateur": "smollm2-135m-instruct"}, "mitigations": ["none", "contrast"]})
    assert named.mitigations == ["none", "contrast"]
