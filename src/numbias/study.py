"""The numerical-bias study: judges × tasks × scales × rules, stored and resumable.

Data flows one way: task → prompts → backend → store → metrics → results/report."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar

import numpy as np
import pandas as pd
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

from numbias.backends import Backend, create_backend, describe_backend
from numbias.backends.base import takes_option
from numbias.data import Dataset
from numbias.distribution import ScoreDistribution, stack
from numbias.errors import NumbiasError, first_line
from numbias.metrics import RULES, evaluate, item_scores
from numbias.models import DEFAULT_JUDGE
from numbias.prompt import Prompt, PromptTemplate
from numbias.sampling import sampled_distribution
from numbias.scale import ScoreScale
from numbias.store import Store, item_slot
from numbias.tasks import Task, get_task


ModelT = TypeVar("ModelT", bound=BaseModel)


class JudgeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str
    backend: str = "llama.cpp"
    label: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.label or self.model


class TaskConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    path: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    template: str | None = None
    answer_prefix: str | None = None
    label: str | None = None


JudgeRef = Annotated[JudgeConfig, BeforeValidator(lambda v: {"model": v} if isinstance(v, str) else v)]
"""A judge given as a name/path or as a full mapping."""
TaskRef = Annotated[TaskConfig, BeforeValidator(lambda v: {"name": v} if isinstance(v, str) else v)]
"""A task given as a name or as a full mapping."""
JudgeList = list[JudgeRef]
TaskList = list[TaskRef]


def one_of(what: str, known: Sequence[str]) -> AfterValidator:
    """A list validator: every entry must be one of ``known``."""

    def check(v: list[str]) -> list[str]:
        bad = [x for x in v if x not in known]
        if bad:
            raise ValueError(f"unknown {what}(s) {bad}; known: {', '.join(known)}")
        return v

    return AfterValidator(check)


RuleList = Annotated[list[str], one_of("rule", RULES)]
ScaleList = Annotated[list[str], AfterValidator(lambda v: [str(ScoreScale.parse(s)) for s in v])]
"""Scales written ``LO-HI``, checked and written canonically."""


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A config file as a mapping; every reading problem is a one-line error."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise NumbiasError(f"config file {path} does not exist") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise NumbiasError(f"config file {path} is not readable YAML: {first_line(exc)}") from None
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
    temperature: float = Field(0.7, ge=0)
    max_tokens: int = Field(5, ge=1)
    seed: int = 0

    @property
    def label(self) -> str:
        return f"sampled(n={self.n},T={self.temperature:g})"


class RunConfig(BaseModel):
    """A study. Strings are shorthands: a judge name/path, a task name."""

    model_config = ConfigDict(extra="forbid")
    judges: JudgeList = Field(default_factory=lambda: [JudgeConfig(model=DEFAULT_JUDGE,
                                                                           options={"prune": DEFAULT_PRUNE})])
    tasks: TaskList = Field(default_factory=lambda: [TaskConfig(name="vader")])
    scales: ScaleList = Field(default_factory=lambda: ["0-9", "1-5", "1-10"])
    rules: RuleList = Field(default_factory=lambda: ["greedy", "expected", "protocol"])
    modes: list[str] = Field(default_factory=lambda: ["exact"])
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    out: str = "numbias-results"
    store: str | None = None
    seed: int = 0
    bootstrap: int = 1000

    @field_validator("modes")
    @classmethod
    def _modes(cls, v: list[str]) -> list[str]:
        bad = [m for m in v if m not in ("exact", "sampled")]
        if bad or not v:
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


@dataclass
class ScoredSet:
    """The distributions of one judge on one task at one scale."""

    judge: str
    task: str
    scale: ScoreScale
    data: Dataset
    distributions: list[ScoreDistribution]
    mode: str = "exact"
    protocol_temperature: float = 1.0
    """Exact sets score the ``protocol`` rule at the protocol's sampling temperature."""

    def at(self, temperature: float) -> list[ScoreDistribution]:
        """The exact distributions re-read at ``temperature`` (no model call)."""
        return [d.at(temperature) for d in self.distributions]

    def scores(self, rule: str) -> np.ndarray:
        dists = self.distributions
        if rule == "protocol" and self.mode == "exact":
            try:
                dists = self.at(self.protocol_temperature)
            except NumbiasError as exc:
                raise NumbiasError(f"judge {self.judge}: the protocol rule reads distributions at the sampling "
                                   f"temperature, which this backend did not provide ({exc}); use rules "
                                   "greedy/expected/median or mode 'sampled'") from None
        probs, rest = stack(dists)
        return item_scores(probs, rest, self.scale, rule)


@dataclass
class StudyResults:
    config: RunConfig
    sets: list[ScoredSet]
    summary: pd.DataFrame
    items: pd.DataFrame
    extra: dict[str, Any] = field(default_factory=dict)

    def write(self, out: str | Path | None = None) -> Path:
        from numbias.report import write_report

        folder = Path(out or self.config.out)
        folder.mkdir(parents=True, exist_ok=True)
        self.items.to_csv(folder / "items.csv", index=False)
        records = json.loads(self.summary.to_json(orient="records"))
        (folder / "summary.json").write_text(json.dumps(records, indent=2))
        (folder / "config.yaml").write_text(yaml.safe_dump(self.config.model_dump(mode="json"), sort_keys=False))
        write_report(self, folder / "report.html")
        return folder


Progress = Callable[[str, int], Callable[[int], None]]
"""``progress(description, total)`` returns an ``advance(n)`` callback."""


@contextmanager
def _no_progress(_: str, __: int) -> Iterator[Callable[[int], None]]:
    yield lambda n: None


class Judge:
    """A configured judge whose backend is loaded only when something is missing."""

    def __init__(self, config: JudgeConfig) -> None:
        self.config = config
        self.identity, self._backend = describe_backend(config.backend, config.model, config.options)
        self.chat = bool(self.identity["chat"])

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            options = dict(self.config.options)
            if takes_option(self.config.backend, "chat"):
                options["chat"] = self.chat
            self._backend = create_backend(self.config.backend, model=self.config.model, **options)
        return self._backend


DEFAULT_PRUNE = 1e-4
"""The default study skips trie branches below this path probability (reported per
item as ``pruned`` mass); pass ``prune: 0`` in a judge's options for the full trie."""


def setting_identity(judge: Judge, template: PromptTemplate, scale: ScoreScale, mode: dict[str, Any]) -> dict:
    return {**judge.identity, "template": template.text, "system": template.system,
            "answer_prefix": template.prefix(judge.chat), "scale": str(scale), **mode}


def collect(
    judge: Judge,
    task_name: str,
    data: Dataset,
    template: PromptTemplate,
    scale: ScoreScale,
    store: Store,
    *,
    progress: Progress = _no_progress,
    mode: dict[str, Any] | None = None,
    scorer: Callable[[Backend, list[Prompt]], Iterator[ScoreDistribution]] | None = None,
) -> ScoredSet:
    """Distributions for every item, from the store where present, else the model;
    each new item is stored as soon as it is scored."""
    mode = mode or {"mode": "exact"}
    key = store.register(setting_identity(judge, template, scale, mode))
    ids = data.ids
    prompts = [template.fill(record, scale, chat=judge.chat) for record in data.records()]
    slots = [item_slot(item_id, prompt) for item_id, prompt in zip(ids, prompts)]
    done = store.done(key, slots)
    todo = [i for i, slot in enumerate(slots) if slot not in done]
    if todo:
        backend = judge.backend
        run = scorer or (lambda b, ps: b.score(ps, scale))
        with progress(f"{judge.config.name} · {task_name} · {scale}", len(todo)) as advance:
            finished = 0
            try:
                for dist in run(backend, [prompts[i] for i in todo]):
                    store.put(key, slots[todo[finished]], dist, dist.meta.get("n_tokens"))
                    finished += 1
                    advance(1)
            except NumbiasError as exc:
                raise NumbiasError(f"item {ids[todo[finished]]!r} of {task_name}: {exc}") from None
    stored = store.get(key, slots)
    label = "exact" if mode["mode"] == "exact" else str(mode.get("label", "sampled"))
    return ScoredSet(judge.config.name, task_name, scale, data, [stored[s] for s in slots], label)


def sampling_mode(sampling: SamplingConfig, scale: ScoreScale) -> tuple[dict[str, Any], Callable]:
    """Store identity and scorer for the paper's sampling protocol."""
    mode = {"mode": "sampled", "label": sampling.label, **sampling.model_dump()}

    def scorer(backend: Backend, prompts: list[Prompt]) -> Iterator[ScoreDistribution]:
        for texts in backend.sample(prompts, n=sampling.n, temperature=sampling.temperature,
                                    max_tokens=sampling.max_tokens, seed=sampling.seed):
            yield sampled_distribution(texts, scale, sampling.temperature)

    return mode, scorer


def run(config: RunConfig | dict[str, Any] | None = None, *, progress: Progress = _no_progress) -> StudyResults:
    """Run (or resume) a study and compute its metrics."""
    if not isinstance(config, RunConfig):
        config = RunConfig.parse(config or {})
    tasks = [(tc, get_task(tc.name)) for tc in config.tasks]
    datasets = [(tc, task, task.load(tc.path, **tc.options)) for tc, task in tasks]
    judges = [Judge(jc) for jc in config.judges]
    scales = [ScoreScale.parse(s) for s in config.scales]
    store = Store(config.store_path)
    sets: list[ScoredSet] = []
    try:
        for judge in judges:
            for tc, task, data in datasets:
                template = task_template(task, tc)
                template.check(set(data.fields))
                for scale in scales:
                    name = tc.label or data.name
                    if "exact" in config.modes:
                        exact = collect(judge, name, data, template, scale, store, progress=progress)
                        exact.protocol_temperature = config.sampling.temperature
                        sets.append(exact)
                    if "sampled" in config.modes:
                        mode, scorer = sampling_mode(config.sampling, scale)
                        sets.append(collect(judge, name, data, template, scale, store, progress=progress,
                                            mode=mode, scorer=scorer))
    finally:
        store.close()
    return analyse(config, sets)


def task_template(task: Task, tc: TaskConfig) -> PromptTemplate:
    template = PromptTemplate(
        text=tc.template or task.template.text,
        answer_prefix=tc.answer_prefix if tc.answer_prefix is not None else task.template.answer_prefix,
        system=task.template.system,
    )
    return template


def analyse(config: RunConfig, sets: list[ScoredSet]) -> StudyResults:
    rows, items = [], []
    for s in sets:
        data = s.data
        ratings = data.frame["ratings"].tolist() if data.has_ratings else None
        per_item = pd.DataFrame({"judge": s.judge, "task": s.task, "scale": str(s.scale), "mode": s.mode,
                                 "id": data.ids, "human": data.human})
        probs, rest = stack(s.distributions)
        per_item["numeric_mass"] = probs.sum(axis=1)
        per_item["out_of_scale"] = rest[:, 0] + rest[:, 1]
        per_item["other"] = rest[:, 2]
        rules = config.rules if s.mode == "exact" else ["protocol"]
        for rule in rules:
            scores = s.scores(rule)
            label = rule if s.mode == "exact" else s.mode
            per_item[label] = scores
            m = evaluate(scores, data.human, data.human_range, s.scale, ratings=ratings,
                         n_boot=config.bootstrap, seed=config.seed)
            rows.append({"judge": s.judge, "task": s.task, "scale": str(s.scale), "rule": label, **m.flat()})
        items.append(per_item)
    return StudyResults(config, sets, pd.DataFrame(rows), pd.concat(items, ignore_index=True))
