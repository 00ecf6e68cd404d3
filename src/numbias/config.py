"""Study configuration: the schemas a YAML file or a mapping is validated against,
the shorthands they accept (a judge by name, a task by name or file), and YAML reading
whose every problem is a one-line error."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from numbias.backends import Backend
from numbias.data import SUFFIXES, Dataset
from numbias.errors import NumbiasError, first_line
from numbias.metrics import RULES, Rule
from numbias.models import DEFAULT_JUDGE, trained_stage
from numbias.sampling import PROTOCOL_TEMPERATURE
from numbias.scale import PAPER_SCALE, ScoreScale
from numbias.tasks import Task, TaskConfig
from numbias.trie import DEFAULT_PRUNE

ModelT = TypeVar("ModelT", bound=BaseModel)


class JudgeConfig(BaseModel):
    """A judge: a model for a registered backend (or a ``module:attr`` factory), or, from
    Python, a backend object (``instance``) used as it is."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    model: str
    backend: str = "llama.cpp"
    label: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    instance: Any = Field(None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _trained_on_transformers(cls, data: Any) -> Any:
        """A stage trained by ``numbias train`` is a Hugging Face checkpoint: unless a
        backend is named, it is judged on transformers."""
        if isinstance(data, dict) and "backend" not in data and isinstance(data.get("model"), str) \
                and trained_stage(data["model"]) is not None:
            return {**data, "backend": "transformers"}
        return data

    @field_validator("instance")
    @classmethod
    def _a_backend(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, Backend):
            raise ValueError(f"instance must be a backend object (the numbias.Backend protocol), got "
                             f"{type(value).__name__}")
        return value

    @property
    def name(self) -> str:
        return self.label or self.model


def _judge_ref(value: Any) -> Any:
    if isinstance(value, str):
        return {"model": value}
    if isinstance(value, (dict, JudgeConfig)):
        return value
    if isinstance(value, Backend):
        return {"model": str(value.identity.get("model", type(value).__name__)), "backend": "object",
                "instance": value}
    return value


def task_ref(value: Any) -> Any:
    """A task in any form a study takes, as what :class:`TaskConfig` validates."""
    if isinstance(value, str):
        return {"file": value} if Path(value).suffix.lower() in SUFFIXES else {"name": value}
    if isinstance(value, Task):
        return {"task": value}
    if isinstance(value, Dataset):
        raise ValueError(f"a Dataset needs a template: give {{'dataset': data, 'template': '...'}} for "
                         f"{value.name!r}")
    return value


JudgeRef = Annotated[JudgeConfig, BeforeValidator(_judge_ref)]
"""A judge given as a name/path, a full mapping, or a backend object."""
TaskRef = Annotated[TaskConfig, BeforeValidator(task_ref)]
"""A task given as a registered name, a data file's path, a mapping, or a Task object."""


def _distinct_names(judges: list[JudgeConfig]) -> list[JudgeConfig]:
    names = [j.name for j in judges]
    if dupes := sorted({x for x in names if names.count(x) > 1}):
        raise ValueError(f"two judges share the name {dupes[0]!r}: give each a distinct label")
    return judges


JudgeList = Annotated[list[JudgeRef], AfterValidator(_distinct_names)]
"""Judges whose names (labels) tell their rows apart."""
TaskList = list[TaskRef]


def one_of(what: str, known: Sequence[str]) -> BeforeValidator:
    """A list validator: every entry must be one of ``known`` (checked before the
    entries' ``Literal`` type, for a message that lists what is known)."""

    def check(v: Any) -> Any:
        if not isinstance(v, list):
            return v
        bad = [x for x in v if x not in known]
        if bad:
            raise ValueError(f"unknown {what}(s) {bad}; known: {', '.join(known)}")
        return v

    return BeforeValidator(check)


def once_each(what: str) -> AfterValidator:
    """A list validator: an entry given twice is an error (its rows would collide)."""

    def check(v: list[str]) -> list[str]:
        if twice := [x for k, x in enumerate(v) if x in v[:k]]:
            raise ValueError(f"{what} {twice[0]} is given twice")
        return v

    return AfterValidator(check)


RuleList = Annotated[list[Rule], one_of("rule", RULES), once_each("rule")]
Mode = Literal["exact", "sampled"]
"""How a study reads a judge: its exact distributions, or the paper's sampled answers."""
MODES: tuple[Mode, ...] = get_args(Mode)
ScaleList = Annotated[list[str], AfterValidator(lambda v: [str(ScoreScale.parse(s)) for s in v]), once_each("scale")]
"""Scales written ``LO-HI``, checked and written canonically, each once."""


def _named_folder(v: str) -> str:
    if not v.strip():
        raise ValueError("is empty; name a results folder")
    return v


Folder = Annotated[str, AfterValidator(_named_folder)]
"""A results folder: an empty name would be the working folder, with the user's files."""


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A config file as a mapping; every reading problem is a one-line error."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise NumbiasError(f"config file {path} does not exist") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or first_line(exc)
        raise NumbiasError(f"config file {path} is not valid YAML{where}: {problem}") from None
    except (UnicodeDecodeError, OSError) as exc:
        raise NumbiasError(f"config file {path} is unreadable: {first_line(exc)}") from None
    if not isinstance(data, dict):
        raise NumbiasError(f"config file {path} must hold a mapping of settings")
    return data


def validate_config(cls: type[ModelT], data: dict[str, Any], source: str) -> ModelT:
    """Validate a config mapping; the first problem becomes a one-line error."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            raise NumbiasError(f"{source}: unknown config key {where!r}") from None
        raise NumbiasError(f"{source}: {where}: {err['msg'].removeprefix('Value error, ')}") from None


class SamplingConfig(BaseModel):
    """The paper's protocol: n answers at temperature T, first integer, clipped, averaged."""

    model_config = ConfigDict(extra="forbid")
    n: int = Field(10, ge=1)
    temperature: float = Field(PROTOCOL_TEMPERATURE, ge=0)
    max_tokens: int = Field(5, ge=1)
    seed: int = 0

    @property
    def label(self) -> str:
        return f"sampled(n={self.n},T={self.temperature:g})"


class RunConfig(BaseModel):
    """A study. Strings are shorthands: a judge name/path, a task name or data file.

    >>> config = RunConfig.parse({"judges": ["smollm2-135m-instruct"], "tasks": ["vader"], "scales": ["1..5"]})
    >>> config.judges[0].backend, config.tasks[0].name, config.scales, config.rules
    ('llama.cpp', 'vader', ['1-5'], ['greedy', 'expected', 'protocol'])
    >>> RunConfig.parse({"rules": ["vibes"]})
    Traceback (most recent call last):
    numbias.errors.NumbiasError: config: rules: unknown rule(s) ['vibes']; known: greedy, expected, median, protocol
    """

    model_config = ConfigDict(extra="forbid")
    judges: JudgeList = Field(default_factory=lambda: [JudgeConfig(model=DEFAULT_JUDGE,
                                                                           options={"prune": DEFAULT_PRUNE})])
    tasks: TaskList = Field(default_factory=lambda: [TaskConfig(name="vader")])
    scales: ScaleList = Field(default_factory=lambda: [PAPER_SCALE, "1-5", "1-10"])
    rules: RuleList = Field(default_factory=lambda: ["greedy", "expected", "protocol"])
    modes: list[Mode] = Field(default_factory=lambda: ["exact"])
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    out: Folder = "numbias-results"
    store: str | None = None
    seed: int = 0
    bootstrap: int = 1000

    @field_validator("modes", mode="before")
    @classmethod
    def _modes(cls, v: Any) -> Any:
        if isinstance(v, list) and (not v or any(m not in MODES for m in v)):
            raise ValueError(f"modes must be 'exact' and/or 'sampled', got {v}")
        return v

    @model_validator(mode="after")
    def _default_judge_reads_what_the_rules_need(self) -> RunConfig:
        """The default judge reads T = 1 and the protocol's temperature only: the
        study's rules need no more, and the full grid (for ``mitigate``) costs a tenth
        of the default run."""
        if "judges" not in self.model_fields_set:
            t = self.sampling.temperature
            self.judges[0].options.setdefault("temperatures", [t] if t > 0 else [])
        return self

    @property
    def store_path(self) -> Path:
        return Path(self.store) if self.store else Path(self.out) / "store.sqlite"

    @classmethod
    def from_yaml(cls, path: str | Path) -> RunConfig:
        return cls.parse(read_yaml(path), source=str(path))

    @classmethod
    def parse(cls, data: dict[str, Any], source: str = "config") -> RunConfig:
        return validate_config(cls, data, source)
