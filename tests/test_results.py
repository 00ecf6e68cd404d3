"""Committed results recompute from their own files: every committed report rebuilds
from its folder alone (no model, no store, no data file), and each study's headline
number, recomputed from the folder's files, equals what its tables and write-up state."""

from __future__ import annotations

import json
import runpy
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import numbias.judge.judging as judge_module
from numbias.core.inference import paired_effect
from numbias.core.metrics import pearson_rows
from numbias.mitigations.selection import CHOICE_ROW, DEFAULT_ROW
from numbias.report.build import REBUILDS, folder_config, rebuild
from numbias.studies.recompute import PREDICTIONS, TEXT, read_csv

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"
FOLDERS = sorted({p.parent for p in RESULTS.rglob("report.html")}
                 | {p.parent for name, *_ in REBUILDS for p in RESULTS.rglob(name)})
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


def test_there_are_committed_reports() -> None:
    assert FOLDERS, "docs/results holds no results folder"


@pytest.mark.parametrize("folder", FOLDERS, ids=[str(f.relative_to(RESULTS)) for f in FOLDERS])
def test_every_committed_report_rebuilds_from_its_folder_alone(folder: Path, no_backend: Path) -> None:
    copy = no_backend / "copy"
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns(".numbias*", "store.sqlite*", "report.html"))
    assert rebuild(copy) == copy / "report.html"
    assert "<html" in (copy / "report.html").read_text(encoding="utf-8")[:200]


def _mitigation_headline(folder: Path) -> None:
    """The automatic choice's test r and its Δ r against the default with the paired
    interval, recomputed from the test predictions the folder holds."""
    config = folder_config(folder)[1]
    table = pd.read_csv(folder / "mitigation.csv").set_index(["judge", "task", "row"])
    predictions = read_csv(folder, PREDICTIONS, ["judge", "task", "row", "id", "human", "prediction"],
                           TEXT.__contains__)
    for (judge, task), part in predictions.groupby(["judge", "task"], sort=False):
        rows = {row: p.set_index("id") for row, p in part.groupby("row")}
        default, choice = rows[DEFAULT_ROW], rows[CHOICE_ROW].loc[rows[DEFAULT_ROW].index]
        human = default["human"].to_numpy()
        assert float(pearson_rows(choice["prediction"].to_numpy()[None], human[None])[0]) == \
            pytest.approx(table.loc[(judge, task, CHOICE_ROW), "pearson"], abs=1e-12)
        gain = paired_effect(pearson_rows, default["prediction"].to_numpy(), choice["prediction"].to_numpy(), human,
                             n_boot=config.bootstrap, seed=config.seed)
        stated = table.loc[(judge, task, CHOICE_ROW)]
        assert (gain.delta, gain.low, gain.high) == pytest.approx(
            (stated["Δ r"], stated["Δ r_low"], stated["Δ r_high"]), abs=1e-12)


@pytest.mark.parametrize("folder", FOLDERS, ids=[str(f.relative_to(RESULTS)) for f in FOLDERS])
def test_every_study_headline_recomputes_from_its_files(folder: Path, no_backend: Path) -> None:
    """Mitigation: the choice against the default, from the predictions; run and align:
    every summary row's Pearson r, from the distributions."""
    name, config, _, from_files = folder_config(folder)
    if name == "mitigate-config.yaml":
        _mitigation_headline(folder)
        return
    results = from_files(folder, config)
    stated = pd.DataFrame(json.loads((folder / "summary.json").read_text(encoding="utf-8")))
    assert np.allclose(results.summary["pearson"].to_numpy(float), stated["pearson"].to_numpy(float),
                       atol=1e-12, equal_nan=True)


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
