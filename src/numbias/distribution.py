"""The judge's exact next-output distribution over a score scale, per item."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from numbias.errors import NumbiasError
from numbias.scale import ScoreScale

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

    def at(self, temperature: float) -> ScoreDistribution:
        """The exact distribution at softmax temperature ``temperature``."""
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
            meta={"cut": int(data["cut"])} if data.get("cut") else {},
        )


def stack(distributions: list[ScoreDistribution]) -> tuple[np.ndarray, np.ndarray]:
    """Items × scores probability matrix and items × 3 (below, above, other) masses."""
    probs = np.vstack([d.probs for d in distributions])
    rest = np.array([[d.below, d.above, d.other] for d in distributions], dtype=float)
    return probs, rest
