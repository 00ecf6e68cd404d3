"""Built-in tasks: a loader, a prompt template and the human scale.

Embedded data (``vader``, ``simlex``) ships in registry packages; the benchmark sets
(``mtqe``, ``lcp``, ``stsb``, ``gecqe``) are read from a path to their published files."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from numbias.data.dataset import SUFFIXES, Dataset, load_file, make_dataset, parse_ratings, read_table, sample_rows
from numbias.data.prompt import NUMBER_ASK, SCALE_FIELDS, PromptTemplate
from numbias.util.errors import NumbiasError, first_line, readable_file
from numbias.util.options import check_options
from numbias.util.plugins import Registry, origin

Loader = Callable[..., Dataset]
ENTRY_POINTS = "numbias.tasks"
"""Installed packages add tasks under this entry-point group: each entry point names a
:class:`Task`, or a callable returning one or a list of them."""


@dataclass(frozen=True)
class Task:
    """What to judge, how to ask, and what the human scores mean.

    >>> import pandas as pd
    >>> from numbias import PromptTemplate, Task
    >>> from numbias.data.dataset import make_dataset
    >>> def load(n=None):
    ...     frame = pd.DataFrame({"id": ["a", "b", "c"], "word": ["bad", "fine", "great"], "human": [1, 3, 5]})
    ...     return make_dataset("words", frame.head(n), fields=["word"], human_range=(1, 5))
    >>> task = Task("words", "Three words", PromptTemplate("Rate the word {word} from {lo} to {hi}."),
    ...             (1.0, 5.0), 5, "this example", load, needs_path=False)
    >>> task.fields, task.load(n=2).ids
    (['word'], ['a', 'b'])
    >>> task.load(size=2)
    Traceback (most recent call last):
    ...
    numbias.util.errors.NumbiasError: task 'words' has no option(s) size (options: n)
    """

    name: str
    description: str
    template: PromptTemplate
    human_range: tuple[float, float]
    human_levels: int | None
    """Distinct values a single human rating takes (5 for a 5-point Likert), if few."""
    source: str
    loader: Loader
    needs_path: bool
    folder: str | None = None
    """The folder name its published data usually has (for ``numbias tasks --data-root``)."""

    @property
    def fields(self) -> list[str]:
        return sorted(self.template.fields - SCALE_FIELDS)

    def load(self, path: str | Path | None = None, **options: Any) -> Dataset:
        if self.needs_path and path is None:
            raise NumbiasError(f"task {self.name!r} needs the path to its data ({self.source}): give --data PATH")
        if not self.needs_path and path is not None:
            raise NumbiasError(
                f"task {self.name!r} reads no data file (its data is {self.source}); "
                f"drop --data {path}, or give the file alone to judge it as a file task"
            )
        options = check_options(f"task {self.name!r}", self.loader, options, skip=1 if self.needs_path else 0)
        data = self.loader(path, **options) if self.needs_path else self.loader(**options)
        self.template.check(set(data.fields))
        return data

    def data_status(self, root: Path | None) -> str:
        """Whether this task's data can be read here: embedded data, or under ``root``."""
        if not self.needs_path:
            try:
                self.loader()
            except Exception as exc:  # a plug-in's loader may fail in any way; the listing goes on
                return f"missing: {first_line(exc)}"
            return "installed"
        if root is None:
            return "give --data PATH (or --data-root DIR)"
        path = root / (self.folder or self.name)
        try:
            return f"present: {len(self.load(path))} items in {path}"
        except NumbiasError as exc:
            return f"missing: {exc}"


def _package_path(module: str, relative: str, install: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise NumbiasError(f"this task needs the {module} package: {install}")
    return Path(list(spec.submodule_search_locations)[0]) / relative


def load_vader(n: int | None = 300, seed: int = 0, skip: int = 0) -> Dataset:
    path = _package_path("vaderSentiment", "vader_lexicon.txt", "pip install vaderSentiment==3.3.2")
    rows = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 4 and parts[0].isalpha():
                rows.append(
                    {"id": parts[0], "word": parts[0], "human": float(parts[1]), "ratings": parse_ratings(parts[3])}
                )
    return make_dataset(
        "vader", sample_rows(pd.DataFrame(rows), n, seed, skip), fields=["word"], human_range=(-4.0, 4.0)
    )


def load_simlex(n: int | None = None, seed: int = 0, skip: int = 0) -> Dataset:
    path = _package_path("gensim", "test/test_data/simlex999.txt", "pip install gensim")
    frame = pd.read_csv(path, sep="\t", comment="#", header=None, names=["word1", "word2", "human"])
    frame["id"] = frame["word1"] + "|" + frame["word2"]
    return make_dataset("simlex", sample_rows(frame, n, seed, skip), fields=["word1", "word2"], human_range=(0.0, 10.0))


def load_mtqe(
    path: str | Path,
    pair: str = "en-de",
    split: str = "test20",
    target: str = "mean",
    n: int | None = None,
    seed: int = 0,
    skip: int = 0,
) -> Dataset:
    if target not in {"mean", "z_mean"}:
        raise NumbiasError(f"mtqe target must be 'mean' or 'z_mean', got {target!r}")
    file = Path(path) / pair / f"{split}.tsv"
    if not file.is_file():
        raise NumbiasError(f"MLQE-PE file {file} does not exist (pair {pair!r}, split {split!r})")
    frame = read_table(file)
    if "index" not in frame and "segid" in frame:  # ru-en's files name the row id segid
        frame = frame.rename(columns={"segid": "index"})
    _require(frame, file, ["index", "original", "translation", "scores", target])
    src, tgt = pair.split("-")
    out = pd.DataFrame(
        {
            "id": frame["index"].astype(str),
            "source": frame["original"],
            "translation": frame["translation"],
            "human": frame[target],
            "ratings": frame["scores"].map(parse_ratings),
            "source_lang": _LANGS.get(src, src),
            "target_lang": _LANGS.get(tgt, tgt),
        }
    )
    rng = (0.0, 100.0) if target == "mean" else None
    return make_dataset(
        f"mtqe-{pair}",
        sample_rows(out, n, seed, skip),
        fields=["source", "translation", "source_lang", "target_lang"],
        human_range=rng,
    )


def load_lcp(
    path: str | Path, kind: str = "single", split: str = "test", n: int | None = None, seed: int = 0, skip: int = 0
) -> Dataset:
    file = Path(path) / f"lcp_{kind}_{split}.tsv"
    if not file.is_file():
        raise NumbiasError(f"CompLex file {file} does not exist (kind {kind!r}, split {split!r})")
    frame = read_table(file)
    _require(frame, file, ["id", "sentence", "token", "complexity"])
    out = pd.DataFrame(
        {"id": frame["id"], "sentence": frame["sentence"], "token": frame["token"], "human": frame["complexity"]}
    )
    return make_dataset(
        f"lcp-{kind}", sample_rows(out, n, seed, skip), fields=["sentence", "token"], human_range=(0.0, 1.0)
    )


def load_stsb(path: str | Path, split: str = "test", n: int | None = None, seed: int = 0, skip: int = 0) -> Dataset:
    file = Path(path) if Path(path).is_file() else Path(path) / f"stsb-en-{split}.csv"
    frame = read_table(file, header=False)
    if frame.shape[1] != 3:
        raise NumbiasError(f"STS-B file {file} should have 3 columns (sentence1, sentence2, score)")
    frame.columns = ["sentence1", "sentence2", "human"]
    frame["id"] = np.arange(len(frame)).astype(str)
    return make_dataset(
        "stsb", sample_rows(frame, n, seed, skip), fields=["sentence1", "sentence2"], human_range=(0.0, 5.0)
    )


def load_gecqe(
    path: str | Path, aspect: str = "grammaticality", n: int | None = None, seed: int = 0, skip: int = 0
) -> Dataset:
    """TMU-GFM (five annotators' 0-4 ratings per aspect) or a user CSV with
    ``source``, ``correction`` and ``human`` columns."""
    columns = {"grammaticality": "grammer", "fluency": "fluency", "meaning": "meaning"}
    if aspect not in columns:
        raise NumbiasError(f"gecqe aspect must be one of {', '.join(columns)}, got {aspect!r}")
    file = Path(path) / "tmu-gfm-dataset.csv" if Path(path).is_dir() else Path(path)
    frame = read_table(file)
    if columns[aspect] in frame.columns:
        _require(frame, file, ["source", "output"])
        ratings = frame[columns[aspect]].map(parse_ratings)
        out = pd.DataFrame(
            {
                "id": np.arange(len(frame)).astype(str),
                "source": frame["source"],
                "correction": frame["output"],
                "ratings": ratings,
                "human": ratings.map(lambda r: float(np.mean(r)) if r else np.nan),
            }
        )
        out = out[out["ratings"].map(len) > 0]
        rng: tuple[float, float] | None = (0.0, 4.0)
    else:
        _require(frame, file, ["source", "correction", "human"])
        out = frame.assign(id=frame["id"] if "id" in frame else np.arange(len(frame)).astype(str))
        rng = None
    return make_dataset(
        f"gecqe-{aspect}", sample_rows(out, n, seed, skip), fields=["source", "correction"], human_range=rng
    )


def _require(frame: pd.DataFrame, file: Path, cols: list[str]) -> None:
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise NumbiasError(f"{file}: missing column(s) {', '.join(map(repr, missing))}")


_LANGS = {
    "en": "English",
    "de": "German",
    "zh": "Chinese",
    "et": "Estonian",
    "ne": "Nepali",
    "ro": "Romanian",
    "ru": "Russian",
    "si": "Sinhala",
}

# Instructions come first and the item last, so consecutive prompts share a long
# prefix and the backend re-reads only the item's own tokens.
TASKS: Registry[Task] = Registry(
    "task",
    ENTRY_POINTS,
    of=Task,
    describe=lambda task: origin(task.loader),
    hint=f"; a data file's name must end in {', '.join(SUFFIXES)}",
)
"""Every known task by name: built-in, registered, and (once read) installed."""
for _task in (
    Task(
        "vader",
        "Word sentiment (VADER lexicon, 10 raters, -4..4)",
        PromptTemplate(
            "Rate the feeling an English word carries, from {lo} (extremely negative) through "
            "the middle (neutral) to {hi} (extremely positive). " + NUMBER_ASK + "\nWord: {word}"
        ),
        (-4.0, 4.0),
        9,
        "the vaderSentiment package (vader_lexicon.txt)",
        load_vader,
        False,
    ),
    Task(
        "simlex",
        "Word-pair similarity (SimLex-999, 0..10)",
        PromptTemplate(
            "Rate how similar in meaning two English words are, from {lo} (completely "
            "unrelated) to {hi} (the same meaning). " + NUMBER_ASK + "\nWords: {word1}, {word2}"
        ),
        (0.0, 10.0),
        None,
        "the gensim package (test/test_data/simlex999.txt)",
        load_simlex,
        False,
    ),
    Task(
        "mtqe",
        "MT quality estimation (MLQE-PE direct assessments, 0..100)",
        PromptTemplate(
            "Rate the quality of a machine translation: how well it keeps the meaning of the "
            "source and how naturally it reads, from {lo} (useless) to {hi} (perfect). "
            + NUMBER_ASK
            + "\n{source_lang} source: {source}\n{target_lang} translation: {translation}"
        ),
        (0.0, 100.0),
        None,
        "github.com/sheffieldnlp/mlqe-pe (data/direct-assessments)",
        load_mtqe,
        True,
        "mlqe-pe",
    ),
    Task(
        "lcp",
        "Lexical complexity (CompLex, SemEval-2021 task 1, 0..1)",
        PromptTemplate(
            "Rate how hard a word is to understand in the sentence it appears in, from {lo} "
            "(very easy) to {hi} (very difficult). " + NUMBER_ASK + "\nSentence: {sentence}\nWord: {token}"
        ),
        (0.0, 1.0),
        5,
        "github.com/MMU-TDMLab/CompLex",
        load_lcp,
        True,
        "complex",
    ),
    Task(
        "stsb",
        "Semantic textual similarity (STS benchmark, 0..5)",
        PromptTemplate(
            "Rate how close in meaning two sentences are, from {lo} (unrelated) to {hi} "
            "(equivalent). " + NUMBER_ASK + "\nSentence A: {sentence1}\nSentence B: {sentence2}"
        ),
        (0.0, 5.0),
        6,
        "github.com/PhilipMay/stsb-multi-mt (English originals)",
        load_stsb,
        True,
        "stsb",
    ),
    Task(
        "gecqe",
        "Grammatical error correction quality (TMU-GFM, 0..4)",
        PromptTemplate(
            "A grammatical error correction system rewrote a learner's sentence. Rate how "
            "grammatical the rewritten sentence is, from {lo} (full of errors) to {hi} "
            "(flawless). " + NUMBER_ASK + "\nLearner: {source}\nRewritten: {correction}"
        ),
        (0.0, 4.0),
        5,
        "github.com/tmu-nlp/TMU-GFM-Dataset",
        load_gecqe,
        True,
        "tmu-gfm",
    ),
):
    TASKS.register(_task.name, _task)


def register_task(
    task: Task | None = None, /, *, replace: bool = False, **spec: Any
) -> Task | Callable[[Loader], Loader]:
    """Add a task to the registry, by its name, for YAML and the CLI. Called with a
    :class:`Task`, registers it; called with the Task's fields instead (``name``,
    ``template``, ``human_range``, ...), decorates its loader (``loader(path, **options)``
    when ``needs_path``, else ``loader(**options)``).

    >>> import pandas as pd
    >>> from numbias import all_tasks, register_task
    >>> from numbias.data.dataset import make_dataset
    >>> @register_task(name="words", template="Rate the word {word} from {lo} to {hi}.", human_range=(1, 5))
    ... def load_words(n=None):
    ...     '''Three words rated 1-5.'''
    ...     frame = pd.DataFrame({"id": ["a", "b", "c"], "word": ["bad", "fine", "great"], "human": [1, 3, 5]})
    ...     return make_dataset("words", frame.head(n), fields=["word"], human_range=(1, 5))
    >>> task = all_tasks()["words"]
    >>> task.description, task.human_range, task.fields
    ('Three words rated 1-5.', (1, 5), ['word'])
    >>> task.load(n=2).records()
    [{'word': 'bad'}, {'word': 'fine'}]
    """
    if task is None:
        return _decorator(replace=replace, **spec)
    if not isinstance(task, Task):
        raise NumbiasError(f"register_task takes a numbias Task, got {type(task).__name__}")
    return TASKS.register(task.name, task, replace=replace)


def _decorator(
    name: str,
    *,
    template: str,
    human_range: tuple[float, float],
    description: str = "",
    source: str = "",
    needs_path: bool = False,
    system: str | None = None,
    answer_prefix: str | None = None,
    human_levels: int | None = None,
    replace: bool = False,
) -> Callable[[Loader], Loader]:
    def wrap(loader: Loader) -> Loader:
        register_task(
            Task(
                name,
                description or (loader.__doc__ or name).strip().splitlines()[0],
                PromptTemplate(template, answer_prefix, system),
                (human_range[0], human_range[1]),
                human_levels,
                source or loader.__module__,
                loader,
                needs_path,
            ),
            replace=replace,
        )
        return loader

    return wrap


def all_tasks() -> dict[str, Task]:
    """Every task by name: built-in, registered and installed.

    >>> from numbias import all_tasks
    >>> vader = all_tasks()["vader"]
    >>> vader.human_range, vader.fields, vader.needs_path
    ((-4.0, 4.0), ['word'], False)
    >>> all_tasks()["stsb"].needs_path
    True
    """
    return TASKS.all()


def get_task(name: str) -> Task:
    """A task by name, installed ones read only when it is not known yet."""
    return TASKS.find(name)


HumanRange = Annotated[
    tuple[float, float] | None, BeforeValidator(lambda v: parse_range(v) if isinstance(v, str) else v)
]


def parse_range(text: str, what: str = "human range") -> tuple[float, float]:
    """``LO-HI`` (negative and decimal ends allowed: ``-4-4``, ``0-0.5``) as two numbers."""
    match = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*(?:-|:|,|\.\.)\s*(-?\d+(?:\.\d+)?)\s*", str(text))
    if not match:
        raise NumbiasError(f"{what} {text!r} is not of the form LO-HI (e.g. 1-5)")
    lo, hi = float(match[1]), float(match[2])
    if lo >= hi:
        raise NumbiasError(f"{what} {text}: LO must be below HI")
    return lo, hi


FILE_KEYS = ("human", "human_range", "id", "ratings", "group", "system_column")
"""Keys that say how to read a data file: they apply to file tasks only."""


class TaskConfig(BaseModel):
    """A task in a study: a registered task by ``name`` (its data under ``path``), a data
    ``file`` read with the column keys, or (from Python) a :class:`Task` or
    :class:`Dataset` object. ``template`` is text or ``@path`` to a rubric file.

    >>> from numbias import TaskConfig
    >>> TaskConfig(name="vader", options={"n": 50}).kind
    'registered'
    >>> TaskConfig(file="items.csv", human="stars", template="Rate {review} from {lo} to {hi}.").kind
    'file'
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    name: str | None = None
    file: str | None = None
    path: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    template: str | PromptTemplate | None = None
    system: str | None = None
    answer_prefix: str | None = None
    label: str | None = None
    human: str | None = None
    human_range: HumanRange = None
    id: str | None = None
    ratings: str | None = None
    group: str | None = None
    system_column: str | None = None
    """The column naming the system that produced each item (``system`` is the system prompt)."""
    n: int | None = Field(None, ge=1, strict=True)
    seed: int | None = Field(None, strict=True)
    truncate: str | None = None
    task: Task | None = Field(None, exclude=True)
    dataset: Dataset | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _one_source(self) -> TaskConfig:
        given = [k for k in ("name", "file", "dataset") if getattr(self, k) is not None]
        if self.task is not None and "name" not in given:
            self.name = self.task.name
            given.append("name")
        if len(given) != 1:
            raise ValueError(
                "give a task as exactly one of name (a registered task), file (a data file) or "
                f"dataset (a Dataset object); got {' and '.join(given) or 'none'}"
            )
        if self.file == "":
            raise ValueError("file is empty: give the data file's path")
        if self.dataset is not None:
            if used := [k for k in (*FILE_KEYS, "n", "seed", "path") if getattr(self, k) is not None]:
                raise ValueError(
                    f"{', '.join(used)} do not apply to a Dataset object (it is already loaded); "
                    "pass them to numbias.load_file instead"
                )
        elif self.name is not None:
            if used := [k for k in FILE_KEYS if getattr(self, k) is not None]:
                raise ValueError(
                    f"{', '.join(used)} apply to data files (file: ...), not to the registered task {self.name!r}"
                )
        elif self.path is not None or self.options:
            raise ValueError(
                "path and options apply to registered tasks; a data file takes file, human, "
                "human_range, id, ratings, group, system_column, n, seed"
            )
        used = [k for k in ("human_range", "ratings") if getattr(self, k) is not None]
        if self.file is not None and self.human is None and used:
            raise ValueError(f"{', '.join(used)} need the human-score column: give human too")
        if self.file is not None and self.template is None:
            raise ValueError(
                f"data file {self.file} needs a template (text with {{column}} placeholders, or @path to a rubric file)"
            )
        if self.dataset is not None and self.template is None:
            raise ValueError(f"Dataset {self.dataset.name!r} needs a template")
        return self

    @property
    def kind(self) -> str:
        return "file" if self.file is not None else "dataset" if self.dataset is not None else "registered"


@dataclass(frozen=True)
class PreparedTask:
    """A task ready to judge: its items, the prompt template, and how long items fit."""

    label: str
    data: Dataset
    template: PromptTemplate
    truncate: str | None = None


def read_template(text: str) -> str:
    """Template text, or the contents of the rubric file that ``@path`` names."""
    if not text.startswith("@"):
        return text
    path = readable_file(Path(text[1:]).expanduser(), "rubric file")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise NumbiasError(f"rubric file {path} is unreadable: {first_line(exc)}") from None


def _template(tc: TaskConfig, base: PromptTemplate | None, where: str) -> PromptTemplate:
    """The task's prompt: its own template (text, ``@path``, or a PromptTemplate used
    as it is) over the registered task's, with the system prompt and prefix given."""
    if isinstance(tc.template, PromptTemplate):
        base, text = tc.template, tc.template.text
    else:
        text = read_template(tc.template) if tc.template is not None else base.text if base else ""
    template = PromptTemplate(
        text=text,
        answer_prefix=tc.answer_prefix if tc.answer_prefix is not None else base.answer_prefix if base else None,
        system=read_template(tc.system) if tc.system is not None else base.system if base else None,
    )
    try:
        fields = template.fields
    except NumbiasError as exc:
        raise NumbiasError(f"{where}: {exc}") from None
    if "" in fields:
        raise NumbiasError(f"{where}: the template has an unnamed {{}} placeholder; name every field")
    if not fields - SCALE_FIELDS:
        raise NumbiasError(
            f"{where}: the template uses no item field, so every item would get the same prompt "
            "(add a {column} placeholder)"
        )
    return template


def prepare(tc: TaskConfig) -> PreparedTask:
    """Load a task's items and build its template; every problem is a one-line error."""
    if tc.kind == "registered":
        spec = tc.task or get_task(str(tc.name))
        options = dict(tc.options)
        for key in ("n", "seed"):
            if getattr(tc, key) is not None:
                options[key] = getattr(tc, key)
        data = spec.load(tc.path, **options)
        template = _template(tc, spec.template, f"task {spec.name!r}")
    elif tc.file is not None:  # tc.kind == "file"
        template = _template(tc, None, f"data file {tc.file}")
        data = load_file(
            tc.file,
            fields=sorted(template.fields - SCALE_FIELDS),
            human=tc.human,
            human_range=tc.human_range,
            id=tc.id,
            ratings=tc.ratings,
            group=tc.group,
            system_column=tc.system_column,
            name=tc.label,
            n=tc.n,
            seed=tc.seed or 0,
        )
    else:
        data = tc.dataset  # type: ignore[assignment]
        template = _template(tc, None, f"data set {data.name!r}")
    try:
        template.check(set(data.fields))
    except NumbiasError as exc:
        raise NumbiasError(f"{tc.file or tc.name or data.name}: {exc}") from None
    if tc.truncate is not None and tc.truncate not in template.fields - SCALE_FIELDS:
        raise NumbiasError(
            f"truncate: {tc.truncate!r} is not a field of the template (fields: "
            f"{', '.join(sorted(template.fields - SCALE_FIELDS))})"
        )
    return PreparedTask(tc.label or data.name, data, template, tc.truncate)


def prepare_tasks(configs: Sequence[TaskConfig], *, labelled: bool) -> list[PreparedTask]:
    """Every task loaded before any model: bad data fails first. A study that measures
    accuracy needs human scores; labels must tell tasks apart."""
    tasks = [prepare(tc) for tc in configs]
    if labelled:
        for task in tasks:
            if not task.data.labelled:
                raise NumbiasError(
                    f"{task.data.source or task.label}: no human scores (give the human column with "
                    "--human / human:); to score unlabelled items use numbias score"
                )
    labels = [t.label for t in tasks]
    if dupes := sorted({x for x in labels if labels.count(x) > 1}):
        raise NumbiasError(f"two tasks share the label {dupes[0]!r}: give each a distinct label")
    return tasks


def task_notes(tasks: Sequence[PreparedTask]) -> list[str]:
    return [f"{t.label}: {note}" for t in tasks for note in t.data.notes]
