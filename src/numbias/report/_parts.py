"""What every page of the report shares: a verdict's card, a chart under its caption,
a list of notes, and judge-against-human histograms of the same items. They compute
what is shown; ``templates/parts.html.j2`` draws it."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from markupsafe import Markup

from numbias.core.metrics import histogram, to_scale
from numbias.core.scale import ScoreScale
from numbias.judge.judging import ScoredSet
from numbias.report._templates import macro
from numbias.report.svg import HUMAN, PALETTE, Series, bars
from numbias.report.verdict import LEVEL_WORDS, Tile


def notes(items: Sequence[str]) -> Markup:
    """A bullet list of plain-text notes (none: nothing)."""
    return macro("parts.html.j2", "notes")(items=items)


def card(
    title: str, level: str, tiles: Sequence[Tile], finding: str, advice: str, call: tuple[str, str] | None = None
) -> Markup:
    """A verdict: its title and level (and ``call``, a recommendation's colour and
    words), the headline figures, what was found, what to do."""
    return macro("parts.html.j2", "card")(
        title=title, level=level, words=LEVEL_WORDS[level], tiles=tiles, finding=finding, advice=advice, call=call
    )


def cards(verdicts: Sequence[Markup]) -> Markup:
    """The verdicts' cards, side by side where the page is wide enough."""
    return macro("parts.html.j2", "cards")(items=verdicts)


def display_bins(scale: ScoreScale, *shares: np.ndarray, most: int = 21) -> tuple[list[str], list[np.ndarray]]:
    """Category labels and shares for a histogram figure: every score up to ``most``
    scores, else runs of neighbouring scores summed (1–100 reads as 20 bars).

    >>> labels, (h,) = display_bins(ScoreScale(1, 100), np.full(100, 0.01))
    >>> labels[:2], len(labels), round(float(h[0]), 2)
    (['1–5', '6–10'], 20, 0.05)
    """
    if scale.size <= most:
        return scale.labels, list(shares)
    width = math.ceil(scale.size / 20)
    starts = np.arange(0, scale.size, width)
    names = scale.labels
    labels = [f"{names[s]}–{names[min(s + width, scale.size) - 1]}" for s in map(int, starts)]
    return labels, [np.add.reduceat(h, starts) for h in shares]


def paired(
    scale: ScoreScale,
    judge: np.ndarray,
    human: np.ndarray,
    label: str,
    title: str,
    color: str = PALETTE[0],
    width: int = 320,
) -> str:
    """Judge and human histograms of the same items, paired bars on one axis."""
    keep = ~np.isnan(judge)
    cats, (j, h) = display_bins(scale, histogram(judge, scale), histogram(human[keep], scale))
    return bars(
        cats,
        [Series("human", h, HUMAN), Series(label, j, color)],
        title=title,
        width=width,
        height=190 if width > 400 else 170,
    )


def figure(caption: str, svg: str) -> Markup:
    """A chart (SVG, trusted as it is: :mod:`numbias.report.svg` escapes its labels)
    under its caption (text, escaped)."""
    return macro("parts.html.j2", "figure")(caption=caption, svg=Markup(svg))


def mapped(s: ScoredSet) -> np.ndarray:
    """The set's human scores on the judge's scale, as the histograms compare them."""
    return to_scale(s.data.human, s.data.human_range, s.scale)
