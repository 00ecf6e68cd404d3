"""Every result file and the one self-contained HTML page, for run, align and
mitigate alike: the studies return plain data, and this module writes it.

The page opens with the verdict (:mod:`numbias.report.verdict`), then readable tables
(:mod:`numbias.report.html`), figures that compare judge with human (:mod:`numbias.report.svg`)
and the items themselves. Figures are drawn from numbers computed here, and every
text that came from a data set or a config is escaped. ``numbias report DIR``
rebuilds the page from a results folder's config and store (:func:`rebuild`)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import singledispatch
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel

from numbias.core.inference import resampling_note
from numbias.core.metrics import histogram, to_scale
from numbias.core.scale import ScoreScale, setting_scale
from numbias.judge.config import RunConfig, judge_as_data, read_yaml, validate_config
from numbias.judge.judging import ScoredSet, store_only
from numbias.report.html import Column, Section, page, table
from numbias.report.svg import HUMAN, PALETTE, Line, Mark, Point, Series, bars, esc, forest, heatmap, lines, scatter
from numbias.report.verdict import (
    CHOICE_ROW,
    DEFAULT_ROW,
    LEVEL_WORDS,
    Tile,
    align_lead,
    answer_rule,
    mitigate_verdicts,
    rule_scores,
    score_label,
    study_verdicts,
)
from numbias.studies.alignment import JITTER, AlignConfig, AlignResults, align
from numbias.studies.bias import StudyResults, run
from numbias.studies.comparison import NAMES, CompareResults
from numbias.studies.mitigation import Comparison, MitigateConfig, MitigateResults, mitigate
from numbias.studies.recompute import (
    DATA,
    DISTS,
    PREDICTIONS,
    align_from,
    mitigate_data,
    mitigate_dists,
    mitigate_from,
    predictions_frame,
    study_data,
    study_dists,
    study_from,
    write_csv,
)
from numbias.studies.stages import effect_text, table_note
from numbias.util.errors import NumbiasError
from numbias.util.fmt import fmt_num
from numbias.util.output import Writer, one_writer, text, write_all

MAX_ITEMS = 2000
"""Rows of the searchable item table per task (items.csv holds them all)."""
TOP_DISAGREEMENTS = 6

_RULE_TIP = ("how an item's score is read from its distribution: greedy = the most probable score, expected = "
             "the mean, median, protocol = the paper's mean of 10 answers at T = 0.7 (its exact expectation), "
             "sampled = those answers actually drawn")
COLUMNS = {c.key: c for c in [
    Column("scale", "scale", "the range the judge was asked to answer on"),
    Column("rule", "rule", _RULE_TIP),
    Column("n", "items", "items with a numeric answer"),
    Column("kurtosis", "kurtosis", "excess (Fisher) kurtosis of the judge's item scores: 0 for a normal "
           "distribution, higher = more peaked (scores piled on a few values)"),
    Column("human_kurtosis", "human kurtosis", "excess kurtosis of the human scores of the same items"),
    Column("mode", "mode", "the score the judge gives most often", digits=0),
    Column("mode_share", "mode share", "share of the items given the mode", percent=True),
    Column("sd_ratio", "SD ratio", "the SD of the judge's item scores over the humans', both on the unit scale: "
           "below 0.2 the judge barely varies, and its kurtosis describes jitter rather than a pile-up"),
    Column("human_mode_share", "humans in that bin", "share of the items whose human score (mapped onto the "
           "judge's scale) falls in the judge's most given score's bin", percent=True),
    Column("out_of_scale", "out-of-scale mass", "mean over items of the probability of a number outside the "
           "scale (the protocol clips it to the nearest end, which can read as a pile-up there)", percent=True),
    Column("non_numeric", "non-numeric mass", "mean over items of the probability of an answer that is not a "
           "number (dropped by every rule)", percent=True),
    Column("entropy", "entropy", "normalised entropy of the score histogram: 1 = every score equally often, "
           "0 = a single score"),
    Column("distinct", "scores used", "how many of the scale's scores the judge gives at least once"),
    Column("js_divergence", "JS divergence", "Jensen–Shannon divergence (base 2) between the judge's and the "
           "humans' histograms, human scores mapped linearly onto the judge's range: 0 = same shape, 1 = disjoint"),
    Column("wasserstein", "Wasserstein (% of range)", "earth mover's distance between judge and human scores, as "
           "a share of the scale's range", percent=True),
    Column("pearson", "Pearson r [95% CI]", "linear correlation with the human scores; 95% bootstrap interval "
           "over items"),
    Column("spearman", "Spearman ρ", "rank correlation with the human scores"),
    Column("kendall", "Kendall τ", "pairwise rank agreement with the human scores"),
    Column("human_ceiling", "human ceiling", "split-half reliability of the raters (Spearman–Brown): about the "
           "best r a judge can reach"),
    Column("group_pearson", "group r [95% CI]", "Pearson r within each group (e.g. source document), averaged; "
           "interval from resampling groups"),
    Column("groups", "groups", "groups that entered the group-level r"),
    *(Column(f"system_{key}", f"system {name} [95% CI]", f"{name} between the systems' mean judge scores and "
             "mean human scores (over each system's items with a human score); interval from resampling items "
             "within systems") for key, name in (("pearson", "Pearson r"), ("spearman", "Spearman ρ"),
                                                 ("kendall", "Kendall τ"))),
    Column("systems", "systems", "systems that entered the system-level correlations (two or more labelled items)"),
    Column("row", "row", "what changes from the paper's default (0-9, protocol, T = 0.7)"),
    Column("setting", "setting", "scale · rule · temperature · mitigation"),
    Column("dev score", "dev score", "the selection criterion on development items (cross-fitted where the "
           "setting is fitted on labels)"),
    Column("group pearson", "group r [95% CI]", "within-group Pearson r, averaged over groups"),
    Column("n test", "test items", "held-out items the row is scored on"),
    Column("interval coverage", "90% interval coverage [95% CI]", "share of the test items whose human score lies "
           "in the row's 90% split-conformal interval (fitted on development items; its ends are ratings the humans "
           "can give, inside their range); 95% Wilson interval over the test items", percent=True),
    Column("Δ r", "Δ r vs default [95% CI]", "test Pearson r of the row minus that of the paper's default on the "
           "same items; paired bootstrap interval over the test items (whole groups where there are groups)"),
    Column("p", "p", "two-sided p of Δ r = 0 (inverting the paired bootstrap), before correction", digits=3),
    Column("p adjusted", "p (Holm)", "p adjusted by Holm over the rows of this table tested against the default",
           digits=3),
    Column("vs default", "vs default", "better or worse than the default only where the Holm-adjusted p is below "
           "0.05; otherwise within noise"),
    Column("dev Δ r", "dev Δ r, choice − default [95% CI]", "the automatic choice against the default on the "
           "development items, cross-fitted: the selection re-run without each fold, its winner fitted without it "
           "and scored on it, both standardised within fold; paired bootstrap over the development items. The "
           "choice is recommended only when this interval lies above 0"),
    Column("dev p", "dev p", "two-sided p of dev Δ r = 0", digits=3),
    Column("recommended", "recommended", "whether the choice beats the default on development items (dev Δ r's "
           "interval above 0)"),
    Column("label-free dev Δ r", "label-free dev Δ r [95% CI]", "the label-free (entropy) choice against the "
           "default on the development items (it reads no label, so no cross-fitting is needed)"),
    Column("interval width", "interval width", "mean width of that interval, on the human scale"),
    Column("stability", "stability", "share of bootstrap resamples of the development items on which the same "
           "setting wins", percent=True),
    Column("scale stability", "scale stability", "share of resamples won by a setting at the same scale",
           percent=True),
    Column("nested estimate", "nested estimate", "Pearson r of the selection procedure itself: chosen without "
           "each fold of the development items, applied to it, the predictions standardised within fold before "
           "pooling (unbiased under no signal; the winner's curse corrected)"),
    Column("text", "text", "the item's fields as the judge read them (the first 400 characters)", long=True),
    Column("human", "human", "the human score, on the raters' scale"),
    *(Column(f"{who} {label}", f"{who} {label}", f"the {who} judge's {tip}", percent=label != "SD ratio")
      for who in ("base", "aligned") for label, tip in (
          ("SD ratio", "item-score SD over the humans', on the unit scale (below 0.2: it barely varies)"),
          ("mode share", "share of the items given its most given score"),
          ("out-of-scale", "mean mass on numbers outside the scale (clipped by the protocol)"),
          ("non-numeric", "mean mass on answers that are not numbers"))),
    Column("humans in aligned mode's bin", "humans in aligned mode's bin", "share of the items whose human "
           "score falls in the aligned judge's most given score's bin", percent=True),
    Column("items", "items", "items both judges score: what the intervals resample"),
    Column("gain kept (refitted)", "gain kept (refitted)", "share of the gain over the default that survives, "
           "the setting refitted on the target", percent=True),
    Column("gain kept (as fitted)", "gain kept (as fitted)", "share of the gain that survives with the "
           "calibration fitted on the source", percent=True),
]}


# --- result files --------------------------------------------------------------------


@singledispatch
def files(results: Any) -> dict[str, Writer]:
    """A study's result files by name, each a writer (nothing is computed until written)."""
    raise NumbiasError(f"cannot write results of type {type(results).__name__} "
                       "(give what run, align or mitigate returned)")


RUN_FILES = ("items.csv", "summary.json", "config.yaml", DISTS, DATA, "report.html")
"""Every file ``numbias run`` may write, for the check before it starts (:func:`numbias.util.output.claim`)."""
ALIGN_FILES = (*RUN_FILES, "alignment.csv", "simulated_kurtosis.csv", "align-config.yaml", "stages.csv",
               "diversity.csv", "generations.csv")
COMPARE_FILES = ("systems.csv", "pairs.csv", "compare.json", "report.html")
"""Every file ``numbias compare`` writes."""
MITIGATE_FILES = ("mitigation.csv", "dev_scores.csv", "selection.csv", "label_efficiency.csv", "transfer.csv",
                  "mitigate-config.yaml", DISTS, DATA, PREDICTIONS, "report.html")


def write(results: Any, out: str | Path | None = None, *, force: bool = False) -> Path:
    """Write a study's result files and report into ``out`` (default: the config's
    ``out``), all replaced together; returns the folder. A file there that numbias did
    not write is an error unless ``force``.

    >>> write(object())
    Traceback (most recent call last):
    ...
    numbias.util.errors.NumbiasError: cannot write results of type object (give what run, align or mitigate returned)
    """
    contents = files(results)
    return write_all(out or results.config.out, contents, force=force)


def _yaml(config: BaseModel) -> Writer:
    return text(yaml.safe_dump(config.model_dump(mode="json", exclude_none=True), sort_keys=False))


def _csv(frame: pd.DataFrame) -> Writer:
    return lambda p: frame.to_csv(p, index=False)


@files.register
def _(results: StudyResults) -> dict[str, Writer]:
    return {**study_files(results), "report.html": lambda p: p.write_text(study_page(results), encoding="utf-8")}


@files.register
def _(results: AlignResults) -> dict[str, Writer]:
    return {**study_files(results.study), "alignment.csv": _csv(results.table),
            "simulated_kurtosis.csv": _csv(results.simulated), "align-config.yaml": _yaml(results.config),
            **{name: _csv(frame) for name, frame in (("stages.csv", results.stages),
                                                     ("diversity.csv", results.diversity),
                                                     ("generations.csv", results.generations)) if len(frame)},
            "report.html": lambda p: p.write_text(align_page(results), encoding="utf-8")}


@files.register
def _(results: MitigateResults) -> dict[str, Writer]:
    dev = pd.DataFrame([{"judge": c.judge.name, "task": c.task, "setting": s.label, "dev score": v}
                        for c in results.comparisons for s, v in c.dev_scores.items()])
    checks = {name: frame for name, frame in (("selection.csv", results.selection),
                                               ("label_efficiency.csv", results.label_curve),
                                               ("transfer.csv", results.transfer)) if len(frame)}
    return {"mitigation.csv": _csv(results.table), "dev_scores.csv": _csv(dev),
            **{name: _csv(frame) for name, frame in checks.items()}, "mitigate-config.yaml": _yaml(results.config),
            DISTS: write_csv(mitigate_dists(results)), DATA: write_csv(mitigate_data(results)),
            PREDICTIONS: write_csv(predictions_frame(results)),
            "report.html": lambda p: p.write_text(mitigate_page(results), encoding="utf-8")}


@files.register
def _(results: CompareResults) -> dict[str, Writer]:
    return {"systems.csv": _csv(results.systems), "pairs.csv": _csv(results.pairs),
            "compare.json": text(json.dumps(results.to_json(), indent=2)),
            "report.html": lambda p: p.write_text(compare_page(results), encoding="utf-8")}


def study_files(results: StudyResults) -> dict[str, Writer]:
    """A study's data files: per-item scores, the summary, the config it ran."""
    records = json.loads(results.summary.to_json(orient="records"))
    return {"items.csv": _csv(results.items), "summary.json": text(json.dumps(records, indent=2)),
            "config.yaml": _yaml(results.config), DISTS: write_csv(study_dists(results)),
            DATA: write_csv(study_data(results))}


# --- rebuilding from a results folder ------------------------------------------------

REBUILDS: tuple[tuple[str, type[BaseModel], Callable[[Any], Any], Callable[[Path, Any], Any]], ...] = (
    ("mitigate-config.yaml", MitigateConfig, mitigate, mitigate_from),
    ("align-config.yaml", AlignConfig, align, align_from),
    ("config.yaml", RunConfig, run, study_from),
)
"""Which config a results folder holds, the schema it is read with, the study that
reads its store again, and the one that recomputes it from the folder's files."""


def rebuild(folder: str | Path, *, wait: bool = False, force: bool = False) -> Path:
    """Write ``folder/report.html`` again, loading no model: from the folder's own files
    (its distributions and items, :mod:`numbias.studies.recompute`) where it has them, else
    from its config and store (an item missing from the store is an error; data files
    the config names are read relative to the working folder). Returns the page's path.
    A report.html numbias did not write is replaced only with ``force``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NumbiasError(f"results folder {folder} does not exist")
    name, config, study, from_files = folder_config(folder)
    if (folder / DISTS).exists():
        config = config.model_copy(update={"out": str(folder)})
        with one_writer(folder, wait=wait):
            try:
                results = from_files(folder, config)
            except NumbiasError as exc:
                raise NumbiasError(f"cannot rebuild {folder / 'report.html'} from the folder's files: {exc}") from None
            write_all(folder, {"report.html": files(results)["report.html"]}, force=force)
        return folder / "report.html"
    _judges_as_data(config, folder / name)
    store = Path(config.store) if config.store else folder / "store.sqlite"
    if not store.is_file():
        raise NumbiasError(f"{folder} holds no {DISTS}{_scores_only(folder)} and its store {store} does not exist: "
                           "a report is drawn from the distributions (or the store its study wrote)")
    config = config.model_copy(update={"out": str(folder), "store": str(store)})
    with one_writer(folder, wait=wait):
        try:
            with store_only():
                results = study(config)
        except NumbiasError as exc:
            raise NumbiasError(f"cannot rebuild {folder / 'report.html'} from {store}: {exc}") from None
        write_all(folder, {"report.html": files(results)["report.html"]}, force=force)
    return folder / "report.html"


def _scores_only(folder: Path) -> str:
    """The per-item scores a folder holds, named, so its owner sees they are not enough
    (the page's histograms, verdicts and item tables read the distributions)."""
    held = [name for name in ("items.csv", "items.csv.gz") if (folder / name).is_file()]
    return f", only per-item scores ({held[0]})," if held else ""


def folder_config(folder: Path) -> tuple[str, Any, Callable[[Any], Any], Callable[[Path, Any], Any]]:
    """The config of the study that wrote ``folder`` last (a folder two studies shared;
    align writes config.yaml too, first), validated, with its two ways to recompute."""
    present = [(k, entry) for k, entry in enumerate(REBUILDS) if (folder / entry[0]).is_file()]
    if not present:
        raise NumbiasError(f"{folder} holds no config.yaml, align-config.yaml or mitigate-config.yaml: not a results "
                           "folder of numbias run, align or mitigate")
    _, (name, schema, study, from_files) = max(present, key=lambda p: ((folder / p[1][0]).stat().st_mtime_ns, -p[0]))
    return name, validate_config(schema, read_yaml(folder / name), str(folder / name)), study, from_files


def _judges_as_data(config: Any, path: Path) -> None:
    """The folder's judges read as data, in place: registered backends only, no routing
    options (the report contacts no server and imports no code)."""
    judges = config.judges if hasattr(config, "judges") else \
        [j for p in config.pairs for j in (p.base, p.aligned)] + list(config.extra_aligned)
    if objects := [j.name for j in judges if j.backend == "object"]:
        raise NumbiasError(f"{path}: judge {objects[0]!r} was given as a Python object; rebuild this report from "
                           "Python with numbias.write")
    for judge in judges:
        judge.options = judge_as_data(judge, str(path))[0].options


# --- shared pieces -------------------------------------------------------------------


def _notes(notes: Sequence[str]) -> str:
    """A bullet list of plain-text notes (none: nothing)."""
    return "<ul>" + "".join(f"<li>{esc(note)}</li>" for note in notes) + "</ul>" if notes else ""


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def card(title: str, level: str, tiles: Sequence[Tile], finding: str, advice: str,
         call: tuple[str, str] | None = None) -> str:
    """A verdict: its title and level (and ``call``, a recommendation's colour and
    words), the headline figures, what was found, what to do."""
    figures = "".join(f'<div class="tile"><em>{esc(label)}</em><b>{esc(value)}</b><span>{esc(detail)}</span></div>'
                      for label, value, detail in tiles)
    second = f'<span class="badge {call[0]}">{esc(call[1])}</span>' if call else ""
    return (f'<div class="card"><h3>{esc(title)}<span class="badge {level}">{esc(LEVEL_WORDS[level])}</span>{second}'
            '</h3>'
            f'<div class="tiles">{figures}</div><p>{esc(finding)}</p>'
            f'<p class="todo"><b>What to do:</b> {esc(advice)}</p></div>')


def display_bins(scale: ScoreScale, *shares: np.ndarray, most: int = 21) -> tuple[list[str], list[np.ndarray]]:
    """Category labels and shares for a histogram figure: every score up to ``most``
    scores, else runs of neighbouring scores summed (1–100 reads as 20 bars).

    >>> labels, (h,) = display_bins(ScoreScale(1, 100), np.full(100, 0.01))
    >>> labels[:2], len(labels), round(float(h[0]), 2)
    (['1–5', '6–10'], 20, 0.05)
    """
    if scale.size <= most:
        return scale.labels, list(shares)
    width = math.ceil(scale.size / 20)
    starts = np.arange(0, scale.size, width)
    names = scale.labels
    labels = [f"{names[s]}–{names[min(s + width, scale.size) - 1]}" for s in map(int, starts)]
    return labels, [np.add.reduceat(h, starts) for h in shares]


def paired(scale: ScoreScale, judge: np.ndarray, human: np.ndarray, label: str, title: str,
           color: str = PALETTE[0], width: int = 320) -> str:
    """Judge and human histograms of the same items, paired bars on one axis."""
    keep = ~np.isnan(judge)
    cats, (j, h) = display_bins(scale, histogram(judge, scale), histogram(human[keep], scale))
    return bars(cats, [Series("human", h, HUMAN), Series(label, j, color)], title=title, width=width,
                height=190 if width > 400 else 170)


def figure(caption: str, svg: str) -> str:
    """A chart under its (escaped) caption."""
    return f"<figure><figcaption>{esc(caption)}</figcaption>{svg}</figure>"


def _mapped(s: ScoredSet) -> np.ndarray:
    """The set's human scores on the judge's scale, as the histograms compare them."""
    return to_scale(s.data.human, s.data.human_range, s.scale)


# --- run -----------------------------------------------------------------------------


def study_page(results: StudyResults) -> str:
    """The page of ``numbias run``: what was measured, then its sections."""
    judges = list(dict.fromkeys(results.summary["judge"]))
    tasks = {s.task: len(s.data) for s in results.sets}
    subtitle = (f"{', '.join(judges)} on {', '.join(f'{t} ({n} items)' for t, n in tasks.items())} · scales "
                f"{', '.join(results.config.scales)} · rules {', '.join(results.config.rules)}")
    return page("numbias report", subtitle, study_sections(results, []))


def study_sections(results: StudyResults, extra: Sequence[Section], lead: str = "") -> list[Section]:
    """The sections of a study's page; ``extra`` after the summary, ``lead`` (HTML)
    above the verdicts."""
    summary = results.summary
    verdicts = "".join(card(f"{v.judge} on {v.task}", v.level, v.tiles(), v.finding(), v.advice())
                       for v in study_verdicts(results))
    sections = [
        ("Verdict", lead + f'<div class="cards">{verdicts}</div>'),
        ("Summary", table(summary_frame(summary), COLUMNS)
         + '<p class="note">One row per judge × task × scale × rule; hover a heading for what it measures, click '
           "it to sort. Human scores are mapped linearly onto the judge's range for the histogram measures.</p>"
         + "<h3>Spread and format</h3>" + table(spread_frame(summary), COLUMNS)
         + '<p class="note">What jitter and format cannot fool: below an SD ratio of 0.2 the judge barely varies '
           "and its kurtosis describes jitter; mass outside the scale or on non-numbers is a format failure (the "
           "protocol clips out-of-scale numbers to the ends), not a pile-up.</p>"),
        *extra,
        ("Score histograms", histograms(results)),
        ("Kurtosis against accuracy", kurtosis_scatter(summary)),
        ("Items", disagreements(results) + item_tables(results)),
    ]
    notes = summary[summary["notes"].astype(str) != ""]
    if len(notes) or results.notes:
        sections.append(("Notes", _notes(results.notes)
                         + (table(notes[["judge", "task", "scale", "rule", "notes"]], COLUMNS) if len(notes) else "")))
    return sections


def summary_frame(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary's columns a person reads, in reading order; a judge or task column
    only when there are several, and no column that is empty throughout."""
    keys = ["judge", "task", "scale", "rule", "n", "kurtosis", "human_kurtosis", "mode", "mode_share", "entropy",
            "distinct", "js_divergence", "wasserstein", "pearson", "pearson_low", "pearson_high", "spearman",
            "kendall", "human_ceiling", "group_pearson", "group_pearson_low", "group_pearson_high", "groups",
            *[f"system_{c}{end}" for c in ("pearson", "spearman", "kendall") for end in ("", "_low", "_high")],
            "systems"]
    frame = _labelled_modes(summary[[k for k in keys if k in summary]])
    drop = [k for k in ("judge", "task") if frame[k].nunique() == 1]
    drop += [k for k in frame if pd.api.types.is_float_dtype(frame[k]) and frame[k].isna().all()]
    if "group_pearson" in drop:
        drop.append("groups")
    if "system_pearson" in drop and "systems" in frame:
        drop.append("systems")
    return frame.drop(columns=drop)


def _labelled_modes(frame: pd.DataFrame) -> pd.DataFrame:
    """The mode as the judge writes it on scales of labels or reversed digits (a table of
    numeric scales only is left as it is)."""
    if "mode" not in frame or all(setting_scale(s).plain for s in frame["scale"].unique()):
        return frame
    return frame.assign(mode=[score_label(s, m) for s, m in zip(frame["scale"], frame["mode"])])


SPREAD = ["sd_ratio", "kurtosis", "mode", "mode_share", "human_mode_share", "out_of_scale", "non_numeric"]
"""The summary's measures that jitter and format cannot fool, with the figures they qualify."""


def spread_frame(summary: pd.DataFrame) -> pd.DataFrame:
    """Per judge × task × scale × rule: the SD ratio, the mode's share beside the humans'
    share of that bin, and the out-of-scale and non-numeric mass (a table of their own,
    so the summary still fits the page)."""
    frame = _labelled_modes(summary[[k for k in ["judge", "task", "scale", "rule", *SPREAD] if k in summary]])
    return frame.drop(columns=[k for k in ("judge", "task") if frame[k].nunique() == 1])


def _row(summary: pd.DataFrame, judge: str, task: str, scale: str, rule: str) -> pd.Series:
    return summary[(summary.judge == judge) & (summary.task == task) & (summary.scale == scale)
                   & (summary.rule == rule)].iloc[0]


def _set_rules(s: ScoredSet, rules: Sequence[str]) -> list[tuple[str, str]]:
    """(summary label, rule to score with) of every rule a scored set was read with."""
    return [(r, r) for r in rules] if s.mode == "exact" else [(s.mode, "protocol")]


def histograms(results: StudyResults) -> str:
    """Per judge × task, one figure per scale × rule: the judge's histogram paired with
    the humans' (mapped onto the judge's scale), captioned with the summary's figures."""
    parts = []
    summary = results.summary
    for judge, task in dict.fromkeys((s.judge, s.task) for s in results.sets):
        figs = []
        for s in (s for s in results.sets if (s.judge, s.task) == (judge, task)):
            for label, rule in _set_rules(s, results.config.rules):
                row = _row(summary, judge, task, str(s.scale), label)
                caption = (f"{s.scale} · {label}: kurtosis {fmt_num(row['kurtosis'])}, r {fmt_num(row['pearson'])}, "
                           f"mode {score_label(str(s.scale), row['mode'])} "
                           f"({fmt_num(row['mode_share'], percent=True)})")
                figs.append(figure(caption, paired(s.scale, s.scores(rule), _mapped(s), "judge",
                                                   f"{judge} · {task} · {s.scale} · {label}")))
        per_row = len(results.config.rules) if len(results.config.rules) <= 4 else 4
        parts.append(f"<h3>{esc(judge)} on {esc(task)}</h3><div class=\"grid\" style=\"grid-template-columns:"
                     f"repeat({per_row},minmax(0,1fr))\">{''.join(figs)}</div>")
    return ('<p class="note">Share of items at each score: the humans\' scores (grey, mapped linearly onto the '
            "judge's scale and rounded) against the judge's (colour). Hover a bar for its share.</p>" + "".join(parts))


def kurtosis_scatter(summary: pd.DataFrame) -> str:
    """Every setting's kurtosis against its Pearson r, labelled by setting; the
    humans' kurtosis as a reference line."""
    groups = list(dict.fromkeys(zip(summary["judge"], summary["task"])))
    color = {g: PALETTE[k % len(PALETTE)] for k, g in enumerate(groups)}
    points = [Point(r["kurtosis"], r["pearson"], f"{r['scale']} · {r['rule']}", color[(r["judge"], r["task"])],
                    f"{r['judge']} · {r['task']} · {r['scale']} · {r['rule']}: kurtosis {r['kurtosis']:.2f}, "
                    f"r {r['pearson']:.2f}") for r in summary.to_dict("records")]
    humans = summary.drop_duplicates("task")
    vlines = [(float(r["human_kurtosis"]), "humans" if len(humans) == 1 else f"humans ({r['task']})")
              for r in humans.to_dict("records") if np.isfinite(r["human_kurtosis"])]
    legend = [(f"{j} · {t}", color[(j, t)]) for j, t in groups] if len(groups) > 1 else []
    undefined = int(summary[["kurtosis", "pearson"]].isna().any(axis=1).sum())
    note = f" {_plural(undefined, 'setting')} with constant scores (no kurtosis or r) not shown." if undefined else ""
    xlog = bool((summary["kurtosis"].abs() > 10).any())
    axis = "excess kurtosis of the judge's scores" + (" (signed log axis)" if xlog else "")
    return (scatter(points, title="kurtosis against Pearson r", xlabel=axis, ylabel="Pearson r with the humans",
                    xlog=xlog, vlines=vlines, legend=legend, width=760, height=360)
            + f'<p class="note">The paper finds more peaked judges less accurate (r = −0.60 across its settings): '
              f"points further right should sit lower.{note}</p>")


def _item_text(frame: pd.DataFrame, fields: Sequence[str], i: int, sep: str) -> str:
    values = [str(frame.iloc[i][f]) for f in fields]
    return values[0] if len(values) == 1 else sep.join(f"{f}: {v}" for f, v in zip(fields, values))


def _distribution(s: ScoredSet, i: int, judge: float, human: float) -> str:
    """One item's full score distribution, the judge's score and the human's marked."""
    d = s.distributions[i]
    cats, probs = list(s.scale.labels), list(d.probs)
    if d.below + d.above > 0.005:
        cats, probs = [*cats, "out"], [*probs, d.below + d.above]
    if d.other > 0.005:
        cats, probs = [*cats, "n/a"], [*probs, d.other]
    marks = [Mark(human - s.scale.lo, f"human {fmt_num(human)}", "#222")]
    if np.isfinite(judge):
        marks.append(Mark(judge - s.scale.lo, f"judge {fmt_num(judge)}", PALETTE[1]))
    return bars(cats, [Series("P(score)", probs, PALETTE[0])], title=f"score distribution of item {s.data.ids[i]}",
                width=330, height=150, marks=marks)


def disagreements(results: StudyResults) -> str:
    """Per judge × task (the verdict's scale and rule): the items where judge and
    human disagree most, each beside its whole score distribution."""
    parts = []
    for v in study_verdicts(results):
        s, scores = rule_scores(results, v.judge, v.task, v.scale, v.rule)
        human = _mapped(s)
        gap = scores - human
        order = np.argsort(-np.nan_to_num(np.abs(gap), nan=-1.0), kind="stable")[:TOP_DISAGREEMENTS]
        blocks, texts = [], [_item_text(s.data.frame, s.data.fields, i, chr(10)) for i in order]
        for i, item in zip(order, texts):
            meta = (f"id {s.data.ids[i]} · human {fmt_num(s.data.human[i])} ({fmt_num(human[i])} on {s.scale}) · "
                    f"judge {fmt_num(scores[i])} ({v.rule}) · gap {gap[i]:+.2f}")
            blocks.append(f'<div class="item"><div><div class="meta">{esc(meta)}</div><div class="text">'
                          f"{esc(item)}</div></div>"
                          f"{_distribution(s, i, scores[i], human[i])}</div>")
        two = " two" if max(map(len, texts), default=0) < 200 else ""
        parts.append(f"<h3>Largest disagreements: {esc(v.judge)} on {esc(v.task)} ({esc(v.scale)} · {esc(v.rule)})"
                     f'</h3><div class="items{two}">{"".join(blocks)}</div>')
    return ('<p class="note">Each item\'s exact score distribution (T = 1; for sampled answers, their shares), '
            "with the human score (mapped onto the scale) and the judge's marked; out = numbers outside the scale, "
            "n/a = no number.</p>" + "".join(parts))


def item_tables(results: StudyResults) -> str:
    """Per task, a searchable table of every item (up to :data:`MAX_ITEMS`): id, text,
    human score and the judges' scores."""
    parts = []
    judges = {s.judge for s in results.sets}
    for task in dict.fromkeys(s.task for s in results.sets):
        sets = [s for s in results.sets if s.task == task]
        data = sets[0].data
        shown = min(len(data), MAX_ITEMS)
        frame = pd.DataFrame({"id": data.ids[:shown], "human": data.human[:shown],
                              "text": [_item_text(data.frame, data.fields, i, " · ")[:400] for i in range(shown)]})
        score_columns = [(s, label, rule) for s in sets for label, rule in _set_rules(s, results.config.rules)]
        if len(score_columns) > 9:  # one column per judge × scale: its answer
            labels: dict[tuple[str, str], list[str]] = {}
            for s, label, _ in score_columns:
                labels.setdefault((s.judge, str(s.scale)), []).append(label)
            score_columns = [(s, label, rule) for s, label, rule in score_columns
                             if label == answer_rule(labels[(s.judge, str(s.scale))])]
        known = dict(COLUMNS)
        for s, label, rule in score_columns:
            name = f"{s.judge} · {s.scale} · {label}"
            short = label.split("(")[0]  # sampled(n=10,T=0.7): the settings go to the tooltip
            title = f"{s.scale} · {short}" if len(judges) == 1 else f"{s.judge} · {s.scale} · {short}"
            known[name] = Column(name, title, f"{name}: the item's score")
            frame[name] = s.scores(rule)[:shown]
        left = f" (the first {shown} of {len(data)}; items.csv has them all)" if shown < len(data) else ""
        parts.append(f"<h3>All items of {esc(task)}{esc(left)}</h3>" + table(frame, known, filter_at=0))
    return "".join(parts)


# --- align ---------------------------------------------------------------------------


def align_page(res: AlignResults) -> str:
    """The study's page with the pairs' findings first and their sections after the summary."""
    study = res.study
    subtitle = (f"{_plural(len(res.config.pairs) + len(res.config.extra_aligned), 'base/aligned pair')} on "
                f"{', '.join(dict.fromkeys(s.task for s in study.sets))} · scales {', '.join(res.config.scales)}")
    lead = (f'<div class="card lead"><h3>Aligned against base, across settings</h3>'
            f"{_notes([line[0].upper() + line[1:] for line in align_lead(res)])}</div>")
    return page("numbias alignment report", subtitle, study_sections(study, align_sections(res), lead))


def align_sections(res: AlignResults) -> list[Section]:
    notes = [n for n in dict.fromkeys(res.table["note"]) if n]
    return [
        ("Alignment study: base vs aligned", align_table(res) + _notes(notes) + paired_view(res.table)),
        ("Aligned against base, setting by setting", table(res.shift, COLUMNS)
         + '<p class="note">Settings where the aligned judge\'s kurtosis is above its base\'s (more peaked), where '
           "its Pearson r is below (less accurate), and both; beside them, how many of those changes have a "
           "Holm-adjusted p below 0.05 (a direction alone can be noise).</p>"),
        ("Base vs aligned histograms", align_histograms(res)),
        ("Simulated kurtosis of the n-sample protocol mean", table(res.simulated, COLUMNS)),
        *((("Trained stages against the base: changes with 95% CIs over items and seeds", stage_summary(res.stages)),)
          if len(res.stages) else ()),
        *((("Output diversity: free generations on held-out instructions", table(res.diversity, COLUMNS)
            + '<p class="note">distinct-n: distinct word n-grams over all n-grams of a judge\'s generations '
              "(1 = nothing repeats); generations.csv has the texts.</p>"),) if len(res.diversity) else ()),
    ]


STAGE_SHOWN = {"kurtosis": "kurtosis", "pearson": "Pearson r", "mode_share": "mode share", "entropy": "score entropy",
               "sd_ratio": "SD ratio", "out_of_scale": "out-of-scale mass", "non_numeric": "non-numeric mass",
               "next_token_entropy": "next-token entropy"}


def stage_summary(stages: pd.DataFrame) -> str:
    """One row per task × scale × rule × stage and what it is set against (the base, or
    for DPO after SFT the SFT model of the same seed): each metric as reference → stage
    mean, Δ [95% CI] and the Holm-adjusted p, marked only when the adjusted test rejects."""
    note = table_note(stages, [f"Δ {m}" for m in STAGE_SHOWN])
    known = {**COLUMNS, **{label: Column(label, label, f"reference → the stage's mean over seeds, Δ [95% CI], "
                                                       f"adjusted p. {note}") for label in STAGE_SHOWN.values()}}
    rows = []
    for r in stages.to_dict("records"):
        row = {k: r[k] for k in ("task", "scale", "rule", "stage", "against", "seeds")}
        row["mode"] = f"{r['base mode']:g} → {r['mode']:g}"
        row |= {label: effect_text(r, metric) for metric, label in STAGE_SHOWN.items()}
        rows.append(row)
    return table(pd.DataFrame(rows), known) + (
        '<p class="note">reference → the stage\'s mean over training seeds, then the change: Δ [95% CI], p_adj. '
        "The reference is the base, or for SFT+DPO against SFT the SFT model of each seed, paired by seed (the "
        f"spread of the per-seed differences, not of the levels). {esc(note)}. stages.csv has every number.</p>")


def align_table(res: AlignResults) -> str:
    """The alignment table with its changes' CIs and adjusted p, and a footnote saying
    what was resampled and how the p-values were corrected."""
    note = table_note(res.table, ["Δ kurtosis", "Δ r"])
    tip = f"aligned minus base on the same items, 95% CI, Holm-adjusted p. {note}"
    known = {**COLUMNS, "Δ kurtosis": Column("Δ kurtosis", "Δ kurtosis [95% CI]", tip),
             "Δ kurtosis p adj": Column("Δ kurtosis p adj", "Δ kurtosis p (adjusted)", note, digits=3),
             "Δ r": Column("Δ r", "Δ r [95% CI]", tip),
             "Δ r p adj": Column("Δ r p adj", "Δ r p (adjusted)", note, digits=3)}
    jitter = [*(f"{who} {label}" for label in JITTER for who in ("base", "aligned")), "humans in aligned mode's bin"]
    shown = res.table.drop(columns=["note", "items", "Δ kurtosis p", "Δ r p", *jitter])
    spread = res.table[["base", "aligned", "task", "scale", "scoring", *jitter]]
    return (table(shown, known) + f'<p class="note">{esc(note)}.</p>'
            + "<h3>Spread and format, base and aligned</h3>" + table(spread, COLUMNS)
            + '<p class="note">The measures jitter and format cannot fool: a judge whose SD ratio is below 0.2 '
              "barely varies (its kurtosis describes jitter), and mass outside the scale or on non-numbers is a "
              "format failure (the protocol clips out-of-scale numbers to the ends), not a pile-up.</p>")


def paired_view(table_: pd.DataFrame) -> str:
    """Each setting's move from base to aligned in the kurtosis–accuracy plane: an
    arrow per pair × task × scale × scoring."""
    scorings = list(dict.fromkeys(table_["scoring"]))
    color = {s: PALETTE[k % len(PALETTE)] for k, s in enumerate(scorings)}
    points, links = [], []
    for r in table_.to_dict("records"):
        where = f"{r['task']} · {r['scale']} · {r['scoring']}"
        points.append(Point(r["base kurtosis"], r["base r"], "", "#555",
                            f"{r['base']} (base) · {where}: kurtosis {r['base kurtosis']:.2f}, r {r['base r']:.2f}"))
        points.append(Point(r["aligned kurtosis"], r["aligned r"], f"{r['scale']}", color[r["scoring"]],
                            f"{r['aligned']} · {where}: kurtosis {r['aligned kurtosis']:.2f}, r {r['aligned r']:.2f}"))
        links.append((len(points) - 2, len(points) - 1))
    xlog = bool((table_[["base kurtosis", "aligned kurtosis"]].abs() > 10).any().any())
    humans = table_.drop_duplicates("task")
    vlines = [(float(r["human kurtosis"]), "humans" if len(humans) == 1 else f"humans ({r['task']})")
              for r in humans.to_dict("records") if np.isfinite(r["human kurtosis"])]
    svg = scatter(points, title="base to aligned, setting by setting",
                  xlabel="excess kurtosis" + (" (signed log axis)" if xlog else ""),
                  ylabel="Pearson r with the humans", xlog=xlog, links=links, vlines=vlines,
                  legend=[("base", "#555"), *((s, color[s]) for s in scorings)], width=760, height=380)
    return figure("The paired view: each arrow goes from the base judge to the aligned one on the same items; "
                  "right and down is the paper's claim (more peaked, less accurate).", svg)


def align_histograms(res: AlignResults) -> str:
    """Per pair × task × scale, the base's and the aligned judge's histograms side by
    side, each paired with the humans' (the protocol's exact expectation)."""
    sets = {(s.judge, s.task, str(s.scale)): s for s in res.study.sets if s.mode == "exact"}
    rows = []
    for r in res.table.drop_duplicates(["base", "aligned", "task", "scale"]).to_dict("records"):
        panels = []
        for role, color in (("base", PALETTE[1]), ("aligned", PALETTE[0])):
            s = sets[(r[role], r["task"], r["scale"])]
            row = _row(res.study.summary, s.judge, s.task, str(s.scale), "protocol")
            panels.append(figure(f"{role}: {s.judge} · {s.task} · {s.scale} · protocol — kurtosis "
                                 f"{fmt_num(row['kurtosis'])}, r {fmt_num(row['pearson'])}",
                                 paired(s.scale, s.scores("protocol"), _mapped(s), role, f"{role} {s.judge}", color,
                                        width=560)))
        rows.append(f'<div class="pair">{"".join(panels)}</div>')
    return "".join(rows)


# --- mitigate ------------------------------------------------------------------------


def mitigate_page(res: MitigateResults) -> str:
    """The page of ``numbias mitigate``: verdicts, then each comparison and the checks of the choice."""
    c = res.config
    split = f"{c.folds} folds" if c.folds else f"{c.dev} development items, the rest held out"
    subtitle = (f"{', '.join(j.name for j in c.judges)} on {', '.join(dict.fromkeys(x.task for x in res.comparisons))}"
                f" · scales {', '.join(c.scales)} · {split} · criterion {c.criterion}")
    return page("numbias mitigation report", subtitle, mitigate_sections(res))


def mitigate_sections(res: MitigateResults) -> list[Section]:
    verdicts = "".join(card(f"{v.judge} on {v.task}", v.level, v.tiles(), v.finding(), v.advice(), v.badge)
                       for v in mitigate_verdicts(res))
    parts = [("Verdict", f'<div class="cards">{verdicts}</div>')]
    for c in res.comparisons:
        parts.append((f"Mitigations: {c.judge.name} · {c.task}", comparison_html(c, res.config.criterion)))
    if len(res.selection):
        parts.append(("What the choice is worth", "<p>The chosen setting's development score; its change against "
                      "the paper's default on the development items, cross-fitted (the selection re-run without each "
                      "fold), which a recommendation needs to lie above 0; a nested estimate of what the selection "
                      "achieves; the share of bootstrap resamples of the development items on which it wins; and "
                      "the label-free (entropy) choice with its change against the default.</p>"
                      + table(res.selection, COLUMNS)))
    if len(curve := res.label_curve):
        parts.append(("Label efficiency", label_figures(curve)))
    if len(res.transfer):
        parts.append(("Transfer", "<p>Each choice applied to another task (same judge) or judge (same task).</p>"
                      + table(res.transfer, COLUMNS)))
    if res.notes:
        parts.append(("Notes", _notes(res.notes)))
    return parts


def comparison_html(c: Comparison, criterion: str) -> str:
    """One judge × task: the table of rows, their test r with intervals, and the test
    histograms before (the paper's default) and after (the automatic choice)."""
    chosen = ", ".join(dict.fromkeys(s.label for s in c.chosen))
    t = c.table
    svg = forest(t["row"].tolist(), t["pearson"].tolist(), t["pearson_low"].tolist(), t["pearson_high"].tolist(),
                 highlight=[r == CHOICE_ROW for r in t["row"]], title=f"test Pearson r, {c.judge.name} · {c.task}",
                 xlabel="test Pearson r with the humans (95% CI)", width=1140)
    panels = []
    for label, color in ((DEFAULT_ROW, PALETTE[1]), (CHOICE_ROW, PALETTE[0])):
        scale = c.row_scales[label]
        setting = t.set_index("row").loc[label, "setting"]
        panels.append(figure(f"{'before' if label == DEFAULT_ROW else 'after'}: {label} ({setting})",
                             paired(scale, c.test_scores[label], to_scale(c.test_human, c.human_range, scale), label,
                                    f"{label}, test items", color, width=560)))
    return (f"<p>Automatic choice: <b>{esc(chosen)}</b> (criterion: {esc(criterion)}, chosen on development items "
            "only; every figure below is on the held-out test items).</p>"
            + table(t.drop(columns=["family"]), effect_columns(c)) + f'<p class="note">{esc(effects_note(c))}</p>'
            + figure("Test Pearson r of every row (95% CI); the automatic choice in colour.", svg)
            + f'<div class="pair">{"".join(panels)}</div>')


def effects_note(c: Comparison) -> str:
    """What the Δ r column resampled and corrected, in words."""
    if not c.effects:
        return "No row was tested against the default."
    note = resampling_note(next(iter(c.effects.values())), "holm", len(c.effects))
    return (f"Δ r: each row's test r minus the paper's default's; {note}. A row is called better or worse only "
            "where its adjusted p is below 0.05; the oracle reads the test labels and is not tested.")


def effect_columns(c: Comparison) -> dict[str, Column]:
    """The table's columns, the Δ r and adjusted-p tooltips saying what this table resampled and corrected."""
    note = effects_note(c)
    return {**COLUMNS, "Δ r": replace(COLUMNS["Δ r"], tip=f"{COLUMNS['Δ r'].tip}. {note}"),
            "p adjusted": replace(COLUMNS["p adjusted"], tip=f"{COLUMNS['p adjusted'].tip}. {note}")}


def label_figures(curve: pd.DataFrame) -> str:
    """Mean test r (± one standard deviation over the draws) of each choice against the
    number of labels, per judge × task; the label-free choice at zero."""
    figs = []
    for (judge, task), part in curve.groupby(["judge", "task"], sort=False):
        sizes = sorted(set(part["labels"]))
        series = []
        for k, (choice, rows) in enumerate(part.groupby("choice", sort=False)):
            stats = rows.groupby("labels")["test pearson"].agg(["mean", "std"]).reindex(sizes)
            series.append(Line(choice, stats["mean"].tolist(), stats["std"].fillna(0.0).tolist(),
                               PALETTE[k % len(PALETTE)], choice == CHOICE_ROW))
        figs.append(figure(f"{judge} · {task}: test r against the number of labelled development items (0: the "
                           "label-free choice)",
                           lines([str(n) for n in sizes], series, title=f"label efficiency, {judge} · {task}",
                                 xlabel="human labels used to choose and fit", ylabel="test Pearson r",
                                 width=1140, height=320)))
    return "".join(figs)


# --- compare -------------------------------------------------------------------------

SYSTEM_COLUMNS = {c.key: c for c in [
    Column("system", "system", "the system (an output several systems share counts for each)"),
    Column("items", "items", "the system's items, every one scored by the judge"),
    Column("labelled", "labelled", "items with a human score"),
    Column("naive", "naive judge mean [95% CI] (biased)", "the judge's mean over every item, mapped onto the human "
           "scale: biased by the judge, its interval blind to the judge's error"),
    Column("labelled_only", "labelled-only mean [95% CI]", "the mean human score of the labelled items"),
    Column("ppi", "PPI++ mean [95% CI]", "prediction-powered mean (PPI++): the judge on every item, rectified by "
           "its error on the labelled ones, with the power-tuning λ"),
    Column("lambda", "λ", "PPI++'s weight on the judge: 0 = labels only, 1 = plain PPI"),
    Column("truth", "true mean", "the mean human score of every item (known when every item is labelled)"),
    Column("pass_naive", "judge pass rate [95% CI] (biased)", "share of items the judge scores at or above the "
           "threshold", percent=True),
    Column("pass_labelled", "labelled pass rate [95% CI]", "share of labelled items the humans pass", percent=True),
    Column("pass_corrected", "corrected pass rate [95% CI]", "the judge's pass rate corrected by its sensitivity and "
           "specificity on the labelled items (Rogan–Gladen), clipped to [0, 1]; bootstrap interval", percent=True),
    Column("a", "A", "first system of the pair"),
    Column("b", "B", "second system of the pair"),
    Column("difference", "A − B [95% CI]", "PPI++ estimate of mean(A) − mean(B), paired by group where both "
           "systems cover the same groups"),
    Column("p", "p", "two-sided p of A − B = 0 (normal), before correction", digits=3),
    Column("p_holm", "p (Holm)", "p adjusted by Holm over every pair", digits=3),
    Column("beats", "P(A beats B)", "share of bootstrap resamples of the items with A's PPI++ mean above B's",
           percent=True),
    Column("paired", "paired", "whether the difference is taken group by group"),
    Column("units", "resampled", "what the difference was computed over"),
]}


def compare_page(res: CompareResults) -> str:
    """The page of ``numbias compare``: the systems, every pair, the agreement and notes."""
    s = res.settings
    budget = f"{s['labels']} labels drawn (seed {s['seed']})" if s["labels"] else "the labels given"
    subtitle = f"{len(res.systems)} systems · judge score {s['score']} · {budget}"
    return page("numbias system comparison", subtitle, compare_sections(res))


def compare_sections(res: CompareResults) -> list[Section]:
    t = res.systems
    rows = [(name, key) for name in t["system"] for key in NAMES]
    by = t.set_index("system")
    svg = forest([f"{name} · {NAMES[key]}" for name, key in rows], [by.loc[n, k] for n, k in rows],
                 [by.loc[n, f"{k}_low"] for n, k in rows], [by.loc[n, f"{k}_high"] for n, k in rows],
                 highlight=[k == "ppi" for _, k in rows], title="each system's mean human score",
                 xlabel="mean on the human scale (95% CI); grey tick: the true mean", width=900,
                 marks=[by.loc[n, "truth"] if "truth" in by else float("nan") for n, _ in rows], mark_label="true mean")
    parts = [("Systems", table(t, SYSTEM_COLUMNS) + figure("Naive judge mean (biased), labelled-only and PPI++ mean "
                                                           "of every system; PPI++ in colour.", svg)),
             ("Pairs", pair_matrix(res) + table(res.pairs, SYSTEM_COLUMNS))]
    agreement = pd.DataFrame([{"measure": k, "r": e.value, "r_low": e.low, "r_high": e.high, "systems": e.items}
                              for k, e in res.agreement.items()])
    parts.append(("Agreement with the humans", "<p>Systems' mean judge scores against their mean human scores.</p>"
                  + table(agreement, {"r": Column("r", "r [95% CI]", "correlation over systems; interval from "
                                                  "resampling items within systems")})))
    parts.append(("Notes", _notes(res.notes)))
    return parts


def pair_matrix(res: CompareResults) -> str:
    """P(row beats column) for every ordered pair as a heat map, with A − B and its interval as tooltips."""
    names = res.systems["system"].tolist()
    values = [[math.nan] * len(names) for _ in names]
    tips = [[""] * len(names) for _ in names]
    for r in res.pairs.to_dict("records"):
        i, j = names.index(r["a"]), names.index(r["b"])
        values[i][j], values[j][i] = r["beats"], 1 - r["beats"]
        ci = f"[{r['low']:+.2f}, {r['high']:+.2f}]"
        tips[i][j] = f"{r['a']} − {r['b']} = {r['difference']:+.2f} {ci}"
        tips[j][i] = f"{r['b']} − {r['a']} = {-r['difference']:+.2f} [{-r['high']:+.2f}, {-r['low']:+.2f}]"
    svg = heatmap(names, names, values, tips, title="P(row beats column)")
    return figure("Probability that the row's system beats the column's (bootstrap over items); hover for the "
                  "difference and its 95% CI.", svg)
