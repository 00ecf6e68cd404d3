"""The one number formatter of the command line and the report: a number, an interval
and a p-value each written one way, so a figure reads the same in the terminal, a
table and a verdict sentence. The report's style (``plain=False``) sets a true minus
sign, thousands separators and no "−0.00"; the terminal's (``plain=True``) is what a
user copies into code or a spreadsheet."""

from __future__ import annotations

import math

MISSING = "—"
"""What a missing or undefined number shows as."""


def fmt_num(
    value: float | None,
    digits: int = 2,
    *,
    signed: bool = False,
    percent: bool = False,
    plain: bool = False,
    missing: str = MISSING,
) -> str:
    """A number rounded to ``digits`` (``signed``: with its sign; ``percent``: as a whole percent).

    >>> from numbias.util.fmt import fmt_num
    >>> fmt_num(-0.4567), fmt_num(0.456, percent=True), fmt_num(-0.001), fmt_num(float("nan"))
    ('−0.46', '46%', '0.00', '—')
    >>> fmt_num(0.123, signed=True), fmt_num(-0.001, signed=True), fmt_num(-0.4567, 3, plain=True)
    ('+0.12', '0.00', '-0.457')
    """
    if value is None or not math.isfinite(value):
        return missing
    if plain:
        return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"
    if round(value * (100 if percent else 1), 0 if percent else digits) == 0:
        value = 0.0  # no "−0.00"
    if percent:
        return f"{100 * value:.0f}%"
    return f"{value:{'+' if signed and value else ''},.{digits}f}".replace("-", "−")


def fmt_ci(
    value: float | None,
    low: float | None,
    high: float | None,
    digits: int = 2,
    *,
    signed: bool = False,
    plain: bool = False,
    missing: str = MISSING,
) -> str:
    """``value [low, high]``, each end as :func:`fmt_num` writes it; ``missing`` without a value.

    >>> from numbias.util.fmt import fmt_ci
    >>> fmt_ci(0.1, 0.04, 0.16, signed=True, plain=True), fmt_ci(-0.6, -0.8, float("nan"))
    ('+0.10 [+0.04, +0.16]', '−0.60 [−0.80, —]')
    """
    if value is None or not math.isfinite(value):
        return missing
    parts = (fmt_num(v, digits, signed=signed, plain=plain) for v in (value, low, high))
    return "{} [{}, {}]".format(*parts)


def fmt_p(p: float | None, *, significant: bool = False, missing: str = MISSING) -> str:
    """A p-value to three decimals (below 0.001 as ``<0.001``), or to two significant
    digits where a sentence quotes it.

    >>> from numbias.util.fmt import fmt_p
    >>> fmt_p(0.0304), fmt_p(0.0004), fmt_p(0.0042, significant=True), fmt_p(float("nan"))
    ('0.030', '<0.001', '0.0042', '—')
    """
    if p is None or not math.isfinite(p):
        return missing
    if significant:
        return f"{p:.2g}"
    return f"{p:.3f}" if p >= 0.001 else "<0.001"
