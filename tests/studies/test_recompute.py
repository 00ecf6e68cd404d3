"""A results folder recomputes itself: ``numbias mitigate --from DIR`` and ``numbias align
--from DIR`` give the study's tables again from the folder's files alone — store
deleted, data file gone, no backend that could start — and the files say what the
tables say (every row's test predictions give its test r)."""

from __future__ import annotations

import gzip
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import numbias
import numbias.judge.judging as judge_module
from numbias.core.metrics import pearson_defined
from numbias.studies.recompute import PREDICTIONS, TEXT, read_csv, read_dists

TEMPLATE = "Rate the item from {lo} to {hi}.\nItem: {word}"
numbias.register_backend("plugin-reader", "plugin_judge:reader", replace=True)


def _cli(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from numbias.cli import main

    monkeypatch.setattr(sys, "argv", ["numbias", *args])
    try:
        main()
        code = 0
    except SystemExit as stop:
        code = int(stop.code or 0)
    return code, capsys.readouterr().err


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A mitigation study (every temperature fitted, contextual calibration's
    content-free items, an item whose id reads as a missing value) and an alignment
    study, written by numbias, on a data file beside them."""
    root = tmp_path_factory.mktemp("recompute")
    ids = ["NA", "nan", *(f"i{k}" for k in range(58))]
    pd.DataFrame({"id": ids, "word": [f"word{k}" for k in range(60)], "stars": [k % 5 + 1 for k in range(60)]}).to_csv(
        root / "items.csv", index=False
    )
    task = {"file": str(root / "items.csv"), "human": "stars", "human_range": [1, 5], "id": "id", "template": TEMPLATE}
    judge = {"model": "aligned", "backend": "plugin-reader", "options": {"bias": 5.0}}
    common = {"tasks": [task], "scales": ["0-9", "1-5"], "bootstrap": 50}
    mitigate = numbias.mitigate(
        {
            **common,
            "judges": [judge],
            "dev": 30,
            "resamples": 3,
            "label_draws": 2,
            "label_sizes": [10, 20],
            "mitigations": ["none", "isotonic", "ridge", "contextual"],
            "temperatures": [0.7, 1.0, "fit"],
            "out": str(root / "mitigate"),
        }
    )
    base = {"model": "base", "backend": "plugin-reader", "options": {"bias": 0.0}}
    align = numbias.align(
        {
            **common,
            "pairs": [{"base": base, "aligned": judge}],
            "extra_aligned": [],
            "sample": False,
            "simulations": 10,
            "out": str(root / "align"),
        }
    )
    return {"mitigate": numbias.write(mitigate), "align": numbias.write(align), "root": root}


@pytest.fixture
def alone(folders: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Copies of the folders with no store and the data file gone; no backend can start."""

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("a re-analysis from a folder must not create a backend")

    monkeypatch.setattr(judge_module, "create_backend", refuse)
    copies = {}
    for kind in ("mitigate", "align"):
        copies[kind] = tmp_path / kind
        shutil.copytree(folders[kind], copies[kind], ignore=shutil.ignore_patterns("store.sqlite*", ".numbias*"))
    data = folders["root"] / "items.csv"
    data.rename(data.with_suffix(".away"))
    yield copies
    data.with_suffix(".away").rename(data)


def _same_files(a: Path, b: Path, names: list[str]) -> None:
    for name in names:
        read = gzip.open if name.endswith(".gz") else open
        with read(a / name, "rb") as x, read(b / name, "rb") as y:
            assert x.read() == y.read(), name


def test_mitigate_from_a_folder_gives_the_same_tables(alone, tmp_path, monkeypatch, capsys) -> None:
    out = tmp_path / "again"
    code, err = _cli(["mitigate", "--from", str(alone["mitigate"]), "--out", str(out)], monkeypatch, capsys)
    assert code == 0, err
    _same_files(
        alone["mitigate"],
        out,
        [
            "mitigation.csv",
            "dev_scores.csv",
            "selection.csv",
            "label_efficiency.csv",
            "dists.csv.gz",
            "data.csv.gz",
            "predictions.csv.gz",
            "report.html",
        ],
    )
    table = pd.read_csv(out / "mitigation.csv")
    assert table["p adjusted"].notna().sum() >= 5 and table["Δ r_low"].notna().all() == False  # noqa: E712
    config = yaml.safe_load((out / "mitigate-config.yaml").read_text())
    assert config["out"] == str(out)


def test_align_from_a_folder_gives_the_same_tables(alone, tmp_path, monkeypatch, capsys) -> None:
    out = tmp_path / "again"
    code, err = _cli(["align", "--from", str(alone["align"]), "--out", str(out)], monkeypatch, capsys)
    assert code == 0, err
    _same_files(
        alone["align"],
        out,
        ["alignment.csv", "simulated_kurtosis.csv", "items.csv", "summary.json", "dists.csv.gz", "report.html"],
    )


def test_the_files_hold_what_the_tables_say(folders) -> None:
    """Each table row's test r is the Pearson r of its predictions; the distributions
    hold every item at every temperature the fitted temperature searched, texts intact."""
    folder = folders["mitigate"]
    table = pd.read_csv(folder / "mitigation.csv").set_index("row")
    predictions = read_csv(folder, PREDICTIONS, ["row", "id", "human", "prediction"], TEXT.__contains__)
    for row, part in predictions.groupby("row"):
        assert pearson_defined(part["prediction"].to_numpy(), part["human"].to_numpy()) == pytest.approx(
            table.loc[row, "pearson"], abs=1e-12
        ), row
    assert len(predictions) == len(table) * table["n test"].iloc[0]
    dists = read_dists(folder)
    items = dists[dists["kind"] == "item"]
    assert set(items["id"]) >= {"NA", "nan"} and len(items["temperature"].unique()) == 12
    assert items.groupby(["scale", "temperature"]).size().eq(60).all()
    scores = [c for c in dists.columns if c.startswith("p")]
    total = dists[scores].sum(axis=1) + dists[["below", "above", "other"]].sum(axis=1)
    assert np.allclose(total, 1.0)
    free = dists[dists["kind"] == "content-free"]
    assert len(free) == 2 * 2 * 12 and free["human"].isna().all()


def test_the_committed_results_checks_pass_here_and_catch_a_change(folders, tmp_path) -> None:
    """What tests/test_results.py checks of every committed folder holds for a fresh
    one, and fails once a single test prediction is changed."""
    from test_results import _mitigation_headline

    _mitigation_headline(folders["mitigate"])
    copy = tmp_path / "changed"
    shutil.copytree(folders["mitigate"], copy, ignore=shutil.ignore_patterns("store.sqlite*", ".numbias*"))
    predictions = read_csv(copy, PREDICTIONS, ["row"], TEXT.__contains__)
    first = predictions.index[predictions["row"] == "automatic choice"][0]
    predictions.loc[first, "prediction"] += 1.0
    predictions.to_csv(copy / PREDICTIONS, index=False)
    with pytest.raises(AssertionError):
        _mitigation_headline(copy)
