"""Prompts: a task's template filled with an item, then rendered for a judge.

Base models get plain completion text; instruction-tuned models get their own chat
template, and the score is read right after the assistant turn opens (after an
optional answer prefix such as ``Score:``)."""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import Template, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from numbias.core.scale import ScoreScale
from numbias.util.errors import NumbiasError, first_line

SCALE_FIELDS = frozenset({"lo", "hi", "labels"})
"""The placeholders the scale fills: its worst and best label, and every label in order."""
NUMBER_ASK = "Reply with a single whole number from {lo} to {hi} and nothing else."
"""How the built-in rubrics ask for the answer on a scale of numbers."""
LABEL_ASK = "Reply with exactly one of these answers and nothing else: {labels}."
"""The same ask on a scale of words or letters: a template's :data:`NUMBER_ASK` is
asked so there, so every task's rubric reads right on every scale."""
BEST_FIRST_NUMBER_ASK = "Reply with a single whole number from {hi} to {lo} and nothing else."
"""The number ask on a scale asked best first (``best-first:1-5``): the range named
from the best answer down."""


def scale_fields(scale: ScoreScale) -> dict[str, Any]:
    """What ``{lo}``, ``{hi}`` and ``{labels}`` become: the worst and the best label (a
    number on a scale of numbers, ``{hi}`` is 1 on ``reversed:1-5``), and every label
    in the order the scale is asked (worst first, or best first), joined by commas.

    >>> scale_fields(ScoreScale.parse("words:poor,fair,good"))
    {'lo': 'poor', 'hi': 'good', 'labels': 'poor, fair, good'}
    >>> scale_fields(ScoreScale.parse("best-first:words:poor,fair,good"))["labels"]
    'good, fair, poor'
    """
    labels = scale.labels
    if scale.numeric:
        ends: tuple[Any, Any] = (scale.hi, scale.lo) if scale.reverse else (scale.lo, scale.hi)
    else:
        ends = (labels[0], labels[-1])
    return {"lo": ends[0], "hi": ends[1], "labels": ", ".join(scale.asked)}


@dataclass(frozen=True)
class Prompt:
    """What a judge is asked: the user turn and the text its answer starts with.

    >>> from numbias import Prompt
    >>> Prompt("Rate the word 'great' from 1 to 5.", answer_prefix="Score:")
    Prompt(user="Rate the word 'great' from 1 to 5.", answer_prefix='Score:', system=None)
    """

    user: str
    answer_prefix: str = ""
    system: str | None = None


@dataclass(frozen=True)
class PromptTemplate:
    """A ``str.format`` template over item fields plus ``{lo}``, ``{hi}`` and ``{labels}``
    (:func:`scale_fields`).

    ``answer_prefix=None`` lets the judge choose: nothing for chat models (the score
    opens the assistant turn), ``Score:`` for base models.

    >>> from numbias import PromptTemplate, ScoreScale
    >>> template = PromptTemplate("Rate the word {word} from {lo} to {hi}.")
    >>> sorted(template.fields)
    ['hi', 'lo', 'word']
    >>> template.fill({"word": "great"}, ScoreScale(1, 5), chat=False)
    Prompt(user='Rate the word great from 1 to 5.', answer_prefix='Score:', system=None)
    >>> template.check({"text"})
    Traceback (most recent call last):
    ...
    numbias.util.errors.NumbiasError: prompt template field(s) ['word'] not in the data (available: ...)
    """

    text: str
    answer_prefix: str | None = None
    system: str | None = None

    @property
    def fields(self) -> set[str]:
        """The placeholders of the template and of the system prompt, which is filled
        the same way (a placeholder is never sent unfilled)."""
        return _placeholders(self.text, "prompt template") | _placeholders(self.system or "", "system prompt")

    def check(self, available: set[str]) -> None:
        """Fail early if the template names a field the data does not have."""
        if "" in self.fields:
            raise NumbiasError("prompt template has an unnamed {} field; name every field")
        missing = self.fields - available - SCALE_FIELDS
        if missing:
            raise NumbiasError(
                f"prompt template field(s) {sorted(missing)} not in the data "
                f"(available: {sorted(available | SCALE_FIELDS)})"
            )

    def text_for(self, scale: ScoreScale) -> str:
        """The text asked on ``scale``: on a scale of words or letters, the number ask
        (:data:`NUMBER_ASK`) becomes :data:`LABEL_ASK`; on a scale of numbers asked best
        first, :data:`BEST_FIRST_NUMBER_ASK`. A scale asked best first needs a rubric that
        shows the order (the number ask, or ``{labels}``), else one line: the prompt
        would be the worst-first one under another key."""
        if scale.best_first and NUMBER_ASK not in self.text and "labels" not in self.fields:
            raise NumbiasError(
                f"scale {scale}: the rubric lists no options to put best first (give it "
                f"{{labels}} or end it with {NUMBER_ASK!r})"
            )
        if not scale.numeric:
            return self.text.replace(NUMBER_ASK, LABEL_ASK)
        return self.text.replace(NUMBER_ASK, BEST_FIRST_NUMBER_ASK) if scale.best_first else self.text

    def fill(self, item: Mapping[str, Any], scale: ScoreScale, *, chat: bool) -> Prompt:
        values = {**item, **scale_fields(scale)}
        try:
            user = self.text_for(scale).format_map(values)
            system = self.system.format_map(values) if self.system else self.system
        except KeyError as exc:
            raise NumbiasError(f"prompt template field {exc} missing from item") from None
        except (ValueError, TypeError, IndexError, AttributeError) as exc:
            raise NumbiasError(
                f"prompt template placeholder {self._failing(values)}: {first_line(exc)} (write "
                "placeholders as {field}, without a format spec)"
            ) from None
        return Prompt(user=user, answer_prefix=self.prefix(chat), system=system)

    def _failing(self, values: Mapping[str, Any]) -> str:
        """The first placeholder that cannot be filled from ``values``, as written."""
        for _, name, spec, conversion in string.Formatter().parse(self.text):
            if name is None:
                continue
            written = _placeholder(name, spec, conversion)
            try:
                written.format_map(values)
            except (ValueError, TypeError, IndexError, AttributeError, KeyError):
                return written
        return "?"

    def prefix(self, chat: bool) -> str:
        if self.answer_prefix is not None:
            return self.answer_prefix
        return "" if chat else "Score:"


def _placeholder(name: str | None, spec: str | None, conversion: str | None) -> str:
    """A placeholder as the template writes it: ``{text!r:>9}``."""
    return "{" + (name or "") + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"


def _placeholders(text: str, what: str) -> set[str]:
    """The fields ``text`` names; a malformed text or an unknown conversion is one line."""
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise NumbiasError(f"{what} is malformed: {exc}") from None
    for _, name, spec, conversion in parsed:
        if conversion not in (None, "r", "s", "a"):
            raise NumbiasError(
                f"{what} placeholder {_placeholder(name, spec, conversion)}: unknown "
                f"conversion !{conversion} (write {{{name}}})"
            )
    return {name for _, name, _, _ in parsed if name is not None}


def render_plain(prompt: Prompt) -> str:
    """Completion-style text for base models."""
    head = f"{prompt.system}\n\n" if prompt.system else ""
    return f"{head}{prompt.user}\n{prompt.answer_prefix}"


def drop_repeated_bos(tokens: list[int], bos: int | None) -> list[int]:
    """Tokens of a rendered chat prompt without the second BOS: the chat template
    already wrote one, and the tokenizer adds its own."""
    if len(tokens) > 1 and bos is not None and tokens[0] == tokens[1] == bos:
        return tokens[1:]
    return tokens


@lru_cache(maxsize=16)
def _compile(template: str) -> Template:
    """Parse a chat template once: parsing costs more than rendering a short prompt."""
    return ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(template)


def render_chat(template: str, prompt: Prompt, bos_token: str, eos_token: str) -> str:
    """Apply a model's own (Jinja) chat template, then open the assistant turn."""

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    messages = ([{"role": "system", "content": prompt.system}] if prompt.system else []) + [
        {"role": "user", "content": prompt.user}
    ]
    try:
        text = _compile(template).render(
            messages=messages,
            add_generation_prompt=True,
            bos_token=bos_token,
            eos_token=eos_token,
            raise_exception=raise_exception,
        )
    except TemplateError as exc:
        raise NumbiasError(f"the model's chat template failed to render: {exc}") from None
    return text + prompt.answer_prefix


def cut_middle(text: str, keep: int) -> str:
    """``text`` with its middle replaced by an ellipsis, keeping ``keep`` characters:
    the start and the end of a long document usually say the most."""
    if keep >= len(text):
        return text
    head = (keep + 1) // 2
    tail = keep - head
    return f"{text[:head]} … {text[len(text) - tail :]}" if tail else f"{text[:head]} …"


def fit_field(
    template: PromptTemplate,
    item: Mapping[str, Any],
    scale: ScoreScale,
    *,
    chat: bool,
    field: str,
    count: Callable[[Prompt], int],
    budget: int,
) -> tuple[Prompt, int] | None:
    """The prompt with ``field`` cut in its middle, as little as needed to fit ``budget``
    tokens, and the number of characters cut; None when even an empty field is too long."""
    text = str(item[field])

    def prompt(keep: int) -> Prompt:
        return template.fill({**item, field: cut_middle(text, keep)}, scale, chat=chat)

    if count(prompt(0)) > budget:
        return None
    lo, hi = 0, len(text) - 1  # lo always fits; find the longest that does
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if count(prompt(mid)) <= budget else (lo, mid - 1)
    return prompt(lo), len(text) - lo
