"""numbias compare from Python and the command line, the system column through run and
score, and the coverage check at labelling budgets (synthetic systems, no model)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import numbias
from numbias.cli import app
from numbias.studies.comparison import coverage, draw_labels, load_items
from numbias.util.errors import NumbiasError

TEMPLATE = "Rate {summary} from {lo} to {hi}"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _outputs(groups: int = 120, seed: int = 0, means: tuple[float, ...] = (3.6, 3.0, 3.1)) -> pd.DataFrame:
    """Systems answering the same groups (a shared difficulty per group), human scores on
    1-5 and a judge that over-scores and compresses."""
    rng = np.random.default_rng(seed)
    rows = [
        {"model": "ABCDE"[k], "dialogue": f"d{g}", "rating": float(np.clip(m + d + rng.normal(0, 0.5), 1, 5))}
        for g, d in enumerate(rng.normal(0, 0.7, groups))
        for k, m in enumerate(means)
    ]
    frame = pd.DataFrame(rows)
    frame["judge"] = 0.6 * frame.rating + 2 + rng.normal(0, 0.4, len(frame))
    return frame


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_compare_a_scored_table_from_the_command_line(tmp_path: Path) -> None:
    _outputs().to_csv(tmp_path / "out.csv", index=False)
    shown = _invoke(
        "compare",
        "--scores",
        str(tmp_path / "out.csv"),
        "--score-column",
        "judge",
        "--system-column",
        "model",
        "--human",
        "rating",
        "--group",
        "dialogue",
        "--labels",
        "30",
        "--human-range",
        "1-5",
        "--bootstrap",
        "300",
        "--out",
        str(tmp_path / "res"),
    )
    assert "naive judge mean (biased)" in shown and "PPI++" in shown and "P(row beats column)" in shown
    assert "30 groups drawn (seed 0)" in shown and "missing completely at random" in shown
    systems = pd.read_csv(tmp_path / "res" / "systems.csv")
    assert systems.system.tolist() == ["A", "B", "C"] and (systems.labelled == 30).all()
    assert (systems.naive - systems.truth).min() > 0.4  # the judge over-scores every system
    assert ((systems.ppi_low <= systems.truth) & (systems.truth <= systems.ppi_high)).sum() >= 2
    saved = json.loads((tmp_path / "res" / "compare.json").read_text())
    assert saved["settings"]["paired_by_group"] and len(saved["pairs"]) == 3
    page = (tmp_path / "res" / "report.html").read_text()
    assert "P(row beats column)" in page and "true mean" in page


def test_score_carries_the_system_and_compare_reads_its_folder(tmp_path: Path) -> None:
    frame = _outputs(groups=8).rename(columns={"judge": "summary"})
    frame["summary"] = [f"summary {k}" for k in range(len(frame))]
    frame.to_csv(tmp_path / "items.csv", index=False)
    folder = tmp_path / "scored"
    _invoke(
        "score",
        "--data",
        str(tmp_path / "items.csv"),
        "--template",
        TEMPLATE,
        "--human",
        "rating",
        "--human-range",
        "1-5",
        "--system-column",
        "model",
        "--group",
        "dialogue",
        "--model",
        "toy",
        "--backend",
        "plugin-judge",
        "--out",
        str(folder),
    )
    scored = pd.read_csv(folder / "scores.csv")
    assert scored.system.tolist() == frame.model.tolist() and scored.group.tolist() == frame.dialogue.tolist()
    shown = _invoke(
        "compare",
        "--scores",
        str(folder),
        "--score-column",
        "expected",
        "--human-range",
        "1-5",
        "--bootstrap",
        "200",
        "--out",
        str(tmp_path / "res"),
    )
    assert "judge scores on 0-9 mapped linearly onto the human range 1-5" in shown
    here = _invoke(
        "compare",
        "--data",
        str(tmp_path / "items.csv"),
        "--template",
        TEMPLATE,
        "--human",
        "rating",
        "--human-range",
        "1-5",
        "--system-column",
        "model",
        "--group",
        "dialogue",
        "--model",
        "toy",
        "--backend",
        "plugin-judge",
        "--bootstrap",
        "200",
        "--out",
        str(tmp_path / "here"),
    )
    ours, theirs = (pd.read_csv(tmp_path / f / "systems.csv") for f in ("res", "here"))
    assert np.allclose(ours.ppi, theirs.ppi) and (tmp_path / "here" / "store.sqlite").is_file()
    assert "column 'expected'" in here


def test_run_reports_system_level_agreement(tmp_path: Path) -> None:
    frame = _outputs(groups=5).rename(columns={"judge": "summary"})
    frame["summary"] = [f"s{k}" for k in range(len(frame))]
    frame.to_csv(tmp_path / "items.csv", index=False)
    (tmp_path / "study.yaml").write_text(json.dumps({"judges": [{"model": "toy", "backend": "plugin-judge"}]}))
    shown = _invoke(
        "run",
        str(tmp_path / "study.yaml"),
        "--data",
        str(tmp_path / "items.csv"),
        "--template",
        TEMPLATE,
        "--human",
        "rating",
        "--human-range",
        "1-5",
        "--system-column",
        "model",
        "--scale",
        "0-9",
        "--rule",
        "expected",
        "--out",
        str(tmp_path / "run"),
    )
    assert "system-level agreement" in shown and "no human reference system is added" in shown
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary[0]["systems"] == 3 and summary[0]["system_pearson"] is not None
    assert summary[0]["system_kendall_low"] is None  # three systems are too few for Kendall's interval
    page = (tmp_path / "run" / "report.html").read_text()
    assert "system Kendall τ [95% CI]" in page and "no human reference system is added" in page


def test_an_output_of_several_systems_counts_for_each() -> None:
    frame = _outputs(groups=40)
    frame.loc[frame.model == "C", "model"] = "C,D"
    results = numbias.compare(
        frame, system_column="model", human="rating", score="judge", group="dialogue", human_range=(1, 5), n_boot=200
    )
    assert results.systems.system.tolist() == ["A", "B", "C", "D"]
    assert results.systems.set_index("system").loc["D", "items"] == 40
    assert "every row is labelled" in " ".join(results.notes)


def test_pass_rates_are_corrected_and_clipped() -> None:
    results = numbias.compare(
        _outputs(groups=200),
        system_column="model",
        human="rating",
        score="judge",
        group="dialogue",
        labels=60,
        human_range=(1, 5),
        threshold=3.5,
        n_boot=300,
    )
    t = results.systems
    assert (t.pass_naive > t.pass_labelled).all()  # the over-scoring judge passes too many
    assert ((0 <= t.pass_corrected_low) & (t.pass_corrected_high <= 1)).all()
    assert (t.pass_corrected < t.pass_naive).all()


def test_draw_labels_by_group_or_per_system() -> None:
    items = load_items(_outputs(groups=20), system_column="model", human="rating", score="judge", group="dialogue")
    mask = draw_labels(items, 5, seed=1)
    assert mask.sum() == 15 and items.frame[mask].unit.nunique() == 5
    assert (draw_labels(items, 5, seed=1) == mask).all()
    rows = load_items(_outputs(groups=20), system_column="model", human="rating", score="judge")
    assert pd.Series(draw_labels(rows, 4)).groupby(rows.frame.system).sum().tolist() == [4, 4, 4]


def test_the_coverage_check_on_synthetic_systems() -> None:
    """≥ 200 seeded draws per budget: PPI++ covers every system's true mean 92–98% of the
    time with narrower intervals than labelled-only (the judge's item-level r > 0.3), the
    naive mean almost never; a budget leaving nothing unlabelled is skipped."""
    frame = _outputs(groups=1000, seed=3)
    both = coverage(
        frame, system_column="model", human="rating", score="judge", group="dialogue", budgets=(25, 50, 1000), draws=200
    )
    assert set(both.target) == {"population", "these items"}
    table = both[both.target == "population"].set_index(["labels", "estimator"])
    assert sorted(set(table.index.get_level_values(0))) == [25, 50]
    assert (table.judge_r > 0.3).all() and (table.draws == 200).all()
    for n in (25, 50):
        assert 0.92 <= table.loc[(n, "ppi"), "coverage"] <= 0.98, table
        assert 0.9 <= table.loc[(n, "labelled_only"), "coverage"] <= 0.98, table
        assert table.loc[(n, "ppi"), "width_ratio"] < 0.9
        assert table.loc[(n, "naive"), "coverage"] < 0.1


def test_the_mean_of_these_items_is_covered_when_half_are_labelled() -> None:
    """With half the groups labelled the population intervals over-cover the mean of these
    very items; the finite-population ones cover it at about 95%."""
    frame = _outputs(groups=100, seed=5)
    table = coverage(
        frame, system_column="model", human="rating", score="judge", group="dialogue", budgets=(50,), draws=300
    ).set_index(["target", "estimator"])
    assert table.loc[("population", "labelled_only"), "coverage"] > 0.98
    for estimator in ("labelled_only", "ppi"):
        assert 0.92 <= table.loc[("these items", estimator), "coverage"] <= 0.98, table
    assert table.loc[("these items", "ppi"), "width_ratio"] < 0.9


def test_compare_scores_with_a_saved_calibrated_judge(tmp_path: Path) -> None:
    """--calibrated scores --data with the saved judge; its scores on the human scale
    (calibrated_human) are the predictor, and no mapping is noted."""
    saved = json.loads((FIXTURES / "calibrated-judge-format-1.json").read_text())
    saved.update(
        judge={"model": "toy", "backend": "plugin-judge", "label": None, "options": {}},
        template={"text": TEMPLATE, "answer_prefix": None, "system": None},
        human_range=[1.0, 5.0],
        setting={**saved["setting"], "scale": "0-9"},
    )
    (tmp_path / "judge.json").write_text(json.dumps(saved))
    frame = _outputs(groups=6).drop(columns="judge")
    frame["summary"] = [f"summary {k}" for k in range(len(frame))]
    frame.to_csv(tmp_path / "items.csv", index=False)
    shown = _invoke(
        "compare",
        "--data",
        str(tmp_path / "items.csv"),
        "--calibrated",
        str(tmp_path / "judge.json"),
        "--human",
        "rating",
        "--human-range",
        "1-5",
        "--system-column",
        "model",
        "--group",
        "dialogue",
        "--bootstrap",
        "200",
        "--out",
        str(tmp_path / "res"),
    )
    assert "column 'calibrated_human'" in shown and "mapped linearly" not in shown
    assert pd.read_csv(tmp_path / "res" / "systems.csv").labelled.tolist() == [6, 6, 6]


def test_a_comparison_read_back_from_its_json_draws_the_same_page() -> None:
    """compare.json holds everything the page shows: read back, the page is the same
    bytes (pass rates and a truth included); a file that is not one is one error."""
    from numbias.report.build import compare_page
    from numbias.studies.comparison import CompareResults

    results = numbias.compare(
        _outputs(),
        system_column="model",
        human="rating",
        score="judge",
        group="dialogue",
        labels=30,
        threshold=3.5,
        human_range=(1, 5),
        n_boot=200,
    )
    again = CompareResults.from_json(json.loads(json.dumps(results.to_json())))
    assert compare_page(again) == compare_page(results)
    with pytest.raises(NumbiasError, match="not a numbias compare.json: KeyError"):
        CompareResults.from_json({"systems": []})


def test_numbias_report_rebuilds_a_compare_folder_from_its_json(tmp_path: Path) -> None:
    """`numbias report` on a compare folder draws the same page from compare.json alone;
    a compare.json that is not one stops with one line naming it."""
    from numbias.report.build import rebuild

    results = numbias.compare(
        _outputs(),
        system_column="model",
        human="rating",
        score="judge",
        group="dialogue",
        labels=30,
        human_range=(1, 5),
        n_boot=200,
    )
    folder = numbias.write(results, tmp_path / "c")
    page = (folder / "report.html").read_text(encoding="utf-8")
    (folder / "report.html").unlink()
    assert "wrote" in _invoke("report", str(folder))
    assert (folder / "report.html").read_text(encoding="utf-8") == page
    (folder / "compare.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(NumbiasError, match=r"compare\.json is not a numbias compare\.json: not an object"):
        rebuild(folder)
