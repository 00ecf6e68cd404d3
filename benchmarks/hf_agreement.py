"""Agreement of the transformers backend with llama.cpp on the embedded judges.

Each judge's GGUF is loaded twice: by llama.cpp (quantised kernels) and by
transformers (de-quantised to float32). Both score the same VADER words exactly; the
script prints the total variation distance between the two distributions (scores,
out-of-scale, other) per scale, and load / scoring times.

    python benchmarks/hf_agreement.py --judge smollm2-135m-instruct --n 10
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from numbias.backends.hf import TransformersBackend
from numbias.backends.llamacpp import LlamaCppBackend
from numbias.core.distribution import stack
from numbias.core.scale import ScoreScale
from numbias.data.tasks import TASKS
from numbias.models.catalog import JUDGES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--judge", action="append", choices=sorted(JUDGES))
    parser.add_argument("--n", type=int, default=10, help="VADER words per scale")
    parser.add_argument("--scale", action="append")
    args = parser.parse_args()
    words = TASKS["vader"].load(n=args.n, seed=11).frame["word"]
    print(f"{'judge':<28} {'scale':>5} {'max TV':>7} {'mean TV':>8} {'hf s/item':>9} {'hf load s':>9}")
    for name in args.judge or sorted(JUDGES):
        start = time.perf_counter()
        hf = TransformersBackend(name)
        load = time.perf_counter() - start
        local = LlamaCppBackend(name)
        for text in args.scale or ["0-9", "1-5", "1-10"]:
            scale = ScoreScale.parse(text)
            prompts = [TASKS["vader"].template.fill({"word": w}, scale, chat=hf.chat) for w in words]
            start = time.perf_counter()
            ours = list(hf.score(prompts, scale))
            per_item = (time.perf_counter() - start) / len(prompts)
            theirs = list(local.score(prompts, scale))
            tv = 0.5 * np.abs(np.hstack(stack(ours)) - np.hstack(stack(theirs))).sum(axis=1)
            print(f"{name:<28} {text:>5} {max(tv):7.4f} {np.mean(tv):8.4f} {per_item:9.2f} {load:9.0f}")


if __name__ == "__main__":
    main()
