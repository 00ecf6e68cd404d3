"""The verdict a report opens with: for each judge × task, the few figures that say
whether the judge is biased, on which score, what that costs in accuracy and what
to do about it, and the sentences that say it.

Every figure is read from the results' own tables (the study's summary, the
mitigation table) or from the same item scores they were computed from, so the
headline and the tables below it cannot disagree."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from numbias.core.inference import UNDEFINED, Effect, adjust, paired_effect, resamples_for
from numbias.core.metrics import (
    Interval,
    histogram,
    is_rule,
    kurtosis,
    kurtosis_rows,
    mode_excess_rows,
    to_scale,
)
from numbias.core.scale import PAPER_SCALE, ScoreScale, setting_scale
from numbias.judge.judging import ScoredSet
from numbias.mitigations.selection import (
    CHOICE_ROW,
    DEFAULT_ROW,
    FREE_ROW,
    PAPER_DEFAULT,
    PRESPECIFIED,
    PRESPECIFIED_ROW,
)
from numbias.studies.alignment import AlignResults
from numbias.studies.bias import StudyResults
from numbias.studies.mitigation import Comparison, MitigateResults
from numbias.util.errors import NumbiasError
from numbias.util.fmt import fmt_num, fmt_p

Tile = tuple[str, str, str]
"""A headline figure: what it is, its value, and what to read it against."""


FLAT = 0.2
"""Below this SD ratio (judge over humans, unit scale) the judge barely varies."""
FORMAT = 0.25
"""From this mean out-of-scale plus non-numeric mass on, the answers are format failures first."""


def level(
    share: float,
    human_share: float,
    kurt: float,
    human_kurt: float,
    *,
    sd_ratio: float = float("nan"),
    format_mass: float = 0.0,
    beyond_noise: bool = True,
) -> str:
    """How biased: ``format`` when a quarter of the answer mass or more is outside the
    scale or not a number (what piles up is then the protocol's clipping), ``flat`` when
    the judge's SD is under 0.2 of the humans' (its kurtosis describes jitter),
    ``noise`` when no excess over the humans survives the adjusted tests; else
    ``strong`` when the judge's favourite score takes 20 points more of the items than
    the humans give it (or kurtosis is 3 above theirs), ``some`` at 8 points (or 1
    above), else ``little``.

    >>> level(0.46, 0.09, 3.1, -0.4), level(0.2, 0.1, 0.1, 0.0), level(0.12, 0.1, 0.0, -0.2)
    ('strong', 'some', 'little')
    >>> level(0.46, 0.09, 3.1, -0.4, sd_ratio=0.05), level(0.46, 0.09, 3.1, -0.4, format_mass=0.6)
    ('flat', 'format')
    >>> level(0.46, 0.09, 3.1, -0.4, beyond_noise=False)
    'noise'
    """
    if format_mass >= FORMAT:
        return "format"
    if sd_ratio < FLAT:
        return "flat"
    if not beyond_noise:
        return "noise"
    excess, peak = share - human_share, kurt - human_kurt
    if excess >= 0.2 or peak >= 3:
        return "strong"
    return "some" if excess >= 0.08 or peak >= 1 else "little"


LEVEL_WORDS = {
    "strong": "strongly biased",
    "some": "somewhat biased",
    "little": "little numerical bias",
    "noise": "within noise",
    "flat": "the judge barely varies",
    "format": "format failures",
}


def _r(iv: Interval) -> str:
    return f"r = {fmt_num(iv.value)} [{fmt_num(iv.low)}, {fmt_num(iv.high)}]"


def score_label(scale: str, value: float) -> str:
    """A score as a reader sees it: the number on a scale of numbers, the label the judge
    writes on a scale of labels or of reversed digits.

    >>> score_label("0-9", 7.0), score_label("words:poor,fair,good", 2.0), score_label("reversed:1-5", 5.0)
    ('7', 'fair', '1')
    """
    parsed = setting_scale(scale)
    return fmt_num(value, 0) if parsed.plain or not np.isfinite(value) else parsed.label_of(value)


def _pile(mode_text: str, share: float, human_share: float, what: str) -> str:
    """The sentence on the judge's favourite score against the humans' share there."""
    if share > human_share:
        times = f", {share / human_share:.1f}× as often" if human_share > 0 else ", a score they never give"
        return (
            f"{what} is {mode_text} for {fmt_num(share, percent=True)} of the items; the humans' scores fall in "
            f"that bin for {fmt_num(human_share, percent=True)}{times}."
        )
    return (
        f"{what} is most often {mode_text} ({fmt_num(share, percent=True)} of the items), no more than the "
        f"humans' {fmt_num(human_share, percent=True)} in that bin."
    )


def _peak(kurt: float, human_kurt: float, sd_ratio: float = float("nan")) -> str:
    if sd_ratio < FLAT:
        why = (
            f", so its excess kurtosis of {fmt_num(kurt)} describes jitter, not a pile-up"
            if np.isfinite(kurt)
            else ": it gives every item the same score"
        )
        return (
            f"The judge barely varies: the SD of its scores is {fmt_num(sd_ratio)} of the humans' (both on the "
            f"unit scale){why}."
        )
    if np.isnan(kurt):
        return "It gives every item the same score."
    return f"Excess kurtosis of its scores: {fmt_num(kurt)}, against the humans' {fmt_num(human_kurt)}."


def _tested(effect: Effect) -> str:
    """`` (+0.37 [+0.25, +0.49], adjusted p <0.001)``: an excess over the humans with its test."""
    if not np.isfinite(effect.p):
        return ""
    p = effect.p_adjusted if np.isfinite(effect.p_adjusted) else effect.p
    return f" (excess {effect.text()}, adjusted p {fmt_p(p)}{'' if effect.significant() else ': within noise'})"


def _format(out_of_scale: float, non_numeric: float, rule: str) -> str:
    """The sentence that reads a large out-of-scale or non-numeric mass as what it is."""
    clip = (
        " The protocol clips numbers outside the scale to its ends, so a pile-up at an end is that clipping, "
        "not a preference."
        if rule == "protocol" or rule.startswith("sampled")
        else ""
    )
    return (
        f"Format failures first: on average {fmt_num(out_of_scale, percent=True)} of its answer mass is a number "
        f"outside the scale and {fmt_num(non_numeric, percent=True)} is not a number.{clip}"
    )


@dataclass(frozen=True)
class StudyVerdict:
    """One judge × task of a study, at its headline scale (the paper's 0–9 when
    measured) and its answer rule (greedy, else the sampled or exact protocol)."""

    judge: str
    task: str
    scale: str
    rule: str
    mode: float
    share: float
    human_share: float
    kurtosis: float
    human_kurtosis: float
    answer: Interval
    expected: Interval | None
    best_scale: str
    best_rule: str
    best: Interval
    """The most accurate setting of the study for this judge × task."""
    ceiling: float
    sd_ratio: float = float("nan")
    out_of_scale: float = float("nan")
    non_numeric: float = float("nan")
    excess_share: Effect = UNDEFINED
    """The judge's share of its favourite score minus the humans' share of that bin, tested."""
    excess_kurtosis: Effect = UNDEFINED
    """The judge's excess kurtosis minus the humans', tested."""

    @property
    def format_mass(self) -> float:
        return float(np.nan_to_num(self.out_of_scale) + np.nan_to_num(self.non_numeric))

    @property
    def beyond_noise(self) -> bool:
        """Whether an adjusted test finds the judge's pile-up or peak apart from the
        humans' (True when neither could be tested, so the figures speak)."""
        tests = [e for e in (self.excess_share, self.excess_kurtosis) if np.isfinite(e.p)]
        return not tests or any(e.significant() for e in tests)

    @property
    def level(self) -> str:
        return level(
            self.share,
            self.human_share,
            self.kurtosis,
            self.human_kurtosis,
            sd_ratio=self.sd_ratio,
            format_mass=self.format_mass,
            beyond_noise=self.beyond_noise,
        )

    @property
    def named(self) -> str:
        """The answer rule in words: a sampled label (``sampled(n=10,T=0.7)``) reads "sampled"."""
        return "sampled" if self.rule.startswith("sampled") else self.rule

    def tiles(self) -> list[Tile]:
        tiles = [
            (
                f"most given score ({self.scale})",
                score_label(self.scale, self.mode),
                f"{fmt_num(self.share, percent=True)} of items · humans {fmt_num(self.human_share, percent=True)}",
            ),
            ("excess kurtosis", fmt_num(self.kurtosis), f"humans {fmt_num(self.human_kurtosis)}"),
            (
                f"r, {self.named} answer",
                fmt_num(self.answer.value),
                f"[{fmt_num(self.answer.low)}, {fmt_num(self.answer.high)}]",
            ),
        ]
        if self.expected is not None:
            tiles.append(
                (
                    "r, expected score",
                    fmt_num(self.expected.value),
                    f"[{fmt_num(self.expected.low)}, {fmt_num(self.expected.high)}]",
                )
            )
        tiles.append(
            (
                "SD ratio (judge / humans)",
                fmt_num(self.sd_ratio),
                f"out of scale {fmt_num(self.out_of_scale, percent=True)} · non-numeric "
                f"{fmt_num(self.non_numeric, percent=True)}",
            )
        )
        return tiles

    def finding(self) -> str:
        sampled = f" ({self.rule}: the paper's protocol, sampled)" if self.named != self.rule else ""
        pile = _pile(
            score_label(self.scale, self.mode),
            self.share,
            self.human_share,
            f"At {self.scale}, its {self.named} answer{sampled}",
        )
        peak = _peak(self.kurtosis, self.human_kurtosis, self.sd_ratio)
        text = [
            *([_format(self.out_of_scale, self.non_numeric, self.rule)] if self.level == "format" else []),
            pile.removesuffix(".") + _tested(self.excess_share) + ".",
            peak if self.sd_ratio < FLAT else peak.removesuffix(".") + _tested(self.excess_kurtosis) + ".",
        ]
        answer = (
            f"Its {self.named} answer correlates with the humans at {_r(self.answer)}"
            if np.isfinite(self.answer.value)
            else f"Its {self.named} answer carries no ranking (no r)"
        )
        if self.expected is not None and np.isfinite(self.expected.value):
            gap = self.expected.value - self.answer.value
            how = (
                ""
                if np.isnan(gap)
                else f", {gap:+.2f} from reading the whole distribution"
                if gap >= 0.02
                else ", no better than the answer"
                if gap > -0.02
                else ", below the answer"
            )
            answer += f"; the exact expected score of the same distributions reaches {_r(self.expected)}{how}"
        text.append(answer + (f" (human ceiling {fmt_num(self.ceiling)})." if np.isfinite(self.ceiling) else "."))
        return " ".join(text)

    def advice(self) -> str:
        gain = self.best.value - np.nan_to_num(self.answer.value, nan=-np.inf)
        where = "" if self.best_scale == self.scale else f"ask on {self.best_scale} and "
        by = f", {gain:+.2f}" if np.isfinite(gain) else ""
        first = (
            f"{where}read the {self.best_rule} score rather than the {self.named} answer at {self.scale}: "
            f"{_r(self.best)}{by}."
            if gain >= 0.02 and np.isfinite(self.best.value)
            else f"the {self.named} answer at {self.scale} is as accurate as any setting measured here."
            if np.isfinite(self.best.value)
            else "no setting measured here has a defined r (undefined: the "
            "human or judge scores are constant, or there are too few items), so accuracy cannot pick one."
        )
        fix = {
            "format": "Fix the answer format before reading bias (an answer prefix, a stricter template), or "
            "read the exact expected score, which leaves out-of-scale and non-numeric mass out. ",
            "flat": "A judge whose scores barely vary ranks items poorly whatever its kurtosis: try another "
            "scale or the exact expected score. ",
        }.get(self.level, "")
        return (
            f"{fix}{first[0].upper()}{first[1:]} To choose a setting on held-out items (temperature, "
            "calibration, score range) and prove it on others, run numbias mitigate on this judge and task."
        )


def answer_rule(rules: Sequence[str]) -> str:
    """What reads as the judge's answer: greedy, else the sampled protocol, else its exact expectation.

    >>> answer_rule(["expected", "protocol", "sampled(n=10,T=0.7)"])
    'sampled(n=10,T=0.7)'
    """
    for pick in ("greedy", *[r for r in rules if r.startswith("sampled")], "protocol"):
        if pick in rules:
            return pick
    return rules[0]


def _interval(row: pd.Series, key: str) -> Interval:
    return Interval(float(row[key]), float(row[f"{key}_low"]), float(row[f"{key}_high"]))


def study_verdicts(results: StudyResults) -> list[StudyVerdict]:
    """A verdict per judge × task, every figure from the summary row it names (the
    humans' share in the judge's favourite bin from the same items); the excess of its
    pile-up and of its kurtosis over the humans' tested by a paired item bootstrap,
    Holm-adjusted over all verdicts × both tests."""
    verdicts = _verdicts(results)
    n_boot = resamples_for(2 * len(verdicts), results.config.bootstrap)
    tests = adjust([e for v in verdicts for e in excess(results, v, n_boot)])
    return [replace(v, excess_share=tests[2 * k], excess_kurtosis=tests[2 * k + 1]) for k, v in enumerate(verdicts)]


def excess(results: StudyResults, v: StudyVerdict, n_boot: int) -> tuple[Effect, Effect]:
    """The judge's share of its favourite bin and its kurtosis, each minus the humans'
    (mapped onto the scale) on the same items, with paired item-bootstrap intervals (the
    favourite bin chosen again on every resample)."""
    s, scores = rule_scores(results, v.judge, v.task, v.scale, v.rule)
    human = to_scale(s.data.human, s.data.human_range, s.scale)
    seed = results.config.seed
    return (
        paired_effect(mode_excess_rows(s.scale), human, scores, human, n_boot=n_boot, seed=seed),
        paired_effect(kurtosis_rows, human, scores, human, n_boot=n_boot, seed=seed),
    )


def _verdicts(results: StudyResults) -> list[StudyVerdict]:
    """The untested verdicts, one per judge × task, from the summary."""
    out = []
    summary = results.summary
    for (judge, task), rows in summary.groupby(["judge", "task"], sort=False):
        scales = list(dict.fromkeys(rows["scale"]))
        scale = PAPER_SCALE if PAPER_SCALE in scales else scales[0]
        at = rows[rows["scale"] == scale].set_index("rule")
        rule = answer_rule(list(at.index))
        row = at.loc[rule]
        defined = rows.dropna(subset=["pearson"])  # none with constant human scores or a single item
        best = defined.loc[defined["pearson"].idxmax()] if len(defined) else pd.Series({**row, "rule": rule})
        out.append(
            StudyVerdict(
                judge,
                task,
                scale,
                rule,
                float(row["mode"]),
                float(row["mode_share"]),
                human_share(results, judge, task, scale, rule, float(row["mode"])),
                float(row["kurtosis"]),
                float(row["human_kurtosis"]),
                _interval(row, "pearson"),
                _interval(at.loc["expected"], "pearson") if "expected" in at.index and rule != "expected" else None,
                str(best["scale"]),
                str(best["rule"]),
                _interval(best, "pearson"),
                float(row["human_ceiling"]),
                float(row.get("sd_ratio", np.nan)),
                float(row.get("out_of_scale", np.nan)),
                float(row.get("non_numeric", np.nan)),
            )
        )
    return out


def rule_scores(results: StudyResults, judge: str, task: str, scale: str, rule: str) -> tuple[ScoredSet, np.ndarray]:
    """The scored set behind a summary row and its item scores by the row's rule (an
    exact set for greedy/expected/median/protocol, the sampled set for its label)."""
    for s in results.sets:
        if (s.judge, s.task, str(s.scale)) == (judge, task, scale) and (
            s.mode == rule or s.mode == "exact" and is_rule(rule)
        ):
            return s, s.scores(rule if s.mode == "exact" else "protocol")
    raise NumbiasError(f"no scored set of {judge} on {task} at {scale} reads rule {rule!r}")


def human_share(results: StudyResults, judge: str, task: str, scale: str, rule: str, score: float) -> float:
    """The share of items whose human score, mapped onto the judge's scale, falls in
    ``score``'s bin (over the items the rule scores, as the summary's histograms)."""
    s, scores = rule_scores(results, judge, task, scale, rule)
    keep = ~np.isnan(scores)
    hist = histogram(to_scale(s.data.human[keep], s.data.human_range, s.scale), s.scale)
    return float(hist[int(score - s.scale.lo)])


def _dtext(effect: Effect) -> str:
    """``Δ r +0.05 [−0.02, +0.12]`` with true minus signs."""
    return f"Δ r {effect.text()}".replace("-", "−")


def _adjusted(effect: Effect) -> str:
    p = effect.p_adjusted if np.isfinite(effect.p_adjusted) else effect.p
    return "no test" if not np.isfinite(p) else f"adjusted p = {fmt_p(p, significant=True)}"


CALL_BADGES = {
    "better": ("little", "the choice beats the default"),
    "worse": ("strong", "keep the default"),
    "within noise": ("some", "within noise: keep the default"),
    "untested": ("some", "unchecked: keep the default"),
}
"""The recommendation badge of a mitigation verdict: its colour class and its words."""


@dataclass(frozen=True)
class MitigateVerdict:
    """One judge × task of a mitigation study: the paper's default on the test items,
    the automatic choice made on development items, and the changes between them —
    ``gain`` on the test items (its p Holm-adjusted over the table's rows), ``dev_gain``
    cross-fitted on the development items (what the recommendation rests on; with k
    folds, where every item is held out once, the pooled comparison over all items)."""

    judge: str
    task: str
    chosen: str
    n_dev: int
    n_test: int
    mode: float
    share: float
    human_share: float
    default: Interval
    choice: Interval
    gain: Effect
    default_kurtosis: float
    choice_kurtosis: float
    human_kurtosis: float
    nested: float
    stability: float
    saveable: bool
    dev_gain: Effect = UNDEFINED
    free: str = ""
    free_gain: Effect = UNDEFINED
    free_test: Effect = UNDEFINED
    family: int = 0
    prespecified: Effect = UNDEFINED
    """The pre-specified rule (ridge at the default's scale) against the default on the test items."""

    @property
    def level(self) -> str:
        return level(self.share, self.human_share, self.default_kurtosis, self.human_kurtosis)

    @property
    def call(self) -> str:
        """``better`` only when the choice beats the default on development items (the
        interval excludes 0 from above) and is not worse on the test items; ``worse``
        when it is below the default there; else ``within noise`` (``untested``: no check)."""
        e = self.dev_gain
        if not e.defined:
            return "untested"
        if e.low > 0:
            return "worse" if _call(self.gain) == "worse" else "better"
        return "worse" if e.high < 0 else "within noise"

    @property
    def badge(self) -> tuple[str, str]:
        return CALL_BADGES[self.call]

    def tiles(self) -> list[Tile]:
        return [
            (
                f"most given score ({PAPER_SCALE}, default)",
                fmt_num(self.mode, 0),
                f"{fmt_num(self.share, percent=True)} of items · humans {fmt_num(self.human_share, percent=True)}",
            ),
            (
                "kurtosis, default → choice",
                f"{fmt_num(self.default_kurtosis)} → {fmt_num(self.choice_kurtosis)}",
                f"humans {fmt_num(self.human_kurtosis)}",
            ),
            (
                "test r, paper default",
                fmt_num(self.default.value),
                f"[{fmt_num(self.default.low)}, {fmt_num(self.default.high)}]",
            ),
            ("test r, automatic choice", fmt_num(self.choice.value), f"{_dtext(self.gain)} · {_adjusted(self.gain)}"),
            (
                "Δ r on dev, choice − default",
                fmt_num(self.dev_gain.delta, signed=True) if self.dev_gain.defined else "—",
                f"cross-fitted [{fmt_num(self.dev_gain.low, signed=True)}, {fmt_num(self.dev_gain.high, signed=True)}]"
                if self.dev_gain.defined
                else "not checked",
            ),
        ]

    def finding(self) -> str:
        fam = f" over the {self.family} rows of the table" if self.family else ""
        text = [
            _pile(
                fmt_num(self.mode, 0),
                self.share,
                self.human_share,
                f"On the {self.n_test} test items, the paper's default ({PAPER_DEFAULT.label}) answer",
            ),
            _peak(self.default_kurtosis, self.human_kurtosis),
            f"The default reaches test {_r(self.default)}. Chosen on {self.n_dev} development items, the "
            f"automatic choice is {self.chosen}: test {_r(self.choice)}; against the default {_dtext(self.gain)} "
            f"(paired bootstrap over the test items, {_adjusted(self.gain)}, Holm{fam}), with excess kurtosis "
            f"{fmt_num(self.choice_kurtosis)}.",
        ]
        if self.dev_gain.defined:
            text.append(
                f"On the development items, cross-fitted (the selection re-run without each fold), the "
                f"choice against the default: {_dtext(self.dev_gain)}."
            )
        if np.isfinite(self.nested):
            again = (
                f"; the same setting wins on {fmt_num(self.stability, percent=True)} of bootstrap resamples of "
                "the development items"
                if np.isfinite(self.stability)
                else ""
            )
            text.append(f"A nested estimate of what the selection achieves is r = {fmt_num(self.nested)}{again}.")
        if np.isfinite(self.prespecified.delta):
            text.append(
                f"The pre-specified rule ({PRESPECIFIED.label}), fixed before any data, against the default "
                f"on the test items: {_dtext(self.prespecified)}, {_adjusted(self.prespecified)}."
            )
        if self.free:
            text.append(free_sentence(self.free, self.free_gain, self.free_test))
        return " ".join(text)

    def advice(self) -> str:
        dev = self.dev_gain
        if self.call == "untested":
            return (
                "Keep the default: the choice could not be compared with it on development items "
                "(too few items or groups to cross-fit)."
            )
        if self.call == "worse" and dev.low > 0:
            return (
                f"Keep the default: the choice beats it on development items ({_dtext(dev)}) but is worse on "
                f"the test items ({_dtext(self.gain)}, {_adjusted(self.gain)})."
            )
        if self.call == "worse":
            return f"Keep the default: the choice is worse than the default on development items: {_dtext(dev)}."
        if self.call == "within noise":
            return (
                f"Keep the default: the choice does not beat the default on development items: {_dtext(dev)} "
                "(within noise); label more development items before relying on a choice."
            )
        keep = (
            " Save it with --save judge.json and score new items with numbias score --calibrated judge.json."
            if self.saveable
            else ""
        )
        small = " The gain is small: the default is nearly as good." if dev.delta < 0.02 else ""
        return (
            f"Use the automatic choice, {self.chosen}: it beats the default on development items "
            f"({_dtext(dev)}, cross-fitted).{small}{keep}"
        )


def _call(effect: Effect) -> str:
    if not effect.defined or not effect.significant():
        return "within noise"
    return "better" if effect.delta > 0 else "worse"


def free_sentence(setting: str, dev: Effect, test: Effect) -> str:
    """The label-free choice as what it is: a row with its own changes, a
    recommendation only by the same rule as the automatic choice.

    >>> free_sentence("1-5 · expected · T=1 · none", UNDEFINED, UNDEFINED)
    'The label-free (entropy) choice, 1-5 · expected · T=1 · none, is unverified without labels.'
    """
    head = f"The label-free (entropy) choice, {setting},"
    if not dev.defined:
        return f"{head} is unverified without labels."
    rule = (
        "beats the default on development items"
        if dev.low > 0
        else "is worse than the default on development items"
        if dev.high < 0
        else "does not beat the default on development items"
    )
    tested = f"; on the test items {_dtext(test)}, {_adjusted(test)}" if np.isfinite(test.delta) else ""
    return f"{head} {rule}: {_dtext(dev)}{tested}."


def mitigate_verdicts(results: MitigateResults) -> list[MitigateVerdict]:
    """A verdict per comparison, its r and kurtosis read from the mitigation table, its
    changes from the table's tests and the cross-fitted check on dev."""
    out = []
    for c in results.comparisons:
        rows = c.table.set_index("row")
        default, choice = rows.loc[DEFAULT_ROW], rows.loc[CHOICE_ROW]
        scale = ScoreScale.parse(PAPER_SCALE)
        hist = histogram(c.test_scores[DEFAULT_ROW], scale)
        human = histogram(to_scale(c.test_human[~np.isnan(c.test_scores[DEFAULT_ROW])], c.human_range, scale), scale)
        mode = int(np.argmax(hist))
        h = c.honesty
        free = h.free.label if h is not None and h.free is not None else ""
        out.append(
            MitigateVerdict(
                c.judge.name,
                c.task,
                str(choice["setting"]),
                len(c.fit_on),
                len(c.test_human),
                float(scale.lo + mode),
                float(hist[mode]),
                float(human[mode]),
                _interval(default, "pearson"),
                _interval(choice, "pearson"),
                c.effects.get(CHOICE_ROW, UNDEFINED),
                float(default["kurtosis"]),
                float(choice["kurtosis"]),
                kurtosis(c.test_human),
                h.nested if h is not None else float("nan"),
                h.stability if h is not None else float("nan"),
                len(set(c.chosen)) == 1,
                _dev_gain(c),
                free,
                h.free_gain if h is not None else UNDEFINED,
                c.effects.get(FREE_ROW, UNDEFINED),
                len(c.effects),
                c.effects.get(PRESPECIFIED_ROW, UNDEFINED),
            )
        )
    return out


def _dev_gain(c: Comparison) -> Effect:
    """What the recommendation rests on: the cross-fitted comparison on dev; with k
    folds, the pooled comparison over all items (each held out once, chosen without it)."""
    if c.honesty is not None:
        return c.honesty.dev_gain
    return c.effects.get(CHOICE_ROW, UNDEFINED) if c.folds > 1 else UNDEFINED


def shift_sentence(row: dict) -> str:
    """One scoring's paired counts (:func:`numbias.studies.alignment.paired_shift`) in words: the
    directions, and where the table has its tests how many of them survive Holm.

    >>> row = {"scoring": "exact expected", "settings": 4, "more peaked": 3, "less accurate": 2, "both": 2,
    ...        "median Δ kurtosis": 1.5, "median Δ r": -0.1}
    >>> shift_sentence(row)
    'aligned vs base (exact expected): more peaked in 3 of 4 settings, less accurate in 2, both in 2
    (median change: kurtosis +1.50, Pearson r -0.10)'
    >>> shift_sentence(row | {"more peaked, adjusted p < 0.05": 1, "less accurate, adjusted p < 0.05": 0})
    'aligned vs base (exact expected): more peaked in 3 of 4 settings (1 with a Holm-adjusted p below 0.05),
    less accurate in 2 (0 with a Holm-adjusted p below 0.05), both in 2 (median change: kurtosis +1.50,
    Pearson r -0.10)'
    """
    peaked, worse = row.get("more peaked, adjusted p < 0.05"), row.get("less accurate, adjusted p < 0.05")
    peaked_text = worse_text = ""
    if peaked is not None and worse is not None and not (pd.isna(peaked) or pd.isna(worse)):
        peaked_text = f" ({int(peaked)} with a Holm-adjusted p below 0.05)"
        worse_text = f" ({int(worse)} with a Holm-adjusted p below 0.05)"
    return (
        f"aligned vs base ({row['scoring']}): more peaked in {row['more peaked']} of {row['settings']} "
        f"settings{peaked_text}, less accurate in {row['less accurate']}{worse_text}, both in {row['both']} "
        f"(median change: kurtosis {row['median Δ kurtosis']:+.2f}, Pearson r {row['median Δ r']:+.2f})"
    )


def align_lead(res: AlignResults) -> list[str]:
    """What the alignment study found across its settings: the paired counts per
    scoring with how many changes survive Holm over the alignment table, and the
    correlation of kurtosis with accuracy (the paper's −0.60; its CI resamples settings,
    which share bases and items, so it is narrower than it should be)."""
    lines = [shift_sentence(r) for r in res.shift.to_dict("records")]
    lines += [
        f"kurtosis against Pearson r over all settings ({rule}): {_r(iv).removeprefix('r = ')} (paper: −0.60)"
        for rule, iv in res.correlation.items()
    ]
    return lines
