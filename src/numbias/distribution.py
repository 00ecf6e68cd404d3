"""The judge's exact next-output distribution over a score scale, per item."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from numbias.scale import ScoreScale


@dataclass(frozen=True, eq=False)
class ScoreDistribution:
    """Probability of each allowed score, plus where the rest of the mass went.

    ``below``/``above`` hold numbers outside the scale (the study clips them to the
    ends); ``other`` holds every non-numeric continuation. The four parts sum to 1.
    ``n_samples``/``temperature`` are set when the distribution is an empirical one
    from sampling rather than read exactly from the model.
    """

    scale: ScoreScale
    probs: np.ndarray
    below: float = 0.0
    above: float = 0.0
    other: float = 0.0
    n_samples: int | None = None
    temperature: float | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        probs = np.asarray(self.probs, dtype=float)
        if probs.shape != (self.scale.size,):
            raise ValueError(f"expected {self.scale.size} probabilities, got shape {probs.shape}")
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "scale": str(self.scale),
            "probs": [float(p) for p in self.probs],
            "below": float(self.below),
            "above": float(self.above),
            "other": float(self.other),
            "n_samples": self.n_samples,
            "temperature": self.temperature,
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
        )


def stack(distributions: list[ScoreDistribution]) -> tuple[np.ndarray, np.ndarray]:
    """Items × scores probability matrix and items × 3 (below, above, other) masses."""
    probs = np.vstack([d.probs for d in distributions])
    rest = np.array([[d.below, d.above, d.other] for d in distributions], dtype=float)
    return probs, rest
