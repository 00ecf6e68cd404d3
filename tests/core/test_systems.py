"""System-level estimators: ppi-python as the oracle for PPI++, and simulations with
known system means and a biased judge (seeded, no model) for coverage and bias."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from numbias.core.systems import (
    Side,
    corrected_pass_rate,
    labelled_mean,
    naive_mean,
    pairwise,
    ppi_difference,
    ppi_mean,
    sides,
    system_agreement,
)

ppi_py = pytest.importorskip(
    "ppi_py", reason="ppi-python (the test extra) is the oracle for PPI++: pip install 'numbias[test]'"
)


def _judged(rng: np.random.Generator, truth: np.ndarray, bias: float = 1.0, noise: float = 0.6) -> np.ndarray:
    """A judge that over-scores by ``bias``, compresses the scale and adds noise."""
    return 0.7 * truth + bias + rng.normal(0, noise, len(truth))


@pytest.mark.parametrize(("n", "big_n"), [(5, 300), (40, 40), (150, 2000)])
def test_ppi_mean_matches_ppi_python(n: int, big_n: int) -> None:
    rng = np.random.default_rng(n)
    y = rng.normal(3, 1, n)
    unl = rng.normal(3, 1, big_n)
    yhat, yhat_unl = _judged(rng, y), _judged(rng, unl)
    ours = ppi_mean(y, yhat, yhat_unl, student=False)
    point = ppi_py.ppi_mean_pointestimate(y, yhat, yhat_unl, lam=None)
    low, high = ppi_py.ppi_mean_ci(y, yhat, yhat_unl, alpha=0.05, lam=None)
    assert ours.value == pytest.approx(float(np.squeeze(point)), abs=1e-10)
    assert (ours.low, ours.high) == pytest.approx((float(np.squeeze(low)), float(np.squeeze(high))), abs=1e-10)
    classical = ppi_py.classical_mean_ci(y, alpha=0.05)
    normal = labelled_mean(y, student=False)
    assert (normal.low, normal.high) == pytest.approx(tuple(map(float, classical)), abs=1e-10)
    student = ppi_mean(y, yhat, yhat_unl)
    assert student.value == ours.value and student.low < ours.low and student.high > ours.high


def test_fixed_lambda_is_plain_ppi_and_classical() -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(3, 1, 30)
    yhat, unl = _judged(rng, y), _judged(rng, rng.normal(3, 1, 300))
    for lam in (0.0, 1.0):
        low, high = ppi_py.ppi_mean_ci(y, yhat, unl, alpha=0.05, lam=lam)
        e = ppi_mean(y, yhat, unl, lam=lam, student=False)
        assert (e.low, e.high) == pytest.approx((float(np.squeeze(low)), float(np.squeeze(high))), abs=1e-10)


def test_paired_difference_is_ppi_on_the_differences() -> None:
    rng = np.random.default_rng(4)
    units = np.arange(200)
    difficulty = rng.normal(0, 1, 200)
    ha, hb = 3.5 + difficulty + rng.normal(0, 0.3, 200), 3.0 + difficulty + rng.normal(0, 0.3, 200)
    lab = np.zeros(200, dtype=bool)
    lab[:40] = True
    a = Side(units, np.where(lab, ha, np.nan), _judged(rng, ha))
    b = Side(units[::-1], np.where(lab, hb, np.nan)[::-1], _judged(rng, hb)[::-1])
    effect, beats = ppi_difference(a, b, n_boot=500, student=False)
    d, dhat = ha - hb, a.judge - b.judge[::-1]
    low, high = ppi_py.ppi_mean_ci(d[lab], dhat[lab], dhat[~lab], alpha=0.05, lam=None)
    assert (effect.low, effect.high) == pytest.approx((float(np.squeeze(low)), float(np.squeeze(high))), abs=1e-10)
    assert effect.low > 0 and beats > 0.99 and effect.p < 0.001


def _systems(rng: np.random.Generator, means: list[float], items: int, labels: int) -> tuple[dict[str, Side], list]:
    """Systems on the same units (a shared difficulty per unit), ``labels`` units labelled."""
    difficulty = rng.normal(0, 0.8, items)
    lab = np.zeros(items, dtype=bool)
    lab[rng.choice(items, labels, replace=False)] = True
    out, truth = {}, []
    for k, m in enumerate(means):
        human = m + difficulty + rng.normal(0, 0.6, items)
        truth.append(human.mean())
        out["ABCDE"[k]] = Side(np.arange(items), np.where(lab, human, np.nan), _judged(rng, human, bias=0.3 * k))
    return out, truth


def test_ppi_covers_and_is_unbiased_where_naive_is_not() -> None:
    """400 seeded repetitions: the 95% PPI and labelled-only intervals cover each
    system's mean human score 92–98% of the time; PPI's mean error is near 0 while the
    naive judge mean misses by the judge's bias and almost never covers."""
    rng = np.random.default_rng(28)
    covered = {"ppi": [], "labelled": [], "naive": []}
    errors, widths = {"ppi": [], "naive": []}, {"ppi": [], "labelled": []}
    for _ in range(400):
        systems, truth = _systems(rng, [3.0, 3.4], items=400, labels=60)
        for side, true in zip(systems.values(), truth):
            lab = side.labelled
            est = {
                "ppi": ppi_mean(side.human[lab], side.judge[lab], side.judge[~lab]),
                "labelled": labelled_mean(side.human[lab]),
                "naive": naive_mean(side.judge),
            }
            for name, e in est.items():
                covered[name].append(e.low <= true <= e.high)
            errors["ppi"].append(est["ppi"].value - true)
            errors["naive"].append(est["naive"].value - true)
            widths["ppi"].append(est["ppi"].high - est["ppi"].low)
            widths["labelled"].append(est["labelled"].high - est["labelled"].low)
    assert 0.92 <= np.mean(covered["ppi"]) <= 0.98
    assert 0.92 <= np.mean(covered["labelled"]) <= 0.98
    assert np.mean(covered["naive"]) < 0.2
    assert abs(np.mean(errors["ppi"])) < 0.02 < abs(np.mean(errors["naive"]))
    assert np.mean(widths["ppi"]) < 0.9 * np.mean(widths["labelled"])


def test_paired_difference_covers_the_true_difference() -> None:
    rng = np.random.default_rng(2028)
    hits = []
    for _ in range(200):
        systems, truth = _systems(rng, [3.0, 3.2], items=200, labels=40)
        effect, _ = ppi_difference(systems["A"], systems["B"], n_boot=50)
        hits.append(effect.low <= truth[0] - truth[1] <= effect.high)
    assert 0.9 <= np.mean(hits) <= 0.99


def test_pairwise_table_and_independent_systems() -> None:
    rng = np.random.default_rng(5)
    systems, _ = _systems(rng, [3.0, 3.5, 4.0], items=150, labels=50)
    table = pairwise(systems, n_boot=300)
    assert table[["a", "b"]].values.tolist() == [["A", "B"], ["A", "C"], ["B", "C"]]
    assert table.paired.all() and (table.p_holm >= table.p).all()
    ac = table.iloc[1]
    assert ac.high < 0 and ac.beats < 0.01
    apart = {"A": systems["A"], "C": Side(systems["C"].units + 1000, systems["C"].human, systems["C"].judge)}
    unpaired = pairwise(apart, n_boot=300).iloc[0]
    assert not unpaired.paired and unpaired.high - unpaired.low > ac.high - ac.low


def test_rogan_gladen_corrects_an_over_passing_judge() -> None:
    rng = np.random.default_rng(6)
    hits, naive = [], []
    for seed in range(200):
        truth = rng.random(600) < 0.4
        judged = np.where(truth, rng.random(600) < 0.85, rng.random(600) < 0.25)
        e = corrected_pass_rate(judged, truth[:150], judged[:150], n_boot=300, seed=seed)
        hits.append(e.low <= 0.4 <= e.high)  # the rate of the population the items come from
        naive.append(judged.mean() - truth.mean())
        assert 0 <= e.low <= e.value <= e.high <= 1
    assert np.mean(naive) > 0.05 and 0.9 <= np.mean(hits) <= 0.99
    chance = corrected_pass_rate(np.ones(50, bool), np.array([True, False] * 5), np.ones(10, bool))
    assert np.isnan(chance.value)


def test_system_agreement_and_multi_membership() -> None:
    parts = sides(
        np.array(["A", "A,B", "B", "C", "C", "A", "B", "C"]),
        np.arange(8),
        np.array([1, 2, 3, 4, 5, 2, 3, 5.0]),
        np.array([1, 2, 3, 4, 5, 3, 3, 4.0]),
    )
    assert {k: v.units.tolist() for k, v in parts.items()} == {"A": [0, 1, 5], "B": [1, 2, 6], "C": [3, 4, 7]}
    r = system_agreement(parts)
    assert r["spearman"].value == pytest.approx(1.0) and r["pearson"].items == 3
    assert np.isnan(r["pearson"].low) and np.isnan(r["kendall"].high)  # three systems: no interval
    two = system_agreement({k: parts[k] for k in "AB"})
    assert np.isnan(two["kendall"].value)


def test_system_agreement_intervals_are_fisher_z_over_systems() -> None:
    """Pearson's interval is scipy's; the rank correlations widen it by Fieller's
    variances; every interval holds its estimate, however noisy the means."""
    rng = np.random.default_rng(3)
    parts = {
        s: Side(np.arange(10), m + rng.normal(0, 2, 10), m + rng.normal(0, 2, 10))
        for s, m in zip("ABCDEFGHIJKLMN", np.linspace(1, 3, 14))
    }
    r = system_agreement(parts)
    judge = [p.judge.mean() for p in parts.values()]
    human = [p.human.mean() for p in parts.values()]
    expected = stats.pearsonr(judge, human).confidence_interval(0.95)
    assert (r["pearson"].low, r["pearson"].high) == pytest.approx((expected.low, expected.high))
    z = np.arctanh(r["kendall"].value)
    assert r["kendall"].high == pytest.approx(np.tanh(z + 1.959964 * np.sqrt(0.437 / 10)))
    assert all(e.low <= e.value <= e.high for e in r.values())
    perfect = system_agreement({s: Side(np.arange(3), np.full(3, m), np.full(3, m)) for s, m in zip("ABCDE", range(5))})
    assert perfect["pearson"].low == perfect["pearson"].high == pytest.approx(1.0)


def test_a_pair_labelled_on_different_units_is_compared_as_independent() -> None:
    """Paired units but no unit labelled for both: the difference falls back to two
    independent estimates rather than an undefined paired one."""
    rng = np.random.default_rng(7)
    human = rng.normal(3, 1, (2, 60))
    lab_a, lab_b = np.arange(60) < 20, np.arange(60) >= 40
    a = Side(np.arange(60), np.where(lab_a, human[0], np.nan), _judged(rng, human[0]))
    b = Side(np.arange(60), np.where(lab_b, human[1], np.nan), _judged(rng, human[1]))
    effect, beats = ppi_difference(a, b, n_boot=200)
    assert effect.resampled == "independent systems" and effect.defined and 0 <= beats <= 1
    lonely = Side(np.arange(3), np.array([1.0, np.nan, np.nan]), np.ones(3))
    effect, beats = ppi_difference(lonely, lonely, n_boot=50)
    assert not effect.defined and np.isnan(beats)
