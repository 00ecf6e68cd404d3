"""Trie maths against hand-computed values and brute-force enumeration (fake backend)."""

from __future__ import annotations

import itertools
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numbias.backends.fake import FakeBackend
from numbias.core.sampling import categorize
from numbias.core.scale import ScoreScale
from numbias.core.trie import ScoreTrie, gather_logprobs
from numbias.data.prompt import Prompt

PIECES = ["0", "1", "2", "3", "5", "8", "9", " ", " 1", "10", "x", "", "8.", " x", "00"]
EOS = PIECES.index("")
PROMPT = Prompt(user="rate it")


def _logits(probabilities: dict[str, float]) -> np.ndarray:
    row = np.full(len(PIECES), -np.inf)
    for piece, p in probabilities.items():
        row[PIECES.index(piece)] = np.log(p)
    return row


def _ids(*pieces: str) -> tuple[int, ...]:
    return tuple(PIECES.index(p) for p in pieces)


def test_hand_computed_distribution_on_0_9() -> None:
    table = {
        (): _logits({"8": 0.5, " ": 0.1, "x": 0.2, "1": 0.2}),
        _ids("8"): _logits({"x": 0.9, "3": 0.1}),  # "83" is above the scale
        _ids(" "): _logits({"8": 1.0}),
        _ids(" ", "8"): _logits({"": 1.0}),
        _ids("1"): _logits({"0": 0.5, "": 0.5}),  # "10" is above 0-9
    }
    backend = FakeBackend(PIECES, table, eos=EOS)
    dist = next(backend.score([PROMPT], ScoreScale(0, 9)))
    expected = np.zeros(10)
    expected[8] = 0.5 * 0.9 + 0.1
    expected[1] = 0.2 * 0.5
    np.testing.assert_allclose(dist.probs, expected, atol=1e-12)
    assert dist.above == pytest.approx(0.5 * 0.1 + 0.2 * 0.5)
    assert dist.below == 0.0
    assert dist.other == pytest.approx(0.2)
    assert dist.total == pytest.approx(1.0, abs=1e-12)


def test_multi_token_score_includes_end_of_number() -> None:
    """P("1" on 1-10) = P("1") x P(not a digit | "1"); "10" sums both tokenizations."""
    table = {
        (): _logits({"1": 0.6, "10": 0.3, "x": 0.1}),
        _ids("1"): _logits({"0": 0.25, "x": 0.5, "5": 0.25}),
        _ids("1", "0"): _logits({"": 0.8, "0": 0.2}),
        _ids("10"): _logits({"x": 1.0}),
    }
    dist = next(FakeBackend(PIECES, table, eos=EOS).score([PROMPT], ScoreScale(1, 10)))
    assert dist.probs[0] == pytest.approx(0.6 * 0.5)
    assert dist.probs[9] == pytest.approx(0.6 * 0.25 * 0.8 + 0.3)
    assert dist.above == pytest.approx(0.6 * 0.25 + 0.6 * 0.25 * 0.2)
    assert dist.total == pytest.approx(1.0)


def test_leading_zero_and_below_scale() -> None:
    """On 1-5, "0" then end is below the scale; "05" is malformed, so "other"."""
    table = {
        (): _logits({"0": 1.0}),
        _ids("0"): _logits({"": 0.7, "5": 0.3}),
    }
    dist = next(FakeBackend(PIECES, table, eos=EOS).score([PROMPT], ScoreScale(1, 5)))
    assert dist.below == pytest.approx(0.7)
    assert dist.other == pytest.approx(0.3)


def test_mixed_token_ends_number() -> None:
    table = {(): _logits({"8.": 0.4, " x": 0.6})}
    dist = next(FakeBackend(PIECES, table, eos=EOS).score([PROMPT], ScoreScale(0, 9)))
    assert dist.probs[8] == pytest.approx(0.4)
    assert dist.other == pytest.approx(0.6)


def test_trie_holds_bare_and_space_led_spellings() -> None:
    trie = ScoreTrie(ScoreScale(1, 10), PIECES)
    texts = {n.text for n in trie.nodes}
    assert {"1", "10", " ", " 1", " 10"} <= texts
    paths = {tuple(trie.path(i)) for i, n in enumerate(trie.nodes) if n.text == "10"}
    assert paths == {_ids("1", "0"), _ids("10")}


def _random_lm(seed: int):
    """Random logits per context; after two generated tokens the end token dominates,
    so brute-force enumeration to depth 3 misses only ~e^-60 of the mass."""

    def logits(_prompt: Prompt, context: tuple[int, ...]) -> np.ndarray:
        rng = np.random.default_rng([seed, zlib.crc32(repr(context).encode())])
        row = rng.normal(0, 2, len(PIECES))
        if len(context) >= 2:
            row[EOS] = 60.0
        return row

    return logits


def _brute_force(backend: FakeBackend, scale: ScoreScale, depth: int = 3, temperature: float = 1.0) -> np.ndarray:
    masses = np.zeros(scale.size + 3)
    for length in range(1, depth + 1):
        for seq in itertools.product(range(len(PIECES)), repeat=length):
            if EOS in seq[:-1] or (length < depth and seq[-1] != EOS):
                continue
            p = 1.0
            for k, token in enumerate(seq):
                p *= np.exp(gather_logprobs(backend._logits(PROMPT, seq[:k]) / temperature, np.asarray([token]))[0])
            text = "".join(PIECES[t] for t in seq)
            masses[categorize(text, scale)] += p
    return masses


@pytest.mark.slow
@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.sampled_from([(0, 9), (1, 5), (1, 10), (2, 12)]))
def test_trie_equals_brute_force_enumeration(seed: int, scale: tuple[int, int]) -> None:
    sc = ScoreScale(*scale)
    backend = FakeBackend(PIECES, _random_lm(seed), eos=EOS)
    dist = next(backend.score([PROMPT], sc))
    expected = _brute_force(backend, sc)
    np.testing.assert_allclose(dist.probs, expected[: sc.size], atol=1e-9)
    np.testing.assert_allclose([dist.below, dist.above, dist.other], expected[sc.size :], atol=1e-9)
    assert dist.total == pytest.approx(1.0, abs=1e-9)


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 10_000), temperature=st.sampled_from([0.4, 0.7, 1.3, 2.0]))
def test_tempered_trie_equals_brute_force_at_that_temperature(seed: int, temperature: float) -> None:
    """Temperature rescales every step of a multi-token score, not the final mass."""
    sc = ScoreScale(1, 10)
    backend = FakeBackend(PIECES, _random_lm(seed), eos=EOS)
    dist = next(backend.score([PROMPT], sc)).at(temperature)
    expected = _brute_force(backend, sc, temperature=temperature)
    np.testing.assert_allclose(dist.probs, expected[: sc.size], atol=1e-9)
    np.testing.assert_allclose([dist.below, dist.above, dist.other], expected[sc.size :], atol=1e-9)


def test_next_level_keeps_children_whose_path_reaches_prune() -> None:
    """The step every pruned walk (llama.cpp, exact over HTTP) shares: reach is the
    product of the T = 1 probabilities along the path, and only children at or above
    ``prune`` are evaluated next."""
    trie = ScoreTrie(ScoreScale(1, 10), PIECES)
    root = trie.nodes[0]
    k = len(root.children)
    probs = np.linspace(1.0, 2.0, k) / (4 * np.linspace(1.0, 2.0, k).sum())  # the children share 0.25
    row = np.log(np.concatenate([probs, np.full(len(root.gather) - k, 1e-3)]))
    reach = np.zeros(len(trie.nodes))
    reach[0] = 0.8
    cut = 0.8 * (probs[k // 2 - 1] + probs[k // 2]) / 2  # between two children (probs increase)
    wanted = trie.next_level([0], [row], reach, cut)
    np.testing.assert_allclose(reach[root.children], 0.8 * probs)
    assert wanted == root.children[k // 2 :]
    assert trie.next_level([0], [row], reach, 0.0) == root.children


def test_next_level_skips_the_least_probable_within_the_budget() -> None:
    """With a budget, children below ``prune`` are skipped least probable first while
    their total stays within it; the rest of them are evaluated."""
    trie = ScoreTrie(ScoreScale(1, 10), PIECES)
    root = trie.nodes[0]
    k = len(root.children)
    probs = np.arange(1, k + 1) / (2.0 * np.arange(1, k + 1).sum())  # increasing, sharing 0.5
    row = np.log(np.concatenate([probs, np.full(len(root.gather) - k, 1e-3)]))
    reach = np.zeros(len(trie.nodes))
    reach[0] = 1.0
    budget = probs[0] + probs[1] + probs[2] / 2  # room for the two least probable children only
    wanted = trie.next_level([0], [row], reach, 1.0, budget)
    assert wanted == root.children[2:]
    assert trie.next_level([0], [row], reach, (probs[0] + probs[1]) / 2, budget) == root.children[1:]
    assert trie.next_level([0], [row], reach, 1.0, 0.0) == root.children


def test_sizes_and_below_count_every_node_under_a_node() -> None:
    trie = ScoreTrie(ScoreScale(1, 100), PIECES)
    for index in (0, *trie.nodes[0].children):
        under = trie.below(index)
        assert len(under) == len(set(under)) == trie.sizes[index]
        assert all(index in _ancestors(trie, n) for n in under)
    assert trie.sizes[0] == len(trie.nodes) - 1 and all(trie.sizes[leaf] == 0 for leaf in trie.leaves)


def _ancestors(trie: ScoreTrie, index: int) -> set[int]:
    out = set()
    while index > 0:
        index = trie.nodes[index].parent
        out.add(index)
    return out
