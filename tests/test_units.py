"""Scales, prompts, store and the fake-backend study pipeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from numbias.backends.fake import FakeBackend
from numbias.distribution import ScoreDistribution
from numbias.errors import NumbiasError
from numbias.prompt import Prompt, PromptTemplate, render_chat
from numbias.sampling import categorize
from numbias.scale import ScoreScale
from numbias.store import Store


@pytest.mark.parametrize("text", ["9-0", "5-5", "a-b", "1.5-3", "7"])
def test_bad_scales(text: str) -> None:
    with pytest.raises(NumbiasError):
        ScoreScale.parse(text)


def test_scale_parse() -> None:
    assert ScoreScale.parse("1..100") == ScoreScale(1, 100)
    assert ScoreScale.parse(" 0 - 9 ").size == 10


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


def test_store_roundtrip(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    key = store.register({"a": 1})
    dist = ScoreDistribution(ScoreScale(0, 2), np.array([0.2, 0.3, 0.4]), 0.05, 0.0, 0.05)
    store.put(key, "x", dist, 12)
    assert store.done(key, ["x", "y"]) == {"x"}
    back = store.get(key, ["x"])["x"]
    np.testing.assert_array_equal(back.probs, dist.probs)
    assert (back.below, back.above, back.other, back.scale) == (0.05, 0.0, 0.05, dist.scale)
    store.close()


@pytest.mark.parametrize(
    ("text", "expected"),
    [("8", 8), (" 8", 8), ("8/10", 8), ("  8", "other"), ("Score: 7", "other"), ("10", "above"), ("07", "other"),
     ("", "other")],
)
def test_categorize(text: str, expected: int | str) -> None:
    scale = ScoreScale(0, 9)
    index = {"below": 10, "above": 11, "other": 12}.get(expected, expected)  # type: ignore[arg-type]
    assert categorize(text, scale) == index


def test_fake_sampling_is_seeded() -> None:
    pieces = ["1", "2", "x", ""]
    backend = FakeBackend(pieces, {(): [0.0, 0.5, -1.0, -9.0]}, eos=3)
    p = [Prompt(user="a")]
    one = next(backend.sample(p, n=50, temperature=1.0, max_tokens=1, seed=1))
    assert one == next(backend.sample(p, n=50, temperature=1.0, max_tokens=1, seed=1))
    assert one != next(backend.sample(p, n=50, temperature=1.0, max_tokens=1, seed=2))
