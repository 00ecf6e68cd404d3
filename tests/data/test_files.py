"""User data files: every format gives the same data set, and every bad input is one
line naming the file and the column, row id or line."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from numbias.data.dataset import Dataset, load_file, make_dataset, parse_ratings, read_table, sample_rows
from numbias.util.errors import NumbiasError

ROWS: list[dict[str, Any]] = [
    {"key": "007", "text": "good film", "score": 4.5, "grp": "a", "raters": [4, 5]},
    {"key": "r2", "text": "NA", "score": 1, "grp": "b", "raters": [1, 1, 1]},
    {"key": "r3", "text": "None, really", "score": 3, "grp": "a", "raters": [2, 4]},
    {"key": "r4", "text": 'a "quoted" word', "score": 2, "grp": "b", "raters": [2]},
]
OPTIONS: dict[str, Any] = {
    "fields": ["text"],
    "human": "score",
    "id": "key",
    "ratings": "raters",
    "group": "grp",
    "human_range": (1, 5),
}


def _write(tmp_path: Path, suffix: str, rows: list[dict[str, Any]] = ROWS) -> Path:
    """``rows`` in the format of ``suffix``; ratings as text in CSV/TSV, as lists elsewhere."""
    path = tmp_path / f"items{suffix}"
    flat = pd.DataFrame([{**r, "raters": ",".join(map(str, r["raters"]))} for r in rows])
    if suffix == ".csv":
        flat.to_csv(path, index=False)
    elif suffix == ".tsv":
        path.write_text(
            "\t".join(rows[0])
            + "\n"
            + "".join("\t".join(map(str, r.values())) + "\n" for r in flat.to_dict("records")),
            encoding="utf-8",
        )
    elif suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif suffix == ".json":
        path.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    else:
        pytest.importorskip("pyarrow")
        pd.DataFrame(rows).to_parquet(path)
    return path


def _text(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return path


def _error(call: Callable[[], Any], *parts: str) -> str:
    """The one-line NumbiasError ``call`` raises; it must contain every part."""
    with pytest.raises(NumbiasError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message, message
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"
    return message


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".json", ".parquet"])
def test_every_format_gives_the_same_data(tmp_path: Path, suffix: str) -> None:
    data = load_file(_write(tmp_path, suffix), **OPTIONS)
    assert data.name == "items" and data.source == str(tmp_path / f"items{suffix}")
    assert data.ids == ["007", "r2", "r3", "r4"]
    assert data.records() == [
        {"text": "good film"},
        {"text": "NA"},
        {"text": "None, really"},
        {"text": 'a "quoted" word'},
    ]
    assert data.human.tolist() == [4.5, 1.0, 3.0, 2.0] and data.human_range == (1.0, 5.0)
    assert data.labelled and data.has_ratings and data.notes == ()
    assert [list(r) for r in data.frame["ratings"]] == [[4.0, 5.0], [1.0, 1.0, 1.0], [2.0, 4.0], [2.0]]
    assert data.groups is not None and data.groups.tolist() == ["a", "b", "a", "b"]


def test_unlabelled_file_gets_row_number_ids(tmp_path: Path) -> None:
    data = load_file(_write(tmp_path, ".jsonl"), fields=["text", "grp"])
    assert not data.labelled and np.isnan(data.human).all() and len(data.human) == 4
    assert np.isnan(data.human_range).all() and data.ids == ["0", "1", "2", "3"]
    assert data.groups is None and not data.has_ratings
    assert load_file(_write(tmp_path, ".csv"), fields=["text"], human_range=(0, 9)).human_range == (0.0, 9.0)


def test_numbers_in_text_fields_become_text(tmp_path: Path) -> None:
    rows = [{"n": 7, "s": 1}, {"n": 2.5, "s": 2}]
    data = load_file(_text(tmp_path, "n.json", json.dumps(rows)), fields=["n"], human="s", id="n")
    assert data.records() == [{"n": "7"}, {"n": "2.5"}] and data.ids == ["7", "2.5"]


def test_inferred_range_is_noted_and_kept_by_subset(tmp_path: Path) -> None:
    data = load_file(_write(tmp_path, ".csv"), fields=["text"], human="score", id="key")
    assert data.human_range == (1.0, 4.5)
    assert data.notes == ("human range 1-4.5 taken from the data (give human_range to set it)",)
    part = data.subset(["r3", "007"])
    assert part.ids == ["r3", "007"] and part.notes == data.notes and part.source == data.source


def test_sampling_after_checks_keeps_file_ids(tmp_path: Path) -> None:
    rows = [{"t": f"w{i}", "s": i % 5} for i in range(40)]
    path = _text(tmp_path, "many.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    data = load_file(path, fields=["t"], human="s", n=10, seed=3)
    assert len(data) == 10 and data.ids == sorted(data.ids, key=int)
    assert data.records() == [{"t": f"w{i}"} for i in map(int, data.ids)]
    assert load_file(path, fields=["t"], human="s", n=10, seed=3).ids == data.ids
    assert load_file(path, fields=["t"], human="s", n=10, seed=4).ids != data.ids
    assert data.human_range == (0.0, 4.0)  # the whole file's, not the sample's
    rows[25]["s"] = "x"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    _error(lambda: load_file(path, fields=["t"], human="s", n=2, seed=0), "many.jsonl", "'s'", "row id '25'")


def test_sample_rows() -> None:
    frame = pd.DataFrame({"x": range(10)})
    assert sample_rows(frame, None, 0) is frame and sample_rows(frame, 10, 0) is frame
    picked = sample_rows(frame, 4, 1)
    assert len(picked) == 4 and picked.index.is_monotonic_increasing
    assert picked.equals(frame.sample(n=4, random_state=1).sort_index())
    _error(lambda: sample_rows(frame, 0, 0), "sample size must be positive, got 0")


def test_read_table_keeps_text(tmp_path: Path) -> None:
    path = _text(tmp_path, "t.csv", "id,t\n007,NA\n8,None\n")
    assert read_table(path, text=True).to_dict("list") == {"id": ["007", "8"], "t": ["NA", "None"]}
    assert read_table(path)["t"].tolist() == ["NA", "None"]
    assert read_table(_text(tmp_path, "t.tsv", 'a\tb\n"x\t1\n'))["a"].tolist() == ['"x']  # no quoting
    assert read_table(_text(tmp_path, "bom.csv", "\ufeffa,b\n1,2\n")).columns.tolist() == ["a", "b"]


def test_parse_ratings() -> None:
    assert parse_ratings("[1, 2.5]") == [1.0, 2.5] and parse_ratings("1;2") == [1.0, 2.0]
    assert parse_ratings(np.array([3, 4])) == [3.0, 4.0] and parse_ratings(float("nan")) == []
    _error(lambda: parse_ratings("1,a"), "'1,a'", "not a list of numbers")
    _error(lambda: parse_ratings("1,inf", what="row 'x'"), "row 'x'", "not a finite number")


def test_dataset_without_source_names_the_set() -> None:
    frame = pd.DataFrame({"id": ["a", "b"], "w": ["x", "y"], "human": [1.0, "abc"]})
    _error(
        lambda: make_dataset("toy", frame, fields=["w"]),
        "data set 'toy': column 'human' of row id 'b' is 'abc', not a number",
    )
    data = Dataset("plain", frame.assign(human=[1.0, 2.0]), ("w",), (0.0, 2.0))
    assert data.notes == () and data.source == "" and data.labelled and data.groups is None


# --- bad files: one line naming the file and where in it -------------------------------


def test_missing_folder_and_unknown_suffix(tmp_path: Path) -> None:
    _error(lambda: load_file(tmp_path / "nope.csv", fields=["t"]), "data file", "nope.csv", "does not exist")
    (tmp_path / "dir.csv").mkdir()
    _error(lambda: load_file(tmp_path / "dir.csv", fields=["t"]), "dir.csv", "is a folder")
    _error(
        lambda: load_file(_text(tmp_path, "d.xlsx", "a"), fields=["t"]),
        "d.xlsx",
        "'.xlsx'",
        ".csv, .tsv, .jsonl, .ndjson, .json, .parquet",
    )


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes("id,text\n1,caf\xe9\n".encode("latin-1"))
    _error(lambda: load_file(path, fields=["text"]), "latin.csv", "not UTF-8", "byte 13", "line 2")


@pytest.mark.parametrize("content", ["", "  \n\n\t", "\ufeff"])
@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".json"])
def test_empty_file(tmp_path: Path, suffix: str, content: str) -> None:
    path = _text(tmp_path, f"e{suffix}", content)
    _error(lambda: load_file(path, fields=["t"]), f"data file {path} is empty")


def test_empty_parquet_file(tmp_path: Path) -> None:
    path = _text(tmp_path, "e.parquet", "")
    _error(lambda: load_file(path, fields=["t"]), f"data file {path} is empty")


@pytest.mark.parametrize(("name", "content"), [("h.csv", "id,t,s\n"), ("h.tsv", "id\tt\ts\n\n")])
def test_header_only(tmp_path: Path, name: str, content: str) -> None:
    _error(lambda: load_file(_text(tmp_path, name, content), fields=["t"]), name, "has a header but no rows")


@pytest.mark.parametrize(
    ("content", "parts"),
    [
        ('{"t": "a"}\n\n{"t": "b",}\n', ["line 3 is not valid JSON"]),
        ('{"t": "a"}\n["t", "b"]\n', ["line 2 is an array, not a JSON object"]),
        ('{"t": "a"}\n7\n', ["line 2 is a number, not a JSON object"]),
    ],
)
def test_bad_jsonl(tmp_path: Path, content: str, parts: list[str]) -> None:
    _error(lambda: load_file(_text(tmp_path, "b.jsonl", content), fields=["t"]), "b.jsonl", *parts)


@pytest.mark.parametrize(
    ("content", "parts"),
    [
        ('{"t": "a"}', ["holds an object, not a JSON array of objects"]),
        ('[{"t": "a"}, "b"]', ["item 2 of the JSON array is a string, not an object"]),
        ('[{"t": "a"},\n {"t": }]', ["not valid JSON", "line 2"]),
        ("[]", ["has no rows"]),
    ],
)
def test_bad_json(tmp_path: Path, content: str, parts: list[str]) -> None:
    _error(lambda: load_file(_text(tmp_path, "b.json", content), fields=["t"]), "b.json", *parts)


def test_parquet_without_pyarrow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(*args: Any, **kwargs: Any) -> pd.DataFrame:
        raise ImportError("Unable to find a usable engine")

    monkeypatch.setattr(pd, "read_parquet", missing)
    path = _text(tmp_path, "p.parquet", "PAR1")
    _error(lambda: load_file(path, fields=["t"]), f"reading {path} needs pyarrow: pip install 'numbias[parquet]'")


@pytest.mark.parametrize(
    ("content", "parts"),
    [
        ("key,text,overall\nr1,a,1\nr7,b,abc\n", ["column 'overall' of row id 'r7' is 'abc', not a number"]),
        ("key,text,overall\nr1,a,1\nr7,b,\n", ["column 'overall' of row id 'r7' is empty"]),
        ("key,text,overall\nr1,a,1\nr7,b,inf\n", ["column 'overall' of row id 'r7' is 'inf', not a finite number"]),
        ("key,text,overall\nr1,a,1\nr7,b,NaN\n", ["column 'overall' of row id 'r7' is 'NaN', not a number"]),
        (
            "key,text,overall\nr1,a,1\nr7,b,7.5\n",
            ["column 'overall' of row id 'r7' is 7.5, outside the human range 1-5"],
        ),
        ("key,text,overall\nr1,a,1\nr1,b,2\nr2,c,2\nr2,d,3\n", ["duplicate id(s) in column 'key': 'r1', 'r2'"]),
        ("key,text,overall\nr1,a,1\nr7, ,2\n", ["column 'text' of row id 'r7' is empty"]),
        ("key,text,overall\nr1,a,1\n,b,2\n", ["column 'key' is empty in row 1"]),
        (
            "key,txt,overall\nr1,a,1\n",
            ["template placeholder {text} not a column of the file (columns: key, txt, overall)"],
        ),
        ("key,text,score\nr1,a,1\n", ["no column 'overall' (columns: key, text, score)"]),
    ],
)
def test_bad_values(tmp_path: Path, content: str, parts: list[str]) -> None:
    path = _text(tmp_path, "items.csv", content)
    _error(
        lambda: load_file(path, fields=["text"], human="overall", id="key", human_range=(1, 5)),
        f"data file {path}: ",
        *parts,
    )


def test_range_problems(tmp_path: Path) -> None:
    path = _text(tmp_path, "flat.csv", "t,s\na,2\nb,2\n")
    _error(lambda: load_file(path, fields=["t"], human="s"), "flat.csv", "column 's' spans no range (every score is 2)")
    for given in [(5, 5), (5, 1), (0, float("inf"))]:
        _error(
            lambda: load_file(path, fields=["t"], human="s", human_range=given),
            "flat.csv",
            f"human_range {given[0]:g}-{given[1]:g} is not a range",
        )
    _error(lambda: load_file(path, fields=["t"], human_range=(3, 3)), "flat.csv", "is not a range")


def test_bad_group_and_ratings(tmp_path: Path) -> None:
    path = _text(tmp_path, "g.csv", 'id,t,s,g,r\na,x,1,p,"1,2"\nb,y,2,,"3"\n')
    _error(
        lambda: load_file(path, fields=["t"], human="s", id="id", group="g"),
        "g.csv",
        "column 'g' of row id 'b' is empty",
    )
    path = _text(tmp_path, "r.csv", 'id,t,s,r\na,x,1,"1,2"\nb,y,2,"3,x"\n')
    _error(
        lambda: load_file(path, fields=["t"], human="s", id="id", ratings="r"),
        "r.csv",
        "column 'r' of row id 'b' is '3,x', not a list of numbers",
    )
    path = _text(tmp_path, "r.jsonl", '{"t": "x", "r": [1, "a"]}\n')
    _error(
        lambda: load_file(path, fields=["t"], ratings="r"),
        "r.jsonl",
        "column 'r' of row id '0' is [1, a], not a list of numbers",
    )


def test_field_named_like_a_role(tmp_path: Path) -> None:
    path = _text(tmp_path, "role.csv", "group,human\nx,1\ny,2\n")
    _error(lambda: load_file(path, fields=["group"], human="human"), "role.csv", "text field 'group'")
    data = load_file(path, fields=["group"], human="human", group="group")
    assert data.groups is not None and data.groups.tolist() == ["x", "y"]
