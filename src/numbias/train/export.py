"""A finished stage: the merged model, its tokenizer and its card (recipe, data and
base digests, loss curve, versions), renamed into place as a whole, where it is a judge
by name on the transformers backend; and a stage already trained by the same recipe,
recognised by its card."""

from __future__ import annotations

import importlib.metadata
import json
import shutil
from typing import Any

from numbias.models.catalog import CARD, CARD_FORMAT, WEIGHTS, TrainedStage, file_sha256, trained_stage
from numbias.train.data import PROMPT_FORMAT
from numbias.train.loop import Job, RunState
from numbias.util.errors import NumbiasError, first_line


def finished(job: Job) -> TrainedStage | None:
    """The stage already trained by this very recipe, if so; a different one is an error."""
    folder = job.out / job.name
    if not folder.exists():
        return None
    stage = trained_stage(str(folder))
    if stage is None:
        raise NumbiasError(f"{folder} exists and is not a trained stage; remove it or choose another output folder")
    if stage.card.get("fingerprint") != job.fingerprint:
        raise NumbiasError(f"{folder} was trained with another recipe; remove it to train {job.name} again")
    return stage


def save_stage(job: Job, merged: Any, tokenizer: Any, state: RunState) -> TrainedStage:
    """The merged model, its tokenizer and card, renamed into place as a whole; then the
    checkpoints go."""
    folder = job.work / "model"
    shutil.rmtree(folder, ignore_errors=True)
    try:
        merged.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        card = {
            "format": CARD_FORMAT,
            "name": job.name,
            "stage": job.stage,
            "seed": job.seed,
            "start": job.start,
            "base": {"name": job.base.name, "sha256": job.base.sha256},
            "recipe": job.recipe.model_dump(),
            "data": job.data.files,
            "prompt_format": PROMPT_FORMAT,
            "chat": False,
            "loss": state.losses,
            "steps": state.step,
            "tokens": state.tokens,
            "train_seconds": round(state.seconds, 1),
            "tokens_per_s": round(state.tokens / state.seconds, 1) if state.seconds else None,
            "weights_sha256": file_sha256(folder / WEIGHTS, use_stamp=False),
            "fingerprint": job.fingerprint,
            "versions": versions(),
        }
        (folder / CARD).write_text(json.dumps(card, indent=1))
        folder.replace(job.out / job.name)
    except OSError as exc:
        raise NumbiasError(
            f"cannot save {job.name} in {job.out}: {exc.strerror or first_line(exc)} (the "
            f"checkpoints in {job.work} are kept; run again to retry)"
        ) from None
    shutil.rmtree(job.work, ignore_errors=True)
    stage = trained_stage(str(job.out / job.name))
    assert stage is not None
    return stage


def versions() -> dict[str, str]:
    """The packages whose arithmetic the stage depends on."""
    return {p: importlib.metadata.version(p) for p in ("numbias", "torch", "transformers", "peft")}
