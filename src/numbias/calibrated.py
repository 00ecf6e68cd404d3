"""A judge with a fitted mitigation, saved to a file and reused for production scoring."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from numbias.config import JudgeConfig
from numbias.data import Dataset, make_dataset
from numbias.distribution import ScoreDistribution
from numbias.errors import NumbiasError, first_line
from numbias.judge import Judge, Progress, collect, no_progress
from numbias.mitigation import Fitted, Setting, SettingData
from numbias.output import text, write_all
from numbias.prompt import SCALE_FIELDS, PromptTemplate
from numbias.scale import ScoreScale
from numbias.store import Store

FORMAT = "numbias.calibrated-judge/2"
"""/2 saves the calibrator's parameters with its learned state; /1 files (defaults) still load."""
FORMATS = ("numbias.calibrated-judge/1", FORMAT)


class _Saved(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: str
    judge: JudgeConfig
    template: dict[str, Any]
    setting: dict[str, str | float]
    state: dict[str, Any]
    human_range: tuple[float, float]
    fitted_on: str
    truncate: str | None = None


class CalibratedJudge:
    """Scores new items the way a fitted setting does: the judge's distribution at the
    setting's scale, the fitted calibrator, the rule. ``score`` returns scores on the
    setting's scale; ``to_human`` maps them linearly onto the human range."""

    def __init__(self, judge: JudgeConfig, template: PromptTemplate, fitted: Fitted,
                 human_range: tuple[float, float], fitted_on: str = "", truncate: str | None = None) -> None:
        self.judge_config = judge
        self.template = template
        self.fitted = fitted
        self.human_range = human_range
        self.fitted_on = fitted_on
        self.truncate = truncate
        self._judge: Judge | None = None

    @classmethod
    def fit(cls, judge: JudgeConfig, template: PromptTemplate, setting: Setting, data: SettingData,
            human_on_scale: np.ndarray, human_range: tuple[float, float], fitted_on: str = "",
            truncate: str | None = None) -> CalibratedJudge:
        fitted = Fitted.fit(setting, data, np.arange(len(data.distributions)), human_on_scale)
        return cls(judge, template, fitted, human_range, fitted_on, truncate)

    @property
    def setting(self) -> Setting:
        return self.fitted.setting

    @property
    def scale(self) -> ScoreScale:
        return ScoreScale.parse(self.setting.scale)

    @property
    def judge(self) -> Judge:
        """The underlying judge, built on first use (its backend loads only to score)."""
        if self._judge is None:
            self._judge = Judge(self.judge_config)
        return self._judge

    def score(self, items: Sequence[Mapping[str, Any]] | Dataset, *, store: str | Path | None = None,
              progress: Progress = no_progress) -> np.ndarray:
        """Calibrated scores on the setting's scale for new items (a Dataset, e.g. from
        :func:`numbias.data.load_file`, or mappings of the template's fields). With
        ``store`` the distributions are kept there, so a long scoring resumes."""
        if not len(items):
            return np.zeros(0)
        data = items if isinstance(items, Dataset) else self._dataset(items)
        return self.fitted.predict(self.distributions(data, store=store, progress=progress))

    def distributions(self, data: Dataset, *, store: str | Path | None = None,
                      progress: Progress = no_progress) -> list[ScoreDistribution]:
        """The judge's exact distributions for ``data`` at the setting's scale."""
        self.template.check(set(data.fields))
        with TemporaryDirectory() as tmp, Store(store or Path(tmp) / "store.sqlite") as db:
            scored = collect(self.judge, data.name, data, self.template, self.scale, db, progress=progress,
                             truncate=self.truncate)
        return scored.distributions

    def _dataset(self, items: Sequence[Mapping[str, Any]]) -> Dataset:
        fields = sorted(self.template.fields - SCALE_FIELDS)
        for k, item in enumerate(items):
            if missing := [f for f in fields if f not in item]:
                raise NumbiasError(f"item {k} lacks the template field(s) {', '.join(missing)}")
        frame = pd.DataFrame([{f: item[f] for f in fields} for item in items])
        frame["id"] = [str(i) for i in range(len(items))]
        return make_dataset("items", frame, fields=fields, labelled=False)

    def to_human(self, scores: np.ndarray) -> np.ndarray:
        lo, hi = self.human_range
        return lo + self.scale.to_unit(scores) * (hi - lo)

    def save(self, path: str | Path) -> Path:
        saved = _Saved(format=FORMAT, judge=self.judge_config,
                       template={"text": self.template.text, "answer_prefix": self.template.answer_prefix,
                                 "system": self.template.system},
                       setting={"scale": self.setting.scale, "rule": self.setting.rule,
                                "temperature": self.setting.temperature, "mitigation": self.setting.mitigation},
                       state=self.fitted.state(), human_range=self.human_range,
                       fitted_on=self.fitted_on, truncate=self.truncate)
        if self.judge_config.instance is not None:
            raise NumbiasError("a judge given as a Python object cannot be saved: give it by name and backend")
        path = Path(path)
        write_all(path.parent, {path.name: text(saved.model_dump_json(indent=2))})
        return path

    @classmethod
    def load(cls, path: str | Path) -> CalibratedJudge:
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
            saved = _Saved.model_validate(raw)
        except FileNotFoundError:
            raise NumbiasError(f"calibrated judge file {path} does not exist") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise NumbiasError(f"calibrated judge file {path} is not a saved numbias judge: "
                               f"{first_line(exc)}") from None
        if saved.format not in FORMATS:
            raise NumbiasError(f"calibrated judge file {path} has format {saved.format!r}, expected one of "
                               f"{', '.join(FORMATS)}")
        try:
            setting = Setting(**saved.setting)  # type: ignore[arg-type]
        except (TypeError, ValueError, NumbiasError) as exc:
            raise NumbiasError(f"calibrated judge file {path} has a bad setting: {first_line(exc)}") from None
        return cls(saved.judge, PromptTemplate(**saved.template), Fitted.restore(setting, saved.state),
                   saved.human_range, saved.fitted_on, saved.truncate)
