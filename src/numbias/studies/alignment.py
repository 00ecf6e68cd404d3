"""The alignment study: base vs aligned judges on the same items, under the paper's
sampling protocol and under the exact expected value, laid out like the paper's
main table, plus the kurtosis–accuracy correlation across all settings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from numbias.backends import Backend
from numbias.core.distribution import ScoreDistribution, stack
from numbias.core.inference import ALPHA, Statistic, paired_effect, resamples_for
from numbias.core.metrics import RULES, Interval, bootstrap, item_scores, kurtosis, kurtosis_rows, pearson_rows
from numbias.core.sampling import categorize, protocol_score
from numbias.core.scale import PAPER_SCALE, ScoreScale
from numbias.data.prompt import Prompt
from numbias.judge.config import (
    Folder,
    JudgeConfig,
    JudgeList,
    JudgeRef,
    RunConfig,
    SamplingConfig,
    ScaleList,
    Settings,
    TaskConfig,
    TaskList,
    validate_config,
)
from numbias.judge.judging import Progress, ScoredSet, no_progress
from numbias.models.catalog import DEFAULT_JUDGE
from numbias.studies.bias import StudyResults, run
from numbias.studies.stages import DiversityConfig, adjust_columns, diversity, effect_columns, item_matrix, stage_table

EMBEDDED_PAIR_NOTE = (
    "cross-family, cross-size contrast (Gemma 3 270M base vs SmolLM2 135M instruct): no "
    "same-model base/instruct pair ships in the registry"
)


class PairConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    base: JudgeRef
    aligned: JudgeRef
    note: str | None = None

    @model_validator(mode="after")
    def _distinct(self) -> PairConfig:
        if self.base.name == self.aligned.name:
            raise ValueError(f"pair names the same judge twice ({self.base.name!r})")
        return self


class AlignConfig(Settings):
    model_config = ConfigDict(extra="forbid")
    pairs: list[PairConfig] = Field(
        default_factory=lambda: [
            PairConfig(base="gemma3-270m-base", aligned="smollm2-135m-instruct", note=EMBEDDED_PAIR_NOTE)
        ]
    )
    extra_aligned: JudgeList = Field(default_factory=lambda: [JudgeConfig(model=DEFAULT_JUDGE)])
    tasks: TaskList = Field(default_factory=lambda: [TaskConfig(name="vader")])
    scales: ScaleList = Field(default_factory=lambda: [PAPER_SCALE, "1-5"])
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    sample: bool = True
    """Run the sampling protocol on the models too; when off, the protocol's rows are
    its exact expectation at the sampling temperature (no sampling noise, no extra cost)."""
    simulations: int = Field(200, ge=10)
    out: Folder = "numbias-align"
    store: str | None = None
    seed: int = 0
    bootstrap: int = 1000
    diversity: DiversityConfig | None = None
    """Free generations of every judge on held-out instructions, for distinct-n."""
    workers: int | None = Field(None, ge=1)
    """Processes a judge's missing items are sharded over (None: one per core for a CPU
    llama.cpp judge, at most 4, each with its share of the threads; 1: one process).
    The results do not depend on it."""

    @model_validator(mode="after")
    def _protocol_can_read(self) -> AlignConfig:
        for text in self.scales:
            scale = ScoreScale.parse(text)
            if scale.numeric and len(str(scale.hi)) > self.sampling.max_tokens:
                raise ValueError(
                    f"scale {scale} needs {len(str(scale.hi))} digits but the protocol reads at most "
                    f"{self.sampling.max_tokens} new tokens"
                )
        return self

    @model_validator(mode="after")
    def _one_judge_per_name(self) -> AlignConfig:
        seen: dict[str, JudgeConfig] = {}
        for judge in self._named():
            if seen.setdefault(judge.name, judge) != judge:
                raise ValueError(f"two different judges share the name {judge.name!r}: give each a distinct label")
        return self

    def _named(self) -> list[JudgeConfig]:
        return [j for pair in self.pairs for j in (pair.base, pair.aligned)] + list(self.extra_aligned)

    def study(self) -> RunConfig:
        judges: dict[str, JudgeConfig] = {}
        for judge in self._named():  # a judge in several pairs is scored once
            judges.setdefault(judge.name, judge)
        return RunConfig(
            judges=list(judges.values()),
            tasks=self.tasks,
            scales=self.scales,
            rules=["expected", "protocol"],
            modes=["exact", "sampled"] if self.sample else ["exact"],
            sampling=self.sampling,
            out=self.out,
            store=self.store,
            seed=self.seed,
            bootstrap=self.bootstrap,
            workers=self.workers,
        )


@dataclass
class AlignResults:
    config: AlignConfig
    study: StudyResults
    table: pd.DataFrame
    correlation: dict[str, Interval]
    simulated: pd.DataFrame
    shift: pd.DataFrame
    stages: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Each trained stage against the base and its seed spread (:func:`stage_table`)."""
    diversity: pd.DataFrame = field(default_factory=pd.DataFrame)
    generations: pd.DataFrame = field(default_factory=pd.DataFrame)


def simulate_sample_mean_kurtosis(s: ScoredSet, n: int, runs: int, seed: int) -> np.ndarray:
    """Kurtosis across items of the n-sample protocol mean, drawn from the stored
    exact distributions at the protocol's temperature (clipped, non-numbers
    dropped): no model calls."""
    probs, rest = stack(s.at(s.protocol_temperature))
    clipped = probs.copy()
    clipped[:, 0] += rest[:, 0]
    clipped[:, -1] += rest[:, 1]
    mass = clipped.sum(axis=1, keepdims=True)
    keep = mass[:, 0] > 0
    cdf = np.cumsum(clipped[keep] / mass[keep], axis=1)
    rng = np.random.default_rng(seed)
    out = np.empty(runs)
    for r in range(runs):
        u = rng.random((len(cdf), n))
        idx = (u[:, :, None] > cdf[:, None, :]).sum(axis=2).clip(max=s.scale.size - 1)
        out[r] = kurtosis(s.scale.values[idx].mean(axis=1))
    return out


def noise_band(dists: list[ScoreDistribution], counts: np.ndarray, runs: int, seed: int) -> tuple[float, float]:
    """2.5% and 97.5% of Pearson(mean of ``counts[i]`` draws, expectation) when the
    draws come from each item's exact numeric distribution (clipped)."""
    probs, rest = stack(dists)
    scale = dists[0].scale
    clipped = probs.copy()
    clipped[:, 0] += rest[:, 0]
    clipped[:, -1] += rest[:, 1]
    clipped /= clipped.sum(axis=1, keepdims=True)
    expect = clipped @ scale.values
    rng = np.random.default_rng(seed)
    rs = []
    for _ in range(runs):
        means = np.array(
            [rng.choice(scale.values, size=c, p=p).mean() if c else np.nan for p, c in zip(clipped, counts)]
        )
        keep = ~np.isnan(means)
        rs.append(float(pearson_rows(means[keep], expect[keep])))
    return float(np.percentile(rs, 2.5)), float(np.percentile(rs, 97.5))


def protocol_agreement(
    backend: Backend, prompts: list[Prompt], scale: ScoreScale, sampling: SamplingConfig, *, runs: int = 200
) -> dict[str, Any]:
    """The protocol's item means against the exact expectation at the same T, under
    the protocol's reading and under the exact distribution's own reading, each with
    the 95% band of Pearson r that sampling noise alone allows; and the total
    variation between pooled sampled categories and the exact distributions."""
    temperature = sampling.temperature
    exact = [d.at(temperature) for d in backend.score(prompts, scale)]
    texts = list(
        backend.sample(
            prompts, n=sampling.n, temperature=temperature, max_tokens=sampling.max_tokens, seed=sampling.seed
        )
    )
    probs, rest = stack(exact)
    expect = item_scores(probs, rest, scale, "protocol")
    out: dict[str, Any] = {}
    for reading, read in (("protocol", lambda t: protocol_score(t, scale)), ("exact reading", None)):
        means, counts = [], []
        for answers in texts:
            if read is not None:
                values = [v for v, _ in filter(None, map(read, answers))]
            else:
                cats = [categorize(t, scale) for t in answers]
                values = [
                    scale.lo if c == scale.size else scale.hi if c == scale.size + 1 else scale.lo + c
                    for c in cats
                    if c < scale.size + 2
                ]
            counts.append(len(values))
            means.append(np.mean(values) if values else np.nan)
        m = np.array(means)
        keep = ~np.isnan(m) & ~np.isnan(expect)
        r = float(pearson_rows(m[keep], expect[keep]))
        low, high = noise_band(exact, np.array(counts), runs=runs, seed=sampling.seed)
        out[reading] = {
            "pearson": r,
            "mad": float(np.abs(m[keep] - expect[keep]).mean()),
            "band": (low, high),
            "numeric answers": float(np.mean(counts)) / sampling.n,
        }
    sampled = np.zeros(scale.size + 3)
    for answers in texts:
        for t in answers:
            sampled[categorize(t, scale)] += 1
    sampled /= sampled.sum()
    pooled = np.hstack([probs, rest]).mean(axis=0)
    out["tv"] = float(0.5 * np.abs(sampled - pooled).sum())
    return out


def kurtosis_accuracy(
    summary: pd.DataFrame, rules: Sequence[str], n_boot: int = 1000, seed: int = 0
) -> dict[str, Interval]:
    """Pearson correlation between kurtosis and Pearson r across a summary's settings
    (judge × task × scale), per rule, with a bootstrap CI over settings: the paper's
    −0.60. Summaries of studies run in parts can be concatenated first."""
    correlation = {}
    for rule in rules:
        part = summary[summary.rule == rule].dropna(subset=["kurtosis", "pearson"])
        if len(part) >= 3:
            correlation[rule] = bootstrap(
                part["kurtosis"].to_numpy(), part["pearson"].to_numpy(), pearson_rows, n_boot=n_boot, seed=seed
            )
    return correlation


def paired_shift(table: pd.DataFrame) -> pd.DataFrame:
    """How each aligned judge moves from its base, setting by setting (pair × task ×
    scale), per scoring: the paper's claim is paired (alignment raises bias and costs accuracy),
    and a correlation across settings can hide a consistent within-pair direction when
    tasks' base levels differ. Directions are counted, and, where the table has its
    tests (``Δ kurtosis p adj``, ``Δ r p adj``), how many of them the adjusted test
    confirms. Takes alignment tables, concatenated if run in parts (then re-adjust
    each measure as one family with :func:`adjust_table`)."""
    rows = []
    tested = {"Δ kurtosis p adj", "Δ r p adj"} <= set(table.columns)
    for scoring, part in table.groupby("scoring", sort=False):
        part = part.dropna(subset=["base kurtosis", "aligned kurtosis", "base r", "aligned r"])
        if part.empty:
            continue
        peaked = part["aligned kurtosis"] > part["base kurtosis"]
        worse = part["aligned r"] < part["base r"]
        row = {
            "scoring": scoring,
            "settings": len(part),
            "more peaked": int(peaked.sum()),
            "less accurate": int(worse.sum()),
            "both": int((peaked & worse).sum()),
            "median Δ kurtosis": float((part["aligned kurtosis"] - part["base kurtosis"]).median()),
            "median Δ r": float((part["aligned r"] - part["base r"]).median()),
        }
        if tested:
            row |= {
                "more peaked, adjusted p < 0.05": int((peaked & (part["Δ kurtosis p adj"] < ALPHA)).sum()),
                "less accurate, adjusted p < 0.05": int((worse & (part["Δ r p adj"] < ALPHA)).sum()),
            }
        rows.append(row)
    return pd.DataFrame(rows)


COMPARED = ("Δ kurtosis", "Δ r")
"""The align table's tests, each one family over all its rows."""
COMPARED_STATISTICS: tuple[Statistic, Statistic] = (kurtosis_rows, pearson_rows)
"""The statistic of each of ``COMPARED``."""


def adjust_table(table: pd.DataFrame) -> pd.DataFrame:
    """The alignment table's p-values Holm-adjusted over all its rows, one family per
    measure of :data:`COMPARED` (a table pooled from several folders is one table)."""
    return adjust_columns(table, COMPARED)


def align(config: AlignConfig | dict[str, Any] | None = None, *, progress: Progress = no_progress) -> AlignResults:
    """Run the study over every pair's judges and lay the pairs side by side: does the
    aligned judge's score distribution have more kurtosis, and less accuracy?

    >>> import tempfile
    >>> import numpy as np, pandas as pd
    >>> import numbias
    >>> from numbias.backends.fake import FakeBackend
    >>> from numbias.data.dataset import make_dataset
    >>> def judge(name, answer):  # answer(word) is the score, then the answer ends
    ...     def logits(prompt, tokens):
    ...         row = np.full(11, -50.0)
    ...         row[10 if tokens else answer(prompt.user.split()[-1])] = 0.0
    ...         return row
    ...     backend = FakeBackend([*"0123456789", ""], logits, eos=10)
    ...     backend.identity["model"] = name  # the store keeps answers under a judge's identity
    ...     return backend
    >>> base, aligned = judge("base", len), judge("aligned", lambda word: 1 if word == "bad" else 7)
    >>> words = pd.DataFrame({"id": [*"abcdef"], "word": ["bad", "okay", "nice", "great", "superb", "fab"],
    ...                       "human": [1, 2, 3, 4, 5, 4]})
    >>> task = {"dataset": make_dataset("words", words, fields=["word"], human_range=(1, 5)),
    ...         "template": "Rate from {lo} to {hi}: {word}"}
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     res = numbias.align({"pairs": [{"base": base, "aligned": aligned}], "extra_aligned": [], "tasks": [task],
    ...                          "scales": ["0-9"], "sample": False, "simulations": 10, "bootstrap": 20, "out": tmp})
    >>> res.table["scoring"].tolist()
    ['protocol expectation (exact, T=0.7)', 'exact expected']
    >>> res.table[["base kurtosis", "aligned kurtosis", "base r", "aligned r"]].round(2)
       base kurtosis  aligned kurtosis  base r  aligned r
    0          -1.01               1.2    0.68       0.72
    1          -1.01               1.2    0.68       0.72
    """
    if not isinstance(config, AlignConfig):
        config = parse_align(config or {})
    results = run(config.study(), progress=progress)
    spread, texts = (
        diversity(config.diversity, config.study().judges, progress)
        if config.diversity
        else (pd.DataFrame(), pd.DataFrame())
    )
    return align_results(config, results, spread, texts)


def align_results(
    config: AlignConfig, results: StudyResults, spread: pd.DataFrame, texts: pd.DataFrame
) -> AlignResults:
    """The pairs laid side by side from a study's results and the judges' free
    generations (apart from :func:`align`, so a results folder's files recompute them)."""
    table = pair_table(config, results)
    correlation = kurtosis_accuracy(
        results.summary, (config.sampling.label, "expected", "protocol"), config.bootstrap, config.seed
    )
    judges = config.study().judges
    return AlignResults(
        config,
        results,
        table,
        correlation,
        simulated_kurtosis(config, results),
        paired_shift(table),
        stage_table(
            judges,
            results.summary,
            results.items,
            ranges={s.task: s.data.human_range for s in results.sets},
            n_boot=config.bootstrap,
            seed=config.seed,
        ),
        spread,
        texts,
    )


def _pair_settings(config: AlignConfig, results: StudyResults) -> list[tuple[str, str, str, str, str, str, str]]:
    """(base, aligned, note, task, scale, scoring, rule) of every row of the pair table,
    listed first because their number sets the bootstrap's resamples."""
    sampled_label = config.sampling.label
    protocol_rows = [("paper protocol " + sampled_label, sampled_label)] if config.sample else []
    protocol_rows.append((f"protocol expectation (exact, T={config.sampling.temperature:g})", "protocol"))
    pairs = [(p.base.name, p.aligned.name, p.note or "") for p in config.pairs]
    pairs += [(config.pairs[0].base.name, j.name, "further aligned judge") for j in config.extra_aligned]
    return [
        (base, aligned, note, task, scale, protocol, rule)
        for base, aligned, note in pairs
        for task in dict.fromkeys(s.task for s in results.sets)
        for scale in results.config.scales
        for protocol, rule in [*protocol_rows, ("exact expected", "expected")]
    ]


def pair_table(config: AlignConfig, results: StudyResults) -> pd.DataFrame:
    """One row per pair × task × scale × scoring: each judge's kurtosis and accuracy,
    the aligned judge's change in both (paired item bootstrap, Holm over the table's
    rows, one family per change: :func:`adjust_table`), and the measures jitter and format cannot
    fool (SD ratio, mode share, out-of-scale and non-numeric mass) for both judges."""
    summary = results.summary
    settings = _pair_settings(config, results)
    n_boot = resamples_for(len(settings), config.bootstrap)
    rows = []
    for base, aligned, note, task, scale, protocol, rule in settings:
        b, a = (
            summary[
                (summary.judge == j) & (summary.task == task) & (summary.scale == scale) & (summary.rule == rule)
            ].iloc[0]
            for j in (base, aligned)
        )
        scores, human = item_matrix(
            results.items, task, scale, "exact" if rule in RULES else rule, rule, [base, aligned]
        )
        effects = {
            key: paired_effect(stat, scores[0], scores[1], human, n_boot=n_boot, seed=config.seed)
            for key, stat in zip(COMPARED, COMPARED_STATISTICS)
        }
        rows.append(
            {
                "base": base,
                "aligned": aligned,
                "task": task,
                "scale": scale,
                "scoring": protocol,
                "human kurtosis": b["human_kurtosis"],
                "base kurtosis": b["kurtosis"],
                "aligned kurtosis": a["kurtosis"],
                "base r": b["pearson"],
                "aligned r": a["pearson"],
                "items": effects["Δ r"].items,
                **{k: v for key, e in effects.items() for k, v in effect_columns(key, e).items()},
                "base group r": b["group_pearson"],
                "aligned group r": a["group_pearson"],
                **{
                    f"{who} {label}": row.get(key, np.nan)
                    for label, key in JITTER.items()
                    for who, row in (("base", b), ("aligned", a))
                },
                "humans in aligned mode's bin": a.get("human_mode_share", np.nan),
                "note": note,
            }
        )
    table = adjust_table(pd.DataFrame(rows))
    if table[["base group r", "aligned group r"]].isna().all().all():
        table = table.drop(columns=["base group r", "aligned group r"])
    return table


JITTER = {
    "SD ratio": "sd_ratio",
    "mode share": "mode_share",
    "out-of-scale": "out_of_scale",
    "non-numeric": "non_numeric",
}
"""The align table's measures that jitter and format cannot fool, by column label and summary key."""


def simulated_kurtosis(config: AlignConfig, results: StudyResults) -> pd.DataFrame:
    """Per exact set: the kurtosis the paper's n-sample protocol would show, simulated."""
    sims = []
    for s in results.sets:
        if s.mode != "exact":
            continue
        k = simulate_sample_mean_kurtosis(s, config.sampling.n, config.simulations, config.seed)
        k = k[~np.isnan(k)]
        sims.append(
            {
                "judge": s.judge,
                "task": s.task,
                "scale": str(s.scale),
                "n": config.sampling.n,
                "simulated kurtosis (mean)": float(k.mean()) if len(k) else np.nan,
                "2.5%": float(np.percentile(k, 2.5)) if len(k) else np.nan,
                "97.5%": float(np.percentile(k, 97.5)) if len(k) else np.nan,
            }
        )
    return pd.DataFrame(sims)


def parse_align(data: dict[str, Any]) -> AlignConfig:
    return validate_config(AlignConfig, data, "align config")
