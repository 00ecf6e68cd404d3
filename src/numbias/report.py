"""Every result file and the one self-contained HTML page, for run, align and
mitigate alike: the studies return plain data, and this module writes it.

Figures are drawn from computed results only (matplotlib's object API, no global
pyplot state) and inlined as PNG; every text that came from a data set or a config
is HTML-escaped."""

from __future__ import annotations

import base64
import html
import io
import json
from functools import singledispatch
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from matplotlib.figure import Figure

from numbias.align import AlignResults
from numbias.errors import NumbiasError
from numbias.metrics import histogram, to_scale
from numbias.mitigate import MitigateResults
from numbias.output import Writer, text, write_all
from numbias.scale import PAPER_SCALE, ScoreScale
from numbias.study import StudyResults

Section = tuple[str, str]
"""A heading and its HTML."""

_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1200px;color:#222}
table{border-collapse:collapse;font-size:0.85rem;margin:1rem 0}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f3f3f3} td.t{text-align:left}
img{max-width:100%} .note{color:#666;font-size:0.85rem}
"""


@singledispatch
def write(results: Any, out: str | Path | None = None) -> Path:
    """Write a study's result files and report into ``out`` (default: the config's
    ``out``), all replaced together; returns the folder.

    >>> write(object())
    Traceback (most recent call last):
    ...
    numbias.errors.NumbiasError: cannot write results of type object (give what run, align or mitigate returned)
    """
    raise NumbiasError(f"cannot write results of type {type(results).__name__} "
                       "(give what run, align or mitigate returned)")


@write.register
def _(results: StudyResults, out: str | Path | None = None) -> Path:
    return write_all(out or results.config.out, study_files(results))


@write.register
def _(results: AlignResults, out: str | Path | None = None) -> Path:
    files = study_files(results.study, align_sections(results))
    page = files.pop("report.html")
    return write_all(out or results.config.out, {
        **files,
        "alignment.csv": lambda p: results.table.to_csv(p, index=False),
        "simulated_kurtosis.csv": lambda p: results.simulated.to_csv(p, index=False),
        "report.html": page,
    })


@write.register
def _(results: MitigateResults, out: str | Path | None = None) -> Path:
    dev = pd.DataFrame([{"judge": c.judge.name, "task": c.task, "setting": s.label, "dev score": v}
                        for c in results.comparisons for s, v in c.dev_scores.items()])
    checks = {name: frame for name, frame in (("selection.csv", results.selection),
                                               ("label_efficiency.csv", results.label_curve),
                                               ("transfer.csv", results.transfer)) if len(frame)}
    return write_all(out or results.config.out, {
        "mitigation.csv": lambda p: results.table.to_csv(p, index=False),
        "dev_scores.csv": lambda p: dev.to_csv(p, index=False),
        **{name: (lambda p, f=frame: f.to_csv(p, index=False)) for name, frame in checks.items()},
        "report.html": lambda p: write_page("numbias mitigation study", mitigate_sections(results), p),
    })


def study_files(results: StudyResults, extra_sections: list[Section] | None = None) -> dict[str, Writer]:
    """A study's files: per-item scores, the summary, the config it ran, the report."""
    records = json.loads(results.summary.to_json(orient="records"))
    config = yaml.safe_dump(results.config.model_dump(mode="json", exclude_none=True), sort_keys=False)
    return {
        "items.csv": lambda p: results.items.to_csv(p, index=False),
        "summary.json": text(json.dumps(records, indent=2)),
        "config.yaml": text(config),
        "report.html": lambda p: write_page("numbias report", study_sections(results, extra_sections or []), p),
    }


def figure_html(fig: Figure, alt: str) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    data = base64.b64encode(buf.getvalue()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def table_html(frame: pd.DataFrame, digits: int = 3) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for _, row in frame.iterrows():
        cells = []
        for value in row:
            if isinstance(value, (float, np.floating)):
                cells.append(f"<td>{'—' if np.isnan(value) else f'{value:.{digits}f}'}</td>")
            else:
                cells.append(f'<td class="t">{html.escape(str(value))}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def write_page(title: str, sections: list[Section], path: Path) -> None:
    """A self-contained page of (heading, HTML) sections."""
    body = "".join(f"<h2>{html.escape(head)}</h2>{content}" for head, content in sections)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>")
    path.write_text(page, encoding="utf-8")


def _notes(notes: list[str]) -> str:
    return "<ul>" + "".join(f"<li>{html.escape(note)}</li>" for note in notes) + "</ul>" if notes else ""


# --- run -----------------------------------------------------------------------------


def summary_columns(summary: pd.DataFrame) -> pd.DataFrame:
    out = summary[["judge", "task", "scale", "rule", "kurtosis", "human_kurtosis", "entropy", "mode_share",
                   "distinct", "js_divergence", "wasserstein", "pearson", "pearson_low", "pearson_high",
                   "spearman", "kendall", "human_ceiling",
                   *(["group_pearson", "group_pearson_low", "group_pearson_high", "groups"]
                     if "group_pearson" in summary and summary["group_pearson"].notna().any() else [])]].copy()
    out["distinct"] = out["distinct"].astype(str)
    return out


def histograms(results: StudyResults) -> str:
    parts = []
    rules = results.config.rules
    for task in dict.fromkeys(s.task for s in results.sets):
        sets = [s for s in results.sets if s.task == task]
        fig = Figure(figsize=(3.2 * len(rules), 2.3 * len(sets)))
        axes = fig.subplots(len(sets), len(rules), squeeze=False)
        for row, s in enumerate(sets):
            human = histogram(to_scale(s.data.human, s.data.human_range, s.scale), s.scale)
            for col, rule in enumerate(rules):
                ax = axes[row][col]
                judge = histogram(s.scores(rule), s.scale)
                x = s.scale.values
                ax.bar(x, judge, width=0.8 if s.scale.size <= 20 else 1.0, color="#d95f02", alpha=0.8, label="judge")
                ax.step(x, human, where="mid", color="#1b9e77", label="human (mapped)")
                ax.set_title(f"{s.judge} · {s.scale} · {rule if s.mode == 'exact' else s.mode}", fontsize=8)
                ax.tick_params(labelsize=7)
                if row == 0 and col == 0:
                    ax.legend(fontsize=7)
        fig.suptitle(task, fontsize=10)
        fig.tight_layout()
        parts.append(f"<h3>{html.escape(task)}</h3>" + figure_html(fig, f"score histograms for {task}"))
    return "".join(parts)


def kurtosis_vs_pearson(summary: pd.DataFrame) -> str:
    fig = Figure(figsize=(5.5, 4))
    ax = fig.subplots()
    for (judge, rule), group in summary.groupby(["judge", "rule"]):
        ax.scatter(np.log1p(group["kurtosis"].clip(lower=-0.99)), group["pearson"], label=f"{judge} · {rule}", s=22)
    ax.set_xlabel("log(1 + excess kurtosis of judge scores)")
    ax.set_ylabel("Pearson r with human scores")
    ax.legend(fontsize=6)
    return figure_html(fig, "kurtosis against Pearson r")


def disagreements(results: StudyResults, rule: str, k: int = 5) -> str:
    """The items where judge and human disagree most: what a person reads first."""
    parts = []
    for s in results.sets:
        scores = s.scores(rule)
        gap = scores - to_scale(s.data.human, s.data.human_range, s.scale)
        order = np.argsort(-np.nan_to_num(np.abs(gap), nan=-1.0))[:k]
        frame = s.data.frame.iloc[order][list(s.data.fields)].copy()
        frame.insert(0, "human", s.data.human[order])
        frame.insert(1, f"judge ({rule})", scores[order])
        frame = frame.astype({c: str for c in s.data.fields})
        parts.append(f"<h3>{html.escape(f'{s.judge} · {s.task} · {s.scale}')}</h3>" + table_html(frame, 2))
    return "".join(parts)


def study_sections(results: StudyResults, extra: list[Section]) -> list[Section]:
    summary = results.summary
    sections = [
        ("Summary", table_html(summary_columns(summary))
         + '<p class="note">kurtosis: excess (Fisher) kurtosis of item scores; entropy: normalised entropy of '
           "the score histogram; JS / Wasserstein: distance between judge and human histograms (human scores "
           "mapped linearly onto the judge's range; Wasserstein in units of the range).</p>"),
        ("Kurtosis against accuracy", kurtosis_vs_pearson(summary)),
        ("Score histograms", histograms(results)),
        ("Largest disagreements", disagreements(results, results.config.rules[-1])),
        *extra,
    ]
    notes = summary[summary["notes"].astype(str) != ""]
    if len(notes) or results.notes:
        sections.append(("Notes", _notes(results.notes)
                         + (table_html(notes[["judge", "task", "scale", "rule", "notes"]]) if len(notes) else "")))
    return sections


# --- align ---------------------------------------------------------------------------


def align_sections(res: AlignResults) -> list[Section]:
    corr = "".join(
        f"<li>{html.escape(rule)}: r = {iv.value:.2f} [{iv.low:.2f}, {iv.high:.2f}]</li>"
        for rule, iv in res.correlation.items())
    return [
        ("Alignment study: base vs aligned", table_html(res.table, 2)
         + f"<p>Correlation between kurtosis and Pearson r over all settings (paper: −0.60):</p><ul>{corr}</ul>"),
        ("Aligned against base, setting by setting", table_html(res.shift, 2)
         + "<p>Settings where the aligned judge's kurtosis is above its base's (more peaked), where its "
           "Pearson r is below (less accurate), and both.</p>"),
        ("Simulated kurtosis of the n-sample protocol mean", table_html(res.simulated, 2)),
        ("Base vs aligned histograms", align_histograms(res)),
    ]


def align_histograms(res: AlignResults) -> str:
    """Base, aligned and human score histograms on one axis per task × scale."""
    figs = []
    exact = [s for s in res.study.sets if s.mode == "exact"]
    for task in dict.fromkeys(s.task for s in exact):
        sets = [s for s in exact if s.task == task]
        scales = list(dict.fromkeys(str(s.scale) for s in sets))
        fig = Figure(figsize=(4.5 * len(scales), 3))
        axes = fig.subplots(1, len(scales), squeeze=False)
        for ax, scale in zip(axes[0], scales):
            for s in [s for s in sets if str(s.scale) == scale]:
                ax.plot(s.scale.values, histogram(s.scores("protocol"), s.scale), marker="o", label=s.judge)
            ref = sets[0]
            human = histogram(to_scale(ref.data.human, ref.data.human_range, ref.scale), ref.scale)
            ax.plot(ref.scale.values, human, color="black", linestyle="--", label="human (mapped)")
            ax.set_title(f"{task} · {scale}", fontsize=9)
            ax.legend(fontsize=6)
        figs.append(figure_html(fig, f"base vs aligned vs human histograms, {task}"))
    return "".join(figs)


# --- mitigate ------------------------------------------------------------------------


def mitigate_sections(res: MitigateResults) -> list[Section]:
    parts = [("Notes", _notes(res.notes))] if res.notes else []
    for c in res.comparisons:
        chosen = ", ".join(dict.fromkeys(s.label for s in c.chosen))
        parts.append((f"Mitigations: {c.judge.name} · {c.task}",
                      f"<p>automatic choice: <b>{html.escape(chosen)}</b> (criterion: "
                      f"{html.escape(res.config.criterion)}, chosen on development items only)</p>"
                      + table_html(c.table.drop(columns=["family"]), 3)
                      + figure_html(_mitigation_figure(c), f"mitigations for {c.judge.name} on {c.task}")))
    if len(res.selection):
        parts.append(("What the choice is worth", "<p>the chosen setting's development score beside a nested "
                      "cross-validation estimate of the selection, and the share of bootstrap resamples of the "
                      "development items on which it wins</p>" + table_html(res.selection, 3)))
    if len(curve := res.label_curve):
        parts.append(("Label efficiency", figure_html(_label_figure(curve), "test r against the number of labels")))
    if len(res.transfer):
        parts.append(("Transfer", "<p>each choice applied to another task (same judge) or judge (same task)</p>"
                      + table_html(res.transfer, 3)))
    return parts


def _label_figure(curve: pd.DataFrame) -> Figure:
    """Mean test r (± one standard deviation over the draws) of each choice against the
    number of labels, one panel per judge × task; the label-free choice at zero."""
    groups = list(curve.groupby(["judge", "task"], sort=False))
    fig = Figure(figsize=(5.5 * len(groups), 3.6))
    for ax, ((judge, task), part) in zip(np.atleast_1d(fig.subplots(1, len(groups))), groups):
        for choice, rows in part.groupby("choice", sort=False):
            stats = rows.groupby("labels")["test pearson"].agg(["mean", "std"]).fillna(0.0)
            ax.errorbar(stats.index, stats["mean"], yerr=stats["std"], marker="o", capsize=3, label=choice,
                        linewidth=2.5 if choice == "automatic choice" else 1)
        ax.set_xscale("symlog", linthresh=10)
        ax.set_xlabel("human labels used to choose and fit")
        ax.set_ylabel("test Pearson r")
        ax.set_title(f"{judge} · {task}", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _mitigation_figure(c: Any) -> Figure:
    """Test Pearson r of every row with its CI, and the test histograms of the paper's
    default and of the automatic choice against the humans'."""
    t = c.table
    fig = Figure(figsize=(11, 0.9 + 0.28 * len(t)))
    ax1, ax2 = fig.subplots(1, 2)
    err = np.clip([t["pearson"] - t["pearson_low"], t["pearson_high"] - t["pearson"]], 0, None)
    ax1.barh(t["row"], t["pearson"], xerr=np.nan_to_num(err),
             color=["#c44" if r == "automatic choice" else "#789" for r in t["row"]])
    ax1.invert_yaxis()
    ax1.set_xlabel("test Pearson r (95% CI)")
    ax1.tick_params(axis="y", labelsize=7)
    for label in ("original (paper default)", "automatic choice"):
        scale = c.row_scales[label]
        ax2.plot(np.linspace(0, 1, scale.size), histogram(c.test_scores[label], scale), marker="o", label=label)
    base = ScoreScale.parse(PAPER_SCALE)
    ax2.plot(np.linspace(0, 1, base.size), histogram(to_scale(c.test_human, c.human_range, base), base), "k--",
             label="human (on 0-9)")
    ax2.set_xlabel("position on the scale")
    ax2.legend(fontsize=7)
    return fig
