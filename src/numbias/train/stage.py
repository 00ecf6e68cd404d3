"""Controlled alignment: one base model aligned by numbias itself, one stage at a time
(SFT on instructions; DPO on preference pairs, from the SFT model or straight from the
base as a control), with a known recipe and known data, so that a study can tell which
step brings the numerical bias: the weights, tokenizer and prompt are the same, only the
stage differs. :func:`train` runs one stage end to end: everything checked before a
model loads, then the loop (resumed from its last checkpoint), then the merged folder
with its card, by default in the numbias cache."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from numbias.judge.judging import Progress, no_progress
from numbias.models.catalog import TrainedStage, trained_dir, trained_stage
from numbias.models.weights import dequantised
from numbias.train.data import encode, read_stage_data
from numbias.train.export import finished, save_stage
from numbias.train.loop import Job, cached_reference, dpo_loss, open_work, run_loop, sft_loss
from numbias.train.model import load_model, require_extras, resolve_base, with_lora
from numbias.train.recipe import STAGES, STARTS, DPORecipe, Recipe, load_recipe, parse_recipe, stage_name
from numbias.util.errors import NumbiasError, first_line


def prepare(recipe: Recipe, stage_text: str, start_text: str, seed: int, out: Path) -> Job:
    """Everything checked before a model loads: the stage, the output folder, every data
    record, the base, and what the stage starts from."""
    stage = next((s for s in STAGES if s == stage_text), None)
    start = next((s for s in STARTS if s == start_text), None)
    if stage is None:
        raise NumbiasError(f"unknown stage {stage_text!r} (stages: {', '.join(STAGES)})")
    if start is None:
        raise NumbiasError(f"dpo starts from sft or base, not {start_text!r}")
    stage_recipe = getattr(recipe, stage)
    if stage_recipe is None:
        raise NumbiasError(f"the recipe has no {stage} section")
    name = stage_name(recipe, stage, start, seed)
    try:
        out.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=out).close()
    except OSError as exc:
        raise NumbiasError(f"cannot write to the output folder {out}: {exc.strerror or first_line(exc)}") from None
    data = read_stage_data(stage_recipe, stage, seed)
    base = resolve_base(recipe.base)
    from_sft = stage == "dpo" and start == "sft"
    starting = {"name": base.name, "sha256": base.sha256}
    if from_sft:
        sft = trained_stage(str(out / stage_name(recipe, "sft", "sft", seed)))
        if sft is None:
            raise NumbiasError(
                f"{name} starts from {stage_name(recipe, 'sft', 'sft', seed)}, which is not in {out}: "
                f"train it first (--stage sft --seed {seed})"
            )
        starting = {"name": sft.name, "sha256": sft.weights_sha256, "path": str(sft.path)}
    fingerprint = {
        "stage": stage,
        "start": starting["sha256"],
        "seed": seed,
        "max_length": recipe.max_length,
        "lora": recipe.lora.model_dump(),
        "recipe": stage_recipe.model_dump(),
        "data": [{k: f[k] for k in ("sha256", "lines") if k in f} for f in data.files],
    }
    return Job(name, stage, recipe, stage_recipe, seed, out, starting, base, data, fingerprint)


def train(
    recipe: Recipe | dict[str, Any] | str | Path,
    stage: str = "sft",
    *,
    start: str = "sft",
    seed: int | None = None,
    out: str | Path | None = None,
    progress: Progress = no_progress,
) -> TrainedStage:
    """Train one stage, ``sft`` or ``dpo`` (from ``start``: this seed's ``sft`` stage or the
    ``base``), resuming from its last checkpoint, and save it merged with its card; a stage
    already trained by the same recipe is returned as it is."""
    if isinstance(recipe, (str, Path)):
        recipe = load_recipe(recipe)
    elif isinstance(recipe, dict):
        recipe = parse_recipe(recipe)
    seed = recipe.seed if seed is None else seed
    out = Path(out or recipe.out or trained_dir()).expanduser()
    job = prepare(recipe, stage, start, seed, out)
    if (done := finished(job)) is not None:
        return done
    open_work(job)
    require_extras()
    import torch

    if recipe.threads:
        torch.set_num_threads(recipe.threads)
    model, tokenizer = load_model(Path(job.start["path"]) if "path" in job.start else dequantised(job.base))
    examples = encode(tokenizer, job.data.texts, recipe.max_length)
    if job.stage == "sft":
        loss_fn = sft_loss(examples)
    else:
        dpo = job.stage_recipe
        assert isinstance(dpo, DPORecipe)
        loss_fn = dpo_loss(examples, cached_reference(job, model, examples), dpo.beta)
    model = with_lora(model, recipe.lora, seed)
    state = run_loop(job, model, loss_fn, len(examples), progress)
    return save_stage(job, model.merge_and_unload(), tokenizer, state)
