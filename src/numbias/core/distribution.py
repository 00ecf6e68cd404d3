"""The judge's exact next-output distribution over a score scale, per item."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from numbias.core.scale import ScoreScale
from numbias.util.errors import NumbiasError

TEMPERATURES = (0.25, 0.4, 0.55, 0.7, 0.85, 1.0, 1.15, 1.3, 1.5, 1.75, 2.0, 2.5)
"""Temperatures at which exact backends also read every trie node, so temperature
scaling (the paper's 0.4/0.7/1.0/1.3 and a grid to fit T on) needs no model call."""


def check_temperatures(temperatures: Sequence[float]) -> tuple[float, ...]:
    """A sorted, de-duplicated grid that includes T = 1 (the distribution itself)."""
    grid = tuple(sorted({1.0, *(float(t) for t in temperatures)}))
    if grid[0] <= 0:
        raise NumbiasError(f"temperatures must be positive, got {grid[0]:g}")
    return grid


@dataclass(frozen=True, eq=False)
class ScoreDistribution:
    """Probability of each allowed score, plus where the rest of the mass went.

    ``below``/``above`` hold numbers outside the scale (the study clips them to the
    ends); ``other`` holds every non-numeric continuation. The four parts sum to 1.
    ``n_samples`` is set when the distribution is an empirical one from sampling;
    ``temperature`` is the softmax temperature it was sampled or read at (None: 1).
    ``tempered`` holds the exact distribution at other temperatures, each step of
    every multi-token score rescaled by 1/T, as read by the backend.

    >>> from numbias import ScoreDistribution, ScoreScale
    >>> hot = ScoreDistribution(ScoreScale(1, 3), [0.25, 0.25, 0.25], above=0.125, other=0.125)
    >>> d = ScoreDistribution(ScoreScale(1, 3), [0.5, 0.25, 0.125], above=0.0625, other=0.0625,
    ...                       tempered={2.0: hot})
    >>> d.total, d.out_of_scale
    (1.0, 0.0625)
    >>> d.at(2.0) is hot, d.at(1.0) is d
    (True, True)
    >>> d.at(0.5)
    Traceback (most recent call last):
    ...
    numbias.util.errors.NumbiasError: temperature 0.5 was not read; stored: 1, 2
    """

    scale: ScoreScale
    probs: np.ndarray
    below: float = 0.0
    above: float = 0.0
    other: float = 0.0
    n_samples: int | None = None
    temperature: float | None = None
    tempered: dict[float, ScoreDistribution] = field(default_factory=dict, compare=False)
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        probs = np.asarray(self.probs, dtype=float)
        if probs.shape != (self.scale.size,):
            raise NumbiasError(f"expected {self.scale.size} probabilities, got shape {probs.shape}")
        object.__setattr__(self, "probs", probs)

    @property
    def out_of_scale(self) -> float:
        return self.below + self.above

    @property
    def total(self) -> float:
        return float(self.probs.sum() + self.below + self.above + self.other)

    @property
    def is_sampled(self) -> bool:
        return self.n_samples is not None

    @cached_property
    def row(self) -> np.ndarray:
        """The scores' probabilities then below, above and other, as one array (built
        once: selection stacks the same items thousands of times)."""
        return np.append(self.probs, [self.below, self.above, self.other])

    def at(self, temperature: float) -> ScoreDistribution:
        """The exact distribution at softmax temperature ``temperature``."""
        if (found := self.tempered.get(temperature)) is not None:  # the hot path of selection
            return found
        if self.is_sampled:
            raise NumbiasError("a sampled distribution cannot be re-read at another temperature")
        if temperature == (self.temperature or 1.0):
            return self
        try:
            return self.tempered[float(temperature)]
        except KeyError:
            grid = ", ".join(f"{t:g}" for t in sorted({1.0, *self.tempered}))
            raise NumbiasError(f"temperature {temperature:g} was not read; stored: {grid}") from None

    def to_dict(self) -> dict[str, Any]:
        return {
            "scale": str(self.scale),
            "probs": [float(p) for p in self.probs],
            "below": float(self.below),
            "above": float(self.above),
            "other": float(self.other),
            "n_samples": self.n_samples,
            "temperature": self.temperature,
            "tempered": {f"{t!r}": d.to_dict() for t, d in self.tempered.items()},
            **({"cut": int(self.meta["cut"])} if self.meta.get("cut") else {}),
            **({"next_token_entropy": float(h)} if (h := self.meta.get("next_token_entropy")) is not None else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScoreDistribution:
        return cls(
            scale=ScoreScale.parse(data["scale"]),
            probs=np.asarray(data["probs"], dtype=float),
            below=float(data["below"]),
            above=float(data["above"]),
            other=float(data["other"]),
            n_samples=data.get("n_samples"),
            temperature=data.get("temperature"),
            tempered={float(t): cls.from_dict(d) for t, d in data.get("tempered", {}).items()},
            meta=({"cut": int(data["cut"])} if data.get("cut") else {})
            | ({"next_token_entropy": float(data["next_token_entropy"])} if "next_token_entropy" in data else {}),
        )


def stack(distributions: list[ScoreDistribution]) -> tuple[np.ndarray, np.ndarray]:
    """Items × scores probability matrix and items × 3 (below, above, other) masses."""
    rows = np.array([d.row for d in distributions], dtype=float)
    if rows.ndim != 2:
        raise NumbiasError("cannot stack distributions on different scales")
    return rows[:, :-3].copy(), rows[:, -3:].copy()


def mixture(parts: Sequence[ScoreDistribution], grid: ScoreScale,
            weights: Sequence[float] | np.ndarray | None = None) -> ScoreDistribution:
    """One item read at several scales as one distribution on ``grid`` (a range
    ensemble): each part's in-scale shape placed at its scores' positions on the
    unit interval and the shapes averaged (``weights``: equal by default), so its
    expected score is the mean of the parts' unit-scaled expected scores; the
    in-scale, out-of-scale and other masses are the parts' averages. The parts stay in
    ``meta["parts"]``, and re-reading at a temperature re-reads every part."""
    w = np.full(len(parts), 1.0 / len(parts)) if weights is None else np.asarray(weights, float) / np.sum(weights)
    mass = np.array([p.probs.sum() for p in parts])
    shape_w = np.where(mass > 0, w, 0.0)
    shape = np.zeros(grid.size)
    for part, wk, mk in zip(parts, shape_w, mass):
        if wk > 0:
            where = np.rint(part.scale.to_unit(part.scale.values) * (grid.hi - grid.lo)).astype(int)
            np.add.at(shape, where, wk * part.probs / mk)
    probs = shape / shape_w.sum() * float(np.dot(w, mass)) if shape_w.sum() > 0 else shape
    common = set.intersection(*(set(p.tempered) for p in parts)) if all(p.tempered for p in parts) else set()
    return ScoreDistribution(
        grid, probs,
        below=float(np.dot(w, [p.below for p in parts])),
        above=float(np.dot(w, [p.above for p in parts])),
        other=float(np.dot(w, [p.other for p in parts])),
        tempered={t: mixture([p.at(t) for p in parts], grid, w) for t in sorted(common)},
        meta={"parts": tuple(parts)},
    )
