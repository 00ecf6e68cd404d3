"""What the automatic choice of setting is, and what it is worth: the paper-style
table's rows (each mitigation against the paper's default, the pre-specified rule,
each family's best, the label-free choice), the choice on development items proven
on held-out ones (:func:`compare`), and the checks that keep the choice honest — the
whole selection cross-fitted on the development items and compared with the default
there (paired, so a choice is recommended only when it beats the default on items it
was not chosen on), a nested estimate of what the selection achieves (unbiased under
no signal), how often the same setting wins on bootstrap resamples, and how test
accuracy grows with the number of labels.

Only development items are read to choose; held-out labels are never seen here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from numbias.core.inference import UNDEFINED, Effect, adjust, paired_effect
from numbias.core.metrics import pearson_defined as pearson
from numbias.core.metrics import pearson_rows, to_scale
from numbias.core.sampling import PROTOCOL_TEMPERATURE
from numbias.core.scale import ENSEMBLE_JOIN, PAPER_SCALE, ScoreScale, ensemble_parts
from numbias.mitigations import (
    BUILT_IN_MITIGATIONS,
    FIT,
    LABEL_CRITERIA,
    Criterion,
    Fitted,
    Setting,
    SettingData,
    Temperature,
    UnfittableError,
    cross_folds,
    get_mitigation,
    select,
)
from numbias.util.errors import NumbiasError

PAPER_DEFAULT = Setting(PAPER_SCALE, "protocol", PROTOCOL_TEMPERATURE)
"""The paper's default: 0–9, mean of sampled answers at T = 0.7 (here its exact expectation)."""
PRESPECIFIED = Setting(PAPER_SCALE, "protocol", PROTOCOL_TEMPERATURE, "ridge")
"""The rule fixed before any data is seen: distribution regression (ridge) on the
default's scale and temperature; a row of every table and a baseline for the search."""
FREE_CRITERION: Criterion = "entropy"
"""The label-free criterion whose choice is a row of the table and the zero-label
point of the label-efficiency curve."""
DEFAULT_ROW, CHOICE_ROW = "original (paper default)", "automatic choice"
PRESPECIFIED_ROW = "pre-specified: distribution regression (ridge)"
FREE_ROW = "label-free (entropy) choice"
FITTED_TEMPERATURE_ROW = "temperature (fitted on dev)"
ORACLE_ROW = "oracle: best on test (not a method)"
"""The table's row labels, defined once: selection builds the rows with them, and the
verdict, the report and the study find rows by them."""


def temperature_row(temperature: Temperature) -> str:
    """The row of the default read at another (or the fitted) temperature."""
    return FITTED_TEMPERATURE_ROW if temperature == FIT else f"temperature {temperature:g}"


def is_format(scale: str) -> bool:
    """Whether a setting's scale asks in another format than ``LO-HI`` worst first
    (reversed digits, letters, words, options best first), or is an ensemble of formats
    (one with such a part): the format family's, not the score range's.

    >>> is_format("1-5"), is_format("letters:A-E"), is_format("0-9+1-5"), is_format("1-5+best-first:1-5")
    (False, True, False, True)
    """
    parts = ensemble_parts(scale) if ENSEMBLE_JOIN in scale else (ScoreScale.parse(scale),)
    return not all(p.standard for p in parts)


def scale_row(scale: str) -> str:
    """The row of the default at another scale or format, or a range or format ensemble."""
    if ENSEMBLE_JOIN in scale:
        return f"format ensemble (label-free) {scale}" if is_format(scale) else f"range ensemble {scale}"
    return f"format {scale}" if is_format(scale) else f"scale {scale}"


def family_row(family: str, *, dev: bool = True) -> str:
    """The row of a family's best setting on development items (``dev``), or its curve
    in the label-efficiency figure."""
    return f"best {family} (dev)" if dev else f"best {family}"


@dataclass(frozen=True)
class RowFit:
    """One row of the paper-style table on one split: what it is, the setting behind
    it, and that setting's scores for the split's test items (on its scale)."""

    label: str
    family: str
    setting: Setting
    pred: np.ndarray


def families(candidates: list[Setting]) -> dict[str, Callable[[Setting], bool]]:
    """Each family of the paper-style table and which candidates belong to it: the
    temperature (paper's scale, no mitigation), each mitigation family (the built-in
    ones first, in their order, then any other), the score range (single scales, the
    paper's temperature), the format (other formats and their ensembles, the paper's
    temperature, no mitigation: label-free) and the range ensemble (ensembles of
    ranges, with no mitigation or weights over scales)."""
    d = PAPER_DEFAULT
    formats = {c.scale for c in candidates if is_format(c.scale)}
    ensembles = {c.scale for c in candidates if ENSEMBLE_JOIN in c.scale} - formats
    specs = {m: get_mitigation(m) for m in dict.fromkeys(c.mitigation for c in candidates)}
    present = {spec.family for m, spec in specs.items() if m != "none"} - {"range ensemble"}
    named = [
        f
        for f in dict.fromkeys(
            [*(get_mitigation(m).family for m in BUILT_IN_MITIGATIONS), *(spec.family for spec in specs.values())]
        )
        if f in present
    ]

    def in_family(family: str) -> Callable[[Setting], bool]:
        return lambda c: c.scale == d.scale and specs[c.mitigation].family == family

    members: dict[str, Callable[[Setting], bool]] = {
        "temperature": lambda c: c.scale == d.scale and c.mitigation == "none",
        **{f: in_family(f) for f in named},
        "score range": lambda c: (
            c.mitigation == "none"
            and c.temperature == d.temperature
            and ENSEMBLE_JOIN not in c.scale
            and c.scale not in formats
        ),
    }
    if formats:
        members["format"] = lambda c: c.scale in formats and c.mitigation == "none" and c.temperature == d.temperature
    if ensembles:
        members["range ensemble"] = lambda c: (
            c.scale in ensembles and specs[c.mitigation].family in ("original", "range ensemble")
        )
    return members


def family_bests(candidates: list[Setting], scores: dict[Setting, float]) -> dict[str, Setting]:
    """Each family's best candidate by ``scores`` (families with no scored member left out)."""
    scored = [c for c in candidates if not np.isnan(scores.get(c, np.nan))]
    bests = {}
    for name, member in families(candidates).items():
        if pool := [c for c in scored if member(c)]:
            bests[name] = max(pool, key=lambda c: scores[c])
    return bests


def table_rows(
    candidates: list[Setting], dev_scores: dict[Setting, float], chosen: Setting, free: Setting | None = None
) -> list[tuple[str, str, Setting]]:
    """(row label, family, setting) of the paper-style table: the paper's default and
    the pre-specified rule; each mitigation changes one thing about the default (one
    that needs a range ensemble is applied to the first ensemble), each scale and range
    ensemble replaces its scale; then the best of each family on dev, the label-free
    choice ``free`` (when given) and the automatic choice."""
    d = PAPER_DEFAULT
    scored = {c for c in candidates if not np.isnan(dev_scores.get(c, np.nan))}
    scales = list(dict.fromkeys(c.scale for c in candidates))
    ensembles = [s for s in scales if ENSEMBLE_JOIN in s]
    scale_families = {
        s: "format" if is_format(s) else "range ensemble" if s in ensembles else "score range" for s in scales
    }
    rows = [(DEFAULT_ROW, "original", d), (PRESPECIFIED_ROW, "pre-specified", PRESPECIFIED)]
    rows += [
        (temperature_row(t), "temperature", Setting(d.scale, d.rule, t))
        for t in dict.fromkeys(c.temperature for c in candidates)
        if t != d.temperature
    ]
    for m in dict.fromkeys(c.mitigation for c in candidates):
        spec = get_mitigation(m)
        at = [s for s in (d.scale, *ensembles) if Setting(s, d.rule, d.temperature, m) in scored]
        if m != "none" and (row := Setting(at[0] if at else d.scale, d.rule, d.temperature, m)) != PRESPECIFIED:
            rows.append((spec.title, spec.family, row))
    rows += [
        (scale_row(s), scale_families[s], Setting(s, d.rule, d.temperature))
        for s in sorted(scales, key=lambda s: s in ensembles)
        if s != d.scale
    ]
    rows += [(family_row(name), name, best) for name, best in family_bests(candidates, dev_scores).items()]
    rows += [(FREE_ROW, "label-free", free)] if free is not None else []
    rows.append((CHOICE_ROW, "automatic", chosen))
    return [r for r in rows if r[2] in dev_scores or r[2] in (chosen, free, PRESPECIFIED)]


def compare(
    data: dict[str, SettingData],
    human: np.ndarray,
    human_range: tuple[float, float],
    dev: np.ndarray,
    test: np.ndarray,
    candidates: list[Setting],
    *,
    criterion: Criterion = "pearson",
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> tuple[Setting, dict[Setting, float], list[RowFit]]:
    """Select on ``dev`` items, then fit each table row's setting on ``dev`` and score
    the ``test`` items. No test label is read here: the rows' settings and scores are
    fixed before anything is measured; ``groups`` (one per item) allow selection on
    ``group_pearson``. With a label-using criterion the label-free choice is a row too."""
    dev_data = subset(data, dev)
    dev_human = human[dev] if criterion in LABEL_CRITERIA else None
    chosen, dev_scores = select(
        candidates,
        dev_data,
        dev_human,
        human_range,
        criterion=criterion,
        seed=seed,
        groups=groups[dev] if groups is not None else None,
    )
    free = free_choice(data, human_range, dev, candidates, seed) if criterion in LABEL_CRITERIA else None
    fits = []
    for label, fam, setting in table_rows(candidates, dev_scores, chosen, free):
        d = data[setting.scale]
        on_scale = to_scale(human[dev], human_range, d.scale)
        try:
            fitted = Fitted.fit(setting, d, dev, on_scale if setting.needs_labels else None)
        except UnfittableError:  # e.g. weights over scales at a single scale: no row
            continue
        fits.append(RowFit(label, fam, setting, fitted.predict([d.distributions[i] for i in test])))
    return chosen, dev_scores, fits


def free_choice(
    data: dict[str, SettingData],
    human_range: tuple[float, float],
    dev: np.ndarray,
    candidates: list[Setting],
    seed: int = 0,
) -> Setting | None:
    """The choice of the label-free criterion (:data:`FREE_CRITERION`) on ``dev``, which
    reads no label (None when no label-free candidate is defined there)."""
    try:
        return select(candidates, subset(data, dev), None, human_range, criterion=FREE_CRITERION, seed=seed)[0]
    except NumbiasError:
        return None


def subset(data: dict[str, SettingData], idx: np.ndarray) -> dict[str, SettingData]:
    """Every scale's data for the items ``idx`` (content-free items kept whole)."""
    return {k: SettingData([d.distributions[i] for i in idx], d.content_free) for k, d in data.items()}


def fit_predict(
    setting: Setting,
    data: dict[str, SettingData],
    human: np.ndarray,
    human_range: tuple[float, float],
    fit_on: np.ndarray,
    predict: np.ndarray,
) -> np.ndarray:
    """``setting`` fitted on the items ``fit_on`` (their labels only if it needs them),
    its scores for the items ``predict`` on the unit interval (NaN when it cannot be
    fitted on those items)."""
    d = data[setting.scale]
    on_scale = to_scale(human[fit_on], human_range, d.scale) if setting.needs_labels else None
    try:
        fitted = Fitted.fit(setting, d, fit_on, on_scale)
    except UnfittableError:
        return np.full(len(predict), np.nan)
    return d.scale.to_unit(fitted.predict([d.distributions[i] for i in predict]))


@dataclass(frozen=True)
class Honesty:
    """What the selection procedure is worth, beside the chosen setting's own dev score.

    ``dev_gain``: the choice against the default (:data:`PAPER_DEFAULT`) on the
    development items, cross-fitted — each fold predicted by the winner of a selection
    run without it, fitted without it — paired with the default on the same items and
    bootstrapped over them (whole groups when there are groups); the choice is
    recommended only when its interval lies above 0. ``nested``: Pearson r of those
    cross-fitted predictions, standardised within each fold before pooling, so folds
    whose winners differ in location and spread do not bias it (pooling them raw reads
    −0.1 under no signal). ``free`` and ``free_gain``: the label-free choice and its
    paired change against the default on the same items (it reads no label, so no
    cross-fitting is needed). ``stability``: the share of bootstrap resamples of dev on
    which the same setting wins (``scale_stability``: a setting at the same scale)."""

    chosen: Setting
    dev_score: float
    nested: float
    stability: float
    scale_stability: float
    resamples: int
    dev_gain: Effect = UNDEFINED
    free: Setting | None = None
    free_gain: Effect = UNDEFINED

    @property
    def recommended(self) -> bool:
        """Whether the choice beats the default on development items (interval above 0)."""
        return bool(self.dev_gain.defined and self.dev_gain.low > 0)


def _selection(
    candidates: list[Setting],
    data: dict[str, SettingData],
    human: np.ndarray,
    human_range: tuple[float, float],
    idx: np.ndarray,
    criterion: Criterion,
    seed: int,
    groups: np.ndarray | None,
) -> tuple[Setting, dict[Setting, float]]:
    labels = human[idx] if criterion in LABEL_CRITERIA else None
    return select(
        candidates,
        subset(data, idx),
        labels,
        human_range,
        criterion=criterion,
        seed=seed,
        groups=groups[idx] if groups is not None else None,
    )


def within_folds(pred: np.ndarray, parts: list[np.ndarray]) -> np.ndarray:
    """``pred`` centred and scaled within each part (NaN kept), so pooled over parts
    its Pearson r with any y is a within-part one: fits that differ from part to part
    in location or spread add no spurious between-part variation.

    >>> within_folds(np.array([1.0, 3.0, 10.0, 30.0]), [np.array([0, 1]), np.array([2, 3])]).tolist()
    [-1.0, 1.0, -1.0, 1.0]
    """
    out = np.full(len(pred), np.nan)
    for part in parts:
        x = pred[part]
        ok = np.isfinite(x)
        if ok.any():
            sd = float(np.std(x[ok]))
            out[part] = (x - float(np.mean(x[ok]))) / (sd if sd > 0 else 1.0)
    return out


def cross_fitted(
    data: dict[str, SettingData],
    human: np.ndarray,
    human_range: tuple[float, float],
    dev: np.ndarray,
    candidates: list[Setting],
    *,
    criterion: Criterion = "pearson",
    seed: int = 0,
    groups: np.ndarray | None = None,
    folds: int = 5,
    baseline: Setting = PAPER_DEFAULT,
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Out-of-fold predictions (on the unit interval) for the ``dev`` items of the
    whole selection (re-run without each fold; its winner fitted without it) and of
    ``baseline`` (fitted the same way), and the folds' held-out positions; NaN where a
    fold has no defined candidate, no folds when there are too few items (or groups)."""
    choice, base = np.full(len(dev), np.nan), np.full(len(dev), np.nan)
    try:
        parts = cross_folds(len(dev), folds, seed, groups[dev] if groups is not None else None)
    except UnfittableError:
        return choice, base, []
    for inner, held in parts:
        base[held] = fit_predict(baseline, data, human, human_range, dev[inner], dev[held])
        try:
            pick, _ = _selection(candidates, data, human, human_range, dev[inner], criterion, seed, groups)
        except NumbiasError:  # no candidate is defined on this fold's complement
            continue
        choice[held] = fit_predict(pick, data, human, human_range, dev[inner], dev[held])
    return choice, base, [held for _, held in parts]


def _resampled_choices(
    candidates: list[Setting],
    data: dict[str, SettingData],
    human: np.ndarray,
    human_range: tuple[float, float],
    dev: np.ndarray,
    criterion: Criterion,
    seed: int,
    groups: np.ndarray | None,
    resamples: int,
) -> list[Setting]:
    """The selection re-run on ``resamples`` seeded bootstrap resamples of ``dev``: how
    often it lands where it did on dev itself is how stable the choice is."""
    rng = np.random.default_rng(seed)
    return [
        _selection(
            candidates,
            data,
            human,
            human_range,
            np.sort(rng.choice(dev, size=len(dev), replace=True)),
            criterion,
            seed,
            groups,
        )[0]
        for _ in range(resamples)
    ]


def honest_selection(
    data: dict[str, SettingData],
    human: np.ndarray,
    human_range: tuple[float, float],
    dev: np.ndarray,
    candidates: list[Setting],
    *,
    criterion: Criterion = "pearson",
    seed: int = 0,
    groups: np.ndarray | None = None,
    folds: int = 5,
    resamples: int = 20,
    n_boot: int = 1000,
) -> Honesty:
    """The choice on ``dev``, cross-fitted against the default there (:class:`Honesty`),
    the nested estimate, the label-free choice against the default, and the choice's
    stability over ``resamples`` seeded bootstrap resamples of dev (0: NaN)."""
    chosen, scores = _selection(candidates, data, human, human_range, dev, criterion, seed, groups)
    choice, base, parts = cross_fitted(
        data, human, human_range, dev, candidates, criterion=criterion, seed=seed, groups=groups, folds=folds
    )
    choice, base = within_folds(choice, parts), within_folds(base, parts)
    in_dev = groups[dev] if groups is not None else None
    gain = adjust([paired_effect(pearson_rows, base, choice, human[dev], n_boot=n_boot, seed=seed, groups=in_dev)])[0]
    free = free_choice(data, human_range, dev, candidates, seed)
    free_gain = (
        UNDEFINED
        if free is None
        else adjust(
            [
                paired_effect(
                    pearson_rows,
                    fit_predict(PAPER_DEFAULT, data, human, human_range, dev, dev),
                    fit_predict(free, data, human, human_range, dev, dev),
                    human[dev],
                    n_boot=n_boot,
                    seed=seed,
                    groups=in_dev,
                )
            ]
        )[0]
    )
    wins = _resampled_choices(candidates, data, human, human_range, dev, criterion, seed, groups, resamples)
    share = lambda same: float(np.mean([same(w) for w in wins])) if wins else float("nan")
    return Honesty(
        chosen,
        scores[chosen],
        pearson(choice, human[dev]),
        share(lambda w: w == chosen),
        share(lambda w: w.scale == chosen.scale),
        resamples,
        gain,
        free,
        free_gain,
    )


LABEL_SIZES = (10, 25, 50, 100, 200)


def label_efficiency(
    data: dict[str, SettingData],
    human: np.ndarray,
    human_range: tuple[float, float],
    dev: np.ndarray,
    test: np.ndarray,
    candidates: list[Setting],
    *,
    sizes: tuple[int, ...] = LABEL_SIZES,
    draws: int = 20,
    seed: int = 0,
) -> pd.DataFrame:
    """Test Pearson r of the automatic choice and of each family's best when only
    ``size`` labelled dev items (a seeded draw, ``draws`` times) choose and fit, and of
    the label-free choice (size 0). One row per size × draw × choice."""
    records = []
    free, _ = _selection(candidates, data, human, human_range, dev, FREE_CRITERION, seed, None)
    records.append(
        {
            "labels": 0,
            "draw": 0,
            "choice": CHOICE_ROW,
            "setting": free.label,
            "test pearson": pearson(fit_predict(free, data, human, human_range, dev, test), human[test]),
        }
    )
    for size in [s for s in sizes if s <= len(dev)]:
        for draw in range(draws):
            picked = np.sort(np.random.default_rng([seed, size, draw]).choice(dev, size=size, replace=False))
            try:
                chosen, scores = _selection(candidates, data, human, human_range, picked, "pearson", seed, None)
            except NumbiasError:  # no candidate has a defined score on so few items
                continue
            for name, setting in {
                CHOICE_ROW: chosen,
                **{family_row(f, dev=False): s for f, s in family_bests(candidates, scores).items()},
            }.items():
                pred = fit_predict(setting, data, human, human_range, picked, test)
                records.append(
                    {
                        "labels": size,
                        "draw": draw,
                        "choice": name,
                        "setting": setting.label,
                        "test pearson": pearson(pred, human[test]),
                    }
                )
    return pd.DataFrame(records)
