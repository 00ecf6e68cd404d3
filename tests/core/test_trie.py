"""Trie maths against hand-computed values and brute-force enumeration (fake backend)."""

from __future__ import annotations

import itertools
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numbias.backends.fake import FakeBackend
from numbias.core.metrics import item_scores
from numbias.core.sampling import categorize
from numbias.core.scale import ScoreScale
from numbias.core.trie import ScoreTrie, gather_logprobs
from numbias.data.prompt import Prompt
from numbias.util.errors import NumbiasError

PIECES = ["0", "1", "2", "3", "5", "8", "9", " ", " 1", "10", "x", "", "8.", " x", "00"]
EOS = PIECES.index("")
PROMPT = Prompt(user="rate it")


def _logits(probabilities: dict[str, float], vocabulary: list[str] = PIECES) -> np.ndarray:
    row = np.full(len(vocabulary), -np.inf)
    for piece, p in probabilities.items():
        row[vocabulary.index(piece)] = np.log(p)
    return row


def _ids(*pieces: str, vocabulary: list[str] = PIECES) -> tuple[int, ...]:
    return tuple(vocabulary.index(p) for p in pieces)


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


def _random_lm(seed: int, vocabulary: list[str] = PIECES, tokens: int = 2):
    """Random logits per context; after ``tokens`` generated tokens the end token
    dominates, so brute-force enumeration one token deeper misses only ~e^-60 of the mass."""

    def logits(_prompt: Prompt, context: tuple[int, ...]) -> np.ndarray:
        rng = np.random.default_rng([seed, zlib.crc32(repr(context).encode())])
        row = rng.normal(0, 2, len(vocabulary))
        if len(context) >= tokens:
            row[vocabulary.index("")] = 60.0
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


# --- scales of words and letters, and reversed digits ---

WORDS = ["very", " bad", " good", "bad", "good", " enough", "good.", "ness", " ", "x", "", "Very", "."]
WORD_EOS = WORDS.index("")
WORD_SCALE = ScoreScale.parse("words:very bad,bad,good enough,good,very good")


def _word_logits(probabilities: dict[str, float]) -> np.ndarray:
    return _logits(probabilities, WORDS)


def _w(*pieces: str) -> tuple[int, ...]:
    return _ids(*pieces, vocabulary=WORDS)


def test_hand_computed_word_distribution() -> None:
    """ "very bad" and "very good" share their first token, "good" is a prefix of "good
    enough": each label's mass is its paths' times the chance that no letter or digit
    goes on ("goodness" is other), a capitalised label counts, and a token that ends a
    label inside it ("good.") counts for the label."""
    table = {
        (): _word_logits({"very": 0.3, "good": 0.25, " ": 0.1, "good.": 0.05, "Very": 0.1, "bad": 0.1, "x": 0.1}),
        _w("very"): _word_logits({" good": 0.6, " bad": 0.3, "x": 0.1}),
        _w("very", " good"): _word_logits({"": 0.9, "ness": 0.1}),
        _w("very", " bad"): _word_logits({".": 1.0}),
        _w("good"): _word_logits({" enough": 0.4, "ness": 0.2, "": 0.3, " good": 0.1}),
        _w("good", " enough"): _word_logits({"": 1.0}),
        _w(" "): _word_logits({"bad": 0.5, "good": 0.5}),
        _w(" ", "bad"): _word_logits({"": 1.0}),
        _w(" ", "good"): _word_logits({"ness": 1.0}),
        _w("Very"): _word_logits({" good": 1.0}),
        _w("Very", " good"): _word_logits({"": 1.0}),
        _w("bad"): _word_logits({"": 1.0}),
    }
    dist = next(FakeBackend(WORDS, table, eos=WORD_EOS).score([PROMPT], WORD_SCALE))
    expected = {
        "very bad": 0.3 * 0.3,
        "bad": 0.1 * 0.5 + 0.1,
        "good enough": 0.25 * 0.4,
        "good": 0.25 * (0.3 + 0.1) + 0.05,
        "very good": 0.3 * 0.6 * 0.9 + 0.1,
    }
    np.testing.assert_allclose(dist.probs, [expected[label] for label in WORD_SCALE.labels], atol=1e-12)
    assert dist.other == pytest.approx(0.3 * 0.1 + 0.3 * 0.6 * 0.1 + 0.25 * 0.2 + 0.1 * 0.5 + 0.1)
    assert (dist.below, dist.above, dist.meta["pruned"]) == (0.0, 0.0, 0.0)
    assert dist.total == pytest.approx(1.0, abs=1e-12)


def test_the_end_of_a_label_is_a_class_of_tokens() -> None:
    """After a whole label the tokens that go on with a letter or digit are summed as
    one class (a vocabulary holds ~100k of them), not gathered one by one."""
    trie = ScoreTrie(WORD_SCALE, WORDS)
    node = next(n for n in trie.nodes if n.text == "very good")
    assert len(node.classes) == 1 and sorted(WORDS[t] for t in node.classes[0]) == sorted(
        p for p in WORDS if p[:1].isalnum()
    )
    assert node.default == WORD_SCALE.labels.index("very good") and node.outcomes[-1] == trie.OTHER
    inner = next(n for n in trie.nodes if n.text == "good")  # " enough" goes on: a child, not in the class
    assert WORDS.index(" enough") in inner.gather[: len(inner.children)]


def test_a_path_past_the_slack_is_cut_and_reported() -> None:
    """ "g"+"o"+"od" takes two tokens more than "good": it is not walked, and its mass
    counts as other and as pruned."""
    pieces = ["good", "g", "o", "od", "ood", "bad", ""]
    logits = {
        (): np.log([0.5, 0.5, 1e-300, 1e-300, 1e-300, 1e-300, 1e-300]),
        (1,): np.log([1e-300, 1e-300, 0.4, 1e-300, 0.6, 1e-300, 1e-300]),
    }
    end = np.log([1e-300] * 6 + [1.0])
    table = {**logits, (0,): end, (1, 4): end}
    dist = next(FakeBackend(pieces, table, eos=6).score([PROMPT], ScoreScale.parse("words:bad,good")))
    np.testing.assert_allclose(dist.probs, [0.0, 0.5 + 0.5 * 0.6], atol=1e-12)
    assert dist.other == pytest.approx(0.2) and dist.meta["pruned"] == pytest.approx(0.2)


def test_a_label_no_token_spells_is_refused() -> None:
    with pytest.raises(NumbiasError, match="scale label 'zebra' cannot be spelled with this model's tokens"):
        ScoreTrie(ScoreScale.parse("words:good,zebra"), WORDS)


def test_letters_end_where_no_letter_goes_on() -> None:
    """ "A" then "pple" is the word Apple, not the grade A."""
    pieces = ["A", "B", "pple", " A", ".", ""]
    table = {
        (): np.log([0.5, 0.2, 1e-300, 0.3, 1e-300, 1e-300]),
        (0,): np.log([1e-300, 1e-300, 0.6, 1e-300, 0.4, 1e-300]),
    }
    stop = np.log([1e-300] * 5 + [1.0])
    table.update({(1,): stop, (3,): stop})
    dist = next(FakeBackend(pieces, table, eos=5).score([PROMPT], ScoreScale.parse("letters:A-B")))
    np.testing.assert_allclose(dist.probs, [0.5 * 0.4 + 0.3, 0.2], atol=1e-12)
    assert dist.other == pytest.approx(0.5 * 0.6)


def _every_answer(backend: FakeBackend, scale: ScoreScale, depth: int, temperature: float) -> np.ndarray:
    """The mass of each outcome over every answer of up to ``depth`` tokens (then the
    end), each read as a whole by :meth:`ScoreScale.read`: a walk over every context."""
    masses = np.zeros(scale.size + 3)

    def walk(context: tuple[int, ...], p: float) -> None:
        row = np.exp(gather_logprobs(backend._logits(PROMPT, context) / temperature, np.arange(len(WORDS))))
        for token, q in enumerate(row):
            if token == WORD_EOS or len(context) + 1 == depth:
                masses[scale.read("".join(WORDS[t] for t in (*context, token)))] += p * q
            else:
                walk((*context, token), p * q)

    walk((), 1.0)
    return masses


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 10_000), temperature=st.sampled_from([1.0, 0.55, 1.75]))
def test_word_trie_equals_brute_force_enumeration(seed: int, temperature: float) -> None:
    """Every answer of up to four tokens: the trie's distribution is the exact sum (no
    path of this vocabulary is past the slack), at each temperature."""
    assert not any(ScoreTrie(WORD_SCALE, WORDS).CUT in n.outcomes for n in ScoreTrie(WORD_SCALE, WORDS).nodes)
    backend = FakeBackend(WORDS, _random_lm(seed, WORDS, 3), eos=WORD_EOS)
    dist = next(backend.score([PROMPT], WORD_SCALE)).at(temperature)
    masses = _every_answer(backend, WORD_SCALE, 4, temperature)
    np.testing.assert_allclose(dist.probs, masses[: WORD_SCALE.size], atol=1e-9)
    assert dist.other == pytest.approx(masses[-1], abs=1e-9) and dist.meta["pruned"] == 0.0


def test_a_reversed_scale_on_a_judge_without_preference_is_the_mirror() -> None:
    """A judge whose numbers do not depend on the rubric: on reversed:0-9 each value's
    mass is the mirror value's on 0-9, below and above swap, and every rule mirrors."""
    backend = FakeBackend(PIECES, _random_lm(3), eos=EOS)
    straight = next(backend.score([Prompt("Rate it from 0 (worst) to 9 (best).")], ScoreScale(0, 9)))
    mirrored = next(backend.score([Prompt("Rate it from 9 (worst) to 0 (best).")], ScoreScale.parse("reversed:0-9")))
    np.testing.assert_allclose(mirrored.probs, straight.probs[::-1], atol=1e-15)
    assert (mirrored.below, mirrored.above, mirrored.other) == pytest.approx(
        (straight.above, straight.below, straight.other), abs=1e-15
    )
    for rule in ("expected", "protocol", "greedy"):
        s, m = (
            item_scores(d.probs[None], np.array([[d.below, d.above, d.other]]), d.scale, rule)[0]
            for d in (straight, mirrored)
        )
        assert m == pytest.approx(9 - s)
