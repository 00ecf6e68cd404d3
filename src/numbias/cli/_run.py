"""``numbias run``: the numerical-bias study, and its tables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from numbias.cli._common import RUNNING, Column, console, interval, number, print_table, rich_progress, text
from numbias.cli._options import ForceOpt, Server, StudyFlags, Tailored, TaskFlags, WaitOpt, grouped

WORDS = {"judge", "task", "rule"}
"""The columns of text in the study's tables."""


RunStudy = Annotated[StudyFlags, Tailored(omit=("source",))]
"""run's study options: it re-analyses no folder (no ``--from``)."""


@grouped
def run_cmd(
    config: Annotated[Path | None, typer.Argument(help="YAML study config (optional).")] = None,
    study: RunStudy = StudyFlags(),
    rule: Annotated[
        list[str] | None,
        typer.Option(help="Scoring rule (repeatable): greedy, expected, median, protocol, quantile:Q, mean-sd:L."),
    ] = None,
    tasks: TaskFlags = TaskFlags(),
    wait: WaitOpt = False,
    force: ForceOpt = False,
    server: Server = Server(),
) -> None:
    """Run a numerical-bias study (default: Qwen2.5-Coder-0.5B on VADER at 0-9, 1-5, 1-10)."""
    from numbias.judge.config import RunConfig, use_server
    from numbias.report.build import RUN_FILES, write
    from numbias.studies.bias import run
    from numbias.util.output import claim, one_writer

    settings: dict[str, Any] = RunConfig.from_yaml(config).model_dump() if config is not None else {}
    settings.update(study.settings(tasks.configs()))
    if rule:
        settings["rules"] = rule
    cfg = RunConfig.parse(settings)
    claim(cfg.out, RUN_FILES, force=force)
    use_server(cfg.judges, server.base_url, server.api_key_env)
    RUNNING["store"] = cfg.store_path
    with one_writer(cfg.out, wait=wait):
        results = run(cfg, progress=rich_progress)
        folder = write(results, force=force)
    print_summary(results.summary)
    for note in results.notes:
        console.print(f"note: {note}")
    console.print(f"results in {folder}/ (items.csv, summary.json, config.yaml, report.html)")


def print_summary(summary: Any) -> None:
    """The study's table; a group-level column when some task has groups."""
    grouped = "group_pearson" in summary and summary["group_pearson"].notna().any()
    columns: dict[str, Column] = {
        "judge": text("judge"),
        "task": text("task"),
        "scale": text("scale"),
        "rule": text("rule"),
        "kurtosis": number("kurtosis"),
        "entropy": number("entropy"),
        "mode share": number("mode_share"),
        "distinct": text("distinct"),
        "Pearson [95% CI]": interval("pearson"),
        **({"group Pearson [95% CI]": interval("group_pearson")} if grouped else {}),
        "Spearman": number("spearman"),
        "human ceiling": number("human_ceiling"),
    }
    print_table("numerical bias and accuracy", columns, summary.to_dict("records"), words=WORDS)
    if "system_pearson" in summary:
        _print_system_agreement(summary)


def _print_system_agreement(summary: Any) -> None:
    """System-level agreement of judge means with human means, and what it counts."""
    from numbias.studies.bias import SYSTEM_CONVENTION

    columns = {
        "judge": text("judge"),
        "task": text("task"),
        "scale": text("scale"),
        "rule": text("rule"),
        "systems": text("systems"),
        "Pearson [95% CI]": interval("system_pearson"),
        "Spearman [95% CI]": interval("system_spearman"),
        "Kendall [95% CI]": interval("system_kendall"),
    }
    print_table(
        "system-level agreement (judge means vs human means)",
        columns,
        summary.to_dict("records"),
        words=WORDS,
        caption=SYSTEM_CONVENTION,
    )
