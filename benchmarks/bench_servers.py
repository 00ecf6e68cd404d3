"""Throughput of one study spread over two llama.cpp servers, against one server.

Starts two ``python -m llama_cpp.server`` processes with an embedded judge on loopback,
each with ``--threads`` llama.cpp threads (default 1: two cores' worth of server threads
in all), warms both, then scores the same VADER items on the first server alone and on
both (``base_url`` a list), in top-k and in exact mode, and prints items per second, the
ratio two/one (the target is at least 1.7 on an otherwise idle machine with two free
cores), and the largest difference between the two readings. The load average is
printed first: a busy machine lowers the ratio.

    python benchmarks/bench_servers.py --n-items 40
"""

from __future__ import annotations

import argparse
import os
import time
from contextlib import ExitStack

import numpy as np

from numbias.backends.openai_compat import OpenAIBackend, local_llama_server
from numbias.core.scale import ScoreScale
from numbias.data.prompt import Prompt
from numbias.data.tasks import TASKS
from numbias.models.catalog import resolve


def timed(backend: OpenAIBackend, prompts: list[Prompt], scale: ScoreScale) -> tuple[float, list[np.ndarray]]:
    """Items per second and the in-scale probabilities."""
    wall = time.perf_counter()
    probs = [d.probs for d in backend.score(prompts, scale)]
    return len(prompts) / (time.perf_counter() - wall), probs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--judge", default="smollm2-135m-instruct")
    parser.add_argument("--n-items", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads per server")
    parser.add_argument("--concurrency", type=int, default=2, help="requests in flight per server")
    parser.add_argument("--modes", nargs="+", default=["topk", "exact"], choices=["topk", "exact"])
    args = parser.parse_args()
    scale = ScoreScale(0, 9)
    data = TASKS["vader"].load(n=args.n_items + 2, seed=1)
    prompts = [TASKS["vader"].template.fill(r, scale, chat=True) for r in data.records()]
    warm, prompts = prompts[:2], prompts[2:]
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    with ExitStack() as stack:
        urls = [
            stack.enter_context(local_llama_server(str(resolve(args.judge).path), n_threads=args.threads))
            for _ in range(2)
        ]
        print(
            f"{args.judge}, {args.n_items} VADER items, scale 0-9, {args.threads} thread(s) per server, "
            f"concurrency {args.concurrency} per server"
        )
        print(f"{'mode':>5} {'1 server items/s':>17} {'2 servers items/s':>18} {'ratio':>6} {'largest |dp|':>13}")
        for mode in args.modes:
            one, two = (
                OpenAIBackend(args.judge, base_url=where, mode=mode, concurrency=args.concurrency, tokenizer=args.judge)
                for where in (urls[0], urls)
            )
            for url in urls:  # first requests page the weights in
                list(OpenAIBackend(args.judge, base_url=url, mode=mode, tokenizer=args.judge).score(warm, scale))
            alone, single = timed(one, prompts, scale)
            spread, double = timed(two, prompts, scale)
            gap = max(float(np.abs(a - b).max()) for a, b in zip(single, double))
            print(f"{mode:>5} {alone:17.2f} {spread:18.2f} {spread / alone:6.2f} {gap:13.1e}")


if __name__ == "__main__":
    main()
