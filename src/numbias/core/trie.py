"""Exact score distributions from a trie of the scores' token sequences.

The judge's answer is read from its continuation: an optional single space, a run of
digits, then anything that is not a digit (or the end of generation). A score's
probability is the sum, over every token path that spells it, of the path's
probability times the probability that the next token ends the number. The trie
holds every such path (bare and space-led spellings, every tokenization through
digit tokens), so one evaluation of each node gives the whole distribution:
``P("1" on 1–10) = P("1") × P(not a digit | "1")`` falls out of the walk.

A scale of words or letters is read the same way (:meth:`ScoreScale.read`): a label's
spelling, then a token that does not start with a letter or digit ("good" ends at
"." but not at "ness"). The next token's chance of going on with a letter or digit is
one class of tokens summed at the node (``classes``), not one column per token. A
label is spelled through every tokenization of at most :data:`LABEL_SLACK` tokens more
than its fewest; a token that would start a longer path is not walked, and its mass is
counted as other and reported as ``pruned``.

Backends evaluate the nodes; this module owns the maths and is backend-free.
"""

from __future__ import annotations

import functools
import math
import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from numbias.core.distribution import ScoreDistribution
from numbias.core.scale import ScoreScale
from numbias.util.errors import NumbiasError

_NUMBER = re.compile(r"^( ?)([0-9]*)(.*)$", re.DOTALL)
_DIGITISH = re.compile(r"^ ?[0-9]| $")
_BREAK = re.compile(r"[^A-Za-z0-9]")
"""Where a token may stop being a word (checked with ``isalnum``, which knows every script)."""


LABEL_SLACK = 1
"""Tokens a label's path may take beyond the fewest its spelling needs. A vocabulary
spells a word in hundreds of ways (gemma: ~8,000 for " very good"); judges put their
mass on the fewest-token spellings and on one split more (a bare space, then the word),
and the mass of the paths not walked is measured per item (``pruned``)."""

DEFAULT_PRUNE = 1e-4
"""The default study skips trie branches below this path probability (reported per
item as ``pruned`` mass); ``prune: 0`` in a judge's options walks the full trie."""


@dataclass
class TrieNode:
    """One token path. ``gather`` lists the token ids whose log-probabilities the
    node needs: first its children's edges, then tokens with an explicit outcome;
    ``classes`` are token sets (disjoint from ``gather``) whose summed probability a
    row gives after them. ``outcomes`` holds the outcome of each explicit token, then
    of each class; every other token has ``default`` as outcome."""

    token: int
    parent: int
    depth: int
    text: str
    children: list[int] = field(default_factory=list)
    gather: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    outcomes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    default: int = 0
    classes: tuple[np.ndarray, ...] = ()


class _Speller:
    """A vocabulary indexed for one label scale: the tokens that spell a part of a
    label, the tokens that end a label inside them, the tokens that start with a letter
    or digit, and the fewest tokens each rest of a spelling needs."""

    def __init__(self, scale: ScoreScale, pieces: Sequence[str]) -> None:
        self.scale, self.pieces = scale, pieces
        spellings = list(scale.spellings)
        parts = {s[i:j] for s in spellings for i in range(len(s)) for j in range(i + 1, len(s) + 1)}
        rests = {s[i:] for s in spellings for i in range(len(s))}
        starts = {r[0] for r in rests}
        self._ids: dict[str, list[int]] = {}
        self._ends: dict[str, list[int]] = {}
        going_on = []
        for token, piece in enumerate(pieces):
            if not piece:
                continue
            if piece[0].isalnum():
                going_on.append(token)
            if piece in parts:
                self._ids.setdefault(piece, []).append(token)
            if piece[0] in starts:
                for stop in _BREAK.finditer(piece, 1):
                    k = stop.start()
                    if not piece[k].isalnum() and piece[:k] in rests:
                        self._ends.setdefault(piece[:k], []).append(token)
        self._going_on = np.asarray(going_on, dtype=np.int64)
        self._fewest = {s: self._fewest_tokens(s) for s in spellings}
        self.spellings = [s for s in spellings if self._fewest[s][0] < math.inf]
        for k, label in enumerate(scale.labels):
            if not any(scale.spellings[s] == k for s in self.spellings):
                raise NumbiasError(f"scale label {label!r} cannot be spelled with this model's tokens")

    def _fewest_tokens(self, spelling: str) -> list[float]:
        """The fewest tokens that finish ``spelling[k:]``, for each ``k`` (inf: none do):
        the last may go on past its end with a character that is no letter or digit."""
        fewest = [math.inf] * len(spelling) + [0.0]
        for k in range(len(spelling) - 1, -1, -1):
            fewest[k] = min(
                [1 + fewest[j] for j in range(k + 1, len(spelling) + 1) if spelling[k:j] in self._ids]
                + ([1] if spelling[k:] in self._ends else []),
                default=math.inf,
            )
        return fewest

    def _onward(self, text: str) -> list[str]:
        return [s for s in self.spellings if len(s) > len(text) and s.startswith(text)]

    def children(self, text: str, depth: int) -> tuple[list[int], list[int], list[int]]:
        """The tokens that spell on from ``text`` after ``depth`` tokens: those whose
        path can still finish a spelling within :data:`LABEL_SLACK` tokens of its
        fewest, those cut, and those after which no token finishes one (read as they
        stand)."""
        found: dict[int, str] = {}
        for spelling in self._onward(text):
            for j in range(len(text) + 1, len(spelling) + 1):
                for token in self._ids.get(spelling[len(text) : j], ()):
                    found.setdefault(token, spelling[:j])
        kids: list[int] = []
        cut: list[int] = []
        dead: list[int] = []
        for token, reached in found.items():
            extra = [
                self._fewest[s][len(reached)] - self._fewest[s][0] for s in self.spellings if s.startswith(reached)
            ]  # tokens beyond each spelling's fewest, at the least
            if all(e == math.inf for e in extra):
                dead.append(token)
            else:
                (kids if any(depth + 1 + e <= LABEL_SLACK for e in extra) else cut).append(token)
        return kids, cut, dead

    def ended(self, text: str) -> dict[int, int]:
        """Tokens that finish a spelling after ``text`` and go on with a character that
        is no letter or digit ("good." after "go"), to their outcome."""
        return {
            token: self.scale.read(text + self.pieces[token])
            for spelling in self._onward(text)
            for token in self._ends.get(spelling[len(text) :], ())
        }

    def going_on(self, taken: set[int]) -> np.ndarray:
        """The tokens that start with a letter or digit, less ``taken`` (one shared array
        when none is taken)."""
        drop = np.isin(self._going_on, np.fromiter(taken, dtype=np.int64, count=len(taken)))
        return self._going_on[~drop] if drop.any() else self._going_on


class ScoreTrie:
    """Trie over a tokenizer's spellings of every score on a scale.

    Outcomes are indexed ``0..size-1`` for the scores, then ``BELOW``, ``ABOVE``,
    ``OTHER`` and ``CUT`` (a label's path not walked: other, and reported as pruned).
    Node 0 is the root (the prompt itself).
    Byte-fallback duplicates of digit tokens are walked too: small models give them
    real mass."""

    def __init__(self, scale: ScoreScale, pieces: Sequence[str]) -> None:
        self.scale = scale
        self.BELOW, self.ABOVE, self.OTHER, self.CUT = scale.size, scale.size + 1, scale.size + 2, scale.size + 3
        self.nodes: list[TrieNode] = [TrieNode(token=-1, parent=-1, depth=0, text="")]
        if scale.numeric:
            self._grow_numbers(pieces)
        else:
            speller = _Speller(scale, pieces)
            frontier = [0]
            while frontier:
                frontier = [c for index in frontier for c in self._expand_label(index, speller)]
        self.leaves = [i for i, n in enumerate(self.nodes) if not n.children]
        self.depth = max(n.depth for n in self.nodes)
        """Tokens in the longest spelling: the positions a walk takes after the prompt."""
        self.sizes = [0] * len(self.nodes)
        """How many nodes lie below each node (children come after their parent)."""
        for index in range(len(self.nodes) - 1, 0, -1):
            self.sizes[self.nodes[index].parent] += 1 + self.sizes[index]

    def _grow_numbers(self, pieces: Sequence[str]) -> None:
        # Numbers below ``lo`` are nodes too: appending digits may still move them
        # above the scale or make them malformed ("05"), so they are not final yet.
        numbers = self.scale.labels + [str(v) for v in range(self.scale.lo)]
        spellings = [s for v in numbers for s in (v, " " + v)]
        self._prefixes = {s[:k] for s in spellings for k in range(1, len(s) + 1)}
        digitish = [(t, p) for t, p in enumerate(pieces) if p and _DIGITISH.match(p)]
        frontier = [0]
        while frontier:
            nxt: list[int] = []
            for index in frontier:
                nxt.extend(self._expand(index, digitish))
            frontier = nxt

    def _expand(self, index: int, digitish: list[tuple[int, str]]) -> list[int]:
        node = self.nodes[index]
        child_ids: list[int] = []
        explicit_ids: list[int] = []
        explicit_out: list[int] = []
        new: list[int] = []
        node_default = self._default(node.text)
        for token, piece in digitish:
            if node.text and not piece[0].isdigit():
                continue  # starts with a space: ends the number (or is "other" after a bare space)
            text = node.text + piece
            if text in self._prefixes:
                child = TrieNode(token=token, parent=index, depth=node.depth + 1, text=text)
                self.nodes.append(child)
                node.children.append(len(self.nodes) - 1)
                new.append(len(self.nodes) - 1)
                child_ids.append(token)
            else:
                outcome = self._classify(text)
                if outcome != node_default:
                    explicit_ids.append(token)
                    explicit_out.append(outcome)
        node.gather = np.asarray(child_ids + explicit_ids, dtype=np.int64)
        node.outcomes = np.asarray(explicit_out, dtype=np.int64)
        node.default = node_default
        return new

    def _default(self, text: str) -> int:
        """Outcome of a token that does not start with a digit, after ``text``."""
        return self._classify(text + "\x00")

    def _classify(self, text: str) -> int:
        digits = _NUMBER.match(text).group(2)  # type: ignore[union-attr]
        if not digits or (len(digits) > 1 and digits[0] == "0"):
            return self.OTHER
        return self.scale.read_number(int(digits))

    def _expand_label(self, index: int, speller: _Speller) -> list[int]:
        """The children of a label node, and its row's layout: tokens that end a label
        inside them ("good." after "") and paths not walked (``CUT``) explicitly, the
        tokens that go on with a letter or digit as one class where that changes the
        outcome (after a whole label)."""
        node = self.nodes[index]
        read = self.scale.read
        kids, cut, dead = speller.children(node.text, node.depth)
        taken = set(kids) | set(cut)
        default, going_on = read(node.text), read(node.text, goes_on=True)
        read_as_is = speller.ended(node.text) | {t: read(node.text + speller.pieces[t]) for t in dead}
        explicit = {
            t: o
            for t, o in read_as_is.items()
            if t not in taken and o != (going_on if speller.pieces[t][0].isalnum() else default)
        }
        explicit.update((t, self.CUT) for t in cut)
        new = []
        for token in kids:
            self.nodes.append(
                TrieNode(token=token, parent=index, depth=node.depth + 1, text=node.text + speller.pieces[token])
            )
            new.append(len(self.nodes) - 1)
        node.children = new
        node.gather = np.asarray(kids + list(explicit), dtype=np.int64)
        node.outcomes = np.asarray(
            list(explicit.values()) + ([going_on] if going_on != default else []), dtype=np.int64
        )
        node.default = default
        if going_on != default:
            node.classes = (speller.going_on(taken | set(explicit)),)
        return new

    def below(self, index: int) -> list[int]:
        """Every node under ``index``, level by level."""
        out, frontier = [], list(self.nodes[index].children)
        while frontier:
            out += frontier
            frontier = [c for n in frontier for c in self.nodes[n].children]
        return out

    def path(self, index: int) -> list[int]:
        """Token ids from the root to node ``index``."""
        tokens: list[int] = []
        while index > 0:
            tokens.append(self.nodes[index].token)
            index = self.nodes[index].parent
        return tokens[::-1]

    def next_level(
        self,
        level: Sequence[int],
        rows: Sequence[np.ndarray],
        reach: np.ndarray,
        prune: float,
        budget: float = float("inf"),
    ) -> list[int]:
        """One step of a pruned walk: the children of the ``level`` nodes to evaluate
        next. Their path probability (written into ``reach``) is the product of the T = 1
        probabilities along the path; ``rows`` are the ``level`` nodes' T = 1
        log-probabilities, children first (as ``gather`` orders them). Children below
        ``prune`` are skipped, the least probable first, while the mass skipped stays
        within ``budget``; any left over are evaluated too."""
        candidates: list[int] = []
        for parent, row in zip(level, rows):
            children = self.nodes[parent].children
            reach[children] = reach[parent] * np.exp(row[: len(children)])
            candidates += children
        skipped: set[int] = set()
        total = 0.0
        for child in sorted((c for c in candidates if reach[c] < prune), key=lambda c: reach[c]):
            if total + reach[child] > budget:
                break
            total += reach[child]
            skipped.add(child)
        return [c for c in candidates if c not in skipped]

    def distribution(
        self, node_logprobs: Sequence[np.ndarray | None], temperatures: Sequence[float] = (1.0,)
    ) -> ScoreDistribution:
        """Combine per-node log-probabilities of each node's ``gather`` tokens
        (normalised over the full vocabulary) into the score distribution.

        A node's row is 1-D, or 2-D with one row per temperature (as from
        :func:`tempered_logprobs`); the result is the distribution at T = 1 with the
        others in ``tempered``. A node left unevaluated (``None``, pruned for
        negligible reach) counts its reach as if the number ended there; that mass is
        reported as ``pruned``."""
        temps = [float(t) for t in temperatures]
        if 1.0 not in temps:
            raise NumbiasError("temperatures must include 1.0")
        dists = {}
        for k, t in enumerate(temps):
            rows = [None if r is None else (r if np.ndim(r) == 1 else r[k]) for r in node_logprobs]
            masses, pruned = self._combine(rows)
            dists[t] = ScoreDistribution(
                scale=self.scale,
                probs=masses[: self.scale.size],
                below=float(masses[self.BELOW]),
                above=float(masses[self.ABOVE]),
                other=float(masses[self.OTHER]),
                temperature=None if t == 1.0 else t,
                meta={"pruned": pruned},
            )
        main = dists.pop(1.0)
        main.tempered.update(dists)
        return main

    def _combine(self, node_logprobs: Sequence[np.ndarray | None]) -> tuple[np.ndarray, float]:
        masses = np.zeros(self.scale.size + 4)
        reach = np.zeros(len(self.nodes))
        reach[0] = 1.0
        pruned = 0.0
        for index, node in enumerate(self.nodes):
            row = node_logprobs[index]
            if row is None:
                masses[node.default] += reach[index]
                pruned += reach[index]
                continue
            p = np.exp(np.asarray(row, dtype=float))
            k = len(node.children)
            reach[node.children] = reach[index] * p[:k]
            np.add.at(masses, node.outcomes, reach[index] * p[k:])
            masses[node.default] += reach[index] * max(0.0, 1.0 - float(p.sum()))
        masses[self.OTHER] += masses[self.CUT]
        return masses, pruned + float(masses[self.CUT])


def gather_logprobs(logits: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Log-softmax of ``logits`` over the whole vocabulary, read at ``ids`` only.

    The normaliser is summed in float64 over float32 exponentials: accurate to ~1e-7
    and fast on 262k-token vocabularies."""
    row = np.asarray(logits)
    top = row.max()
    lse = float(top) + float(np.log(np.exp(row - top).sum(dtype=np.float64)))
    return row[ids].astype(np.float64) - lse


_WORKERS = min(4, os.cpu_count() or 1)


@functools.cache
def _pool() -> ThreadPoolExecutor:
    """numpy releases the GIL in ufuncs, so the temperatures of one row are split across
    cores while the model is idle between decodes; started on first use."""
    return ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="numbias-softmax")


def next_token_entropy(logits: np.ndarray) -> float:
    """Entropy (nats) of the whole next-token distribution ``softmax(logits)``: how
    spread the model is at the answer position, over numbers and everything else."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max()
    p = np.exp(z)
    total = p.sum()
    return float(np.log(total) - (p * z).sum() / total)


def tempered_logprobs(
    logits: np.ndarray, ids: np.ndarray, temperatures: Sequence[float], classes: Sequence[np.ndarray] = ()
) -> np.ndarray:
    """Log-softmax of ``logits / T`` over the whole vocabulary for each ``T``, read at
    ``ids`` and then summed over each token set of ``classes`` (a node's
    :attr:`TrieNode.classes`): one row per temperature. Exact per step, so walking the
    trie with these rows gives the exact distribution of a multi-token score at
    temperature ``T``."""
    z = np.asarray(logits)
    z = z - z.max()  # float32 logits stay float32: exp over 262k tokens is the cost
    picked = z[ids].astype(np.float64)
    out = np.empty((len(temperatures), len(ids) + len(classes)))

    def fill(ks: range) -> None:
        buf = np.empty_like(z)
        for k in ks:
            np.multiply(z, z.dtype.type(1.0 / temperatures[k]), out=buf)
            np.exp(buf, out=buf)
            lse = float(np.log(buf.sum(dtype=np.float64)))
            out[k, : len(ids)] = picked / temperatures[k] - lse
            for c, members in enumerate(classes):
                with np.errstate(divide="ignore"):
                    out[k, len(ids) + c] = float(np.log(buf[members].sum(dtype=np.float64))) - lse

    step = -(-len(temperatures) // _WORKERS)
    list(_pool().map(fill, [range(k, min(k + step, len(temperatures))) for k in range(0, len(temperatures), step)]))
    return out
