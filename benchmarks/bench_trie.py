"""Trie scoring against its floor and against sampling at equal precision, measured in one run.

For each judge and scale (0-9, 1-5, 1-10, 1-100), on the same VADER prompts, with the
default study's settings (shared prefix reused, T = 1 and the protocol's 0.7 read):

* the trie pruned at the default study's threshold (1e-4, the main row) and unpruned
  (and at 1-100 also capped at 1e-3 skipped per item, ``max_pruned``), each beside its
  floor — llama.cpp evaluating, as one plain batch per item, exactly the tokens that
  walk evaluated (the item's uncached prompt tokens plus one per trie node read) with
  logits where the walk reads them — with the trie nodes read and the probability mass
  pruned per item, and the largest difference from the unpruned distributions;
* the paper's 10-sample protocol (T = 0.7, 5 new tokens) on the same backend;
* equal precision: the samples per item that sampling needs for each item's expected
  total variation distance to the exact T = 0.7 distribution to fall below 0.03 and its
  mean's expected error below 5% of the scale — for every item, and for the mean item
  (``numbias.core.sampling.samples_needed``, exact expectations from the unpruned
  distributions) — and the wall time of that many samples, measured at 10 and at
  ``--probe`` samples per item and taken as linear in the number of samples.

    python benchmarks/bench_trie.py [--judges NAME ...] [--n 12] [--scales 0-9 1-100]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from numbias.backends.llamacpp import LlamaCppBackend
from numbias.core.distribution import ScoreDistribution
from numbias.core.sampling import PROTOCOL_TEMPERATURE, samples_needed
from numbias.core.scale import ScoreScale
from numbias.core.trie import DEFAULT_PRUNE
from numbias.data.prompt import Prompt
from numbias.data.tasks import TASKS

SCALES = ("0-9", "1-5", "1-10", "1-100")
JUDGES = ("smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct")
T = PROTOCOL_TEMPERATURE


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def floor(b: LlamaCppBackend, prompts: Sequence[Prompt], nodes: Sequence[int]) -> float:
    """Plain batches: each prompt's uncached tokens plus as many tokens as its walk read
    trie nodes, with logits at the prompt's last token and every added one (what the
    walk reads), in one decode per item; the prompt's prefix is reused as the walk reuses it."""
    b._cached = []
    one = np.zeros(1, dtype=np.int32)
    start = time.perf_counter()
    for prompt, extra in zip(prompts, nodes):
        tokens = b.tokenize(prompt)
        queued = b._prefill(tokens, extra)
        for j in range(extra):
            b._put(queued + j, tokens[-1], len(tokens) + j, one, True)
        b._decode(queued + extra)
    return time.perf_counter() - start


@dataclass
class Walk:
    label: str
    trie: float
    floor: float
    nodes: float
    pruned_max: float
    dists: list[ScoreDistribution]


def walk(b: LlamaCppBackend, label: str, prompts: list[Prompt], scale: ScoreScale) -> Walk:
    list(b.score(prompts[:2], scale))  # warm-up: the trie is planned, the weights paged in
    b._cached = []
    seconds, dists = timed(lambda: list(b.score(prompts, scale)))
    nodes = [int(d.meta["nodes"]) for d in dists]
    return Walk(
        label,
        seconds,
        floor(b, prompts, nodes),
        float(np.mean(nodes)),
        max(float(d.meta.get("pruned", 0.0)) for d in dists),
        dists,
    )


def sampling_cost(b: LlamaCppBackend, prompts: list[Prompt], n: int) -> float:
    b._cached = []
    return timed(lambda: list(b.sample(prompts, n=n, temperature=T, max_tokens=5, seed=0)))[0]


def outcome_rows(dists: Sequence[ScoreDistribution]) -> np.ndarray:
    return np.array([[*d.at(T).probs, d.at(T).below, d.at(T).above, d.at(T).other] for d in dists])


def bench_judge(model: str, words: list[str], scales: Sequence[str], probe: int) -> list[dict]:
    pruned = LlamaCppBackend(model, prune=DEFAULT_PRUNE, temperatures=[T])
    full = LlamaCppBackend(model, prune=0.0, temperatures=[T])
    capped = LlamaCppBackend(model, prune=DEFAULT_PRUNE, max_pruned=1e-3, temperatures=[T])
    rows = []
    for text in scales:
        scale = ScoreScale.parse(text)
        prompts = [TASKS["vader"].template.fill({"word": w}, scale, chat=pruned.chat) for w in words]
        walks = [walk(pruned, "pruned 1e-4", prompts, scale), walk(full, "unpruned", prompts, scale)]
        if text == "1-100":
            walks.append(walk(capped, "pruned 1e-4, ≤ 1e-3 skipped", prompts, scale))
        t10 = sampling_cost(pruned, prompts, 10)
        k = max(2, len(prompts) // 4)
        t_probe = sampling_cost(pruned, prompts[:k], probe) * len(prompts) / k
        cost = lambda n: t10 + (t_probe - t10) / (probe - 10) * (n - 10)  # noqa: E731 - linear in n
        every = samples_needed(outcome_rows(walks[1].dists), scale)
        mean = samples_needed(outcome_rows(walks[1].dists), scale, every=False)
        for w in walks:
            moved = float(np.abs(outcome_rows(w.dists) - outcome_rows(walks[1].dists)).max())
            rows.append(
                {
                    "judge": model,
                    "scale": text,
                    "walk": w.label,
                    "nodes": w.nodes,
                    "pruned max": w.pruned_max,
                    "trie": w.trie,
                    "floor": w.floor,
                    "10-sample": t10,
                    "moved": moved,
                    "every": every,
                    "mean": mean,
                    "cost every": cost(every),
                    "cost mean": cost(mean),
                }
            )
    return rows


def print_tables(rows: list[dict], n: int) -> None:
    print(f"\n{n} VADER prompts per cell, seconds for all of them; T = 1 and {T} read; 2-core CPU\n")
    print(
        "| judge | scale | walk | nodes / item | pruned mass (max) | trie | floor | trie / floor "
        "| 10-sample | trie / 10-sample | largest change vs unpruned |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        moved = f"{r['moved']:.1e}" if r["walk"] != "unpruned" else "—"
        print(
            f"| {r['judge']} | {r['scale']} | {r['walk']} | {r['nodes']:.1f} | {r['pruned max']:.1e} "
            f"| {r['trie']:.2f} | {r['floor']:.2f} | {r['trie'] / r['floor']:.2f} | {r['10-sample']:.2f} "
            f"| {r['trie'] / r['10-sample']:.2f} | {moved} |"
        )
    print(
        "\nEqual precision (expected TV to the exact T = 0.7 distribution < 0.03 and expected error of "
        "the mean < 5% of the scale, for every item or for the mean item), against the pruned trie:\n"
    )
    print(
        "| judge | scale | pruned trie s | samples / item (every item) | sampling s | sampling / trie "
        "| samples / item (mean item) | sampling s | sampling / trie |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if r["walk"] != "pruned 1e-4":
            continue
        print(
            f"| {r['judge']} | {r['scale']} | {r['trie']:.2f} | {r['every']} | {r['cost every']:.1f} "
            f"| {r['cost every'] / r['trie']:.0f}× | {r['mean']} | {r['cost mean']:.1f} "
            f"| {r['cost mean'] / r['trie']:.0f}× |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--judges", nargs="+", default=list(JUDGES))
    parser.add_argument("--scales", nargs="+", default=list(SCALES))
    parser.add_argument("--n", type=int, default=12, help="VADER prompts per cell")
    parser.add_argument("--probe", type=int, default=100, help="samples per item of the second sampling timing")
    args = parser.parse_args()
    words = TASKS["vader"].load(n=args.n, seed=3).frame["word"].tolist()
    rows = [r for model in args.judges for r in bench_judge(model, words, args.scales, args.probe)]
    print_tables(rows, args.n)


if __name__ == "__main__":
    main()
