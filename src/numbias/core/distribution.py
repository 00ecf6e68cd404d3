"""The judge's exact next-output distribution over a score scale, per item."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from scipy import special

from numbias.core.scale import ScoreScale
from numbias.util.errors import NumbiasError

TEMPERATURES = (0.25, 0.4, 0.55, 0.7, 0.85, 1.0, 1.15, 1.3, 1.5, 1.75, 2.0, 2.5)
"""Temperatures at which exact backends also read every trie node, so temperature
scaling (the paper's 0.4/0.7/1.0/1.3 and a grid to fit T on) needs no model call."""
AMATEUR = "amateur"
"""The ``meta`` key of the amateur judge's distribution of the same item at the same
scale (:func:`paired`), which a contrast divides by."""
AMATEUR_FLOOR = 1e-12
"""The least share an amateur's label counts with in a contrast: a label the amateur
gives no probability gets a finite boost, ``-λ·log(1e-12)`` at most (27.6 at λ = 1)."""


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


def mixture_rows(
    parts: Sequence[tuple[ScoreScale, np.ndarray, np.ndarray]],
    grid: ScoreScale,
    weights: Sequence[float] | np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`mixture` of many items at once: each part a scale with its items × labels
    probabilities and items × 3 (below, above, other) masses; the mixed items × grid
    probabilities and items × 3 masses."""
    w = np.full(len(parts), 1.0 / len(parts)) if weights is None else np.asarray(weights, float) / np.sum(weights)
    mass = np.column_stack([probs.sum(axis=1) for _, probs, _ in parts])
    shape_w = np.where(mass > 0, w, 0.0)
    shape = np.zeros((len(mass), grid.size))
    for (scale, probs, _), wk, mk in zip(parts, shape_w.T, mass.T):
        where = np.rint(scale.to_unit(scale.values) * (grid.hi - grid.lo)).astype(int)
        np.add.at(
            shape.T,
            where,  # labels a coarse grid rounds together add up
            np.divide(wk[:, None] * probs, mk[:, None], out=np.zeros_like(probs), where=mk[:, None] > 0).T,
        )
    total = shape_w.sum(axis=1, keepdims=True)
    probs = np.divide(shape, total, out=shape.copy(), where=total > 0) * np.where(total > 0, mass @ w[:, None], 1.0)
    return probs, sum(wk * rest for wk, (_, _, rest) in zip(w, parts))


def mixture(
    parts: Sequence[ScoreDistribution], grid: ScoreScale, weights: Sequence[float] | np.ndarray | None = None
) -> ScoreDistribution:
    """One item read at several scales as one distribution on ``grid`` (a range
    ensemble): each part's in-scale shape placed at its scores' positions on the
    unit interval and the shapes averaged (``weights``: equal by default), so its
    expected score is the mean of the parts' unit-scaled expected scores; the
    in-scale, out-of-scale and other masses are the parts' averages. The parts stay in
    ``meta["parts"]``, and re-reading at a temperature re-reads every part."""
    w = np.full(len(parts), 1.0 / len(parts)) if weights is None else np.asarray(weights, float) / np.sum(weights)
    probs, rest = mixture_rows([(p.scale, p.probs[None], p.row[None, -3:]) for p in parts], grid, w)
    common = set.intersection(*(set(p.tempered) for p in parts)) if all(p.tempered for p in parts) else set()
    return ScoreDistribution(
        grid,
        probs[0],
        below=float(rest[0, 0]),
        above=float(rest[0, 1]),
        other=float(rest[0, 2]),
        tempered={t: mixture([p.at(t) for p in parts], grid, w) for t in sorted(common)},
        meta={"parts": tuple(parts)},
    )


def check_lambda(lam: object) -> float:
    """A contrast's λ: a number from 0 (the expert alone) to 1 (the expert divided by
    the amateur), else one line."""
    if isinstance(lam, bool) or not isinstance(lam, (int, float, np.integer, np.floating)) or not 0 <= lam <= 1:
        raise NumbiasError(f"a contrast needs λ from 0 to 1, got {lam!r}")
    return float(lam)


def contrast_rows(expert: np.ndarray, amateur: np.ndarray, lam: float) -> np.ndarray:
    """:func:`contrast` over items × labels matrices of in-scale probabilities (the
    expert's, the amateur's), all items at once: each row keeps the expert's in-scale
    mass; a row with none stays as it is."""
    lam = check_lambda(lam)
    mass = expert.sum(axis=1, keepdims=True)
    a_mass = amateur.sum(axis=1, keepdims=True)
    shares = np.divide(amateur, a_mass, out=np.full_like(amateur, 1.0 / amateur.shape[1]), where=a_mass > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        logits = np.log(expert) - lam * np.log(np.maximum(shares, AMATEUR_FLOOR))
        out = special.softmax(logits, axis=1) * mass
    return np.where(mass > 0, out, expert)


def contrast(expert: ScoreDistribution, amateur: ScoreDistribution, lam: float) -> ScoreDistribution:
    """The expert contrasted with the amateur (contrastive decoding, Li et al. 2023):
    over the scale's labels, softmax of ``log p_expert − λ·log p_amateur``, each judge's
    probabilities taken as shares of its in-scale mass, so two judges with different
    tokenizers compare label by label. A label the expert gives no probability stays at
    none; the amateur's shares are floored at :data:`AMATEUR_FLOOR`. The result keeps
    the expert's in-scale mass and its out-of-scale and other masses: λ = 0 gives the
    expert back, and a judge contrasted with itself at λ = 1 is uniform over its labels.

    >>> from numbias import ScoreScale
    >>> e = ScoreDistribution(ScoreScale(1, 3), [0.6, 0.3, 0.0], other=0.1)
    >>> a = ScoreDistribution(ScoreScale(1, 3), [0.5, 0.25, 0.25])
    >>> contrast(e, a, 1.0).probs.round(3).tolist(), contrast(e, e, 1.0).probs.round(3).tolist()
    ([0.45, 0.45, 0.0], [0.45, 0.45, 0.0])
    """
    if expert.scale != amateur.scale:
        raise NumbiasError(f"a contrast needs both judges on one scale, got {expert.scale} and {amateur.scale}")
    probs = contrast_rows(expert.probs[None], amateur.probs[None], lam)[0]
    return dataclasses.replace(expert, probs=probs, tempered={}, meta={})


def paired(expert: ScoreDistribution, amateur: ScoreDistribution, **meta: Any) -> ScoreDistribution:
    """The expert's distribution carrying the amateur's of the same item at the same
    scale (``meta[AMATEUR]``) and ``meta``, at every temperature both were read at, so a
    contrast reads both at the setting's temperature."""
    if expert.scale != amateur.scale:
        raise NumbiasError(f"a contrast needs both judges on one scale, got {expert.scale} and {amateur.scale}")
    tempered = {
        t: paired(d, amateur.tempered[t], **meta) if t in amateur.tempered else d for t, d in expert.tempered.items()
    }
    return dataclasses.replace(expert, tempered=tempered, meta={**expert.meta, **meta, AMATEUR: amateur})
