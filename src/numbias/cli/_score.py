"""``numbias score``: items scored, labelled or not, by a named judge or a saved calibrated one."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from numbias.cli._common import RUNNING, console, rich_progress
from numbias.cli._options import ForceOpt, Server, TaskFlags, WaitOpt, WorkersOpt, grouped
from numbias.util.errors import NumbiasError


@grouped
def score(
    model: Annotated[
        str | None, typer.Option(help="Judge: registry name, GGUF path, or the backend's model name.")
    ] = None,
    backend: Annotated[
        str | None, typer.Option(help="Backend (llama.cpp, transformers, openai, a registered name or module:attr).")
    ] = None,
    tasks: TaskFlags = TaskFlags(),
    range_: Annotated[str | None, typer.Option("--range", help="Score scale, as --scale (default 0-9).")] = None,
    out: Annotated[str, typer.Option(help="Output folder.")] = "numbias-scores",
    calibrated: Annotated[
        Path | None,
        typer.Option(
            help="A calibrated judge saved by `numbias mitigate --save`: write calibrated scores on the human scale."
        ),
    ] = None,
    wait: WaitOpt = False,
    force: ForceOpt = False,
    server: Server = Server(),
    workers: WorkersOpt = None,
) -> None:
    """Score items, labelled or not: each item's exact distribution and its score by
    every rule (scores.jsonl, scores.csv); with --calibrated, the saved judge's scores."""
    from numbias.studies.scoring import SCORE_FILES, write_scores
    from numbias.studies.scoring import score as score_items
    from numbias.util.output import checked_path, claim, one_writer

    claim(out, SCORE_FILES, force=force)
    folder = checked_path(out)
    saved, judge = score_judge(calibrated, judge_flags(model, backend, range_, tasks), server)
    configs = (tasks if tasks.task or tasks.data is not None else replace(tasks, task=["vader"])).configs()
    if len(configs) != 1:
        raise NumbiasError("numbias score takes one task (or one --data file) at a time")
    RUNNING["store"] = folder / "store.sqlite"
    with one_writer(folder, wait=wait):
        scored = score_items(
            configs[0],
            judge,
            range_,
            store=folder / "store.sqlite",
            calibrated=saved,
            progress=rich_progress,
            workers=workers,
        )
        paths = write_scores(scored, folder, force=force)
    for note in scored.notes:
        console.print(f"note: {note}")
    console.print(f"wrote {len(scored.ids)} items to {paths[0]} and {paths[1]}")


def judge_flags(model: str | None, backend: str | None, range_: str | None, tasks: TaskFlags) -> dict[str, Any]:
    """The options a calibrated judge fixes, by the flag that gives each."""
    return {
        "--model": model,
        "--backend": backend,
        "--range": range_,
        "--template": tasks.template,
        "--system": tasks.system,
        "--answer-prefix": tasks.answer_prefix,
        "--truncate": tasks.truncate,
    }


def score_judge(calibrated: Path | None, fixed: dict[str, Any], server: Server) -> tuple[Any, Any]:
    """``(saved judge, None)`` for ``--calibrated`` (which fixes judge, scale and prompt:
    no flag may set them), else ``(None, the named judge)``, on the user's server."""
    from numbias.judge.config import JudgeConfig, use_server, validate_config
    from numbias.models.catalog import DEFAULT_JUDGE
    from numbias.studies.calibrated import CalibratedJudge

    if calibrated is not None:
        if given := [k for k, v in fixed.items() if v is not None]:
            raise NumbiasError(
                f"{', '.join(given)}: the calibrated judge {calibrated} fixes its judge, scale and "
                "prompt; drop these options"
            )
        return CalibratedJudge.load(calibrated, base_url=server.base_url, api_key_env=server.api_key_env), None
    model, backend = fixed["--model"], fixed["--backend"]
    named = {"model": DEFAULT_JUDGE if model is None else model, **({} if backend is None else {"backend": backend})}
    judge = validate_config(JudgeConfig, named, "numbias score")
    use_server([judge], server.base_url, server.api_key_env)
    return None, judge
