"""The mitigation study: every temperature, calibration, mapping and scale on
development items, the automatic choice, and its proof on held-out items, laid out
like the paper's table.

Selection sees development items only (:func:`compare`); the test items' labels are
read once, to score settings that are already fixed."""

from __future__ import annotations

import multiprocessing
import signal
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
from pydantic import ConfigDict, Field, field_validator, model_validator

from numbias.core.conformal import coverage
from numbias.core.distribution import (
    TEMPERATURES,
    ScoreDistribution,
    check_lambda,
    check_temperatures,
    mixture,
    paired,
    stack,
)
from numbias.core.inference import Effect, adjust, paired_effect
from numbias.core.metrics import RULES, evaluate, group_codes, item_scores, pearson_rows, to_scale
from numbias.core.scale import (
    BEST_FIRST,
    ENSEMBLE_JOIN,
    PAPER_SCALE,
    ScoreScale,
    ensemble_grid,
    ensemble_parts,
    setting_scale,
)
from numbias.data.dataset import Dataset
from numbias.data.prompt import PromptTemplate
from numbias.data.tasks import PreparedTask, prepare_tasks, task_notes
from numbias.judge.config import (
    DEFAULT_PRUNE,
    Folder,
    JudgeConfig,
    JudgeList,
    JudgeRef,
    RuleList,
    SamplingConfig,
    ScaleList,
    Settings,
    TaskConfig,
    TaskList,
    validate_config,
)
from numbias.judge.judging import Judge, Progress, collect, no_progress, sampling_mode
from numbias.judge.store import Store
from numbias.judge.workers import close_workers
from numbias.mitigations import (
    CONTRAST,
    CONTRAST_MITIGATIONS,
    CRITERIA,
    DEFAULT_LAMBDA,
    DEFAULT_MITIGATIONS,
    FIT,
    LAMBDAS,
    PAPER_TEMPERATURES,
    Criterion,
    Setting,
    SettingData,
    Temperature,
    all_mitigations,
    cross_folds,
    holdout,
)
from numbias.mitigations.selection import (
    CHOICE_ROW,
    DEFAULT_ROW,
    LABEL_SIZES,
    ORACLE_ROW,
    PAPER_DEFAULT,
    Honesty,
    compare,
    fit_predict,
    honest_selection,
    label_efficiency,
    pearson,
    subset,
)
from numbias.models.catalog import DEFAULT_JUDGE
from numbias.studies.calibrated import CalibratedJudge, cross_fitted_interval
from numbias.util.errors import NumbiasError

CONTENT_FREE = ("N/A", "")


def _default_temperatures() -> list[Temperature]:
    """The paper's temperatures and ``fit``."""
    return [*PAPER_TEMPERATURES, FIT]


Order = Literal["worst-first", "best-first"]
ORDERS: tuple[Order, ...] = get_args(Order)
FORMAT_WORDS = {3: ["poor", "fair", "good"], 5: ["poor", "fair", "good", "very good", "excellent"]}
"""The words the format family asks with when none are given, by the number of labels."""


class FormatsConfig(Settings):
    """The format family: the study's range asked as digits, reversed digits, letters
    and words, in each order of the options (``best-first`` lists them best first);
    each reading is placed on the unit interval by its values, and the format ensemble
    is their mean (a range ensemble of the formats): label-free."""

    model_config = ConfigDict(extra="forbid")
    range: str = "1-5"
    """The digits every format asks for, ``LO-HI`` (letters and words take as many labels)."""
    words: list[str] | None = None
    """The labels of the word format, worst first (default: :data:`FORMAT_WORDS` by size)."""
    orders: list[Order] = Field(default_factory=lambda: list(ORDERS))

    @model_validator(mode="after")
    def _checked(self) -> FormatsConfig:
        try:
            return self._check()
        except NumbiasError as exc:
            raise ValueError(str(exc)) from None

    def _check(self) -> FormatsConfig:
        digits = ScoreScale.parse(self.range)
        if not digits.standard:
            raise ValueError(f"formats range {self.range!r} must be digits LO-HI (e.g. 1-5)")
        if digits.size > 26:
            raise ValueError(f"formats range {digits} has {digits.size} scores; letters go up to 26")
        if self.words is None and digits.size not in FORMAT_WORDS:
            raise ValueError(f"formats range {digits}: give words, a list of {digits.size} labels worst first")
        if self.words is not None and len(self.words) != digits.size:
            raise ValueError(f"formats range {digits} needs {digits.size} words, got {len(self.words)}")
        if not self.orders or len(set(self.orders)) < len(self.orders):
            raise ValueError(f"formats orders must name worst-first and/or best-first once each, got {self.orders}")
        self.range = str(digits)
        self.scales()  # the words make a scale
        return self

    def scales(self) -> dict[str, list[str]]:
        """Each order's formats, as scale spellings."""
        digits = ScoreScale.parse(self.range)
        words = self.words or FORMAT_WORDS[digits.size]
        forms = [
            str(digits),
            f"reversed:{digits}",
            f"letters:A-{chr(ord('A') + digits.size - 1)}",
            str(ScoreScale.from_labels(words)),
        ]
        return {
            order: [str(ScoreScale.parse(("" if order == "worst-first" else BEST_FIRST) + f)) for f in forms]
            for order in self.orders
        }

    def ensembles(self) -> list[str]:
        """The format ensemble (the first order's formats) and, with two orders, the
        ensemble over formats and orders."""
        by_order = list(self.scales().values())
        joined = [ENSEMBLE_JOIN.join(by_order[0])]
        return joined + ([ENSEMBLE_JOIN.join(s for scales in by_order for s in scales)] if len(by_order) > 1 else [])


def _a_lambda(v: Any) -> Any:
    try:
        return check_lambda(v)
    except NumbiasError as exc:
        raise ValueError(str(exc)) from None


class ContrastConfig(Settings):
    """The contrast family: ``amateur``, the judge whose distributions the study's judges
    are contrasted with (scored through the same store, at the same scales); ``lam``,
    the fixed λ; ``lambdas``, the λ the fitted and label-free variants choose among."""

    model_config = ConfigDict(extra="forbid")
    amateur: JudgeRef
    lam: float = DEFAULT_LAMBDA
    lambdas: list[float] = Field(default_factory=lambda: list(LAMBDAS))

    @field_validator("lam", mode="before")
    @classmethod
    def _lam(cls, v: Any) -> Any:
        return _a_lambda(v)

    @field_validator("lambdas", mode="before")
    @classmethod
    def _lambdas(cls, v: Any) -> Any:
        if not isinstance(v, list) or not v:
            raise ValueError(f"lambdas must be a non-empty list of λ from 0 to 1, got {v!r}")
        return sorted({_a_lambda(x) for x in v})

    @property
    def settings(self) -> dict[str, Any]:
        """What the paired items carry for the contrast's variants (``meta["contrast"]``)."""
        return {"lam": self.lam, "lambdas": tuple(self.lambdas)}


class MitigateConfig(Settings):
    model_config = ConfigDict(extra="forbid")
    judges: JudgeList = Field(
        default_factory=lambda: [JudgeConfig(model=DEFAULT_JUDGE, options={"prune": DEFAULT_PRUNE})]
    )
    tasks: TaskList = Field(default_factory=lambda: [TaskConfig(name="vader", options={"n": 500})])
    scales: ScaleList = Field(default_factory=lambda: [PAPER_SCALE, "1-5", "1-10", "0-10", "1-100", "0-100"])
    rules: RuleList = Field(default_factory=lambda: list(RULES))
    ensembles: list[str] | None = None
    """Range ensembles, each a ``+``-joined list of the study's scales (``0-9+1-5``);
    default: all the study's scales together (when there are two or more); ``[]``: none."""
    formats: FormatsConfig | None = None
    """The format family (``true``: its defaults; a string: its range): its scales join
    ``scales`` and its ensembles ``ensembles``."""
    contrast: ContrastConfig | None = None
    """The contrast family: its amateur judge and λ; the family's mitigations join
    ``mitigations`` unless it names some of them."""
    temperatures: list[Temperature] = Field(default_factory=_default_temperatures)
    """Fixed temperatures (read exactly from the stored grid) and/or ``fit``."""
    mitigations: list[str] = Field(default_factory=lambda: list(DEFAULT_MITIGATIONS))
    """Registered mitigation names (built-in, :func:`numbias.register_mitigation`, installed)."""
    dev: int = Field(200, ge=10)
    """Development items (seeded draw); the rest of the task's items are the test split."""
    folds: int | None = Field(None, ge=2)
    """Instead of one dev/test split: k folds, each held out once (selection on the rest)."""
    criterion: Criterion = "pearson"
    sample: bool = False
    """Also run the paper's sampling protocol at 0.4/0.7/1.0/1.3 on the 0–9 scale."""
    resamples: int = Field(10, ge=0)
    """Bootstrap resamples of dev for the choice's stability (0: none). The choice's
    cross-fitted comparison with the default on dev and the nested estimate are always made."""
    label_sizes: list[int] = Field(default_factory=lambda: list(LABEL_SIZES))
    label_draws: int = Field(0, ge=0)
    """Seeded draws of each number of labels for the label-efficiency curve (0, the
    default: none; the study's results use 20)."""
    oracle: bool = True
    """Add the setting that is best on the test items, labelled as such: how far each
    method is from the best possible choice (not a method: it reads test labels)."""
    n_jobs: int = Field(1, ge=1)
    """Worker processes comparing the judge × task pairs once every answer is read
    (the scoring's processes are ``workers``); the results do not depend on it."""
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    workers: int | None = Field(None, ge=1)
    """Processes a judge's missing items are sharded over (None: one per core for a CPU
    llama.cpp judge, at most 4, each with its share of the threads; 1: one process).
    The results do not depend on it."""
    out: Folder = "numbias-mitigate"
    store: str | None = None
    seed: int = 0
    bootstrap: int = 1000

    @field_validator("scales")
    @classmethod
    def _scales(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("give at least one scale")
        return list(dict.fromkeys(v))

    @field_validator("temperatures", mode="before")
    @classmethod
    def _temperatures(cls, v: Any) -> Any:
        if not isinstance(v, list):
            return v
        fixed = [t for t in v if t != FIT]
        if any(isinstance(t, (str, bool)) or not isinstance(t, (int, float)) for t in fixed):
            raise ValueError(f"temperatures are numbers or {FIT!r}, got {v}")
        return [*check_temperatures(fixed), *([FIT] if FIT in v else [])] if fixed else [FIT]

    @field_validator("mitigations")
    @classmethod
    def _mitigations(cls, v: list[str]) -> list[str]:
        known = all_mitigations()  # read at validation: a mitigation registered after import counts
        if bad := [m for m in v if m not in known]:
            raise ValueError(f"unknown mitigation(s) {bad}; known: {', '.join(known)}")
        return v

    @field_validator("formats", mode="before")
    @classmethod
    def _formats(cls, v: Any) -> Any:
        if isinstance(v, bool):
            return {} if v else None
        return {"range": v} if isinstance(v, str) else v

    @field_validator("criterion", mode="before")
    @classmethod
    def _criterion(cls, v: Any) -> Any:
        if v not in CRITERIA:
            raise ValueError(f"criterion must be one of {', '.join(CRITERIA)}, got {v!r}")
        return v

    @model_validator(mode="after")
    def _paper_default(self) -> MitigateConfig:
        d = PAPER_DEFAULT
        if (
            d.scale not in self.scales
            or d.rule not in self.rules
            or d.temperature not in self.temperatures
            or d.mitigation not in self.mitigations
        ):
            raise ValueError(
                f"the comparison needs the paper's default: keep scale {d.scale}, rule {d.rule}, "
                f"temperature {d.temperature:g} and mitigation {d.mitigation}"
            )
        return self

    @property
    def store_path(self) -> str:
        return self.store or f"{self.out}/store.sqlite"

    @model_validator(mode="after")
    def _ensembles_of_the_scales(self) -> MitigateConfig:
        if self.ensembles is None:
            self.ensembles = [ENSEMBLE_JOIN.join(self.scales)] if len(self.scales) > 1 else []
        for k, text in enumerate(self.ensembles):
            parts = [str(p) for p in ensemble_parts(text)]
            if missing := [p for p in parts if p not in self.scales]:
                raise ValueError(f"range ensemble {text!r} joins scale(s) {missing} that are not in scales")
            self.ensembles[k] = ENSEMBLE_JOIN.join(parts)
        return self

    @model_validator(mode="after")
    def _format_family(self) -> MitigateConfig:
        """The formats' scales and ensembles added after the default range ensemble
        (which joins the scales given), each once (a written config reads back the same)."""
        if self.formats is not None:
            added = [s for scales in self.formats.scales().values() for s in scales]
            self.scales = list(dict.fromkeys([*self.scales, *added]))
            self.ensembles = list(dict.fromkeys([*(self.ensembles or []), *self.formats.ensembles()]))
        return self

    @model_validator(mode="after")
    def _contrast_family(self) -> MitigateConfig:
        named = [m for m in self.mitigations if m in CONTRAST_MITIGATIONS]
        if self.contrast is None:
            if named:
                raise ValueError(f"mitigation(s) {named} need an amateur judge: give contrast: {{amateur: JUDGE}}")
            return self
        amateur = self.contrast.amateur
        if any(j.name == amateur.name and j != amateur for j in self.judges):
            raise ValueError(
                f"the contrast's amateur is named {amateur.name!r} like a judge it differs from; give it a label"
            )
        if not named:
            self.mitigations = [*self.mitigations, *CONTRAST_MITIGATIONS]
        return self

    def candidates(self) -> list[Setting]:
        return [
            Setting(s, r, t, m)
            for s in [*self.scales, *(self.ensembles or [])]
            for r in self.rules
            for t in self.temperatures
            for m in self.mitigations
        ]


def parse_mitigate(data: dict[str, Any]) -> MitigateConfig:
    return validate_config(MitigateConfig, data, "mitigate config")


def _metrics_row(
    label: str,
    fam: str,
    setting: str,
    dev_r: float,
    pred: np.ndarray,
    human: np.ndarray,
    human_range: tuple[float, float],
    scale: ScoreScale,
    n_boot: int,
    seed: int,
    groups: np.ndarray | None = None,
) -> dict[str, Any]:
    m = evaluate(pred, human, human_range, scale, n_boot=n_boot, seed=seed, groups=groups)
    row = {
        "row": label,
        "family": fam,
        "setting": setting,
        "dev score": dev_r,
        "kurtosis": m.kurtosis,
        "entropy": m.entropy,
        "pearson": m.pearson.value,
        "pearson_low": m.pearson.low,
        "pearson_high": m.pearson.high,
        "spearman": m.spearman.value,
        "n test": m.n,
    }
    if groups is not None:
        row.update(
            {
                "group pearson": m.group_pearson.value,
                "group pearson_low": m.group_pearson.low,
                "group pearson_high": m.group_pearson.high,
                "groups": m.groups,
            }
        )
    return row


@dataclass
class Comparison:
    """One judge × task: every candidate's development score (mean over folds), the
    chosen setting(s) and the test metrics of the rows of the paper-style table."""

    judge: JudgeConfig
    template: PromptTemplate
    task: str
    dev_scores: dict[Setting, float]
    chosen: list[Setting]
    table: pd.DataFrame
    test_scores: dict[str, np.ndarray]
    test_human: np.ndarray
    human_range: tuple[float, float]
    data: dict[str, SettingData]
    human: np.ndarray
    fit_on: np.ndarray
    """Items the saved judge is fitted on: the dev split (all items with k folds)."""
    folds: int = 1
    truncate: str | None = None
    row_scales: dict[str, ScoreScale] = field(default_factory=dict)
    """The scale each table row's test scores are on."""
    honesty: Honesty | None = None
    """The nested estimate and stability of the choice (a dev/test split only)."""
    label_curve: pd.DataFrame | None = None
    """Test r against the number of labels that chose and fitted (a dev/test split only)."""
    test_on: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    """The test items (all items with k folds), in the order of ``test_human``."""
    row_settings: dict[str, Setting] = field(default_factory=dict)
    """The setting behind each table row that has one (a dev/test split only)."""
    effects: dict[str, Effect] = field(default_factory=dict)
    """Each row's test r minus the default's, with its paired interval and its p
    Holm-adjusted over the rows of this table (the default and the oracle are not tested)."""
    dataset: Dataset | None = None
    """The task's items (their ids and human scores), for the results folder's files."""
    sampled: dict[float, list[ScoreDistribution]] = field(default_factory=dict)
    """The paper's sampled protocol at each temperature, when the study ran it."""
    amateur: JudgeConfig | None = None
    """The contrast family's amateur judge, when the study has one."""

    def calibrated(self) -> CalibratedJudge:
        """The automatic choice, fitted on the development items, as a reusable judge."""
        if len(set(self.chosen)) > 1:
            raise NumbiasError("folds chose different settings; save from a dev/test split instead")
        setting = self.chosen[0]
        data = self.data[setting.scale]
        part = SettingData([data.distributions[i] for i in self.fit_on], data.content_free)
        on_scale = to_scale(self.human[self.fit_on], self.human_range, data.scale)
        where = (
            f"all {len(self.fit_on)} items ({self.folds} folds)"
            if self.folds > 1
            else f"{len(self.fit_on)} development items"
        )
        return CalibratedJudge.fit(
            self.judge,
            self.template,
            setting,
            part,
            on_scale,
            self.human_range,
            fitted_on=f"{self.task}: {where}",
            truncate=self.truncate,
            amateur=self.amateur if setting.mitigation in CONTRAST_MITIGATIONS else None,
        )


def _content_free(data: Dataset) -> Dataset:
    frame = pd.DataFrame(
        [
            {"id": f"__content_free_{k}__", "human": np.nan, **{f: text for f in data.fields}}
            for k, text in enumerate(CONTENT_FREE)
        ]
    )
    return Dataset(f"{data.name} (content-free)", frame, data.fields, data.human_range)


def make_splits(
    n: int, config: MitigateConfig, groups: np.ndarray | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The seeded dev/test split (:func:`holdout`) or k folds (:func:`cross_folds`) of the
    items; with ``groups`` whole groups go to one side, so no source document is both
    chosen on and tested on."""
    if not config.folds:
        return [holdout(n, config.dev, config.seed, groups)]
    units = np.arange(n) if groups is None else group_codes(groups, n)
    if n < 10 * config.folds or units.max() + 1 < config.folds:
        raise NumbiasError(
            f"{config.folds} folds need at least {10 * config.folds} items and {config.folds} "
            f"groups (the task has {n} items)"
        )
    return cross_folds(n, config.folds, config.seed, groups)


@dataclass
class MitigateResults:
    config: MitigateConfig
    comparisons: list[Comparison]
    notes: list[str] = field(default_factory=list)
    """What the outputs must say about the data (e.g. a human range taken from the data)."""

    @property
    def table(self) -> pd.DataFrame:
        frames = [c.table.assign(judge=c.judge.name, task=c.task) for c in self.comparisons]
        table = pd.concat(frames, ignore_index=True)
        return table[["judge", "task", *[c for c in table.columns if c not in ("judge", "task")]]]

    @property
    def selection(self) -> pd.DataFrame:
        """Per judge × task: the chosen setting's dev score, its cross-fitted change
        against the default on dev (what the recommendation rests on), the nested
        estimate of the selection procedure, the choice's stability, and the label-free
        choice with its change against the default on dev."""
        return pd.DataFrame(
            [
                {
                    "judge": c.judge.name,
                    "task": c.task,
                    "chosen": h.chosen.label,
                    "dev score": h.dev_score,
                    "dev Δ r": h.dev_gain.delta,
                    "dev Δ r_low": h.dev_gain.low,
                    "dev Δ r_high": h.dev_gain.high,
                    "dev p": h.dev_gain.p,
                    "recommended": h.recommended,
                    "nested estimate": h.nested,
                    "stability": h.stability,
                    "scale stability": h.scale_stability,
                    "resamples": h.resamples,
                    "label-free choice": h.free.label if h.free is not None else "",
                    "label-free dev Δ r": h.free_gain.delta,
                    "label-free dev Δ r_low": h.free_gain.low,
                    "label-free dev Δ r_high": h.free_gain.high,
                }
                for c in self.comparisons
                if (h := c.honesty) is not None
            ]
        )

    @property
    def label_curve(self) -> pd.DataFrame:
        frames = [
            c.label_curve.assign(judge=c.judge.name, task=c.task) for c in self.comparisons if c.label_curve is not None
        ]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    @property
    def transfer(self) -> pd.DataFrame:
        """Each judge × task's choice applied to another task with the same judge, and to
        another judge on the same task (:func:`transfer`)."""
        return transfer(self.comparisons)


def transfer(comparisons: list[Comparison]) -> pd.DataFrame:
    """How much of a choice's gain survives elsewhere: the setting chosen on ``a``
    applied to ``b``'s test items, refitted on ``b``'s development items
    ("refitted", the choice transfers) or as fitted on ``a`` ("as fitted", the
    calibration transfers too), against ``b``'s paper default and its own choice."""
    records = []
    for a in comparisons:
        for b in comparisons:
            if a is b or (a.judge.name != b.judge.name and a.task != b.task) or a.folds > 1 or b.folds > 1:
                continue
            setting = a.chosen[0]
            if setting.scale not in b.data:
                continue
            rows = b.table.set_index("row")["pearson"]
            default, own = rows[DEFAULT_ROW], rows[CHOICE_ROW]
            refit = pearson(fit_predict(setting, b.data, b.human, b.human_range, b.fit_on, b.test_on), b.test_human)
            fitted = a.calibrated().fitted.predict([b.data[setting.scale].distributions[i] for i in b.test_on])
            as_fitted = pearson(fitted, b.test_human)
            gain = own - default
            records.append(
                {
                    "from judge": a.judge.name,
                    "from task": a.task,
                    "to judge": b.judge.name,
                    "to task": b.task,
                    "setting": setting.label,
                    "default r": default,
                    "own choice r": own,
                    "refitted r": refit,
                    "as fitted r": as_fitted,
                    "gain kept (refitted)": (refit - default) / gain if gain else np.nan,
                    "gain kept (as fitted)": (as_fitted - default) / gain if gain else np.nan,
                }
            )
    return pd.DataFrame(records)


def mitigate(
    config: MitigateConfig | dict[str, Any] | None = None, *, progress: Progress = no_progress
) -> MitigateResults:
    """Score every judge × task at every scale (stored, resumable), then compare all
    settings on held-out items.

    A judge that answers 8 to everything at 0–9 but reads the word at 1–5: the
    automatic choice, made on development items, moves to the 1–5 scale.

    >>> import tempfile
    >>> import numpy as np, pandas as pd
    >>> import numbias
    >>> from numbias.backends.fake import FakeBackend
    >>> from numbias.data.dataset import make_dataset
    >>> def logits(prompt, tokens):
    ...     row = np.full(11, -9.0)
    ...     if tokens:
    ...         row[10] = 9.0  # one digit, then the end
    ...     elif "to 9" in prompt.user:
    ...         row[8] = 9.0
    ...     else:
    ...         row[min(len(prompt.user.rsplit(": ", 1)[-1]), 5)] = 9.0  # the word's length
    ...     return row
    >>> judge = FakeBackend([*"0123456789", ""], logits, eos=10)
    >>> frame = pd.DataFrame({"id": [str(i) for i in range(60)], "word": ["w" * (1 + i % 5) for i in range(60)],
    ...                       "human": [i % 5 for i in range(60)]})
    >>> task = {"dataset": make_dataset("words", frame, fields=["word"], human_range=(0, 4)),
    ...         "template": "Rate from {lo} to {hi}: {word}"}
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     res = numbias.mitigate({"judges": [judge], "tasks": [task], "scales": ["0-9", "1-5"], "dev": 30,
    ...                             "mitigations": ["none", "isotonic"], "temperatures": [0.7, 1.0],
    ...                             "resamples": 0, "bootstrap": 20, "out": tmp})
    >>> res.comparisons[0].chosen[0].scale
    '1-5'
    >>> table = res.table.set_index("row")
    >>> before, after = table.loc[["original (paper default)", "automatic choice"], "pearson"]
    >>> print(f"{before:.2f} → {after:.2f}")
    0.00 → 1.00
    """
    if not isinstance(config, MitigateConfig):
        config = parse_mitigate(config or {})
    tasks = prepare_tasks(config.tasks, labelled=True)
    _check_tasks(tasks, config)
    jobs = _read_all(config, tasks, progress)
    close_workers()  # before the comparisons fork processes of their own
    return MitigateResults(config, compare_all(jobs, config.n_jobs), task_notes(tasks))


def _read_all(config: MitigateConfig, tasks: list[PreparedTask], progress: Progress) -> list[tuple[Any, ...]]:
    """Every judge × task's comparison job: its distributions at every scale (stored,
    resumable), paired with the contrast's amateur's where there is one, and the
    sampled protocol where asked. Every judge's options are checked before a model loads."""
    judges = [Judge(jc, workers=config.workers) for jc in config.judges]
    amateur = Judge(config.contrast.amateur, workers=config.workers) if config.contrast else None
    for jc in [*config.judges, *([config.contrast.amateur] if config.contrast else [])]:
        _check_grid(jc, config)
    jobs = []
    with Store(config.store_path) as store:
        amateurs = (
            {task.label: _read_scales(amateur, task, store, config, progress) for task in tasks}
            if amateur is not None
            else {}
        )
        for jc, judge in zip(config.judges, judges):
            for task in tasks:
                per_scale = _read_scales(judge, task, store, config, progress)
                if config.contrast is not None:
                    per_scale = paired_scales(per_scale, amateurs[task.label], config.contrast)
                sampled = _sample_paper_temperatures(judge, task, store, config, progress) if config.sample else {}
                jobs.append((jc, task, per_scale, sampled, config))
    return jobs


def _check_tasks(tasks: list[PreparedTask], config: MitigateConfig) -> None:
    """Each task's splits and the criterion's needs, checked before any model loads, so
    that a setting that cannot work fails at once."""
    for task in tasks:
        make_splits(len(task.data), config, task.data.groups)
        if config.criterion == "group_pearson" and task.data.groups is None:
            raise NumbiasError(
                f"criterion group_pearson needs a group column; task {task.label!r} has none "
                "(give group: COLUMN / --group COLUMN)"
            )


def compare_all(jobs: list[tuple[Any, ...]], n_jobs: int) -> list[Comparison]:
    """Every judge × task's comparison, in order; with ``n_jobs`` > 1 in forked worker
    processes (pure numpy work on stored distributions; forking keeps the mitigations
    registered at run time), where the platform can fork."""
    if n_jobs == 1 or len(jobs) < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return [compare_task(*job) for job in jobs]
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(min(n_jobs, len(jobs)), mp_context=context, initializer=_leave_signals) as pool:
        return list(pool.map(compare_task, *zip(*jobs)))


def _leave_signals() -> None:
    """A worker leaves Ctrl-C to its parent, which says what is kept (a worker with the
    parent's handler would stop with a traceback), and dies quietly on SIGTERM."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _check_grid(judge: JudgeConfig, config: MitigateConfig) -> None:
    """Every fixed temperature of the study on the judge's grid, else one line."""
    grid = check_temperatures(judge.options.get("temperatures", TEMPERATURES))
    if missing := [t for t in config.temperatures if t != FIT and t not in grid]:
        raise NumbiasError(f"judge {judge.name}: temperature(s) {missing} are not on its grid {list(grid)}")


def paired_scales(
    per_scale: dict[str, SettingData], amateur: dict[str, SettingData], contrast: ContrastConfig
) -> dict[str, SettingData]:
    """Each scale's items and content-free items carrying the amateur's of the same
    item and the study's λ (:func:`numbias.core.distribution.paired`), which the
    contrast family reads and every other mitigation leaves alone."""

    def pair(experts: list[ScoreDistribution], amateurs: list[ScoreDistribution]) -> list[ScoreDistribution]:
        return [paired(e, a, **{CONTRAST: contrast.settings}) for e, a in zip(experts, amateurs, strict=True)]

    return {
        text: SettingData(
            pair(d.distributions, amateur[text].distributions), pair(d.content_free, amateur[text].content_free)
        )
        for text, d in per_scale.items()
    }


def _read_scales(
    judge: Judge, task: PreparedTask, store: Store, config: MitigateConfig, progress: Progress
) -> dict[str, SettingData]:
    """The task's items and the content-free items at every scale (stored, resumable)."""
    per_scale = {}
    for text in config.scales:
        scale = ScoreScale.parse(text)
        items = collect(
            judge, task.label, task.data, task.template, scale, store, progress=progress, truncate=task.truncate
        )
        free = collect(
            judge,
            task.label,
            _content_free(task.data),
            task.template,
            scale,
            store,
            progress=progress,
            truncate=task.truncate,
        )
        per_scale[text] = SettingData(items.distributions, free.distributions)
    return per_scale


def ensemble_data(text: str, per_scale: dict[str, SettingData]) -> SettingData:
    """A range ensemble's items and content-free items, each a mixture of its scales'."""
    parts = ensemble_parts(text)
    grid = ensemble_grid(parts)
    views = [per_scale[str(p)] for p in parts]
    return SettingData(
        [mixture(item, grid) for item in zip(*(v.distributions for v in views))],
        [mixture(item, grid) for item in zip(*(v.content_free for v in views))],
    )


def _sample_paper_temperatures(
    judge: Judge, task: PreparedTask, store: Store, config: MitigateConfig, progress: Progress
) -> dict[float, list[ScoreDistribution]]:
    """The paper's temperature scaling as it ran it: the sampling protocol at each T."""
    scale = ScoreScale.parse(PAPER_SCALE)
    out = {}
    for t in PAPER_TEMPERATURES:
        sampling = config.sampling.model_copy(update={"temperature": t})
        mode, scorer = sampling_mode(sampling, scale)
        out[t] = collect(
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
        ).distributions
    return out


def _fold_fits(
    per_scale: dict[str, SettingData],
    data: Dataset,
    splits: list[tuple[np.ndarray, np.ndarray]],
    config: MitigateConfig,
) -> tuple[list[Setting], list[dict[Setting, float]], dict[str, tuple[str, list[Setting]]], dict[str, np.ndarray]]:
    """Each split's choice and dev scores, and every row's family, settings (one per
    split) and held-out predictions, pooled over the splits as positions on the unit
    interval. No test label is read here: the test table reads them afterwards."""
    human, groups = data.human, data.groups
    chosen, fold_scores = [], []
    used: dict[str, tuple[str, list[Setting]]] = {}
    pooled: dict[str, np.ndarray] = {}
    for dev, test in splits:
        pick, scores, fits = compare(
            per_scale,
            human,
            data.human_range,
            dev,
            test,
            config.candidates(),
            criterion=config.criterion,
            seed=config.seed,
            groups=groups,
        )
        chosen.append(pick)
        fold_scores.append(scores)
        for fit in fits:
            used.setdefault(fit.label, (fit.family, []))[1].append(fit.setting)
            unit = setting_scale(fit.setting.scale).to_unit(fit.pred)
            pooled.setdefault(fit.label, np.full(len(human), np.nan))[test] = unit
    return chosen, fold_scores, used, pooled


def compare_task(
    judge: JudgeConfig,
    task: PreparedTask,
    per_scale: dict[str, SettingData],
    sampled: dict[float, list[ScoreDistribution]],
    config: MitigateConfig,
) -> Comparison:
    """One dev/test split, or k folds whose held-out predictions are pooled (as
    positions on the unit interval, since folds may choose different scales); then
    the test metrics of every row, the first time test labels are read."""
    data = task.data
    human, groups = data.human, data.groups
    per_scale = per_scale | {text: ensemble_data(text, per_scale) for text in config.ensembles or []}
    splits = make_splits(len(data), config, groups)
    chosen, fold_scores, used, pooled = _fold_fits(per_scale, data, splits, config)
    dev_scores = {s: _mean_defined([f.get(s, np.nan) for f in fold_scores]) for s in fold_scores[0]}
    test_idx = splits[0][1] if len(splits) == 1 else np.arange(len(human))
    rows = [(label, fam, settings, pooled[label][test_idx]) for label, (fam, settings) in used.items()]
    table, test_scores, row_scales = _test_table(rows, sampled, dev_scores, human, test_idx, data, config)
    fit_on = splits[0][0] if len(splits) == 1 else np.arange(len(human))
    comparison = Comparison(
        judge,
        task.template,
        task.label,
        dev_scores,
        chosen,
        table,
        test_scores,
        human[test_idx],
        data.human_range,
        per_scale,
        human,
        fit_on,
        len(splits),
        task.truncate,
        row_scales,
        test_on=test_idx,
        dataset=data,
        sampled=sampled,
        amateur=config.contrast.amateur if config.contrast else None,
    )
    if len(splits) == 1:
        comparison.row_settings = {label: settings[0] for label, (_, settings) in used.items()}
        _check_the_choice(comparison, *splits[0], groups, config)
        _add_intervals(comparison, splits[0][0])
    _add_effects(comparison, groups[test_idx] if groups is not None else None, config)
    return comparison


UNTESTED = ("oracle",)
"""Families whose rows are shown against the default without a test: the oracle reads
the test labels, so a test of it on the same items would mean nothing."""


def _add_effects(c: Comparison, groups: np.ndarray | None, config: MitigateConfig) -> None:
    """Each row against the paper's default on the test items: Δ r, its paired
    bootstrap interval (whole groups resampled where there are groups), p and the
    Holm-adjusted p over the table's tested rows, and the call that follows from it."""
    default = c.test_scores[DEFAULT_ROW]
    tested = [r["row"] for r in c.table.to_dict("records") if r["row"] != DEFAULT_ROW and r["family"] not in UNTESTED]
    effects = adjust(
        [
            paired_effect(
                pearson_rows,
                default,
                c.test_scores[label],
                c.test_human,
                n_boot=config.bootstrap,
                seed=config.seed,
                groups=groups,
            )
            for label in tested
        ]
    )
    c.effects = dict(zip(tested, effects))
    get = lambda label, key: getattr(c.effects[label], key) if label in c.effects else np.nan
    c.table = c.table.assign(
        **{
            "Δ r": [get(label, "delta") for label in c.table["row"]],
            "Δ r_low": [get(label, "low") for label in c.table["row"]],
            "Δ r_high": [get(label, "high") for label in c.table["row"]],
            "p": [get(label, "p") for label in c.table["row"]],
            "p adjusted": [get(label, "p_adjusted") for label in c.table["row"]],
            "vs default": [call(c.effects[label]) if label in c.effects else "" for label in c.table["row"]],
        }
    )


def call(effect: Effect) -> str:
    """What a row's test says: better or worse than the default when the adjusted test
    rejects, else within noise.

    >>> from numbias.core.inference import Effect
    >>> call(Effect(0.1, 0.05, 0.15, 0.001, 100, p_adjusted=0.01)), call(Effect(0.1, -0.01, 0.2, 0.08, 100))
    ('better', 'within noise')
    """
    if not effect.defined or not np.isfinite(effect.p):
        return "untested"
    if effect.significant():
        return "better" if effect.delta > 0 else "worse"
    return "within noise"


def _add_intervals(c: Comparison, dev: np.ndarray) -> None:
    """Each row's split-conformal interval (coverage :data:`COVERAGE`), fitted on the
    row's cross-fitted development scores as a saved judge's is, and measured on the
    test items: the share of human scores inside with its 95% Wilson interval, and the
    mean width, on the human scale."""
    measured = []
    for label in c.table["row"]:
        found = coverage([], [], [])  # a sampled row has no setting to fit
        if (setting := c.row_settings.get(label)) is not None:
            part = subset({setting.scale: c.data[setting.scale]}, dev)[setting.scale]
            try:
                interval = cross_fitted_interval(setting, part, c.human[dev], c.human_range)
                _, low, high = interval.predict(c.test_scores[label])
                found = coverage(low, high, c.test_human)
            except NumbiasError:  # too few scored development items for an interval
                pass
        measured.append(found)
    c.table = c.table.assign(
        **{
            "interval coverage": [m.share for m in measured],
            "interval coverage_low": [m.low for m in measured],
            "interval coverage_high": [m.high for m in measured],
            "interval width": [m.width for m in measured],
        }
    )


def _check_the_choice(
    c: Comparison, dev: np.ndarray, test: np.ndarray, groups: np.ndarray | None, config: MitigateConfig
) -> None:
    """The choice cross-fitted against the default on dev, its nested estimate and
    stability; its label-efficiency curve and the oracle row (the candidate best on
    test), as configured."""
    candidates = config.candidates()
    c.honesty = honest_selection(
        c.data,
        c.human,
        c.human_range,
        dev,
        candidates,
        criterion=config.criterion,
        seed=config.seed,
        groups=groups,
        resamples=config.resamples,
        n_boot=config.bootstrap,
    )
    if config.label_draws:
        c.label_curve = label_efficiency(
            c.data,
            c.human,
            c.human_range,
            dev,
            test,
            candidates,
            sizes=tuple(config.label_sizes),
            draws=config.label_draws,
            seed=config.seed,
        )
    if config.oracle:
        units = {s: fit_predict(s, c.data, c.human, c.human_range, dev, test) for s in candidates}
        test_r = {s: pearson(u, c.human[test]) for s, u in units.items()}
        best = max((s for s in candidates if not np.isnan(test_r[s])), key=lambda s: test_r[s])
        scale = setting_scale(best.scale)
        pred = scale.from_unit(units[best])
        label = ORACLE_ROW
        c.test_scores[label], c.row_scales[label], c.row_settings[label] = pred, scale, best
        row = _metrics_row(
            label,
            "oracle",
            best.label,
            c.dev_scores.get(best, np.nan),
            pred,
            c.human[test],
            c.human_range,
            scale,
            config.bootstrap,
            config.seed,
            groups[test] if groups is not None else None,
        )
        c.table = pd.concat([c.table, pd.DataFrame([row])], ignore_index=True)


def _test_table(
    rows: list[tuple[str, str, list[Setting], np.ndarray]],
    sampled: dict[float, list[ScoreDistribution]],
    dev_scores: dict[Setting, float],
    human: np.ndarray,
    test_idx: np.ndarray,
    data: Dataset,
    config: MitigateConfig,
) -> tuple[pd.DataFrame, dict[str, np.ndarray], dict[str, ScoreScale]]:
    """Each row's test metrics (a row whose folds chose different settings says how
    often each won), then the paper's sampled temperature rows."""
    groups = data.groups[test_idx] if data.groups is not None else None
    records, test_scores, row_scales = [], {}, {}

    def add(label: str, fam: str, note: str, dev_r: float, pred: np.ndarray, scale: ScoreScale) -> None:
        test_scores[label], row_scales[label] = pred, scale
        records.append(
            _metrics_row(
                label,
                fam,
                note,
                dev_r,
                pred,
                human[test_idx],
                data.human_range,
                scale,
                config.bootstrap,
                config.seed,
                groups,
            )
        )

    for label, fam, settings, unit in rows:
        scale = setting_scale(settings[0].scale)
        labels = [s.label for s in settings]
        one = len(set(settings)) == 1
        note = labels[0] if one else "; ".join(f"{labels.count(u)}× {u}" for u in dict.fromkeys(labels))
        add(label, fam, note, dev_scores.get(settings[0], np.nan) if one else np.nan, scale.from_unit(unit), scale)
    paper = ScoreScale.parse(PAPER_SCALE)
    for t, dists in sampled.items():
        probs, rest = stack([dists[i] for i in test_idx])
        add(
            f"sampled protocol T={t:g} (paper)",
            "temperature",
            f"{paper} · sampled n={config.sampling.n} · T={t:g}",
            np.nan,
            item_scores(probs, rest, paper, "protocol"),
            paper,
        )
    return pd.DataFrame(records), test_scores, row_scales


def _mean_defined(values: list[float]) -> float:
    defined = [v for v in values if not np.isnan(v)]
    return float(np.mean(defined)) if defined else float("nan")
