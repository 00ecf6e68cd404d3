"""The controlled-alignment views of an alignment study whose judges are one base and
the stages ``numbias train`` made from it: each stage's bias and accuracy against the
base, with the spread over training seeds as the band an effect must leave, and each
judge's output diversity (distinct-n of free generations on instructions that no
trained stage saw), the mechanism the research points to."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from numbias.config import JudgeConfig
from numbias.errors import NumbiasError
from numbias.judge import Judge, Progress, no_progress
from numbias.models import trained_stage
from numbias.prompt import Prompt
from numbias.train import instruction_text, read_records

METRICS = ("kurtosis", "entropy", "mode_share", "pearson", "next_token_entropy")
"""What the stage table compares: the score distribution's peakedness, spread and
pile-up, accuracy, and how spread the whole next-token distribution is at the answer."""


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


def stage_table(judges: Sequence[JudgeConfig], summary: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    """Per task × scale × rule × stage: each metric's mean over seeds, its seed spread
    (sd), the change from the base, and whether every seed moved the same way by more
    than twice the spread; then DPO after SFT against the SFT model of the same seed
    (``against`` says which). Empty when no judge is a trained stage."""
    labels = {j.name: stage_of(j) for j in judges}
    if all(stage == "base" for stage, _ in labels.values()):
        return pd.DataFrame()
    frame = summary.assign(stage=summary.judge.map(lambda n: labels.get(n, ("base", None))[0]),
                           seed=summary.judge.map(lambda n: labels.get(n, ("base", None))[1]))
    if "next_token_entropy" in items:
        exact = items[items["mode"] == "exact"].groupby(["judge", "task", "scale"])["next_token_entropy"].mean()
        frame["next_token_entropy"] = [exact.get((j, t, s), np.nan)
                                       for j, t, s in zip(frame.judge, frame.task, frame.scale)]
    else:
        frame["next_token_entropy"] = np.nan
    rows = []
    for (task, scale, rule), part in frame.groupby(["task", "scale", "rule"], sort=False):
        base = part[part.stage == "base"]
        if len(base) != 1:
            continue
        key = {"task": task, "scale": scale, "rule": rule}
        for stage, runs in part[part.stage != "base"].groupby("stage", sort=False):
            rows.append({**key, "stage": stage, "against": "base", "seeds": len(runs),
                         "base mode": base["mode"].iloc[0], "mode": _most_common(runs["mode"]),
                         **_effects(runs, {m: np.full(len(runs), float(base[m].iloc[0])) for m in METRICS})})
        sft, dpo = (part[part.stage == s].set_index("seed") for s in ("SFT", "SFT+DPO"))
        seeds = [s for s in dpo.index if s in sft.index]
        if seeds:
            rows.append({**key, "stage": "SFT+DPO", "against": "SFT, same seed", "seeds": len(seeds),
                         "base mode": _most_common(sft.loc[seeds, "mode"]),
                         "mode": _most_common(dpo.loc[seeds, "mode"]),
                         **_effects(dpo.loc[seeds], {m: sft.loc[seeds, m].to_numpy(dtype=float) for m in METRICS})})
    return pd.DataFrame(rows)


def _effects(runs: pd.DataFrame, reference: dict[str, np.ndarray]) -> dict[str, float | bool]:
    """Each metric of the runs against its reference value for the same seed (the
    base's, repeated, or the earlier stage's)."""
    out: dict[str, float | bool] = {}
    for metric in METRICS:
        values = runs[metric].to_numpy(dtype=float)
        delta = values - reference[metric]
        sd = float(values.std(ddof=1)) if len(values) > 1 else np.nan
        out |= {f"base {metric}": float(reference[metric].mean()), metric: float(values.mean()),
                f"{metric} seed sd": sd, f"Δ {metric}": float(delta.mean()),
                f"Δ {metric} beyond spread": bool(len(values) > 1 and (np.all(delta > 0) or np.all(delta < 0))
                                                  and abs(delta.mean()) > 2 * sd)}
    return out


def effect_text(row: Mapping[str, Any], metric: str) -> str:
    """One metric of a :func:`stage_table` row as text: reference → the stage's mean ±
    its seed sd (when there is a spread), ``*`` when the move is beyond the spread."""
    sd = row[f"{metric} seed sd"]
    spread = f" ± {sd:.2f}" if np.isfinite(sd) else ""
    mark = " *" if row[f"Δ {metric} beyond spread"] else ""
    return f"{row[f'base {metric}']:.2f} → {row[metric]:.2f}{spread}{mark}"


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
    grams = [tuple(words[i:i + n]) for text in texts for words in [text.lower().split()]
             for i in range(len(words) - n + 1)]
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
        raise NumbiasError(f"diversity: {path} has {len(free)} instructions no trained stage saw, "
                           f"fewer than n={config.n}")
    drawn = np.random.default_rng(config.seed).permutation(len(free))[: config.n]
    return [instruction_text(free[i]) for i in drawn]


def diversity(config: DiversityConfig, judges: Sequence[JudgeConfig],
              progress: Progress = no_progress) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each judge's free generations on the held-out instructions and their distinct-1,
    distinct-2 and mean length in words: one row per judge, and the texts."""
    instructions = held_out(config, judges)
    prompts = [Prompt(text) for text in instructions]  # rendered plainly, as the stages were trained
    rows, texts = [], []
    for judge in judges:
        backend = Judge(judge).backend
        out = []
        with progress(f"generate {judge.name}", len(prompts)) as advance:
            for answers in backend.sample(prompts, n=1, temperature=config.temperature,
                                          max_tokens=config.max_tokens, seed=config.seed):
                out.append(answers[0])
                advance(1)
        stage, seed = stage_of(judge)
        rows.append({"judge": judge.name, "stage": stage, "seed": seed, "generations": len(out),
                     "distinct-1": distinct_n(out, 1), "distinct-2": distinct_n(out, 2),
                     "mean words": float(np.mean([len(t.split()) for t in out])),
                     "empty": float(np.mean([not t.strip() for t in out]))})
        texts += [{"judge": judge.name, "instruction": i, "generation": t} for i, t in zip(instructions, out)]
    table = pd.DataFrame(rows)
    table["seed"] = table["seed"].astype("Int64")  # the base has none
    return table, pd.DataFrame(texts)
