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
from numbias.data import SUFFIXES, Dataset
from numbias.distribution import ScoreDistribution, stack
from numbias.errors import NumbiasError, first_line
from numbias.metrics import RULES, evaluate, item_scores
from numbias.models import DEFAULT_JUDGE
from numbias.output import Writer, text, write_all
from numbias.prompt import Prompt, PromptTemplate, fit_field
from numbias.sampling import sampled_distribution
from numbias.scale import ScoreScale
from numbias.store import Store, item_slot
from numbias.tasks import PreparedTask, Task, TaskConfig, prepare


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
    truncate: str | None = None
    """The field cut to fit the context, if any (``cut`` per item in ``meta``)."""

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
    notes: list[str] = field(default_factory=list)
    """What the outputs must say about the data (e.g. a human range taken from the data)."""

    def write(self, out: str | Path | None = None, extra: dict[str, Writer] | None = None) -> Path:
        """The result files (and ``extra`` ones), all replaced together."""
        from numbias.report import write_report

        records = json.loads(self.summary.to_json(orient="records"))
        config = yaml.safe_dump(self.config.model_dump(mode="json", exclude_none=True), sort_keys=False)
        return write_all(out or self.config.out, {
            "items.csv": lambda p: self.items.to_csv(p, index=False),
            "summary.json": text(json.dumps(records, indent=2)),
            "config.yaml": text(config),
            **(extra or {}),
            "report.html": lambda p: write_report(self, p),
        })


Progress = Callable[[str, int], Callable[[int], None]]
"""``progress(description, total)`` returns an ``advance(n)`` callback."""


@contextmanager
def no_progress(_: str, __: int) -> Iterator[Callable[[int], None]]:
    yield lambda n: None


class Judge:
    """A configured judge whose backend is loaded only when something is missing."""

    def __init__(self, config: JudgeConfig) -> None:
        self.config = config
        if config.instance is not None:
            self._backend: Backend | None = config.instance
            self.identity = {"chat": bool(getattr(config.instance, "chat", True)), **config.instance.identity}
        else:
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
    progress: Progress = no_progress,
    mode: dict[str, Any] | None = None,
    scorer: Callable[[Backend, list[Prompt]], Iterator[ScoreDistribution]] | None = None,
    truncate: str | None = None,
) -> ScoredSet:
    """Distributions for every item, from the store where present, else the model;
    each new item is stored as soon as it is scored. Items are keyed by their full
    prompt; one over the judge's context is an error, or with ``truncate`` has that
    field cut to fit (``meta["cut"]``: characters removed)."""
    mode = mode or {"mode": "exact"}
    # A cut depends on the context the judge was given, which its identity need not hold.
    cut = {"truncate": truncate, "judge_options": judge.config.options} if truncate else {}
    key = store.register({**setting_identity(judge, template, scale, mode), **cut})
    ids, records = data.ids, data.records()
    prompts = [template.fill(record, scale, chat=judge.chat) for record in records]
    slots = [item_slot(item_id, prompt) for item_id, prompt in zip(ids, prompts)]
    done = store.done(key, slots)
    todo = [i for i, slot in enumerate(slots) if slot not in done]
    if todo:
        backend = judge.backend
        reserve = int(mode.get("max_tokens", len(str(scale.hi)) + 1)) + 1
        asked, cuts = fit_context(backend, template, scale, judge.chat, [records[i] for i in todo],
                                  [prompts[i] for i in todo], [ids[i] for i in todo], truncate, reserve, task_name)
        run = scorer or (lambda b, ps: b.score(ps, scale))
        with progress(f"{judge.config.name} · {task_name} · {scale}", len(todo)) as advance:
            finished = 0
            try:
                for dist in run(backend, asked):
                    if cuts[finished]:
                        dist.meta["cut"] = cuts[finished]
                    store.put(key, slots[todo[finished]], dist, dist.meta.get("n_tokens"))
                    finished += 1
                    advance(1)
            except NumbiasError as exc:
                raise NumbiasError(f"item {ids[todo[finished]]!r} of {task_name}: {exc}") from None
    stored = store.get(key, slots)
    label = "exact" if mode["mode"] == "exact" else str(mode.get("label", "sampled"))
    return ScoredSet(judge.config.name, task_name, scale, data, [stored[s] for s in slots], label,
                     truncate=truncate)


def fit_context(backend: Backend, template: PromptTemplate, scale: ScoreScale, chat: bool,
                records: list[dict[str, Any]], prompts: list[Prompt], ids: list[str], truncate: str | None,
                reserve: int, task_name: str) -> tuple[list[Prompt], list[int]]:
    """Prompts that fit the judge's context with ``reserve`` tokens left for the answer,
    and the characters cut from each; checked before any item is scored."""
    budget = backend.context_length - reserve
    counts = [backend.count_tokens(p) for p in prompts]
    over = [i for i, c in enumerate(counts) if c > budget]
    if not over:
        return prompts, [0] * len(prompts)
    longest = max(over, key=counts.__getitem__)
    where = (f"{len(over)} item(s) of {task_name} exceed the judge's context of {backend.context_length} tokens "
             f"(longest: item {ids[longest]!r}, {counts[longest]} tokens)")
    if truncate is None:
        raise NumbiasError(f"{where}; set truncate: FIELD (--truncate FIELD) to shorten a field to fit")
    asked, cuts = list(prompts), [0] * len(prompts)
    for i in over:
        fitted = fit_field(template, records[i], scale, chat=chat, field=truncate, count=backend.count_tokens,
                           budget=budget)
        if fitted is None:
            raise NumbiasError(f"{where}; item {ids[i]!r} does not fit even with {truncate!r} emptied")
        asked[i], cuts[i] = fitted
    return asked, cuts


def sampling_mode(sampling: SamplingConfig, scale: ScoreScale) -> tuple[dict[str, Any], Callable]:
    """Store identity and scorer for the paper's sampling protocol."""
    mode = {"mode": "sampled", "label": sampling.label, **sampling.model_dump()}

    def scorer(backend: Backend, prompts: list[Prompt]) -> Iterator[ScoreDistribution]:
        for texts in backend.sample(prompts, n=sampling.n, temperature=sampling.temperature,
                                    max_tokens=sampling.max_tokens, seed=sampling.seed):
            yield sampled_distribution(texts, scale, sampling.temperature)

    return mode, scorer


def run(config: RunConfig | dict[str, Any] | None = None, *, progress: Progress = no_progress) -> StudyResults:
    """Run (or resume) a study and compute its metrics."""
    if not isinstance(config, RunConfig):
        config = RunConfig.parse(config or {})
    tasks = prepare_tasks(config.tasks, labelled=True)
    judges = [Judge(jc) for jc in config.judges]
    scales = [ScoreScale.parse(s) for s in config.scales]
    sets: list[ScoredSet] = []
    with open_store(config.store_path) as store:
        for judge in judges:
            for task in tasks:
                for scale in scales:
                    sets += collect_modes(judge, task, scale, store, config, progress)
    return analyse(config, sets, notes=task_notes(tasks))


def collect_modes(judge: Judge, task: PreparedTask, scale: ScoreScale, store: Store, config: RunConfig,
                  progress: Progress) -> list[ScoredSet]:
    """One judge × task × scale in every mode the study asks for."""
    sets = []
    if "exact" in config.modes:
        exact = collect(judge, task.label, task.data, task.template, scale, store, progress=progress,
                        truncate=task.truncate)
        exact.protocol_temperature = config.sampling.temperature
        sets.append(exact)
    if "sampled" in config.modes:
        mode, scorer = sampling_mode(config.sampling, scale)
        sets.append(collect(judge, task.label, task.data, task.template, scale, store, progress=progress,
                            mode=mode, scorer=scorer, truncate=task.truncate))
    return sets


def prepare_tasks(configs: Sequence[TaskConfig], *, labelled: bool) -> list[PreparedTask]:
    """Every task loaded before any model: bad data fails first. A study that measures
    accuracy needs human scores; labels must tell tasks apart."""
    tasks = [prepare(tc) for tc in configs]
    if labelled:
        for task in tasks:
            if not task.data.labelled:
                raise NumbiasError(f"{task.data.source or task.label}: no human scores (give the human column with "
                                   "--human / human:); to score unlabelled items use numbias score")
    labels = [t.label for t in tasks]
    if dupes := sorted({x for x in labels if labels.count(x) > 1}):
        raise NumbiasError(f"two tasks share the label {dupes[0]!r}: give each a distinct label")
    return tasks


def task_notes(tasks: Sequence[PreparedTask]) -> list[str]:
    return [f"{t.label}: {note}" for t in tasks for note in t.data.notes]


@contextmanager
def open_store(path: str | Path) -> Iterator[Store]:
    store = Store(path)
    try:
        yield store
    finally:
        store.close()


def analyse(config: RunConfig, sets: list[ScoredSet], notes: Sequence[str] = ()) -> StudyResults:
    rows, items = [], []
    for s in sets:
        data = s.data
        ratings = data.frame["ratings"].tolist() if data.has_ratings else None
        per_item = item_frame(s)
        rules = config.rules if s.mode == "exact" else ["protocol"]
        for rule in rules:
            scores = s.scores(rule)
            label = rule if s.mode == "exact" else s.mode
            per_item[label] = scores
            m = evaluate(scores, data.human, data.human_range, s.scale, ratings=ratings, groups=data.groups,
                         n_boot=config.bootstrap, seed=config.seed)
            rows.append({"judge": s.judge, "task": s.task, "scale": str(s.scale), "rule": label, **m.flat()})
        items.append(per_item)
    if not rows:
        raise NumbiasError("the study has nothing to score: give at least one judge, task, scale and rule")
    return StudyResults(config, sets, pd.DataFrame(rows), pd.concat(items, ignore_index=True), notes=list(notes))


def item_frame(s: ScoredSet) -> pd.DataFrame:
    """One row per item of a scored set: ids, human score, group, masses, characters cut."""
    data = s.data
    frame = pd.DataFrame({"judge": s.judge, "task": s.task, "scale": str(s.scale), "mode": s.mode,
                          "id": data.ids, "human": data.human})
    if data.groups is not None:
        frame["group"] = data.groups
    probs, rest = stack(s.distributions)
    frame["numeric_mass"] = probs.sum(axis=1)
    frame["out_of_scale"] = rest[:, 0] + rest[:, 1]
    frame["other"] = rest[:, 2]
    if s.truncate:
        frame["cut"] = [int(d.meta.get("cut", 0)) for d in s.distributions]
    return frame
