"""The result files of run, align, mitigate and compare, and the self-contained page
among them: :func:`write` writes a study's files into its results folder, and
:func:`rebuild` draws the page again from a folder's own files (or, for an older
folder, its store), loading no model.

The pages themselves are drawn elsewhere: each study's in its own module (``_study``,
``_align``, ``_mitigate``, ``_compare``), from the verdicts (:mod:`numbias.report.verdict`),
tables (:mod:`numbias.report.html`) and charts (:mod:`numbias.report.svg`), through the
templates in ``templates/``, which escape every text that came from a data set or a
config."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import singledispatch
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from pydantic import BaseModel

from numbias.judge.config import RunConfig, judge_as_data, read_yaml, validate_config
from numbias.judge.judging import store_only
from numbias.report._align import align_page
from numbias.report._compare import compare_page
from numbias.report._mitigate import mitigate_page
from numbias.report._study import study_page
from numbias.studies.alignment import AlignConfig, AlignResults, align
from numbias.studies.bias import StudyResults, run
from numbias.studies.comparison import CompareResults
from numbias.studies.mitigation import MitigateConfig, MitigateResults, mitigate
from numbias.studies.recompute import (
    DATA,
    DISTS,
    PREDICTIONS,
    align_from,
    mitigate_data,
    mitigate_dists,
    mitigate_from,
    predictions_frame,
    study_data,
    study_dists,
    study_from,
    write_csv,
)
from numbias.util.errors import NumbiasError
from numbias.util.output import Writer, one_writer, text, write_all

# --- result files --------------------------------------------------------------------


@singledispatch
def files(results: Any) -> dict[str, Writer]:
    """A study's result files by name, each a writer (nothing is computed until written)."""
    raise NumbiasError(
        f"cannot write results of type {type(results).__name__} (give what run, align or mitigate returned)"
    )


RUN_FILES = ("items.csv", "summary.json", "config.yaml", DISTS, DATA, "report.html")
"""Every file ``numbias run`` may write, for the check before it starts (:func:`numbias.util.output.claim`)."""
ALIGN_FILES = (
    *RUN_FILES,
    "alignment.csv",
    "simulated_kurtosis.csv",
    "align-config.yaml",
    "stages.csv",
    "diversity.csv",
    "generations.csv",
)
COMPARE_FILES = ("systems.csv", "pairs.csv", "compare.json", "report.html")
"""Every file ``numbias compare`` writes."""
MITIGATE_FILES = (
    "mitigation.csv",
    "dev_scores.csv",
    "selection.csv",
    "label_efficiency.csv",
    "transfer.csv",
    "mitigate-config.yaml",
    DISTS,
    DATA,
    PREDICTIONS,
    "report.html",
)


def write(results: Any, out: str | Path | None = None, *, force: bool = False) -> Path:
    """Write a study's result files and report into ``out`` (default: the config's
    ``out``), all replaced together; returns the folder. A file there that numbias did
    not write is an error unless ``force``.

    >>> write(object())
    Traceback (most recent call last):
    ...
    numbias.util.errors.NumbiasError: cannot write results of type object (give what run, align or mitigate returned)
    """
    contents = files(results)
    return write_all(out or results.config.out, contents, force=force)


def _yaml(config: BaseModel) -> Writer:
    return text(yaml.safe_dump(config.model_dump(mode="json", exclude_none=True), sort_keys=False))


def _csv(frame: pd.DataFrame) -> Writer:
    return lambda p: frame.to_csv(p, index=False)


@files.register
def _(results: StudyResults) -> dict[str, Writer]:
    return {**study_files(results), "report.html": lambda p: p.write_text(study_page(results), encoding="utf-8")}


@files.register
def _(results: AlignResults) -> dict[str, Writer]:
    return {
        **study_files(results.study),
        "alignment.csv": _csv(results.table),
        "simulated_kurtosis.csv": _csv(results.simulated),
        "align-config.yaml": _yaml(results.config),
        **{
            name: _csv(frame)
            for name, frame in (
                ("stages.csv", results.stages),
                ("diversity.csv", results.diversity),
                ("generations.csv", results.generations),
            )
            if len(frame)
        },
        "report.html": lambda p: p.write_text(align_page(results), encoding="utf-8"),
    }


@files.register
def _(results: MitigateResults) -> dict[str, Writer]:
    dev = pd.DataFrame(
        [
            {"judge": c.judge.name, "task": c.task, "setting": s.label, "dev score": v}
            for c in results.comparisons
            for s, v in c.dev_scores.items()
        ]
    )
    checks = {
        name: frame
        for name, frame in (
            ("selection.csv", results.selection),
            ("label_efficiency.csv", results.label_curve),
            ("transfer.csv", results.transfer),
        )
        if len(frame)
    }
    return {
        "mitigation.csv": _csv(results.table),
        "dev_scores.csv": _csv(dev),
        **{name: _csv(frame) for name, frame in checks.items()},
        "mitigate-config.yaml": _yaml(results.config),
        DISTS: write_csv(mitigate_dists(results)),
        DATA: write_csv(mitigate_data(results)),
        PREDICTIONS: write_csv(predictions_frame(results)),
        "report.html": lambda p: p.write_text(mitigate_page(results), encoding="utf-8"),
    }


@files.register
def _(results: CompareResults) -> dict[str, Writer]:
    return {
        "systems.csv": _csv(results.systems),
        "pairs.csv": _csv(results.pairs),
        "compare.json": text(json.dumps(results.to_json(), indent=2)),
        "report.html": lambda p: p.write_text(compare_page(results), encoding="utf-8"),
    }


def study_files(results: StudyResults) -> dict[str, Writer]:
    """A study's data files: per-item scores, the summary, the config it ran."""
    records = json.loads(results.summary.to_json(orient="records"))
    return {
        "items.csv": _csv(results.items),
        "summary.json": text(json.dumps(records, indent=2)),
        "config.yaml": _yaml(results.config),
        DISTS: write_csv(study_dists(results)),
        DATA: write_csv(study_data(results)),
    }


# --- rebuilding from a results folder ------------------------------------------------

REBUILDS: tuple[tuple[str, type[BaseModel], Callable[[Any], Any], Callable[[Path, Any], Any]], ...] = (
    ("mitigate-config.yaml", MitigateConfig, mitigate, mitigate_from),
    ("align-config.yaml", AlignConfig, align, align_from),
    ("config.yaml", RunConfig, run, study_from),
)
"""Which config a results folder holds, the schema it is read with, the study that
reads its store again, and the one that recomputes it from the folder's files."""


def rebuild(folder: str | Path, *, wait: bool = False, force: bool = False) -> Path:
    """Write ``folder/report.html`` again, loading no model: from the folder's own files
    (its distributions and items, :mod:`numbias.studies.recompute`; a comparison's
    ``compare.json``) where it has them, else from its config and store (an item missing
    from the store is an error; data files the config names are read relative to the
    working folder). Returns the page's path. A report.html numbias did not write is
    replaced only with ``force``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NumbiasError(f"results folder {folder} does not exist")
    if not any((folder / entry[0]).is_file() for entry in REBUILDS) and (folder / "compare.json").is_file():
        return _rewrite(folder, lambda: _comparison(folder), "compare.json", wait=wait, force=force)
    name, config, study, from_files = folder_config(folder)
    if (folder / DISTS).exists():
        config = config.model_copy(update={"out": str(folder)})
        return _rewrite(folder, lambda: from_files(folder, config), "the folder's files", wait=wait, force=force)
    _judges_as_data(config, folder / name)
    store = Path(config.store) if config.store else folder / "store.sqlite"
    if not store.is_file():
        raise NumbiasError(
            f"{folder} holds no {DISTS}{_scores_only(folder)} and its store {store} does not exist: "
            "a report is drawn from the distributions (or the store its study wrote)"
        )
    config = config.model_copy(update={"out": str(folder), "store": str(store)})

    def from_store() -> Any:
        with store_only():
            return study(config)

    return _rewrite(folder, from_store, str(store), wait=wait, force=force)


def _rewrite(folder: Path, results: Callable[[], Any], source: str, *, wait: bool, force: bool) -> Path:
    """The page drawn from ``results()`` (computed while holding the folder's writer lock)
    and written in place; a failure names the source the page was to be drawn from."""
    with one_writer(folder, wait=wait):
        try:
            drawn = results()
        except NumbiasError as exc:
            raise NumbiasError(f"cannot rebuild {folder / 'report.html'} from {source}: {exc}") from None
        write_all(folder, {"report.html": files(drawn)["report.html"]}, force=force)
    return folder / "report.html"


def _comparison(folder: Path) -> CompareResults:
    """A ``numbias compare`` folder's results, from its ``compare.json`` (which holds
    every number the page shows)."""
    try:
        data = json.loads((folder / "compare.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NumbiasError(f"cannot read it: {exc}") from None
    if not isinstance(data, dict):
        raise NumbiasError(f"{folder / 'compare.json'} is not a numbias compare.json: not an object")
    return CompareResults.from_json(data)


def _scores_only(folder: Path) -> str:
    """The per-item scores a folder holds, named, so its owner sees they are not enough
    (the page's histograms, verdicts and item tables read the distributions)."""
    held = [name for name in ("items.csv", "items.csv.gz") if (folder / name).is_file()]
    return f", only per-item scores ({held[0]})," if held else ""


def folder_config(folder: Path) -> tuple[str, Any, Callable[[Any], Any], Callable[[Path, Any], Any]]:
    """The config of the study that wrote ``folder`` last (a folder two studies shared;
    align writes config.yaml too, first), validated, with its two ways to recompute."""
    present = [(k, entry) for k, entry in enumerate(REBUILDS) if (folder / entry[0]).is_file()]
    if not present:
        raise NumbiasError(
            f"{folder} holds no config.yaml, align-config.yaml, mitigate-config.yaml or compare.json: "
            "not a results folder of numbias run, align, mitigate or compare"
        )
    _, (name, schema, study, from_files) = max(present, key=lambda p: ((folder / p[1][0]).stat().st_mtime_ns, -p[0]))
    return name, validate_config(schema, read_yaml(folder / name), str(folder / name)), study, from_files


def _judges_as_data(config: Any, path: Path) -> None:
    """The folder's judges read as data, in place: registered backends only, no routing
    options (the report contacts no server and imports no code)."""
    judges = (
        config.judges
        if hasattr(config, "judges")
        else [j for p in config.pairs for j in (p.base, p.aligned)] + list(config.extra_aligned)
    )
    if objects := [j.name for j in judges if j.backend == "object"]:
        raise NumbiasError(
            f"{path}: judge {objects[0]!r} was given as a Python object; rebuild this report from "
            "Python with numbias.write"
        )
    for judge in judges:
        judge.options = judge_as_data(judge, str(path))[0].options
