"""Integer score scales (``lo``..``hi``, step 1) that judges are asked to answer on."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from numbias.util.errors import NumbiasError

_RANGE = re.compile(r"^\s*(-?\d+)\s*(?:-|–|\.\.|:|to)\s*(-?\d+)\s*$")


PAPER_SCALE = "0-9"
"""The scale the paper asks on by default, and numbias's default."""


@dataclass(frozen=True)
class ScoreScale:
    """An inclusive integer scale such as 0–9 or 1–100.

    >>> scale = ScoreScale.parse("1..5")
    >>> scale, str(scale), scale.size, scale.labels
    (ScoreScale(lo=1, hi=5), '1-5', 5, ['1', '2', '3', '4', '5'])
    >>> scale.to_unit([1, 3, 5])
    array([0. , 0.5, 1. ])
    >>> ScoreScale.parse("5-1")
    Traceback (most recent call last):
    ...
    numbias.util.errors.NumbiasError: scale 5-1: lo must be below hi
    """

    lo: int
    hi: int

    def __post_init__(self) -> None:
        for name, value in (("lo", self.lo), ("hi", self.hi)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise NumbiasError(f"scale {name} must be an integer, got {value!r}")
        if self.lo < 0:
            raise NumbiasError(f"scale {self}: negative scores are not supported")
        if self.lo >= self.hi:
            raise NumbiasError(f"scale {self.lo}-{self.hi}: lo must be below hi")
        if self.hi - self.lo > 1000:
            raise NumbiasError(f"scale {self}: at most 1001 scores are supported")

    @classmethod
    def parse(cls, text: str | ScoreScale) -> ScoreScale:
        """Read ``"0-9"``, ``"1..100"`` or ``"1 to 5"``."""
        if isinstance(text, ScoreScale):
            return text
        match = _RANGE.match(str(text))
        if not match:
            raise NumbiasError(f"scale {text!r} is not of the form LO-HI with integers, e.g. 0-9")
        return cls(int(match.group(1)), int(match.group(2)))

    def __str__(self) -> str:
        return f"{self.lo}-{self.hi}"

    @property
    def size(self) -> int:
        return self.hi - self.lo + 1

    @cached_property
    def values(self) -> np.ndarray:
        """The allowed scores in increasing order, as floats for arithmetic."""
        return np.arange(self.lo, self.hi + 1, dtype=float)

    @property
    def labels(self) -> list[str]:
        return [str(v) for v in range(self.lo, self.hi + 1)]

    def to_unit(self, x: np.ndarray | float) -> np.ndarray:
        """Map scores on this scale linearly onto [0, 1]."""
        return (np.asarray(x, dtype=float) - self.lo) / (self.hi - self.lo)

    def from_unit(self, u: np.ndarray | float) -> np.ndarray:
        return self.lo + np.asarray(u, dtype=float) * (self.hi - self.lo)


ENSEMBLE_JOIN = "+"
"""Joins the scales of a range ensemble: ``"0-9+1-5+1-10"``."""
MAX_GRID = 1000


def ensemble_parts(text: str) -> tuple[ScoreScale, ...]:
    """The scales of a range ensemble written ``"0-9+1-5"`` (at least two, distinct)."""
    parts = tuple(ScoreScale.parse(p) for p in str(text).split(ENSEMBLE_JOIN))
    if len(parts) < 2 or len(set(parts)) < len(parts):
        raise NumbiasError(f"range ensemble {text!r} needs two or more distinct scales joined by "
                           f"{ENSEMBLE_JOIN!r}, e.g. 0-9+1-5")
    return parts


def ensemble_grid(parts: tuple[ScoreScale, ...]) -> ScoreScale:
    """The common scale ``0..L`` a range ensemble's parts are placed on: every part's
    scores land exactly on it when L, the least common multiple of the parts' spans,
    is at most 1000 (else L = 1000 and scores round to the nearest step)."""
    return ScoreScale(0, min(math.lcm(*(p.hi - p.lo for p in parts)), MAX_GRID))


def setting_scale(text: str) -> ScoreScale:
    """The scale a setting's scores are on: the scale itself, or a range ensemble's grid."""
    return ensemble_grid(ensemble_parts(text)) if ENSEMBLE_JOIN in str(text) else ScoreScale.parse(text)
