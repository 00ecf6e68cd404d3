"""Loaders on their real data, and every kind of bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from numbias.data.tasks import TASKS, get_task
from numbias.util.errors import NumbiasError


def test_vader_from_package() -> None:
    data = TASKS["vader"].load(n=300, seed=0)
    assert len(data) == 300 and data.has_ratings
    assert data.frame["word"].str.isalpha().all()
    assert all(len(r) == 10 for r in data.frame["ratings"])
    assert TASKS["vader"].load(n=300, seed=0).ids == data.ids
    assert TASKS["vader"].load(n=300, seed=1).ids != data.ids


def test_simlex_from_gensim() -> None:
    data = TASKS["simlex"].load()
    assert len(data) == 999 and data.human.min() >= 0 and data.human.max() <= 10


@pytest.mark.parametrize("pair", ["ro-en", "en-de", "si-en"])
def test_mtqe(shared_data: Path, pair: str) -> None:
    data = TASKS["mtqe"].load(shared_data / "mlqe-pe", pair=pair, n=200)
    assert len(data) == 200 and data.has_ratings
    z = TASKS["mtqe"].load(shared_data / "mlqe-pe", pair=pair, target="z_mean")
    assert len(z) == 1000


def test_lcp_stsb_gecqe(shared_data: Path) -> None:
    assert len(TASKS["lcp"].load(shared_data / "complex")) == 917
    assert len(TASKS["lcp"].load(shared_data / "complex", kind="multi")) == 184
    assert len(TASKS["stsb"].load(shared_data / "stsb")) == 1379
    gec = TASKS["gecqe"].load(shared_data / "tmu-gfm", aspect="fluency")
    assert len(gec) > 4000 and gec.human.max() <= 4


def test_unknown_task_and_options() -> None:
    with pytest.raises(NumbiasError, match="unknown task 'nope'"):
        get_task("nope")
    with pytest.raises(NumbiasError, match=r"task 'vader' has no option\(s\) pair \(options: n, seed, skip\)"):
        TASKS["vader"].load(pair="ro-en")
    with pytest.raises(NumbiasError, match="task 'vader': option n='abc'"):
        TASKS["vader"].load(n="abc")
    with pytest.raises(NumbiasError, match="reads no data file"):
        TASKS["vader"].load("items.csv")


def test_skip_draws_rows_no_smaller_draw_took() -> None:
    """The replication's fresh VADER words: 500 skipped rows are the 500-word study's."""
    from numbias.data.tasks import load_vader

    used = set(load_vader(n=500).frame["id"])
    assert set(load_vader(n=200).frame["id"]) <= used and set(load_vader().frame["id"]) <= used
    fresh = load_vader(n=1000, skip=500).frame["id"]
    assert len(fresh) == 1000 and not used & set(fresh)
    with pytest.raises(NumbiasError, match="skip must be 0 or more, got -1"):
        load_vader(skip=-1)
