"""Data sets: items with text fields, a human score and optional raw ratings.

Every loader funnels through :func:`make_dataset`, which validates what a study
relies on (unique ids, finite human scores, non-empty texts) and names the problem."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from numbias.errors import NumbiasError, first_line


@dataclass(frozen=True)
class Dataset:
    """``frame`` has columns ``id``, ``human``, the text ``fields`` and, when raw
    ratings exist, ``ratings`` (a list of numbers per item)."""

    name: str
    frame: pd.DataFrame
    fields: tuple[str, ...]
    human_range: tuple[float, float]

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def ids(self) -> list[str]:
        return self.frame["id"].tolist()

    @property
    def human(self) -> np.ndarray:
        return self.frame["human"].to_numpy(dtype=float)

    @property
    def has_ratings(self) -> bool:
        return "ratings" in self.frame.columns

    def records(self) -> list[dict[str, Any]]:
        return self.frame[list(self.fields)].to_dict("records")

    def subset(self, ids: Sequence[str]) -> Dataset:
        frame = self.frame.set_index("id").loc[list(ids)].reset_index()
        return Dataset(self.name, frame, self.fields, self.human_range)


def make_dataset(
    name: str,
    frame: pd.DataFrame,
    *,
    fields: Sequence[str],
    human_range: tuple[float, float] | None = None,
) -> Dataset:
    """Validate a frame with ``id``, ``human`` and ``fields`` columns."""
    if frame.empty:
        raise NumbiasError(f"data set {name!r} is empty")
    frame = frame.reset_index(drop=True).copy()
    frame["id"] = frame["id"].astype(str)
    dupes = frame["id"][frame["id"].duplicated()].unique()
    if len(dupes):
        raise NumbiasError(f"data set {name!r}: duplicate id(s) {', '.join(map(repr, dupes[:5]))}")
    human = pd.to_numeric(frame["human"], errors="coerce")
    bad = frame.index[human.isna() | ~np.isfinite(human.fillna(0))]
    if len(bad):
        row = bad[0]
        raise NumbiasError(
            f"data set {name!r}: human score {frame['human'][row]!r} of item {frame['id'][row]!r} "
            "is not a finite number"
        )
    frame["human"] = human.astype(float)
    for field in fields:
        text = frame[field]
        empty = text.isna() | (text.astype(str).str.strip() == "")
        if empty.any():
            raise NumbiasError(f"data set {name!r}: item {frame['id'][empty.idxmax()]!r} has empty {field!r}")
        frame[field] = text.astype(str)
    lo, hi = human_range if human_range else (float(frame["human"].min()), float(frame["human"].max()))
    if lo >= hi:
        raise NumbiasError(f"data set {name!r}: human scores span no range ({lo} to {hi})")
    outside = frame.index[(frame["human"] < lo) | (frame["human"] > hi)]
    if len(outside):
        row = outside[0]
        raise NumbiasError(
            f"data set {name!r}: human score {frame['human'][row]} of item {frame['id'][row]!r} "
            f"is outside the human scale {lo:g}-{hi:g}"
        )
    return Dataset(name, frame, tuple(fields), (float(lo), float(hi)))


def read_table(path: str | Path, *, sep: str | None = None, header: bool = True) -> pd.DataFrame:
    """CSV, TSV, JSONL or Parquet by extension; TSV is read without quoting, as
    MLQE-PE and CompLex are published."""
    path = Path(path)
    if not path.is_file():
        raise NumbiasError(f"data file {path} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix in {".jsonl", ".ndjson"}:
            with path.open(encoding="utf-8") as fh:
                return pd.DataFrame([json.loads(line) for line in fh if line.strip()])
        if suffix == ".tsv" or sep == "\t":
            return pd.read_csv(
                path, sep="\t", quoting=csv.QUOTE_NONE, header=0 if header else None,
                encoding="utf-8", keep_default_na=False, na_values=[""],
            )
        return pd.read_csv(
            path, sep=sep or ",", header=0 if header else None, encoding="utf-8",
            keep_default_na=False, na_values=[""],
        )
    except UnicodeDecodeError:
        raise NumbiasError(f"data file {path} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise NumbiasError(f"data file {path}: invalid JSON on a line ({exc.msg})") from None
    except ImportError:
        raise NumbiasError(f"reading {path} needs pyarrow: pip install 'numbias[parquet]'") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, OSError) as exc:
        raise NumbiasError(f"data file {path} is unreadable: {first_line(exc)}") from None


def load_table(
    path: str | Path,
    *,
    name: str | None = None,
    columns: Mapping[str, str],
    human: str,
    id: str | None = None,
    ratings: str | None = None,
    human_range: tuple[float, float] | None = None,
) -> Dataset:
    """Load a user file. ``columns`` maps template field → file column."""
    frame = read_table(path)
    needed = [c for c in [*columns.values(), human, id, ratings] if c]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise NumbiasError(
            f"data file {path}: missing column(s) {', '.join(map(repr, missing))} "
            f"(has {', '.join(map(str, frame.columns))})"
        )
    out = pd.DataFrame({field: frame[col] for field, col in columns.items()})
    out["id"] = frame[id] if id else np.arange(len(frame))
    out["human"] = frame[human]
    if ratings:
        out["ratings"] = frame[ratings].map(parse_ratings)
    return make_dataset(name or Path(path).stem, out, fields=list(columns), human_range=human_range)


def parse_ratings(value: Any) -> list[float]:
    """A list of raw ratings from ``[1, 2]``, ``"1,2,3"`` or a sequence."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return [float(v) for v in value]
    text = str(value).strip().strip("[]")
    try:
        return [float(v) for v in text.replace(";", ",").split(",") if v.strip()]
    except ValueError:
        raise NumbiasError(f"raw ratings {value!r} are not a list of numbers") from None
