"""Alignment study: protocol parsing, seeded sampling, the exact counterpart, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from numbias.core.distribution import ScoreDistribution
from numbias.core.inference import holm
from numbias.core.metrics import item_scores
from numbias.core.sampling import protocol_score, sampled_distribution
from numbias.core.scale import ScoreScale
from numbias.data.tasks import TASKS
from numbias.judge.judging import ScoredSet
from numbias.studies.alignment import adjust_table, paired_shift, parse_align, simulate_sample_mean_kurtosis
from numbias.util.errors import NumbiasError

SCALE = ScoreScale(0, 9)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (" 8", (8, 0)),
        ("8/10", (8, 0)),
        ("Score: 7", (7, 0)),
        ("7.5", (7, 0)),
        ("ten", None),
        ("", None),
        ("-1", (0, -1)),
        ("100", (9, 1)),
        ("\n\n3 stars", (3, 0)),
    ],
)
def test_protocol_parser_table(text: str, expected: tuple[int, int] | None) -> None:
    assert protocol_score(text, SCALE) == expected


def test_sampled_distribution_counts() -> None:
    dist = sampled_distribution(["8", "8", "x", "12", "3"], SCALE, 0.7)
    assert dist.probs[8] == pytest.approx(0.4) and dist.above == pytest.approx(0.2)
    assert dist.other == pytest.approx(0.2) and dist.n_samples == 5 and dist.total == pytest.approx(1)
    # the protocol mean: (8 + 8 + 9 (clipped) + 3) / 4
    probs, rest = dist.probs[None], np.array([[dist.below, dist.above, dist.other]])
    assert item_scores(probs, rest, SCALE, "protocol")[0] == pytest.approx(28 / 4)


def test_simulated_kurtosis_concentrates_on_exact_for_large_n() -> None:
    rng = np.random.default_rng(0)
    dists = [ScoreDistribution(SCALE, p, 0, 0, 0) for p in rng.dirichlet(np.ones(10) * 0.3, size=150)]
    data = TASKS["vader"].load(n=150)
    s = ScoredSet("j", "vader", SCALE, data, dists)
    exact = s.scores("protocol")
    from numbias.core.metrics import kurtosis

    sims = simulate_sample_mean_kurtosis(s, n=400, runs=20, seed=1)
    assert abs(np.mean(sims) - kurtosis(exact)) < 0.15
    assert not np.array_equal(sims, simulate_sample_mean_kurtosis(s, n=400, runs=20, seed=2))


def test_paired_shift_counts_each_setting() -> None:
    rows = [  # (scoring, base kurtosis, aligned kurtosis, base r, aligned r)
        ("protocol", 0.0, 2.0, 0.5, 0.3),  # more peaked, less accurate
        ("protocol", 1.0, 0.5, 0.2, 0.1),  # less peaked, less accurate
        ("protocol", 0.0, 3.0, 0.1, 0.4),  # more peaked, more accurate
        ("protocol", 0.0, np.nan, 0.1, 0.4),  # no kurtosis: not a setting
        ("expected", 0.0, 1.0, 0.3, 0.3),  # equal r is not less accurate
    ]
    table = pd.DataFrame(rows, columns=["scoring", "base kurtosis", "aligned kurtosis", "base r", "aligned r"])
    shift = paired_shift(table).set_index("scoring")
    assert shift.loc["protocol", ["settings", "more peaked", "less accurate", "both"]].tolist() == [3, 2, 2, 1]
    assert shift.loc["protocol", "median Δ kurtosis"] == pytest.approx(2.0)
    assert shift.loc["protocol", "median Δ r"] == pytest.approx(-0.1)
    assert shift.loc["expected", ["settings", "more peaked", "less accurate", "both"]].tolist() == [1, 1, 0, 0]
    assert list(shift.index) == ["protocol", "expected"]  # in the table's order


def test_paired_shift_counts_the_moves_the_adjusted_tests_confirm() -> None:
    """A pooled table is one table: each measure's p-values re-adjusted together, and only moves in
    the counted direction whose adjusted p is below 0.05 count as confirmed."""
    rows = [  # (scoring, base kurtosis, aligned kurtosis, base r, aligned r, p of Δ kurtosis, p of Δ r)
        ("protocol", 0.0, 2.0, 0.5, 0.3, 0.001, 0.002),  # both moves tested and small p
        ("protocol", 0.0, 1.0, 0.5, 0.4, 0.04, 0.5),  # a rise whose p does not survive the family
        ("protocol", 1.0, 0.0, 0.5, 0.6, 0.001, 0.001),  # a significant fall is not a rise
    ]
    table = pd.DataFrame(
        rows, columns=["scoring", "base kurtosis", "aligned kurtosis", "base r", "aligned r", "Δ kurtosis p", "Δ r p"]
    )
    pooled = adjust_table(pd.concat([table, table], ignore_index=True))
    for key in ("Δ kurtosis", "Δ r"):
        np.testing.assert_array_equal(pooled[f"{key} p adj"], holm(pooled[f"{key} p"].to_numpy()))
    shift = paired_shift(pooled).set_index("scoring").loc["protocol"]
    assert (shift["more peaked"], shift["more peaked, adjusted p < 0.05"]) == (4, 2)
    assert (shift["less accurate"], shift["less accurate, adjusted p < 0.05"]) == (4, 2)
    assert "more peaked, adjusted p < 0.05" not in paired_shift(table.drop(columns=["Δ kurtosis p", "Δ r p"]))


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"pairs": [{"base": "smollm2-135m-instruct", "aligned": "smollm2-135m-instruct"}]}, "same judge twice"),
        ({"scales": ["0-100"], "sampling": {"max_tokens": 2}}, "protocol reads at most 2"),
        ({"pairs": [], "colour": 1}, "unknown config key .colour."),
    ],
)
def test_bad_align_config(config: dict, fragment: str) -> None:
    with pytest.raises(NumbiasError, match=fragment):
        parse_align(config)


def test_unknown_judge_in_pair(tmp_path) -> None:
    from numbias.studies.alignment import align

    with pytest.raises(NumbiasError, match="unknown judge 'nope'"):
        align(
            {"pairs": [{"base": "nope", "aligned": "smollm2-135m-instruct"}], "extra_aligned": [], "out": str(tmp_path)}
        )


@pytest.mark.model
def test_seeded_protocol_runs(smollm2) -> None:
    prompts = [TASKS["vader"].template.fill({"word": w}, SCALE, chat=True) for w in ["happy", "awful"]]
    one = list(smollm2.sample(prompts, n=10, temperature=0.7, max_tokens=5, seed=1))
    assert one == list(smollm2.sample(prompts, n=10, temperature=0.7, max_tokens=5, seed=1))
    assert one != list(smollm2.sample(prompts, n=10, temperature=0.7, max_tokens=5, seed=2))


@pytest.mark.model
def test_protocol_agrees_with_exact_expectation_within_sampling_noise(smollm2) -> None:
    """200 VADER items, 10 answers at T = 0.7 against the exact distribution read at
    T = 0.7. Read the way the exact distribution reads (a number opening the answer),
    the per-item means correlate with the exact expectation as well as sampling noise
    allows (the band comes from sampling the exact distributions themselves), and the
    pooled answer categories match the exact ones."""
    from numbias.judge.config import SamplingConfig
    from numbias.studies.alignment import protocol_agreement

    data = TASKS["vader"].load(n=200)
    prompts = [TASKS["vader"].template.fill(r, SCALE, chat=True) for r in data.records()]
    res = protocol_agreement(smollm2, prompts, SCALE, SamplingConfig(), runs=100)
    low, high = res["exact reading"]["band"]
    assert low <= res["exact reading"]["pearson"] <= high
    assert res["tv"] < 0.03
    assert 0 < res["protocol"]["numeric answers"] <= 1
