"""Loaders on their real data, and every kind of bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from numbias.data import load_table
from numbias.errors import NumbiasError
from numbias.tasks import TASKS, get_task


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


def _csv(tmp_path: Path, text: str, name: str = "d.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("id,text,score\n1,a,1\n2,b,x\n", "not a finite number"),
        ("id,text,score\n1,a,1\n2,b,\n", "not a finite number"),
        ("id,text,score\n1,a,1\n2,b,inf\n", "not a finite number"),
        ("id,text,score\n1,a,1\n2,,2\n", "empty 'text'"),
        ("id,text,score\n1,a,1\n1,b,2\n", "duplicate id"),
        ("id,text,score\n", "is empty"),
        ("id,txt,score\n1,a,1\n", "missing column(s) 'text'"),
    ],
)
def test_bad_tables(tmp_path: Path, content: str, message: str) -> None:
    with pytest.raises(NumbiasError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_table(_csv(tmp_path, content), columns={"text": "text"}, human="score", id="id")


def test_non_utf8_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes("id,text,score\n1,caf\xe9,1\n".encode("latin-1"))
    with pytest.raises(NumbiasError, match="not UTF-8"):
        load_table(path, columns={"text": "text"}, human="score", id="id")
    with pytest.raises(NumbiasError, match="does not exist"):
        load_table(tmp_path / "nope.csv", columns={"text": "text"}, human="score")


def test_jsonl_and_unknown_task(tmp_path: Path) -> None:
    path = _csv(tmp_path, '{"id": 1, "t": "x", "s": 2}\n{"id": 2, "t": "y", "s": 3}\n', "d.jsonl")
    assert len(load_table(path, columns={"t": "t"}, human="s", id="id")) == 2
    with pytest.raises(NumbiasError, match="unknown task"):
        get_task("nope")
