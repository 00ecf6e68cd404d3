"""The inference every printed comparison uses: agreement with scipy's own bootstrap,
Monte-Carlo coverage of the 95% interval (items alone, and items × seeds), the
paired-by-seed interval against a hand computation, and the multiplicity corrections."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from numbias.core.inference import adjust, benjamini_hochberg, holm, paired_effect, resampling_note
from numbias.core.metrics import pearson_rows


def _mean(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    return x.mean(axis=-1)


def test_item_interval_agrees_with_scipys_paired_bootstrap() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=200), rng.normal(0.3, 1.0, size=200)
    ours = paired_effect(_mean, a, b, n_boot=9999, seed=0)
    theirs = stats.bootstrap(
        (a, b),
        lambda x, y, axis=-1: y.mean(axis) - x.mean(axis),
        paired=True,
        vectorized=True,
        n_resamples=9999,
        method="percentile",
        random_state=1,
    )
    assert ours.delta == pytest.approx(b.mean() - a.mean())
    assert ours.low == pytest.approx(theirs.confidence_interval.low, abs=0.01)
    assert ours.high == pytest.approx(theirs.confidence_interval.high, abs=0.01)
    bca = paired_effect(_mean, a, b, n_boot=9999, seed=0, method="BCa")
    assert bca.low == pytest.approx(theirs.confidence_interval.low, abs=0.02)


def test_p_value_and_interval_agree_before_correction() -> None:
    rng = np.random.default_rng(2)
    for shift in (0.0, 0.1, 0.2, 0.4):
        a = rng.normal(size=150)
        e = paired_effect(_mean, a, a + shift + rng.normal(0, 1, 150), n_boot=2000)
        assert (e.p < 0.05) == (e.low > 0 or e.high < 0) or abs(e.p - 0.05) < 0.01


@pytest.mark.slow
def test_coverage_of_a_pearson_difference_over_1000_data_sets() -> None:
    rng = np.random.default_rng(3)
    sa, sb, n = 1.5, 0.8, 200
    truth = 1 / np.sqrt(1 + sb**2) - 1 / np.sqrt(1 + sa**2)
    hits = []
    for k in range(1000):
        h = rng.normal(size=n)
        e = paired_effect(pearson_rows, h + sa * rng.normal(size=n), h + sb * rng.normal(size=n), h, n_boot=400, seed=k)
        hits.append(e.low <= truth <= e.high)
    assert 0.93 <= np.mean(hits) <= 0.97


def test_coverage_with_seeds_over_1000_data_sets() -> None:
    """Three seeds whose own spread matters as much as the items': the t interval with
    item and seed variance covers the true change."""
    rng = np.random.default_rng(4)
    n, k, truth = 100, 3, 0.3
    hits = []
    for rep in range(1000):
        item = rng.normal(size=n)
        base = item + rng.normal(0, 1, n)
        stages = truth + item + rng.normal(0, 0.2, (k, 1)) + rng.normal(0, 1, (k, n))
        e = paired_effect(_mean, base, stages, n_boot=300, seed=rep)
        hits.append(e.low <= truth <= e.high)
    assert 0.93 <= np.mean(hits) <= 0.97


def test_paired_by_seed_matches_a_hand_computation() -> None:
    """Per-seed changes 0.1, 0.2, 0.3 that do not vary over items: the item part is 0,
    so the interval is the t interval of three differences: 0.2 ± t(2) · 0.1 / √3."""
    rng = np.random.default_rng(5)
    sft = rng.normal(size=(3, 50))
    dpo = sft + np.array([[0.1], [0.2], [0.3]])
    e = paired_effect(_mean, sft, dpo, paired_seeds=True, n_boot=200)
    half = stats.t.ppf(0.975, 2) * 0.1 / np.sqrt(3)
    assert e.delta == pytest.approx(0.2)
    assert (e.low, e.high) == pytest.approx((0.2 - half, 0.2 + half), abs=1e-9)
    assert e.p == pytest.approx(2 * stats.t.sf(0.2 / (0.1 / np.sqrt(3)), 2), abs=1e-9)
    assert (e.items, e.seeds, e.resampled) == (50, 3, "items × seeds")
    # the levels' spread is large; the paired differences' is small, so the change shows
    unpaired = paired_effect(_mean, sft + rng.normal(0, 1, (3, 1)), dpo, n_boot=200)
    assert unpaired.high - unpaired.low > e.high - e.low


def test_holm_and_bh_against_hand_and_scipy() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted 0.005, 0.01, 0.03, 0.04 → ×4, ×3, ×2, ×1 = 0.02, 0.03, 0.06, 0.04, then a running maximum
    assert holm(p).tolist() == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert benjamini_hochberg(p).tolist() == pytest.approx(stats.false_discovery_control(p).tolist())
    assert np.isnan(holm([np.nan, 0.01])[0]) and holm([np.nan, 0.01])[1] == pytest.approx(0.01)


def test_adjusted_marks_follow_the_family() -> None:
    rng = np.random.default_rng(6)
    effects = [
        paired_effect(_mean, a, a + 0.18 + rng.normal(0, 1, 100), n_boot=500, seed=i)
        for i, a in enumerate(rng.normal(size=(12, 100)))
    ]
    adjusted = adjust(effects)
    assert all(e.p_adjusted >= e.p for e in adjusted)
    assert sum(e.significant() for e in adjusted) <= sum(e.p < 0.05 for e in effects)


def test_undefined_statistics_give_an_undefined_effect() -> None:
    e = paired_effect(pearson_rows, np.ones(10), np.arange(10.0), np.arange(10.0), n_boot=50)
    assert not e.defined and not e.significant()
    assert paired_effect(_mean, [1.0, 2.0], [2.0, 3.0], n_boot=50).text() == "+1.00 [no interval]"


def test_p_beyond_every_resample_is_extrapolated_below_the_floor_and_groups_stay_whole() -> None:
    """A clear effect with 200 resamples: p below the floor 2/201 (the normal tail of
    the resamples), so Holm over 30 rows can still reject; with groups, whole groups are resampled."""
    rng = np.random.default_rng(4)
    human = rng.normal(size=300)
    worse, better = human + 2 * rng.normal(size=300), human + 0.3 * rng.normal(size=300)
    e = paired_effect(pearson_rows, worse, better, human, n_boot=200)
    assert e.low > 0 and e.p < 2 / 201 and holm([e.p] * 30)[0] < 0.05
    groups = np.repeat(np.arange(30), 10)
    g = paired_effect(pearson_rows, worse, better, human, n_boot=200, groups=groups)
    assert (g.groups, g.items, g.resampled, g.delta) == (30, 300, "groups", e.delta) and g.low > 0
    assert "30 groups (300 items) resampled whole" in resampling_note(g, "holm", 4)
