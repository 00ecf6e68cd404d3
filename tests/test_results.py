"""Committed results recompute from their own files: every committed report rebuilds
from its folder alone (no model, no store, no data file), and each study's headline
number, recomputed from the folder's files, equals what its tables and write-up state.
A folder of an older layout holds per-item scores but not their distributions
(alignment-lab/study): it commits no report, ``numbias report`` says what it lacks, and
its numbers recompute from its scores and its write-up's script."""

from __future__ import annotations

import json
import runpy
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import numbias.judge.judging as judge_module
import numbias.studies.stages as stages
from numbias.core.inference import paired_effect
from numbias.core.metrics import pearson_rows
from numbias.mitigations.selection import CHOICE_ROW, DEFAULT_ROW
from numbias.report.build import REBUILDS, folder_config, rebuild
from numbias.studies.comparison import compare, coverage
from numbias.studies.mitigation import make_splits
from numbias.studies.recompute import DISTS, PREDICTIONS, TEXT, read_csv, read_tasks
from numbias.util.errors import NumbiasError

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"
FOLDERS = sorted(
    {p.parent for p in RESULTS.rglob("report.html")} | {p.parent for name, *_ in REBUILDS for p in RESULTS.rglob(name)}
)
"""Every committed folder with a report, or that ``numbias report`` would take."""


@pytest.fixture
def no_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No backend can start, and the working folder is empty: no store or data file the
    configs name (relative paths) can be reached."""

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("a committed report must rebuild without a backend")

    monkeypatch.setattr(judge_module, "create_backend", refuse)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def numbers_only(folder: Path) -> bool:
    """A folder with per-item scores but no distributions: no page can be drawn from it."""
    return not (folder / DISTS).is_file() and (folder / "items.csv.gz").is_file()


def test_there_are_committed_reports() -> None:
    assert FOLDERS, "docs/results holds no results folder"
    assert [f for f in FOLDERS if not numbers_only(f)], "every committed folder is numbers-only"


@pytest.mark.parametrize("folder", FOLDERS, ids=[str(f.relative_to(RESULTS)) for f in FOLDERS])
def test_every_committed_report_rebuilds_from_its_folder_alone(folder: Path, no_backend: Path) -> None:
    copy = no_backend / "copy"
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns(".numbias*", "store.sqlite*", "report.html"))
    if numbers_only(folder):
        assert not (folder / "report.html").exists(), "a report the folder cannot rebuild is committed"
        with pytest.raises(NumbiasError, match=r"holds no dists\.csv\.gz, only per-item scores \(items\.csv\.gz\)"):
            rebuild(copy)
        assert not (copy / "report.html").exists()
        return
    assert rebuild(copy) == copy / "report.html"
    assert "<html" in (copy / "report.html").read_text(encoding="utf-8")[:200]


def _mitigation_headline(folder: Path) -> None:
    """The automatic choice's test r and its Δ r against the default with the paired
    interval, recomputed from the test predictions the folder holds."""
    config = folder_config(folder)[1]
    table = pd.read_csv(folder / "mitigation.csv").set_index(["judge", "task", "row"])
    predictions = read_csv(
        folder, PREDICTIONS, ["judge", "task", "row", "id", "human", "prediction"], TEXT.__contains__
    )
    for (judge, task), part in predictions.groupby(["judge", "task"], sort=False):
        rows = {row: p.set_index("id") for row, p in part.groupby("row")}
        default, choice = rows[DEFAULT_ROW], rows[CHOICE_ROW].loc[rows[DEFAULT_ROW].index]
        human = default["human"].to_numpy()
        assert float(pearson_rows(choice["prediction"].to_numpy()[None], human[None])[0]) == pytest.approx(
            table.loc[(judge, task, CHOICE_ROW), "pearson"], abs=1e-12
        )
        gain = paired_effect(
            pearson_rows,
            default["prediction"].to_numpy(),
            choice["prediction"].to_numpy(),
            human,
            n_boot=config.bootstrap,
            seed=config.seed,
        )
        stated = table.loc[(judge, task, CHOICE_ROW)]
        assert (gain.delta, gain.low, gain.high) == pytest.approx(
            (stated["Δ r"], stated["Δ r_low"], stated["Δ r_high"]), abs=1e-12, nan_ok=True
        )  # an interval the bootstrap cannot give (constant resamples) is NaN in both


def _scores_headline(folder: Path) -> None:
    """Every summary row's Pearson r, from the per-item scores of a folder without
    distributions (a sampled rule is read in its own mode; the others in the exact one)."""
    items = pd.read_csv(folder / "items.csv.gz", dtype={"id": str}, keep_default_na=False, na_values={"human": [""]})
    stated = pd.DataFrame(json.loads((folder / "summary.json").read_text(encoding="utf-8")))
    sets = dict(iter(items.groupby(["judge", "task", "scale", "mode"], sort=False)))
    for row in stated.to_dict("records"):
        mode = "exact" if row["rule"] in ("expected", "protocol") else row["rule"]
        part = sets[(row["judge"], row["task"], row["scale"], mode)]
        assert len(part) == row["n"]
        r = pearson_rows(part[row["rule"]].to_numpy(float)[None], part["human"].to_numpy(float)[None])[0]
        assert float(r) == pytest.approx(row["pearson"], abs=1e-9), row


def _same_coverage(table: pd.DataFrame, path: Path) -> None:
    stated = pd.read_csv(path)
    numbers = [c for c in table.columns if pd.api.types.is_float_dtype(table[c])]
    assert np.allclose(table[numbers].to_numpy(float), stated[numbers].to_numpy(float), atol=1e-12)


def _comparison_headline(folder: Path) -> None:
    """A system comparison on DialSummEval: the judge's published scores joined with the
    human scores read from the shared data (not redistributed) give the committed
    coverage table and the committed comparison's estimates, number for number; under
    ``calibrated/``, those of the judge calibrated as the folder's settings say, and the
    raw judge's coverage on the same dialogues (``calibrated/raw/``)."""
    calibrated = folder.parent.name == "calibrated"
    published = folder.parents[1] if calibrated else folder.parent
    script = runpy.run_path(str(RESULTS.parents[1] / "scripts" / "systems_coverage.py"))
    if not script["SHARED"].is_file():
        pytest.skip(f"the human scores are read from {script['SHARED']}, which this machine lacks")
    settings = json.loads((published / "settings.json").read_text(encoding="utf-8"))
    rows = script["items"](script["SHARED"], settings["criterion"], settings["limit"])
    scores, _ = script["from_published"](published, rows)
    if calibrated:
        scores = script["calibrated"](scores, settings["calibrate"])
    columns = {
        "score": "calibrated" if calibrated else "expected",
        "human_range": (1.0, 5.0),
        "group": "group",
        "system_column": "system",
        "judge_range": (1.0, 5.0),
    }
    budgets, draws = tuple(settings["budgets"]), settings["draws"]
    _same_coverage(coverage(scores, budgets=budgets, draws=draws, **columns), folder.parent / "coverage.csv")
    if calibrated:  # the raw judge on the same dialogues and draws
        raw = {**columns, "score": "expected"}
        _same_coverage(coverage(scores, budgets=budgets, draws=draws, **raw), folder.parent / "raw" / "coverage.csv")
    again = compare(scores, labels=settings["budgets"][0], **columns).systems
    committed = pd.read_csv(folder / "systems.csv")
    assert np.allclose(
        again[["naive", "ppi", "ppi_low", "ppi_high"]].to_numpy(float),
        committed[["naive", "ppi", "ppi_low", "ppi_high"]].to_numpy(float),
        atol=1e-12,
    )


def test_alignment_lab_stage_table_recomputes_from_its_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """restage.py's stage table, from summary.json and items.csv.gz alone, equals the
    committed stages.csv, and its SFT VADER 0–9 row equals what the write-up states."""
    monkeypatch.setattr(stages, "stage_of", stages.stage_of)  # restage.py replaces it
    lab = RESULTS / "alignment-lab"
    table = runpy.run_path(str(lab / "restage.py"))["table"]()
    stated = pd.read_csv(lab / "study" / "stages.csv")
    assert list(table.columns) == list(stated.columns) and len(table) == len(stated) == 72
    numbers = [c for c in stated if pd.api.types.is_float_dtype(stated[c])]
    assert np.allclose(table[numbers].to_numpy(float), stated[numbers].to_numpy(float), atol=1e-9, equal_nan=True)
    row = table[
        (table["task"] == "vader")
        & (table["scale"] == "0-9")
        & (table["rule"] == "expected")
        & (table["stage"] == "SFT")
        & (table["against"] == "base")
    ].iloc[0]
    shown = tuple(round(row[c], 2) for c in ("Δ kurtosis", "Δ kurtosis low", "Δ kurtosis high", "Δ kurtosis p adj"))
    assert shown == (0.28, -1.92, 2.49, 1.0)
    readme = (lab / "README.md").read_text(encoding="utf-8")
    assert "1.48 → 1.76, Δ +0.28 [−1.92, +2.49], p_adj 1.00" in readme


@pytest.mark.parametrize("folder", FOLDERS, ids=[str(f.relative_to(RESULTS)) for f in FOLDERS])
def test_every_study_headline_recomputes_from_its_files(folder: Path, no_backend: Path) -> None:
    """Mitigation: the choice against the default, from the predictions; run and align:
    every summary row's Pearson r, from the distributions."""
    if (folder / "compare.json").is_file():
        _comparison_headline(folder)
        return
    name, config, _, from_files = folder_config(folder)
    if name == "mitigate-config.yaml":
        _mitigation_headline(folder)
        return
    if numbers_only(folder):
        _scores_headline(folder)
        return
    results = from_files(folder, config)
    summary = results.study.summary if name == "align-config.yaml" else results.summary
    stated = pd.DataFrame(json.loads((folder / "summary.json").read_text(encoding="utf-8")))
    assert np.allclose(
        summary["pearson"].to_numpy(float), stated["pearson"].to_numpy(float), atol=1e-12, equal_nan=True
    )


@pytest.mark.parametrize(
    "folder",
    [p.parent for p in sorted(RESULTS.rglob("mitigate-config.yaml"))],
    ids=lambda p: str(p.relative_to(RESULTS)),
)
def test_every_committed_mitigate_split_is_the_one_make_splits_draws(folder: Path) -> None:
    """Each row's test items (the ids of its committed predictions) are the test split
    ``make_splits`` draws from the folder's data file and config, so a change to the
    split shows here and not only in new results."""
    config = folder_config(folder)[1]
    predictions = read_csv(folder, PREDICTIONS, ["task", "row", "id"], TEXT.__contains__)
    for name, task in read_tasks(folder).items():
        ((_, test),) = make_splits(len(task.data), config, task.data.groups)
        want = sorted(np.array(task.data.ids)[test])
        rows = predictions[predictions["task"] == name].groupby("row")
        assert len(rows) > 1 and all(sorted(part["id"]) == want for _, part in rows), f"{folder.name}/{name}"


def test_replication_headline_recomputes_from_its_files() -> None:
    module = runpy.run_path(str(RESULTS / "replication" / "replicate.py"))
    table = module["analyse"]().set_index("row")
    gain = table.loc["gain (saved − default, paired)"]
    assert (round(gain["pearson"], 2), round(gain["low"], 2), round(gain["high"], 2)) == (0.17, 0.14, 0.20)
    assert round(table.loc["paper default (0-9, protocol)", "pearson"], 2) == 0.60
    assert round(table.loc["saved judge (qwen-vader.json)", "pearson"], 2) == 0.77
    readme = (RESULTS / "replication" / "README.md").read_text(encoding="utf-8")
    assert "**+0.17 [+0.14, +0.20]**" in readme and "0.77 [0.75, 0.79]" in readme
    assert table.loc["90% interval coverage", "pearson"] == pytest.approx(0.902)


ANALYSES = {
    "formats.csv": RESULTS / "formats" / "analyse.py",
    "versus_range.csv": RESULTS / "formats-mitigate" / "versus_range.py",
}
"""A table a write-up quotes, and the script that computes it from the folder's files."""
INPUTS = ("items.csv", "data.csv.gz", "predictions.csv.gz")


@pytest.mark.slow
@pytest.mark.parametrize(
    "table",
    sorted(p for name in ANALYSES for p in RESULTS.rglob(name)),
    ids=lambda p: str(p.relative_to(RESULTS)),
)
def test_every_format_table_recomputes_from_its_folder(
    table: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The script run on a copy of the folder's inputs writes the committed table."""
    for name in INPUTS:
        if (table.parent / name).is_file():
            shutil.copy(table.parent / name, tmp_path / name)
    monkeypatch.setattr("sys.argv", ["script", str(tmp_path)])
    runpy.run_path(str(ANALYSES[table.name]), run_name="__main__")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / table.name), pd.read_csv(table), rtol=1e-5)
