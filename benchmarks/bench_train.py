"""Training throughput for sizing a recipe: a few SFT and DPO steps with the recipe's
batch size, max length and adapters (logits at the response positions only), and DPO's
reference pass, in tokens per second; then the time the recipe's base → SFT → DPO
would take at those rates. Nothing is saved.

    python benchmarks/bench_train.py docs/results/alignment-lab/recipe.yaml [--steps 3]

The first step of each kind is a warm-up and is not timed.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch

import numbias.train as T
from numbias.models.weights import dequantised


def rate(model: Any, loss_fn: T.LossFn, batches: list[list[int]], backward: bool) -> tuple[float, float]:
    """(seconds per step, tokens per step) over ``batches[1:]``, the first one warming up."""
    seconds, tokens = 0.0, 0
    for k, batch in enumerate(batches):
        began = time.perf_counter()
        loss, n = loss_fn(model, batch)
        if backward:
            loss.backward()
            model.zero_grad(set_to_none=True)
        if k:
            seconds += time.perf_counter() - began
            tokens += n
    return seconds / (len(batches) - 1), tokens / (len(batches) - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe")
    parser.add_argument("--steps", type=int, default=3, help="timed steps of each kind")
    args = parser.parse_args()
    recipe = T.load_recipe(args.recipe)
    assert recipe.sft is not None and recipe.dpo is not None, "the recipe needs sft and dpo sections"
    if recipe.threads:
        torch.set_num_threads(recipe.threads)
    model, tokenizer = T.load_model(dequantised(T.resolve_base(recipe.base)))
    sft = T.encode(tokenizer, T.read_stage_data(recipe.sft, "sft", recipe.seed).texts, recipe.max_length)
    pairs = T.encode(tokenizer, T.read_stage_data(recipe.dpo, "dpo", recipe.seed).texts, recipe.max_length)
    sft_batches = T.plan(len(sft), args.steps + 1, recipe.sft.batch_size, recipe.seed)
    dpo_batches = T.plan(len(pairs), args.steps + 1, recipe.dpo.batch_size, recipe.seed)
    reference = torch.zeros((len(pairs), 2))

    def forward_only(m: Any, batch: list[int]) -> tuple[torch.Tensor, int]:
        with torch.inference_mode():
            chosen = [pairs[i] for i in batch]
            return T.pair_logprobs(m, chosen).sum(), sum(2 * len(p) + len(c) + len(r) for p, (c, r) in chosen)

    print(
        f"threads {torch.get_num_threads()}, max_length {recipe.max_length}, LoRA rank {recipe.lora.rank} on "
        f"{', '.join(recipe.lora.targets)}",
        flush=True,
    )
    total = 0.0

    def report(what: str, batch: int, seconds: float, tokens: float, count: int) -> None:
        nonlocal total
        total += seconds * count
        print(
            f"{what:14s} batch {batch}: {seconds:6.2f} s, {tokens:6.0f} tokens, {tokens / seconds:6.1f} tokens/s; "
            f"× {count} = {seconds * count / 60:5.1f} min",
            flush=True,
        )

    lora = T.with_lora(model, recipe.lora, recipe.seed).train()
    report(
        "sft step", recipe.sft.batch_size, *rate(lora, T.sft_loss(sft), sft_batches, backward=True), recipe.sft.steps
    )
    report(
        "dpo step",
        recipe.dpo.batch_size,
        *rate(lora, T.dpo_loss(pairs, reference, recipe.dpo.beta), dpo_batches, backward=True),
        recipe.dpo.steps,
    )
    report(
        "dpo reference",
        recipe.dpo.batch_size,
        *rate(lora.eval(), forward_only, dpo_batches, backward=False),
        -(-len(pairs) // recipe.dpo.batch_size),
    )
    print(f"base → SFT → DPO, training alone: {total / 60:.1f} min (plus two model loads and saves, ~1 min)")


if __name__ == "__main__":
    main()
