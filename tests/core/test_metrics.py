"""Every metric against scipy or a hand-computed reference on fixed arrays."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from numbias.core.metrics import (
    _kendall_rows,
    _spearman_rows,
    bootstrap,
    evaluate,
    group_pearson,
    histogram,
    human_ceiling,
    item_scores,
    kurtosis,
    normalised_entropy,
    pearson_rows,
)
from numbias.core.scale import ScoreScale
from numbias.util.errors import NumbiasError

RNG = np.random.default_rng(7)
A = RNG.normal(size=60)
B = A + RNG.normal(size=60)


def test_kurtosis_matches_scipy_fisher() -> None:
    assert kurtosis(A) == pytest.approx(stats.kurtosis(A, fisher=True, bias=True))
    x = np.array([1.0, 2, 2, 3, 9])
    m = x.mean()
    hand = ((x - m) ** 4).mean() / ((x - m) ** 2).mean() ** 2 - 3
    assert kurtosis(x) == pytest.approx(hand)


def test_correlations_match_scipy() -> None:
    assert pearson_rows(A[None], B[None])[0] == pytest.approx(stats.pearsonr(A, B).statistic)
    assert _spearman_rows(A[None], B[None])[0] == pytest.approx(stats.spearmanr(A, B).statistic)
    assert _kendall_rows(A[None], B[None])[0] == pytest.approx(stats.kendalltau(A, B).statistic)


def test_entropy_and_histogram_by_hand() -> None:
    scale = ScoreScale(0, 3)
    hist = histogram(np.array([0, 0, 1, 3, 2.6]), scale)
    np.testing.assert_allclose(hist, [0.4, 0.2, 0.0, 0.4])
    p = np.array([0.4, 0.2, 0.4])
    assert normalised_entropy(hist) == pytest.approx(-(p * np.log(p)).sum() / np.log(4))
    assert normalised_entropy(np.full(4, 0.25)) == pytest.approx(1.0)


def test_js_and_wasserstein_against_scipy() -> None:
    scale = ScoreScale(0, 9)
    scores = np.array([8.0, 8, 8, 7, 2, 8])
    human = np.array([10.0, 90, 70, 60, 20, 80])
    m = evaluate(scores, human, (0.0, 100.0), scale, n_boot=50)
    mapped = human / 100 * 9
    expected_js = jensenshannon(histogram(scores, scale), histogram(mapped, scale), base=2) ** 2
    assert m.js_divergence == pytest.approx(expected_js)
    assert m.wasserstein == pytest.approx(stats.wasserstein_distance(scores, mapped) / 9)
    assert m.mode == 8 and m.mode_share == pytest.approx(4 / 6) and m.distinct == 3


def test_bootstrap_reproducible_for_seed() -> None:
    one = bootstrap(A, B, pearson_rows, n_boot=300, seed=3)
    two = bootstrap(A, B, pearson_rows, n_boot=300, seed=3)
    other = bootstrap(A, B, pearson_rows, n_boot=300, seed=4)
    assert (one.low, one.high) == (two.low, two.high)
    assert (one.low, one.high) != (other.low, other.high)
    assert one.low < one.value < one.high


def test_constant_scores_give_nan_with_reason_and_no_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = evaluate(np.full(20, 8.0), A[:20], (-5.0, 5.0), ScoreScale(0, 9), n_boot=50)
    assert np.isnan(m.kurtosis) and np.isnan(m.pearson.value) and np.isnan(m.spearman.low)
    assert any("same score" in n for n in m.notes)


def test_item_score_rules() -> None:
    scale = ScoreScale(1, 3)
    probs = np.array([[0.2, 0.2, 0.4]])
    rest = np.array([[0.1, 0.1, 0.0]])  # below, above, other
    assert item_scores(probs, rest, scale, "greedy")[0] == 3
    assert item_scores(probs, rest, scale, "expected")[0] == pytest.approx((0.2 + 0.4 + 1.2) / 0.8)
    assert item_scores(probs, rest, scale, "median")[0] == 2
    assert item_scores(probs, rest, scale, "protocol")[0] == pytest.approx((0.3 * 1 + 0.4 + 0.5 * 3) / 1.0)


def test_human_ceiling_spearman_brown() -> None:
    truth = RNG.normal(size=200)
    ratings = [list(t + RNG.normal(scale=0.5, size=10)) for t in truth]
    ceiling = human_ceiling(ratings, splits=20)
    # 10 raters with noise variance 0.25 around unit-variance truth: reliability ~ 1/(1+0.025)
    assert 0.95 < ceiling < 0.995


def _grouped(sizes: dict[str, int], seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Judge and human scores for groups of the given sizes, items of different groups
    interleaved (so a group's items are not contiguous)."""
    rng = np.random.default_rng(seed)
    groups = rng.permutation(np.repeat(list(sizes), list(sizes.values())))
    human = rng.normal(size=len(groups))
    return human + rng.normal(size=len(groups)), human, groups


def _scipy_group_r(scores: np.ndarray, human: np.ndarray, groups: np.ndarray) -> list[float]:
    return [stats.pearsonr(scores[groups == g], human[groups == g])[0] for g in dict.fromkeys(groups)]


def test_group_pearson_is_the_mean_of_within_group_scipy_r() -> None:
    scores, human, groups = _grouped({"doc-a": 4, "doc-b": 7, "doc-c": 3, "doc-d": 10})
    res = group_pearson(scores, human, groups, n_boot=200)
    assert res.pearson.value == pytest.approx(np.mean(_scipy_group_r(scores, human, groups)))
    assert (res.groups, res.skipped, res.notes) == (4, 0, [])
    # not the item-level r
    assert res.pearson.value != pytest.approx(stats.pearsonr(scores, human)[0])
    # integer labels work the same
    codes = np.unique(groups, return_inverse=True)[1]
    assert group_pearson(scores, human, codes, n_boot=200).pearson == res.pearson


def test_unusable_groups_are_skipped_with_a_note_and_no_warnings() -> None:
    scores, human, groups = _grouped({"a": 5, "b": 6})
    usable = np.mean(_scipy_group_r(scores, human, groups))
    # three groups of fewer than three items, two with constant human scores, one where the judge gave one score
    extra_groups = ["s1", "s2", "s2", "s3", "h1", "h1", "h1", "h2", "h2", "h2", "j", "j", "j"]
    extra_scores = [1.0, 2.0, 2.5, 3.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 7.0, 7.0]
    extra_human = [0.5, 0.1, 0.4, 0.2, 0.3, 0.3, 0.3, 0.9, 0.9, 0.9, 0.1, 0.2, 0.3]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = group_pearson(
            np.append(scores, extra_scores), np.append(human, extra_human), np.append(groups, extra_groups), n_boot=100
        )
    assert res.pearson.value == pytest.approx(usable)
    assert (res.groups, res.skipped) == (2, 6)
    assert res.notes == [
        "3 group(s) of fewer than three items skipped",
        "2 group(s) with constant human scores skipped",
        "1 group(s) where the judge gave one score skipped",
    ]


def test_group_pearson_drops_items_missing_a_score_or_a_group() -> None:
    scores, human, groups = _grouped({"a": 5, "b": 6})
    expected = group_pearson(scores, human, groups, n_boot=100)
    res = group_pearson(
        np.append(scores, [np.nan, 3.0, 4.0]),
        np.append(human, [0.1, 0.2, np.nan]),
        np.append(groups.astype(object), ["a", None, "b"]),
        n_boot=100,
    )
    assert res.pearson == expected.pearson
    assert res.notes == [
        "1 item(s) with no numeric answer dropped",
        "1 item(s) with no human score dropped",
        "1 item(s) with no group dropped",
    ]


def test_no_usable_group_gives_nan_and_a_note() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = group_pearson(
            np.array([1.0, 2.0, 3.0, 4.0, 4.0]),
            np.array([1.0, 1.0, 2.0, 3.0, 5.0]),
            np.array(["a", "a", "b", "c", "c"]),
        )
        empty = group_pearson(np.full(3, np.nan), np.ones(3), np.array([1, 1, 2]))
    assert np.isnan(res.pearson.value) and np.isnan(res.pearson.low) and np.isnan(res.pearson.high)
    assert (res.groups, res.skipped) == (0, 3)
    assert any("group-level Pearson undefined" in n for n in res.notes)
    assert np.isnan(empty.pearson.value) and empty.groups == 0
    with pytest.raises(NumbiasError, match="one group per item"):
        group_pearson(np.ones(3), np.ones(3), np.array([1, 2]))


def test_group_bootstrap_resamples_groups() -> None:
    # resampling two groups, a quarter of the resamples are group one twice (mean r1),
    # a quarter group two twice: the percentile CI is exactly [min r, max r]. Resampling
    # items would move each group's r and give other bounds.
    scores, human, groups = _grouped({"a": 12, "b": 15}, seed=1)
    scores[groups == "b"] = -scores[groups == "b"]
    r = _scipy_group_r(scores, human, groups)
    assert min(r) < -0.3 and max(r) > 0.3
    res = group_pearson(scores, human, groups, n_boot=500, seed=5)
    assert (res.pearson.low, res.pearson.high) == (pytest.approx(min(r)), pytest.approx(max(r)))
    # many groups: within [min r, max r], reproducible for a seed, moved by another seed
    scores, human, groups = _grouped({f"g{i}": 3 + i % 5 for i in range(30)}, seed=2)
    r = _scipy_group_r(scores, human, groups)
    one, two, other = (group_pearson(scores, human, groups, n_boot=300, seed=s).pearson for s in (3, 3, 4))
    assert min(r) <= one.low < one.value < one.high <= max(r)
    assert one == two and (one.low, one.high) != (other.low, other.high)
    # the width of a CI for the mean of 30 group-level values
    assert one.high - one.low == pytest.approx(2 * 1.96 * np.std(r) / np.sqrt(len(r)), rel=0.3)


def test_evaluate_with_groups_fills_the_group_fields() -> None:
    scores, human, groups = _grouped({"a": 6, "b": 8, "c": 5, "d": 1})
    scale = ScoreScale(0, 9)
    scores = np.clip(np.rint(4.5 + 2 * scores), 0, 9)
    scores[0] = np.nan
    m = evaluate(scores, human, (-3.0, 3.0), scale, groups=groups, n_boot=100, seed=2)
    keep = ~np.isnan(scores)
    direct = group_pearson(scores[keep], human[keep], groups[keep], n_boot=100, seed=2)
    assert m.group_pearson == direct.pearson and m.groups == 3
    assert m.notes == ["1 item(s) with no numeric answer dropped", "1 group(s) of fewer than three items skipped"]
    flat = m.flat()
    keys = list(flat)
    assert keys[keys.index("human_ceiling") + 1 :] == [
        "group_pearson",
        "group_pearson_low",
        "group_pearson_high",
        "groups",
        "notes",
        "sd_ratio",
        "human_mode_share",
        "out_of_scale",
        "non_numeric",
    ]  # new columns come last
    assert flat["group_pearson"] == direct.pearson.value and flat["groups"] == 3
    plain = evaluate(scores, human, (-3.0, 3.0), scale, n_boot=100)
    assert np.isnan(plain.group_pearson.value) and np.isnan(plain.group_pearson.low) and plain.groups == 0
    assert plain.notes == ["1 item(s) with no numeric answer dropped"]


def test_risk_averse_rules() -> None:
    """quantile:Q is the lowest value whose cumulative in-scale mass reaches Q (0.5: the
    median), mean-sd:L the expected value less L standard deviations; both ignore the
    out-of-scale and other mass, like expected and median."""
    scale = ScoreScale(1, 4)
    probs = np.array([[0.1, 0.2, 0.3, 0.2], [0.0, 0.0, 0.0, 0.0], [0.0, 0.5, 0.5, 0.0]])
    rest = np.array([[0.1, 0.0, 0.1], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(
        item_scores(probs, rest, scale, "quantile:0.5"), item_scores(probs, rest, scale, "median")
    )
    np.testing.assert_array_equal(item_scores(probs, rest, scale, "quantile:0.2"), [2.0, np.nan, 2.0])
    np.testing.assert_array_equal(item_scores(probs, rest, scale, "quantile:0.9"), [4.0, np.nan, 3.0])
    mean = (0.1 * 1 + 0.2 * 2 + 0.3 * 3 + 0.2 * 4) / 0.8
    sd = np.sqrt((0.1 * (1 - mean) ** 2 + 0.2 * (2 - mean) ** 2 + 0.3 * (3 - mean) ** 2 + 0.2 * (4 - mean) ** 2) / 0.8)
    np.testing.assert_allclose(item_scores(probs, rest, scale, "mean-sd:0.5"), [mean - 0.5 * sd, np.nan, 2.25])
    np.testing.assert_array_equal(
        item_scores(probs, rest, scale, "mean-sd:0"), item_scores(probs, rest, scale, "expected")
    )


@pytest.mark.parametrize(
    ("rule", "fragment"),
    [
        ("quantile:0", "Q must be above 0 and below 1"),
        ("quantile:1", "Q must be above 0"),
        ("mean-sd:-1", "L must be a finite number, 0 or more"),
        ("mean-sd:inf", "L must be a finite"),
        ("quantile:low", "'low' is not a number"),
        ("quantile", "unknown rule"),
        ("mode", "unknown rule"),
    ],
)
def test_bad_rules(rule: str, fragment: str) -> None:
    with pytest.raises(NumbiasError, match=fragment):
        item_scores(np.ones((1, 3)) / 3, np.zeros((1, 3)), ScoreScale(1, 3), rule)
