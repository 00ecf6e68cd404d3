"""Command line: ``numbias run``, ``align``, ``mitigate``, ``score``, ``models``.

Every user error ends as one line on stderr and exit code 2, never a traceback;
results already computed are in the store and survive any stop."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from numbias.errors import NumbiasError, first_line

if TYPE_CHECKING:
    import pandas as pd

app = typer.Typer(add_completion=False, no_args_is_help=False, pretty_exceptions_enable=False,
                  help="Find, measure and remove numerical bias in LLM-as-a-judge evaluators.")
console = Console(width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True)


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
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=err_console, transient=False) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)


def _tasks(names: list[str] | None, data: Path | None, option: list[str] | None) -> list[dict[str, Any]]:
    """Task configs from --task/--data/--option; --data and --option need a --task."""
    if not names:
        if data or option:
            raise NumbiasError("--data and --option apply to the tasks given with --task; add --task NAME")
        return []
    return [{"name": t, "path": str(data) if data else None, "options": _options(option)} for t in names]


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


@app.command()
def models(
    prepare: Annotated[bool, typer.Option(help="Assemble and verify every installed judge now (setup does).")] = False,
) -> None:
    """List the embedded judges and whether they are installed."""
    from numbias.models import JUDGES

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
    console.print("Any local .gguf path is accepted as a judge too.")


@app.command()
def score(
    model: Annotated[str, typer.Option(help="Registry name or path to a GGUF file.")] = "qwen2.5-coder-0.5b-instruct",
    task: Annotated[str, typer.Option(help="Built-in task (vader, simlex, mtqe, lcp, stsb, gecqe).")] = "vader",
    data: Annotated[Path | None, typer.Option(help="Data file or folder for the task.")] = None,
    range_: Annotated[str, typer.Option("--range", help="Score scale LO-HI.")] = "0-9",
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("numbias-scores"),
    option: Annotated[list[str] | None, typer.Option(help="Task option KEY=VALUE (n=200, pair=ro-en).")] = None,
    template: Annotated[str | None, typer.Option(help="Prompt template overriding the task's.")] = None,
) -> None:
    """Write each item's exact score distribution (one JSON record per item)."""
    from numbias.scale import ScoreScale
    from numbias.store import Store
    from numbias.study import Judge, JudgeConfig, TaskConfig, collect, task_template
    from numbias.tasks import get_task

    scale = ScoreScale.parse(range_)
    spec = get_task(task)
    tc = TaskConfig(name=task, path=str(data) if data else None, options=_options(option), template=template)
    dataset = spec.load(tc.path, **tc.options)
    prompt = task_template(spec, tc)
    prompt.check(set(dataset.fields))
    judge = Judge(JudgeConfig(model=model))
    store = Store(out / "store.sqlite")
    try:
        scored = collect(judge, dataset.name, dataset, prompt, scale, store, progress=rich_progress)
    finally:
        store.close()
    out.mkdir(parents=True, exist_ok=True)
    path = out / "scores.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for item_id, human, dist in zip(dataset.ids, dataset.human, scored.distributions):
            record = {"id": item_id, "human": human, "scale": str(scale),
                      "probs": dict(zip(scale.labels, dist.probs.round(10).tolist())),
                      "below": dist.below, "above": dist.above, "other": dist.other,
                      "n_tokens": dist.meta.get("n_tokens")}
            fh.write(json.dumps(record) + "\n")
    console.print(f"wrote {len(dataset)} distributions to {path}")


# Options shared by ``run``, ``align`` and ``mitigate``.
JudgeOpt = Annotated[list[str] | None, typer.Option(help="Judge name or GGUF path (repeatable).")]
TaskOpt = Annotated[list[str] | None, typer.Option(help="Task name (repeatable).")]
DataOpt = Annotated[Path | None, typer.Option(help="Data path for the given task(s).")]
OptionOpt = Annotated[list[str] | None, typer.Option(help="Task option KEY=VALUE (n=500, pair=ro-en).")]
ScaleOpt = Annotated[list[str] | None, typer.Option(help="Scale LO-HI (repeatable).")]
OutOpt = Annotated[Path | None, typer.Option(help="Results folder.")]


@app.command("run")
def run_cmd(
    config: Annotated[Path | None, typer.Argument(help="YAML study config (optional).")] = None,
    judge: JudgeOpt = None,
    task: TaskOpt = None,
    data: DataOpt = None,
    scale: ScaleOpt = None,
    rule: Annotated[list[str] | None, typer.Option(help="Scoring rule (repeatable).")] = None,
    option: OptionOpt = None,
    out: OutOpt = None,
) -> None:
    """Run a numerical-bias study (default: Qwen2.5-Coder-0.5B on VADER at 0-9, 1-5, 1-10)."""
    from numbias.study import RunConfig, run

    settings: dict[str, Any] = {}
    if config is not None:
        settings = RunConfig.from_yaml(config).model_dump()
    if judge:
        settings["judges"] = judge
    if tasks := _tasks(task, data, option):
        settings["tasks"] = tasks
    if scale:
        settings["scales"] = scale
    if rule:
        settings["rules"] = rule
    if out:
        settings["out"] = str(out)
    cfg = RunConfig.parse(settings)
    results = run(cfg, progress=rich_progress)
    folder = results.write()
    print_summary(results.summary)
    console.print(f"results in {folder}/ (items.csv, summary.json, config.yaml, report.html)")


@app.command("align")
def align_cmd(
    config: Annotated[Path | None, typer.Argument(help="YAML alignment-study config (optional).")] = None,
    base: Annotated[list[str] | None, typer.Option(help="Base judge of a pair: name or GGUF path (repeatable).")] = None,
    aligned: Annotated[list[str] | None, typer.Option(help="Aligned judge paired with the --base at the same "
                                                            "position (repeatable).")] = None,
    sample: Annotated[bool, typer.Option(help="Also run the sampling protocol on the models (else its exact "
                                              "expectation).")] = True,
    task: TaskOpt = None,
    data: DataOpt = None,
    option: OptionOpt = None,
    scale: ScaleOpt = None,
    out: OutOpt = None,
) -> None:
    """Base vs aligned judges (default: Gemma 3 270M base vs SmolLM2 135M instruct, plus Qwen)."""
    from numbias.align import align, parse_align
    from numbias.study import read_yaml

    settings: dict[str, Any] = read_yaml(config) if config is not None else {}
    if base or aligned:
        if len(base or []) != len(aligned or []):
            raise NumbiasError(f"give one --aligned per --base (got {len(base or [])} and {len(aligned or [])})")
        settings["pairs"] = [{"base": b, "aligned": a} for b, a in zip(base or [], aligned or [])]
        settings.setdefault("extra_aligned", [])
    if not sample:
        settings["sample"] = False
    if tasks := _tasks(task, data, option):
        settings["tasks"] = tasks
    if scale:
        settings["scales"] = scale
    if out:
        settings["out"] = str(out)
    results = align(parse_align(settings), progress=rich_progress)
    folder = results.study.write()
    results.table.to_csv(folder / "alignment.csv", index=False)
    results.simulated.to_csv(folder / "simulated_kurtosis.csv", index=False)
    table = Table(title="alignment study (layout of the paper's main table)")
    cols = ["base", "aligned", "task", "scale", "scoring", "human kurtosis", "base kurtosis", "aligned kurtosis",
            "base r", "aligned r"]
    for col in cols:
        table.add_column(col)
    for r in results.table.to_dict("records"):
        table.add_row(*[f"{r[c]:.2f}" if isinstance(r[c], float) else str(r[c]) for c in cols])
    console.print(table)
    for note in dict.fromkeys(results.table["note"]):
        if note:
            console.print(f"note: {note}")
    for rule, iv in results.correlation.items():
        console.print(f"kurtosis vs Pearson r over all settings ({rule}): {iv.value:.2f} [{iv.low:.2f}, {iv.high:.2f}]"
                      " (paper: -0.60)")
    _print_shift(results.shift)
    console.print(f"results in {folder}/ (alignment.csv, simulated_kurtosis.csv, report.html)")


@app.command("correlate")
def correlate_cmd(
    folders: Annotated[list[Path], typer.Argument(help="Results folders (each with a summary.json).")],
) -> None:
    """Kurtosis against Pearson r across every setting of one or more results folders
    (a study run in parts, pooled)."""
    import pandas as pd

    from numbias.align import kurtosis_accuracy, paired_shift

    frames = []
    for folder in folders:
        path = folder / "summary.json"
        try:
            frames.append(pd.read_json(path))
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
        console.print(f"kurtosis vs Pearson r over {n} settings ({rule}): {iv.value:.2f} [{iv.low:.2f}, {iv.high:.2f}]"
                      " (paper: -0.60)")
    tables = [folder / "alignment.csv" for folder in folders]
    if missing := [str(t.parent) for t in tables if not t.is_file()]:
        if len(missing) < len(tables):
            console.print(f"no paired view: {', '.join(missing)} has no alignment.csv (not a `numbias align` folder)")
        return
    try:
        _print_shift(paired_shift(pd.concat([pd.read_csv(t) for t in tables], ignore_index=True)))
    except (OSError, ValueError, KeyError) as exc:
        raise NumbiasError(f"cannot read the alignment tables: {first_line(exc)}") from None


def _print_shift(shift: pd.DataFrame) -> None:
    """One line per scoring: the paired counts of :func:`numbias.align.paired_shift`."""
    for r in shift.to_dict("records"):
        console.print(f"aligned vs base ({r['scoring']}): more peaked in {r['more peaked']} of {r['settings']} "
                      f"settings, less accurate in {r['less accurate']}, both in {r['both']} (median change: "
                      f"kurtosis {r['median Δ kurtosis']:+.2f}, Pearson r {r['median Δ r']:+.2f})")


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
    criterion: Annotated[str | None, typer.Option(help="pearson (dev labels), entropy or kurtosis (label-free).")]
    = None,
    sample: Annotated[bool, typer.Option(help="Also run the sampling protocol at T 0.4/0.7/1.0/1.3.")] = False,
    save: Annotated[Path | None, typer.Option(help="Save the automatic choice as a calibrated judge (JSON).")]
    = None,
    out: OutOpt = None,
) -> None:
    """Compare temperature, calibration, mapping and range; choose on dev, prove on test."""
    from numbias.mitigate import mitigate, parse_mitigate
    from numbias.study import read_yaml

    settings: dict[str, Any] = read_yaml(config) if config is not None else {}
    if judge:
        settings["judges"] = judge
    if tasks := _tasks(task, data, option):
        settings["tasks"] = tasks
    for key, value in (("scales", scale), ("dev", dev), ("folds", folds), ("criterion", criterion),
                       ("out", str(out) if out else None)):
        if value:
            settings[key] = value
    if sample:
        settings["sample"] = True
    results = mitigate(parse_mitigate(settings), progress=rich_progress)
    folder = results.write()
    cols = ["judge", "task", "row", "setting", "dev score", "kurtosis", "pearson", "spearman"]
    table = Table(title="mitigations: test split (settings chosen on development items only)")
    for col in cols:
        table.add_column(col, justify="left" if col in {"judge", "task", "row", "setting"} else "right")
    for r in results.table.to_dict("records"):
        cells = [str(r[c]) if not isinstance(r[c], float) else ("—" if r[c] != r[c] else f"{r[c]:.2f}") for c in cols]
        cells[6] = f"{r['pearson']:.2f} [{r['pearson_low']:.2f}, {r['pearson_high']:.2f}]"
        table.add_row(*cells)
    console.print(table)
    if save:
        path = results.comparisons[0].calibrated().save(save)
        console.print(f"saved the automatic choice of {results.comparisons[0].task} as {path}")
    console.print(f"results in {folder}/ (mitigation.csv, dev_scores.csv, report.html)")


def print_summary(summary: Any) -> None:
    table = Table(title="numerical bias and accuracy")
    for col in ("judge", "task", "scale", "rule", "kurtosis", "entropy", "mode share", "distinct",
                "Pearson [95% CI]", "Spearman", "human ceiling"):
        table.add_column(col, justify="left" if col in {"judge", "task", "rule"} else "right")

    def f(x: float, d: int = 2) -> str:
        return "—" if x != x else f"{x:.{d}f}"

    for r in summary.to_dict("records"):
        table.add_row(r["judge"], r["task"], r["scale"], r["rule"], f(r["kurtosis"]), f(r["entropy"]),
                      f(r["mode_share"]), str(r["distinct"]),
                      f"{f(r['pearson'])} [{f(r['pearson_low'])}, {f(r['pearson_high'])}]",
                      f(r["spearman"]), f(r["human_ceiling"]))
    console.print(table)


def main() -> None:
    try:
        app(standalone_mode=False)
    except NumbiasError as exc:
        err_console.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted: finished items are kept in the store; run again to resume")
        sys.exit(130)
    except (typer.Exit, SystemExit) as exc:
        code = getattr(exc, "exit_code", getattr(exc, "code", 0))
        sys.exit(code)
    except Exception as exc:  # click usage errors and the like
        import click

        if isinstance(exc, click.ClickException):
            err_console.print(f"error: {exc.format_message()}", markup=False, soft_wrap=True)
            sys.exit(2)
        raise
