"""One number formatter for the command line and the report: the texts each pinned."""

from __future__ import annotations

import doctest

import pytest

import numbias.util.fmt
from numbias.core.inference import Effect
from numbias.util.fmt import fmt_ci, fmt_num, fmt_p


def test_the_examples_pass() -> None:
    assert doctest.testmod(numbias.util.fmt, optionflags=doctest.ELLIPSIS).failed == 0


@pytest.mark.parametrize(
    ("args", "kwargs", "text"),
    [
        ((-0.4567,), {}, "−0.46"),
        ((-0.001,), {}, "0.00"),
        ((12345.678,), {}, "12,345.68"),
        ((0.456,), {"percent": True}, "46%"),
        ((-0.031,), {"signed": True}, "−0.03"),
        ((-0.001,), {"signed": True}, "0.00"),
        ((-0.001,), {"plain": True}, "-0.00"),
        ((0.1234, 3), {"plain": True}, "0.123"),
        ((float("nan"), 3), {"plain": True, "missing": ""}, ""),
        ((float("inf"),), {}, "—"),
        ((None,), {}, "—"),
    ],
)
def test_numbers(args: tuple, kwargs: dict, text: str) -> None:
    assert fmt_num(*args, **kwargs) == text


def test_intervals_and_p_values() -> None:
    assert fmt_ci(-0.6, -0.75, -0.41, plain=True) == "-0.60 [-0.75, -0.41]"
    assert fmt_ci(float("nan"), 0.0, 1.0) == "—"
    assert (
        Effect(0.1, 0.04, 0.16, 0.01, 50).text()
        == fmt_ci(0.1, 0.04, 0.16, signed=True, plain=True)
        == "+0.10 [+0.04, +0.16]"
    )
    assert (fmt_p(0.0304), fmt_p(0.0009), fmt_p(0.0042, significant=True), fmt_p(None)) == (
        "0.030",
        "<0.001",
        "0.0042",
        "—",
    )
