"""Prompt templates: their fields, filling one for a chat or a base model, rendering."""

from __future__ import annotations

import pytest

from numbias.core.scale import ScoreScale
from numbias.data.prompt import (
    NUMBER_ASK,
    SCALE_FIELDS,
    Prompt,
    PromptTemplate,
    drop_repeated_bos,
    render_chat,
    render_plain,
)
from numbias.util.errors import NumbiasError


def test_template_missing_field() -> None:
    with pytest.raises(NumbiasError, match="not in the data"):
        PromptTemplate("Rate {word} and {other} from {lo} to {hi}").check({"word"})


def test_chat_rendering_opens_assistant_turn() -> None:
    template = (
        "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}<|end|>{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    text = render_chat(template, Prompt(user="hi", answer_prefix="Score:"), "<s>", "</s>")
    assert text == "<|user|>hi<|end|><|assistant|>Score:"
    with pytest.raises(NumbiasError, match="chat template"):
        render_chat("{{ raise_exception('no') }}", Prompt(user="x"), "", "")


def test_fill_puts_the_scale_in_and_picks_the_prefix() -> None:
    template = PromptTemplate("Rate {word} from {lo} to {hi}.", system="Be fair.")
    chat = template.fill({"word": "good"}, ScoreScale(1, 5), chat=True)
    assert chat == Prompt(user="Rate good from 1 to 5.", answer_prefix="", system="Be fair.")
    assert template.fill({"word": "good"}, ScoreScale(1, 5), chat=False).answer_prefix == "Score:"
    assert PromptTemplate("{word}", answer_prefix="Rating:").prefix(chat=True) == "Rating:"
    with pytest.raises(NumbiasError, match="field 'word' missing from item"):
        template.fill({}, ScoreScale(1, 5), chat=True)


@pytest.mark.parametrize(("text", "fragment"), [("Rate {} now", "unnamed"), ("Rate {word", "malformed")])
def test_bad_templates(text: str, fragment: str) -> None:
    with pytest.raises(NumbiasError, match=fragment):
        PromptTemplate(text).check({"word"})


def test_plain_rendering_and_the_repeated_bos() -> None:
    assert render_plain(Prompt("Rate it.", "Score:", "Be fair.")) == "Be fair.\n\nRate it.\nScore:"
    assert render_plain(Prompt("Rate it.")) == "Rate it.\n"
    assert drop_repeated_bos([1, 1, 5], bos=1) == [1, 5]
    assert drop_repeated_bos([1, 5, 5], bos=1) == [1, 5, 5]
    assert drop_repeated_bos([1, 1], bos=None) == [1, 1]


@pytest.mark.parametrize(
    ("spec", "user"),
    [
        ("1-5", "Rate good from 1 to 5 (1, 2, 3, 4, 5)."),
        ("reversed:1-5", "Rate good from 5 to 1 (5, 4, 3, 2, 1)."),
        ("letters:A-C", "Rate good from A to C (A, B, C)."),
        ("words:poor,fair,very good", "Rate good from poor to very good (poor, fair, very good)."),
    ],
)
def test_the_scale_placeholders(spec: str, user: str) -> None:
    """{lo} and {hi} are the worst and the best label (on reversed:1-5 the best is 1),
    {labels} every label worst first."""
    template = PromptTemplate("Rate {word} from {lo} to {hi} ({labels}).")
    assert template.fill({"word": "good"}, ScoreScale.parse(spec), chat=True).user == user


def test_the_number_ask_becomes_a_label_ask_on_label_scales() -> None:
    """The built-in rubrics' "whole number" sentence asks for a label on a scale of
    labels, and stays as it is on digits, reversed digits included."""
    template = PromptTemplate(f"Rate {{word}} from {{lo}} (bad) to {{hi}} (good). {NUMBER_ASK}")
    words = template.fill({"word": "x"}, ScoreScale.parse("words:bad,ok,good"), chat=True).user
    assert words == (
        "Rate x from bad (bad) to good (good). Reply with exactly one of these answers and nothing else: bad, ok, good."
    )
    assert template.fill({"word": "x"}, ScoreScale.parse("reversed:0-9"), chat=True).user.endswith(
        "Reply with a single whole number from 9 to 0 and nothing else."
    )
    assert template.text_for(ScoreScale(0, 9)) == template.text and {"lo", "hi", "labels"} <= SCALE_FIELDS
