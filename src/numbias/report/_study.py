"""The page of ``numbias run`` (and the study sections ``align``'s page shares): the
verdicts, the summary tables, judge-against-human histograms, kurtosis against
accuracy and the items. What each shows is computed here; ``templates/study.html.j2``
draws it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from markupsafe import Markup

from numbias.core.scale import setting_scale
from numbias.judge.judging import ScoredSet
from numbias.report._glossary import COLUMNS
from numbias.report._parts import card, cards, figure, mapped, notes, paired
from numbias.report._templates import macro
from numbias.report.html import Column, Section, page, table
from numbias.report.svg import PALETTE, Mark, Point, Series, bars, scatter
from numbias.report.verdict import answer_rule, rule_scores, score_label, study_verdicts
from numbias.studies.bias import StudyResults
from numbias.util.fmt import fmt_num

MAX_ITEMS = 2000
"""Rows of the searchable item table per task (items.csv holds them all)."""
TOP_DISAGREEMENTS = 6


def _draw(name: str, **values: object) -> Markup:
    return macro("study.html.j2", name)(**values)


def study_page(results: StudyResults) -> str:
    """The page of ``numbias run``: what was measured, then its sections."""
    judges = list(dict.fromkeys(results.summary["judge"]))
    tasks = {s.task: len(s.data) for s in results.sets}
    subtitle = (
        f"{', '.join(judges)} on {', '.join(f'{t} ({n} items)' for t, n in tasks.items())} · scales "
        f"{', '.join(results.config.scales)} · rules {', '.join(results.config.rules)}"
    )
    return page("numbias report", subtitle, study_sections(results, []))


def study_sections(results: StudyResults, extra: Sequence[Section], lead: str = "") -> list[Section]:
    """The sections of a study's page; ``extra`` after the summary, ``lead`` (HTML)
    above the verdicts."""
    summary = results.summary
    verdicts = [
        card(f"{v.judge} on {v.task}", v.level, v.tiles(), v.finding(), v.advice()) for v in study_verdicts(results)
    ]
    sections = [
        ("Verdict", Markup(lead) + cards(verdicts)),
        (
            "Summary",
            _draw(
                "summary", summary=table(summary_frame(summary), COLUMNS), spread=table(spread_frame(summary), COLUMNS)
            ),
        ),
        *extra,
        ("Score histograms", histograms(results)),
        ("Kurtosis against accuracy", kurtosis_scatter(summary)),
        ("Items", disagreements(results) + item_tables(results)),
    ]
    noted = summary[summary["notes"].astype(str) != ""]
    if len(noted) or results.notes:
        shown = table(noted[["judge", "task", "scale", "rule", "notes"]], COLUMNS) if len(noted) else Markup()
        sections.append(("Notes", notes(results.notes) + shown))
    return sections


def summary_frame(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary's columns a person reads, in reading order; a judge or task column
    only when there are several, and no column that is empty throughout."""
    keys = [
        "judge",
        "task",
        "scale",
        "rule",
        "n",
        "kurtosis",
        "human_kurtosis",
        "mode",
        "mode_share",
        "entropy",
        "distinct",
        "js_divergence",
        "wasserstein",
        "pearson",
        "pearson_low",
        "pearson_high",
        "spearman",
        "kendall",
        "human_ceiling",
        "group_pearson",
        "group_pearson_low",
        "group_pearson_high",
        "groups",
        *[f"system_{c}{end}" for c in ("pearson", "spearman", "kendall") for end in ("", "_low", "_high")],
        "systems",
    ]
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


def summary_row(summary: pd.DataFrame, judge: str, task: str, scale: str, rule: str) -> pd.Series:
    """The summary's row of one judge × task × scale × rule."""
    return summary[
        (summary.judge == judge) & (summary.task == task) & (summary.scale == scale) & (summary.rule == rule)
    ].iloc[0]


def set_rules(s: ScoredSet, rules: Sequence[str]) -> list[tuple[str, str]]:
    """(summary label, rule to score with) of every rule a scored set was read with."""
    return [(r, r) for r in rules] if s.mode == "exact" else [(s.mode, "protocol")]


def histograms(results: StudyResults) -> Markup:
    """Per judge × task, one figure per scale × rule: the judge's histogram paired with
    the humans' (mapped onto the judge's scale), captioned with the summary's figures."""
    groups = []
    summary = results.summary
    for judge, task in dict.fromkeys((s.judge, s.task) for s in results.sets):
        figs = []
        for s in (s for s in results.sets if (s.judge, s.task) == (judge, task)):
            for label, rule in set_rules(s, results.config.rules):
                row = summary_row(summary, judge, task, str(s.scale), label)
                caption = (
                    f"{s.scale} · {label}: kurtosis {fmt_num(row['kurtosis'])}, r {fmt_num(row['pearson'])}, "
                    f"mode {score_label(str(s.scale), row['mode'])} "
                    f"({fmt_num(row['mode_share'], percent=True)})"
                )
                figs.append(
                    figure(
                        caption,
                        paired(s.scale, s.scores(rule), mapped(s), "judge", f"{judge} · {task} · {s.scale} · {label}"),
                    )
                )
        groups.append((judge, task, min(len(results.config.rules), 4), figs))
    return _draw("histograms", groups=groups)


def kurtosis_scatter(summary: pd.DataFrame) -> Markup:
    """Every setting's kurtosis against its Pearson r, labelled by setting; the
    humans' kurtosis as a reference line."""
    groups = list(dict.fromkeys(zip(summary["judge"], summary["task"])))
    color = {g: PALETTE[k % len(PALETTE)] for k, g in enumerate(groups)}
    points = [
        Point(
            r["kurtosis"],
            r["pearson"],
            f"{r['scale']} · {r['rule']}",
            color[(r["judge"], r["task"])],
            f"{r['judge']} · {r['task']} · {r['scale']} · {r['rule']}: kurtosis {r['kurtosis']:.2f}, "
            f"r {r['pearson']:.2f}",
        )
        for r in summary.to_dict("records")
    ]
    humans = summary.drop_duplicates("task")
    vlines = [
        (float(r["human_kurtosis"]), "humans" if len(humans) == 1 else f"humans ({r['task']})")
        for r in humans.to_dict("records")
        if np.isfinite(r["human_kurtosis"])
    ]
    legend = [(f"{j} · {t}", color[(j, t)]) for j, t in groups] if len(groups) > 1 else []
    xlog = bool((summary["kurtosis"].abs() > 10).any())
    axis = "excess kurtosis of the judge's scores" + (" (signed log axis)" if xlog else "")
    svg = scatter(
        points,
        title="kurtosis against Pearson r",
        xlabel=axis,
        ylabel="Pearson r with the humans",
        xlog=xlog,
        vlines=vlines,
        legend=legend,
        width=760,
        height=360,
    )
    return _draw("kurtosis", svg=Markup(svg), undefined=int(summary[["kurtosis", "pearson"]].isna().any(axis=1).sum()))


def _item_text(frame: pd.DataFrame, fields: Sequence[str], i: int, sep: str) -> str:
    values = [str(frame.iloc[i][f]) for f in fields]
    return values[0] if len(values) == 1 else sep.join(f"{f}: {v}" for f, v in zip(fields, values))


def _distribution(s: ScoredSet, i: int, judge: float, human: float) -> Markup:
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
    return Markup(
        bars(
            cats,
            [Series("P(score)", probs, PALETTE[0])],
            title=f"score distribution of item {s.data.ids[i]}",
            width=330,
            height=150,
            marks=marks,
        )
    )


def disagreements(results: StudyResults) -> Markup:
    """Per judge × task (the verdict's scale and rule): the items where judge and
    human disagree most, each beside its whole score distribution."""
    groups = []
    for v in study_verdicts(results):
        s, scores = rule_scores(results, v.judge, v.task, v.scale, v.rule)
        human = mapped(s)
        gap = scores - human
        order = np.argsort(-np.nan_to_num(np.abs(gap), nan=-1.0), kind="stable")[:TOP_DISAGREEMENTS]
        texts = [_item_text(s.data.frame, s.data.fields, i, chr(10)) for i in order]
        items = [
            (
                f"id {s.data.ids[i]} · human {fmt_num(s.data.human[i])} ({fmt_num(human[i])} on {s.scale}) · "
                f"judge {fmt_num(scores[i])} ({v.rule}) · gap {gap[i]:+.2f}",
                text,
                _distribution(s, i, scores[i], human[i]),
            )
            for i, text in zip(order, texts)
        ]
        groups.append((v.judge, v.task, v.scale, v.rule, max(map(len, texts), default=0) < 200, items))
    return _draw("disagreements", groups=groups)


def item_tables(results: StudyResults) -> Markup:
    """Per task, a searchable table of every item (up to :data:`MAX_ITEMS`): id, text,
    human score and the judges' scores."""
    tasks = []
    judges = {s.judge for s in results.sets}
    for task in dict.fromkeys(s.task for s in results.sets):
        sets = [s for s in results.sets if s.task == task]
        data = sets[0].data
        shown = min(len(data), MAX_ITEMS)
        frame = pd.DataFrame(
            {
                "id": data.ids[:shown],
                "human": data.human[:shown],
                "text": [_item_text(data.frame, data.fields, i, " · ")[:400] for i in range(shown)],
            }
        )
        known = dict(COLUMNS)
        for s, label, rule in _score_columns(sets, results.config.rules):
            name = f"{s.judge} · {s.scale} · {label}"
            short = label.split("(")[0]  # sampled(n=10,T=0.7): the settings go to the tooltip
            title = f"{s.scale} · {short}" if len(judges) == 1 else f"{s.judge} · {s.scale} · {short}"
            known[name] = Column(name, title, f"{name}: the item's score")
            frame[name] = s.scores(rule)[:shown]
        tasks.append((task, shown, len(data), table(frame, known, filter_at=0)))
    return _draw("item_tables", tasks=tasks)


def _score_columns(sets: Sequence[ScoredSet], rules: Sequence[str]) -> list[tuple[ScoredSet, str, str]]:
    """(set, summary label, rule) of each score column of a task's item table: every
    rule, or past nine columns one per judge × scale, its answer."""
    columns = [(s, label, rule) for s in sets for label, rule in set_rules(s, rules)]
    if len(columns) <= 9:
        return columns
    labels: dict[tuple[str, str], list[str]] = {}
    for s, label, _ in columns:
        labels.setdefault((s.judge, str(s.scale)), []).append(label)
    return [(s, label, rule) for s, label, rule in columns if label == answer_rule(labels[(s.judge, str(s.scale))])]
