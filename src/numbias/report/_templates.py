"""The report's jinja2 templates (package data: ``templates/*.html.j2``) and the one
environment that draws them, so that the page's structure lives in HTML and what it
shows is computed in Python.

Every value a template prints is escaped, except :class:`markupsafe.Markup`: HTML that
another template or a chart made. The escaping is the charts' own
(:func:`numbias.report.svg.esc`, the standard library's), as the page always escaped
its text, so a report rebuilt today is byte for byte the one written before.

A template's line breaks are layout, so templates nest readably and the page stays as
compact as it was: a break and the spaces around it read as one space between words,
and as nothing beside a tag (``<``, ``>``) or a template's ``{{ }}`` and ``{% %}``."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from functools import cache

import jinja2
from jinja2.ext import Extension
from jinja2.lexer import Token, TokenStream
from markupsafe import Markup

from numbias.report.svg import esc

_BREAK = re.compile(r"[ \t]*\n[ \t]*")


def layout(text: str) -> str:
    """A template's own text without its layout: a line break between words is one
    space, one beside a tag or at either end (a template tag) is nothing.

    >>> layout("\\n  <p>Two\\n    words.</p>\\n")
    '<p>Two words.</p>'
    """

    def one(m: re.Match[str]) -> str:
        inside = 0 < m.start() and m.end() < len(text)
        return " " if inside and text[m.start() - 1] != ">" and text[m.end()] != "<" else ""

    return _BREAK.sub(one, text)


class _Layout(Extension):
    """Takes the layout out of every template's own text (:func:`layout`)."""

    def filter_stream(self, stream: TokenStream) -> Iterator[Token]:
        for token in stream:
            yield Token(token.lineno, "data", layout(token.value)) if token.type == "data" else token


def escaped(value: object) -> Markup:
    """A printed value as HTML: markup as it is, anything else escaped.

    >>> escaped("<b>'x'</b>"), escaped(Markup("<b>x</b>"))
    (Markup('&lt;b&gt;&#x27;x&#x27;&lt;/b&gt;'), Markup('<b>x</b>'))
    """
    return value if isinstance(value, Markup) else Markup(esc(value))


@cache
def _environment() -> jinja2.Environment:
    """Made on the first page drawn, so importing the report costs no template; a name a
    template misspells is an error (``StrictUndefined``), not an empty string."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("numbias.report", "templates"),
        autoescape=True,
        finalize=escaped,
        extensions=[_Layout],
        undefined=jinja2.StrictUndefined,
    )


def macro(template: str, name: str) -> Callable[..., Markup]:
    """A macro of one of the report's templates, called from Python with what it draws.

    >>> macro("parts.html.j2", "figure")(caption="a <b>", svg=Markup("<svg></svg>"))
    Markup('<figure><figcaption>a &lt;b&gt;</figcaption><svg></svg></figure>')
    """
    found: Callable[..., Markup] = getattr(_environment().get_template(template).module, name)
    return found
