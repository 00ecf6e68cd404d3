"""Trie scoring against its baselines and its floor, measured in one run.

For the same prompts (VADER words) and scales 0-9 and 1-100, with and without
shared-prefix reuse, prints wall time of: a bare prefill of each prompt, the trie
distribution, per-score forced choice, the paper's 10-sample protocol (T=0.7, 5
tokens), and the floor (llama.cpp evaluating, as plain batches, exactly the tokens
the trie needs: the uncached prompt plus one per trie node). Ratios to the bare
prefill come last.

    python benchmarks/bench_trie.py [--model NAME] [--n 50]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from numbias.backends.llamacpp import LlamaCppBackend
from numbias.scale import ScoreScale
from numbias.tasks import TASKS


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def prefill(b: LlamaCppBackend, token_lists: list[list[int]], extra: int = 0) -> None:
    """Plain batches: each prompt's uncached tokens plus ``extra`` dummy tokens."""
    for tokens in token_lists:
        seq = tokens + [tokens[-1]] * extra
        queued = b._prefill(seq, 0)
        b._decode(queued)
        b._cached = list(tokens)  # the dummy tail is not a reusable prefix


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--forced-n", type=int, default=None, help="prompts for forced choice (slow); default n")
    args = parser.parse_args()
    words = TASKS["vader"].load(n=args.n, seed=3).frame["word"].tolist()
    rows = []
    for reuse in (False, True):
        b = LlamaCppBackend(args.model, reuse_prefix=reuse)
        for scale_text in ("0-9", "1-100"):
            scale = ScoreScale.parse(scale_text)
            prompts = [TASKS["vader"].template.fill({"word": w}, scale, chat=b.chat) for w in words]
            tokens = [b.tokenize(p) for p in prompts]
            trie, _ = b._plan(scale)
            nodes = len(trie.nodes) - 1
            list(b.score(prompts[:2], scale))  # warm-up
            b._cached = []
            t_prefill = timed(lambda: prefill(b, tokens))
            b._cached = []
            t_floor = timed(lambda: prefill(b, tokens, nodes))
            b._cached = []
            t_trie = timed(lambda: list(b.score(prompts, scale)))
            k = args.forced_n or args.n
            t_forced = timed(lambda: [b.forced_choice(p, scale) for p in prompts[:k]]) * args.n / k
            b._cached = []
            t_sample = timed(lambda: list(b.sample(prompts, n=10, temperature=0.7, max_tokens=5, seed=0)))
            b._cached = []
            rows.append((reuse, scale_text, nodes, float(np.mean([len(t) for t in tokens])),
                         t_prefill, t_floor, t_trie, t_forced, t_sample))
    print(f"model {args.model}, {args.n} prompts (VADER), 2-core CPU; seconds for all prompts")
    head = ("reuse", "scale", "nodes", "tokens", "prefill", "floor", "trie", "forced", "10-sample",
            "trie/floor", "forced/trie", "sample/trie", "trie/prefill")
    print(" | ".join(f"{h:>11}" for h in head))
    for reuse, scale, nodes, ntok, tp, tf, tt, tc, ts in rows:
        cells = [str(reuse), scale, str(nodes), f"{ntok:.0f}", f"{tp:.2f}", f"{tf:.2f}", f"{tt:.2f}",
                 f"{tc:.2f}", f"{ts:.2f}", f"{tt / tf:.2f}", f"{tc / tt:.1f}", f"{ts / tt:.1f}", f"{tt / tp:.2f}"]
        print(" | ".join(f"{c:>11}" for c in cells))
    reuse_prefill = {r[1]: r[4] for r in rows if r[0]}
    bare_prefill = {r[1]: r[4] for r in rows if not r[0]}
    for scale in bare_prefill:
        print(f"shared-prefix prefill / bare prefill at {scale}: {reuse_prefill[scale] / bare_prefill[scale]:.2f}")


if __name__ == "__main__":
    main()
