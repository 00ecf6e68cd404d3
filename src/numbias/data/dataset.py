"""Data sets: items with text fields, a human score (unless unlabelled), optional
raw ratings, an optional group and an optional system (what produced the item).

Every loader funnels through :func:`make_dataset`, which validates what a study
relies on (unique ids, finite human scores, non-empty texts) and names the problem
in one line: the file, the column as the user calls it, and the row id."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from numbias.util.errors import NumbiasError, first_line, readable_file

SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson", ".json", ".parquet")
"""File types :func:`read_table` reads, chosen by suffix."""

_ROLES = ("id", "human", "group", "ratings", "system")


@dataclass(frozen=True)
class Dataset:
    """``frame`` has columns ``id``, ``human`` (NaN when unlabelled), the text
    ``fields`` and, when present, ``ratings`` (a list of numbers per item),
    ``group`` and ``system`` (the system that produced the item; comma-separated
    names for an output several systems share). ``notes`` are facts the outputs must state (an inferred human range);
    ``source`` says where the data came from.

    >>> import pandas as pd
    >>> from numbias.data.dataset import make_dataset
    >>> frame = pd.DataFrame({"id": ["w1", "w2"], "word": ["bad", "great"], "human": [1, 5]})
    >>> data = make_dataset("words", frame, fields=["word"])
    >>> len(data), data.ids, data.human, data.labelled, data.human_range
    (2, ['w1', 'w2'], array([1., 5.]), True, (1.0, 5.0))
    >>> data.notes
    ('human range 1-5 taken from the data (give human_range to set it)',)
    >>> data.records(), data.subset(["w2"]).ids
    ([{'word': 'bad'}, {'word': 'great'}], ['w2'])
    """

    name: str
    frame: pd.DataFrame
    fields: tuple[str, ...]
    human_range: tuple[float, float]
    notes: tuple[str, ...] = ()
    source: str = ""

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def ids(self) -> list[str]:
        return self.frame["id"].tolist()

    @property
    def human(self) -> np.ndarray:
        return self.frame["human"].to_numpy(dtype=float)

    @property
    def labelled(self) -> bool:
        """Whether there are human scores to compare a judge with."""
        return bool(self.frame["human"].notna().any())

    @property
    def has_ratings(self) -> bool:
        return "ratings" in self.frame.columns

    @property
    def groups(self) -> np.ndarray | None:
        """The ``group`` column as text, for per-group results; None without one."""
        return self.frame["group"].astype(str).to_numpy() if "group" in self.frame.columns else None

    @property
    def systems(self) -> np.ndarray | None:
        """The ``system`` column as text, for system-level estimates; None without one."""
        return self.frame["system"].astype(str).to_numpy() if "system" in self.frame.columns else None

    def records(self) -> list[dict[str, Any]]:
        return self.frame[list(self.fields)].to_dict("records")

    def subset(self, ids: Sequence[str]) -> Dataset:
        return replace(self, frame=self.frame.set_index("id").loc[list(ids)].reset_index())


@dataclass(frozen=True)
class _Where:
    """Where a problem lies: the data set (or file) and the user's column names."""

    prefix: str
    columns: Mapping[str, str]

    def column(self, name: str) -> str:
        return self.columns.get(name, name)

    def cell(self, name: str, row_id: str) -> str:
        return f"{self.prefix}: column {self.column(name)!r} of row id {row_id!r}"


def make_dataset(
    name: str,
    frame: pd.DataFrame,
    *,
    fields: Sequence[str],
    human_range: tuple[float, float] | None = None,
    labelled: bool = True,
    source: str | None = None,
    columns: Mapping[str, str] | None = None,
) -> Dataset:
    """Validate a frame with ``id``, the text ``fields``, ``human`` when ``labelled``,
    and optionally ``group``, ``system`` and ``ratings``. ``columns`` maps those names to the
    user's, so errors name what the file calls them; with ``source`` they start
    "data file SOURCE". Without ``human_range`` a labelled set's range is taken from
    the data (and noted); an unlabelled set's human scores are NaN and its range is
    the one given, else ``(nan, nan)``."""
    where = _Where(f"data file {source}" if source else f"data set {name!r}", columns or {})
    if frame.empty:
        raise NumbiasError(f"{where.prefix} is empty")
    frame = frame.reset_index(drop=True).copy()
    needed = ["id", *fields, *(["human"] if labelled else [])]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise NumbiasError(f"{where.prefix}: no column {where.column(missing[0])!r}")
    frame["id"] = _ids(frame["id"], where)
    for column in [*fields, *[c for c in ("group", "system") if c in frame.columns]]:
        frame[column] = _texts(frame, column, where)
    notes: tuple[str, ...] = ()
    if labelled:
        frame["human"] = _scores(frame, where)
        scale, notes = _human_range(frame, human_range, where)
    else:
        frame["human"] = np.nan
        scale = _checked_range(human_range, where) if human_range is not None else (np.nan, np.nan)
    return Dataset(name, frame, tuple(fields), scale, notes, source or "")


def _is_blank(value: Any) -> bool:
    """A missing cell: NaN, None, NA or only whitespace."""
    if isinstance(value, str):
        return not value.strip()
    return value is None or value is pd.NA or (isinstance(value, (float, np.floating)) and np.isnan(value))


def _shown(value: Any) -> str:
    """A value as the file writes it: 'inf', never np.float64(inf)."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (float, np.floating)):
        return repr(f"{value:g}")
    return repr(str(value))


def _scalar(frame: pd.DataFrame, column: str, where: _Where, ids: pd.Series | None = None) -> None:
    """A column of single values: a nested JSON value (object or array) would reach the
    prompt as Python's repr, so it is a one-line error naming the row."""
    nested = frame[column].map(lambda v: isinstance(v, (dict, list, tuple, np.ndarray))).to_numpy(dtype=bool)
    if nested.any():
        row = int(nested.argmax())
        at = f"row id {ids.iloc[row]!r}" if ids is not None else f"row {row} (counting data rows from 0)"
        raise NumbiasError(
            f"{where.prefix}: column {where.column(column)!r} of {at} is "
            f"{_json_kind(frame[column].iloc[row])}, not a single value"
        )


def _ids(ids: pd.Series, where: _Where) -> pd.Series:
    """Ids as text, each present and unique."""
    _scalar(ids.to_frame("id"), "id", where)
    blank = ids.map(_is_blank).to_numpy(dtype=bool)
    if blank.any():
        raise NumbiasError(
            f"{where.prefix}: column {where.column('id')!r} is empty in row "
            f"{int(blank.argmax())} (counting data rows from 0)"
        )
    ids = ids.astype(str)
    dupes = ids[ids.duplicated()].unique()
    if len(dupes):
        more = f" and {len(dupes) - 5} more" if len(dupes) > 5 else ""
        raise NumbiasError(
            f"{where.prefix}: duplicate id(s) in column {where.column('id')!r}: {', '.join(map(repr, dupes[:5]))}{more}"
        )
    return ids


def _texts(frame: pd.DataFrame, column: str, where: _Where) -> pd.Series:
    """A text column as str (numbers from JSON or Parquet included), none empty."""
    _scalar(frame, column, where, frame["id"])
    blank = frame[column].map(_is_blank).to_numpy(dtype=bool)
    if blank.any():
        raise NumbiasError(f"{where.cell(column, frame['id'].iloc[int(blank.argmax())])} is empty")
    return frame[column].astype(str)


def _number(value: Any) -> float:
    """A cell as a float, NaN when it is not a number (booleans are not)."""
    if isinstance(value, (bool, np.bool_)):
        return np.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return np.nan


def _scores(frame: pd.DataFrame, where: _Where) -> pd.Series:
    """Human scores as floats; the first bad one is named as the file writes it."""
    scores = frame["human"].map(_number).astype(float)
    bad = ~np.isfinite(scores.to_numpy())
    if bad.any():
        row = int(bad.argmax())
        value, cell = frame["human"].iloc[row], where.cell("human", frame["id"].iloc[row])
        if _is_blank(value):
            raise NumbiasError(f"{cell} is empty")
        kind = "a number" if np.isnan(scores.iloc[row]) else "a finite number"
        raise NumbiasError(f"{cell} is {_shown(value)}, not {kind}")
    return scores


def _checked_range(given: tuple[float, float], where: _Where) -> tuple[float, float]:
    """``human_range`` as two finite floats, low below high."""
    try:
        lo, hi = (float(v) for v in given)
    except (TypeError, ValueError):
        raise NumbiasError(f"{where.prefix}: human_range must be two numbers (low, high), got {given!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise NumbiasError(
            f"{where.prefix}: human_range {lo:g}-{hi:g} is not a range (two finite numbers, low below high)"
        )
    return lo, hi


def _human_range(
    frame: pd.DataFrame, given: tuple[float, float] | None, where: _Where
) -> tuple[tuple[float, float], tuple[str, ...]]:
    """The human scale and any note about it: scores must lie inside a given range;
    an inferred one is the data's span, which the outputs must then state."""
    human = frame["human"]
    if given is None:
        lo, hi = float(human.min()), float(human.max())
        if lo >= hi:
            raise NumbiasError(
                f"{where.prefix}: column {where.column('human')!r} spans no range "
                f"(every score is {lo:g}); give human_range"
            )
        return (lo, hi), (f"human range {lo:g}-{hi:g} taken from the data (give human_range to set it)",)
    lo, hi = _checked_range(given, where)
    outside = ((human < lo) | (human > hi)).to_numpy()
    if outside.any():
        row = int(outside.argmax())
        raise NumbiasError(
            f"{where.cell('human', frame['id'].iloc[row])} is {human.iloc[row]:g}, "
            f"outside the human range {lo:g}-{hi:g}"
        )
    return (lo, hi), ()


def read_table(path: str | Path, *, sep: str | None = None, header: bool = True, text: bool = False) -> pd.DataFrame:
    """A data file as a frame, by suffix (see :data:`SUFFIXES`): CSV, TSV (read without
    quoting, as MLQE-PE and CompLex are published), JSON Lines, a JSON array of objects
    or Parquet. ``text`` keeps values as written: CSV/TSV cells as str (an id ``007``
    stays ``007``) and JSON values as Python objects (``7`` beside ``2.5`` is not ``7.0``).
    "NA" and "None" stay text; only empty cells are missing."""
    path = Path(path)
    suffix = _checked_path(path)
    if suffix == ".parquet":
        frame = _read_parquet(path)
    else:
        content = _decode(path)
        if suffix in {".jsonl", ".ndjson"}:
            frame = _read_jsonl(path, content, text=text)
        elif suffix == ".json":
            frame = _read_json(path, content, text=text)
        else:
            frame = _read_delimited(
                path, content, sep="\t" if suffix == ".tsv" else sep or ",", header=header, text=text
            )
    if not len(frame):
        raise NumbiasError(f"data file {path} has {'a header but ' if suffix in {'.csv', '.tsv'} else ''}no rows")
    return frame


def _checked_path(path: Path) -> str:
    """The suffix of an existing, non-empty file of a supported type."""
    readable_file(path, "data file")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        kind = repr(suffix) if suffix else "(no suffix)"
        raise NumbiasError(f"data file {path}: unsupported file type {kind} (supported: {', '.join(SUFFIXES)})")
    if path.stat().st_size == 0:
        raise NumbiasError(f"data file {path} is empty")
    return suffix


def _decode(path: Path) -> str:
    """The file's text; a byte that is not UTF-8 is named by offset and line."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise NumbiasError(f"data file {path} cannot be read: {exc.strerror or first_line(exc)}") from None
    try:
        content = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise NumbiasError(
            f"data file {path} is not UTF-8 text (byte {exc.start}, line {line}); save it as UTF-8"
        ) from None
    if not content.strip():
        raise NumbiasError(f"data file {path} is empty")
    return content


def _read_delimited(path: Path, content: str, *, sep: str, header: bool, text: bool) -> pd.DataFrame:
    tsv = sep == "\t"
    if header:
        _check_rows(path, content, sep)
    try:
        return pd.read_csv(
            io.StringIO(content),
            sep=sep,
            quoting=csv.QUOTE_NONE if tsv else csv.QUOTE_MINIMAL,
            header=0 if header else None,
            keep_default_na=False,
            na_values=[""],
            dtype=str if text else None,
        )
    except ValueError as exc:  # pandas' ParserError and EmptyDataError included
        raise NumbiasError(f"data file {path} is unreadable: {first_line(exc)}") from None


def _check_rows(path: Path, content: str, sep: str) -> None:
    """Column names given once, and no row with more fields than the header: pandas
    would rename a repeated name and shift a long row's columns (an unquoted comma in a
    text makes ids of texts), so either is a one-line error naming the line."""
    if len(sep) != 1:
        return
    csv.field_size_limit(2**31 - 1)  # pandas reads texts of any length; so must this check
    quoting: Literal[0, 1, 2, 3] = csv.QUOTE_NONE if sep == "\t" else csv.QUOTE_MINIMAL
    rows = csv.reader(io.StringIO(content), delimiter=sep, quoting=quoting)
    try:
        names = next(rows, [])
        if dupes := sorted({n for n in names if names.count(n) > 1}):
            raise NumbiasError(f"data file {path}: column name {dupes[0]!r} is given more than once in the header")
        for row in rows:
            if len(row) > len(names):
                raise NumbiasError(
                    f"data file {path} line {rows.line_num} has {len(row)} fields, the header "
                    f"{len(names)} (an unquoted {'tab' if sep == chr(9) else repr(sep)} in a text? "
                    "quote that field)"
                )
    except csv.Error as exc:
        raise NumbiasError(f"data file {path} is unreadable (line {rows.line_num}): {first_line(exc)}") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are each given once (json keeps the last silently)."""
    keys = [k for k, _ in pairs]
    if dupes := sorted({k for k in keys if keys.count(k) > 1}):
        raise ValueError(f"key {dupes[0]!r} is given twice in one object")
    return dict(pairs)


def _json_kind(value: Any) -> str:
    if isinstance(value, (tuple, np.ndarray)):
        return "an array"
    kinds = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return kinds.get(type(value), "a number")


def _read_jsonl(path: Path, content: str, *, text: bool) -> pd.DataFrame:
    """One JSON object per line; blank lines are skipped, a bad line is named."""
    records = []
    for number, line in enumerate(content.split("\n"), start=1):  # not splitlines: U+2028 may sit in a string
        if not line.strip():
            continue
        try:
            record = json.loads(line, object_pairs_hook=_unique_keys)
        except json.JSONDecodeError as exc:
            raise NumbiasError(f"data file {path} line {number} is not valid JSON: {exc.msg}") from None
        except ValueError as exc:
            raise NumbiasError(f"data file {path} line {number}: {exc}") from None
        if not isinstance(record, dict):
            raise NumbiasError(f"data file {path} line {number} is {_json_kind(record)}, not a JSON object")
        records.append(record)
    return pd.DataFrame(records, dtype=object if text else None)


def _read_json(path: Path, content: str, *, text: bool) -> pd.DataFrame:
    """A JSON array of objects, one per row."""
    try:
        records = json.loads(content, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        raise NumbiasError(
            f"data file {path} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except ValueError as exc:
        raise NumbiasError(f"data file {path}: {exc}") from None
    if not isinstance(records, list):
        raise NumbiasError(f"data file {path} holds {_json_kind(records)}, not a JSON array of objects")
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise NumbiasError(
                f"data file {path}: item {number} of the JSON array is {_json_kind(record)}, not an object"
            )
    return pd.DataFrame(records, dtype=object if text else None)


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except ImportError:
        raise NumbiasError(f"reading {path} needs pyarrow: pip install 'numbias[parquet]'") from None
    except (ValueError, OSError) as exc:  # pyarrow's ArrowInvalid and ArrowIOError included
        raise NumbiasError(f"data file {path} is unreadable: {first_line(exc)}") from None


def load_file(
    path: str | Path,
    *,
    fields: Sequence[str],
    human: str | None = None,
    human_range: tuple[float, float] | None = None,
    id: str | None = None,
    ratings: str | None = None,
    group: str | None = None,
    system_column: str | None = None,
    name: str | None = None,
    n: int | None = None,
    seed: int = 0,
) -> Dataset:
    """A user's data file as a Dataset. ``fields`` are the columns the prompt template
    fills; the other arguments name the file's columns for each role, and
    ``human=None`` means unlabelled; ``system_column`` names the column of the system
    that produced each item (``system`` is the prompt's system message elsewhere). Ids
    default to the row number in the file (from 0).
    The whole file is checked before ``n`` rows are sampled, so a bad row is found
    whatever the seed and an inferred range is the file's.

    >>> import tempfile
    >>> from pathlib import Path
    >>> from numbias import load_file
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = Path(tmp) / "reviews.csv"
    ...     _ = path.write_text("review,stars\\nawful,1\\ngreat,5\\nfine,3\\n")
    ...     data = load_file(path, fields=["review"], human="stars", human_range=(1, 5))
    >>> data.name, data.ids, data.human, data.fields
    ('reviews', ['0', '1', '2'], array([1., 5., 3.]), ('review',))
    >>> load_file("missing.csv", fields=["review"])
    Traceback (most recent call last):
    ...
    numbias.util.errors.NumbiasError: data file missing.csv does not exist
    """
    path = Path(path)
    fields = [fields] if isinstance(fields, str) else list(fields)
    roles = {"id": id, "human": human, "group": group, "ratings": ratings, "system": system_column}
    frame = read_table(path, text=True)
    _check_columns(frame, path, fields, roles)
    out = pd.DataFrame({field: frame[field] for field in fields})
    out["id"] = frame[id] if id else pd.Series(np.arange(len(frame))).astype(str)
    for role in ("human", "group", "ratings", "system"):
        if roles[role]:
            out[role] = frame[roles[role]]
    columns = {role: column for role, column in roles.items() if column}
    data = make_dataset(
        name or path.stem,
        out,
        fields=fields,
        human_range=human_range,
        labelled=human is not None,
        source=str(path),
        columns=columns,
    )
    if ratings:
        data = _parsed_ratings(data, path, ratings)
    return replace(data, frame=sample_rows(data.frame, n, seed).reset_index(drop=True))


def _parsed_ratings(data: Dataset, path: Path, column: str) -> Dataset:
    """``data`` with its raw ratings parsed into lists, every row checked before any is
    sampled, so that a bad row is named with the file, the column and its id."""
    parsed = [
        parse_ratings(value, what=f"data file {path}: column {column!r} of row id {row_id!r}")
        for row_id, value in zip(data.frame["id"], data.frame["ratings"])
    ]
    return replace(data, frame=data.frame.assign(ratings=pd.Series(parsed, index=data.frame.index, dtype=object)))


def _check_columns(frame: pd.DataFrame, path: Path, fields: list[str], roles: Mapping[str, str | None]) -> None:
    """Every named column exists, and no text field takes a name numbias keeps for a role."""
    if not fields:
        raise NumbiasError(f"data file {path}: give at least one text field for the prompt")
    for field in fields:
        if field in _ROLES and roles[field] != field:
            option = "system_column" if field == "system" else field
            raise NumbiasError(
                f"data file {path}: text field {field!r} has the name numbias keeps for the "
                f"{field} column; rename it, or pass {option}={field!r} "
                "if it is that column"
            )
    have = [str(c) for c in frame.columns]
    listed = ", ".join(have[:20]) + (f", ... ({len(have)} in all)" if len(have) > 20 else "")
    if absent := [field for field in fields if field not in frame.columns]:
        raise NumbiasError(
            f"data file {path}: template placeholder{'s' if len(absent) > 1 else ''} "
            f"{', '.join('{' + f + '}' for f in absent)} not a column of the file (columns: {listed})"
        )
    missing = [column for column in dict.fromkeys(c for c in roles.values() if c) if column not in frame.columns]
    if missing:
        raise NumbiasError(
            f"data file {path}: no column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(map(repr, missing))} (columns: {listed})"
        )


def sample_rows(frame: pd.DataFrame, n: int | None, seed: int, skip: int = 0) -> pd.DataFrame:
    """``n`` rows drawn with ``seed``, in file order; all rows when ``n`` is None or
    not below the row count, so a study can ask for more than a small set holds.

    Draws with one seed are nested (the first ``n`` of one seeded permutation), so
    ``skip`` rows passes over every row a smaller draw with that seed took: items that
    no study of ``skip`` or fewer items has seen.

    >>> frame = pd.DataFrame({"x": range(10)})
    >>> used, fresh = sample_rows(frame, 3, 0), sample_rows(frame, 4, 0, skip=3)
    >>> set(used.x) & set(fresh.x), set(used.x) <= set(sample_rows(frame, 5, 0).x)
    (set(), True)
    """
    if skip < 0:
        raise NumbiasError(f"skip must be 0 or more, got {skip}")
    if n is not None and n < 1:
        raise NumbiasError(f"sample size must be positive, got {n}")
    if skip >= len(frame):
        raise NumbiasError(f"skip {skip} passes over all {len(frame)} rows")
    if n is None or skip + n >= len(frame):
        return frame if not skip else frame.sample(frac=1, random_state=seed).iloc[skip:].sort_index()
    return frame.sample(n=skip + n, random_state=seed).iloc[skip:].sort_index()


def parse_ratings(value: Any, *, what: str = "a raw ratings value") -> list[float]:
    """A list of raw ratings from ``[1, 2]``, ``"1,2,3"``, ``"1;2"`` or a sequence; a
    missing value is no ratings. ``what`` starts the error, so a caller can name the
    file, column and row."""
    if _is_blank(value):
        return []
    if isinstance(value, (list, tuple, np.ndarray)):
        items: list[Any] = list(value)
        shown = "[" + ", ".join(map(str, items)) + "]"
    else:
        items, shown = str(value).strip().strip("[]").replace(";", ",").split(","), repr(str(value))
    try:
        ratings = [float(v) for v in items if not isinstance(v, str) or v.strip()]
    except (TypeError, ValueError):
        raise NumbiasError(f"{what} is {shown}, not a list of numbers") from None
    if not np.isfinite(ratings).all():
        raise NumbiasError(f"{what} is {shown}, which holds a value that is not a finite number")
    return ratings
