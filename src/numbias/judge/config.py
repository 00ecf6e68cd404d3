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
from numbias.backends.base import is_routing, registered, takes_option
from numbias.core.metrics import KNOWN_RULES, RISK_AVERSE, RULES, Rule, check_rule
from numbias.core.sampling import PROTOCOL_TEMPERATURE
from numbias.core.scale import PAPER_SCALE, ScoreScale
from numbias.core.trie import DEFAULT_PRUNE
from numbias.data.dataset import SUFFIXES, Dataset
from numbias.data.tasks import Task, TaskConfig
from numbias.models.catalog import DEFAULT_JUDGE, trained_stage
from numbias.util.errors import NumbiasError, first_line, readable_file, validation_message

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
        if (
            isinstance(data, dict)
            and "backend" not in data
            and isinstance(data.get("model"), str)
            and trained_stage(data["model"]) is not None
        ):
            return {**data, "backend": "transformers"}
        return data

    @field_validator("model", "backend", "label")
    @classmethod
    def _not_empty(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("is empty")
        return value

    @field_validator("instance")
    @classmethod
    def _a_backend(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, Backend):
            raise ValueError(
                f"instance must be a backend object (the numbias.Backend protocol), got {type(value).__name__}"
            )
        return value

    @property
    def name(self) -> str:
        return self.label or self.model


def judge_as_data(judge: JudgeConfig, source: str) -> tuple[JudgeConfig, dict[str, Any]]:
    """A judge read back from a file (a saved judge, a results folder) taken as data: its
    backend must be registered (a ``module:attr`` path would import code), and its routing
    options (where requests go, which secret is read) are taken out and returned apart,
    to be shown, never used."""
    if not registered(judge.backend):
        raise NumbiasError(
            f"{source}: judge {judge.name!r} names backend {judge.backend!r}, which is not a "
            "registered backend; a file read back may name only registered ones (built-in, "
            "numbias.register_backend, or a numbias.backends entry point), never module:attr code"
        )
    routing = {k: v for k, v in judge.options.items() if is_routing(k)}
    options = {k: v for k, v in judge.options.items() if not is_routing(k)}
    return judge.model_copy(update={"options": options}), routing


def use_server(judges: Sequence[JudgeConfig], base_url: str | None, api_key_env: str | None) -> None:
    """The user's ``--base-url`` and ``--api-key-env`` set on every judge whose backend
    talks to a server (takes ``base_url``); given with no such judge, they are an error."""
    given = {k: v for k, v in (("base_url", base_url), ("api_key_env", api_key_env)) if v is not None}
    flags = ", ".join(f"--{k.replace('_', '-')}" for k in given)
    if not given:
        return
    if empty := [k for k, v in given.items() if not v.strip()]:
        raise NumbiasError(f"--{empty[0].replace('_', '-')} is empty: give a value or leave the option out")
    served = [j for j in judges if j.instance is None and takes_option(j.backend, "base_url")]
    if not served:
        raise NumbiasError(f"{flags} apply to judges on a server (backend openai), and no judge here is one")
    for judge in served:
        judge.options.update(given)


def _judge_ref(value: Any) -> Any:
    if isinstance(value, str):
        return {"model": value}
    if isinstance(value, (dict, JudgeConfig)):
        return value
    if isinstance(value, Backend):
        return {"model": str(value.identity.get("model", type(value).__name__)), "backend": "object", "instance": value}
    return value


def task_ref(value: Any) -> Any:
    """A task in any form a study takes, as what :class:`TaskConfig` validates."""
    if isinstance(value, str):
        return {"file": value} if Path(value).suffix.lower() in SUFFIXES else {"name": value}
    if isinstance(value, Task):
        return {"task": value}
    if isinstance(value, Dataset):
        raise ValueError(f"a Dataset needs a template: give {{'dataset': data, 'template': '...'}} for {value.name!r}")
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


def _rule_names(v: Any) -> Any:
    """Rules checked and written one way (``quantile:.25`` is ``quantile:0.25``); the
    unknown ones named together with what is known."""
    if not isinstance(v, list):
        return v
    if bad := [x for x in v if not isinstance(x, str) or x.partition(":")[0].strip() not in (*RULES, *RISK_AVERSE)]:
        raise ValueError(f"unknown rule(s) {bad}; known: {KNOWN_RULES}")
    try:
        return [check_rule(x) for x in v]
    except NumbiasError as exc:
        raise ValueError(str(exc)) from None


def _scale_specs(v: Any) -> Any:
    """Scales as their one spelling: a string (``0-9``, ``words:poor,fair,good``) or a
    mapping ``{labels: [...], values: [...]}``."""
    return [str(ScoreScale.parse(s)) for s in v] if isinstance(v, list) else v


def once_each(what: str) -> AfterValidator:
    """A list validator: an entry given twice is an error (its rows would collide)."""

    def check(v: list[str]) -> list[str]:
        if twice := [x for k, x in enumerate(v) if x in v[:k]]:
            raise ValueError(f"{what} {twice[0]} is given twice")
        return v

    return AfterValidator(check)


RuleList = Annotated[list[Rule], BeforeValidator(_rule_names), once_each("rule")]
Mode = Literal["exact", "sampled"]
"""How a study reads a judge: its exact distributions, or the paper's sampled answers."""
MODES: tuple[Mode, ...] = get_args(Mode)
DEFAULT_RULES: tuple[Rule, ...] = ("greedy", "expected", "protocol")
DEFAULT_MODES: tuple[Mode, ...] = ("exact",)
ScaleList = Annotated[list[str], BeforeValidator(_scale_specs), once_each("scale")]
"""Scales (``LO-HI``, ``reversed:LO-HI``, ``letters:A-E``, ``words:...`` or a mapping of
labels and values), checked and written canonically, each once."""


def _named_folder(v: str) -> str:
    if not v.strip():
        raise ValueError("is empty; name a results folder")
    return v


Folder = Annotated[str, AfterValidator(_named_folder)]
"""A results folder: an empty name would be the working folder, with the user's files."""


YAML_MAX_VALUES = 100_000
"""The most values a YAML file may hold once its aliases are expanded: anchors that
share a judge between pairs stay usable, a kilobyte of nested aliases that would
expand to gigabytes is refused before anything is built."""


def _expanded(node: yaml.Node, memo: dict[int, int]) -> int:
    """How many values ``node`` holds with every alias written out (capped just past
    the limit; a node met again while it is counted, a recursive alias, counts as too many)."""
    if id(node) in memo:
        return memo[id(node)]
    memo[id(node)] = YAML_MAX_VALUES + 1
    if isinstance(node, yaml.SequenceNode):
        children: list[yaml.Node] = list(node.value)
    elif isinstance(node, yaml.MappingNode):
        children = [part for pair in node.value for part in pair]
    else:
        children = []
    size = 1
    for child in children:
        size += _expanded(child, memo)
        if size > YAML_MAX_VALUES:
            break
    memo[id(node)] = min(size, YAML_MAX_VALUES + 1)
    return memo[id(node)]


class _StrictLoader(yaml.SafeLoader):
    """YAML as plain data: aliases only while the expanded file stays small (a kilobyte
    of nested aliases expands to gigabytes) and no key given twice (YAML keeps the last
    one silently)."""

    def compose_document(self) -> Any:
        node = super().compose_document()
        if node is not None and _expanded(node, {}) > YAML_MAX_VALUES:
            raise yaml.MarkedYAMLError(
                None,
                None,
                f"its aliases (*name) expand to more than {YAML_MAX_VALUES:,} values; write the values out",
                node.start_mark,
            )
        return node

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) or key is None:
                if key in seen:
                    raise yaml.MarkedYAMLError(None, None, f"key {key!r} is given twice", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> Any:
    """YAML text as plain data, read by the loader every YAML numbias reads goes through
    (aliases only within a size cap, no repeated keys, no Python objects)."""
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass


def read_yaml(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """A config file as a mapping; every reading problem is a one-line error."""
    path = readable_file(path, what)
    try:
        data = load_yaml(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or first_line(exc)
        raise NumbiasError(f"{what} {path} is not valid YAML{where}: {problem}") from None
    except (UnicodeDecodeError, OSError) as exc:
        raise NumbiasError(f"{what} {path} is unreadable: {first_line(exc)}") from None
    if not isinstance(data, dict):
        raise NumbiasError(f"{what} {path} must hold a mapping of settings")
    return data


def validate_config(cls: type[ModelT], data: dict[str, Any], source: str) -> ModelT:
    """Validate a config mapping; the first problem becomes a one-line error."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        message = validation_message(exc)
        if message.startswith("unknown key "):
            message = message.replace("unknown key", "unknown config key", 1)
        raise NumbiasError(f"{source}: {message}") from None
    except UnicodeError as exc:  # a YAML escape can spell a lone surrogate, which no path or text takes
        raise NumbiasError(f"{source}: holds text that is not valid Unicode ({first_line(exc)})") from None


class Settings(BaseModel):
    """A schema whose integer fields take no booleans: pydantic reads ``true`` as 1, so
    a YAML ``n: true`` or ``dev: true`` would run silently with 1."""

    @model_validator(mode="before")
    @classmethod
    def _no_boolean_integers(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name, field in cls.model_fields.items():
                if isinstance(data.get(name), bool) and field.annotation in (int, int | None):
                    raise ValueError(f"{name}: an integer is needed, got {str(data[name]).lower()}")
        return data


class SamplingConfig(Settings):
    """The paper's protocol: n answers at temperature T, first integer, clipped, averaged."""

    model_config = ConfigDict(extra="forbid")
    n: int = Field(10, ge=1)
    temperature: float = Field(PROTOCOL_TEMPERATURE, ge=0)
    max_tokens: int = Field(5, ge=1)
    seed: int = 0

    @property
    def label(self) -> str:
        return f"sampled(n={self.n},T={self.temperature:g})"


class RunConfig(Settings):
    """A study. Strings are shorthands: a judge name/path, a task name or data file.

    >>> config = RunConfig.parse({"judges": ["smollm2-135m-instruct"], "tasks": ["vader"], "scales": ["1..5"]})
    >>> config.judges[0].backend, config.tasks[0].name, config.scales, config.rules
    ('llama.cpp', 'vader', ['1-5'], ['greedy', 'expected', 'protocol'])
    >>> RunConfig.parse({"rules": ["vibes"]})
    Traceback (most recent call last):
    numbias.util.errors.NumbiasError: config: rules: unknown rule(s) ['vibes']; known: greedy, ...
    """

    model_config = ConfigDict(extra="forbid")
    judges: JudgeList = Field(
        default_factory=lambda: [JudgeConfig(model=DEFAULT_JUDGE, options={"prune": DEFAULT_PRUNE})]
    )
    tasks: TaskList = Field(default_factory=lambda: [TaskConfig(name="vader")])
    scales: ScaleList = Field(default_factory=lambda: [PAPER_SCALE, "1-5", "1-10"])
    rules: RuleList = Field(default_factory=lambda: list(DEFAULT_RULES))
    modes: list[Mode] = Field(default_factory=lambda: list(DEFAULT_MODES))
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    out: Folder = "numbias-results"
    store: str | None = None
    seed: int = 0
    bootstrap: int = 1000
    workers: int | None = Field(None, ge=1)
    """Processes a judge's missing items are sharded over (None: one per core for a CPU
    llama.cpp judge, at most 4, each with its share of the threads; 1: one process).
    The results do not depend on it."""

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
