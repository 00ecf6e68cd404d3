"""Small vector charts as inline SVG text: paired bars, a labelled scatter (with
arrows for paired settings), lines with error bars and a forest of intervals.

They draw numbers they are given and compute nothing about the study; every label
is escaped, and each mark carries a ``<title>`` (the browser's tooltip) with its
exact value. The result is a few kilobytes of text, so a report stays one file."""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

HUMAN = "#9a9a9a"
"""The humans' colour in every chart."""
PALETTE = ("#D55E00", "#0072B2", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
"""Okabe–Ito colours, readable with colour-vision deficiencies."""
FONT = 'font-family="system-ui,sans-serif"'


class Series(NamedTuple):
    label: str
    values: Sequence[float] | np.ndarray
    color: str


class Mark(NamedTuple):
    """A vertical marker at a (fractional) category position."""

    at: float
    label: str
    color: str


class Point(NamedTuple):
    x: float
    y: float
    label: str
    color: str
    tip: str


class Line(NamedTuple):
    label: str
    y: Sequence[float]
    err: Sequence[float]
    color: str
    bold: bool = False


def esc(text: object) -> str:
    """A text as it goes into the page, in a chart's label or in a template alike (both
    quotes escaped, so it is safe in an attribute too).

    >>> esc('<a title="x">Tom&co</a>')
    '&lt;a title=&quot;x&quot;&gt;Tom&amp;co&lt;/a&gt;'
    """
    return html.escape(str(text), quote=True)


def _num(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".") if abs(v - round(v)) > 1e-9 else str(int(round(v)))


def ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values covering ``lo``..``hi``, about ``n`` of them.

    >>> ticks(0.03, 0.71)
    [0.0, 0.2, 0.4, 0.6, 0.8]
    """
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    raw = (hi - lo) / n
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 5, 10) if step * m >= raw)
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [round(k * step, 10) for k in range(first, last + 1)]


def _label(v: float, percent: bool, step: float = 0.01) -> str:
    """A tick's text, with as many decimals as its axis's step needs."""
    if percent:
        return f"{100 * v:.{max(0, -math.floor(math.log10(100 * step) + 1e-9))}f}%"
    return f"{v:.{max(0, -math.floor(math.log10(step) + 1e-9))}f}".replace("-", "−")


def _frame(width: int, height: int, title: str, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="{esc(title)}" {FONT} font-size="11">'
        f"<title>{esc(title)}</title>{''.join(body)}</svg>"
    )


def _legend(items: Sequence[tuple[str, str]], x: float, y: float) -> list[str]:
    out = []
    for label, color in items:
        out.append(
            f'<rect x="{x:.1f}" y="{y - 8:.1f}" width="10" height="10" fill="{color}"/>'
            f'<text x="{x + 14:.1f}" y="{y + 1:.1f}">{esc(label)}</text>'
        )
        x += 24 + 6.2 * len(label)
    return out


def _yaxis(yt: list[float], y: Callable[[float], float], x0: float, x1: float, percent: bool) -> list[str]:
    step = yt[1] - yt[0] if len(yt) > 1 else 1.0
    return [
        f'<line x1="{x0}" x2="{x1}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#e4e4e4"/>'
        f'<text x="{x0 - 4}" y="{y(v) + 4:.1f}" text-anchor="end" fill="#555">{_label(v, percent, step)}</text>'
        for v in yt
    ]


def bars(
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    width: int = 320,
    height: int = 170,
    marks: Sequence[Mark] = (),
    percent: bool = True,
) -> str:
    """Grouped bars, one group per category (the series side by side, on one axis).

    >>> svg = bars(["0", "1"], [Series("judge", [0.25, 0.75], "#D55E00")], title="shares")
    >>> svg.startswith("<svg") and svg.count("<rect") == 3 and "judge: 75.0%" in svg
    True
    """
    left, right, top, bottom = 36, 6, 20, 22
    pw, ph = width - left - right, height - top - bottom
    n, k = len(categories), max(len(series), 1)
    values = [v for s in series for v in s.values if np.isfinite(v)]
    yt = ticks(0.0, max(values, default=0.0) or 0.1, 4)
    y = lambda v: top + ph * (1 - v / yt[-1])
    group = pw / max(n, 1)
    bar = group * 0.84 / k
    body = _yaxis(yt, y, left, width - right, percent)
    every = max(1, math.ceil(n * 24 / pw))
    for i, cat in enumerate(categories):
        x = left + group * i + group * 0.08
        for s in series:
            v = float(s.values[i])
            if np.isfinite(v) and v > 0:
                tip = f"{esc(cat)}: {esc(s.label)}: {_label(v, percent, 0.001)}"
                body.append(
                    f'<rect x="{x:.1f}" y="{y(v):.1f}" width="{bar:.2f}" height="{y(0) - y(v):.1f}" '
                    f'fill="{s.color}"><title>{tip}</title></rect>'
                )
            x += bar
        if i % every == 0:
            body.append(
                f'<text x="{left + group * (i + 0.5):.1f}" y="{height - 8}" text-anchor="middle" '
                f'fill="#333">{esc(cat)}</text>'
            )
    for m in marks:
        mx = left + group * (m.at + 0.5)
        body.append(
            f'<line x1="{mx:.1f}" x2="{mx:.1f}" y1="{top}" y2="{y(0):.1f}" stroke="{m.color}" '
            f'stroke-width="2" stroke-dasharray="4 2"><title>{esc(m.label)}</title></line>'
        )
    body.append(f'<line x1="{left}" x2="{width - right}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="#444"/>')
    body += _legend([(s.label, s.color) for s in series] + [(m.label, m.color) for m in marks], left, 11)
    return _frame(width, height, title, body)


def signed_log(x: float) -> float:
    """sign(x) · log(1 + |x|): kurtosis from −2 to several hundred on one readable axis."""
    return math.copysign(math.log1p(abs(x)), x)


LOG_TICKS = (-2, -1, 0, 1, 3, 10, 30, 100, 300, 1000)


def _place_labels(spots: list[tuple[float, float, int]], width: float) -> list[tuple[float, float, str]]:
    """(x, y, anchor) of each label beside its point (x, y, characters), nudged down so
    no two overlap; labels near the right edge go to the point's left."""
    placed: list[tuple[float, float, float]] = []
    out: list[tuple[float, float, str]] = [(0.0, 0.0, "start")] * len(spots)
    for i in sorted(range(len(spots)), key=lambda i: (spots[i][1], spots[i][0])):
        px, py, n = spots[i]
        anchor = "end" if px > width - 110 else "start"
        start = px - 7 - 6 * n if anchor == "end" else px + 7
        ty = py + 4
        while any(abs(ty - y) < 11 and start < end and start + 6 * n > begin for begin, end, y in placed):
            ty += 11
        placed.append((start, start + 6 * n, ty))
        out[i] = (px - 7 if anchor == "end" else px + 7, ty, anchor)
    return out


def _point_marks(
    keep: Sequence[Point], x: Callable[[float], float], y: Callable[[float], float], width: int
) -> list[str]:
    """Each point's circle, then its label beside it; the labels are placed all at once,
    so that none overlaps another."""
    marks = [
        f'<circle cx="{x(p.x):.1f}" cy="{y(p.y):.1f}" r="4.5" fill="{p.color}" fill-opacity="0.85">'
        f"<title>{esc(p.tip)}</title></circle>"
        for p in keep
    ]
    for p, (tx, ty, anchor) in zip(keep, _place_labels([(x(p.x), y(p.y), len(p.label)) for p in keep], width)):
        marks.append(
            f'<text x="{tx:.1f}" y="{ty:.1f}" text-anchor="{anchor}" font-size="10" fill="#333">{esc(p.label)}</text>'
        )
    return marks


def scatter(
    points: Sequence[Point],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    width: int = 560,
    height: int = 340,
    xlog: bool = False,
    links: Sequence[tuple[int, int]] = (),
    vlines: Sequence[tuple[float, str]] = (),
    legend: Sequence[tuple[str, str]] = (),
) -> str:
    """Labelled points; ``links`` draws an arrow from one point to another (a paired
    setting), ``vlines`` dashed reference lines; ``xlog`` puts x on a signed log axis.

    >>> svg = scatter([Point(0.5, 0.2, "0-9 · greedy", "#D55E00", "r 0.2")], title="t", xlabel="k", ylabel="r")
    >>> "0-9 · greedy" in svg and "<circle" in svg
    True
    """
    fx = signed_log if xlog else float
    keep = [p for p in points if np.isfinite(p.x) and np.isfinite(p.y)]
    left, right, top, bottom = 46, 12, 22 if legend else 10, 40
    pw, ph = width - left - right, height - top - bottom
    xs = [fx(p.x) for p in keep] + [fx(v) for v, _ in vlines]
    ys = [p.y for p in keep]
    xt = (
        [fx(t) for t in LOG_TICKS if min(xs, default=0) - 0.3 <= fx(t) <= max(xs, default=1) + 0.3]
        if xlog
        else ticks(min(xs, default=0), max(xs, default=1), 5)
    )
    yt = ticks(min(ys, default=0), max(ys, default=1), 5)
    lo, hi = min([*xt, *xs]), max([*xt, *xs])
    x0, x1 = lo - 0.05 * ((hi - lo) or 1), hi + 0.05 * ((hi - lo) or 1)
    x = lambda v: left + pw * (fx(v) - x0) / (x1 - x0)
    raw = lambda t: left + pw * (t - x0) / (x1 - x0)
    y = lambda v: top + ph * (1 - (v - yt[0]) / (yt[-1] - yt[0]))
    body = _yaxis(yt, y, left, width - right, False)
    for t in xt:
        body.append(
            f'<line x1="{raw(t):.1f}" x2="{raw(t):.1f}" y1="{top}" y2="{top + ph}" stroke="#eee"/>'
            f'<text x="{raw(t):.1f}" y="{top + ph + 14}" text-anchor="middle" fill="#555">'
            f"{_num(math.copysign(math.expm1(abs(t)), t)) if xlog else _label(t, False, xt[1] - xt[0])}</text>"
        )
    for v, label in vlines:
        body.append(
            f'<line x1="{x(v):.1f}" x2="{x(v):.1f}" y1="{top}" y2="{top + ph}" stroke="{HUMAN}" '
            f'stroke-dasharray="5 3"/><text x="{x(v) + 3:.1f}" y="{top + 10}" fill="#666">{esc(label)}</text>'
        )
    for a, b in links:
        pa, pb = points[a], points[b]
        if all(np.isfinite([pa.x, pa.y, pb.x, pb.y])):
            body.append(_arrow(x(pa.x), y(pa.y), x(pb.x), y(pb.y), pb.color))
    body += _point_marks(keep, x, y, width)
    body.append(
        f'<text x="{left + pw / 2}" y="{height - 6}" text-anchor="middle">{esc(xlabel)}</text>'
        f'<text transform="translate(12 {top + ph / 2}) rotate(-90)" text-anchor="middle">{esc(ylabel)}</text>'
    )
    body += _legend(legend, left, 12)
    return _frame(width, height, title, body)


def _arrow(xa: float, ya: float, xb: float, yb: float, color: str) -> str:
    """A line from a to b ending in a filled head just short of b's point."""
    dx, dy = xb - xa, yb - ya
    length = math.hypot(dx, dy)
    if length < 8:
        return ""
    ux, uy = dx / length, dy / length
    tx, ty = xb - ux * 6, yb - uy * 6
    head = [
        (tx, ty),
        (tx - ux * 7 - uy * 3.5, ty - uy * 7 + ux * 3.5),
        (tx - ux * 7 + uy * 3.5, ty - uy * 7 - ux * 3.5),
    ]
    pts = " ".join(f"{px:.1f},{py:.1f}" for px, py in head)
    return (
        f'<line x1="{xa:.1f}" y1="{ya:.1f}" x2="{tx:.1f}" y2="{ty:.1f}" stroke="{color}" stroke-opacity="0.6" '
        f'stroke-width="1.5"/><polygon points="{pts}" fill="{color}" fill-opacity="0.8"/>'
    )


def lines(
    xlabels: Sequence[str],
    series: Sequence[Line],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    width: int = 760,
    height: int = 300,
) -> str:
    """Lines over evenly spaced categories, each point with an error bar; the legend
    on the right.

    >>> svg = lines(["0", "10"], [Line("choice", [0.5, 0.7], [0.0, 0.1], "#D55E00", True)], title="t",
    ...             xlabel="labels", ylabel="r")
    >>> svg.count("<circle") == 2 and "choice" in svg
    True
    """
    left, right, top, bottom = 46, 210, 12, 40
    pw, ph = width - left - right, height - top - bottom
    lows = [v - e for s in series for v, e in zip(s.y, s.err) if np.isfinite(v)]
    highs = [v + e for s in series for v, e in zip(s.y, s.err) if np.isfinite(v)]
    yt = ticks(min(lows, default=0), max(highs, default=1), 5)
    step = pw / max(len(xlabels) - 1, 1)
    x = lambda i: left + step * i
    y = lambda v: top + ph * (1 - (v - yt[0]) / (yt[-1] - yt[0]))
    body = _yaxis(yt, y, left, left + pw, False)
    body += [
        f'<text x="{x(i):.1f}" y="{top + ph + 14}" text-anchor="middle" fill="#555">{esc(t)}</text>'
        for i, t in enumerate(xlabels)
    ]
    for k, s in enumerate(series):
        pts = [(x(i), y(v), v, e) for i, (v, e) in enumerate(zip(s.y, s.err)) if np.isfinite(v)]
        w = 3 if s.bold else 1.5
        body.append(
            f'<polyline points="{" ".join(f"{px:.1f},{py:.1f}" for px, py, _, _ in pts)}" fill="none" '
            f'stroke="{s.color}" stroke-width="{w}"/>'
        )
        for px, py, v, e in pts:
            body.append(
                f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{y(v - e):.1f}" y2="{y(v + e):.1f}" '
                f'stroke="{s.color}"/><circle cx="{px:.1f}" cy="{py:.1f}" r="{w + 1}" fill="{s.color}">'
                f"<title>{esc(s.label)}: {v:.3f} ± {e:.3f}</title></circle>"
            )
        body.append(
            f'<rect x="{left + pw + 14}" y="{top + 14 * k}" width="10" height="{w + 1}" fill="{s.color}"/>'
            f'<text x="{left + pw + 28}" y="{top + 14 * k + 5}">{esc(s.label[:30])}</text>'
        )
    body.append(
        f'<text x="{left + pw / 2}" y="{height - 6}" text-anchor="middle">{esc(xlabel)}</text>'
        f'<text transform="translate(12 {top + ph / 2}) rotate(-90)" text-anchor="middle">{esc(ylabel)}</text>'
    )
    return _frame(width, height, title, body)


def forest(
    labels: Sequence[str],
    values: Sequence[float],
    lows: Sequence[float],
    highs: Sequence[float],
    *,
    highlight: Sequence[bool],
    title: str,
    xlabel: str,
    width: int = 760,
    marks: Sequence[float] | None = None,
    mark_label: str = "truth",
) -> str:
    """One row per label: a point and its interval, highlighted rows in colour; a
    ``marks`` value (e.g. the true mean, where known) drawn as a grey tick on its row.

    >>> svg = forest(["a", "b"], [0.5, 0.6], [0.4, 0.5], [0.6, 0.7], highlight=[False, True], title="t", xlabel="r")
    >>> svg.count("<circle") == 2
    True
    """
    row, left, right, top = 18, 300, 16, 8
    height = top + row * len(labels) + 34
    marks = list(marks) if marks is not None else [float("nan")] * len(labels)
    finite = [v for v in (*values, *lows, *highs, *marks) if np.isfinite(v)]
    xt = ticks(min(finite, default=0), max(finite, default=1), 6)
    pw = width - left - right
    x = lambda v: left + pw * (v - xt[0]) / (xt[-1] - xt[0])
    body = [
        f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top}" y2="{height - 30}" stroke="#eee"/>'
        f'<text x="{x(t):.1f}" y="{height - 18}" text-anchor="middle" fill="#555">'
        f"{_label(t, False, xt[1] - xt[0])}</text>"
        for t in xt
    ]
    for i, (label, v, lo, hi, hot, mark) in enumerate(zip(labels, values, lows, highs, highlight, marks)):
        cy = top + row * (i + 0.5)
        if np.isfinite(mark):
            body.append(
                f'<line x1="{x(mark):.1f}" x2="{x(mark):.1f}" y1="{cy - 7:.1f}" y2="{cy + 7:.1f}" '
                f'stroke="{HUMAN}" stroke-width="3"><title>{esc(mark_label)}: {mark:.3f}</title></line>'
            )
        color = PALETTE[0] if hot else "#5a6b7b"
        short = label if len(label) <= 46 else label[:45] + "…"
        body.append(
            f'<text x="{left - 8}" y="{cy + 4:.1f}" text-anchor="end" font-weight="{700 if hot else 400}">'
            f"<title>{esc(label)}</title>{esc(short)}</text>"
        )
        if np.isfinite(v):
            if np.isfinite(lo) and np.isfinite(hi):
                body.append(
                    f'<line x1="{x(lo):.1f}" x2="{x(hi):.1f}" y1="{cy:.1f}" y2="{cy:.1f}" stroke="{color}" '
                    f'stroke-width="2"/>'
                )
            body.append(
                f'<circle cx="{x(v):.1f}" cy="{cy:.1f}" r="4" fill="{color}"><title>{esc(label)}: '
                f"{v:.3f} [{lo:.3f}, {hi:.3f}]</title></circle>"
            )
    body.append(f'<text x="{left + pw / 2}" y="{height - 3}" text-anchor="middle">{esc(xlabel)}</text>')
    return _frame(width, height, title, body)


def heatmap(
    rows: Sequence[str],
    cols: Sequence[str],
    values: Sequence[Sequence[float]],
    tips: Sequence[Sequence[str]],
    *,
    title: str,
    cell: int = 46,
) -> str:
    """A matrix of shares in [0, 1] (e.g. P(row beats column)): blue towards 1, orange
    towards 0, white at 0.5, the value written in each cell and ``tips`` as tooltips;
    NaN cells are left blank.

    >>> svg = heatmap(["A", "B"], ["A", "B"], [[math.nan, 0.9], [0.1, math.nan]], [["", "A>B"], ["B>A", ""]],
    ...               title="P(row beats column)")
    >>> svg.count("<rect"), "0.90" in svg
    (2, True)
    """
    left, top = 12 + 8 * max((len(r) for r in rows), default=1), 24 + 7 * max((len(c) for c in cols), default=1)
    width, height = left + cell * len(cols) + 10, top + cell * len(rows) + 10
    body = [
        f'<text x="{left + cell * (j + 0.5):.1f}" y="{top - 6}" text-anchor="middle">{esc(c)}</text>'
        for j, c in enumerate(cols)
    ]
    for i, (name, line, tip_line) in enumerate(zip(rows, values, tips)):
        y = top + cell * i
        body.append(f'<text x="{left - 6}" y="{y + cell / 2 + 4:.1f}" text-anchor="end">{esc(name)}</text>')
        for j, (v, tip) in enumerate(zip(line, tip_line)):
            if not np.isfinite(v):
                continue
            toward = PALETTE[1] if v >= 0.5 else PALETTE[0]
            alpha = min(1.0, abs(v - 0.5) * 2)
            body.append(
                f'<rect x="{left + cell * j}" y="{y}" width="{cell - 2}" height="{cell - 2}" fill="{toward}" '
                f'fill-opacity="{alpha:.2f}"><title>{esc(tip)}</title></rect>'
                f'<text x="{left + cell * (j + 0.5) - 1:.1f}" y="{y + cell / 2 + 3:.1f}" text-anchor="middle" '
                f'fill="{"#fff" if alpha > 0.6 else "#222"}">{v:.2f}</text>'
            )
    return _frame(width, height, title, body)
