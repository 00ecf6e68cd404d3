"""Prompt templates: their fields, filling one for a chat or a base model, rendering."""

from __future__ import annotations

import pytest

from numbias.core.scale import ScoreScale
from numbias.data.prompt import Prompt, PromptTemplate, drop_repeated_bos, render_chat, render_plain
from numbias.util.errors import NumbiasError


def test_template_missing_field() -> None:
    with pytest.raises(NumbiasError, match="not in the data"):
        PromptTemplate("Rate {word} and {other} from {lo} to {hi}").check({"word"})


def test_chat_rendering_opens_assistant_turn() -> None:
    template = ("{% for m in messages %}<|{{ m.role }}|>{{ m.content }}<|end|>{% endfor %}"
                "{% if add_generation_prompt %}<|assistant|>{% endif %}")
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
