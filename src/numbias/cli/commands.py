"""Command line: ``numbias run``, ``align``, ``mitigate``, ``score``, ``compare``, ``train``, ``report``, ``models``.

Every user error ends as one line on stderr and exit code 2, never a traceback;
results already computed are in the store and survive any stop."""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from numbias.util.errors import (
    NOT_STARTED,
    Interrupted,
    NumbiasError,
    first_line,
    handle_signals,
    one_line,
    readable_file,
)
from numbias.util.fmt import fmt_ci, fmt_num, fmt_p

if TYPE_CHECKING:
    import pandas as pd

    from numbias.studies.alignment import AlignConfig, AlignResults
    from numbias.studies.mitigation import MitigateConfig

class _Commands(TyperGroup):
    """The commands, each refusing an option given twice: click keeps the last value of
    a single-value option, so ``--data a.csv --data b.csv`` would judge only ``b.csv``."""

    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[Any, Any, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None:
            _refuse_repeats(command, rest)
        return name, command, rest


def _refuse_repeats(command: Any, args: list[str]) -> None:
    """A one-line error for a single-value option (or flag) given more than once."""
    single = [p for p in command.params if p.param_type_name == "option" and not p.multiple and not p.count]
    by_flag = {flag: p for p in single for flag in (*p.opts, *p.secondary_opts)}
    seen: dict[str, str] = {}
    tokens = iter(args)
    for token in tokens:
        if token == "--":
            break
        flag = token.split("=", 1)[0] if token.startswith("--") else token
        param = by_flag.get(flag)
        if param is None:
            continue
        if param.name in seen:
            raise NumbiasError(f"{flag} is given twice ({seen[param.name]} and {token}): give it once")
        seen[str(param.name)] = token
        if not param.is_flag and "=" not in token:
            next(tokens, None)


app = typer.Typer(cls=_Commands, add_completion=False, no_args_is_help=False, pretty_exceptions_enable=False,
                  help="Find, measure and remove numerical bias in LLM-as-a-judge evaluators.")
console = Console(width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True, markup=False, emoji=False, highlight=False)


@contextmanager
def log_progress(description: str, total: int, every: float = 30.0) -> Iterator[Callable[[int], None]]:
    """Progress as plain lines on stderr, at most one per ``every`` seconds and one at the
    end, for logs and CI (rich draws its bar only on a terminal)."""
    start = last = time.monotonic()
    done = 0

    def advance(n: int) -> None:
        nonlocal done, last
        done += n
        if (now := time.monotonic()) - last >= every:
            last = now
            err_console.print(f"{description}: {done}/{total} ({now - start:.0f} s)", highlight=False)

    yield advance
    err_console.print(f"{description}: {done}/{total} done in {time.monotonic() - start:.0f} s", highlight=False)


@contextmanager
def rich_progress(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar on a terminal, else :func:`log_progress`."""
    if not err_console.is_terminal:
        with log_progress(description, total) as advance:
            yield advance
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=err_console, transient=False) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)


# Options that say which items to judge and how to ask, shared by every command.
TaskOpt = Annotated[list[str] | None, typer.Option(help="Registered task name or data file (repeatable); "
                                                         "`numbias tasks` lists them.")]
DataOpt = Annotated[Path | None, typer.Option(help="Data file (CSV, TSV, JSONL, JSON, Parquet) to judge, or the "
                                                    "data folder of a registered --task.")]
OptionOpt = Annotated[list[str] | None, typer.Option(help="Task option KEY=VALUE (n=200, seed=1, pair=ro-en).")]
TemplateOpt = Annotated[str | None, typer.Option(help="Prompt template: text with {column} placeholders and "
                                                      "{lo}/{hi}/{labels}, or @path to a rubric file.")]
SystemOpt = Annotated[str | None, typer.Option(help="System prompt (text or @path).")]
PrefixOpt = Annotated[str | None, typer.Option(help="Text the answer starts with (e.g. 'Score:').")]
HumanOpt = Annotated[str | None, typer.Option(help="Data file: the human-score column.")]
RangeOpt = Annotated[str | None, typer.Option(help="Data file: the scale the raters used, LO-HI (default: taken "
                                                   "from the data).")]
IdOpt = Annotated[str | None, typer.Option("--id", help="Data file: the item-id column (default: row number).")]
GroupOpt = Annotated[str | None, typer.Option(help="Data file: the group column (e.g. source document), for "
                                                   "group-level accuracy.")]
SystemColumnOpt = Annotated[str | None, typer.Option(help="Data file: the column naming the system that produced each "
                                                          "item (comma-separated names: an output several systems "
                                                          "share), for system-level estimates.")]
RatingsOpt = Annotated[str | None, typer.Option(help="Data file: raw per-rater scores column (human ceiling).")]
WaitOpt = Annotated[bool, typer.Option(help="When another run writes to the same results folder, wait for it "
                                           "(else stop at once).")]
TruncateOpt = Annotated[str | None, typer.Option(help="Field to shorten (its middle cut) when an item exceeds "
                                                      "the judge's context.")]
ForceOpt = Annotated[bool, typer.Option(help="Replace files of the results' names that numbias did not write "
                                             "(else such a file stops the command before it starts).")]
BaseUrlOpt = Annotated[str | None, typer.Option(help="Server of the judges on a server (backend openai), e.g. "
                                                     "http://localhost:8000/v1; a saved judge's is never used.")]
ApiKeyEnvOpt = Annotated[str | None, typer.Option(help="Environment variable the server's API key is read from "
                                                       "(default: OPENAI_API_KEY).")]

RUNNING: dict[str, Path] = {}
"""The store the running command keeps its finished items in (``store``), for the line
an interrupt prints."""


def _tasks(names: list[str] | None, data: Path | None, option: list[str] | None, *, template: str | None = None,
           system: str | None = None, answer_prefix: str | None = None, human: str | None = None,
           human_range: str | None = None, id: str | None = None, group: str | None = None,
           ratings: str | None = None, truncate: str | None = None,
           system_column: str | None = None) -> list[dict[str, Any]]:
    """Task configs from the task flags. ``--data`` alone is a data file; with a registered
    ``--task`` it is that task's data. Every flag given lands somewhere or is an error."""
    from numbias.data.dataset import SUFFIXES
    from numbias.data.tasks import parse_range

    given = {"template": template, "system": system, "human": human, "human_range": human_range, "id": id,
             "group": group, "ratings": ratings, "truncate": truncate, "system_column": system_column}
    if empty := [k for k, v in given.items() if v is not None and not v.strip()]:
        raise NumbiasError(f"--{empty[0].replace('_', '-')} is empty: give a value or leave the option out")
    options = _options(option)
    prompt = {k: v for k, v in (("template", template), ("system", system), ("answer_prefix", answer_prefix),
                                ("truncate", truncate)) if v is not None}
    reading = {k: v for k, v in (("human", human), ("id", id), ("group", group), ("ratings", ratings),
                                 ("system_column", system_column),
                                 ("human_range", parse_range(human_range, "--human-range") if human_range else None))
               if v is not None}
    names = list(names or [])
    files = [n for n in names if Path(n).suffix.lower() in SUFFIXES]
    if data is not None and (not names or Path(str(data)).is_file() and not [n for n in names if n not in files]):
        files.append(str(data))
        data = None
    registered = [n for n in names if n not in files]
    if data is not None and not registered:
        raise NumbiasError(f"--data {data} is not a data file (CSV, TSV, JSONL, JSON, Parquet) and no registered "
                           "--task reads it")
    if not registered and not files:
        if option or prompt or reading:
            flags = [f"--{k.replace('_', '-')}" for k in (*prompt, *reading)] + (["--option"] if option else [])
            raise NumbiasError(f"{', '.join(flags)} {_apply(flags)} to the tasks given with --task or --data; add one")
        return []
    if registered and reading:
        flags = [f"--{k.replace('_', '-')}" for k in reading]
        raise NumbiasError(f"{', '.join(flags)} {_apply(flags)} to data files, not to the registered task(s) "
                           f"{', '.join(registered)}")
    if files and (bad := sorted(set(options) - {"n", "seed"})):
        raise NumbiasError(f"--option {', '.join(bad)}: a data file takes only n and seed (options of registered "
                           "tasks do not apply)")
    out: list[dict[str, Any]] = [{"name": n, "path": str(data) if data else None, "options": options, **prompt}
                                 for n in registered]
    out += [{"file": f, **reading, **prompt, **{k: options[k] for k in ("n", "seed") if k in options}}
            for f in files]
    return out


def _apply(flags: list[str]) -> str:
    return "applies" if len(flags) == 1 else "apply"


def _task_flags(**flags: Any) -> dict[str, Any]:
    """The shared task flags of a command, by the names :func:`_tasks` takes."""
    return {k: flags.get(k) for k in ("template", "system", "answer_prefix", "human", "human_range", "id", "group",
                                      "ratings", "truncate", "system_column")}


def _options(pairs: list[str] | None) -> dict[str, Any]:
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


models_app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
app.add_typer(models_app, name="models")


@models_app.callback(invoke_without_command=True)
def _models_group(
    ctx: typer.Context,
    prepare: Annotated[bool, typer.Option(help="Assemble and verify every installed judge now (setup does).")] = False,
) -> None:
    """List the embedded judges and whether they are installed, then the trained stages."""
    if ctx.invoked_subcommand is None:
        models(prepare=prepare)


@models_app.command("fetch-converter")
def fetch_converter_cmd() -> None:
    """Fetch llama.cpp's GGUF converter into the cache (setup does this; needs the network).
    Exporting a trained stage or float32 weights to GGUF uses it; judging never fetches."""
    from numbias.models.weights import fetch_converter

    console.print(f"GGUF converter: {fetch_converter().parent}", markup=False, highlight=False, soft_wrap=True)


def models(prepare: bool = False) -> None:
    """The ``numbias models`` table; with ``prepare``, every installed judge is assembled
    and verified first."""
    from numbias.models.catalog import JUDGES, trained_stages

    if prepare:
        for spec in JUDGES.values():
            if spec.installed:
                spec.path()
    table = Table(title="embedded judges")
    for col in ("name", "kind", "licence", "size", "installed", "install with"):
        table.add_column(col)
    for spec in JUDGES.values():
        table.add_row(spec.name, spec.kind, spec.licence, f"{spec.size_bytes / 1e6:.0f} MB",
                      "yes" if spec.installed else "no", spec.install)
    console.print(table)
    if stages := trained_stages():
        trained = Table(title="trained stages (numbias train; backend transformers)")
        for col in ("name", "stage", "from", "seed", "steps", "final loss", "folder"):
            trained.add_column(col)
        for stage in stages:
            card = stage.card
            loss = card.get("loss") or [float("nan")]
            trained.add_row(stage.name, str(card.get("stage")), str(card.get("start", {}).get("name")),
                            str(card.get("seed")), str(card.get("steps")), f"{loss[-1]:.3f}", str(stage.path))
        console.print(trained)
    console.print("Any local .gguf path is accepted as a judge too.")


@app.command("train")
def train_cmd(
    recipe: Annotated[Path, typer.Argument(help="YAML training recipe (base, seed, max_length, lora, sft, dpo).")],
    stage: Annotated[list[str] | None, typer.Option(help="Stage to train: sft or dpo (repeatable; default: the "
                                                         "recipe's stages, sft then dpo).")] = None,
    start: Annotated[str, typer.Option("--from", help="What dpo starts from: sft (this seed's SFT stage) or base "
                                                      "(the DPO-only control).")] = "sft",
    seed: Annotated[int | None, typer.Option(help="Training seed (default: the recipe's).")] = None,
    out: Annotated[Path | None, typer.Option(help="Folder for the stages (default: the numbias cache, where each "
                                                  "is a judge by name).")] = None,
) -> None:
    """Align the base model one stage at a time (LoRA, merged): each stage is then a judge
    by name; a stopped run resumes from its last checkpoint."""
    from numbias.train.lora import load_recipe, train

    parsed = load_recipe(recipe)
    for name in stage or [s for s in ("sft", "dpo") if getattr(parsed, s) is not None]:
        trained = train(parsed, name, start=start, seed=seed, out=out, progress=rich_progress)
        card = trained.card
        loss = card["loss"]
        tenth = max(1, len(loss) // 10)  # one batch's loss is noisy: the first and last tenth's means
        first, last = sum(loss[:tenth]) / tenth, sum(loss[-tenth:]) / tenth
        console.print(f"{trained.name}: {card['steps']} steps, loss {first:.3f} → {last:.3f} (first and last "
                      f"{tenth} steps' mean), {card['tokens_per_s']} tokens/s; in {trained.path} (judge: "
                      f"{trained.name}, backend transformers, or llama.cpp exported to GGUF F32)")


@app.command("tasks")
def tasks_cmd(
    data_root: Annotated[Path | None, typer.Option(envvar="NUMBIAS_DATA", help="Folder holding the published "
                                                   "benchmark data, to check which tasks can read theirs.")] = None,
) -> None:
    """List every task (built-in, registered, installed): fields, human range, data."""
    from numbias.data.tasks import all_tasks

    table = Table(title="tasks")
    for col in ("name", "description", "fields", "human range", "data from", "data here"):
        table.add_column(col)
    for spec in all_tasks().values():
        lo, hi = spec.human_range
        table.add_row(spec.name, spec.description, ", ".join(spec.fields), f"{lo:g} to {hi:g}", spec.source,
                      spec.data_status(data_root))
    console.print(table)
    console.print("Any data file is a task too: --data items.csv --template @rubric.txt --human COLUMN.")


@app.command()
def score(
    model: Annotated[str | None, typer.Option(help="Judge: registry name, GGUF path, or the backend's model "
                                                   "name.")] = None,
    backend: Annotated[str | None, typer.Option(help="Backend (llama.cpp, transformers, openai, a registered "
                                                     "name or module:attr).")] = None,
    task: TaskOpt = None,
    data: DataOpt = None,
    range_: Annotated[str | None, typer.Option("--range", help="Score scale, as --scale (default 0-9).")] = None,
    out: Annotated[str, typer.Option(help="Output folder.")] = "numbias-scores",
    option: OptionOpt = None,
    template: TemplateOpt = None,
    system: SystemOpt = None,
    answer_prefix: PrefixOpt = None,
    human: HumanOpt = None,
    human_range: RangeOpt = None,
    id: IdOpt = None,
    group: GroupOpt = None,
    system_column: SystemColumnOpt = None,
    ratings: RatingsOpt = None,
    truncate: TruncateOpt = None,
    wait: WaitOpt = False,
    calibrated: Annotated[Path | None, typer.Option(help="A calibrated judge saved by `numbias mitigate --save`: "
                                                         "write calibrated scores on the human scale.")] = None,
    force: ForceOpt = False,
    base_url: BaseUrlOpt = None,
    api_key_env: ApiKeyEnvOpt = None,
) -> None:
    """Score items, labelled or not: each item's exact distribution and its score by
    every rule (scores.jsonl, scores.csv); with --calibrated, the saved judge's scores."""
    from numbias.studies.scoring import SCORE_FILES, write_scores
    from numbias.studies.scoring import score as score_items
    from numbias.util.output import checked_path, claim, one_writer

    flags = _task_flags(**locals())
    claim(out, SCORE_FILES, force=force)
    folder = checked_path(out)
    fixed = {"--model": model, "--backend": backend, "--range": range_, "--template": template,
             "--system": system, "--answer-prefix": answer_prefix, "--truncate": truncate}
    saved, judge = _score_judge(calibrated, fixed, (base_url, api_key_env))
    tasks = _tasks(task or ([] if data is not None else ["vader"]), data, option, **flags)
    if len(tasks) != 1:
        raise NumbiasError("numbias score takes one task (or one --data file) at a time")
    RUNNING["store"] = folder / "store.sqlite"
    with one_writer(folder, wait=wait):
        scored = score_items(tasks[0], judge, range_, store=folder / "store.sqlite", calibrated=saved,
                             progress=rich_progress)
        paths = write_scores(scored, folder, force=force)
    for note in scored.notes:
        console.print(f"note: {note}")
    console.print(f"wrote {len(scored.ids)} items to {paths[0]} and {paths[1]}")


def _score_judge(calibrated: Path | None, fixed: dict[str, str | None],
                 server: tuple[str | None, str | None]) -> tuple[Any, Any]:
    """``(saved judge, None)`` for ``--calibrated`` (which fixes judge, scale and prompt:
    no flag may set them), else ``(None, the named judge)``, on the user's server."""
    from numbias.judge.config import JudgeConfig, use_server, validate_config
    from numbias.models.catalog import DEFAULT_JUDGE
    from numbias.studies.calibrated import CalibratedJudge

    if calibrated is not None:
        if given := [k for k, v in fixed.items() if v is not None]:
            raise NumbiasError(f"{', '.join(given)}: the calibrated judge {calibrated} fixes its judge, scale and "
                               "prompt; drop these options")
        return CalibratedJudge.load(calibrated, base_url=server[0], api_key_env=server[1]), None
    model, backend = fixed["--model"], fixed["--backend"]
    named = {"model": DEFAULT_JUDGE if model is None else model, **({} if backend is None else {"backend": backend})}
    judge = validate_config(JudgeConfig, named, "numbias score")
    use_server([judge], *server)
    return None, judge


# Options shared by ``run``, ``align`` and ``mitigate``.
FromOpt = Annotated[Path | None, typer.Option("--from", help="Re-analyse this results folder from its own files "
                                                              "(distributions and items): no model, store or data.")]
JudgeOpt = Annotated[list[str] | None, typer.Option(help="Judge name or GGUF path (repeatable).")]
ScaleOpt = Annotated[list[str] | None, typer.Option(help="Scale: LO-HI, reversed:LO-HI, letters:A-E or "
                                                         "words:poor,fair,good (repeatable).")]
OutOpt = Annotated[str | None, typer.Option(help="Results folder.")]


@app.command("run")
def run_cmd(
    config: Annotated[Path | None, typer.Argument(help="YAML study config (optional).")] = None,
    judge: JudgeOpt = None,
    task: TaskOpt = None,
    data: DataOpt = None,
    scale: ScaleOpt = None,
    rule: Annotated[list[str] | None, typer.Option(help="Scoring rule (repeatable): greedy, expected, median, "
                                                        "protocol, quantile:Q, mean-sd:L.")] = None,
    option: OptionOpt = None,
    out: OutOpt = None,
    template: TemplateOpt = None,
    system: SystemOpt = None,
    answer_prefix: PrefixOpt = None,
    human: HumanOpt = None,
    human_range: RangeOpt = None,
    id: IdOpt = None,
    group: GroupOpt = None,
    system_column: SystemColumnOpt = None,
    ratings: RatingsOpt = None,
    truncate: TruncateOpt = None,
    wait: WaitOpt = False,
    force: ForceOpt = False,
    base_url: BaseUrlOpt = None,
    api_key_env: ApiKeyEnvOpt = None,
) -> None:
    """Run a numerical-bias study (default: Qwen2.5-Coder-0.5B on VADER at 0-9, 1-5, 1-10)."""
    from numbias.judge.config import RunConfig, use_server
    from numbias.report.build import RUN_FILES, write
    from numbias.studies.bias import run
    from numbias.util.output import checked_path, claim, one_writer

    settings: dict[str, Any] = {}
    if config is not None:
        settings = RunConfig.from_yaml(config).model_dump()
    if judge:
        settings["judges"] = judge
    if tasks := _tasks(task, data, option, **_task_flags(**locals())):
        settings["tasks"] = tasks
    if scale:
        settings["scales"] = scale
    if rule:
        settings["rules"] = rule
    if out is not None:
        settings["out"] = str(checked_path(out))
    cfg = RunConfig.parse(settings)
    claim(cfg.out, RUN_FILES, force=force)
    use_server(cfg.judges, base_url, api_key_env)
    RUNNING["store"] = cfg.store_path
    with one_writer(cfg.out, wait=wait):
        results = run(cfg, progress=rich_progress)
        folder = write(results, force=force)
    print_summary(results.summary)
    for note in results.notes:
        console.print(f"note: {note}")
    console.print(f"results in {folder}/ (items.csv, summary.json, config.yaml, report.html)")


@app.command("align")
def align_cmd(
    config: Annotated[Path | None, typer.Argument(help="YAML alignment-study config (optional).")] = None,
    base: Annotated[list[str] | None, typer.Option(help="Base judge of a pair: name or GGUF path, repeatable.")] = None,
    aligned: Annotated[list[str] | None, typer.Option(help="Aligned judge paired with the --base at the same "
                                                            "position (repeatable).")] = None,
    sample: Annotated[bool, typer.Option(help="Also run the sampling protocol on the models (else its exact "
                                              "expectation).")] = True,
    task: TaskOpt = None,
    data: DataOpt = None,
    option: OptionOpt = None,
    scale: ScaleOpt = None,
    source: FromOpt = None,
    out: OutOpt = None,
    template: TemplateOpt = None,
    system: SystemOpt = None,
    answer_prefix: PrefixOpt = None,
    human: HumanOpt = None,
    human_range: RangeOpt = None,
    id: IdOpt = None,
    group: GroupOpt = None,
    ratings: RatingsOpt = None,
    truncate: TruncateOpt = None,
    wait: WaitOpt = False,
    force: ForceOpt = False,
    base_url: BaseUrlOpt = None,
    api_key_env: ApiKeyEnvOpt = None,
) -> None:
    """Base vs aligned judges (default: Gemma 3 270M base vs SmolLM2 135M instruct, plus Qwen)."""
    from numbias.studies.alignment import parse_align
    from numbias.util.output import checked_path

    settings = _settings(source, "align-config.yaml", config, out, base or aligned or task or data or option)
    if base or aligned:
        if len(base or []) != len(aligned or []):
            raise NumbiasError(f"give one --aligned per --base (got {len(base or [])} and {len(aligned or [])})")
        settings["pairs"] = [{"base": b, "aligned": a} for b, a in zip(base or [], aligned or [])]
        settings.setdefault("extra_aligned", [])
    if not sample:
        settings["sample"] = False
    if tasks := _tasks(task, data, option, **_task_flags(**locals())):
        settings["tasks"] = tasks
    if scale:
        settings["scales"] = scale
    if out is not None:
        settings["out"] = str(checked_path(out))
    _run_align(parse_align(settings), wait, force, (base_url, api_key_env), source)


def _run_align(parsed: AlignConfig, wait: bool, force: bool, server: tuple[str | None, str | None],
               source: Path | None) -> None:
    """Check what it writes, run the study (or re-analyse the ``source`` folder's
    files) under the folder's lock, write it, print the tables."""
    from numbias.judge.config import use_server
    from numbias.report.build import ALIGN_FILES, write
    from numbias.studies.alignment import align
    from numbias.studies.recompute import align_from
    from numbias.util.output import claim, one_writer

    claim(parsed.out, ALIGN_FILES, force=force)
    if source is None:
        use_server([j for p in parsed.pairs for j in (p.base, p.aligned)] + list(parsed.extra_aligned), *server)
        RUNNING["store"] = Path(parsed.store or Path(parsed.out) / "store.sqlite")
    with one_writer(parsed.out, wait=wait):
        results = align_from(source, parsed) if source is not None else align(parsed, progress=rich_progress)
        folder = write(results, force=force)
    for note in results.study.notes:
        console.print(f"note: {note}")
    _print_alignment(results)
    _print_stages(results)
    extra = [name for name, rows in (("stages.csv", results.stages), ("diversity.csv", results.diversity)) if len(rows)]
    console.print(f"results in {folder}/ (alignment.csv, simulated_kurtosis.csv, {', '.join(extra + ['report.html'])})")


def _cell(value: Any) -> str:
    """A table cell: blank for a missing value, three decimals for a float."""
    if value is None or isinstance(value, float):
        return fmt_num(value, 3, plain=True, missing="")
    return str(value)


def _print_stages(results: AlignResults) -> None:
    """The trained stages against the base (exact expected scores) and each judge's
    output diversity, when the study has them."""
    from numbias.studies.stages import METRICS, effect_text, table_note

    if len(results.stages):
        shown = ("kurtosis", "pearson", "mode_share", "sd_ratio", "next_token_entropy")
        table = Table(title="trained stages against the base, and DPO after SFT against SFT of the same seed "
                            "(exact expected; reference → mean over seeds, Δ [95% CI], adjusted p; * the adjusted "
                            "test rejects)")
        for col in ("task", "scale", "stage", "against", "seeds", "kurtosis", "Pearson r", "mode share", "SD ratio",
                    "next-token entropy"):
            table.add_column(col)
        for r in results.stages[results.stages["rule"] == "expected"].to_dict("records"):
            cells = [effect_text(r, m) for m in shown]
            table.add_row(r["task"], r["scale"], r["stage"], r["against"], str(r["seeds"]), *cells)
        console.print(table)
        console.print(f"stages: {table_note(results.stages, [f'Δ {m}' for m in METRICS])} (stages.csv, every rule "
                      "and metric)", highlight=False)
    if len(results.diversity):
        table = Table(title="output diversity (free generations on held-out instructions)")
        cols = ["judge", "stage", "seed", "generations", "distinct-1", "distinct-2", "mean words", "empty"]
        for col in cols:
            table.add_column(col)
        for r in results.diversity.to_dict("records"):
            table.add_row(*[_cell(r[c]) for c in cols])
        console.print(table)


def _print_alignment(results: AlignResults) -> None:
    from numbias.studies.stages import delta_text, table_note

    table = Table(title="alignment study (layout of the paper's main table; Δ aligned − base [95% CI], adjusted p)")
    cols = ["base", "aligned", "task", "scale", "scoring", "human kurtosis", "base kurtosis", "aligned kurtosis",
            "base r", "aligned r", *[c for c in ("base group r", "aligned group r") if c in results.table],
            "aligned SD ratio", "aligned out-of-scale"]
    for col in [*cols, "Δ kurtosis", "Δ r"]:
        table.add_column(col)
    for r in results.table.to_dict("records"):
        table.add_row(*[fmt_num(r[c], plain=True) if isinstance(r[c], float) else str(r[c]) for c in cols],
                      *[delta_text(r, key).removeprefix("Δ ") for key in ("Δ kurtosis", "Δ r")])
    console.print(table)
    console.print(f"alignment: {table_note(results.table, ['Δ kurtosis', 'Δ r'])}", highlight=False)
    for note in dict.fromkeys(results.table["note"]):
        if note:
            console.print(f"note: {note}")
    for rule, iv in results.correlation.items():
        console.print(f"kurtosis vs Pearson r over all settings ({rule}): "
                      f"{fmt_ci(iv.value, iv.low, iv.high, plain=True)} (paper: -0.60)")
    _print_shift(results.shift)


@app.command("correlate")
def correlate_cmd(
    folders: Annotated[list[Path], typer.Argument(help="Results folders (each with a summary.json).")],
) -> None:
    """Kurtosis against Pearson r across every setting of one or more results folders
    (a study run in parts, pooled)."""
    import pandas as pd

    from numbias.studies.alignment import adjust_table, kurtosis_accuracy, paired_shift

    frames = []
    for folder in folders:
        path = folder / "summary.json"
        try:
            frames.append(pd.read_json(readable_file(path, "results file")))
        except NumbiasError as exc:  # a FIFO is never opened, a folder or a loop is named
            raise NumbiasError(f"cannot read {path}: {exc}") from None
        except (OSError, ValueError) as exc:
            raise NumbiasError(f"cannot read {path}: {first_line(exc)}") from None
    summary = pd.concat(frames, ignore_index=True)
    if not {"rule", "kurtosis", "pearson"} <= set(summary.columns):
        raise NumbiasError("summary.json lacks rule/kurtosis/pearson columns: is it a numbias results folder?")
    rules = list(dict.fromkeys(summary["rule"]))
    correlation = kurtosis_accuracy(summary, rules)
    if not correlation:
        counts = summary.dropna(subset=["kurtosis", "pearson"]).groupby("rule").size().to_dict()
        raise NumbiasError(f"too few settings with a kurtosis and a Pearson r to correlate (need 3 per rule; "
                           f"have {counts or 'none'})")
    for rule, iv in correlation.items():
        n = int(summary[summary.rule == rule].dropna(subset=["kurtosis", "pearson"]).shape[0])
        console.print(f"kurtosis vs Pearson r over {n} settings ({rule}): "
                      f"{fmt_ci(iv.value, iv.low, iv.high, plain=True)} (paper: -0.60)")
    tables = [folder / "alignment.csv" for folder in folders]
    if missing := [str(t.parent) for t in tables if not t.is_file()]:
        if len(missing) < len(tables):
            console.print(f"no paired view: {', '.join(missing)} has no alignment.csv (not a `numbias align` folder)")
        return
    try:
        pooled = pd.concat([pd.read_csv(t) for t in tables], ignore_index=True)
        tested = {"Δ kurtosis p", "Δ r p"} <= set(pooled.columns)  # tables from before the tests have none
        _print_shift(paired_shift(adjust_table(pooled) if tested else pooled))
    except (OSError, ValueError, KeyError) as exc:
        raise NumbiasError(f"cannot read the alignment tables: {first_line(exc)}") from None


def _print_shift(shift: pd.DataFrame) -> None:
    """One line per scoring: the paired counts of :func:`numbias.studies.alignment.paired_shift`."""
    from numbias.report.verdict import shift_sentence

    for r in shift.to_dict("records"):
        console.print(shift_sentence(r), highlight=False)


@app.command("mitigate")
def mitigate_cmd(
    config: Annotated[Path | None, typer.Argument(help="YAML mitigation-study config (optional).")] = None,
    judge: JudgeOpt = None,
    task: TaskOpt = None,
    data: DataOpt = None,
    option: OptionOpt = None,
    scale: ScaleOpt = None,
    dev: Annotated[int | None, typer.Option(help="Development items; the rest are the test split.")] = None,
    folds: Annotated[int | None, typer.Option(help="k-fold instead of one dev/test split.")] = None,
    criterion: Annotated[str | None, typer.Option(
        help="pearson or group_pearson (dev labels), entropy or kurtosis (label-free).")] = None,
    sample: Annotated[bool, typer.Option(help="Also run the sampling protocol at T 0.4/0.7/1.0/1.3.")] = False,
    mitigation: Annotated[list[str] | None, typer.Option(
        help="A mitigation to compare (repeat; default: every built-in but ordinal).")] = None,
    ensemble: Annotated[list[str] | None, typer.Option(
        help="A range ensemble, scales joined by + (repeat; 'none': no ensemble; default: all scales).")] = None,
    resamples: Annotated[int | None, typer.Option(
        help="Bootstrap resamples of dev for the choice's stability (0: none; the cross-fitted check "
             "against the default and the nested estimate are always made).")] = None,
    label_draws: Annotated[int | None, typer.Option(
        help="Seeded draws per number of labels for the label-efficiency curve (0: no curve).")] = None,
    n_jobs: Annotated[int | None, typer.Option(
        help="Processes comparing the judge × task pairs in parallel (the results do not depend on it).")] = None,
    oracle: Annotated[bool | None, typer.Option(
        "--oracle/--no-oracle", help="Add the setting best on test, labelled as such (not a method).")] = None,
    save: Annotated[str | None, typer.Option(help="Save the automatic choice as a calibrated judge (JSON); an "
                                                  "existing file must be a saved judge (or --force).")] = None,
    source: FromOpt = None,
    out: OutOpt = None,
    template: TemplateOpt = None,
    system: SystemOpt = None,
    answer_prefix: PrefixOpt = None,
    human: HumanOpt = None,
    human_range: RangeOpt = None,
    id: IdOpt = None,
    group: GroupOpt = None,
    system_column: SystemColumnOpt = None,
    ratings: RatingsOpt = None,
    truncate: TruncateOpt = None,
    wait: WaitOpt = False,
    force: ForceOpt = False,
    base_url: BaseUrlOpt = None,
    api_key_env: ApiKeyEnvOpt = None,
) -> None:
    """Compare temperature, calibration, mapping and range; choose on dev, prove on test."""
    from numbias.studies.mitigation import parse_mitigate
    from numbias.util.output import checked_path

    tasks = _tasks(task, data, option, **_task_flags(**locals()))
    settings = _settings(source, "mitigate-config.yaml", config, out, judge or tasks or sample)
    for key, value in (("judges", judge), ("tasks", tasks), ("scales", scale), ("sample", sample)):
        if value:
            settings[key] = value
    for key, given in (("ensembles", None if not ensemble else [] if ensemble == ["none"] else ensemble),
                       ("mitigations", mitigation), ("resamples", resamples), ("label_draws", label_draws),
                       ("oracle", oracle), ("n_jobs", n_jobs), ("dev", dev), ("folds", folds),
                       ("criterion", criterion), ("out", None if out is None else str(checked_path(out)))):
        if given is not None:
            settings[key] = given
    _run_mitigate(parse_mitigate(settings), save, wait, force, (base_url, api_key_env), source)


def _settings(source: Path | None, name: str, config: Path | None, out: str | None, other: Any) -> dict[str, Any]:
    """A study's settings: from its config file (or none), or with ``--from`` those of
    the study that wrote ``source``, for a re-analysis of its files — its judges, tasks
    and scales are what the folder holds, so none is given anew."""
    from numbias.judge.config import read_yaml

    if source is None:
        return read_yaml(config) if config is not None else {}
    if config is not None or other:
        raise NumbiasError("--from re-analyses the folder's own judges and tasks: give no config, --judge, --task, "
                           "--data or --sample with it")
    if out is None:
        raise NumbiasError("--from needs --out: the folder the re-analysis writes (it may be the --from folder)")
    if not (source / name).is_file():
        raise NumbiasError(f"{source} holds no {name}: not a results folder of numbias {name.split('-')[0]}")
    return read_yaml(source / name)


def _run_mitigate(parsed: MitigateConfig, save: str | None, wait: bool, force: bool,
                  server: tuple[str | None, str | None], source: Path | None = None) -> None:
    """Check what it writes, run the study (its judges on the user's server, if given)
    under the folder's lock, or re-analyse the ``source`` folder's files, write it,
    save the choice, print the table."""
    from numbias.judge.config import use_server
    from numbias.report.build import MITIGATE_FILES, write
    from numbias.studies.calibrated import check_save
    from numbias.studies.mitigation import mitigate
    from numbias.studies.recompute import mitigate_from
    from numbias.util.output import claim, one_writer

    claim(parsed.out, MITIGATE_FILES, force=force)
    if save is not None:
        check_save(save, force=force)
    if source is None:
        use_server(parsed.judges, *server)
        RUNNING["store"] = Path(parsed.store_path)
    with one_writer(parsed.out, wait=wait):
        results = mitigate_from(source, parsed) if source is not None else mitigate(parsed, progress=rich_progress)
        folder = write(results, force=force)
        path = results.comparisons[0].calibrated().save(save, force=force) if save is not None else None
    from numbias.report.verdict import mitigate_verdicts

    _print_mitigation(results.table)
    for v in mitigate_verdicts(results):
        console.print(f"{v.judge} on {v.task}: {v.advice()}", highlight=False)
    for note in results.notes:
        console.print(f"note: {note}")
    if path:
        console.print(f"saved the automatic choice of {results.comparisons[0].task} as {path}")
    console.print(f"results in {folder}/ (mitigation.csv, dev_scores.csv, report.html)")


@app.command("compare")
def compare_cmd(
    scores: Annotated[Path | None, typer.Option(help="Judge scores already made: a folder numbias score wrote, or "
                                                     "a table (CSV, TSV, JSONL, JSON, Parquet) with a judge-score "
                                                     "column; else the --data items are scored here.")] = None,
    score_column: Annotated[str | None, typer.Option(help="The judge-score column (default: calibrated_human, "
                                                          "else expected).")] = None,
    labels: Annotated[int | None, typer.Option(help="When every row has a human score: keep N labels (N groups "
                                                    "with --group, else N rows of each system), seeded, to "
                                                    "simulate a labelling budget.", min=2)] = None,
    seed: Annotated[int, typer.Option(help="Seed of the label draw and the bootstrap.")] = 0,
    threshold: Annotated[float | None, typer.Option(help="Also pass rates: a score at or above it passes (human "
                                                         "scale), corrected by Rogan–Gladen.")] = None,
    judge_range: Annotated[str | None, typer.Option(help="The judge scores' scale LO-HI, mapped onto the human "
                                                         "range (default: the scored folder's, else the human "
                                                         "scale).")] = None,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for P(A beats B) and pass rates.",
                                           min=100)] = 2000,
    model: Annotated[str | None, typer.Option(help="Judge that scores --data (registry name, GGUF path, model "
                                                   "name).")] = None,
    backend: Annotated[str | None, typer.Option(help="Backend of that judge.")] = None,
    range_: Annotated[str | None, typer.Option("--range", help="Scale the judge answers on (default 0-9).")] = None,
    calibrated: Annotated[Path | None, typer.Option(help="A calibrated judge saved by `numbias mitigate --save` "
                                                         "scores --data (its scores on the human scale).")] = None,
    data: DataOpt = None,
    template: TemplateOpt = None,
    system: SystemOpt = None,
    answer_prefix: PrefixOpt = None,
    human: HumanOpt = None,
    human_range: RangeOpt = None,
    id: IdOpt = None,
    group: Annotated[str | None, typer.Option(help="The group column (the input every system answered, e.g. the "
                                                   "dialogue): pairs outputs across systems.")] = None,
    system_column: SystemColumnOpt = None,
    truncate: TruncateOpt = None,
    out: Annotated[str, typer.Option(help="Results folder (systems.csv, pairs.csv, compare.json, report.html; the "
                                          "store when scoring here).")] = "numbias-compare",
    wait: WaitOpt = False,
    force: ForceOpt = False,
    base_url: BaseUrlOpt = None,
    api_key_env: ApiKeyEnvOpt = None,
) -> None:
    """Which system is better, and how sure: naive, labelled-only and PPI++ means, every pair A − B."""
    from numbias.data.tasks import parse_range
    from numbias.report.build import COMPARE_FILES, write
    from numbias.studies.comparison import compare
    from numbias.util.output import checked_path, claim, one_writer

    claim(out, COMPARE_FILES, force=force)
    folder = checked_path(out)
    ranges = {k: parse_range(v, f"--{k.replace('_', '-')}") if v else None
              for k, v in (("human_range", human_range), ("judge_range", judge_range))}
    flags = _task_flags(**locals())
    scoring = {"--data": data, "--model": model, "--backend": backend, "--range": range_, "--calibrated": calibrated}
    with one_writer(folder, wait=wait):
        source, columns = _compare_source(scores, flags, scoring, folder, (base_url, api_key_env))
        results = compare(source, score=score_column, labels=labels, seed=seed, threshold=threshold, n_boot=bootstrap,
                          human_range=ranges["human_range"], judge_range=ranges["judge_range"], **columns)
        written = write(results, folder, force=force)
    print_comparison(results)
    console.print(f"results in {written}/ (systems.csv, pairs.csv, compare.json, report.html)")


def _compare_source(scores: Path | None, flags: dict[str, Any], scoring: dict[str, Any], folder: Path,
                    server: tuple[str | None, str | None]) -> tuple[Any, dict[str, Any]]:
    """What compare reads and the columns it names: the --scores table (options that would
    score items are an error there), else the --data items scored here."""
    if scores is None:
        return _score_here(scoring["--data"], flags, tuple(scoring.values())[1:], folder, server), {}
    prompt = {f"--{k.replace('_', '-')}": flags[k] for k in ("template", "system", "answer_prefix", "id", "truncate")}
    if used := [k for k, v in {**scoring, **prompt}.items() if v is not None]:
        raise NumbiasError(f"{', '.join(used)} {_apply(used)} when compare scores --data itself; with --scores the "
                           "scores exist already (drop them, or drop --scores)")
    return scores, {"system_column": flags["system_column"] or "system", "human": flags["human"] or "human",
                    "group": flags["group"]}


def _score_here(data: Path | None, flags: dict[str, Any], judge: tuple[Any, ...], folder: Path,
                server: tuple[str | None, str | None]) -> Any:
    """The --data items scored by the named (or calibrated) judge, its store in the results folder."""
    from numbias.studies.scoring import score as score_items

    if data is None:
        raise NumbiasError("give --scores (judge scores already made) or --data (items to score here)")
    model, backend, range_, calibrated = judge
    fixed = {"--model": model, "--backend": backend, "--range": range_, "--template": flags["template"],
             "--system": flags["system"], "--answer-prefix": flags["answer_prefix"], "--truncate": flags["truncate"]}
    saved, named = _score_judge(calibrated, fixed, server)
    tasks = _tasks([], data, None, **flags)
    RUNNING["store"] = folder / "store.sqlite"
    return score_items(tasks[0], named, range_, store=folder / "store.sqlite", calibrated=saved,
                       progress=rich_progress)


def print_comparison(results: Any) -> None:
    """The per-system table and the pairwise matrix, every estimate with its 95% CI."""
    def ci(r: dict[str, Any], key: str, fmt: str = ".2f") -> str:
        if r.get(key) is None or r[key] != r[key]:
            return "—"
        return f"{r[key]:{fmt}} [{r[key + '_low']:{fmt}}, {r[key + '_high']:{fmt}}]"

    t = results.systems
    keys = [k for k in ("naive", "labelled_only", "ppi", "pass_naive", "pass_corrected") if k in t]
    heads = {"naive": "naive judge mean (biased)", "labelled_only": "labelled-only", "ppi": "PPI++",
             "pass_naive": "judge pass rate (biased)", "pass_corrected": "corrected pass rate"}
    table = Table(title="systems: mean human score, 95% CI")
    for col in ("system", "items", "labelled", *[heads[k] for k in keys], "λ", *(["truth"] if "truth" in t else [])):
        table.add_column(col, justify="left" if col == "system" else "right")
    for r in t.to_dict("records"):
        table.add_row(str(r["system"]), str(r["items"]), str(r["labelled"]), *[ci(r, k) for k in keys],
                      f"{r['lambda']:.2f}", *([f"{r['truth']:.2f}"] if "truth" in t else []))
    console.print(table)
    _print_pair_matrix(results.pairs, t["system"].tolist())
    agreement = ", ".join(f"{k} {e.text()}" for k, e in results.agreement.items())
    console.print(f"system-level agreement, judge vs human means over labelled items (95% CI): {agreement}")
    for note in results.notes:
        console.print(f"note: {note}", highlight=False)


def _print_pair_matrix(pairs: Any, names: list[str]) -> None:
    """Row − column (PPI++) with its 95% CI and P(row beats column) in every cell."""
    cells = {}
    for r in pairs.to_dict("records"):
        cells[r["a"], r["b"]] = f"{r['difference']:+.2f} [{r['low']:+.2f}, {r['high']:+.2f}] P={r['beats']:.2f}"
        cells[r["b"], r["a"]] = f"{-r['difference']:+.2f} [{-r['high']:+.2f}, {-r['low']:+.2f}] " \
                                f"P={1 - r['beats']:.2f}"
    table = Table(title="pairs: row − column (PPI++, 95% CI), P = P(row beats column)",
                  caption="p adjusted by Holm over the pairs in pairs.csv")
    table.add_column("")
    for name in names:
        table.add_column(name, justify="right")
    for a in names:
        table.add_row(a, *[cells.get((a, b), "") for b in names])
    console.print(table)


@app.command("report")
def report_cmd(
    folder: Annotated[Path, typer.Argument(help="Results folder of numbias run, align or mitigate.")],
    open_: Annotated[bool, typer.Option("--open", help="Open the report in the web browser.")] = False,
    wait: WaitOpt = False,
    force: ForceOpt = False,
) -> None:
    """Rebuild a results folder's report.html from its own files (no model, store or data file)."""
    import webbrowser

    from numbias.report.build import rebuild

    path = rebuild(folder, wait=wait, force=force)
    console.print(f"wrote {path}", highlight=False)
    if open_ and not webbrowser.open(path.resolve().as_uri()):
        console.print(f"no web browser found; open {path} yourself", highlight=False)


def _print_mitigation(frame: pd.DataFrame) -> None:
    """The mitigation table: each row's test r, its change against the paper's default
    with the paired interval and the Holm-adjusted p (group-level Pearson and interval
    coverage, each with its interval, where measured)."""
    def f(x: Any) -> str:
        return fmt_num(x, plain=True) if isinstance(x, float) else str(x)

    def ci(r: dict, key: str, signed: bool = False) -> str:
        return fmt_ci(r.get(key), r.get(f"{key}_low"), r.get(f"{key}_high"), signed=signed, plain=True)

    shown = {"row": lambda r: str(r["row"]), "setting": lambda r: str(r["setting"]),
             "dev score": lambda r: f(r["dev score"]), "kurtosis": lambda r: f(r["kurtosis"]),
             "Pearson [95% CI]": lambda r: ci(r, "pearson"), "Δ r vs default [95% CI]": lambda r: ci(r, "Δ r", True),
             "p (Holm)": lambda r: fmt_p(r.get("p adjusted")),
             "vs default": lambda r: str(r.get("vs default", ""))}
    if "group pearson" in frame:
        shown["group r [95% CI]"] = lambda r: ci(r, "group pearson")
    if "interval coverage" in frame:
        shown["90% interval coverage [95% CI]"] = lambda r: ci(r, "interval coverage")
    table = Table(title="mitigations: test split (settings chosen on development items only)", caption=(
        "Δ r: test r minus the paper's default's, paired bootstrap over the test items; p adjusted by Holm over the "
        "rows of each judge × task; better or worse only where the adjusted p < 0.05"))
    for col in ["judge", "task", *shown]:
        table.add_column(col, justify="left" if col in {"judge", "task", "row", "setting", "vs default"} else "right")
    for r in frame.to_dict("records"):
        table.add_row(str(r["judge"]), str(r["task"]), *[get(r) for get in shown.values()])
    console.print(table)


def print_summary(summary: Any) -> None:
    """The study's table; a group-level column when some task has groups."""
    grouped = "group_pearson" in summary and summary["group_pearson"].notna().any()
    table = Table(title="numerical bias and accuracy")
    for col in ("judge", "task", "scale", "rule", "kurtosis", "entropy", "mode share", "distinct",
                "Pearson [95% CI]", *(["group Pearson [95% CI]"] if grouped else []), "Spearman", "human ceiling"):
        table.add_column(col, justify="left" if col in {"judge", "task", "rule"} else "right")

    def f(x: float, d: int = 2) -> str:
        return "—" if x != x or x is None else f"{x:.{d}f}"

    def ci(r: dict[str, Any], key: str) -> str:
        return f"{f(r[key])} [{f(r[key + '_low'])}, {f(r[key + '_high'])}]"

    for r in summary.to_dict("records"):
        table.add_row(r["judge"], r["task"], r["scale"], r["rule"], f(r["kurtosis"]), f(r["entropy"]),
                      f(r["mode_share"]), str(r["distinct"]), ci(r, "pearson"),
                      *([ci(r, "group_pearson")] if grouped else []), f(r["spearman"]), f(r["human_ceiling"]))
    console.print(table)
    if "system_pearson" in summary:
        _print_system_agreement(summary, ci)


def _print_system_agreement(summary: Any, ci: Callable[[dict[str, Any], str], str]) -> None:
    """System-level agreement of judge means with human means, and what it counts."""
    from numbias.studies.bias import SYSTEM_CONVENTION

    table = Table(title="system-level agreement (judge means vs human means)", caption=SYSTEM_CONVENTION)
    for col in ("judge", "task", "scale", "rule", "systems", "Pearson [95% CI]", "Spearman [95% CI]",
                "Kendall [95% CI]"):
        table.add_column(col, justify="left" if col in {"judge", "task", "rule"} else "right")
    for r in summary.to_dict("records"):
        table.add_row(r["judge"], r["task"], r["scale"], r["rule"], str(r["systems"]), ci(r, "system_pearson"),
                      ci(r, "system_spearman"), ci(r, "system_kendall"))
    console.print(table)


def print_error(message: str) -> None:
    """An error as one plain line on stderr: no markup or emoji codes read from what the
    user typed (``my:thumbs_up:file.csv`` stays as written), however long the input."""
    sys.stderr.write(f"error: {one_line(message)}\n")
    sys.stderr.flush()


def main() -> None:
    """The command line: every stop ends as one line on stderr and its exit code (2 for
    bad input, 130 for Ctrl-C, 143 for SIGTERM), never a traceback."""
    previous = handle_signals()
    try:
        _run()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _run() -> None:
    """The app, its outcome turned into a line and an exit code."""
    RUNNING.clear()
    try:
        code = app(standalone_mode=False)
    except NumbiasError as exc:
        print_error(str(exc))
        sys.exit(2)
    except Interrupted as exc:
        _interrupted(exc.exit_code)
    except (typer.Exit, SystemExit) as exc:
        sys.exit(getattr(exc, "exit_code", getattr(exc, "code", 0)))
    except Exception as exc:  # typer's (vendored click) usage errors: a mistyped command or option
        format_message = getattr(exc, "format_message", None)
        if callable(format_message) and isinstance(getattr(exc, "exit_code", None), int):
            print_error(f"{format_message()} (see numbias --help)")
            sys.exit(2)
        raise
    if code == 130:  # typer's answer to a KeyboardInterrupt our handlers did not raise (another thread's main)
        _interrupted(code)
    if isinstance(code, int) and code:
        sys.exit(code)


def _interrupted(code: int) -> None:
    """Say what an interrupt kept, in one line, and exit with ``code`` (a second signal
    while saying it is ignored)."""
    from numbias.judge.store import count_items

    with suppress(ValueError):  # signals are set in the main thread only
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, signal.SIG_IGN)
    store = RUNNING.get("store")
    if store is None:
        line = NOT_STARTED
    elif not store.is_file():
        line = f"interrupted before any item was stored in {store}; run the same command to start again"
    else:
        kept = count_items(store)  # None: the store could not be read just now
        line = (f"interrupted: {'' if kept is None else f'{kept} '}finished items are kept in {store}; run the same "
                "command to resume")
    err_console.print(line, markup=False, highlight=False, soft_wrap=True)
    sys.exit(code)
