"""The report's page: readable, sortable and filterable tables, and one self-contained
HTML file around them (its style and a few lines of its own script inline; nothing
is fetched, so it works offline and can be mailed as it is).

What a table shows is computed here; ``templates/table.html.j2`` and
``templates/page.html.j2`` draw it, escaping every text on the way."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np
import pandas as pd
from markupsafe import Markup

from numbias.report._templates import macro
from numbias.util.fmt import fmt_num

Section = tuple[str, str]
"""A heading and its HTML."""

CSS = """
*{box-sizing:border-box}
body{font:14px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d1d1f;background:#f7f7f8}
main{max-width:1200px;margin:0 auto;padding:1.2rem 1.25rem 4rem}
h1{font-size:1.65rem;margin:.3rem 0 .1rem}
h2{font-size:1.25rem;margin:2.4rem 0 .7rem;padding-bottom:.25rem;border-bottom:2px solid #e2e2e6}
h3{font-size:1.02rem;margin:1.4rem 0 .5rem}
p{margin:.4rem 0 .7rem;max-width:60rem}
code{font-size:.92em;background:#eceef1;padding:0 .25em;border-radius:3px}
.sub{color:#555;margin:0 0 .6rem}
nav{display:flex;flex-wrap:wrap;gap:.3rem .9rem;font-size:13px;padding:.5rem 0;border-bottom:1px solid #e2e2e6}
nav a{color:#0b5cad;text-decoration:none} nav a:hover{text-decoration:underline}
.note{color:#5b5b66;font-size:12.5px}
.tbl{margin:.4rem 0 1.2rem}
.tbl input{font:inherit;font-size:13px;padding:3px 8px;border:1px solid #c9c9d1;border-radius:4px;width:16rem}
.tbl .count{color:#666;font-size:12px;margin-left:.6rem}
.tw{overflow-x:auto;margin-top:.35rem}
table{border-collapse:collapse;font-size:12.5px;background:#fff;border:1px solid #e2e2e6}
th,td{padding:4px 7px;text-align:right;vertical-align:top;border-bottom:1px solid #ececf0}
th{background:#f0f1f4;font-weight:600;cursor:pointer;user-select:none;vertical-align:bottom;line-height:1.25}
th[title]{text-decoration:underline dotted #8a8a96;text-underline-offset:3px}
th[aria-sort=ascending]::after{content:" \\25B2";font-size:9px}
th[aria-sort=descending]::after{content:" \\25BC";font-size:9px}
th.t,td.t{text-align:left} td.long{overflow-wrap:anywhere;min-width:16rem;max-width:36rem}
td small{display:block;color:#777;font-size:11px;white-space:nowrap}
tbody tr:hover{background:#f6f8fc}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:1rem}
.card{background:#fff;border:1px solid #e2e2e6;border-radius:8px;padding:.9rem 1.1rem}
.card h3{margin:0 0 .4rem} .lead{margin-bottom:1rem} .lead ul{margin:.2rem 0;padding-left:1.2rem}
.badge{display:inline-block;font-size:12px;font-weight:600;border-radius:10px;padding:0 .55rem;margin-left:.4rem;
vertical-align:2px}
.strong{background:#fbd9c7;color:#8a2c00} .some{background:#fcefc0;color:#6b4e00}
.little{background:#d8f0de;color:#1c5e2e} .noise{background:#e4e8f0;color:#2d3a55}
.flat{background:#ece2f4;color:#4b2a66} .format{background:#f6d5dc;color:#7a1230}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(120px,1fr));gap:.5rem;margin:.6rem 0}
.tile{border-left:4px solid #D55E00;background:#fafafb;padding:.25rem .55rem}
.tile b{display:block;font-size:1.35rem;line-height:1.3} .tile span{display:block;color:#555;font-size:11.5px}
.tile em{font-style:normal;color:#333;font-size:11.5px;font-weight:600;overflow-wrap:anywhere}
.todo{border-top:1px solid #ececf0;padding-top:.45rem;margin-top:.45rem}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(280px,1fr));gap:.6rem}
.pair{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:.6rem;margin-bottom:.6rem}
figure{margin:0;background:#fff;border:1px solid #e2e2e6;border-radius:6px;padding:.4rem .5rem}
figcaption{font-size:12px;color:#333;margin-bottom:.15rem}
svg{max-width:100%;height:auto;display:block}
.items{display:grid;gap:.5rem;margin-bottom:.5rem} .items.two{grid-template-columns:repeat(2,minmax(0,1fr))}
.item{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,330px);gap:.8rem;background:#fff;
border:1px solid #e2e2e6;border-radius:6px;padding:.6rem .8rem}
.item .text{overflow-wrap:anywhere;white-space:pre-wrap}
.item .meta{color:#555;font-size:12px;margin-bottom:.25rem}
"""

SCRIPT = """
document.querySelectorAll('table.sort').forEach(function (t) {
  var heads = Array.from(t.tHead.rows[0].cells);
  heads.forEach(function (th, i) {
    th.addEventListener('click', function () {
      var up = th.getAttribute('aria-sort') !== 'ascending';
      heads.forEach(function (h) { h.removeAttribute('aria-sort'); });
      th.setAttribute('aria-sort', up ? 'ascending' : 'descending');
      var key = function (row) {
        var c = row.cells[i];
        return c.dataset.v !== undefined ? parseFloat(c.dataset.v) : c.textContent.trim().toLowerCase();
      };
      var rows = Array.from(t.tBodies[0].rows).map(function (r) { return [key(r), r]; });
      rows.sort(function (a, b) {
        var x = a[0], y = b[0];
        if (typeof x === 'number' && isNaN(x)) return 1;
        if (typeof y === 'number' && isNaN(y)) return -1;
        return (x < y ? -1 : x > y ? 1 : 0) * (up ? 1 : -1);
      });
      t.tBodies[0].append.apply(t.tBodies[0], rows.map(function (p) { return p[1]; }));
    });
  });
});
document.querySelectorAll('.tbl input').forEach(function (box) {
  var t = box.closest('.tbl').querySelector('table'), count = box.nextElementSibling;
  box.addEventListener('input', function () {
    var q = box.value.toLowerCase(), shown = 0, rows = t.tBodies[0].rows;
    for (var k = 0; k < rows.length; k++) {
      var hit = rows[k].textContent.toLowerCase().indexOf(q) >= 0;
      rows[k].hidden = !hit;
      shown += hit ? 1 : 0;
    }
    count.textContent = q ? shown + ' of ' + rows.length + ' rows' : '';
  });
});
"""


@dataclass(frozen=True)
class Column:
    """How a frame column reads on the page: its name (with units), a tooltip saying
    what it measures, digits, and the columns holding its interval, if any."""

    key: str
    title: str = ""
    tip: str = ""
    digits: int = 2
    percent: bool = False
    ci: tuple[str, str] | None = None
    long: bool = False
    """Free text (an item's): wrapped anywhere, in a column of bounded width."""


def columns(frame: pd.DataFrame, known: Mapping[str, Column]) -> list[Column]:
    """A column per frame column, as ``known`` describes it; ``X_low``/``X_high`` (or
    ``X low``/``X high``) go under their ``X`` as its interval.

    >>> frame = pd.DataFrame({"rule": ["greedy"], "pearson": [0.5], "pearson_low": [0.4], "pearson_high": [0.6]})
    >>> [(c.key, c.title, c.ci) for c in columns(frame, {"pearson": Column("pearson", "Pearson r")})]
    [('rule', 'rule', None), ('pearson', 'Pearson r', ('pearson_low', 'pearson_high'))]
    """
    out, attached = [], set()
    for key in frame.columns:
        spec = known.get(key, Column(key))
        for sep in ("_", " "):
            low, high = f"{key}{sep}low", f"{key}{sep}high"
            if low in frame and high in frame:
                spec = replace(spec, ci=(low, high))
                attached |= {low, high}
        out.append(spec if spec.title else replace(spec, title=key))
    return [c for c in out if c.key not in attached]


class _Head(NamedTuple):
    """A column's heading, as ``table.html.j2`` draws it."""

    title: str
    tip: str
    text: bool
    """A text column: aligned left."""


class _Cell(NamedTuple):
    """A cell, in the order ``table.html.j2`` unpacks it."""

    text: str
    sort: str | None
    """The exact number the column sorts by (empty: none); ``None`` for text."""
    css: str = ""
    interval: str = ""


def _cell(value: object, spec: Column, row: Mapping[str, object]) -> _Cell:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        text = "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)
        return _Cell(text, None, "t long" if spec.long else "t")
    v = float(value)
    if np.isnan(v):
        return _Cell("—", "")
    digits = 0 if isinstance(value, (int, np.integer)) else spec.digits
    interval = ""
    if spec.ci:
        low, high = (float(row[k]) for k in spec.ci)  # type: ignore[arg-type]
        if not (np.isnan(low) or np.isnan(high)):
            interval = "[{}, {}]".format(*(fmt_num(end, digits, percent=spec.percent) for end in (low, high)))
    return _Cell(fmt_num(v, digits, percent=spec.percent), repr(v), interval=interval)


def table(frame: pd.DataFrame, known: Mapping[str, Column] | None = None, *, filter_at: int = 8) -> Markup:
    """A sortable table (click a heading) with a filter box once it has ``filter_at``
    rows; numbers rounded for reading, each kept whole in ``data-v`` for sorting.

    >>> print(table(pd.DataFrame({"task": ["<b>x</b>"], "r": [0.51234]})))
    <div class="tbl"><div class="tw"><table class="sort"><thead><tr><th
    class="t">task</th><th>r</th></tr></thead><tbody><tr><td
    class="t">&lt;b&gt;x&lt;/b&gt;</td><td data-v="0.51234">0.51</td></tr></tbody></table></div></div>
    """
    specs = columns(frame, known or {})
    heads = [
        _Head(
            c.title, c.tip, not pd.api.types.is_numeric_dtype(frame[c.key]) or pd.api.types.is_bool_dtype(frame[c.key])
        )
        for c in specs
    ]
    records = frame.to_dict("records")
    rows = [[_cell(row[c.key], c, row) for c in specs] for row in records]
    return macro("table.html.j2", "table")(heads=heads, rows=rows, filter=len(records) >= filter_at)


def _slug(text: str, taken: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"
    slug, k = base, 1
    while slug in taken:
        k += 1
        slug = f"{base}-{k}"
    taken.add(slug)
    return slug


def page(title: str, subtitle: str, sections: Sequence[Section]) -> str:
    """The whole page: title, a line saying what was measured, a table of contents,
    then the sections (their HTML, trusted as it is).

    >>> text = page("numbias report", "1 judge", [("Verdict", "<p>ok</p>")])
    >>> text.startswith("<!doctype html>") and '<a href="#verdict">Verdict</a>' in text
    True
    """
    taken: set[str] = set()
    parts = [(head, _slug(head, taken), Markup(content)) for head, content in sections]
    return str(
        macro("page.html.j2", "page")(
            title=title, subtitle=subtitle, sections=parts, css=Markup(CSS), script=Markup(SCRIPT)
        )
    )
