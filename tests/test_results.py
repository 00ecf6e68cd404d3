"""Committed results recompute from their own files: each study's headline number,
read from the folder alone (no model, no store), equals what its write-up states."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"


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
