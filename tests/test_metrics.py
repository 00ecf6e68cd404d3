"""Every metric against scipy or a hand-computed reference on fixed arrays."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from numbias.metrics import (
    bootstrap,
    evaluate,
    histogram,
    human_ceiling,
    item_scores,
    kurtosis,
    normalised_entropy,
    _kendall_rows,
    _pearson_rows,
    _spearman_rows,
)
from numbias.scale import ScoreScale

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
    assert _pearson_rows(A[None], B[None])[0] == pytest.approx(stats.pearsonr(A, B).statistic)
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
    one = bootstrap(A, B, _pearson_rows, n_boot=300, seed=3)
    two = bootstrap(A, B, _pearson_rows, n_boot=300, seed=3)
    other = bootstrap(A, B, _pearson_rows, n_boot=300, seed=4)
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
