"""The controlled-alignment views of an alignment study whose judges are one base and
the stages ``numbias train`` made from it: each stage's bias and accuracy against the
base (and DPO after SFT against SFT of the same seed), each change with a 95% CI that
counts the items and the training seeds and a p adjusted over the whole table
(:mod:`numbias.core.inference`); and each judge's output diversity (distinct-n of free
generations on instructions that no trained stage saw), the mechanism the research
points to."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from numbias.core.inference import (
    UNDEFINED,
    Correction,
    Effect,
    benjamini_hochberg,
    holm,
    paired_effect,
    resamples_for,
    resampling_note,
)
from numbias.core.metrics import (
    entropy_rows,
    is_rule,
    kurtosis_rows,
    mean_rows,
    mode_share_rows,
    pearson_rows,
    sd_ratio_rows,
)
from numbias.core.scale import ScoreScale
from numbias.data.prompt import Prompt
from numbias.judge.config import JudgeConfig
from numbias.judge.judging import Judge, Progress, no_progress
from numbias.models.catalog import trained_stage
from numbias.train.data import instruction_text, read_records
from numbias.util.errors import NumbiasError
from numbias.util.fmt import fmt_num, fmt_p

METRICS = (
    "kurtosis",
    "entropy",
    "mode_share",
    "pearson",
    "sd_ratio",
    "out_of_scale",
    "non_numeric",
    "next_token_entropy",
)
"""What the stage table compares: the score distribution's peakedness, spread and
pile-up, accuracy, the judge's spread against the humans', the answer mass outside the
scale and on non-numbers, and how spread the whole next-token distribution is at the answer."""
EFFECT_SUFFIXES = ("low", "high", "p", "p adj")
"""A compared metric ``m`` has ``Δ m`` and ``Δ m low``/``high``/``p``/``p adj`` columns."""


@dataclass(frozen=True)
class Comparison:
    """One row of the stage table: ``runs`` (seed order) against ``reference`` (the base
    once, or the earlier stage of each seed when ``paired``) in one task × scale × rule."""

    task: str
    scale: str
    rule: str
    stage: str
    against: str
    reference: list[str]
    runs: list[str]
    paired: bool = False


def stage_of(judge: JudgeConfig) -> tuple[str, int | None]:
    """A judge's stage and training seed, from its card: ``SFT``, ``SFT+DPO``, ``DPO``
    (from the base), or ``base`` for a judge that was not trained."""
    stage = trained_stage(judge.model)
    if stage is None:
        return "base", None
    card = stage.card
    if card.get("stage") == "sft":
        return "SFT", card.get("seed")
    from_sft = "path" in (card.get("start") or {})
    return ("SFT+DPO" if from_sft else "DPO"), card.get("seed")


def stage_table(
    judges: Sequence[JudgeConfig],
    summary: pd.DataFrame,
    items: pd.DataFrame,
    *,
    ranges: Mapping[str, tuple[float, float]] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Per task × scale × rule × stage: each metric's mean over seeds (from the summary)
    and seed sd, and its change from the base with a 95% CI and a p Holm-adjusted over
    the table's rows (one family per metric), from the items frame's per-item values: the
    base is one row, a stage its seeds (item bootstrap plus seed spread); DPO after SFT
    is set against the SFT model of the same seed, paired by seed (``against`` says
    which). ``ranges`` (the tasks' human ranges) puts the humans on the unit scale for
    the SD ratio. Empty when no judge is a trained stage."""
    labels = {j.name: stage_of(j) for j in judges}
    if all(stage == "base" for stage, _ in labels.values()):
        return pd.DataFrame()
    frame = _levels(summary, items, labels)
    comparisons = list(_comparisons(frame))
    boot = resamples_for(len(comparisons), n_boot)
    rows = []
    for c in comparisons:
        part = frame[(frame.task == c.task) & (frame.scale == c.scale) & (frame.rule == c.rule)].set_index("judge")
        ref, runs = part.loc[c.reference], part.loc[c.runs]
        effects = {
            m: _effect(c, m, items, (ranges or {}).get(c.task), boot if len(c.runs) == 1 else n_boot, seed)
            for m in METRICS
        }
        rows.append(
            {
                "task": c.task,
                "scale": c.scale,
                "rule": c.rule,
                "stage": c.stage,
                "against": c.against,
                "seeds": len(c.runs),
                "items": max(e.items for e in effects.values()),
                "resampled": effects["kurtosis"].resampled,
                "base mode": _most_common(ref["mode"]),
                "mode": _most_common(runs["mode"]),
                **{k: v for m in METRICS for k, v in _columns(m, ref[m], runs[m], effects[m]).items()},
            }
        )
    return adjust_columns(pd.DataFrame(rows), [f"Δ {m}" for m in METRICS])


def _levels(summary: pd.DataFrame, items: pd.DataFrame, labels: Mapping[str, tuple[str, int | None]]) -> pd.DataFrame:
    """The summary with each judge's stage and seed, its mean next-token entropy (exact
    items) and NaN for a metric the summary lacks."""
    frame = summary.assign(
        stage=summary.judge.map(lambda n: labels.get(n, ("base", None))[0]),
        seed=summary.judge.map(lambda n: labels.get(n, ("base", None))[1]),
    )
    if "next_token_entropy" in items:
        exact = items[items["mode"] == "exact"].groupby(["judge", "task", "scale"])["next_token_entropy"].mean()
        frame["next_token_entropy"] = [
            exact.get((j, t, s), np.nan) for j, t, s in zip(frame.judge, frame.task, frame.scale)
        ]
    for metric in METRICS:
        if metric not in frame:
            frame[metric] = np.nan
    return frame


def _comparisons(frame: pd.DataFrame) -> Iterable[Comparison]:
    """Every stage against the base, and DPO after SFT against SFT of the same seeds."""
    for (task, scale, rule), part in frame.groupby(["task", "scale", "rule"], sort=False):
        base = part[part.stage == "base"]
        if len(base) != 1:
            continue
        for stage, runs in part[part.stage != "base"].groupby("stage", sort=False):
            yield Comparison(
                task, scale, rule, str(stage), "base", list(base.judge), list(runs.sort_values("seed").judge)
            )
        sft, dpo = (part[part.stage == s].set_index("seed") for s in ("SFT", "SFT+DPO"))
        seeds = sorted(s for s in dpo.index if s in sft.index)
        if seeds:
            yield Comparison(
                task,
                scale,
                rule,
                "SFT+DPO",
                "SFT, same seed",
                list(sft.loc[seeds, "judge"]),
                list(dpo.loc[seeds, "judge"]),
                paired=True,
            )


def _effect(
    c: Comparison, metric: str, items: pd.DataFrame, human_range: tuple[float, float] | None, n_boot: int, seed: int
) -> Effect:
    """One metric's change with its interval, from the items both sides score. A stage
    with one training seed gets its item interval but no test: a difference between two
    single runs says nothing about training with another seed."""
    mode = "exact" if is_rule(c.rule) else c.rule
    column = {"out_of_scale": "out_of_scale", "non_numeric": "other", "next_token_entropy": "next_token_entropy"}
    if metric == "next_token_entropy":
        mode = "exact"
    scale = ScoreScale.parse(c.scale)
    statistic = {
        "kurtosis": kurtosis_rows,
        "entropy": entropy_rows(scale),
        "mode_share": mode_share_rows(scale),
        "pearson": pearson_rows,
        "sd_ratio": sd_ratio_rows(scale, human_range) if human_range else None,
    }.get(metric, mean_rows)
    values, human = item_matrix(items, c.task, c.scale, mode, column.get(metric, c.rule), [*c.reference, *c.runs])
    if statistic is None or not np.isfinite(values).any():
        return replace(UNDEFINED, seeds=len(c.runs))
    k = len(c.reference)
    effect = paired_effect(statistic, values[:k], values[k:], human, paired_seeds=c.paired, n_boot=n_boot, seed=seed)
    if len(c.runs) == 1:  # one training run: its interval counts the items, but run-to-run spread is unknown
        return replace(effect, p=float("nan"), resampled="items; one training run, not tested")
    return effect


def item_matrix(
    items: pd.DataFrame, task: str, scale: str, mode: str, column: str, judges: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """judges × items of one column of the items frame (NaN where a judge lacks an item
    or the frame the column), items in one order for all, and the human score of each."""
    part = items[(items["task"] == task) & (items["scale"] == scale) & (items["mode"] == mode)]
    human = part.groupby("id", sort=True)["human"].first()
    if column not in part:
        return np.full((len(judges), len(human)), np.nan), human.to_numpy(dtype=float)
    wide = part.pivot(index="id", columns="judge", values=column).reindex(index=human.index, columns=list(judges))
    return wide.to_numpy(dtype=float).T, human.to_numpy(dtype=float)


def _columns(metric: str, ref: pd.Series, runs: pd.Series, effect: Effect) -> dict[str, float]:
    """A metric's levels (reference and stage, mean over seeds), seed sd and change."""
    values = runs.to_numpy(dtype=float)
    return {
        f"base {metric}": float(ref.to_numpy(dtype=float).mean()),
        metric: float(values.mean()),
        f"{metric} seed sd": float(values.std(ddof=1)) if len(values) > 1 else np.nan,
        **effect_columns(f"Δ {metric}", effect),
    }


def effect_columns(key: str, effect: Effect) -> dict[str, float]:
    """An effect as table columns: ``key`` (Δ), ``key low``/``high``, ``key p`` (``p adj``
    is set by :func:`adjust_columns`)."""
    return {key: effect.delta, f"{key} low": effect.low, f"{key} high": effect.high, f"{key} p": effect.p}


def adjust_columns(table: pd.DataFrame, keys: Sequence[str], correction: Correction = "holm") -> pd.DataFrame:
    """``key p adj`` for every ``key``: each measure's p-values over all the table's rows
    corrected as one family (one question per measure — did it move anywhere in this
    table? — asked of every setting the table prints)."""
    if table.empty:
        return table
    adjust = holm if correction == "holm" else benjamini_hochberg
    return table.assign(**{f"{key} p adj": adjust(table[f"{key} p"].to_numpy(dtype=float)) for key in keys})


def row_effect(row: Mapping[str, Any], key: str) -> Effect:
    """The effect a table row holds under ``key`` (see :func:`effect_columns`)."""
    return Effect(
        float(row[key]),
        float(row[f"{key} low"]),
        float(row[f"{key} high"]),
        float(row[f"{key} p"]),
        int(row.get("items", 0) or 0),
        int(row.get("seeds", 1) or 1),
        p_adjusted=float(row.get(f"{key} p adj", np.nan)),
    )


def table_note(table: pd.DataFrame, keys: Sequence[str]) -> str:
    """What the table's intervals resampled and how its p-values were corrected (a tooltip or footnote)."""
    effects = [row_effect(r, key) for r in table.to_dict("records") for key in keys]
    return (
        resampling_note(effects, family=0) + f" over each measure's {len(table)} rows of this table; each CI is "
        "for its own comparison (not widened for the family), "
        "so * follows the adjusted p: it marks an adjusted p below 0.05"
    )


def delta_text(row: Mapping[str, Any], key: str) -> str:
    """``Δ +0.58 [+0.12, +1.04], p_adj 0.030 *``: the change, its 95% CI, the adjusted p,
    and ``*`` only when the adjusted test rejects.

    >>> delta_text({"Δ r": 0.1, "Δ r low": 0.04, "Δ r high": 0.16, "Δ r p": 0.001, "Δ r p adj": 0.004}, "Δ r")
    'Δ +0.10 [+0.04, +0.16], p_adj 0.004 *'
    """
    effect = row_effect(row, key)
    p = effect.p_adjusted
    shown = f", p_adj {fmt_p(p)}" if np.isfinite(p) else ""
    return f"Δ {effect.text()}{shown}{' *' if effect.significant() else ''}"


def effect_text(row: Mapping[str, Any], metric: str) -> str:
    """One metric of a :func:`stage_table` row: reference → the stage's mean over seeds,
    then the change with its CI and adjusted p (:func:`delta_text`)."""
    ref, value = (fmt_num(v, plain=True) for v in (row[f"base {metric}"], row[metric]))
    return f"{ref} → {value}, {delta_text(row, f'Δ {metric}')}"


def _most_common(values: pd.Series) -> object:
    counts = values.value_counts()
    return counts.index[0] if len(counts) else None


# --- output diversity -------------------------------------------------------------


class DiversityConfig(BaseModel):
    """Free generations for distinct-n: ``n`` instructions from a JSONL file of
    ``instruction`` (and optional ``input``) records, drawn with ``seed`` from those no
    trained stage of the study was trained on, sampled at ``temperature``."""

    model_config = ConfigDict(extra="forbid")
    path: str
    n: int = Field(100, ge=1)
    max_tokens: int = Field(64, ge=2)
    temperature: float = Field(1.0, gt=0)
    seed: int = 0


def distinct_n(texts: Iterable[str], n: int) -> float:
    """Distinct n-grams over all n-grams of the texts' lower-cased words (Li et al.,
    2016): 1 when nothing repeats, small when the outputs reuse the same phrases.

    >>> distinct_n(["a b a b", "a b c"], 2)
    0.6
    """
    grams = [
        tuple(words[i : i + n]) for text in texts for words in [text.lower().split()] for i in range(len(words) - n + 1)
    ]
    return len(set(grams)) / len(grams) if grams else float("nan")


def held_out(config: DiversityConfig, judges: Sequence[JudgeConfig]) -> list[str]:
    """The instructions: records of the file whose lines no trained stage among the
    judges was trained on (per its card), ``n`` of them drawn with the seed."""
    path = Path(config.path).expanduser()
    used: set[int] = set()
    for judge in judges:
        stage = trained_stage(judge.model)
        for entry in (stage.card.get("data") or []) if stage else []:
            if Path(entry["path"]).expanduser().resolve() == path.resolve():
                used.update(entry.get("lines") or [])
    free = [record for line, record in read_records(path, "sft") if line not in used]
    if len(free) < config.n:
        raise NumbiasError(
            f"diversity: {path} has {len(free)} instructions no trained stage saw, fewer than n={config.n}"
        )
    drawn = np.random.default_rng(config.seed).permutation(len(free))[: config.n]
    return [instruction_text(free[i]) for i in drawn]


def diversity(
    config: DiversityConfig, judges: Sequence[JudgeConfig], progress: Progress = no_progress
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each judge's free generations on the held-out instructions and their distinct-1,
    distinct-2 and mean length in words: one row per judge, and the texts."""
    instructions = held_out(config, judges)
    prompts = [Prompt(text) for text in instructions]  # rendered plainly, as the stages were trained
    rows, texts = [], []
    for judge in judges:
        backend = Judge(judge).backend
        out = []
        with progress(f"generate {judge.name}", len(prompts)) as advance:
            for answers in backend.sample(
                prompts, n=1, temperature=config.temperature, max_tokens=config.max_tokens, seed=config.seed
            ):
                out.append(answers[0])
                advance(1)
        stage, seed = stage_of(judge)
        rows.append(
            {
                "judge": judge.name,
                "stage": stage,
                "seed": seed,
                "generations": len(out),
                "distinct-1": distinct_n(out, 1),
                "distinct-2": distinct_n(out, 2),
                "mean words": float(np.mean([len(t.split()) for t in out])),
                "empty": float(np.mean([not t.strip() for t in out])),
            }
        )
        texts += [{"judge": judge.name, "instruction": i, "generation": t} for i, t in zip(instructions, out)]
    table = pd.DataFrame(rows)
    table["seed"] = table["seed"].astype("Int64")  # the base has none
    return table, pd.DataFrame(texts)
