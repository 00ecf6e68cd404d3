"""Score scales: what parses, what is refused, and the map onto the unit interval."""

from __future__ import annotations

import numpy as np
import pytest

from numbias.core.scale import ScoreScale
from numbias.util.errors import NumbiasError


@pytest.mark.parametrize("text", ["9-0", "5-5", "a-b", "1.5-3", "7"])
def test_bad_scales(text: str) -> None:
    with pytest.raises(NumbiasError):
        ScoreScale.parse(text)


def test_scale_parse() -> None:
    assert ScoreScale.parse("1..100") == ScoreScale(1, 100)
    assert ScoreScale.parse(" 0 - 9 ").size == 10


@pytest.mark.parametrize("text", ["1 to 5", "1:5", "1–5", "1-5"])
def test_every_range_spelling_gives_the_same_scale(text: str) -> None:
    scale = ScoreScale.parse(text)
    assert scale == ScoreScale(1, 5) and str(scale) == "1-5"
    assert ScoreScale.parse(scale) is scale


@pytest.mark.parametrize(("lo", "hi", "fragment"), [
    (-1, 5, "negative scores"), (0, 1001, "at most 1001 scores"), (True, 5, "must be an integer"),
    (0, 2.0, "must be an integer"),
])
def test_refused_bounds(lo: object, hi: object, fragment: str) -> None:
    with pytest.raises(NumbiasError, match=fragment):
        ScoreScale(lo, hi)  # type: ignore[arg-type]


def test_values_labels_and_the_unit_interval() -> None:
    scale = ScoreScale(1, 5)
    np.testing.assert_array_equal(scale.values, [1.0, 2.0, 3.0, 4.0, 5.0])
    assert scale.labels == ["1", "2", "3", "4", "5"]
    np.testing.assert_array_equal(scale.to_unit([1, 2, 5]), [0.0, 0.25, 1.0])
    np.testing.assert_array_equal(scale.from_unit([0.0, 0.25, 1.0]), [1.0, 2.0, 5.0])
    assert ScoreScale(0, 1000).size == 1001
