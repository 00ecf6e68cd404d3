"""The numerical-bias study: judges × tasks × scales × rules, stored and resumable,
and its metrics. The result is plain data; :mod:`numbias.report.build` writes its files.

Data flows one way: task → prompts → judge → store → metrics → results."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from numbias.core.distribution import stack
from numbias.core.metrics import evaluate
from numbias.core.scale import ScoreScale
from numbias.core.systems import sides, system_agreement
from numbias.data.tasks import PreparedTask, prepare_tasks, task_notes
from numbias.judge.config import RunConfig
from numbias.judge.judging import Judge, Progress, ScoredSet, collect, no_progress, sampling_mode
from numbias.judge.store import Store
from numbias.judge.workers import close_workers
from numbias.util.errors import NumbiasError


@dataclass
class StudyResults:
    """What a study found, as plain data: one summary row per judge × task × scale ×
    rule, one item row per judge × task × scale × mode, and the scored sets themselves
    (so :mod:`numbias.report.build` and :mod:`numbias.studies.alignment` read them without a model).

    >>> import tempfile
    >>> import numpy as np, pandas as pd
    >>> import numbias
    >>> from numbias.backends.fake import FakeBackend
    >>> from numbias.data.dataset import make_dataset
    >>> seven = FakeBackend([*"0123456789", ""], lambda _, tokens: np.eye(11)[10 if tokens else 7] * 50, eos=10)
    >>> frame = pd.DataFrame({"id": ["a", "b", "c"], "word": ["bad", "fine", "great"], "human": [1, 3, 5]})
    >>> task = {"dataset": make_dataset("words", frame, fields=["word"], human_range=(1, 5)),
    ...         "template": "Rate {word} from {lo} to {hi}."}
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     results = numbias.run({"judges": [seven], "tasks": [task], "scales": ["0-9"], "rules": ["expected"],
    ...                            "out": tmp, "bootstrap": 20})
    >>> results.summary[["scale", "rule", "mode", "mode_share", "pearson"]]
      scale      rule  mode  mode_share  pearson
    0   0-9  expected   7.0         1.0      NaN
    >>> results.summary.notes.tolist()
    ['judge gave every item the same score: kurtosis and correlations undefined']
    >>> [(str(s.scale), s.mode, len(s.distributions)) for s in results.sets]
    [('0-9', 'exact', 3)]
    >>> results.items.columns.tolist()
    ['judge', 'task', 'scale', 'mode', 'id', 'human', 'numeric_mass', 'out_of_scale', 'other', 'expected']
    """

    config: RunConfig
    sets: list[ScoredSet]
    summary: pd.DataFrame
    items: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    """What the outputs must say about the data (e.g. a human range taken from the data)."""


def run(config: RunConfig | dict[str, Any] | None = None, *, progress: Progress = no_progress) -> StudyResults:
    """Run (or resume) a study and compute its metrics. Each item's distribution is
    stored under ``out`` (or ``store``) as it is read, so a second run reads none again.

    >>> import tempfile
    >>> import numpy as np, pandas as pd
    >>> import numbias
    >>> from numbias.backends.fake import FakeBackend
    >>> from numbias.data.dataset import make_dataset
    >>> def logits(prompt, tokens):  # the word's length as the score, then the end
    ...     row = np.full(11, -50.0)
    ...     row[10 if tokens else len(prompt.user.split()[-1])] = 0.0
    ...     return row
    >>> judge = FakeBackend([*"0123456789", ""], logits, eos=10)
    >>> words = pd.DataFrame({"id": [*"abcde"], "word": ["bad", "okay", "nice", "great", "superb"],
    ...                       "human": [1, 2, 3, 4, 5]})
    >>> task = {"dataset": make_dataset("words", words, fields=["word"], human_range=(1, 5)),
    ...         "template": "Rate from {lo} to {hi}: {word}"}
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     results = numbias.run({"judges": [judge], "tasks": [task], "scales": ["0-9"],
    ...                            "rules": ["greedy", "expected"], "out": tmp, "bootstrap": 20})
    >>> results.summary[["task", "scale", "rule", "pearson", "kurtosis"]].round(2)
        task scale      rule  pearson  kurtosis
    0  words   0-9    greedy     0.97     -1.04
    1  words   0-9  expected     0.97     -1.04
    >>> results.items[["id", "human", "greedy", "expected", "numeric_mass"]]
      id  human  greedy  expected  numeric_mass
    0  a    1.0     3.0       3.0           1.0
    1  b    2.0     4.0       4.0           1.0
    2  c    3.0     4.0       4.0           1.0
    3  d    4.0     5.0       5.0           1.0
    4  e    5.0     6.0       6.0           1.0
    """
    if not isinstance(config, RunConfig):
        config = RunConfig.parse(config or {})
    tasks = prepare_tasks(config.tasks, labelled=True)
    judges = [Judge(jc, workers=config.workers) for jc in config.judges]
    scales = [ScoreScale.parse(s) for s in config.scales]
    sets: list[ScoredSet] = []
    with Store(config.store_path) as store:
        for judge in judges:
            for task in tasks:
                for scale in scales:
                    sets += collect_modes(judge, task, scale, store, config, progress)
    close_workers()  # their memory is the analysis's
    return analyse(config, sets, notes=task_notes(tasks))


def collect_modes(
    judge: Judge, task: PreparedTask, scale: ScoreScale, store: Store, config: RunConfig, progress: Progress
) -> list[ScoredSet]:
    """One judge × task × scale in every mode the study asks for."""
    sets = []
    if "exact" in config.modes:
        exact = collect(
            judge, task.label, task.data, task.template, scale, store, progress=progress, truncate=task.truncate
        )
        exact.protocol_temperature = config.sampling.temperature
        sets.append(exact)
    if "sampled" in config.modes:
        mode, scorer = sampling_mode(config.sampling, scale)
        sets.append(
            collect(
                judge,
                task.label,
                task.data,
                task.template,
                scale,
                store,
                progress=progress,
                mode=mode,
                scorer=scorer,
                truncate=task.truncate,
            )
        )
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
            m = evaluate(
                scores,
                data.human,
                data.human_range,
                s.scale,
                ratings=ratings,
                groups=data.groups,
                n_boot=config.bootstrap,
                seed=config.seed,
                masses=(per_item["out_of_scale"].to_numpy(), per_item["other"].to_numpy()),
            )
            row = {"judge": s.judge, "task": s.task, "scale": str(s.scale), "rule": label, **m.flat()}
            if data.systems is not None:
                row.update(system_columns(data.systems, data.human, scores))
            rows.append(row)
        items.append(per_item)
    if not rows:
        raise NumbiasError("the study has nothing to score: give at least one judge, task, scale and rule")
    notes = [*notes, *([SYSTEM_CONVENTION] if any(s.data.systems is not None for s in sets) else [])]
    return StudyResults(config, sets, pd.DataFrame(rows), pd.concat(items, ignore_index=True), notes=notes)


SYSTEM_CONVENTION = (
    "system-level r: each system's mean judge score over all its items against its mean human "
    "score over its items with a human score; every system in the system column with two or more such items "
    "counts (an item of several systems counts for each); no human reference system is added; "
    "95% Fisher-z intervals over the systems (which items carry a human score is not in them)"
)
"""What the system-level correlations count, stated wherever they are shown."""


def system_columns(systems: np.ndarray, human: np.ndarray, scores: np.ndarray) -> dict[str, float | int]:
    """System-level Pearson, Spearman and Kendall (judge means against human means) with
    their intervals, as summary columns; see :data:`SYSTEM_CONVENTION`."""
    keep = np.isfinite(scores)
    parts = sides(systems[keep], np.arange(len(scores))[keep], human[keep], scores[keep])
    out: dict[str, float | int] = {}
    for name, e in system_agreement(parts).items():
        out.update({f"system_{name}": e.value, f"system_{name}_low": e.low, f"system_{name}_high": e.high})
        out["systems"] = e.items
    return out


def item_frame(s: ScoredSet) -> pd.DataFrame:
    """One row per item of a scored set: ids, human score, group, masses, characters cut,
    and the whole next-token entropy at the answer position where the backend read it."""
    data = s.data
    frame = pd.DataFrame(
        {"judge": s.judge, "task": s.task, "scale": str(s.scale), "mode": s.mode, "id": data.ids, "human": data.human}
    )
    if data.groups is not None:
        frame["group"] = data.groups
    if data.systems is not None:
        frame["system"] = data.systems
    probs, rest = stack(s.distributions)
    frame["numeric_mass"] = probs.sum(axis=1)
    frame["out_of_scale"] = rest[:, 0] + rest[:, 1]
    frame["other"] = rest[:, 2]
    if s.truncate:
        frame["cut"] = [int(d.meta.get("cut", 0)) for d in s.distributions]
    if any("next_token_entropy" in d.meta for d in s.distributions):
        frame["next_token_entropy"] = [d.meta.get("next_token_entropy", np.nan) for d in s.distributions]
    return frame
