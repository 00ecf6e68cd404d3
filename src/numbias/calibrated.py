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
from numbias.conformal import ConformalInterval, rating_grid
from numbias.data import Dataset, make_dataset
from numbias.distribution import ScoreDistribution, mixture
from numbias.errors import NumbiasError, first_line
from numbias.judge import Judge, Progress, collect, no_progress
from numbias.mitigation import Fitted, Setting, SettingData, dev_predictions
from numbias.output import text, write_all
from numbias.prompt import SCALE_FIELDS, PromptTemplate
from numbias.scale import ENSEMBLE_JOIN, ScoreScale, ensemble_parts, setting_scale
from numbias.store import Store

FORMAT = "numbias.calibrated-judge/3"
"""/3 adds the conformal interval; /2 saves the calibrator's parameters with its learned
state; /2 and /1 files (no interval; /1: default parameters) still load."""
FORMATS = ("numbias.calibrated-judge/1", "numbias.calibrated-judge/2", FORMAT)
COVERAGE = 0.9
"""The coverage of the conformal interval a calibrated judge gives around each score."""


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
    interval: dict[str, Any] | None = None
    interval_note: str = ""


def cross_fitted_interval(setting: Setting, data: SettingData, human: np.ndarray,
                          human_range: tuple[float, float]) -> ConformalInterval:
    """The :data:`COVERAGE` conformal interval of ``setting`` fitted on its cross-fitted
    scores of ``data``'s items (``human`` on the human scale), so its radius is that of
    held-out scores; its ends are ratings humans can give (inside ``human_range``, on
    the integers when every human score is one). A NumbiasError when the items cannot
    support one."""
    interval = ConformalInterval(COVERAGE, levels=rating_grid(human, human_range),
                                 limits=[float(v) for v in human_range])
    return interval.fit(dev_predictions(setting, data, human, human_range), human)


class CalibratedJudge:
    """Scores new items the way a fitted setting does: the judge's distribution at the
    setting's scale, the fitted calibrator, the rule. ``score`` returns scores on the
    setting's scale; ``to_human`` maps them linearly onto the human range.

    >>> import tempfile
    >>> import numpy as np
    >>> from numbias import CalibratedJudge, PromptTemplate, ScoreScale, register_backend
    >>> from numbias.backends.fake import FakeBackend
    >>> from numbias.config import JudgeConfig
    >>> from numbias.mitigation import Setting, SettingData
    >>> def by_length(model: str) -> FakeBackend:  # the word's length as the score, then the end
    ...     return FakeBackend([*"0123456789", ""], lambda prompt, tokens: np.eye(11)[
    ...         10 if tokens else len(prompt.user.split()[-1])] * 50, eos=10)
    >>> register_backend("by-length", by_length)
    >>> template, scale = PromptTemplate("Rate the word: {word}"), ScoreScale(0, 9)
    >>> words, stars = ["bad", "okay", "great", "superb"], np.array([1.0, 2.0, 4.0, 5.0])
    >>> prompts = [template.fill({"word": w}, scale, chat=True) for w in words]
    >>> dev = SettingData(list(by_length("toy").score(prompts, scale)), [])
    >>> judge = CalibratedJudge.fit(JudgeConfig(model="toy", backend="by-length"), template,
    ...                             Setting("0-9", "expected", 1.0, "isotonic"), dev, (stars - 1) / 4 * 9, (1, 5))
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     loaded = CalibratedJudge.load(judge.save(f"{tmp}/judge.json"))
    ...     scores = loaded.score([{"word": "fine"}, {"word": "lovely"}])
    >>> loaded.setting == judge.setting, scores, loaded.to_human(scores)
    (True, array([2.25, 9.  ]), array([2., 5.]))
    """

    def __init__(self, judge: JudgeConfig, template: PromptTemplate, fitted: Fitted,
                 human_range: tuple[float, float], fitted_on: str = "", truncate: str | None = None,
                 interval: ConformalInterval | None = None, interval_note: str = "") -> None:
        self.judge_config = judge
        self.template = template
        self.fitted = fitted
        self.human_range = human_range
        self.fitted_on = fitted_on
        self.truncate = truncate
        self.interval = interval
        """The conformal interval on the human scale around each score (None: see ``interval_note``)."""
        self.interval_note = interval_note
        self._judge: Judge | None = None

    @classmethod
    def fit(cls, judge: JudgeConfig, template: PromptTemplate, setting: Setting, data: SettingData,
            human_on_scale: np.ndarray, human_range: tuple[float, float], fitted_on: str = "",
            truncate: str | None = None) -> CalibratedJudge:
        """Fit ``setting`` on all of ``data``, and a conformal interval (coverage
        :data:`COVERAGE`) on the same items' cross-fitted predictions, so its radius is
        that of held-out scores; when the items cannot support one, ``interval_note`` says why."""
        fitted = Fitted.fit(setting, data, np.arange(len(data.distributions)), human_on_scale)
        lo, hi = human_range
        human = lo + data.scale.to_unit(human_on_scale) * (hi - lo)
        try:
            interval, note = cross_fitted_interval(setting, data, human, human_range), ""
        except NumbiasError as exc:
            interval, note = None, f"no conformal interval: {first_line(exc)}"
        return cls(judge, template, fitted, human_range, fitted_on, truncate, interval, note)

    @property
    def setting(self) -> Setting:
        return self.fitted.setting

    @property
    def scale(self) -> ScoreScale:
        """The scale the scores are on (a range ensemble's: its common grid)."""
        return setting_scale(self.setting.scale)

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
        """The judge's exact distributions for ``data`` at the setting's scale (for a
        range ensemble: read at each of its scales and mixed)."""
        self.template.check(set(data.fields))
        text = self.setting.scale
        scales = ensemble_parts(text) if ENSEMBLE_JOIN in text else (self.scale,)
        with TemporaryDirectory() as tmp, Store(store or Path(tmp) / "store.sqlite") as db:
            read = [collect(self.judge, data.name, data, self.template, scale, db, progress=progress,
                            truncate=self.truncate).distributions for scale in scales]
        if len(read) == 1:
            return read[0]
        return [mixture(parts, self.scale) for parts in zip(*read)]

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

    def bounds(self, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The low and high ends, on the human scale, of each score's conformal interval
        (NaN without an interval: ``interval_note`` says why)."""
        if self.interval is None:
            return np.full(len(scores), np.nan), np.full(len(scores), np.nan)
        _, low, high = self.interval.predict(scores)
        return low, high

    def save(self, path: str | Path) -> Path:
        saved = _Saved(format=FORMAT, judge=self.judge_config,
                       template={"text": self.template.text, "answer_prefix": self.template.answer_prefix,
                                 "system": self.template.system},
                       setting={"scale": self.setting.scale, "rule": self.setting.rule,
                                "temperature": self.setting.temperature, "mitigation": self.setting.mitigation},
                       state=self.fitted.state(), human_range=self.human_range,
                       fitted_on=self.fitted_on, truncate=self.truncate, interval_note=self.interval_note,
                       interval=None if self.interval is None else
                       {"params": self.interval.get_params(), "state": self.interval.get_state()})
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
                   saved.human_range, saved.fitted_on, saved.truncate, *_saved_interval(saved, path))


def _saved_interval(saved: _Saved, path: str | Path) -> tuple[ConformalInterval | None, str]:
    """The saved conformal interval, or why there is none (files before /3 have none)."""
    if saved.format != FORMAT:
        return None, f"no conformal interval: {path} was saved in format {saved.format}"
    if saved.interval is None:
        return None, saved.interval_note or "no conformal interval"
    try:
        interval = ConformalInterval(**saved.interval["params"]).set_state(saved.interval["state"])
    except (KeyError, TypeError, NumbiasError) as exc:
        raise NumbiasError(f"calibrated judge file {path} has a bad conformal interval: {first_line(exc)}") from None
    return interval, saved.interval_note
