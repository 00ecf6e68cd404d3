"""Throughput of the OpenAI-compatible backend against a local llama.cpp server.

Starts ``python -m llama_cpp.server`` with an embedded judge on loopback, scores the
same VADER items in top-k and in exact mode at several client concurrencies, and
prints items per second and the client's own CPU time as a share of wall time; then
the in-process exact backend (same pruning) on the same items, and the largest
difference between the two exact readings.

    python benchmarks/bench_server.py --n-items 40
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from numbias.backends.llamacpp import LlamaCppBackend
from numbias.backends.openai_compat import OpenAIBackend, local_llama_server
from numbias.core.scale import ScoreScale
from numbias.data.tasks import TASKS
from numbias.models.catalog import resolve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--judge", default="smollm2-135m-instruct")
    parser.add_argument("--n-items", type=int, default=40)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    args = parser.parse_args()
    scale = ScoreScale(0, 9)
    data = TASKS["vader"].load(n=args.n_items, seed=1)
    prompts = [TASKS["vader"].template.fill(r, scale, chat=True) for r in data.records()]
    with local_llama_server(str(resolve(args.judge).path)) as url:
        print(f"{args.judge}, {args.n_items} VADER items, scale 0-9, over HTTP (llama.cpp server)")
        print(f"{'mode':>5} {'concurrency':>11} {'items/s':>8} {'client CPU / wall':>18}")
        for mode in ("topk", "exact"):
            for c in args.concurrency:
                backend = OpenAIBackend(args.judge, base_url=url, mode=mode, concurrency=c, tokenizer=args.judge)
                wall, cpu = time.perf_counter(), time.process_time()
                remote = list(backend.score(prompts, scale))
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                print(f"{mode:>5} {c:>11} {args.n_items / wall:8.2f} {cpu / wall:18.1%}")
    local = LlamaCppBackend(args.judge, prune=backend.prune)
    wall = time.perf_counter()
    exact = list(local.score(prompts, scale))
    wall = time.perf_counter() - wall
    gap = max(float(np.abs(a.probs - b.probs).max()) for a, b in zip(remote, exact))
    print(
        f"in-process exact trie (llama.cpp, prune {backend.prune:g}): {args.n_items / wall:.2f} items/s; "
        f"largest |dp| against exact over HTTP: {gap:.1e}"
    )


if __name__ == "__main__":
    main()
