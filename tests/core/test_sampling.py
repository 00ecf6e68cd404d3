"""The paper's sampling protocol: drawn tokens and how a sampled answer is read."""

from __future__ import annotations

import numpy as np
import pytest

from numbias.backends.fake import FakeBackend
from numbias.core.sampling import categorize, draw_token, protocol_score, sampled_distribution
from numbias.core.scale import ScoreScale
from numbias.data.prompt import Prompt


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8", 8),
        (" 8", 8),
        ("8/10", 8),
        ("  8", "other"),
        ("Score: 7", "other"),
        ("10", "above"),
        ("07", "other"),
        ("", "other"),
    ],
)
def test_categorize(text: str, expected: int | str) -> None:
    scale = ScoreScale(0, 9)
    index = {"below": 10, "above": 11, "other": 12}.get(expected, expected)  # type: ignore[arg-type]
    assert categorize(text, scale) == index


def test_categorize_below_the_scale() -> None:
    assert categorize("0", ScoreScale(1, 5)) == 5


def test_fake_sampling_is_seeded() -> None:
    pieces = ["1", "2", "x", ""]
    backend = FakeBackend(pieces, {(): [0.0, 0.5, -1.0, -9.0]}, eos=3)
    p = [Prompt(user="a")]
    one = next(backend.sample(p, n=50, temperature=1.0, max_tokens=1, seed=1))
    assert one == next(backend.sample(p, n=50, temperature=1.0, max_tokens=1, seed=1))
    assert one != next(backend.sample(p, n=50, temperature=1.0, max_tokens=1, seed=2))


class _Fixed:
    """A generator whose every draw is ``u``, so the cut through the CDF is exact."""

    def __init__(self, u: float) -> None:
        self.u = u

    def random(self) -> float:
        return self.u


def test_draw_token_cuts_the_tempered_cdf() -> None:
    logits = np.log([1.0, 3.0])  # T = 1: CDF 1/4, 1;  T = 0.5: weights 1, 9, CDF 1/10, 1
    assert draw_token(logits, 1.0, _Fixed(0.2)) == 0
    assert draw_token(logits, 1.0, _Fixed(0.3)) == 1
    assert draw_token(logits, 0.5, _Fixed(0.2)) == 1
    assert draw_token(logits, 0.5, _Fixed(0.05)) == 0
    assert draw_token(np.array([0.0, 2.0, 1.0]), 0.0, _Fixed(0.0)) == 1  # T = 0 is greedy


def test_expected_tv_is_what_sampling_gives() -> None:
    """The exact expected TV distance of n draws matches a simulation of them, and the
    samples needed for a precision are the fewest that reach it."""
    from numbias.core.sampling import expected_tv, samples_needed

    rng = np.random.default_rng(0)
    rows = rng.dirichlet(np.full(13, 0.3), size=3)
    for n in (10, 200):
        simulated = [np.mean([0.5 * np.abs(rng.multinomial(n, r) / n - r).sum() for _ in range(3000)]) for r in rows]
        assert np.allclose(expected_tv(rows, n), simulated, rtol=0.03)
    scale = ScoreScale(0, 9)
    n = samples_needed(rows, scale, tv=0.03, mean_tol=1.0)  # the TV criterion alone, for every item
    assert expected_tv(rows, n).max() < 0.03 <= expected_tv(rows, n - 1).max()
    mean = samples_needed(rows, scale, tv=0.03, mean_tol=1.0, every=False)
    assert expected_tv(rows, mean).mean() < 0.03 <= expected_tv(rows, mean - 1).mean() and mean < n
    point = np.zeros((1, 13))
    point[0, 4] = 1.0
    assert samples_needed(point, scale) == 1  # a certain answer needs one sample
    coin = np.array([[0.5, 0.5, 0, 0, 0]])
    assert samples_needed(coin, ScoreScale(0, 1), tv=0.05) == 64  # 0.399 / sqrt(n) < 0.05
    assert samples_needed(coin, ScoreScale(0, 1), tv=1.0, mean_tol=0.01) > 600  # the mean's criterion binds


def test_label_scales_are_read_like_their_trie() -> None:
    """A sampled answer on a scale of labels is read as the exact distribution reads it
    (categorize) and by the protocol: the first label anywhere, as a whole word."""
    scale = ScoreScale.parse("words:poor,good,very good")
    other = scale.size + 2
    assert [categorize(t, scale) for t in ["good", " Very good.", "goodness", "It is good"]] == [1, 2, other, other]
    assert protocol_score("It is good, not very good", scale) == (2, 0)
    assert protocol_score("Very good!", scale) == (3, 0)
    assert protocol_score("goodness me, a 5", scale) is None
    dist = sampled_distribution(["good", "Poor", "meh", "very good", "good"], scale, 0.7)
    np.testing.assert_allclose(dist.probs, [0.2, 0.4, 0.2])
    assert (dist.other, dist.below, dist.above, dist.n_samples) == (pytest.approx(0.2), 0.0, 0.0, 5)


def test_the_protocol_mirrors_a_reversed_scale() -> None:
    """On reversed:1-5 the answer 1 is value 5; 0 (past the best) clips to the top, 9
    (past the worst) to the bottom."""
    scale = ScoreScale.parse("reversed:1-5")
    assert [protocol_score(t, scale) for t in ["1", "Score: 2", "0", "9", "none"]] == [
        (5, 0),
        (4, 0),
        (5, 1),
        (1, -1),
        None,
    ]
    dist = sampled_distribution(["1", "1", "0", "5"], scale, 0.7)
    np.testing.assert_allclose(dist.probs, [0.25, 0, 0, 0, 0.5])
    assert (dist.below, dist.above) == (0.0, 0.25)
