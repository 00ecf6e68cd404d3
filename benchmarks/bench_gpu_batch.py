"""Exact distributions on the transformers backend at several batch sizes, against one
item at a time and against sampling, in items per second from one run (for a GPU).

Every item is scored exactly with ``batch_size`` 1, then with each larger batch size
(prompts left-padded in one forward pass, every trie node of every item in one more,
under a tree mask); then k answers per item are sampled at T = 1 with ``generate``
(``num_return_sequences=k``, as a vLLM-style protocol would draw them) and each item's
distribution is estimated from its answers. Printed: items/s and the ratio to one item
at a time; the share of the time spent reading the trie's rows (the tempered softmax
over the vocabulary, on the CPU); the largest difference from the one-item
distributions; and, for sampling, items/s, the ratio of the best exact rate to it, and
the total variation between each sampled estimate and the exact distribution.

The items are synthetic reviews of 10 to 120 words (no data set is read). ``--model`` is
anything the transformers backend loads: a Hub id (the network, or a filled Hugging Face
cache), a local folder, an embedded judge's name. ``--random-weights`` keeps the
model's configuration and tokenizer and draws the weights (timing without the weights:
a folder written by ``--skeleton`` is enough), and ``--tiny`` builds the 2-layer random
Llama of tests/tiny_hf.py for a CPU smoke check.

    python benchmarks/bench_gpu_batch.py --device cuda --dtype bfloat16 --n-items 256
    python benchmarks/bench_gpu_batch.py --model qwen2.5-coder-0.5b-instruct --skeleton skel
    python benchmarks/bench_gpu_batch.py --model skel --random-weights --device cuda --dtype bfloat16
    python benchmarks/bench_gpu_batch.py --tiny --n-items 12 --samples 8
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import numbias.backends.hf as hf
from numbias.core.distribution import TEMPERATURES, ScoreDistribution
from numbias.core.sampling import categorize
from numbias.core.scale import ScoreScale
from numbias.core.trie import ScoreTrie
from numbias.data.prompt import Prompt
from numbias.judge.config import SamplingConfig

WORDS = (
    "the",
    "food",
    "was",
    "service",
    "slow",
    "great",
    "terrible",
    "friendly",
    "staff",
    "price",
    "too",
    "high",
    "would",
    "come",
    "back",
    "never",
    "again",
    "loved",
    "it",
    "not",
    "bad",
    "okay",
    "and",
    "but",
    "really",
)


def make_prompts(n: int, scale: ScoreScale, seed: int) -> list[Prompt]:
    """``n`` reviews of 10 to 120 random words, so the batch's prompts differ in length."""
    rng = np.random.default_rng(seed)
    texts = [" ".join(rng.choice(WORDS, int(rng.integers(10, 121)))) for _ in range(n)]
    return [
        Prompt(
            f"Rate the sentiment of this review from {scale.labels[0]} (negative) to {scale.labels[-1]} "
            f"(positive).\nReview: {text}\nReply with a single whole number from {scale.labels[0]} to "
            f"{scale.labels[-1]} and nothing else."
        )
        for text in texts
    ]


def judge_folder(args: argparse.Namespace, scratch: Path) -> str:
    """What the backend loads: --model as it is, its configuration with fresh weights,
    or the tiny random Llama."""
    if args.tiny:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from tiny_hf import build_tiny

        return str(build_tiny(scratch / "tiny"))
    if not args.random_weights:
        return str(args.model)
    import torch
    import transformers

    source, kwargs = hf.pretrained_source(args.model, None)
    config = transformers.AutoConfig.from_pretrained(source, **kwargs)
    transformers.AutoTokenizer.from_pretrained(source, **kwargs).save_pretrained(scratch / "random")
    torch.manual_seed(args.seed)
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=getattr(torch, args.dtype))
    model.save_pretrained(scratch / "random")
    return str(scratch / "random")


def write_skeleton(model: str, folder: Path) -> None:
    """The configuration and tokenizer of ``model``, without weights: enough for
    --random-weights on a machine the weights cannot reach."""
    import transformers

    source, kwargs = hf.pretrained_source(model, None)
    transformers.AutoConfig.from_pretrained(source, **kwargs).save_pretrained(folder)
    transformers.AutoTokenizer.from_pretrained(source, **kwargs).save_pretrained(folder)
    print(f"wrote the configuration and tokenizer of {model} to {folder}")


def vector(dist: ScoreDistribution) -> np.ndarray:
    """The T = 1 distribution in ``categorize``'s order: scores, below, above, other."""
    return np.array([*dist.probs, dist.below, dist.above, dist.other])


def every_temperature(dist: ScoreDistribution) -> np.ndarray:
    """Every probability the distribution holds, at T = 1 and each other temperature."""
    return np.concatenate([vector(dist), *(vector(dist.tempered[t]) for t in sorted(dist.tempered))])


def timed_reading() -> tuple[list[float], Callable[[], None]]:
    """Count the seconds the backend spends in the tempered softmax (its row reading);
    returns the running total and a function that puts the original back."""
    original, spent = hf.tempered_logprobs, [0.0]

    def timed(*args: Any, **kwargs: Any) -> np.ndarray:
        began = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - began

    hf.tempered_logprobs = timed

    def restore() -> None:
        hf.tempered_logprobs = original

    return spent, restore


def exact(backend: Any, prompts: Sequence[Prompt], scale: ScoreScale, batch_size: int) -> tuple[float, float, list]:
    """(seconds, seconds reading rows, distributions) for every item at ``batch_size``,
    after one warm-up batch that is not timed."""
    backend.batch_size = batch_size
    list(backend.score(prompts[:batch_size], scale))
    spent, restore = timed_reading()
    began = time.perf_counter()
    try:
        dists = list(backend.score(prompts, scale))
    finally:
        restore()
    return time.perf_counter() - began, spent[0], dists


def sampled(
    backend: Any, prompts: Sequence[Prompt], scale: ScoreScale, k: int, max_tokens: int, seed: int
) -> tuple[float, np.ndarray]:
    """(seconds, one estimated distribution per item) from ``k`` answers at T = 1, after
    one item's warm-up that is not timed."""
    list(backend.sample(prompts[:1], n=k, temperature=1.0, max_tokens=max_tokens, seed=seed))
    began = time.perf_counter()
    answers = list(backend.sample(prompts, n=k, temperature=1.0, max_tokens=max_tokens, seed=seed))
    seconds = time.perf_counter() - began
    counts = np.zeros((len(prompts), scale.size + 3))
    for row, texts in zip(counts, answers):
        np.add.at(row, [categorize(t, scale) for t in texts], 1.0)
    return seconds, counts / k


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="Qwen/Qwen2.5-0.5B-Instruct")
    parser.add_argument("--tiny", action="store_true", help="a 2-layer random Llama (CPU smoke check)")
    parser.add_argument("--random-weights", action="store_true", help="--model's config and tokenizer, new weights")
    parser.add_argument("--skeleton", type=Path, help="write --model's config and tokenizer to this folder, then stop")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--n-items", type=int, default=128)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 32], help="besides 1")
    parser.add_argument("--samples", type=int, default=32, help="answers sampled per item (k)")
    parser.add_argument("--max-tokens", type=int, default=SamplingConfig().max_tokens, help="per sampled answer")
    parser.add_argument("--scale", default="1-10")
    parser.add_argument(
        "--temperatures",
        type=float,
        nargs="+",
        default=list(TEMPERATURES),
        help="read by the exact trie (the backend's default: 12)",
    )
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def report(args: argparse.Namespace, backend: Any, prompts: list[Prompt], scale: ScoreScale) -> None:
    """The exact rates by batch size, then sampling's rate and error."""
    nodes = len(ScoreTrie(scale, backend.pieces).nodes)
    tokens = [backend.count_tokens(p) for p in prompts]
    print(
        f"{args.model if not args.tiny else 'tiny random Llama'} on {args.device} ({args.dtype}), scale {scale}, "
        f"{len(prompts)} items of {min(tokens)}-{max(tokens)} tokens (mean {np.mean(tokens):.0f}), "
        f"{nodes} trie nodes, {len(backend.temperatures)} temperature(s)"
    )
    print(f"{'exact, batch size':<22} {'items/s':>9} {'x one item':>11} {'reading':>8} {'max |diff|':>11}")
    rates, first = {}, None
    for batch_size in [1, *args.batch_sizes]:
        seconds, reading, dists = exact(backend, prompts, scale, batch_size)
        rates[batch_size] = len(prompts) / seconds
        values = np.array([every_temperature(d) for d in dists])
        first = values if first is None else first
        print(
            f"{batch_size:<22} {rates[batch_size]:9.2f} {rates[batch_size] / rates[1]:11.2f} "
            f"{reading / seconds:8.0%} {np.abs(values - first).max():11.2e}"
        )
    seconds, estimates = sampled(backend, prompts, scale, args.samples, args.max_tokens, args.seed)
    truth = np.array([vector(d) for d in dists])
    tv = 0.5 * np.abs(estimates - truth).sum(axis=1)
    best = max(rates, key=rates.__getitem__)
    print(
        f"sampling, k={args.samples} at T=1 (generate): {len(prompts) / seconds:.2f} items/s; exact at batch size "
        f"{best} is {rates[best] * seconds / len(prompts):.2f}x that; total variation of the sampled estimate "
        f"against the exact distribution: mean {tv.mean():.3f}, max {tv.max():.3f}"
    )


def main() -> None:
    args = parse_args()
    if args.skeleton:
        write_skeleton(args.model, args.skeleton)
        return
    scale = ScoreScale.parse(args.scale)
    with tempfile.TemporaryDirectory() as scratch:
        model = judge_folder(args, Path(scratch))
        backend = hf.TransformersBackend(model, device=args.device, dtype=args.dtype, temperatures=args.temperatures)
        report(args, backend, make_prompts(args.n_items, scale, args.seed), scale)


if __name__ == "__main__":
    main()
