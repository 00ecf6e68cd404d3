"""``numbias compare``: which system is better and how sure, from judge scores and a few labels."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from numbias.cli._common import RUNNING, Column, console, interval, number, print_table, rich_progress, text
from numbias.cli._options import ForceOpt, Server, Tailored, TaskFlags, WaitOpt, WorkersOpt, applies, flag, grouped
from numbias.cli._score import judge_flags, score_judge
from numbias.util.errors import NumbiasError
from numbias.util.fmt import fmt_ci, fmt_num

PairGroupOpt = Annotated[
    str | None,
    typer.Option(
        help="The group column (the input every system answered, e.g. the dialogue): pairs outputs across systems."
    ),
]
CompareTasks = Annotated[TaskFlags, Tailored(omit=("task", "option", "ratings"), own={"group": PairGroupOpt})]
"""compare's task options: one data file, its ``--group`` what pairs the systems' outputs."""
# compare's own options, declared apart so that its signature stays short.
ScoresOpt = Annotated[
    Path | None,
    typer.Option(
        help="Judge scores already made: a folder numbias score wrote, or "
        "a table (CSV, TSV, JSONL, JSON, Parquet) with a judge-score "
        "column; else the --data items are scored here."
    ),
]
ScoreColumnOpt = Annotated[
    str | None, typer.Option(help="The judge-score column (default: calibrated_human, else expected).")
]
LabelsOpt = Annotated[
    int | None,
    typer.Option(
        help="When every row has a human score: keep N labels (N groups "
        "with --group, else N rows of each system), seeded, to "
        "simulate a labelling budget.",
        min=2,
    ),
]
ThresholdOpt = Annotated[
    float | None,
    typer.Option(help="Also pass rates: a score at or above it passes (human scale), corrected by Rogan–Gladen."),
]
JudgeRangeOpt = Annotated[
    str | None,
    typer.Option(
        help="The judge scores' scale LO-HI, mapped onto the human "
        "range (default: the scored folder's, else the human "
        "scale)."
    ),
]
BootstrapOpt = Annotated[int, typer.Option(help="Bootstrap resamples for P(A beats B) and pass rates.", min=100)]
ScoringJudgeOpt = Annotated[
    str | None, typer.Option(help="Judge that scores --data (registry name, GGUF path, model name).")
]
CalibratedOpt = Annotated[
    Path | None,
    typer.Option(
        help="A calibrated judge saved by `numbias mitigate --save` scores --data (its scores on the human scale)."
    ),
]
CompareOutOpt = Annotated[
    str,
    typer.Option(
        help="Results folder (systems.csv, pairs.csv, compare.json, report.html; the store when scoring here)."
    ),
]


@grouped
def compare_cmd(
    scores: ScoresOpt = None,
    score_column: ScoreColumnOpt = None,
    labels: LabelsOpt = None,
    seed: Annotated[int, typer.Option(help="Seed of the label draw and the bootstrap.")] = 0,
    threshold: ThresholdOpt = None,
    judge_range: JudgeRangeOpt = None,
    bootstrap: BootstrapOpt = 2000,
    model: ScoringJudgeOpt = None,
    backend: Annotated[str | None, typer.Option(help="Backend of that judge.")] = None,
    range_: Annotated[str | None, typer.Option("--range", help="Scale the judge answers on (default 0-9).")] = None,
    calibrated: CalibratedOpt = None,
    tasks: CompareTasks = TaskFlags(),
    out: CompareOutOpt = "numbias-compare",
    wait: WaitOpt = False,
    force: ForceOpt = False,
    server: Server = Server(),
    workers: WorkersOpt = None,
) -> None:
    """Which system is better, and how sure: naive, labelled-only and PPI++ means, every pair A − B."""
    from numbias.data.tasks import parse_range
    from numbias.report.build import COMPARE_FILES, write
    from numbias.studies.comparison import compare
    from numbias.util.output import checked_path, claim, one_writer

    claim(out, COMPARE_FILES, force=force)
    folder = checked_path(out)
    ranges = {
        k: parse_range(v, flag(k)) if v else None
        for k, v in (("human_range", tasks.human_range), ("judge_range", judge_range))
    }
    judge = {
        "--model": model,
        "--backend": backend,
        "--range": range_,
        "--calibrated": calibrated,
        "--workers": workers,
    }
    with one_writer(folder, wait=wait):
        source, columns = _compare_source(scores, tasks, judge, folder, server)
        results = compare(
            source,
            score=score_column,
            labels=labels,
            seed=seed,
            threshold=threshold,
            n_boot=bootstrap,
            human_range=ranges["human_range"],
            judge_range=ranges["judge_range"],
            **columns,
        )
        written = write(results, folder, force=force)
    print_comparison(results)
    console.print(f"results in {written}/ (systems.csv, pairs.csv, compare.json, report.html)")


def _compare_source(
    scores: Path | None, tasks: TaskFlags, judge: dict[str, Any], folder: Path, server: Server
) -> tuple[Any, dict[str, Any]]:
    """What compare reads and the columns it names: the --scores table (options that would
    score items are an error there), else the --data items scored here."""
    if scores is None:
        return _score_here(tasks, judge, folder, server), {}
    prompt = {flag(k): getattr(tasks, k) for k in ("template", "system", "answer_prefix", "id", "truncate")}
    if used := [k for k, v in {"--data": tasks.data, **judge, **prompt}.items() if v is not None]:
        raise NumbiasError(
            f"{', '.join(used)} {applies(used)} when compare scores --data itself; with --scores the "
            "scores exist already (drop them, or drop --scores)"
        )
    return scores, {
        "system_column": tasks.system_column or "system",
        "human": tasks.human or "human",
        "group": tasks.group,
    }


def _score_here(tasks: TaskFlags, judge: dict[str, Any], folder: Path, server: Server) -> Any:
    """The --data items scored by the named (or calibrated) judge, its store in the results folder."""
    from numbias.studies.scoring import score as score_items

    if tasks.data is None:
        raise NumbiasError("give --scores (judge scores already made) or --data (items to score here)")
    fixed = judge_flags(judge["--model"], judge["--backend"], judge["--range"], tasks)
    saved, named = score_judge(judge["--calibrated"], fixed, server)
    configs = tasks.configs()
    RUNNING["store"] = folder / "store.sqlite"
    return score_items(
        configs[0],
        named,
        judge["--range"],
        store=folder / "store.sqlite",
        calibrated=saved,
        progress=rich_progress,
        workers=judge["--workers"],
    )


def print_comparison(results: Any) -> None:
    """The per-system table and the pairwise matrix, every estimate with its 95% CI."""
    t = results.systems
    heads = {
        "naive": "naive judge mean (biased)",
        "labelled_only": "labelled-only",
        "ppi": "PPI++",
        "pass_naive": "judge pass rate (biased)",
        "pass_corrected": "corrected pass rate",
    }
    columns: dict[str, Column] = {
        "system": text("system"),
        "items": text("items"),
        "labelled": text("labelled"),
        **{head: interval(k) for k, head in heads.items() if k in t},
        "λ": number("lambda"),
        **({"truth": number("truth")} if "truth" in t else {}),
    }
    print_table("systems: mean human score, 95% CI", columns, t.to_dict("records"), words={"system"})
    _print_pair_matrix(results.pairs, t["system"].tolist())
    agreement = ", ".join(f"{k} {e.text()}" for k, e in results.agreement.items())
    console.print(f"system-level agreement, judge vs human means over labelled items (95% CI): {agreement}")
    for note in results.notes:
        console.print(f"note: {note}", highlight=False)


def _print_pair_matrix(pairs: Any, names: list[str]) -> None:
    """Row − column (PPI++) with its 95% CI and P(row beats column) in every cell."""
    cells = {}
    for r in pairs.to_dict("records"):
        cells[r["a"], r["b"]] = _pair_cell(r["difference"], r["low"], r["high"], r["beats"])
        cells[r["b"], r["a"]] = _pair_cell(-r["difference"], -r["high"], -r["low"], 1 - r["beats"])
    rows = [{"": a, **{b: cells.get((a, b), "") for b in names}} for a in names]
    print_table(
        "pairs: row − column (PPI++, 95% CI), P = P(row beats column)",
        {n: text(n) for n in ["", *names]},
        rows,
        words={""},
        caption="p adjusted by Holm over the pairs in pairs.csv",
    )


def _pair_cell(difference: float, low: float, high: float, beats: float) -> str:
    """``+0.12 [+0.03, +0.21] P=0.99``: a difference, its 95% CI and the chance it is above zero."""
    return f"{fmt_ci(difference, low, high, signed=True, plain=True)} P={fmt_num(beats, plain=True)}"
