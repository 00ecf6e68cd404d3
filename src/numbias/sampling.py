"""Sampling: drawing tokens, and reading a score out of a sampled answer."""

from __future__ import annotations

import re

import numpy as np

from numbias.distribution import ScoreDistribution
from numbias.scale import ScoreScale

PROTOCOL_TEMPERATURE = 0.7
"""The paper's sampling temperature; its ``protocol`` rule is read there by default."""


def draw_token(logits: np.ndarray, temperature: float, rng: np.random.Generator) -> int:
    """One token from softmax(logits / T) over the whole vocabulary; T = 0 is greedy."""
    if temperature <= 0:
        return int(np.argmax(logits))
    z = np.asarray(logits, dtype=np.float64) / temperature
    p = np.exp(z - z.max())
    cdf = np.cumsum(p)
    return int(min(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"), len(p) - 1))


_LEADING = re.compile(r"^ ?([0-9]+)(?![0-9])")


def categorize(text: str, scale: ScoreScale) -> int:
    """The exact distribution's reading of an answer: an optional single space, then
    digits. Returns the score's index, or ``size`` (below), ``size+1`` (above),
    ``size+2`` (other) as in :class:`numbias.trie.ScoreTrie`."""
    match = _LEADING.match(text)
    if not match:
        return scale.size + 2
    digits = match.group(1)
    if len(digits) > 1 and digits[0] == "0":
        return scale.size + 2
    value = int(digits)
    if value < scale.lo:
        return scale.size
    if value > scale.hi:
        return scale.size + 1
    return value - scale.lo


_FIRST_INT = re.compile(r"-?[0-9]+")


def protocol_score(text: str, scale: ScoreScale) -> tuple[int, int] | None:
    """The paper's reading of a sampled answer: the first integer anywhere in it,
    clipped to the scale. Returns (clipped score, -1/0/+1 for below/in/above), or
    None for an answer with no number (dropped)."""
    match = _FIRST_INT.search(text)
    if not match:
        return None
    value = int(match.group(0))
    if value < scale.lo:
        return scale.lo, -1
    if value > scale.hi:
        return scale.hi, 1
    return value, 0


def sampled_distribution(texts: list[str], scale: ScoreScale, temperature: float) -> ScoreDistribution:
    """Empirical distribution of n protocol answers, stored like an exact one."""
    counts = np.zeros(scale.size)
    below = above = other = 0
    for text in texts:
        read = protocol_score(text, scale)
        if read is None:
            other += 1
            continue
        value, side = read
        if side < 0:
            below += 1
        elif side > 0:
            above += 1
        else:
            counts[value - scale.lo] += 1
    n = len(texts)
    return ScoreDistribution(scale, counts / n, below / n, above / n, other / n, n_samples=n, temperature=temperature)
