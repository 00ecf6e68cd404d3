"""Score distributions: masses, tempered copies, the rules' readings, and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from numbias.core.distribution import ScoreDistribution, check_temperatures, stack
from numbias.core.metrics import item_scores
from numbias.core.scale import ScoreScale
from numbias.util.errors import NumbiasError

SCALE = ScoreScale(1, 4)


def _skewed() -> ScoreDistribution:
    """Mass 0.8 in scale (0.1, 0.2, 0.4, 0.1), 0.05 below, 0.05 above, 0.1 other,
    with exact copies read at T = 0.5 and T = 2."""
    cold = ScoreDistribution(SCALE, np.array([0.0, 0.1, 0.8, 0.0]), 0.0, 0.0, 0.1, temperature=0.5)
    hot = ScoreDistribution(SCALE, np.array([0.2, 0.2, 0.2, 0.2]), 0.05, 0.05, 0.1, temperature=2.0)
    return ScoreDistribution(SCALE, np.array([0.1, 0.2, 0.4, 0.1]), 0.05, 0.05, 0.1, tempered={0.5: cold, 2.0: hot})


def test_masses_sum_to_one() -> None:
    d = _skewed()
    assert d.total == pytest.approx(1.0) and d.out_of_scale == pytest.approx(0.1)
    assert d.probs.dtype == float and not d.is_sampled
    assert ScoreDistribution(SCALE, [0.5, 0.5, 0, 0], n_samples=10).is_sampled


def test_tempered_copies() -> None:
    d = _skewed()
    assert d.at(1.0) is d and d.at(1) is d
    assert d.at(0.5) is d.tempered[0.5] and d.at(2.0).probs.tolist() == [0.2, 0.2, 0.2, 0.2]
    assert d.at(0.5).at(0.5) is d.at(0.5)  # a copy is itself at its own temperature
    with pytest.raises(NumbiasError, match=r"temperature 0.7 was not read; stored: 0.5, 1, 2"):
        d.at(0.7)
    with pytest.raises(NumbiasError, match="sampled distribution cannot be re-read"):
        ScoreDistribution(SCALE, [1.0, 0, 0, 0], n_samples=5).at(1.0)


def test_expected_median_greedy_and_protocol_values() -> None:
    probs, rest = stack([_skewed()])
    assert probs.shape == (1, 4) and rest.tolist() == [[0.05, 0.05, 0.1]]
    assert item_scores(probs, rest, SCALE, "greedy")[0] == 3.0
    assert item_scores(probs, rest, SCALE, "expected")[0] == pytest.approx((0.1 + 0.4 + 1.2 + 0.4) / 0.8)
    assert item_scores(probs, rest, SCALE, "median")[0] == 3.0  # CDF 0.1, 0.3, 0.7 ≥ 0.4
    # out-of-scale mass clipped to the ends, non-numbers dropped
    assert item_scores(probs, rest, SCALE, "protocol")[0] == pytest.approx((0.15 + 0.4 + 1.2 + 0.6) / 0.9)
    none_in_scale = stack([ScoreDistribution(SCALE, np.zeros(4), other=1.0)])
    assert np.isnan(item_scores(*none_in_scale, SCALE, "expected")[0])


def test_dict_round_trip_keeps_everything() -> None:
    d = ScoreDistribution(
        SCALE,
        np.array([0.1, 0.2, 0.4, 0.1]),
        0.05,
        0.05,
        0.1,
        temperature=None,
        tempered=_skewed().tempered,
        meta={"cut": 12},
    )
    back = ScoreDistribution.from_dict(d.to_dict())
    np.testing.assert_array_equal(back.probs, d.probs)
    assert (back.scale, back.below, back.above, back.other, back.n_samples, back.temperature) == (
        SCALE,
        0.05,
        0.05,
        0.1,
        None,
        None,
    )
    assert back.meta == {"cut": 12} and sorted(back.tempered) == [0.5, 2.0]
    np.testing.assert_array_equal(back.at(0.5).probs, d.at(0.5).probs)
    assert back.at(2.0).temperature == 2.0
    assert "cut" not in ScoreDistribution(SCALE, np.ones(4) / 4).to_dict()


@pytest.mark.parametrize("probs", [[0.5, 0.5], [[0.25] * 4]])
def test_wrong_number_of_probabilities(probs: list) -> None:
    with pytest.raises(NumbiasError, match="expected 4 probabilities"):
        ScoreDistribution(SCALE, probs)


def test_temperature_grid() -> None:
    assert check_temperatures([2.0, 0.5, 0.5]) == (0.5, 1.0, 2.0)
    assert check_temperatures([]) == (1.0,)
    with pytest.raises(NumbiasError, match="temperatures must be positive, got 0"):
        check_temperatures([0.0, 1.0])
