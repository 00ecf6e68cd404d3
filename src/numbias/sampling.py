"""Sampling: drawing tokens, and reading a score out of a sampled answer."""

from __future__ import annotations

import re

import numpy as np

from numbias.scale import ScoreScale


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
