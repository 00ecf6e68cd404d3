"""A results folder that recomputes itself. Every distribution a study read is written
beside its results (``dists.csv.gz``), with the items as the judge read them
(``data.csv.gz``) and, for ``mitigate``, each table row's test predictions
(``predictions.csv.gz``); this module writes those frames and reads them back into the
studies' own inputs, so a report or a re-analysis needs no store, no model and no
data file. Floats are written in their shortest exact form and read back exactly, so
a re-analysis gives the same tables."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from numbias.core.distribution import AMATEUR, ScoreDistribution
from numbias.core.scale import PAPER_SCALE, ScoreScale
from numbias.data.dataset import Dataset
from numbias.data.prompt import PromptTemplate
from numbias.data.tasks import PreparedTask, task_notes
from numbias.judge.config import JudgeConfig, RunConfig, judge_as_data
from numbias.judge.judging import ScoredSet
from numbias.mitigations import PAPER_TEMPERATURES, SettingData
from numbias.studies.alignment import AlignConfig, AlignResults, align_results
from numbias.studies.bias import StudyResults, analyse
from numbias.studies.mitigation import (
    CONTENT_FREE,
    Comparison,
    MitigateConfig,
    MitigateResults,
    compare_all,
    paired_scales,
)
from numbias.util.errors import NumbiasError, first_line

DISTS, DATA, PREDICTIONS = "dists.csv.gz", "data.csv.gz", "predictions.csv.gz"
KEYS = ["judge", "task", "scale", "mode", "kind", "temperature", "id", "human"]
"""The distribution file's leading columns; ``p<value>`` for every value of the
study's scales, then ``below``, ``above``, ``other``, ``n_samples`` and the per-item
facts (``cut``, ``next_token_entropy``) follow."""
MASSES = ["below", "above", "other", "n_samples", "cut", "next_token_entropy"]
TASK_KEYS = ["task", "name", "human_lo", "human_hi", "fields", "template", "truncate", "notes"]
"""The data file's per-task columns (the same on each of a task's rows), then its items."""
TEXT = {"judge", "task", "scale", "mode", "kind", "id", "row"}
"""The text columns of the distribution and prediction files (the data file's are all
text but the human scores and range)."""
NUMBERS = {"human", "human_lo", "human_hi"}
ITEM, FREE = "item", "content-free"
EXACT = {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}
"""How pandas reads a float back exactly (pandas 3 does by default and deprecates the option)."""


# --- writing -------------------------------------------------------------------------


def _value_columns(scale: ScoreScale) -> list[str]:
    """A scale's probability columns, one per value (``p0``..``p9``; a scale of labels or
    of reversed digits by its values too, its labels read from its ``scale`` column)."""
    return [f"p{v}" for v in range(scale.lo, scale.hi + 1)]


def set_rows(
    judge: str,
    task: str,
    scale: ScoreScale,
    mode: str,
    kind: str,
    ids: list[str],
    human: np.ndarray,
    dists: list[ScoreDistribution],
    temperatures: Iterable[float] | None,
) -> pd.DataFrame:
    """One judge × task × scale × mode's items at T = 1 and at each of ``temperatures``
    the distributions hold (None: all they hold); a sampled set at its own temperature."""
    frames = []
    for t in _temperatures(dists, temperatures):
        read = [d if t is None else d.tempered[t] for d in dists]
        frame = pd.DataFrame([d.probs for d in read], columns=_value_columns(scale))
        frame.insert(0, "human", human)
        frame.insert(0, "id", ids)
        for k, (key, value) in enumerate(
            (
                ("judge", judge),
                ("task", task),
                ("scale", str(scale)),
                ("mode", mode),
                ("kind", kind),
                ("temperature", t or (read[0].temperature or 1.0)),
            )
        ):
            frame.insert(k, key, value)
        for key in ("below", "above", "other"):
            frame[key] = [getattr(d, key) for d in read]
        frame["n_samples"] = [d.n_samples for d in read]
        frame["cut"] = [d.meta.get("cut") for d in read]
        frame["next_token_entropy"] = [d.meta.get("next_token_entropy") for d in read]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _temperatures(dists: list[ScoreDistribution], wanted: Iterable[float] | None) -> list[float | None]:
    """None (the distributions themselves), then each of ``wanted`` (None: every
    temperature) that every item holds; a sampled set has no other temperature."""
    if not dists or dists[0].is_sampled:
        return [None]
    held = set.intersection(*(set(d.tempered) for d in dists))
    return [None, *sorted(held if wanted is None else held & set(wanted))]


def dists_frame(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """The parts in one frame: score columns in order of value, then the masses."""
    frame = pd.concat(parts, ignore_index=True)
    scores = sorted(
        (c for c in frame.columns if c.startswith("p") and c[1:].lstrip("-").isdigit()), key=lambda c: int(c[1:])
    )
    return frame[[*KEYS, *scores, *MASSES]]


def study_dists(results: StudyResults) -> pd.DataFrame:
    """Every set of a study at T = 1 and at the protocol's temperature."""
    return dists_frame(
        [
            set_rows(
                s.judge,
                s.task,
                s.scale,
                s.mode,
                ITEM,
                s.data.ids,
                s.data.human,
                s.distributions,
                [s.protocol_temperature],
            )
            for s in results.sets
        ]
    )


def _items(c: Comparison) -> Dataset:
    """A comparison's items (a mitigation study's comparisons hold them)."""
    if c.dataset is None:
        raise NumbiasError(f"the comparison of {c.judge.name} on {c.task} holds no items")
    return c.dataset


def mitigate_dists(results: MitigateResults) -> pd.DataFrame:
    """Every judge × task × scale of a mitigation study at every temperature read (the
    fitted temperature searches them all), its content-free items, and the sampled sets;
    the contrast's amateur once per task, unless it is one of the judges."""
    parts = []
    contrast = results.config.contrast
    amateur = contrast.amateur.name if contrast and contrast.amateur not in results.config.judges else None
    tasks_done: set[str] = set()
    for c in results.comparisons:
        data = _items(c)
        free_ids = [f"__content_free_{k}__" for k in range(len(CONTENT_FREE))]
        for text in results.config.scales:
            got = c.data[text]
            readers = [(c.judge.name, lambda d: d)] + (
                [(amateur, lambda d: d.meta[AMATEUR])] if amateur and c.task not in tasks_done else []
            )
            for name, read in readers:
                parts.append(
                    set_rows(
                        name,
                        c.task,
                        got.scale,
                        "exact",
                        ITEM,
                        data.ids,
                        data.human,
                        [read(d) for d in got.distributions],
                        None,
                    )
                )
                parts.append(
                    set_rows(
                        name,
                        c.task,
                        got.scale,
                        "exact",
                        FREE,
                        free_ids,
                        np.full(len(CONTENT_FREE), np.nan),
                        [read(d) for d in got.content_free],
                        None,
                    )
                )
        tasks_done.add(c.task)
        for t, dists in c.sampled.items():
            parts.append(
                set_rows(
                    c.judge.name, c.task, dists[0].scale, f"sampled T={t:g}", ITEM, data.ids, data.human, dists, None
                )
            )
    return dists_frame(parts)


def data_frame(tasks: Iterable[tuple[str, Dataset, PromptTemplate | None, str | None]]) -> pd.DataFrame:
    """Each task's items as the judge read them (fields, human, group, ratings) under
    the task's facts: its name, human range, fields, template, truncation and notes."""
    frames = []
    for label, data, template, truncate in tasks:
        kept = ["id", "human", *data.fields, *(c for c in ("group", "ratings") if c in data.frame)]
        frame = data.frame[kept].copy()
        if "ratings" in frame:
            frame["ratings"] = [json.dumps(list(map(float, r))) for r in frame["ratings"]]
        facts = {
            "task": label,
            "name": data.name,
            "human_lo": data.human_range[0],
            "human_hi": data.human_range[1],
            "fields": json.dumps(list(data.fields)),
            "template": json.dumps([template.text, template.answer_prefix, template.system] if template else None),
            "truncate": truncate or "",
            "notes": json.dumps(list(data.notes)),
        }
        frames.append(pd.concat([pd.DataFrame(facts, index=frame.index), frame], axis=1))
    return pd.concat(frames, ignore_index=True)


def study_data(results: StudyResults) -> pd.DataFrame:
    """A study's tasks (the first set of each holds its items)."""
    first: dict[str, ScoredSet] = {}
    for s in results.sets:
        first.setdefault(s.task, s)
    return data_frame((task, s.data, None, s.truncate) for task, s in first.items())


def mitigate_data(results: MitigateResults) -> pd.DataFrame:
    """A mitigation study's tasks with their prompt templates (a saved choice needs one)."""
    first: dict[str, Comparison] = {}
    for c in results.comparisons:
        first.setdefault(c.task, c)
    return data_frame((task, _items(c), c.template, c.truncate) for task, c in first.items())


def predictions_frame(results: MitigateResults) -> pd.DataFrame:
    """Each table row's prediction for every test item, on the row's scale."""
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "judge": c.judge.name,
                    "task": c.task,
                    "row": row,
                    "id": [_items(c).ids[i] for i in c.test_on],
                    "human": c.test_human,
                    "prediction": scores,
                }
            )
            for c in results.comparisons
            for row, scores in c.test_scores.items()
        ],
        ignore_index=True,
    )


def write_csv(frame: pd.DataFrame) -> Any:
    """A writer of ``frame`` as gzip-compressed CSV (floats in their shortest exact form)."""
    return lambda path: frame.to_csv(path, index=False, compression={"method": "gzip", "mtime": 0})


# --- reading -------------------------------------------------------------------------


def read_csv(folder: Path, name: str, needed: Iterable[str], text: Callable[[str], bool]) -> pd.DataFrame:
    """A compressed CSV of the folder, floats exact and the ``text`` columns kept as
    text (an id "NA" stays "NA"); a file that is missing, unreadable or lacks a column
    is one line."""
    path = Path(folder) / name
    if not path.is_file():
        raise NumbiasError(
            f"{path} does not exist: the folder was not written by numbias with its distributions "
            "(run the study again to write them)"
        )
    try:
        header = pd.read_csv(path, nrows=0).columns
        frame = pd.read_csv(
            path,
            dtype={c: str for c in header if text(c)},
            keep_default_na=False,
            na_values={c: [""] for c in header if not text(c)},
            **EXACT,
        )
    except (OSError, ValueError, EOFError, pd.errors.ParserError) as exc:
        raise NumbiasError(f"{path} is unreadable: {first_line(exc)}") from None
    if missing := [c for c in needed if c not in frame.columns]:
        raise NumbiasError(f"{path} lacks the column(s) {', '.join(missing)}: not a file numbias wrote")
    return frame


def read_tasks(folder: Path) -> dict[str, PreparedTask]:
    """The folder's tasks by label, in the order the study ran them."""
    frame = read_csv(folder, DATA, [*TASK_KEYS, "id", "human"], lambda c: c not in NUMBERS)
    tasks = {}
    try:
        for label, part in frame.groupby("task", sort=False):
            facts = part.iloc[0]
            fields = json.loads(facts["fields"])
            extra = [c for c in ("group", "ratings") if c in part and (part[c] != "").any()]
            items = part[["id", "human", *fields, *extra]].reset_index(drop=True)
            if "ratings" in items:
                items["ratings"] = [json.loads(r) for r in items["ratings"]]
            data = Dataset(
                facts["name"],
                items,
                tuple(fields),
                (float(facts["human_lo"]), float(facts["human_hi"])),
                tuple(json.loads(facts["notes"])),
            )
            template = PromptTemplate(*(json.loads(facts["template"]) or [""]))
            tasks[str(label)] = PreparedTask(str(label), data, template, facts["truncate"] or None)
    except (ValueError, TypeError, KeyError) as exc:
        raise NumbiasError(f"{Path(folder) / DATA} is not a file numbias wrote: {first_line(exc)}") from None
    return tasks


def read_dists(folder: Path) -> pd.DataFrame:
    """The folder's distributions, checked: known columns, each row's masses summing to 1."""
    frame = read_csv(folder, DISTS, [*KEYS, *MASSES], TEXT.__contains__)
    scores = [c for c in frame.columns if c not in KEYS and c not in MASSES]
    if bad := [c for c in scores if not (c.startswith("p") and c[1:].lstrip("-").isdigit())]:
        raise NumbiasError(f"{Path(folder) / DISTS} has the column(s) {', '.join(bad)}: not a file numbias wrote")
    total = frame[[*scores, "below", "above", "other"]].sum(axis=1, min_count=1)
    if len(frame) == 0 or not np.allclose(total.to_numpy(float), 1.0, atol=1e-6):
        raise NumbiasError(
            f"{Path(folder) / DISTS} holds rows whose probabilities do not sum to 1 (or none): not a file numbias wrote"
        )
    return frame


def distributions(part: pd.DataFrame, scale: ScoreScale) -> list[ScoreDistribution]:
    """A set's rows back into distributions: the T = 1 rows, each holding its tempered
    copies (a sampled set's rows are its distributions as they are)."""
    columns = _value_columns(scale)
    if missing := [c for c in columns if c not in part.columns]:
        raise NumbiasError(f"the distributions at {scale} lack the column(s) {', '.join(missing)}")

    def one(row: dict[str, Any], temperature: float | None) -> ScoreDistribution:
        n = row["n_samples"]
        meta = {
            k: (int(row[k]) if k == "cut" else float(row[k])) for k in ("cut", "next_token_entropy") if pd.notna(row[k])
        }
        return ScoreDistribution(
            scale,
            np.array([row[c] for c in columns], dtype=float),
            row["below"],
            row["above"],
            row["other"],
            None if pd.isna(n) else int(n),
            temperature,
            meta=meta,
        )

    sampled = part["n_samples"].notna().any()
    by_t = {t: rows.to_dict("records") for t, rows in part.groupby("temperature", sort=False)}
    if sampled:
        return [one(r, float(r["temperature"])) for rows in by_t.values() for r in rows]
    main = [one(r, None) for r in by_t.pop(1.0, [])]
    for t, rows in by_t.items():
        if len(rows) != len(main):
            raise NumbiasError(
                f"the distributions at {scale} hold {len(rows)} items at T = {t:g} but {len(main)} at T = 1"
            )
        for d, r in zip(main, rows):
            d.tempered[float(t)] = one(r, float(t))
    return main


def sets_of(frame: pd.DataFrame, kind: str = ITEM) -> Iterator[tuple[tuple[str, str, str, str], pd.DataFrame]]:
    """(judge, task, scale, mode) and its rows, in the order the study read them."""
    yield from frame[frame["kind"] == kind].groupby(["judge", "task", "scale", "mode"], sort=False)


def _aligned(data: Dataset, part: pd.DataFrame, where: str) -> pd.DataFrame:
    """The set's rows in the task's item order (one per item at each temperature)."""
    if set(part["id"]) != set(data.ids) or len(part) % len(data):
        raise NumbiasError(f"{DISTS}: {where} does not hold the task's {len(data)} items")
    order = {item: k for k, item in enumerate(data.ids)}
    return part.assign(_at=part["id"].map(order)).sort_values(["temperature", "_at"], kind="stable")


# --- the studies from a folder -------------------------------------------------------


def as_data(judges: Iterable[JudgeConfig], folder: Path) -> None:
    """A folder's judges are data: one naming code (``module:attr``) is refused before
    anything is read, though no backend would start."""
    for judge in judges:
        if judge.backend != "object":
            judge_as_data(judge, str(folder))


def study_from(folder: str | Path, config: RunConfig) -> StudyResults:
    """A run's results recomputed from its folder's files alone."""
    folder = Path(folder)
    as_data(config.judges, folder)
    frame, tasks = read_dists(folder), read_tasks(folder)
    sets = []
    for (judge, task, scale_text, mode), part in sets_of(frame):
        if task not in tasks:
            raise NumbiasError(f"{folder / DISTS} holds task {task!r}, which {folder / DATA} lacks")
        scale, prepared = ScoreScale.parse(scale_text), tasks[task]
        rows = _aligned(prepared.data, part, f"{judge} · {task} · {scale_text} · {mode}")
        s = ScoredSet(judge, task, scale, prepared.data, distributions(rows, scale), mode, truncate=prepared.truncate)
        s.protocol_temperature = config.sampling.temperature if mode == "exact" else 1.0
        sets.append(s)
    return analyse(config, sets, notes=task_notes(list(tasks.values())))


def align_from(folder: str | Path, config: AlignConfig) -> AlignResults:
    """An alignment study recomputed from its folder's files (its free generations,
    which need the models, read back from diversity.csv and generations.csv)."""
    folder = Path(folder)
    study = study_from(folder, config.study())
    spread, texts = (
        pd.read_csv(folder / name) if (folder / name).is_file() else pd.DataFrame()
        for name in ("diversity.csv", "generations.csv")
    )
    return align_results(config, study, spread, texts)


def mitigate_from(folder: str | Path, config: MitigateConfig) -> MitigateResults:
    """A mitigation study's selection, tables and tests recomputed from its folder's
    distributions: the same candidates, splits and seeds give the same tables."""
    folder = Path(folder)
    as_data([*config.judges, *([config.contrast.amateur] if config.contrast else [])], folder)
    frame, tasks = read_dists(folder), read_tasks(folder)
    found = dict(iter(frame.groupby(["judge", "task", "scale", "mode", "kind"], sort=False)))
    jobs = []
    for judge in config.judges:
        for task in tasks.values():

            def get(
                scale: str, mode: str = "exact", kind: str = ITEM, judge: str = judge.name, task: PreparedTask = task
            ) -> list[ScoreDistribution]:
                return _one_set(found, folder, judge, task, scale, mode, kind)

            per_scale = {s: SettingData(get(s), get(s, kind=FREE)) for s in config.scales}
            if config.contrast is not None:
                name = config.contrast.amateur.name
                per_scale = paired_scales(
                    per_scale,
                    {s: SettingData(get(s, judge=name), get(s, kind=FREE, judge=name)) for s in config.scales},
                    config.contrast,
                )
            sampled = {t: get(PAPER_SCALE, f"sampled T={t:g}") for t in PAPER_TEMPERATURES} if config.sample else {}
            jobs.append((judge, task, per_scale, sampled, config))
    return MitigateResults(config, compare_all(jobs, config.n_jobs), task_notes(list(tasks.values())))


def _one_set(
    found: dict[Any, pd.DataFrame], folder: Path, judge: str, task: PreparedTask, scale: str, mode: str, kind: str
) -> list[ScoreDistribution]:
    """One judge × task × scale × mode's distributions, in the task's item order."""
    where = f"{judge} · {task.label} · {scale} · {mode}"
    if (part := found.get((judge, task.label, scale, mode, kind))) is None:
        raise NumbiasError(
            f"{folder / DISTS} holds no distributions of {where}{' (content-free items)' if kind == FREE else ''}"
        )
    return distributions(_aligned(task.data, part, where) if kind == ITEM else part, ScoreScale.parse(scale))
