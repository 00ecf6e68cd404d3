"""A training recipe: the base, the seed, the adapters and each stage's data and
optimisation, read and checked (every problem one line naming the key) before
anything loads, and the names the stages it trains take."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from numbias.core.scale import PAPER_SCALE, ScoreScale
from numbias.judge.config import read_yaml, validate_config

Stage = Literal["sft", "dpo"]
Start = Literal["sft", "base"]
STAGES: tuple[Stage, ...] = get_args(Stage)
STARTS: tuple[Start, ...] = get_args(Start)


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
