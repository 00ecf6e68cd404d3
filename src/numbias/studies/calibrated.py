"""A judge with a fitted mitigation, saved to a file and reused for production scoring."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from numbias.backends.base import required_options, takes_option
from numbias.core.conformal import ConformalInterval, rating_grid
from numbias.core.distribution import ScoreDistribution, mixture, paired
from numbias.core.metrics import Rule, check_rule
from numbias.core.scale import ENSEMBLE_JOIN, ScoreScale, ensemble_parts, setting_scale
from numbias.data.dataset import Dataset, make_dataset
from numbias.data.prompt import SCALE_FIELDS, PromptTemplate
from numbias.judge.config import JudgeConfig, judge_as_data
from numbias.judge.judging import Judge, Progress, collect, no_progress
from numbias.judge.store import Store
from numbias.judge.workers import close_workers
from numbias.mitigations import Contrast, Fitted, Setting, SettingData, dev_predictions, get_mitigation
from numbias.util.errors import NumbiasError, first_line, readable_file, validation_message
from numbias.util.output import text, write_one

FORMAT = "numbias.calibrated-judge/3"
"""/3 adds the conformal interval; /2 saves the calibrator's parameters with its learned
state; /2 and /1 files (no interval; /1: default parameters) still load."""
FORMATS = ("numbias.calibrated-judge/1", "numbias.calibrated-judge/2", FORMAT)
COVERAGE = 0.9
"""The coverage of the conformal interval a calibrated judge gives around each score."""


Finite = Annotated[float, Field(allow_inf_nan=False)]


def _checked(check: Callable[[Any], Any]) -> AfterValidator:
    """A validator running a numbias check, its error as pydantic's (so it names the field)."""

    def run(value: Any) -> Any:
        try:
            check(value)
        except NumbiasError as exc:
            raise ValueError(first_line(exc)) from None
        return value

    return AfterValidator(run)


def _positive(value: float) -> None:
    if value <= 0:
        raise NumbiasError(f"must be above 0, got {value:g}")


def _numbers(state: dict[str, Any]) -> None:
    """Learned state is finite numbers (or arrays of them)."""
    for key, value in state.items():
        try:
            ok = bool(np.isfinite(np.asarray(value, dtype=float)).all()) and not isinstance(value, (str, bool))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise NumbiasError(f"{key} must be finite numbers, got {str(value)[:40]!r}")


class _SavedSetting(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scale: Annotated[str, _checked(setting_scale)]
    rule: Annotated[Rule, _checked(check_rule)]
    temperature: Annotated[Finite, _checked(_positive)] | Literal["fit"]
    mitigation: Annotated[str, _checked(get_mitigation)]


class _SavedState(BaseModel):
    model_config = ConfigDict(extra="forbid")
    temperature_: Annotated[Finite, _checked(_positive)]
    params: dict[str, Any] = Field(default_factory=dict)
    calibrator: Annotated[dict[str, Any], _checked(_numbers)] = Field(default_factory=dict)


class _SavedIntervalState(BaseModel):
    model_config = ConfigDict(extra="forbid")
    slope_: Finite
    intercept_: Finite
    radius_: Annotated[Finite, Field(ge=0)]


class _SavedInterval(BaseModel):
    model_config = ConfigDict(extra="forbid")
    params: dict[str, Any]
    state: _SavedIntervalState


class _SavedTemplate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str
    answer_prefix: str | None = None
    system: str | None = None

    @model_validator(mode="after")
    def _well_formed(self) -> _SavedTemplate:
        try:
            PromptTemplate(self.text, self.answer_prefix, self.system).fields  # noqa: B018 - parses it
        except NumbiasError as exc:
            raise ValueError(first_line(exc)) from None
        return self


class _Saved(BaseModel):
    """A saved judge as it is read back: every field typed and checked, so a bad file
    is one line naming the field before any model loads."""

    model_config = ConfigDict(extra="forbid")
    format: str
    judge: JudgeConfig
    amateur: JudgeConfig | None = None
    template: _SavedTemplate
    setting: _SavedSetting
    state: _SavedState
    human_range: tuple[Finite, Finite]
    fitted_on: str
    truncate: str | None = None
    interval: _SavedInterval | None = None
    interval_note: str = ""

    @field_validator("human_range")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        if value[0] >= value[1]:
            raise ValueError(f"low {value[0]:g} must be below high {value[1]:g}")
        return value


def cross_fitted_interval(
    setting: Setting, data: SettingData, human: np.ndarray, human_range: tuple[float, float]
) -> ConformalInterval:
    """The :data:`COVERAGE` conformal interval of ``setting`` fitted on its cross-fitted
    scores of ``data``'s items (``human`` on the human scale), so its radius is that of
    held-out scores; its ends are ratings humans can give (inside ``human_range``, on
    the integers when every human score is one). A NumbiasError when the items cannot
    support one."""
    interval = ConformalInterval(
        COVERAGE, levels=rating_grid(human, human_range), limits=[float(v) for v in human_range]
    )
    return interval.fit(dev_predictions(setting, data, human, human_range), human)


class CalibratedJudge:
    """Scores new items the way a fitted setting does: the judge's distribution at the
    setting's scale, the fitted calibrator, the rule. ``score`` returns scores on the
    setting's scale; ``to_human`` maps them linearly onto the human range.

    >>> import tempfile
    >>> import numpy as np
    >>> from numbias import CalibratedJudge, PromptTemplate, ScoreScale, register_backend
    >>> from numbias.backends.fake import FakeBackend
    >>> from numbias.judge.config import JudgeConfig
    >>> from numbias.mitigations import Setting, SettingData
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

    def __init__(
        self,
        judge: JudgeConfig,
        template: PromptTemplate,
        fitted: Fitted,
        human_range: tuple[float, float],
        fitted_on: str = "",
        truncate: str | None = None,
        interval: ConformalInterval | None = None,
        interval_note: str = "",
        amateur: JudgeConfig | None = None,
    ) -> None:
        if isinstance(fitted.calibrator, Contrast) and amateur is None:
            raise NumbiasError(
                f"setting {fitted.setting.label} contrasts the judge with an amateur judge: give the amateur"
            )
        self.judge_config = judge
        self.amateur_config = amateur
        """The amateur judge a contrast setting reads beside the judge (None: no contrast)."""
        self.template = template
        self.fitted = fitted
        self.human_range = human_range
        self.fitted_on = fitted_on
        self.truncate = truncate
        self.interval = interval
        """The conformal interval on the human scale around each score (None: see ``interval_note``)."""
        self.interval_note = interval_note
        self.notes: list[str] = []
        """Facts the scores' outputs state (a server the saved judge recorded, not used)."""
        self._judge: Judge | None = None
        self._amateur: Judge | None = None

    @classmethod
    def fit(
        cls,
        judge: JudgeConfig,
        template: PromptTemplate,
        setting: Setting,
        data: SettingData,
        human_on_scale: np.ndarray,
        human_range: tuple[float, float],
        fitted_on: str = "",
        truncate: str | None = None,
        amateur: JudgeConfig | None = None,
    ) -> CalibratedJudge:
        """Fit ``setting`` on all of ``data`` (a contrast setting: its items paired with
        ``amateur``'s, :func:`numbias.core.distribution.paired`), and a conformal interval (coverage
        :data:`COVERAGE`) on the same items' cross-fitted predictions, so its radius is
        that of held-out scores; when the items cannot support one, ``interval_note`` says why."""
        fitted = Fitted.fit(setting, data, np.arange(len(data.distributions)), human_on_scale)
        lo, hi = human_range
        human = lo + data.scale.to_unit(human_on_scale) * (hi - lo)
        try:
            interval, note = cross_fitted_interval(setting, data, human, human_range), ""
        except NumbiasError as exc:
            interval, note = None, f"no conformal interval: {first_line(exc)}"
        return cls(judge, template, fitted, human_range, fitted_on, truncate, interval, note, amateur)

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

    @property
    def amateur(self) -> Judge | None:
        """The contrast's amateur judge (None without one), built on first use like ``judge``."""
        if self._amateur is None and self.amateur_config is not None:
            self._amateur = Judge(self.amateur_config)
        return self._amateur

    def score(
        self,
        items: Sequence[Mapping[str, Any]] | Dataset,
        *,
        store: str | Path | None = None,
        progress: Progress = no_progress,
    ) -> np.ndarray:
        """Calibrated scores on the setting's scale for new items (a Dataset, e.g. from
        :func:`numbias.data.dataset.load_file`, or mappings of the template's fields). With
        ``store`` the distributions are kept there, so a long scoring resumes."""
        if not len(items):
            return np.zeros(0)
        data = items if isinstance(items, Dataset) else self._dataset(items)
        return self.fitted.predict(self.distributions(data, store=store, progress=progress))

    def distributions(
        self, data: Dataset, *, store: str | Path | None = None, progress: Progress = no_progress
    ) -> list[ScoreDistribution]:
        """The judge's exact distributions for ``data`` at the setting's scale (for a
        range ensemble: read at each of its scales and mixed), each carrying the amateur
        judge's of the same item for a contrast setting."""
        self.template.check(set(data.fields))
        text = self.setting.scale
        scales = ensemble_parts(text) if ENSEMBLE_JOIN in text else (self.scale,)
        with TemporaryDirectory() as tmp, Store(store or Path(tmp) / "store.sqlite") as db:
            read = [self._read(self.judge, data, scale, db, progress) for scale in scales]
            if (amateur := self.amateur) is not None:
                read = [
                    [paired(e, a) for e, a in zip(experts, self._read(amateur, data, scale, db, progress), strict=True)]
                    for experts, scale in zip(read, scales)
                ]
        close_workers()
        if len(read) == 1:
            return read[0]
        return [mixture(parts, self.scale) for parts in zip(*read)]

    def _read(
        self, judge: Judge, data: Dataset, scale: ScoreScale, store: Store, progress: Progress
    ) -> list[ScoreDistribution]:
        return collect(
            judge, data.name, data, self.template, scale, store, progress=progress, truncate=self.truncate
        ).distributions

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

    def save(self, path: str | Path, *, force: bool = False) -> Path:
        """Write the judge to ``path`` (JSON), replacing only a saved judge unless ``force``
        (:func:`check_save`)."""
        saved = _Saved(
            format=FORMAT,
            judge=self.judge_config,
            amateur=self.amateur_config,
            template={
                "text": self.template.text,
                "answer_prefix": self.template.answer_prefix,
                "system": self.template.system,
            },
            setting={
                "scale": self.setting.scale,
                "rule": self.setting.rule,
                "temperature": self.setting.temperature,
                "mitigation": self.setting.mitigation,
            },
            state=self.fitted.get_state(),
            human_range=self.human_range,
            fitted_on=self.fitted_on,
            truncate=self.truncate,
            interval_note=self.interval_note,
            interval=None
            if self.interval is None
            else {"params": self.interval.get_params(), "state": self.interval.get_state()},
        )
        if self.judge_config.instance is not None or (self.amateur_config and self.amateur_config.instance):
            raise NumbiasError("a judge given as a Python object cannot be saved: give it by name and backend")
        path = check_save(path, force=force)
        # A judge without an amateur is written as before the field existed.
        exclude = {"amateur"} if self.amateur_config is None else None
        return write_one(path, text(saved.model_dump_json(indent=2, exclude=exclude)))

    @classmethod
    def load(cls, path: str | Path, *, base_url: str | None = None, api_key_env: str | None = None) -> CalibratedJudge:
        """A saved judge read as data, every field checked before any model loads. Its
        backend must be registered; where it sends requests and which key it reads come
        from ``base_url`` and ``api_key_env`` (the user's ``--base-url``,
        ``--api-key-env``), never from the file, whose recorded server is only noted."""
        path = readable_file(path, "calibrated judge file")
        try:
            saved = _Saved.model_validate(json.loads(path.read_text(encoding="utf-8")))
        except ValidationError as exc:
            raise NumbiasError(
                f"calibrated judge file {path} is not a saved numbias judge: {validation_message(exc)}"
            ) from None
        except (ValueError, UnicodeDecodeError, OSError) as exc:
            raise NumbiasError(
                f"calibrated judge file {path} is not a saved numbias judge: {first_line(exc)}"
            ) from None
        if saved.format not in FORMATS:
            raise NumbiasError(
                f"calibrated judge file {path} has format {saved.format!r}, expected one of {', '.join(FORMATS)}"
            )
        judge, notes = _judge_from_file(saved.judge, path, base_url, api_key_env)
        amateur = None
        if saved.amateur is not None:  # the user's server goes to it only if it is served too
            served = takes_option(saved.amateur.backend, "base_url")
            amateur, more = _judge_from_file(
                saved.amateur, path, base_url if served else None, api_key_env if served else None
            )
            notes += more
        setting = Setting(**saved.setting.model_dump())
        try:
            fitted = Fitted(setting).set_state(saved.state.model_dump())
        except (TypeError, ValueError, NumbiasError) as exc:
            raise NumbiasError(f"calibrated judge file {path} has a bad state: {first_line(exc)}") from None
        loaded = cls(
            judge,
            PromptTemplate(**saved.template.model_dump()),
            fitted,
            saved.human_range,
            saved.fitted_on,
            saved.truncate,
            *_saved_interval(saved, path),
            amateur,
        )
        loaded.notes = notes
        return loaded


def _judge_from_file(
    judge: JudgeConfig, path: Path, base_url: str | None, api_key_env: str | None
) -> tuple[JudgeConfig, list[str]]:
    """The saved judge with the user's server (if any) in place of the file's, and the
    note that shows the file's: a server the user did not name is never contacted."""
    judge, routing = judge_as_data(judge, f"calibrated judge file {path}")
    recorded = str(routing.get("base_url", ""))[:200]
    given = {k: v for k, v in (("base_url", base_url), ("api_key_env", api_key_env)) if v is not None}
    judge.options.update(given)
    if "base_url" in required_options(judge.backend) and base_url is None:
        was = f" was scored against {recorded}, which is not used:" if recorded else " needs a server:"
        raise NumbiasError(f"calibrated judge file {path}{was} pass --base-url to name the server to score with")
    notes = (
        [f"{path.name} was scored against {recorded}; pass --base-url to use a server"]
        if recorded and base_url is None
        else []
    )
    return judge, notes


def _saved_interval(saved: _Saved, path: str | Path) -> tuple[ConformalInterval | None, str]:
    """The saved conformal interval, or why there is none (files before /3 have none);
    kept inside the saved human range."""
    if saved.format != FORMAT:
        return None, f"no conformal interval: {path} was saved in format {saved.format}"
    if saved.interval is None:
        return None, saved.interval_note or "no conformal interval"
    params = dict(saved.interval.params)
    if params.get("limits") is None:  # saved before intervals were clipped: every human score lies in the range
        params["limits"] = list(saved.human_range)
    try:
        interval = ConformalInterval(**params).set_state(saved.interval.state.model_dump())
    except (KeyError, TypeError, NumbiasError) as exc:
        raise NumbiasError(f"calibrated judge file {path} has a bad conformal interval: {first_line(exc)}") from None
    return interval, saved.interval_note


def check_save(path: str | Path, *, force: bool = False) -> Path:
    """Where a judge can be saved, checked before any work: a file in an existing,
    writable folder, and not a file numbias did not save (``force``: replace it)."""
    given, path = str(path), Path(path)
    if not given.strip():
        raise NumbiasError("--save '' names no file; name one, e.g. --save judge.json")
    if given.endswith(("/", os.sep)) or path.is_dir():
        raise NumbiasError(f"--save {given}: is a folder; name a file, e.g. {path / 'judge.json'}")
    parent = path.parent
    if not parent.is_dir():
        raise NumbiasError(f"--save {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise NumbiasError(f"--save {path}: folder {parent} is not writable")
    if (path.exists() or path.is_symlink()) and not force and not _is_saved_judge(path):
        raise NumbiasError(
            f"--save {path}: the file exists and is not a saved numbias judge; name another file, "
            "or pass --force to replace it"
        )
    return path


def _is_saved_judge(path: Path) -> bool:
    """Whether ``path`` holds a judge numbias saved (its format field says so)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(raw, dict) and raw.get("format") in FORMATS
