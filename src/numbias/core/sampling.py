"""Sampling: drawing tokens, and reading a score out of a sampled answer."""

from __future__ import annotations

import functools
import re

import numpy as np

from numbias.core.distribution import ScoreDistribution
from numbias.core.scale import ScoreScale

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


def categorize(text: str, scale: ScoreScale) -> int:
    """The exact distribution's reading of an answer (:meth:`ScoreScale.read`): an
    optional single space, then digits, or a label not followed by a letter or digit.
    Returns the score's index, or ``size`` (below), ``size+1`` (above), ``size+2``
    (other) as in :class:`numbias.core.trie.ScoreTrie`."""
    return scale.read(text)


_FIRST_INT = re.compile(r"-?[0-9]+")


@functools.lru_cache(maxsize=64)
def _first_label(scale: ScoreScale) -> re.Pattern[str]:
    """Any of a label scale's spellings as a whole word, the longest first."""
    words = sorted({s.lstrip(" ") for s in scale.spellings}, key=len, reverse=True)
    return re.compile(r"(?<![^\W_])(?:" + "|".join(map(re.escape, words)) + r")(?![^\W_])")


def protocol_score(text: str, scale: ScoreScale) -> tuple[int, int] | None:
    """The paper's reading of a sampled answer: the first integer anywhere in it,
    clipped to the scale (on a reversed scale, mirrored first); on a scale of labels,
    the first label anywhere, as a whole word. Returns (clipped score, -1/0/+1 for
    below/in/above), or None for an answer with no number or label (dropped).

    >>> protocol_score("I'd say 7.", ScoreScale.parse("reversed:0-9")), protocol_score("12", ScoreScale(1, 10))
    ((2, 0), (10, 1))
    >>> protocol_score("Overall: Very good, not excellent.", ScoreScale.parse("words:poor,good,very good,excellent"))
    (3, 0)
    """
    if not scale.numeric:
        found = _first_label(scale).search(text)
        return None if found is None else (scale.lo + scale.spellings[found.group(0)], 0)
    match = _FIRST_INT.search(text)
    if not match:
        return None
    code = scale.read_number(int(match.group(0)))
    if code == scale.size:
        return scale.lo, -1
    if code == scale.size + 1:
        return scale.hi, 1
    return scale.lo + code, 0


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


def expected_tv(outcomes: np.ndarray, n: int) -> np.ndarray:
    """Each item's expected total variation distance between ``n`` answers drawn from its
    outcome row and the row itself, exactly: by linearity it is half the sum over
    outcomes of a binomial's mean absolute deviation, which de Moivre's formula gives as
    ``2 m (1 - p) P(X = m)`` with ``m = floor(n p) + 1``."""
    from scipy.stats import binom  # here: every backend imports this module, and scipy.stats takes seconds

    p = np.asarray(outcomes, dtype=float)
    m = np.floor(n * p) + 1
    mad = np.where((p > 0) & (p < 1), 2 * m * (1 - p) * binom.pmf(m, n, p), 0.0)
    return 0.5 * mad.sum(axis=-1) / n


def samples_needed(
    outcomes: np.ndarray,
    scale: ScoreScale,
    *,
    tv: float = 0.03,
    mean_tol: float = 0.05,
    every: bool = True,
    limit: int = 1 << 24,
) -> int:
    """How many sampled answers per item make sampling as precise as asked against the
    exact distributions: the fewest ``n`` at which each item's expected total variation
    distance (:func:`expected_tv`) is below ``tv`` and the expected error of its mean
    score (out-of-scale answers clipped, ``other`` dropped, as the protocol reads them;
    normal approximation) is below ``mean_tol`` × the scale's span — for every item, or
    with ``every=False`` on average over the items. ``outcomes`` has one row per item:
    the scale's scores, then below, above, other.

    >>> samples_needed(np.array([[0.5, 0.5, 0, 0, 0]]), ScoreScale(0, 1), tv=0.05)
    64
    """
    p = np.clip(np.asarray(outcomes, dtype=float), 0.0, None)
    p /= p.sum(axis=1, keepdims=True)
    values = np.concatenate([np.arange(scale.lo, scale.hi + 1), [scale.lo, scale.hi]]).astype(float)
    scored = np.maximum(p[:, :-1].sum(axis=1), 1e-12)
    mean = p[:, :-1] @ values / scored
    sd = np.sqrt(np.maximum(p[:, :-1] @ values**2 / scored - mean**2, 0.0))
    span = max(scale.hi - scale.lo, 1)
    summary = np.max if every else np.mean

    def close(n: int) -> bool:
        error = np.sqrt(2 / np.pi) * sd / np.sqrt(n * scored)
        return float(summary(expected_tv(p, n))) < tv and float(summary(error)) < mean_tol * span

    high = 1
    while not close(high):
        if high >= limit:
            raise ValueError(f"more than {limit} samples per item would be needed")
        high *= 2
    low = high // 2
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if close(mid) else (mid, high)
    return high
