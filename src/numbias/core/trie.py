"""Exact score distributions from a trie of the scores' token sequences.

The judge's answer is read from its continuation: an optional single space, a run of
digits, then anything that is not a digit (or the end of generation). A score's
probability is the sum, over every token path that spells it, of the path's
probability times the probability that the next token ends the number. The trie
holds every such path (bare and space-led spellings, every tokenization through
digit tokens), so one evaluation of each node gives the whole distribution:
``P("1" on 1–10) = P("1") × P(not a digit | "1")`` falls out of the walk.

Backends evaluate the nodes; this module owns the maths and is backend-free.
"""

from __future__ import annotations

import functools
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


DEFAULT_PRUNE = 1e-4
"""The default study skips trie branches below this path probability (reported per
item as ``pruned`` mass); ``prune: 0`` in a judge's options walks the full trie."""


@dataclass
class TrieNode:
    """One token path. ``gather`` lists the token ids whose log-probabilities the
    node needs: first its children's edges, then tokens with an explicit outcome;
    every other token has ``default`` as outcome."""

    token: int
    parent: int
    depth: int
    text: str
    children: list[int] = field(default_factory=list)
    gather: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    outcomes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    default: int = 0


class ScoreTrie:
    """Trie over a tokenizer's spellings of every score on a scale.

    Outcomes are indexed ``0..size-1`` for the scores, then ``BELOW``, ``ABOVE``,
    ``OTHER``. Node 0 is the root (the prompt itself).
    Byte-fallback duplicates of digit tokens are walked too: small models give them
    real mass."""

    def __init__(self, scale: ScoreScale, pieces: Sequence[str]) -> None:
        self.scale = scale
        self.BELOW, self.ABOVE, self.OTHER = scale.size, scale.size + 1, scale.size + 2
        # Numbers below ``lo`` are nodes too: appending digits may still move them
        # above the scale or make them malformed ("05"), so they are not final yet.
        numbers = scale.labels + [str(v) for v in range(scale.lo)]
        spellings = [s for v in numbers for s in (v, " " + v)]
        self._prefixes = {s[:k] for s in spellings for k in range(1, len(s) + 1)}
        digitish = [(t, p) for t, p in enumerate(pieces) if p and _DIGITISH.match(p)]
        self.nodes: list[TrieNode] = [TrieNode(token=-1, parent=-1, depth=0, text="")]
        frontier = [0]
        while frontier:
            nxt: list[int] = []
            for index in frontier:
                nxt.extend(self._expand(index, digitish))
            frontier = nxt
        self.leaves = [i for i, n in enumerate(self.nodes) if not n.children]
        self.depth = max(n.depth for n in self.nodes)
        """Tokens in the longest spelling: the positions a walk takes after the prompt."""
        self.sizes = [0] * len(self.nodes)
        """How many nodes lie below each node (children come after their parent)."""
        for index in range(len(self.nodes) - 1, 0, -1):
            self.sizes[self.nodes[index].parent] += 1 + self.sizes[index]

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
        value = int(digits)
        if value < self.scale.lo:
            return self.BELOW
        if value > self.scale.hi:
            return self.ABOVE
        return value - self.scale.lo

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

    def next_level(self, level: Sequence[int], rows: Sequence[np.ndarray], reach: np.ndarray,
                   prune: float, budget: float = float("inf")) -> list[int]:
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
        masses = np.zeros(self.scale.size + 3)
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
        return masses, pruned


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


def tempered_logprobs(logits: np.ndarray, ids: np.ndarray, temperatures: Sequence[float]) -> np.ndarray:
    """Log-softmax of ``logits / T`` over the whole vocabulary for each ``T``, read at
    ``ids``: one row per temperature. Exact per step, so walking the trie with these
    rows gives the exact distribution of a multi-token score at temperature ``T``."""
    z = np.asarray(logits)
    z = z - z.max()  # float32 logits stay float32: exp over 262k tokens is the cost
    picked = z[ids].astype(np.float64)
    out = np.empty((len(temperatures), len(ids)))

    def fill(ks: range) -> None:
        buf = np.empty_like(z)
        for k in ks:
            np.multiply(z, z.dtype.type(1.0 / temperatures[k]), out=buf)
            np.exp(buf, out=buf)
            out[k] = picked / temperatures[k] - float(np.log(buf.sum(dtype=np.float64)))

    step = -(-len(temperatures) // _WORKERS)
    list(_pool().map(fill, [range(k, min(k + step, len(temperatures))) for k in range(0, len(temperatures), step)]))
    return out
