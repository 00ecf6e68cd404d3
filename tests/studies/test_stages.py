"""The inference behind the stage table, the align table and the run verdict, on data
built by hand: per-seed values that are known, paired-by-seed differences against
levels, Holm over the table as printed, and the measures jitter and format cannot fool."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import numbias
import numbias.studies.stages as stages
from numbias.backends.fake import FakeBackend
from numbias.core.inference import holm, paired_effect, resamples_for
from numbias.core.metrics import kurtosis_rows, mean_rows, pearson_rows
from numbias.data.dataset import make_dataset
from numbias.judge.config import JudgeConfig
from numbias.report.verdict import LEVEL_WORDS, study_verdicts
from numbias.studies.alignment import paired_shift
from numbias.studies.stages import METRICS, effect_text, stage_table

N = 200
SEEDS = (0, 1, 2)
SFT_LEVEL = (1.0, 2.0, 3.0)  # the SFT seeds' next-token entropy: a wide spread of levels
DPO_SHIFT = (0.29, 0.30, 0.31)  # DPO after SFT moves each seed by almost the same amount


def _lab() -> tuple[list[JudgeConfig], pd.DataFrame, pd.DataFrame, np.ndarray]:
    """A base, three SFT seeds and three SFT+DPO seeds on one task: the base's next-token
    entropy is e_i; SFT seed k's is e_i − mean(e) + SFT_LEVEL[k]; SFT+DPO seed k's is
    SFT seed k's + DPO_SHIFT[k]. Expected scores are noisy copies of the humans'."""
    rng = np.random.default_rng(0)
    human = rng.uniform(1, 5, N)
    e = rng.normal(2.0, 0.3, N)
    nte = {"base": e}
    for k in SEEDS:
        nte[f"sft-s{k}"] = e - e.mean() + SFT_LEVEL[k]
        nte[f"dpo-s{k}"] = nte[f"sft-s{k}"] + DPO_SHIFT[k]
    frames, rows = [], []
    for name, entropy in nte.items():
        expected = np.clip(2 * (human - 1) + rng.normal(0, 1.0 if name == "base" else 0.7, N), 0, 9)
        frames.append(
            pd.DataFrame(
                {
                    "judge": name,
                    "task": "t",
                    "scale": "0-9",
                    "mode": "exact",
                    "id": [f"i{i}" for i in range(N)],
                    "human": human,
                    "numeric_mass": 1.0,
                    "out_of_scale": 0.0,
                    "other": 0.0,
                    "expected": expected,
                    "next_token_entropy": entropy,
                }
            )
        )
        rows.append(
            {
                "judge": name,
                "task": "t",
                "scale": "0-9",
                "rule": "expected",
                "mode": 4.0,
                "kurtosis": float(kurtosis_rows(expected)),
                "pearson": float(pearson_rows(expected, human)),
                "entropy": 0.8,
                "mode_share": 0.2,
            }
        )
    judges = [JudgeConfig(model=name) for name in nte]
    return judges, pd.DataFrame(rows), pd.concat(frames, ignore_index=True), human


@pytest.fixture()
def lab(monkeypatch: pytest.MonkeyPatch) -> tuple[list[JudgeConfig], pd.DataFrame, pd.DataFrame, np.ndarray]:
    def stage_of(judge: JudgeConfig) -> tuple[str, int | None]:
        name = judge.model
        return ("base", None) if name == "base" else ("SFT" if name.startswith("sft") else "SFT+DPO", int(name[-1]))

    monkeypatch.setattr(stages, "stage_of", stage_of)
    return _lab()


def test_stage_rows_count_items_and_seeds_and_pair_dpo_with_its_sft(lab) -> None:
    judges, summary, items, human = lab
    table = stage_table(judges, summary, items, ranges={"t": (1.0, 5.0)}, n_boot=400, seed=3)
    rows = table.set_index(["stage", "against"])
    assert set(rows.index) == {("SFT", "base"), ("SFT+DPO", "base"), ("SFT+DPO", "SFT, same seed")}
    assert (rows["seeds"] == 3).all() and (rows["items"] == N).all()
    sft = rows.loc[("SFT", "base")]
    # base one row, SFT its three seeds: the item part is exactly 0 here (every seed moves every item by the
    # same amount), so the interval is the t interval of the per-seed levels (df 2)
    delta = np.mean(SFT_LEVEL) - 2.0 - (items[items.judge == "base"].next_token_entropy.mean() - 2.0)
    half = stats.t.ppf(0.975, 2) * np.std(SFT_LEVEL, ddof=1) / np.sqrt(3)
    assert sft["Δ next_token_entropy"] == pytest.approx(delta, abs=1e-12)
    assert (sft["Δ next_token_entropy low"], sft["Δ next_token_entropy high"]) == pytest.approx(
        (delta - half, delta + half), abs=1e-6
    )
    paired = rows.loc[("SFT+DPO", "SFT, same seed")]
    # paired by seed: the sd of the per-seed differences (0.01), not of the DPO levels (1.0)
    half = stats.t.ppf(0.975, 2) * np.std(DPO_SHIFT, ddof=1) / np.sqrt(3)
    assert paired["Δ next_token_entropy"] == pytest.approx(0.30, abs=1e-12)
    assert (paired["Δ next_token_entropy low"], paired["Δ next_token_entropy high"]) == pytest.approx(
        (0.30 - half, 0.30 + half), abs=1e-6
    )
    assert paired["base next_token_entropy"] == pytest.approx(np.mean(SFT_LEVEL))  # the SFT seeds' mean level
    assert paired["Δ next_token_entropy p adj"] < 0.05 and effect_text(paired, "next_token_entropy").endswith(" *")
    # the same data read as levels (unpaired): the seed spread of the levels hides the effect
    values = {j: items[items.judge == j].next_token_entropy.to_numpy() for j in items.judge.unique()}
    unpaired = paired_effect(
        mean_rows, [values[f"sft-s{k}"] for k in SEEDS], [values[f"dpo-s{k}"] for k in SEEDS], human, n_boot=400, seed=3
    )
    assert unpaired.low < 0 < unpaired.high and not unpaired.significant()


def test_stage_table_is_one_holm_family_per_measure_and_its_cells_say_so(lab) -> None:
    judges, summary, items, _ = lab
    table = stage_table(judges, summary, items, ranges={"t": (1.0, 5.0)}, n_boot=400, seed=3)
    keys = [f"Δ {m}" for m in METRICS]
    raw = np.concatenate([table[f"{k} p"].to_numpy() for k in keys])
    adjusted = np.concatenate([table[f"{k} p adj"].to_numpy() for k in keys])
    for k in keys:  # each measure over every row of the table, one family
        np.testing.assert_array_equal(table[f"{k} p adj"], holm(table[f"{k} p"].to_numpy()))
    assert (adjusted[np.isfinite(raw)] >= raw[np.isfinite(raw)]).all()
    row = table.iloc[0].to_dict()
    text = effect_text(row, "pearson")
    assert text.startswith(f"{row['base pearson']:.2f} → {row['pearson']:.2f}, Δ {row['Δ pearson']:+.2f} [")
    assert "p_adj" in text and text.endswith(" *") == (row["Δ pearson p adj"] < 0.05)
    # a one-seed row: its interval is a paired item bootstrap, but one training run is not tested
    two = ["base", "sft-s0"]
    one = stage_table(
        judges[:2], summary[summary.judge.isin(two)], items[items.judge.isin(two)], n_boot=50, seed=3
    ).iloc[0]
    base, sft = (items[items.judge == j].sort_values("id") for j in ("base", "sft-s0"))  # the table's item order
    direct = paired_effect(pearson_rows, base.expected, sft.expected, base.human, n_boot=resamples_for(1, 50), seed=3)
    assert (one["Δ pearson"], one["Δ pearson low"], one["Δ pearson high"]) == pytest.approx(
        (direct.delta, direct.low, direct.high)
    )
    assert (
        np.isnan(one["Δ pearson p"])
        and np.isnan(one["Δ pearson p adj"])
        and not effect_text(one, "pearson").endswith("*")
    )
    assert one["resampled"] == "items; one training run, not tested"
    assert np.isnan(one["Δ sd_ratio"])  # no human range given: no SD ratio


def _fake(name: str, answer) -> FakeBackend:
    """A one-token judge: ``answer(word)`` gives (score, mass) pairs over the pieces 0-9."""

    def logits(prompt, tokens):
        row = np.full(11, -50.0)
        if tokens:
            row[10] = 0.0
        else:
            for score, mass in answer(prompt.user.split()[-1]):
                row[score] = np.log(mass)
        return row

    backend = FakeBackend([*"0123456789", ""], logits, eos=10)
    backend.identity["model"] = name
    return backend


WORDS = [f"w{k:02d}" for k in range(40)]
HUMAN = [1 + k % 5 for k in range(40)]


def _task() -> dict:
    frame = pd.DataFrame({"id": WORDS, "word": WORDS, "human": HUMAN})
    return {
        "dataset": make_dataset("words", frame, fields=["word"], human_range=(1, 5)),
        "template": "Rate from {lo} to {hi}: {word}",
    }


def test_align_table_has_cis_and_holm_over_its_rows(tmp_path) -> None:
    base = _fake("base", lambda w: [(int(w[1:]) % 5 * 2, 1.0)])
    aligned = _fake("aligned", lambda w: [(7, 1.0)] if int(w[1:]) % 3 else [(int(w[1:]) % 5 * 2, 1.0)])
    res = numbias.align(
        {
            "pairs": [{"base": base, "aligned": aligned}],
            "extra_aligned": [],
            "tasks": [_task()],
            "scales": ["0-9"],
            "sample": False,
            "simulations": 10,
            "bootstrap": 100,
            "out": str(tmp_path),
        }
    )
    table = res.table
    assert len(table) == 2 and (table["items"] == 40).all()
    np.testing.assert_allclose(table["Δ kurtosis"], table["aligned kurtosis"] - table["base kurtosis"], atol=1e-12)
    np.testing.assert_allclose(table["Δ r"], table["aligned r"] - table["base r"], atol=1e-12)
    assert ((table["Δ r low"] <= table["Δ r"]) & (table["Δ r"] <= table["Δ r high"])).all()
    for key in ("Δ kurtosis", "Δ r"):
        np.testing.assert_array_equal(table[f"{key} p adj"], holm(table[f"{key} p"].to_numpy()))
    first = table.iloc[0]
    items = res.study.items
    scores = [
        items[(items.judge == j) & (items.scale == first["scale"])]["protocol"].to_numpy() for j in ("base", "aligned")
    ]
    direct = paired_effect(pearson_rows, *scores, HUMAN, n_boot=resamples_for(2, 100), seed=0)
    assert (first["Δ r low"], first["Δ r high"], first["Δ r p"]) == pytest.approx((direct.low, direct.high, direct.p))
    shift = paired_shift(table).set_index("scoring")
    for scoring, part in table.groupby("scoring"):
        peaked = part["aligned kurtosis"] > part["base kurtosis"]
        assert shift.loc[scoring, "more peaked, adjusted p < 0.05"] == int(
            (peaked & (part["Δ kurtosis p adj"] < 0.05)).sum()
        )
    assert (table["aligned SD ratio"] < table["base SD ratio"]).all()
    lead = " ".join(numbias.report.verdict.align_lead(res))
    assert "with a Holm-adjusted p below 0.05" in lead


def _verdict(tmp_path, backend: FakeBackend, rules: list[str]):
    results = numbias.run(
        {
            "judges": [backend],
            "tasks": [_task()],
            "scales": ["0-9"],
            "rules": rules,
            "out": str(tmp_path),
            "bootstrap": 50,
        }
    )
    (verdict,) = study_verdicts(results)
    return results.summary.set_index("rule"), verdict


def test_a_judge_that_barely_varies_is_said_to(tmp_path) -> None:
    """Seven for every item but one (six): its kurtosis is large, and it describes jitter."""
    summary, verdict = _verdict(tmp_path, _fake("sevens", lambda w: [(6 if w == "w00" else 7, 1.0)]), ["greedy"])
    scores = np.where(np.array(WORDS) == "w00", 6.0, 7.0)
    ratio = np.std(scores / 9) / np.std((np.array(HUMAN) - 1) / 4)
    row = summary.loc["greedy"]
    assert row["sd_ratio"] == pytest.approx(ratio, abs=1e-12) and ratio < 0.2
    assert row["human_mode_share"] == pytest.approx(np.mean(np.rint((np.array(HUMAN) - 1) / 4 * 9) == 7))
    assert (row["out_of_scale"], row["non_numeric"]) == pytest.approx((0.0, 0.0), abs=1e-12)
    assert row["kurtosis"] > 3  # the number a kurtosis-only verdict would read as a strong pile-up
    assert verdict.level == "flat" and LEVEL_WORDS["flat"] == "the judge barely varies"
    assert "barely varies" in verdict.finding() and "describes jitter" in verdict.finding()


def test_a_constant_judge_has_sd_ratio_zero(tmp_path) -> None:
    summary, verdict = _verdict(tmp_path, _fake("sevens", lambda w: [(7, 1.0)]), ["greedy"])
    assert summary.loc["greedy", "sd_ratio"] == 0.0 and verdict.level == "flat"
    assert "barely varies" in verdict.finding()


def test_mass_outside_the_scale_reads_as_a_format_failure_not_a_pile_up(tmp_path) -> None:
    """On 1-5, 80% of every answer is "9": the protocol clips it to 5, a pile-up on paper."""

    def answer(word: str) -> list[tuple[int, float]]:
        return [(9, 0.8), (HUMAN[WORDS.index(word)], 0.2)]

    results = numbias.run(
        {
            "judges": [_fake("clipped", answer)],
            "tasks": [_task()],
            "scales": ["1-5"],
            "rules": ["protocol", "expected"],
            "out": str(tmp_path),
            "bootstrap": 50,
        }
    )
    row = results.summary.set_index("rule").loc["protocol"]
    assert row["out_of_scale"] == pytest.approx(0.8, abs=1e-9) and row["non_numeric"] == pytest.approx(0, abs=1e-9)
    (verdict,) = study_verdicts(results)
    assert verdict.rule == "protocol" and verdict.level == "format"
    assert "Format failures first" in verdict.finding() and "clips" in verdict.finding()
    assert verdict.advice().startswith("Fix the answer format")


def test_the_badge_follows_the_adjusted_tests(tmp_path) -> None:
    """A judge that copies the humans: its excess over them is within noise, and the badge says so."""
    _, verdict = _verdict(
        tmp_path, _fake("copy", lambda w: [(round((HUMAN[WORDS.index(w)] - 1) / 4 * 9), 1.0)]), ["greedy"]
    )
    assert verdict.excess_share.delta == pytest.approx(0.0) and not verdict.excess_share.significant()
    assert verdict.level == "noise" and "within noise" in verdict.finding()
    _, biased = _verdict(
        tmp_path / "b",
        _fake(
            "sevens",
            lambda w: [(7, 1.0)] if WORDS.index(w) % 4 else [(round((HUMAN[WORDS.index(w)] - 1) / 4 * 9), 1.0)],
        ),
        ["greedy"],
    )
    assert biased.excess_share.significant() and biased.level == "strong"
