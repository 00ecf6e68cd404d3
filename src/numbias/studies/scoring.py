"""Production scoring: a judge (or a saved calibrated judge) over items that may have
no human scores, each item's exact distribution and its score by every rule.

This is the path after a study: measure on labelled items once, then score new ones
the same way. Distributions are kept in a store under the output folder, so a long
scoring resumes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from numbias.core.conformal import coverage
from numbias.core.distribution import ScoreDistribution
from numbias.core.metrics import RULES
from numbias.core.sampling import PROTOCOL_TEMPERATURE
from numbias.core.scale import PAPER_SCALE, ScoreScale
from numbias.data.dataset import Dataset
from numbias.data.tasks import PreparedTask, TaskConfig, prepare_tasks
from numbias.judge.config import JudgeConfig, JudgeRef, TaskRef, task_ref, validate_config
from numbias.judge.judging import Judge, Progress, ScoredSet, collect, no_progress
from numbias.judge.store import Store
from numbias.judge.workers import close_workers
from numbias.models.catalog import DEFAULT_JUDGE
from numbias.studies.calibrated import CalibratedJudge
from numbias.util.errors import NumbiasError
from numbias.util.output import text, write_all


class _OneTask(BaseModel):
    """A task given any way a study takes one (name, file path, mapping, object)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    task: TaskRef


class _OneJudge(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)
    judge: JudgeRef


_PROMPT_KEYS = ("template", "system", "answer_prefix", "truncate")


@dataclass
class ScoredItems:
    """Every item's distribution and scores; ``calibrated`` when a saved judge scored them,
    with ``low``/``high``: the ends of its conformal interval on the human scale."""

    task: PreparedTask
    scale: ScoreScale
    distributions: list[ScoreDistribution]
    scores: dict[str, np.ndarray]
    calibrated: np.ndarray | None = None
    calibrated_human: np.ndarray | None = None
    low: np.ndarray | None = None
    high: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ids(self) -> list[str]:
        return self.task.data.ids

    def frame(self) -> pd.DataFrame:
        """One row per item: id, human score, group and system when present, a column per rule;
        with a calibrated judge its scores, on the human scale too, and the interval (low, high)."""
        data = self.task.data
        out = pd.DataFrame({"id": data.ids})
        if data.labelled:
            out["human"] = data.human
        if data.groups is not None:
            out["group"] = data.groups
        if data.systems is not None:
            out["system"] = data.systems
        for rule, values in self.scores.items():
            out[rule] = values
        if self.calibrated is not None:
            out["calibrated"] = self.calibrated
            out["calibrated_human"] = self.calibrated_human
            out["low"], out["high"] = self.low, self.high
        if self.task.truncate:
            out["cut"] = [int(d.meta.get("cut", 0)) for d in self.distributions]
        return out


def _rule_scores(scored: ScoredSet, notes: list[str]) -> dict[str, np.ndarray]:
    scored.protocol_temperature = PROTOCOL_TEMPERATURE
    out: dict[str, np.ndarray] = {}
    for rule in RULES:
        try:
            out[rule] = scored.scores(rule)
        except NumbiasError as exc:
            notes.append(f"rule {rule} left out: {exc}")
    return out


def score(
    task: TaskConfig | dict[str, Any] | str,
    judge: JudgeConfig | dict[str, Any] | str | None = None,
    scale: str | None = None,
    *,
    store: str | Path | None = None,
    calibrated: CalibratedJudge | str | Path | None = None,
    progress: Progress = no_progress,
    workers: int | None = None,
) -> ScoredItems:
    """Score one task's items (labelled or not). With ``calibrated`` (a saved judge or its
    file), its judge, scale and prompt are used and calibrated scores are added; the
    scale defaults to 0-9. ``workers``: processes the items are sharded over (None: the
    judge's default, :func:`numbias.judge.workers.plan`).

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
    >>> new = make_dataset("new", pd.DataFrame({"id": ["x", "y"], "word": ["fine", "lovely"]}), fields=["word"],
    ...                    labelled=False)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     scored = numbias.score({"dataset": new, "template": "Rate from {lo} to {hi}: {word}"}, judge, "0-9",
    ...                            store=f"{tmp}/store.sqlite")
    >>> scored.frame()
      id  greedy  expected  median  protocol
    0  x     4.0       4.0     4.0       4.0
    1  y     6.0       6.0     6.0       6.0
    """
    if calibrated is not None:
        if judge is not None or scale is not None:
            raise NumbiasError("a calibrated judge fixes its judge and scale: give neither with calibrated")
        saved = calibrated if isinstance(calibrated, CalibratedJudge) else CalibratedJudge.load(calibrated)
        saved.judge.workers = workers
        return _score_calibrated(task, saved, store, progress)

    tc = validate_config(_OneTask, {"task": task}, "numbias score").task
    jc = validate_config(_OneJudge, {"judge": judge or DEFAULT_JUDGE}, "numbias score").judge
    prepared = _prepare(tc)
    on = ScoreScale.parse(scale or PAPER_SCALE)
    with Store(store or Path("numbias-scores") / "store.sqlite") as db:
        scored = collect(
            Judge(jc, workers=workers),
            prepared.label,
            prepared.data,
            prepared.template,
            on,
            db,
            progress=progress,
            truncate=prepared.truncate,
        )
    close_workers()
    notes = [f"{prepared.label}: {n}" for n in prepared.data.notes]
    return ScoredItems(prepared, on, scored.distributions, _rule_scores(scored, notes), notes=notes)


def _score_calibrated(
    task: TaskConfig | dict[str, Any] | str, saved: CalibratedJudge, store: str | Path | None, progress: Progress
) -> ScoredItems:
    """The saved judge's prompt on the task's items: its template replaces the task's."""
    raw = {"dataset": task} if isinstance(task, Dataset) else task_ref(task)
    if isinstance(raw, TaskConfig):
        raw = {**raw.model_dump(exclude_none=True), "task": raw.task, "dataset": raw.dataset}
    if given := [k for k in _PROMPT_KEYS if raw.get(k) is not None]:
        raise NumbiasError(f"{', '.join(given)}: the calibrated judge fixes the prompt; drop them from the task")
    prompt = {"template": saved.template, "truncate": saved.truncate}
    tc = validate_config(
        _OneTask, {"task": {**raw, **{k: v for k, v in prompt.items() if v is not None}}}, "numbias score"
    ).task
    prepared = _prepare(tc)
    dists = saved.distributions(prepared.data, store=store, progress=progress)
    values = saved.fitted.predict(dists)
    notes = [f"{prepared.label}: {n}" for n in prepared.data.notes]
    notes += saved.notes
    if saved.interval is None:
        notes.append(f"{prepared.label}: {saved.interval_note}; low and high are empty")
    scored = ScoredSet(saved.judge.config.name, prepared.label, saved.scale, prepared.data, dists)
    low, high = saved.bounds(values)
    if saved.interval is not None and prepared.data.labelled:
        notes.append(
            f"{prepared.label}: the {saved.interval.coverage:.0%} interval holds the human score of "
            f"{coverage(low, high, prepared.data.human).text()} (95% Wilson interval)"
        )
    return ScoredItems(
        prepared, saved.scale, dists, _rule_scores(scored, notes), values, saved.to_human(values), low, high, notes
    )


def _prepare(tc: TaskConfig) -> PreparedTask:
    if tc.ratings is not None:
        raise NumbiasError(
            f"ratings ({tc.ratings!r}) give a study's human ceiling; scoring measures no accuracy, so drop them"
        )
    return prepare_tasks([tc], labelled=False)[0]


SCORE_FILES = ("scores.jsonl", "scores.csv")
"""The files :func:`write_scores` writes."""


def write_scores(scored: ScoredItems, out: str | Path, *, force: bool = False) -> tuple[Path, Path]:
    """``scores.jsonl`` (each item's distribution and scores) and ``scores.csv`` (scores);
    files of those names numbias did not write are replaced only with ``force``."""
    frame = scored.frame()
    lines = []
    for row, dist in zip(frame.to_dict("records"), scored.distributions):
        record = {
            **{k: _plain(v) for k, v in row.items()},
            "scale": str(scored.scale),
            "probs": dict(zip(scored.scale.labels, dist.probs.round(10).tolist())),
            "below": dist.below,
            "above": dist.above,
            "other": dist.other,
        }
        lines.append(json.dumps(record) + "\n")
    folder = write_all(
        out, {"scores.jsonl": text("".join(lines)), "scores.csv": lambda p: frame.to_csv(p, index=False)}, force=force
    )
    return folder / "scores.jsonl", folder / "scores.csv"


def _plain(value: Any) -> Any:
    """JSON-ready: numpy numbers as Python numbers, NaN as null."""
    if isinstance(value, (np.floating, float)):
        return None if np.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value
