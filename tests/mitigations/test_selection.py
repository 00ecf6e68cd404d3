"""What the automatic choice is worth: the cross-fitted comparison with the default on
development items that a recommendation rests on, the nested estimate (unbiased under
no signal) and stability of the selection, the label-free choice, the label-efficiency
curve, transfer and the oracle row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import numbias
from numbias.core.distribution import ScoreDistribution
from numbias.core.inference import UNDEFINED, Effect
from numbias.core.metrics import Interval, pearson_defined
from numbias.core.scale import ScoreScale
from numbias.mitigations import Setting, SettingData
from numbias.mitigations.selection import cross_fitted, family_bests, honest_selection, label_efficiency, within_folds
from numbias.report.verdict import MitigateVerdict

SCALES = {"0-9": ScoreScale(0, 9), "1-5": ScoreScale(1, 5)}


def _dist(centre: float, scale: ScoreScale, sharpness: float, rng: np.random.Generator) -> ScoreDistribution:
    def at(t: float) -> ScoreDistribution:
        logits = (-((scale.to_unit(scale.values) - centre) ** 2) * sharpness + rng.normal(0, 0.2, scale.size)) / t
        probs = np.exp(logits - logits.max())
        return ScoreDistribution(scale, probs / probs.sum() * 0.95, 0.02, 0.01, 0.02, temperature=None if t == 1 else t)

    return ScoreDistribution(**{**at(1.0).__dict__, "tempered": {0.7: at(0.7)}})


@pytest.fixture(scope="module")
def data() -> tuple[dict[str, SettingData], np.ndarray]:
    """0-9 sees the human score through heavy noise; 1-5 sees it clearly."""
    rng = np.random.default_rng(0)
    human = rng.uniform(0, 1, 160)
    noisy = np.clip(human + rng.normal(0, 0.6, len(human)), 0, 1)
    return {
        "0-9": SettingData([_dist(c, SCALES["0-9"], 30, rng) for c in noisy], []),
        "1-5": SettingData([_dist(c, SCALES["1-5"], 30, rng) for c in human], []),
    }, human


CANDIDATES = [
    Setting(s, r, t, m)
    for s in SCALES
    for r in ("expected", "protocol")
    for t in (0.7, 1.0)
    for m in ("none", "isotonic")
]


def test_the_nested_estimate_and_stability(data) -> None:
    per_scale, human = data
    dev = np.arange(100)
    first = honest_selection(per_scale, human, (0.0, 1.0), dev, CANDIDATES, resamples=6, n_boot=200)
    assert first.chosen.scale == "1-5" and first.scale_stability == 1.0 and 0 <= first.stability <= 1
    assert first.resamples == 6
    assert 0.5 < first.nested <= first.dev_score + 0.05
    # 1-5 sees the human score, the default's 0-9 sees it through noise: a real gain, recommended
    assert first.dev_gain.low > 0.1 and first.recommended and first.dev_gain.items == 100
    assert first.dev_gain.p_adjusted == first.dev_gain.p  # a family of one
    # the label-free choice reads no label; it is reported with its own change on dev
    assert first.free is not None and not first.free.needs_labels and first.free_gain.defined
    again = honest_selection(per_scale, human, (0.0, 1.0), dev, CANDIDATES, resamples=6, n_boot=200)
    assert again == first
    # the test items' labels never enter
    shuffled = human.copy()
    shuffled[100:] = shuffled[100:][::-1]
    assert honest_selection(per_scale, shuffled, (0.0, 1.0), dev, CANDIDATES, resamples=6, n_boot=200) == first


def _verdict(dev_gain: Effect, gain: Effect) -> MitigateVerdict:
    """A mitigation verdict whose figures other than the two changes do not matter here."""
    iv = Interval(0.5, 0.4, 0.6)
    return MitigateVerdict(
        "judge",
        "task",
        "the choice",
        100,
        60,
        8.0,
        0.5,
        0.1,
        iv,
        iv,
        gain,
        1.0,
        0.0,
        -1.0,
        float("nan"),
        float("nan"),
        True,
        dev_gain,
    )


def test_a_choice_worse_than_the_default_on_dev_is_never_recommended(data) -> None:
    """The default's 0-9 sees the humans through noise; the only candidates read a 1-5
    that sees nothing: the choice is worse on dev, and the verdict keeps the default."""
    per_scale, human = data
    rng = np.random.default_rng(5)
    blind = {
        **per_scale,
        "1-5": SettingData([_dist(c, SCALES["1-5"], 30, rng) for c in rng.uniform(0, 1, 160)], []),
        "0-9": SettingData(
            [_dist(c, SCALES["0-9"], 30, rng) for c in np.clip(human + rng.normal(0, 0.15, 160), 0, 1)], []
        ),
    }
    only = [c for c in CANDIDATES if c.scale == "1-5"]
    check = honest_selection(blind, human, (0.0, 1.0), np.arange(100), only, resamples=0, n_boot=300)
    assert check.dev_gain.high < 0 and not check.recommended
    verdict = _verdict(check.dev_gain, Effect(0.05, 0.01, 0.09, 0.01, 60, p_adjusted=0.03))
    assert verdict.call == "worse" and verdict.badge[1] == "keep the default"
    advice = verdict.advice()
    assert advice.startswith("Keep the default: the choice is worse than the default on development items: Δ r −")
    assert "Use the" not in advice


def test_the_recommendation_follows_the_development_interval_only() -> None:
    gain = Effect(0.08, 0.02, 0.14, 0.004, 100, p_adjusted=0.004)
    noise = Effect(0.02, -0.05, 0.09, 0.6, 100, p_adjusted=0.6)
    assert _verdict(gain, noise).call == "better" and _verdict(gain, noise).advice().startswith(
        "Use the automatic choice, the choice: it beats the default on development items (Δ r +0.08 [+0.02, +0.14]"
    )
    within = _verdict(noise, gain)  # better on test, but not on dev: not recommended
    assert within.call == "within noise" and within.badge[1] == "within noise: keep the default"
    assert within.advice().startswith(
        "Keep the default: the choice does not beat the default on development "
        "items: Δ r +0.02 [−0.05, +0.09] (within noise)"
    )
    worse_on_test = Effect(-0.1, -0.18, -0.03, 0.002, 60, p_adjusted=0.01)
    assert _verdict(gain, worse_on_test).call == "worse"  # dev gain contradicted by an adjusted test
    assert _verdict(UNDEFINED, gain).call == "untested" and "Keep the default" in _verdict(UNDEFINED, gain).advice()


NULL_SETS = 240
"""No-signal data sets in the nested-estimate simulation (the Monte-Carlo SE of its mean is about 0.006)."""


@pytest.mark.slow
def test_the_nested_estimate_is_unbiased_under_no_signal() -> None:
    """Judge distributions independent of the human scores: the selection is re-run
    without each fold and its winner scored on the fold, so whatever it picks, the
    mean nested estimate over the data sets is 0 (pooling the folds' raw predictions
    read −0.095 in the issue's simulation). Ridge is among the candidates: a fit that
    uses the labels regresses each fold towards the other folds' mean, the bias raw
    pooling shows. 24 judge data sets, fresh humans each time."""
    rng = np.random.default_rng(11)
    n = 120
    judges = [
        {k: SettingData([_dist(c, s, 10, rng) for c in rng.uniform(0, 1, n)], []) for k, s in SCALES.items()}
        for _ in range(24)
    ]
    few = [
        *(Setting(s, r, 1.0) for s in SCALES for r in ("expected", "greedy")),
        *(Setting(s, "expected", 1.0, "ridge") for s in SCALES),
    ]
    nested = [
        honest_selection(
            judges[k % 24], rng.uniform(0, 1, n), (0.0, 1.0), np.arange(n), few, seed=k, resamples=0, n_boot=10
        ).nested
        for k in range(NULL_SETS)
    ]
    assert np.isfinite(nested).all()
    assert abs(np.mean(nested)) < 0.02
    assert 0.03 < np.std(nested) < 0.2  # a real spread: the mean is not 0 by construction


def test_label_efficiency_draws_are_seeded_and_reproducible(data) -> None:
    per_scale, human = data
    dev, test = np.arange(100), np.arange(100, 160)
    curve = label_efficiency(per_scale, human, (0.0, 1.0), dev, test, CANDIDATES, sizes=(10, 50), draws=3)
    pd.testing.assert_frame_equal(
        curve, label_efficiency(per_scale, human, (0.0, 1.0), dev, test, CANDIDATES, sizes=(10, 50), draws=3)
    )
    other = label_efficiency(per_scale, human, (0.0, 1.0), dev, test, CANDIDATES, sizes=(10, 50), draws=3, seed=1)
    assert not curve["test pearson"].equals(other["test pearson"])
    assert set(curve["labels"]) == {0, 10, 50} and set(curve.query("labels > 0")["draw"]) == {0, 1, 2}
    auto = curve[curve["choice"] == "automatic choice"].groupby("labels")["test pearson"].mean()
    assert auto[50] > 0.8 and auto[50] >= auto[10] - 0.05
    assert {"best temperature", "best score mapping", "best score range"} <= set(curve["choice"])


def test_family_bests_pick_within_each_family() -> None:
    scores = {c: float(i) for i, c in enumerate(CANDIDATES)}
    bests = family_bests(CANDIDATES, scores)
    assert bests["score range"] == max(
        (c for c in CANDIDATES if c.mitigation == "none" and c.temperature == 0.7), key=scores.get
    )
    assert all(b.scale == "0-9" for f, b in bests.items() if f != "score range")


@pytest.mark.slow
def test_transfer_and_the_oracle_row(tmp_path) -> None:
    rows = pd.DataFrame(
        {
            "id": [f"w{i}" for i in range(80)],
            "word": [f"word{i}" for i in range(80)],
            "stars": [i % 5 + 1 for i in range(80)],
        }
    )
    rows.to_csv(tmp_path / "items.csv", index=False)
    task = {
        "file": str(tmp_path / "items.csv"),
        "human": "stars",
        "human_range": [1, 5],
        "template": "Rate {word} from {lo} to {hi}.",
    }
    res = numbias.mitigate(
        {
            "judges": [{"model": "toy", "backend": "plugin_judge:make"}],
            "tasks": [task, {**task, "label": "again", "template": "Score {word} from {lo} to {hi}."}],
            "dev": 40,
            "bootstrap": 20,
            "scales": ["0-9", "1-5"],
            "mitigations": ["none", "isotonic"],
            "temperatures": [0.7, 1.0],
            "resamples": 3,
            "label_draws": 2,
            "label_sizes": [10],
            "out": str(tmp_path),
        }
    )
    transfer = res.transfer
    assert len(transfer) == 2 and set(transfer["from task"]) == {"items", "again"}
    back = transfer.set_index("to task")
    for c in res.comparisons:
        own = c.table.set_index("row").loc["automatic choice", "pearson"]
        assert back.loc[c.task, "own choice r"] == own
        oracle = c.table.set_index("row").loc["oracle: best on test (not a method)", "pearson"]
        assert oracle >= own - 1e-12  # nothing beats the best on test
    assert len(res.selection) == 2 and set(res.label_curve["labels"]) == {0, 10}
    folder = numbias.write(res, tmp_path / "out")
    assert {"selection.csv", "label_efficiency.csv", "transfer.csv"} <= {p.name for p in folder.iterdir()}


def test_store_only_answers_from_the_store_or_says_what_is_missing(tmp_path) -> None:
    """What the store-backed benchmark relies on: nothing is scored inside store_only."""
    from numbias.judge.judging import store_only
    from numbias.util.errors import NumbiasError

    rows = pd.DataFrame(
        {
            "id": [f"w{i}" for i in range(20)],
            "word": [f"word{i}" for i in range(20)],
            "stars": [i % 5 + 1 for i in range(20)],
        }
    )
    rows.to_csv(tmp_path / "items.csv", index=False)
    config = {
        "judges": [{"model": "toy", "backend": "plugin_judge:make"}],
        "scales": ["0-9"],
        "rules": ["expected"],
        "tasks": [{"file": str(tmp_path / "items.csv"), "human": "stars", "template": "Rate {word} ({lo}-{hi})."}],
        "bootstrap": 10,
        "out": str(tmp_path / "r"),
    }
    with store_only(), pytest.raises(NumbiasError, match="the store lacks 20 of 20 item"):
        numbias.run(config)
    first = numbias.run(config)
    with store_only():
        again = numbias.run(config)
    pd.testing.assert_frame_equal(first.items, again.items)


@pytest.mark.slow
def test_pooling_raw_folds_reads_low_where_standardising_within_fold_does_not() -> None:
    """Why the nested estimate standardises within fold: ridge fitted on no signal
    predicts about each fold's complement mean, which runs opposite to the fold's own,
    so the folds' raw predictions pooled read r ≈ −0.19 (the simulation behind this
    test: 200 data sets, −0.188 ± 0.012 raw, −0.013 ± 0.013 standardised)."""
    rng = np.random.default_rng(12)
    n, ridge = 50, [Setting("0-9", "expected", 1.0, "ridge")]
    raw, nested = [], []
    for k in range(40):
        judge = {"0-9": SettingData([_dist(c, SCALES["0-9"], 10, rng) for c in rng.uniform(0, 1, n)], [])}
        human = rng.uniform(0, 1, n)
        choice, _, parts = cross_fitted(judge, human, (0.0, 1.0), np.arange(n), ridge, seed=k)
        raw.append(pearson_defined(choice, human))
        nested.append(pearson_defined(within_folds(choice, parts), human))
    assert np.mean(raw) < -0.1 and np.mean(nested) - np.mean(raw) > 0.1
