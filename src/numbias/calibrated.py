"""A judge with a fitted mitigation, saved to a file and reused for production scoring."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from numbias.errors import NumbiasError, first_line
from numbias.mitigation import Fitted, Setting, SettingData
from numbias.prompt import PromptTemplate
from numbias.scale import ScoreScale
from numbias.study import Judge, JudgeConfig

FORMAT = "numbias.calibrated-judge/1"


class _Saved(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: str
    judge: JudgeConfig
    template: dict[str, Any]
    setting: dict[str, str | float]
    state: dict[str, Any]
    human_range: tuple[float, float]
    fitted_on: str


class CalibratedJudge:
    """Scores new items the way a fitted setting does: the judge's distribution at the
    setting's scale, the fitted calibrator, the rule. ``score`` returns scores on the
    setting's scale; ``to_human`` maps them linearly onto the human range."""

    def __init__(self, judge: JudgeConfig, template: PromptTemplate, fitted: Fitted,
                 human_range: tuple[float, float], fitted_on: str = "") -> None:
        self.judge_config = judge
        self.template = template
        self.fitted = fitted
        self.human_range = human_range
        self.fitted_on = fitted_on
        self._judge: Judge | None = None

    @classmethod
    def fit(cls, judge: JudgeConfig, template: PromptTemplate, setting: Setting, data: SettingData,
            human_on_scale: np.ndarray, human_range: tuple[float, float], fitted_on: str = "") -> CalibratedJudge:
        fitted = Fitted.fit(setting, data, np.arange(len(data.distributions)), human_on_scale)
        return cls(judge, template, fitted, human_range, fitted_on)

    @property
    def setting(self) -> Setting:
        return self.fitted.setting

    @property
    def scale(self) -> ScoreScale:
        return ScoreScale.parse(self.setting.scale)

    def score(self, items: Sequence[Mapping[str, Any]]) -> np.ndarray:
        if not items:
            return np.zeros(0)
        if self._judge is None:
            self._judge = Judge(self.judge_config)
        self.template.check(set().union(*(set(i) for i in items)))
        prompts = [self.template.fill(item, self.scale, chat=self._judge.chat) for item in items]
        dists = list(self._judge.backend.score(prompts, self.scale))
        return self.fitted.predict(dists)

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
                       fitted_on=self.fitted_on)
        path = Path(path)
        path.write_text(saved.model_dump_json(indent=2), encoding="utf-8")
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
        if saved.format != FORMAT:
            raise NumbiasError(f"calibrated judge file {path} has format {saved.format!r}, expected {FORMAT!r}")
        try:
            setting = Setting(**saved.setting)  # type: ignore[arg-type]
        except (TypeError, ValueError) as exc:
            raise NumbiasError(f"calibrated judge file {path} has a bad setting: {exc}") from None
        return cls(saved.judge, PromptTemplate(**saved.template), Fitted.restore(setting, saved.state),
                   saved.human_range, saved.fitted_on)
