"""The training loop: SFT's and DPO's losses, a plain seeded torch loop with a linear
warm-up and decay, and resuming. A checkpoint every N steps holds the adapters, the
optimizer and the RNG, so a killed run resumes to the same loss curve; the checkpoints'
folder records the run's identity, so a run with another recipe, data or start stops
before any model loads. DPO's reference log-probabilities are computed once and kept."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from numbias.judge.judging import Progress
from numbias.models.catalog import ResolvedJudge
from numbias.train.data import Example, StageData, plan
from numbias.train.model import pair_logprobs, reference_logprobs, response_logprobs
from numbias.train.recipe import Recipe, Stage, StageRecipe
from numbias.util.atomic import write_atomic
from numbias.util.errors import NumbiasError, first_line

if TYPE_CHECKING:
    import torch


@dataclass
class RunState:
    """What a checkpoint holds besides the weights and the optimizer."""

    step: int = 0
    losses: list[float] = field(default_factory=list)
    tokens: int = 0
    seconds: float = 0.0


LossFn = Callable[[Any, list[int]], tuple["torch.Tensor", int]]
"""(model, example indices) → (loss, tokens read)."""


def sft_loss(examples: list[Example]) -> LossFn:
    """Mean negative log-likelihood of the response tokens."""

    def loss(model: Any, batch: list[int]) -> tuple[torch.Tensor, int]:
        sequences = [(examples[i][0] + examples[i][1][0], len(examples[i][0])) for i in batch]
        logps, _ = response_logprobs(model, sequences)
        return -logps.mean(), sum(len(ids) for ids, _ in sequences)

    return loss


def dpo_loss(examples: list[Example], reference: torch.Tensor, beta: float) -> LossFn:
    """DPO's sigmoid loss (Rafailov et al. 2023; trl's default ``loss_type``), written out:
    -log σ(β · [(log π(chosen) − log π_ref(chosen)) − (log π(rejected) − log π_ref(rejected))])."""
    import torch

    def loss(model: Any, batch: list[int]) -> tuple[torch.Tensor, int]:
        chosen = [examples[i] for i in batch]
        ratio = pair_logprobs(model, chosen) - reference[batch]
        tokens = sum(2 * len(p) + len(c) + len(r) for p, (c, r) in chosen)
        return -torch.nn.functional.logsigmoid(beta * (ratio[:, 0] - ratio[:, 1])).mean(), tokens

    return loss


@dataclass
class Job:
    """One stage to train: where it goes, what it starts from, and its checkpoint identity."""

    name: str
    stage: Stage
    recipe: Recipe
    stage_recipe: StageRecipe
    seed: int
    out: Path
    start: dict[str, str]
    base: ResolvedJudge
    data: StageData
    fingerprint: dict[str, Any]

    @property
    def work(self) -> Path:
        """The checkpoints' folder (a stage is not a judge until its own folder holds a card)."""
        return self.out / f"{self.name}.partial"


def lr_factor(step: int, recipe: StageRecipe) -> float:
    """Linear warm-up over ``warmup`` steps, then linear decay to 0 at the last step."""
    warm = (step + 1) / recipe.warmup if step < recipe.warmup else 1.0
    return warm * (1.0 - step / recipe.steps)


def save_checkpoint(job: Job, model: Any, optimizer: Any, state: RunState) -> None:
    """Adapters, optimizer, RNG and curve after ``state.step``, written atomically; older ones removed."""
    import torch

    path = job.work / f"step-{state.step:06d}.pt"
    weights = {k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad}
    checkpoint = {
        "fingerprint": job.fingerprint,
        "step": state.step,
        "losses": state.losses,
        "tokens": state.tokens,
        "seconds": state.seconds,
        "lora": weights,
        "optimizer": optimizer.state_dict(),
        "rng": torch.get_rng_state(),
    }
    write_atomic(path, lambda tmp: torch.save(checkpoint, tmp))
    for old in job.work.glob("step-*.pt"):
        if old != path:
            old.unlink()


def load_checkpoint(job: Job, model: Any, optimizer: Any) -> RunState:
    """The last checkpoint restored into ``model`` and ``optimizer`` (a fresh state if none)."""
    import torch

    found = sorted(job.work.glob("step-*.pt"))
    if not found:
        return RunState()
    saved = torch.load(found[-1], weights_only=True)
    check_fingerprint(found[-1], saved.get("fingerprint"), job)  # the folder's own record may have been edited
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.requires_grad:
                param.copy_(saved["lora"][name])
    optimizer.load_state_dict(saved["optimizer"])
    torch.set_rng_state(saved["rng"])
    return RunState(saved["step"], list(saved["losses"]), saved["tokens"], saved["seconds"])


def check_fingerprint(path: Path, saved: dict[str, Any] | None, job: Job) -> None:
    """Resuming needs the same recipe, data and start; otherwise one line naming what changed."""
    if saved == job.fingerprint:
        return
    changed = [k for k in job.fingerprint if (saved or {}).get(k) != job.fingerprint[k]] or ["format"]
    raise NumbiasError(
        f"{path} was written with another {changed[0]} than this run's; delete {job.work} to train "
        f"{job.name} from the start, or restore the recipe"
    )


def run_loop(job: Job, model: Any, loss_fn: LossFn, n_examples: int, progress: Progress) -> RunState:
    """The seeded optimisation loop, from the last checkpoint to the last step."""
    import torch

    recipe = job.stage_recipe
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=recipe.learning_rate, weight_decay=0.0)
    state = load_checkpoint(job, model, optimizer)
    steps = plan(n_examples, recipe.steps, recipe.batch_size, job.seed)
    model.train()
    with progress(f"train {job.name}", recipe.steps) as advance:
        advance(state.step)
        while state.step < recipe.steps:
            began = time.monotonic()
            for group in optimizer.param_groups:
                group["lr"] = recipe.learning_rate * lr_factor(state.step, recipe)
            loss, tokens = loss_fn(model, steps[state.step])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, recipe.max_grad_norm)
            optimizer.step()
            state.step += 1
            state.losses.append(float(loss.detach()))
            state.tokens += tokens
            state.seconds += time.monotonic() - began
            if state.step % recipe.checkpoint_every == 0 or state.step == recipe.steps:
                save_checkpoint(job, model, optimizer, state)
            advance(1)
    return state


def open_work(job: Job) -> None:
    """The checkpoints' folder, holding the identity of the run that wrote them: a run
    with another recipe, data or start stops before any model loads (and keeps them)."""
    record = job.work / "fingerprint.json"
    if record.is_file():
        try:
            saved = json.loads(record.read_text())
        except (OSError, ValueError):
            saved = None
        check_fingerprint(record, saved, job)
        return
    try:
        job.work.mkdir(exist_ok=True)
        record.write_text(json.dumps(job.fingerprint))
    except OSError as exc:
        raise NumbiasError(f"cannot write to the output folder {job.out}: {exc.strerror or first_line(exc)}") from None


def cached_reference(job: Job, model: Any, examples: list[Example]) -> torch.Tensor:
    """DPO's reference log-probabilities, kept beside the checkpoints so a resumed run reuses them."""
    import torch

    path = job.work / "reference.pt"
    if path.is_file():
        saved = torch.load(path, weights_only=True)
        if saved.get("fingerprint") == job.fingerprint:
            return saved["reference"]
    reference = reference_logprobs(model, examples, job.stage_recipe.batch_size)
    write_atomic(path, lambda tmp: torch.save({"fingerprint": job.fingerprint, "reference": reference}, tmp))
    return reference
