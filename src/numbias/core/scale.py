"""Score scales: the labels a judge answers with and the integer values they stand for.

A scale lists its labels worst first, each with a value one above the last: digits
(``0-9``, each number its own value), the same digits reversed (``reversed:1-5``: the
rubric's 1 is the best answer, so it has the highest value), letters (``letters:A-E``)
or words (``words:poor,fair,good``, valued 1..k unless given); any of them may be asked
best first (``best-first:letters:A-E``: the rubric lists the options best first, nothing
else changes). Distributions hold one probability per label in value order, and every
rule and metric acts on the values."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

import numpy as np

from numbias.util.errors import NumbiasError

_RANGE = re.compile(r"^\s*(-?\d+)\s*(?:-|–|\.\.|:|to)\s*(-?\d+)\s*$")
_LETTERS = re.compile(r"^\s*([A-Za-z])\s*(?:-|–|\.\.|to)\s*([A-Za-z])\s*$")
_KIND = re.compile(r"^\s*(reversed|letters|words)\s*:(.*)$", re.IGNORECASE | re.DOTALL)
_BEST_FIRST = re.compile(r"^\s*best-first\s*:(.*)$", re.IGNORECASE | re.DOTALL)
_LEADING = re.compile(r"^ ?([0-9]+)(?![0-9])")
_SEPARATORS = ",=+"
"""Characters a label may not hold: they separate labels, values and a range ensemble's scales."""
_FORMS = "LO-HI with integers (e.g. 0-9), reversed:LO-HI, letters:A-E or words:poor,fair,good"
BEST_FIRST = "best-first:"
"""The prefix of a scale asked with its options listed best first (``best-first:1-5``)."""


PAPER_SCALE = "0-9"
"""The scale the paper asks on by default, and numbias's default."""


@dataclass(frozen=True)
class ScoreScale:
    """A scale of ``hi - lo + 1`` labels valued ``lo..hi``: the numbers themselves
    (``words`` empty), the numbers read in reverse (``reverse``), or ``words`` listed
    worst first; ``best_first``: the rubric lists its options best first (the same
    labels and values, another prompt). ``str`` gives the one spelling :meth:`parse`
    reads back, which keys the store.

    >>> scale = ScoreScale.parse("1..5")
    >>> scale, str(scale), scale.size, scale.labels
    (ScoreScale(lo=1, hi=5), '1-5', 5, ['1', '2', '3', '4', '5'])
    >>> scale.to_unit([1, 3, 5])
    array([0. , 0.5, 1. ])
    >>> words = ScoreScale.parse("words: poor, fair, good")
    >>> str(words), words.labels, words.values
    ('words:poor,fair,good', ['poor', 'fair', 'good'], array([1., 2., 3.]))
    >>> ScoreScale.parse("reversed:1-3").labels, ScoreScale.parse("letters:A-C").labels
    (['3', '2', '1'], ['A', 'B', 'C'])
    >>> best = ScoreScale.parse("best-first:letters:A-C")
    >>> str(best), best.labels, best.asked, best == ScoreScale.parse("letters:A-C")
    ('best-first:letters:A-C', ['A', 'B', 'C'], ['C', 'B', 'A'], False)
    >>> ScoreScale.parse("5-1")
    Traceback (most recent call last):
    ...
    numbias.util.errors.NumbiasError: scale 5-1: lo must be below hi
    """

    lo: int
    hi: int
    words: tuple[str, ...] = ()
    reverse: bool = False
    best_first: bool = False

    def __post_init__(self) -> None:
        for name, value in (("lo", self.lo), ("hi", self.hi)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise NumbiasError(f"scale {name} must be an integer, got {value!r}")
        if self.words:
            object.__setattr__(self, "words", _checked_labels(self.words))
            self._check_labelled()
            return
        if self.lo < 0:
            raise NumbiasError(f"scale {self}: negative scores are not supported")
        if self.lo >= self.hi:
            raise NumbiasError(f"scale {self.lo}-{self.hi}: lo must be below hi")
        if self.hi - self.lo > 1000:
            raise NumbiasError(f"scale {self}: at most 1001 scores are supported")

    def _check_labelled(self) -> None:
        """A scale of labels: at least two, one per value, that no capitalisation confuses."""
        if self.reverse:
            raise NumbiasError("a reversed scale is one of digits (reversed:LO-HI); list labels worst first instead")
        if len(self.words) < 2:
            raise NumbiasError(f"a scale needs at least two labels, got {list(self.words)}")
        if len(self.words) != self.hi - self.lo + 1:
            raise NumbiasError(f"scale of {len(self.words)} labels cannot take the values {self.lo}..{self.hi}")
        if len(self.words) > 1001:
            raise NumbiasError(f"a scale of {len(self.words)} labels: at most 1001 are supported")
        self.spellings  # noqa: B018 - two labels that read alike once capitalised are refused here

    @classmethod
    def parse(cls, spec: str | Mapping[str, Any] | ScoreScale) -> ScoreScale:
        """A scale from its spelling (``"0-9"``, ``"1..100"``, ``"1 to 5"``,
        ``"reversed:1-5"``, ``"letters:A-E"``, ``"words:poor,fair,good"`` with optional
        ``label=value``) or a mapping ``{"labels": [...], "values": [...]}`` (YAML):
        the one parser behind the command line, YAML and Python."""
        if isinstance(spec, ScoreScale):
            return spec
        if isinstance(spec, Mapping):
            if unknown := sorted(set(spec) - {"labels", "values"}):
                raise NumbiasError(f"scale keys {unknown} are unknown (a scale mapping takes labels and values)")
            if "labels" not in spec:
                raise NumbiasError("a scale mapping needs labels: [...] (values: [...] is optional)")
            return cls.from_labels(spec["labels"], spec.get("values"))
        return _parse_text(str(spec))

    @classmethod
    def from_labels(cls, labels: Sequence[Any], values: Sequence[Any] | None = None) -> ScoreScale:
        """Labels with their values (default 1..k: the first label is the worst). The
        values must be consecutive integers, in any order, since every histogram and
        metric bins scores one integer apart.

        >>> ScoreScale.from_labels(["excellent", "good", "poor"], values=[2, 1, 0]).labels
        ['poor', 'good', 'excellent']
        """
        if isinstance(labels, str) or not isinstance(labels, Sequence) or len(labels) < 2:
            raise NumbiasError(f"a scale needs a list of at least two labels, got {labels!r}")
        given = list(range(1, len(labels) + 1)) if values is None else values
        if isinstance(given, str) or not isinstance(given, Sequence) or len(given) != len(labels):
            raise NumbiasError(f"scale values must be a list of one integer per label, got {values!r}")
        if any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in given):
            raise NumbiasError(f"scale values must be integers, got {list(given)}")
        lo = min(given)
        if sorted(given) != list(range(lo, lo + len(given))):
            raise NumbiasError(
                f"scale values {list(given)} must be consecutive integers (each one apart), in any order"
            )
        ordered = [label for _, label in sorted(zip(given, labels), key=lambda pair: pair[0])]
        return cls(int(lo), int(lo) + len(labels) - 1, tuple(ordered))

    def __str__(self) -> str:
        if self.best_first:
            return BEST_FIRST + str(dataclasses.replace(self, best_first=False))
        if self.reverse:
            return f"reversed:{self.lo}-{self.hi}"
        if not self.words:
            return f"{self.lo}-{self.hi}"
        if self.lo == 1 and _letter_run(self.words):
            return f"letters:{self.words[0]}-{self.words[-1]}"
        if self.lo == 1:
            return "words:" + ",".join(self.words)
        return "words:" + ",".join(f"{w}={self.lo + k}" for k, w in enumerate(self.words))

    def __repr__(self) -> str:
        return f"ScoreScale(lo={self.lo}, hi={self.hi})" if self.standard else f"ScoreScale.parse({str(self)!r})"

    @property
    def plain(self) -> bool:
        """Whether the labels are the values themselves (today's ``LO-HI`` scales)."""
        return not self.words and not self.reverse

    @property
    def standard(self) -> bool:
        """Whether this is a ``LO-HI`` scale asked worst first, as every range of a
        sweep is: anything else is another format of the question."""
        return self.plain and not self.best_first

    @property
    def numeric(self) -> bool:
        """Whether the answers are numbers (digits, read straight or reversed): numbers
        outside the scale then count below or above it, not as other answers."""
        return not self.words

    @property
    def size(self) -> int:
        return self.hi - self.lo + 1

    @cached_property
    def values(self) -> np.ndarray:
        """The allowed scores in increasing order, as floats for arithmetic."""
        return np.arange(self.lo, self.hi + 1, dtype=float)

    @property
    def labels(self) -> list[str]:
        """What the judge writes for each value, in value order (worst first)."""
        if self.words:
            return list(self.words)
        if self.reverse:
            return [str(v) for v in range(self.hi, self.lo - 1, -1)]
        return [str(v) for v in range(self.lo, self.hi + 1)]

    @property
    def asked(self) -> list[str]:
        """The labels in the order the rubric lists them: worst first, or best first."""
        return self.labels[::-1] if self.best_first else self.labels

    @property
    def width(self) -> int:
        """Characters in the longest label: a bound on the tokens an answer takes."""
        return max(len(label) for label in self.labels)

    def label_of(self, value: float) -> str:
        """The label of a value on the scale (rounded to the nearest), as a report shows it."""
        index = int(round(float(value))) - self.lo
        if not 0 <= index < self.size:
            raise NumbiasError(f"value {value:g} is not on the scale {self}")
        return self.labels[index]

    def to_unit(self, x: np.ndarray | float) -> np.ndarray:
        """Map scores on this scale linearly onto [0, 1]."""
        return (np.asarray(x, dtype=float) - self.lo) / (self.hi - self.lo)

    def from_unit(self, u: np.ndarray | float) -> np.ndarray:
        return self.lo + np.asarray(u, dtype=float) * (self.hi - self.lo)

    @cached_property
    def spellings(self) -> dict[str, int]:
        """Every text an answer may open with for each label, to its index: bare and
        after one space; a label also with its first letter capitalised (a chat answer
        opens a sentence). Numbers are read as written."""
        out: dict[str, int] = {}
        for k, label in enumerate(self.labels):
            forms = [label] if self.numeric else list(dict.fromkeys([label, label[0].upper() + label[1:]]))
            for form in forms:
                for text in (form, " " + form):
                    if out.setdefault(text, k) != k:
                        raise NumbiasError(
                            f"scale labels {self.labels[out[text]]!r} and {label!r} read alike once capitalised"
                        )
        return out

    def read_number(self, number: int) -> int:
        """The outcome of a number on a numeric scale: its label's index, or ``size``
        (below the scale's values) or ``size + 1`` (above). On a reversed scale a number
        below the lowest label is better than the best, so it counts above."""
        if number < self.lo:
            return self.size + 1 if self.reverse else self.size
        if number > self.hi:
            return self.size if self.reverse else self.size + 1
        return self.hi - number if self.reverse else number - self.lo

    def read(self, text: str, *, goes_on: bool = False) -> int:
        """The exact reading of an answer that is ``text`` (or, with ``goes_on``, goes on
        with a letter or digit; label scales only): the label's index, ``size`` or
        ``size + 1`` for a number below or above the scale, ``size + 2`` for anything
        else. A number is an optional space and digits, ended by a non-digit; a label is
        the longest spelling the answer opens with that is not followed by a letter or
        digit ("good" in "good." but not in "goodness").

        >>> scale = ScoreScale.parse("words:good,very good")
        >>> scale.read(" Very good!"), scale.read("goodness"), scale.read("very"), scale.read("good", goes_on=True)
        (1, 4, 4, 4)
        """
        if self.numeric:
            match = _LEADING.match(text)
            if not match or (len(match.group(1)) > 1 and match.group(1)[0] == "0"):
                return self.size + 2
            return self.read_number(int(match.group(1)))
        best, longest = self.size + 2, -1
        for spelling, index in self.spellings.items():
            if len(spelling) > longest and text.startswith(spelling):
                after = text[len(spelling) : len(spelling) + 1]
                if (not after.isalnum()) if after else not goes_on:
                    best, longest = index, len(spelling)
        return best


def _checked_labels(words: Sequence[Any]) -> tuple[str, ...]:
    """Labels stripped of surrounding spaces, each a distinct, printable, non-empty text
    without the spec's separators; any problem is one line."""
    out: list[str] = []
    for word in words:
        if not isinstance(word, str):
            raise NumbiasError(f"scale label {word!r} is not text (quote it in YAML)")
        label = word.strip()
        if not label:
            raise NumbiasError("a scale label is empty")
        if bad := [c for c in label if c in _SEPARATORS or not c.isprintable()]:
            raise NumbiasError(
                f"scale label {label!r} holds {bad[0]!r}, which a label may not hold "
                f"(labels are separated by ',', values by '=', scales by '+')"
            )
        if twin := [w for w in out if w.casefold() == label.casefold()]:
            raise NumbiasError(
                f"scale label {label!r} is given twice"
                if twin[0] == label
                else f"scale labels {twin[0]!r} and {label!r} differ only in case"
            )
        out.append(label)
    return tuple(out)


def _letter_run(words: Sequence[str]) -> bool:
    """Whether the labels are single ASCII letters one apart (A, B, C or E, D, C)."""
    if not all(len(w) == 1 and w.isascii() and w.isalpha() for w in words):
        return False
    steps = {ord(b) - ord(a) for a, b in zip(words, words[1:])}
    return steps in ({1}, {-1}) and len({w.isupper() for w in words}) == 1


@lru_cache(maxsize=256)
def _parse_text(text: str) -> ScoreScale:
    """A scale from its spelling (cached: stored distributions name theirs, one per item)."""
    if (best := _BEST_FIRST.match(text)) is not None:
        inner = _parse_text(best.group(1))
        if inner.best_first:
            raise NumbiasError(f"scale {text!r}: best-first is given twice")
        return dataclasses.replace(inner, best_first=True)
    kind = _KIND.match(text)
    if kind is None:
        match = _RANGE.match(text)
        if not match:
            raise NumbiasError(f"scale {text!r} is not of the form {_FORMS}")
        return ScoreScale(int(match.group(1)), int(match.group(2)))
    name, body = kind.group(1).lower(), kind.group(2)
    if name == "reversed":
        match = _RANGE.match(body)
        if not match:
            raise NumbiasError(f"scale {text!r}: reversed takes a range of integers, e.g. reversed:1-5")
        return ScoreScale(int(match.group(1)), int(match.group(2)), reverse=True)
    if name == "letters":
        match = _LETTERS.match(body)
        if not match or match.group(1).isupper() != match.group(2).isupper() or match.group(1) == match.group(2):
            raise NumbiasError(f"scale {text!r}: letters takes two letters of one case, worst first, e.g. letters:A-E")
        a, b = ord(match.group(1)), ord(match.group(2))
        return ScoreScale.from_labels([chr(c) for c in range(a, b + (1 if b > a else -1), 1 if b > a else -1)])
    return _parse_words(text, body)


def _parse_words(text: str, body: str) -> ScoreScale:
    """``words:poor,fair,good``, each label optionally ``label=value`` (all or none)."""
    items = [item.rsplit("=", 1) for item in body.split(",")]
    valued = [len(item) == 2 for item in items]
    if any(valued) and not all(valued):
        raise NumbiasError(f"scale {text!r}: give a value to every label (label=value) or to none")
    if not any(valued):
        return ScoreScale.from_labels([item[0] for item in items])
    try:
        values = [int(item[1]) for item in items]
    except ValueError:
        raise NumbiasError(f"scale {text!r}: a label's value must be an integer (label=value)") from None
    return ScoreScale.from_labels([item[0] for item in items], values)


ENSEMBLE_JOIN = "+"
"""Joins the scales of a range ensemble: ``"0-9+1-5+1-10"``."""
MAX_GRID = 1000


def ensemble_parts(text: str) -> tuple[ScoreScale, ...]:
    """The scales of a range ensemble written ``"0-9+1-5"`` (at least two, distinct)."""
    parts = tuple(ScoreScale.parse(p) for p in str(text).split(ENSEMBLE_JOIN))
    if len(parts) < 2 or len(set(parts)) < len(parts):
        raise NumbiasError(
            f"range ensemble {text!r} needs two or more distinct scales joined by {ENSEMBLE_JOIN!r}, e.g. 0-9+1-5"
        )
    return parts


def ensemble_grid(parts: tuple[ScoreScale, ...]) -> ScoreScale:
    """The common scale ``0..L`` a range ensemble's parts are placed on: every part's
    scores land exactly on it when L, the least common multiple of the parts' spans,
    is at most 1000 (else L = 1000 and scores round to the nearest step)."""
    return ScoreScale(0, min(math.lcm(*(p.hi - p.lo for p in parts)), MAX_GRID))


def setting_scale(text: str) -> ScoreScale:
    """The scale a setting's scores are on: the scale itself, or a range ensemble's grid."""
    return ensemble_grid(ensemble_parts(text)) if ENSEMBLE_JOIN in str(text) else ScoreScale.parse(text)
