"""A tiny deterministic language model with fixed logits, so the trie maths and the
pipeline can be tested exactly without a real model (as flexeval does)."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from numbias.core.distribution import TEMPERATURES, ScoreDistribution, check_temperatures
from numbias.core.sampling import draw_token
from numbias.core.scale import ScoreScale
from numbias.core.trie import ScoreTrie, gather_logprobs, tempered_logprobs
from numbias.data.prompt import Prompt, render_plain
from numbias.util.errors import NumbiasError

Logits = Callable[[Prompt, tuple[int, ...]], np.ndarray]


class FakeBackend:
    """``logits(prompt, generated_tokens)`` gives the next-token logits over ``pieces``.

    ``eos`` is the id of an end-of-generation token (its piece should be empty). Each
    prompt is scored alone, so it is ``order_free``."""

    order_free = True

    def __init__(
        self,
        pieces: Sequence[str],
        logits: Logits | Mapping[tuple[int, ...], Sequence[float]],
        *,
        eos: int | None = None,
        context_length: int = 4096,
        temperatures: Sequence[float] = TEMPERATURES,
    ) -> None:
        self.pieces = list(pieces)
        if isinstance(logits, Mapping):
            table = {k: np.asarray(v, dtype=float) for k, v in logits.items()}
            flat = np.zeros(len(self.pieces))
            self._logits: Logits = lambda _p, ctx: table.get(ctx, flat)
        else:
            self._logits = logits
        self.eos = eos
        self._context_length = context_length
        self.calls = 0
        self.temperatures = check_temperatures(temperatures)
        self.identity: dict[str, Any] = {
            "backend": "fake",
            "vocab": len(self.pieces),
            "temperatures": list(self.temperatures),
        }

    @property
    def context_length(self) -> int:
        return self._context_length

    def count_tokens(self, prompt: Prompt) -> int:
        return len(render_plain(prompt).split())

    def answer_room(self, scale: ScoreScale) -> int:
        """Tokens the walk takes after the prompt: the longest spelling and the end check."""
        return ScoreTrie(scale, self.pieces).depth + 1

    def logprobs(self, prompt: Prompt, context: tuple[int, ...]) -> np.ndarray:
        self.calls += 1
        return gather_logprobs(self._logits(prompt, context), np.arange(len(self.pieces)))

    def score(self, prompts: Sequence[Prompt], scale: ScoreScale) -> Iterator[ScoreDistribution]:
        trie = ScoreTrie(scale, self.pieces)
        for prompt in prompts:
            if (n := self.count_tokens(prompt)) + trie.depth + 1 > self.context_length:
                raise NumbiasError(
                    f"prompt of {n} tokens (+{trie.depth + 1} for the answer) exceeds the context "
                    f"of {self.context_length}"
                )
            rows = []
            for i, node in enumerate(trie.nodes):
                self.calls += 1
                logits = self._logits(prompt, tuple(trie.path(i)))
                rows.append(tempered_logprobs(logits, node.gather, self.temperatures, node.classes))
            yield trie.distribution(rows, self.temperatures)

    def sample(
        self,
        prompts: Sequence[Prompt],
        *,
        n: int,
        temperature: float,
        max_tokens: int,
        seed: int,
    ) -> Iterator[list[str]]:
        for prompt in prompts:
            rng = np.random.default_rng([seed, zlib.crc32(prompt.user.encode())])
            texts = []
            for _ in range(n):
                context: tuple[int, ...] = ()
                for _ in range(max_tokens):
                    logp = self.logprobs(prompt, context)
                    token = draw_token(logp, temperature, rng)
                    if token == self.eos:
                        break
                    context += (token,)
                texts.append("".join(self.pieces[t] for t in context))
            yield texts
