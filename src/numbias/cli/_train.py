"""``numbias train``: the base model aligned one stage at a time."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from numbias.cli._common import console, rich_progress
from numbias.util.fmt import fmt_num


def train_cmd(
    recipe: Annotated[Path, typer.Argument(help="YAML training recipe (base, seed, max_length, lora, sft, dpo).")],
    stage: Annotated[
        list[str] | None,
        typer.Option(help="Stage to train: sft or dpo (repeatable; default: the recipe's stages, sft then dpo)."),
    ] = None,
    start: Annotated[
        str,
        typer.Option(
            "--from", help="What dpo starts from: sft (this seed's SFT stage) or base (the DPO-only control)."
        ),
    ] = "sft",
    seed: Annotated[int | None, typer.Option(help="Training seed (default: the recipe's).")] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Folder for the stages (default: the numbias cache, where each is a judge by name)."),
    ] = None,
) -> None:
    """Align the base model one stage at a time (LoRA, merged): each stage is then a judge
    by name; a stopped run resumes from its last checkpoint."""
    from numbias.train.recipe import load_recipe
    from numbias.train.stage import train

    parsed = load_recipe(recipe)
    for name in stage or [s for s in ("sft", "dpo") if getattr(parsed, s) is not None]:
        trained = train(parsed, name, start=start, seed=seed, out=out, progress=rich_progress)
        card = trained.card
        loss = card["loss"]
        tenth = max(1, len(loss) // 10)  # one batch's loss is noisy: the first and last tenth's means
        first, last = (fmt_num(sum(part) / tenth, 3, plain=True) for part in (loss[:tenth], loss[-tenth:]))
        console.print(
            f"{trained.name}: {card['steps']} steps, loss {first} → {last} (first and last "
            f"{tenth} steps' mean), {card['tokens_per_s']} tokens/s; in {trained.path} (judge: "
            f"{trained.name}, backend transformers, or llama.cpp exported to GGUF F32)"
        )
