"""The numerical-bias study: judges × tasks × scales × rules, stored and resumable,
and its metrics. The result is plain data; :mod:`numbias.report` writes its files.

Data flows one way: task → prompts → judge → store → metrics → results."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from numbias.config import RunConfig
from numbias.distribution import stack
from numbias.errors import NumbiasError
from numbias.judge import Judge, Progress, ScoredSet, collect, no_progress, sampling_mode
from numbias.metrics import evaluate
from numbias.scale import ScoreScale
from numbias.store import Store
from numbias.tasks import PreparedTask, prepare_tasks, task_notes

@dataclass
class StudyResults:
    config: RunConfig
    sets: list[ScoredSet]
    summary: pd.DataFrame
    items: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    """What the outputs must say about the data (e.g. a human range taken from the data)."""



def run(config: RunConfig | dict[str, Any] | None = None, *, progress: Progress = no_progress) -> StudyResults:
    """Run (or resume) a study and compute its metrics."""
    if not isinstance(config, RunConfig):
        config = RunConfig.parse(config or {})
    tasks = prepare_tasks(config.tasks, labelled=True)
    judges = [Judge(jc) for jc in config.judges]
    scales = [ScoreScale.parse(s) for s in config.scales]
    sets: list[ScoredSet] = []
    with Store(config.store_path) as store:
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
