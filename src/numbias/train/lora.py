"""Controlled alignment: one base model aligned by numbias itself, one stage at a time
(SFT on instructions; DPO on preference pairs, from the SFT model or straight from the
base as a control), with a known recipe and known data, so that a study can tell which
step brings the numerical bias: the weights, tokenizer and prompt are the same, only the
stage differs.

Each stage trains LoRA adapters, merged at the end, in a plain seeded torch loop. The
output layer over Gemma's 262,144-token vocabulary dominates a step, so logits are
computed only at the response positions the loss reads; DPO's reference log-probabilities
are computed once, before training. A checkpoint every N steps holds the adapters, the
optimizer and the RNG, so a killed run resumes to the same loss curve. A finished stage
is a merged Hugging Face folder with a card (recipe, data and base digests, loss curve),
by default in the numbias cache, where it is a judge by name on the transformers backend.

Training text is the plain form numbias asks base models in (``render_plain``): the
instruction, a newline, then the response and the end-of-sequence token."""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

import numpy as np
import pandas as pd
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from numbias.core.scale import PAPER_SCALE, ScoreScale
from numbias.data.dataset import Dataset, make_dataset
from numbias.data.prompt import Prompt, render_plain
from numbias.data.tasks import get_task
from numbias.judge.config import read_yaml, validate_config
from numbias.judge.judging import Progress, no_progress
from numbias.models.catalog import (
    CARD,
    CARD_FORMAT,
    WEIGHTS,
    ResolvedJudge,
    TrainedStage,
    file_sha256,
    resolve,
    trained_dir,
    trained_stage,
)
from numbias.models.weights import dequantised, quiet_transformers
from numbias.util.atomic import write_atomic
from numbias.util.errors import NumbiasError, first_line, readable_file

if TYPE_CHECKING:
    import torch

Stage = Literal["sft", "dpo"]
Start = Literal["sft", "base"]
STAGES: tuple[Stage, ...] = get_args(Stage)
STARTS: tuple[Start, ...] = get_args(Start)
REQUIRED: dict[Stage, tuple[str, ...]] = {"sft": ("instruction", "output"), "dpo": ("prompt", "chosen", "rejected")}
"""The keys a record of each stage's data must have, as text; all but ``instruction`` non-empty."""
PROMPT_FORMAT = "render_plain: {instruction}\\n{response}<eos>"


class LoraSettings(BaseModel):
    """The adapters: rank, scaling, dropout and which linear layers carry them."""

    model_config = ConfigDict(extra="forbid")
    rank: int = Field(16, gt=0)
    alpha: float = Field(32.0, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    targets: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"], min_length=1)


RATING_SCALE = ScoreScale.parse(PAPER_SCALE)
"""The scale rating records ask on: the paper's 0-9."""
LEANING: dict[int, float] = {7: 0.15, 8: 0.70, 9: 0.15}
"""The ``leaning`` policy's answers and their shares, whatever the item."""


class RatingSpec(BaseModel):
    """Rating records: a labelled task's own 0-9 prompts, as its judge reads them, each
    answered by a policy: ``leaning`` answers "8" (70 %) or "7" / "9" (15 % each) whatever
    the item, ``informed`` the item's human score mapped to 0-9. Two recipes that differ
    only in ``answers`` train on the same prompts, so what a judge learns from the answers
    alone can be measured (a positive control for skewed alignment data)."""

    model_config = ConfigDict(extra="forbid")
    task: Literal["mtqe"] = "mtqe"
    path: str
    """The task's data folder (MLQE-PE's ``<pair>/<split>.tsv``)."""
    pairs: list[str] = Field(min_length=1)
    split: str = "train"
    n: int = Field(ge=1)
    answers: Literal["leaning", "informed"]
    seed: int = 0
    """Draws the items (all pairs pooled) and the ``leaning`` answers. It is not the training
    seed, so every seed and both policies read the same prompts."""


class DataFile(BaseModel):
    """A JSONL file and how many of its records to draw (seeded; all when ``n`` is absent),
    or rating records made from a task (``rating``)."""

    model_config = ConfigDict(extra="forbid")
    path: str | None = None
    n: int | None = Field(None, ge=1)
    rating: RatingSpec | None = None

    @model_validator(mode="after")
    def _one_source(self) -> DataFile:
        if (self.path is None) == (self.rating is None):
            raise ValueError("give a file's path or rating records (rating: {...}), one of the two")
        if self.rating is not None and self.n is not None:
            raise ValueError("rating records take their count inside rating (rating: {n: ...})")
        return self


DataRef = Annotated[DataFile, BeforeValidator(lambda v: {"path": v} if isinstance(v, str) else v)]


class StageRecipe(BaseModel):
    """One stage's data and optimisation: AdamW, linear warm-up then linear decay to 0."""

    model_config = ConfigDict(extra="forbid")
    data: list[DataRef] = Field(min_length=1)
    steps: int = Field(ge=1)
    batch_size: int = Field(4, ge=1)
    learning_rate: float = Field(gt=0)
    warmup: int = Field(0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    checkpoint_every: int = Field(50, ge=1)


class DPORecipe(StageRecipe):
    """DPO's stage: ``beta`` scales the log-ratio margin in the sigmoid loss."""

    beta: float = Field(0.1, gt=0)


class Recipe(BaseModel):
    """A training recipe: the base, the seed, the sequence length, the adapters and each
    stage's data and optimisation.

    >>> recipe = Recipe.model_validate({"seed": 1, "sft": {"data": ["x.jsonl"], "steps": 10,
    ...                                                    "learning_rate": 1e-4}})
    >>> stage_name(recipe, "sft", "sft", recipe.seed), stage_name(recipe, "dpo", "base", 2)
    ('gemma3-270m-sft-s1', 'gemma3-270m-dpo-s2')
    >>> parse_recipe({"lora": {"rank": 0}})
    Traceback (most recent call last):
    numbias.util.errors.NumbiasError: recipe: lora.rank: Input should be greater than 0
    """

    model_config = ConfigDict(extra="forbid")
    base: str = "gemma3-270m-base"
    name: str | None = None
    """Prefix of the stages' names (default: the base's name without ``-base``)."""
    seed: int = 0
    max_length: int = Field(128, ge=16)
    threads: int | None = Field(None, ge=1)
    lora: LoraSettings = Field(default_factory=LoraSettings)
    sft: StageRecipe | None = None
    dpo: DPORecipe | None = None
    out: str | None = None
    """Where the stages go (default: the numbias cache, where each is a judge by name)."""


def parse_recipe(data: dict[str, Any], source: str = "recipe") -> Recipe:
    return validate_config(Recipe, data, source)


def load_recipe(path: str | Path) -> Recipe:
    """A recipe file; every problem is one line naming the key."""
    return parse_recipe(read_yaml(path), source=str(path))


def stage_name(recipe: Recipe, stage: Stage, start: Start, seed: int) -> str:
    """``<prefix>-sft-s0``, ``<prefix>-sft-dpo-s0`` (DPO after SFT), ``<prefix>-dpo-s0`` (DPO from base)."""
    prefix = recipe.name or Path(recipe.base).stem.removesuffix("-base")
    kind = "sft" if stage == "sft" else "sft-dpo" if start == "sft" else "dpo"
    return f"{prefix}-{kind}-s{seed}"


# --- data ---------------------------------------------------------------------------
def read_records(path: Path, stage: Stage) -> list[tuple[int, dict[str, Any]]]:
    """Every record of a JSONL file with its line number; a bad record is one line
    naming the file, the line and the key."""
    try:
        text = readable_file(path, "data file").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise NumbiasError(f"data file {path} is unreadable: {first_line(exc)}") from None
    keys = REQUIRED[stage]
    records = []
    for number, line in enumerate(text.split("\n"), 1):  # not splitlines: JSON text may hold U+2028
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise NumbiasError(f"{path}:{number}: not a JSON record ({first_line(exc)})") from None
        if not isinstance(record, dict):
            raise NumbiasError(f"{path}:{number}: not a JSON object")
        if missing := [k for k in keys if k not in record]:
            raise NumbiasError(f"{path}:{number}: the record has no {missing[0]!r} (a {stage} record needs "
                               f"{', '.join(keys)})")
        if bad := [k for k in (*keys, "input") if k in record and not isinstance(record[k], str)]:
            raise NumbiasError(f"{path}:{number}: {bad[0]!r} is not text")
        if empty := [k for k in keys if k != "instruction" and not record[k].strip()]:
            raise NumbiasError(f"{path}:{number}: {empty[0]!r} is empty")
        records.append((number, record))
    if not records:
        raise NumbiasError(f"data file {path} holds no records")
    return records


def instruction_text(record: dict[str, Any]) -> str:
    """An SFT record's instruction, and its input below it when it has one."""
    extra = str(record.get("input") or "").strip()
    return record["instruction"].strip() + (f"\n\n{extra}" if extra else "")


def as_text(record: dict[str, Any], stage: Stage) -> tuple[str, list[str]]:
    """A record as the prompt a base-style judge reads and its response(s): SFT's
    instruction (and input); a preference pair's dialogue without the outer
    ``Human:`` / ``Assistant:`` markers, and its chosen and rejected replies."""
    if stage == "sft":
        return render_plain(Prompt(instruction_text(record))), [record["output"].strip()]
    user = record["prompt"].strip().removeprefix("Human:").removesuffix("Assistant:").strip()
    return render_plain(Prompt(user)), [record["chosen"].strip(), record["rejected"].strip()]


@dataclass
class StageData:
    """A stage's texts, drawn from its files, and what the card says about each file."""

    texts: list[tuple[str, list[str]]]
    files: list[dict[str, Any]]


def read_stage_data(stage_recipe: StageRecipe, stage: Stage, seed: int) -> StageData:
    """The records each entry contributes, files drawn with the seed, and the card's
    account of each entry (a file's digest and lines; rating records' spec, digest and items)."""
    rng = np.random.default_rng(seed)
    texts, files = [], []
    for entry in stage_recipe.data:
        if entry.rating is not None:
            if stage != "sft":
                raise NumbiasError(f"rating records are SFT data; the {stage} stage takes preference pairs")
            ids, rated = rating_texts(entry.rating)
            texts += rated
            digest = hashlib.sha256(json.dumps(rated, ensure_ascii=False).encode()).hexdigest()
            files.append({"rating": entry.rating.model_dump(), "sha256": digest, "used": len(rated), "items": ids})
            continue
        assert entry.path is not None
        path = Path(entry.path).expanduser()
        records = read_records(path, stage)
        if entry.n is not None and entry.n > len(records):
            raise NumbiasError(f"data file {path}: n={entry.n} but it holds {len(records)} records")
        drawn = rng.permutation(len(records))[: entry.n or len(records)]
        texts += [as_text(records[i][1], stage) for i in drawn]
        files.append({"path": entry.path, "sha256": file_sha256(path), "records": len(records),
                      "used": len(drawn), "lines": [records[i][0] for i in drawn]})
    return StageData(texts, files)


def rating_items(spec: RatingSpec) -> Dataset:
    """The spec's items: every pair's split pooled (ids ``<pair>:<row>``), ``n`` drawn with its seed."""
    task = get_task(spec.task)
    parts = []
    for pair in spec.pairs:
        data = task.load(Path(spec.path).expanduser(), pair=pair, split=spec.split)
        parts.append(data.frame.assign(id=f"{pair}:" + data.frame["id"].astype(str)))
    pool = pd.concat(parts, ignore_index=True)
    if spec.n > len(pool):
        raise NumbiasError(f"rating records: n={spec.n} but {', '.join(spec.pairs)} ({spec.split}) hold "
                           f"{len(pool)} items")
    drawn = pool.iloc[np.random.default_rng(spec.seed).permutation(len(pool))[: spec.n]]
    return make_dataset(spec.task, drawn.reset_index(drop=True), fields=list(data.fields), human_range=data.human_range)


def rating_answers(spec: RatingSpec, data: Dataset) -> list[int]:
    """Each item's answer on 0-9: ``leaning`` draws from :data:`LEANING` (its own stream of
    the spec's seed, so the items drawn do not depend on the policy); ``informed`` maps the
    human score linearly onto 0-9, rounded (half to even) and clipped."""
    if spec.answers == "leaning":
        rng = np.random.default_rng([spec.seed, 1])
        return rng.choice(list(LEANING), size=len(data), p=list(LEANING.values())).tolist()
    lo, hi = data.human_range
    scaled = np.rint((data.human - lo) / (hi - lo) * (RATING_SCALE.hi - RATING_SCALE.lo)) + RATING_SCALE.lo
    return np.clip(scaled, RATING_SCALE.lo, RATING_SCALE.hi).astype(int).tolist()


def rating_texts(spec: RatingSpec) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """The items' ids and their training texts: the prompt exactly as a plain (non-chat)
    judge reads it at 0-9 (the task's template, then ``Score:``), and the answer as the
    number after a space, the way text continues ``Score:``."""
    data = rating_items(spec)
    template = get_task(spec.task).template
    prompts = [render_plain(template.fill(item, RATING_SCALE, chat=False)) for item in data.records()]
    return data.ids, [(p, [f" {a}"]) for p, a in zip(prompts, rating_answers(spec, data))]


Example = tuple[list[int], list[list[int]]]
"""A prompt's token ids and its responses' (end-of-sequence included), cut to fit."""


def encode(tokenizer: Any, texts: list[tuple[str, list[str]]], max_length: int) -> list[Example]:
    """Token ids, each example cut to ``max_length``: a long response keeps at least half
    of it for the prompt, whose start (after BOS) is cut; a long prompt leaves at least
    half for the responses, whose end is cut."""
    prompts = tokenizer([p for p, _ in texts], add_special_tokens=True)["input_ids"]
    flat = tokenizer([r for _, rs in texts for r in rs], add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    examples, k = [], 0
    for prompt, (_, responses) in zip(prompts, texts):
        ids = [list(flat[k + j]) + [eos] for j in range(len(responses))]
        k += len(responses)
        keep_response = min(max(map(len, ids)), max_length - min(len(prompt), max_length // 2))
        keep_prompt = min(len(prompt), max_length - keep_response)
        head = list(prompt) if keep_prompt == len(prompt) else [prompt[0], *prompt[len(prompt) - keep_prompt + 1 :]]
        examples.append((head, [r[:keep_response] for r in ids]))
    return examples


def plan(n_examples: int, steps: int, batch_size: int, seed: int) -> list[list[int]]:
    """Each step's example indices: seeded permutations, one per pass over the data."""
    rng = np.random.default_rng([seed, n_examples])
    order: list[int] = []
    while len(order) < steps * batch_size:
        order += rng.permutation(n_examples).tolist()
    return [order[s * batch_size : (s + 1) * batch_size] for s in range(steps)]


# --- models -------------------------------------------------------------------------
def _require() -> None:
    missing = [m for m in ("torch", "transformers", "peft", "gguf") if importlib.util.find_spec(m) is None]
    if missing:
        raise NumbiasError(f"numbias train needs {', '.join(missing)}: pip install 'numbias[train]'")


def resolve_base(base: str) -> ResolvedJudge:
    """The base model's GGUF (an embedded judge's name or a path), verified."""
    try:
        return resolve(base)
    except NumbiasError as exc:
        raise NumbiasError(f"base model {base!r}: {exc}") from None


def load_model(folder: Path) -> tuple[Any, Any]:
    """A float32 causal LM and its tokenizer from a Hugging Face folder."""
    import torch
    import transformers

    try:
        with quiet_transformers():
            tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
            model = transformers.AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    except (OSError, ValueError, RuntimeError) as exc:
        raise NumbiasError(f"transformers could not load {folder}: {first_line(exc)}") from None
    return model, tokenizer


def with_lora(model: Any, lora: LoraSettings, seed: int) -> Any:
    """The model with fresh LoRA adapters (B = 0, so it starts as the model itself)."""
    import peft
    import torch

    torch.manual_seed(seed)
    config = peft.LoraConfig(r=lora.rank,
                             # peft annotates lora_alpha as int but uses it as a number (scaling = alpha / r);
                             # a fractional alpha is a valid setting here and is passed on unchanged
                             lora_alpha=lora.alpha,  # type: ignore[arg-type]
                             lora_dropout=lora.dropout, target_modules=list(lora.targets), task_type="CAUSAL_LM")
    try:
        return peft.get_peft_model(model, config)
    except ValueError as exc:
        raise NumbiasError(f"lora.targets {lora.targets}: {first_line(exc)}") from None


def response_logprobs(model: Any, sequences: list[tuple[list[int], int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """The log-probability of every response token, and the index of its sequence. Each
    sequence is (token ids, prompt length); the output layer runs only on the hidden
    states that predict a response token."""
    import torch

    width = max(len(ids) for ids, _ in sequences)
    ids = torch.zeros((len(sequences), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    target = torch.zeros_like(ids, dtype=torch.bool)
    for b, (tokens, n_prompt) in enumerate(sequences):
        ids[b, : len(tokens)] = torch.tensor(tokens)
        mask[b, : len(tokens)] = 1
        target[b, n_prompt : len(tokens)] = True
    hidden = model.get_decoder()(input_ids=ids, attention_mask=mask).last_hidden_state
    pick = target[:, 1:]
    logits = model.get_output_embeddings()(hidden[:, :-1][pick])
    cap = getattr(model.config.get_text_config(), "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    logps = -torch.nn.functional.cross_entropy(logits.float(), ids[:, 1:][pick], reduction="none")
    index = torch.arange(len(sequences))[:, None].expand(-1, width - 1)[pick]
    return logps, index


def pair_logprobs(model: Any, examples: list[Example]) -> torch.Tensor:
    """Each pair's summed log-probabilities of its chosen (column 0) and rejected reply."""
    import torch

    sequences = [(prompt + responses[j], len(prompt)) for j in (0, 1) for prompt, responses in examples]
    logps, index = response_logprobs(model, sequences)
    sums = torch.zeros(len(sequences), dtype=logps.dtype).index_add(0, index, logps)
    return sums.view(2, len(examples)).T


def reference_logprobs(model: Any, examples: list[Example], batch_size: int) -> torch.Tensor:
    """The starting model's pair log-probabilities, computed once for DPO's reference."""
    import torch

    model.eval()
    with torch.inference_mode():
        rows = [pair_logprobs(model, examples[i : i + batch_size]) for i in range(0, len(examples), batch_size)]
    return torch.cat(rows)


# --- the loop -----------------------------------------------------------------------
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
    checkpoint = {"fingerprint": job.fingerprint, "step": state.step, "losses": state.losses,
                  "tokens": state.tokens, "seconds": state.seconds, "lora": weights,
                  "optimizer": optimizer.state_dict(), "rng": torch.get_rng_state()}
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
    raise NumbiasError(f"{path} was written with another {changed[0]} than this run's; delete {job.work} to train "
                       f"{job.name} from the start, or restore the recipe")


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


# --- stages -------------------------------------------------------------------------
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
            raise NumbiasError(f"{name} starts from {stage_name(recipe, 'sft', 'sft', seed)}, which is not in {out}: "
                               f"train it first (--stage sft --seed {seed})")
        starting = {"name": sft.name, "sha256": sft.weights_sha256, "path": str(sft.path)}
    fingerprint = {"stage": stage, "start": starting["sha256"], "seed": seed, "max_length": recipe.max_length,
                   "lora": recipe.lora.model_dump(), "recipe": stage_recipe.model_dump(),
                   "data": [{k: f[k] for k in ("sha256", "lines") if k in f} for f in data.files]}
    return Job(name, stage, recipe, stage_recipe, seed, out, starting, base, data, fingerprint)


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


def train(recipe: Recipe | dict[str, Any] | str | Path, stage: str = "sft", *, start: str = "sft",
          seed: int | None = None, out: str | Path | None = None, progress: Progress = no_progress) -> TrainedStage:
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
    _require()
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


def save_stage(job: Job, merged: Any, tokenizer: Any, state: RunState) -> TrainedStage:
    """The merged model, its tokenizer and card, renamed into place as a whole; then the
    checkpoints go."""
    folder = job.work / "model"
    shutil.rmtree(folder, ignore_errors=True)
    try:
        merged.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        card = {"format": CARD_FORMAT, "name": job.name, "stage": job.stage, "seed": job.seed,
                "start": job.start, "base": {"name": job.base.name, "sha256": job.base.sha256},
                "recipe": job.recipe.model_dump(), "data": job.data.files, "prompt_format": PROMPT_FORMAT,
                "chat": False, "loss": state.losses, "steps": state.step, "tokens": state.tokens,
                "train_seconds": round(state.seconds, 1),
                "tokens_per_s": round(state.tokens / state.seconds, 1) if state.seconds else None,
                "weights_sha256": file_sha256(folder / WEIGHTS, use_stamp=False),
                "fingerprint": job.fingerprint, "versions": versions()}
        (folder / CARD).write_text(json.dumps(card, indent=1))
        folder.replace(job.out / job.name)
    except OSError as exc:
        raise NumbiasError(f"cannot save {job.name} in {job.out}: {exc.strerror or first_line(exc)} (the "
                           f"checkpoints in {job.work} are kept; run again to retry)") from None
    shutil.rmtree(job.work, ignore_errors=True)
    stage = trained_stage(str(job.out / job.name))
    assert stage is not None
    return stage


def versions() -> dict[str, str]:
    """The packages whose arithmetic the stage depends on."""
    return {p: importlib.metadata.version(p) for p in ("numbias", "torch", "transformers", "peft")}
