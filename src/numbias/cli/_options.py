"""Every option more than one command takes, each declared here once, and the option
groups: a command takes the task options (or the study's, or the server's) as one
object, which :func:`grouped` spreads into typer's options and packs back on the call."""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin, get_type_hints

import typer

from numbias.util.errors import NumbiasError

# Options that say which items to judge and how to ask, shared by every command.
TaskOpt = Annotated[
    list[str] | None, typer.Option(help="Registered task name or data file (repeatable); `numbias tasks` lists them.")
]
DataOpt = Annotated[
    Path | None,
    typer.Option(
        help="Data file (CSV, TSV, JSONL, JSON, Parquet) to judge, or the data folder of a registered --task."
    ),
]
OptionOpt = Annotated[list[str] | None, typer.Option(help="Task option KEY=VALUE (n=200, seed=1, pair=ro-en).")]
TemplateOpt = Annotated[
    str | None,
    typer.Option(
        help="Prompt template: text with {column} placeholders and {lo}/{hi}/{labels}, or @path to a rubric file."
    ),
]
SystemOpt = Annotated[str | None, typer.Option(help="System prompt (text or @path).")]
PrefixOpt = Annotated[str | None, typer.Option(help="Text the answer starts with (e.g. 'Score:').")]
HumanOpt = Annotated[str | None, typer.Option(help="Data file: the human-score column.")]
RangeOpt = Annotated[
    str | None, typer.Option(help="Data file: the scale the raters used, LO-HI (default: taken from the data).")
]
IdOpt = Annotated[str | None, typer.Option("--id", help="Data file: the item-id column (default: row number).")]
GroupOpt = Annotated[
    str | None, typer.Option(help="Data file: the group column (e.g. source document), for group-level accuracy.")
]
SystemColumnOpt = Annotated[
    str | None,
    typer.Option(
        help="Data file: the column naming the system that produced each "
        "item (comma-separated names: an output several systems "
        "share), for system-level estimates."
    ),
]
RatingsOpt = Annotated[str | None, typer.Option(help="Data file: raw per-rater scores column (human ceiling).")]
TruncateOpt = Annotated[
    str | None, typer.Option(help="Field to shorten (its middle cut) when an item exceeds the judge's context.")
]
# Options of the results folder and the judges' server.
WaitOpt = Annotated[
    bool, typer.Option(help="When another run writes to the same results folder, wait for it (else stop at once).")
]
ForceOpt = Annotated[
    bool,
    typer.Option(
        help="Replace files of the results' names that numbias did not write "
        "(else such a file stops the command before it starts)."
    ),
]
BaseUrlOpt = Annotated[
    str | None,
    typer.Option(
        help="Server of the judges on a server (backend openai), e.g. "
        "http://localhost:8000/v1, or several replicas joined by commas; "
        "a saved judge's is never used."
    ),
]
ApiKeyEnvOpt = Annotated[
    str | None, typer.Option(help="Environment variable the server's API key is read from (default: OPENAI_API_KEY).")
]
WorkersOpt = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="Processes a judge's missing items are scored in "
        "(default: one per core for a CPU llama.cpp judge, at most 4; "
        "the results do not depend on it).",
    ),
]
# Options shared by ``run``, ``align`` and ``mitigate``.
FromOpt = Annotated[
    Path | None,
    typer.Option(
        "--from",
        help="Re-analyse this results folder from its own files (distributions and items): no model, store or data.",
    ),
]
JudgeOpt = Annotated[list[str] | None, typer.Option(help="Judge name or GGUF path (repeatable).")]
ScaleOpt = Annotated[
    list[str] | None,
    typer.Option(help="Scale: LO-HI, reversed:LO-HI, letters:A-E or words:poor,fair,good (repeatable)."),
]
OutOpt = Annotated[str | None, typer.Option(help="Results folder.")]

PROMPT = ("template", "system", "answer_prefix", "truncate")
"""The task options that say how to ask."""
READING = ("human", "id", "group", "ratings", "system_column", "human_range")
"""The task options that say how to read a data file."""


def flag(name: str) -> str:
    """The option an option group's field is given by (``answer_prefix``: ``--answer-prefix``)."""
    return f"--{name.replace('_', '-')}"


def applies(flags: list[str]) -> str:
    """The verb of a sentence whose subject is ``flags``."""
    return "applies" if len(flags) == 1 else "apply"


@dataclass(frozen=True)
class TaskFlags:
    """The task options: which items to judge (registered tasks, a data file) and how
    to ask (template, system prompt, answer prefix) and read them (columns, range)."""

    task: TaskOpt = None
    data: DataOpt = None
    option: OptionOpt = None
    template: TemplateOpt = None
    system: SystemOpt = None
    answer_prefix: PrefixOpt = None
    human: HumanOpt = None
    human_range: RangeOpt = None
    id: IdOpt = None
    group: GroupOpt = None
    system_column: SystemColumnOpt = None
    ratings: RatingsOpt = None
    truncate: TruncateOpt = None

    def configs(self) -> list[dict[str, Any]]:
        """Task configs from the options. ``--data`` alone is a data file; with a registered
        ``--task`` it is that task's data. Every option given lands somewhere or is an error."""
        from numbias.data.dataset import SUFFIXES
        from numbias.data.tasks import parse_range

        if empty := [
            k
            for k in (
                "template",
                "system",
                "human",
                "human_range",
                "id",
                "group",
                "ratings",
                "truncate",
                "system_column",
            )
            if (v := getattr(self, k)) is not None and not v.strip()
        ]:
            raise NumbiasError(f"{flag(empty[0])} is empty: give a value or leave the option out")
        options, prompt, reading = _pairs(self.option), self.given(PROMPT), self.given(READING)
        if self.human_range:
            reading["human_range"] = parse_range(self.human_range, "--human-range")
        names, data = list(self.task or []), self.data
        files = [n for n in names if Path(n).suffix.lower() in SUFFIXES]
        if data is not None and (not names or Path(str(data)).is_file() and not [n for n in names if n not in files]):
            files.append(str(data))
            data = None
        registered = [n for n in names if n not in files]
        if data is not None and not registered:
            raise NumbiasError(
                f"--data {data} is not a data file (CSV, TSV, JSONL, JSON, Parquet) and no registered --task reads it"
            )
        if not registered and not files:
            if self.option or prompt or reading:
                flags = [flag(k) for k in (*prompt, *reading)] + (["--option"] if self.option else [])
                raise NumbiasError(
                    f"{', '.join(flags)} {applies(flags)} to the tasks given with --task or --data; add one"
                )
            return []
        if registered and reading:
            flags = [flag(k) for k in reading]
            raise NumbiasError(
                f"{', '.join(flags)} {applies(flags)} to data files, not to the registered task(s) "
                f"{', '.join(registered)}"
            )
        if files and (bad := sorted(set(options) - {"n", "seed"})):
            raise NumbiasError(
                f"--option {', '.join(bad)}: a data file takes only n and seed (options of "
                "registered tasks do not apply)"
            )
        out: list[dict[str, Any]] = [
            {"name": n, "path": str(data) if data else None, "options": options, **prompt} for n in registered
        ]
        out += [
            {"file": f, **reading, **prompt, **{k: options[k] for k in ("n", "seed") if k in options}} for f in files
        ]
        return out

    def given(self, names: tuple[str, ...]) -> dict[str, Any]:
        """The options of ``names`` that were given, by name."""
        return {k: v for k in names if (v := getattr(self, k)) is not None}


@dataclass(frozen=True)
class StudyFlags:
    """The options of the studies (run, align, mitigate): which judges, at which scales,
    and the results folder, or the folder whose own files are re-analysed (``--from``)."""

    judge: JudgeOpt = None
    scale: ScaleOpt = None
    source: FromOpt = None
    out: OutOpt = None
    workers: WorkersOpt = None

    def read(self, name: str, config: Path | None, other: Any) -> dict[str, Any]:
        """A study's settings: from its config file (or none), or with ``--from`` those of
        the study that wrote the folder, for a re-analysis of its files — its judges, tasks
        and scales are what the folder holds, so none (``other``) is given anew."""
        from numbias.judge.config import read_yaml

        if self.source is None:
            return read_yaml(config) if config is not None else {}
        if config is not None or other:
            raise NumbiasError(
                "--from re-analyses the folder's own judges and tasks: give no config, --judge, "
                "--task, --data or --sample with it"
            )
        if self.out is None:
            raise NumbiasError("--from needs --out: the folder the re-analysis writes (it may be the --from folder)")
        if not (self.source / name).is_file():
            raise NumbiasError(f"{self.source} holds no {name}: not a results folder of numbias {name.split('-')[0]}")
        return read_yaml(self.source / name)

    def settings(self, tasks: list[dict[str, Any]]) -> dict[str, Any]:
        """The settings given: the judges, ``tasks``, scales and workers where there are
        any, the results folder checked."""
        from numbias.util.output import checked_path

        given = {
            k: v
            for k, v in (("judges", self.judge), ("tasks", tasks), ("scales", self.scale), ("workers", self.workers))
            if v
        }
        return given if self.out is None else {**given, "out": str(checked_path(self.out))}


@dataclass(frozen=True)
class Server:
    """The server the judges on a server (backend openai) talk to."""

    base_url: BaseUrlOpt = None
    api_key_env: ApiKeyEnvOpt = None


@dataclass(frozen=True)
class Tailored:
    """A command's own cut of an option group, as ``Annotated`` metadata: the options it
    does not take (they keep their defaults) and those it declares with its own help."""

    omit: tuple[str, ...] = ()
    own: dict[str, Any] = field(default_factory=dict)


def _pairs(pairs: list[str] | None) -> dict[str, Any]:
    """``--option KEY=VALUE`` pairs, each value read as JSON where it parses."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise NumbiasError(f"option {pair!r} is not KEY=VALUE")
        key, value = pair.split("=", 1)
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def grouped(command: Callable[..., None]) -> Callable[..., None]:
    """``command`` as typer reads it: typer takes no dataclass, so a parameter typed by
    an option group (a dataclass of options, perhaps ``Tailored``) stands for the group's
    options in its place, and the call packs them back into the group's object."""
    signature = inspect.signature(command, eval_str=True)
    groups: dict[str, tuple[Any, list[str]]] = {}
    params: list[inspect.Parameter] = []
    for param in signature.parameters.values():
        group, *meta = get_args(param.annotation) if get_origin(param.annotation) is Annotated else [param.annotation]
        if not (isinstance(group, type) and is_dataclass(group)):
            params.append(param)
            continue
        cut = next((m for m in meta if isinstance(m, Tailored)), Tailored())
        hints = get_type_hints(group, include_extras=True)
        taken = [f for f in fields(group) if f.name not in cut.omit]
        params += [
            inspect.Parameter(f.name, param.kind, default=f.default, annotation=cut.own.get(f.name, hints[f.name]))
            for f in taken
        ]
        groups[param.name] = (group, [f.name for f in taken])

    @functools.wraps(command)
    def call(**given: Any) -> None:
        for name, (group, taken) in groups.items():
            given[name] = group(**{k: given.pop(k) for k in taken})
        command(**given)

    call.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    call.__annotations__ = {p.name: p.annotation for p in params}
    return call
