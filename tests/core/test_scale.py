"""Score scales: what parses, what is refused, and the map onto the unit interval."""

from __future__ import annotations

import re

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


@pytest.mark.parametrize(
    ("lo", "hi", "fragment"),
    [
        (-1, 5, "negative scores"),
        (0, 1001, "at most 1001 scores"),
        (True, 5, "must be an integer"),
        (0, 2.0, "must be an integer"),
    ],
)
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


# --- scales of labels: words, letters, reversed digits ---


@pytest.mark.parametrize(
    ("spec", "canonical", "labels", "lo"),
    [
        (
            "words: poor, fair ,good,very good,excellent",
            "words:poor,fair,good,very good,excellent",
            ["poor", "fair", "good", "very good", "excellent"],
            1,
        ),
        ("letters:A-E", "letters:A-E", ["A", "B", "C", "D", "E"], 1),
        ("letters:e..a", "letters:e-a", ["e", "d", "c", "b", "a"], 1),
        ("words:A,B,C", "letters:A-C", ["A", "B", "C"], 1),
        ("reversed:1-5", "reversed:1-5", ["5", "4", "3", "2", "1"], 1),
        ("Reversed: 0 to 9", "reversed:0-9", [str(v) for v in range(9, -1, -1)], 0),
        ("words:bad=0,ok=1,great=2", "words:bad=0,ok=1,great=2", ["bad", "ok", "great"], 0),
        ("words:great=2,bad=0,ok=1", "words:bad=0,ok=1,great=2", ["bad", "ok", "great"], 0),
        ("words:no=-1,maybe=0,yes=1", "words:no=-1,maybe=0,yes=1", ["no", "maybe", "yes"], -1),
        (
            {"labels": ["excellent", "good", "poor"], "values": [3, 2, 1]},
            "words:poor,good,excellent",
            ["poor", "good", "excellent"],
            1,
        ),
        ({"labels": ["low", "high"]}, "words:low,high", ["low", "high"], 1),
    ],
)
def test_label_scales_parse_to_one_spelling(spec: object, canonical: str, labels: list[str], lo: int) -> None:
    """Every way of writing a scale gives one canonical spelling (the store key), which
    parses back to the same scale; values run lo..hi, labels worst first."""
    scale = ScoreScale.parse(spec)  # type: ignore[arg-type]
    assert str(scale) == canonical and scale.labels == labels and scale.lo == lo
    assert ScoreScale.parse(canonical) == scale and hash(ScoreScale.parse(canonical)) == hash(scale)
    np.testing.assert_array_equal(scale.values, np.arange(lo, lo + len(labels)))
    assert eval(repr(scale)) == scale  # noqa: S307 - the repr is what builds it


def test_digit_scales_keep_their_spelling_and_repr() -> None:
    """Today's LO-HI scales are unchanged: spelling, repr, labels (store keys and every
    committed result depend on them)."""
    scale = ScoreScale.parse("1..5")
    assert (str(scale), repr(scale), scale.plain, scale.numeric) == ("1-5", "ScoreScale(lo=1, hi=5)", True, True)
    assert scale == ScoreScale(1, 5, (), False)
    assert ScoreScale.parse("reversed:1-5") != scale and not ScoreScale.parse("reversed:1-5").plain


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("words:good", "at least two labels"),
        ("words:good,fair,good", "label 'good' is given twice"),
        ("words:good,Good", "labels 'good' and 'Good' differ only in case"),
        ("words:good, ,bad", "label is empty"),
        ("words:a=1,b", "to every label"),
        ("words:a=1,b=3", "consecutive integers"),
        ("words:a=1,b=x", "must be an integer"),
        ("letters:A-a", "two letters of one case"),
        ("letters:A-A", "two letters of one case"),
        ("letters:1-5", "two letters of one case"),
        ("reversed:5-1", "lo must be below hi"),
        ("reversed:a-e", "takes a range of integers"),
        ("poor,fair,good", "not of the form LO-HI"),
        ({"labels": ["a"]}, "at least two labels"),
        ({"labels": "abc"}, "at least two labels"),
        ({"labels": ["yes", True]}, "is not text"),
        ({"labels": ["a", "b"], "values": [1]}, "one integer per label"),
        ({"labels": ["a", "b"], "values": [1.5, 2.5]}, "must be integers"),
        ({"labels": ["a", "b"], "scale": "x"}, "scale keys ['scale'] are unknown"),
        ({"values": [1, 2]}, "needs labels"),
    ],
)
def test_bad_label_scales_are_one_line_errors(spec: object, fragment: str) -> None:
    with pytest.raises(NumbiasError, match=re.escape(fragment)) as caught:
        ScoreScale.parse(spec)  # type: ignore[arg-type]
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("label", ["A+", "x,y", "a=b", "tab\there"])
def test_labels_hold_no_separator(label: str) -> None:
    """',' '=' and '+' separate labels, values and an ensemble's scales in a scale's
    spelling, so a label may not hold them (nor control characters)."""
    with pytest.raises(NumbiasError, match="which a label may not hold"):
        ScoreScale.from_labels([label, "b"])


def test_label_reading_and_values() -> None:
    """An answer reads as the longest label it opens with that no letter or digit
    continues; a label's first letter may be capitalised; the rest is other."""
    scale = ScoreScale.parse("words:good,very good,goodish")
    other = scale.size + 2
    cases = {
        "good": 0,
        " good.": 0,
        "Good!": 0,
        "good job": 0,
        "goodness": other,
        "very": other,
        "very good": 1,
        " Very good,": 1,
        "very goodness": other,
        "goodish": 2,
        "GOOD": other,
        "": other,
    }
    assert {text: scale.read(text) for text in cases} == cases
    assert scale.read("good", goes_on=True) == other
    assert (scale.label_of(2), scale.label_of(2.8), scale.width) == ("very good", "goodish", 9)
    with pytest.raises(NumbiasError, match="not on the scale"):
        scale.label_of(7)


def test_reversed_digits_read_mirrored() -> None:
    """On reversed:1-5 the rubric's 1 is the best answer: "1" has value 5, and a number
    beyond the best (0) counts above the scale, beyond the worst (6) below."""
    scale = ScoreScale.parse("reversed:1-5")
    assert [scale.read(t) for t in ["1", " 5", "3.", "0", "6", "05"]] == [4, 0, 2, 6, 5, 7]
    assert scale.label_of(5) == "1"
