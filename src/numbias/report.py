"""One self-contained HTML report: tables, and matplotlib figures inlined as PNG.

Figures are drawn from computed results only; every text that came from a data set
or a config is HTML-escaped."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from numbias.metrics import histogram, to_scale  # noqa: E402

if TYPE_CHECKING:
    from numbias.study import StudyResults

_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1200px;color:#222}
table{border-collapse:collapse;font-size:0.85rem;margin:1rem 0}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f3f3f3} td.t{text-align:left}
img{max-width:100%} .note{color:#666;font-size:0.85rem}
"""


def figure_html(fig: plt.Figure, alt: str) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
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
        fig, axes = plt.subplots(len(sets), len(rules), figsize=(3.2 * len(rules), 2.3 * len(sets)), squeeze=False)
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
    fig, ax = plt.subplots(figsize=(5.5, 4))
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


def write_report(results: StudyResults, path: Path) -> None:
    summary = results.summary
    sections = [
        ("Summary", table_html(summary_columns(summary))
         + '<p class="note">kurtosis: excess (Fisher) kurtosis of item scores; entropy: normalised entropy of '
           "the score histogram; JS / Wasserstein: distance between judge and human histograms (human scores "
           "mapped linearly onto the judge's range; Wasserstein in units of the range).</p>"),
        ("Kurtosis against accuracy", kurtosis_vs_pearson(summary)),
        ("Score histograms", histograms(results)),
        ("Largest disagreements", disagreements(results, results.config.rules[-1])),
        *results.extra.get("sections", []),
    ]
    notes = summary[summary["notes"].astype(str) != ""]
    data_notes = "".join(f"<li>{html.escape(note)}</li>" for note in results.notes)
    if len(notes) or data_notes:
        sections.append(("Notes", (f"<ul>{data_notes}</ul>" if data_notes else "")
                         + (table_html(notes[["judge", "task", "scale", "rule", "notes"]]) if len(notes) else "")))
    write_sections("numbias report", sections, path)


def write_sections(title: str, sections: list[tuple[str, str]], path: Path) -> None:
    """A self-contained page of (heading, HTML) sections."""
    body = "".join(f"<h2>{html.escape(head)}</h2>{content}" for head, content in sections)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>")
    path.write_text(page, encoding="utf-8")
