"""A judge and a task as an installed package would provide them, for tests that reach
numbias only by name (``backend: plugin_judge:make``, entry point ``numbias.tasks``)."""

from __future__ import annotations

import os
import re
import signal
import time
import zlib

import numpy as np

from numbias.backends.fake import FakeBackend
from numbias.data.prompt import Prompt, PromptTemplate
from numbias.data.tasks import Task
from numbias.util.errors import NumbiasError

PIECES = [str(d) for d in range(10)] + [" ", "x", ""]


def logits(prompt: Prompt, context: tuple[int, ...]) -> np.ndarray:
    """Fixed logits that depend on every part of the prompt (system, user, answer prefix),
    so a part that does not reach the judge changes the distributions."""
    text = f"{prompt.system}|{prompt.user}|{prompt.answer_prefix}"
    row = np.random.default_rng(zlib.crc32(text.encode()) + len(context)).normal(0, 1.5, len(PIECES))
    if context:
        row[-1] = 4.0
    return row


class SlowFake(FakeBackend):
    """The fake judge taking ``delay`` seconds per item and logging each item it scores
    to ``log`` (one line per item, appended, with the id of the process that scored
    it): what a crash test needs to see. An item whose prompt has the word ``fail`` is
    a backend's error; one with the word ``die`` kills the process scoring it."""

    def __init__(
        self,
        *args: object,
        delay: float,
        log: str | None,
        fail: str | None = None,
        die: str | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.delay, self.log, self.fail, self.die = delay, log, fail, die

    def score(self, prompts, scale):  # noqa: ANN001, ANN201 - the Backend protocol's signature
        for prompt, dist in zip(prompts, super().score(prompts, scale)):
            words = prompt.user.split()
            if self.die in words:
                os.kill(os.getpid(), signal.SIGKILL)
            if self.fail in words:
                raise NumbiasError(f"the judge cannot score {self.fail}")
            time.sleep(self.delay)
            if self.log:
                with open(self.log, "a", encoding="utf-8") as fh:
                    fh.write(f"{scale}|{prompt.user}|{os.getpid()}\n")
            yield dist


def make(
    model: str,
    chat: bool = True,
    context_length: int = 4096,
    delay: float | None = None,
    log: str | None = None,
    fail: str | None = None,
    die: str | None = None,
) -> FakeBackend:
    """``delay``, ``log``, ``fail`` and ``die`` default to ``$PLUGIN_JUDGE_DELAY``,
    ``$PLUGIN_JUDGE_LOG``, ``$PLUGIN_JUDGE_FAIL`` and ``$PLUGIN_JUDGE_DIE``, so a command
    that takes no judge options (``numbias score``) can set them too, and a judge's
    identity stays the same when they change."""
    delay = float(os.environ.get("PLUGIN_JUDGE_DELAY", 0)) if delay is None else delay
    log = log or os.environ.get("PLUGIN_JUDGE_LOG")
    fail, die = fail or os.environ.get("PLUGIN_JUDGE_FAIL"), die or os.environ.get("PLUGIN_JUDGE_DIE")
    backend = SlowFake(
        PIECES, logits, eos=len(PIECES) - 1, context_length=context_length, delay=delay, log=log, fail=fail, die=die
    )
    backend.identity = {**backend.identity, "model": model, "context_length": context_length}
    return backend


def _load_reviews(n: int | None = None, seed: int = 0):
    import pandas as pd

    from numbias.data.dataset import make_dataset, sample_rows

    words = ["awful", "poor", "fine", "good", "great", "bad", "nice", "superb", "dull", "lovely", "grim", "okay"]
    frame = pd.DataFrame(
        {"id": [f"w{i}" for i in range(len(words))], "word": words, "human": [1, 2, 3, 4, 5, 2, 4, 5, 2, 5, 1, 3]}
    )
    return make_dataset("plugin-reviews", sample_rows(frame, n, seed), fields=["word"], human_range=(1.0, 5.0))


TASK = Task(
    "plugin-reviews",
    "One-word reviews (a plug-in task)",
    PromptTemplate("Rate the review from {lo} to {hi}.\nReview: {word}"),
    (1.0, 5.0),
    5,
    "the plugin_judge test module",
    _load_reviews,
    False,
)


def reader(model: str, bias: float = 0.0) -> FakeBackend:
    """A judge that reads an item's true score from the number in its text (``word12``:
    true score 12 % 5 on 0–4, as a position on the scale it is asked on), with seeded
    noise, a little non-numeric mass, and a pull of ``bias`` towards the scale's
    second-highest score: an aligned-looking judge when ``bias`` is large."""

    def logits(prompt: Prompt, context: tuple[int, ...]) -> np.ndarray:
        row = np.full(len(PIECES), -30.0)
        if context:
            row[-1] = 10.0  # one digit, then the end
            return row
        lo, hi = (int(x) for x in re.findall(r"from (\d+) to (\d+)", prompt.user)[-1])
        word = prompt.user.split("Item: ")[-1].split("\n")[0]
        number = re.findall(r"\d+", word)
        true = (int(number[-1]) if number else zlib.crc32(word.encode())) % 5 / 4
        unit = np.clip(true + np.random.default_rng(zlib.crc32(word.encode())).normal(0, 0.15), 0, 1)
        scores = np.arange(lo, hi + 1)
        row[scores] = -(((scores - lo) / (hi - lo) - unit) ** 2) / 0.03
        row[hi - 1] += bias
        row[PIECES.index("x")] = -4.0
        return row

    backend = FakeBackend(PIECES, logits, eos=len(PIECES) - 1)
    backend.identity = {**backend.identity, "model": model, "bias": bias, "reader": 1}
    return backend


LABEL_PIECES = [*PIECES[:-1], *"ABCDE", "poor", "fair", "good", "very", " good", "excellent", ".", ""]
"""Digits, letters and the words of a five-word scale (``very good`` is two tokens), then the end."""


def _asked_labels(user: str) -> list[str]:
    """The labels a prompt asks for, worst first: those after the label ask, else the
    numbers from {lo} to {hi} (descending on a reversed scale)."""
    if "nothing else: " in user:
        return user.split("nothing else: ")[-1].split("\n")[0].removesuffix(".").split(", ")
    lo, hi = (int(x) for x in re.findall(r"from (\d+) to (\d+)", user)[-1])
    return [str(v) for v in (range(lo, hi + 1) if lo < hi else range(lo, hi - 1, -1))]


def labeller(model: str, bias: float = 0.0) -> FakeBackend:
    """A judge on any scale, numbers or labels: it reads an item's true score from the
    number in its text, as ``reader`` does, puts its first token on the labels near it,
    then spells the label it started and ends; ``bias`` pulls its first token towards
    the second label from the end of the ones asked, whatever the item."""
    end = len(LABEL_PIECES) - 1

    def logits(prompt: Prompt, context: tuple[int, ...]) -> np.ndarray:
        labels = _asked_labels(prompt.user)
        row = np.full(len(LABEL_PIECES), -30.0)
        said = "".join(LABEL_PIECES[t] for t in context)
        onward = [p for p in range(end) if any(label.startswith(said + LABEL_PIECES[p]) for label in labels)]
        if context:
            row[end if said in labels or not onward else max(onward, key=lambda p: len(LABEL_PIECES[p]))] = 10.0
            return row
        word = prompt.user.split("Item: ")[-1].split("\n")[0]
        number = re.findall(r"\d+", word)
        true = (int(number[-1]) if number else zlib.crc32(word.encode())) % 5 / 4
        unit = np.clip(true + np.random.default_rng(zlib.crc32(word.encode())).normal(0, 0.15), 0, 1)
        for k, label in enumerate(labels):
            first = max((p for p in onward if label.startswith(LABEL_PIECES[p])), key=lambda p: len(LABEL_PIECES[p]))
            row[first] = np.logaddexp(
                row[first], -((k / (len(labels) - 1) - unit) ** 2) / 0.03 + (bias if k == len(labels) - 2 else 0.0)
            )
        row[LABEL_PIECES.index("x")] = -4.0
        return row

    backend = FakeBackend(LABEL_PIECES, logits, eos=end)
    backend.identity = {**backend.identity, "model": model, "labeller": 1, **({"bias": bias} if bias else {})}
    return backend
