"""One ingestion path: formats, column resolution, id and label checks for in-memory and streamed reading.

Files are scanned lazily with polars. Id columns (user and group) of text formats (CSV, JSONL)
are read as strings, so ids stay exactly as written: ``007`` is not ``7``, ids beyond int64
stay distinct, and a column that looks numeric for a million rows and holds strings later
reads the same way throughout. Parquet keeps its own column types. `jaxpref.io.data` collects
a scan into a DataFrame; `jaxpref.scale.streaming` aggregates it into per-user counts without
holding the rows; both check ids and labels with the functions below, which take each
distinct value with the first row where it occurs, so every error names a row.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from jaxpref.errors import DataError

__all__ = [
    "SUFFIXES",
    "USER_ALIASES",
    "Columns",
    "resolve_columns",
    "file_format",
    "scan",
    "reading",
    "check_ids",
    "check_labels",
]

#: Table formats by file suffix (a directory is read as parquet files).
SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
#: Column names accepted as the user column when ``user`` is absent (crowd-kit style).
USER_ALIASES = ("user", "worker", "annotator", "user_id")
#: Rows read to infer the types of a text file's non-id columns.
INFER_ROWS = 10_000


@dataclasses.dataclass(frozen=True)
class Columns:
    """The column names in use: ``user`` and ``label``, and optionally ``p`` or ``group``."""

    user: str
    label: str
    p: str | None = None
    group: str | None = None

    @property
    def ids(self) -> list[str]:
        """Columns holding ids (read as text from CSV/JSONL)."""
        return [self.user] + ([self.group] if self.group else [])


def resolve_columns(
    names: Sequence[str],
    user_column: str = "user",
    label_column: str = "label",
    p_column: str | None = None,
    group_column: str | None = None,
    source: str = "the data",
) -> Columns:
    """Checks the columns exist and are distinct; ``worker``/``annotator``/``user_id`` stand in for ``user``.

    Raises:
        DataError: duplicate column names, a missing column, one column used twice, or both
            ``p_column`` and ``group_column``.
    """
    names = [str(name) for name in names]
    # polars renames a CSV's repeated header "x" to "x_duplicated_0", ...
    duplicated = sorted(
        {name for name in names if names.count(name) > 1}
        | {name.rsplit("_duplicated_", 1)[0] for name in names if "_duplicated_" in name}
    )
    if duplicated:
        raise DataError(
            f"{source} has duplicate column name(s) {duplicated}: give every column a distinct name"
        )
    if user_column not in names and user_column == "user":
        user_column = next((alias for alias in USER_ALIASES if alias in names), user_column)
    chosen = {"user": user_column, "label": label_column, "p": p_column, "group": group_column}
    for what, column in chosen.items():
        if column is not None and column not in names:
            raise DataError(
                f"{what} column {column!r} not found in {source}; columns are {names}: "
                f"rename the column or pass {what}_column=<name>"
            )
    if p_column is not None and group_column is not None:
        raise DataError(
            "p_column and group_column were both given: per-label p already carries the gap of each label; "
            "pass one of them"
        )
    used = [(what, column) for what, column in chosen.items() if column is not None]
    for index, (what, column) in enumerate(used):
        for other, other_column in used[index + 1 :]:
            if column == other_column:
                raise DataError(
                    f"{what}_column and {other}_column both name column {column!r}: give each role its column"
                )
    return Columns(user_column, label_column, p_column, group_column)


def file_format(path: str | os.PathLike, what: str = "data file") -> str:
    """``parquet``, ``csv`` or ``jsonl`` from a path's suffix (a directory holds parquet files)."""
    if os.path.isdir(path):
        return "parquet"
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(
            f"{what} {str(path)!r} has an unknown format {suffix!r}: use .parquet, .csv or .jsonl"
        )
    return SUFFIXES[suffix]


@contextlib.contextmanager
def reading(source: Any, verb: str = "read") -> Iterator[None]:
    """Read (or write) errors of polars, Arrow or the OS become a one-line `DataError` naming the file."""
    import polars as pl
    import pyarrow as pa

    try:
        yield
    except (pl.exceptions.PolarsError, pa.ArrowException, OSError, UnicodeDecodeError) as error:
        first_line = next((line for line in str(error).splitlines() if line.strip()), type(error).__name__)
        raise DataError(
            f"cannot {verb} {_describe(source)}: {first_line.strip()}: check the file's format and types"
        ) from None


def _describe(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)):
        return repr(str(source))
    if isinstance(source, (list, tuple)):
        return f"{len(source)} files starting {str(source[0])!r}" if source else "no files"
    return type(source).__name__


def _paths(source: Any) -> list[str]:
    paths = [source] if isinstance(source, (str, os.PathLike)) else source
    if not (
        isinstance(paths, (list, tuple)) and paths and all(isinstance(p, (str, os.PathLike)) for p in paths)
    ):
        raise DataError(
            f"cannot read data of type {type(source).__name__}: pass a parquet, CSV or JSONL file, a "
            "directory of parquet files, a list of paths or a pyarrow.dataset.Dataset"
        )
    for path in paths:
        if not os.path.exists(path):
            raise DataError(f"data path {str(path)!r} does not exist: check the path")
        if os.path.isdir(path) and not any(Path(path).rglob("*.parquet")):
            raise DataError(
                f"data directory {str(path)!r} holds no .parquet files: point at a file or a parquet folder"
            )
    return [str(path) for path in paths]


def _lazy(paths: list[str], kind: str, overrides: dict[str, Any]) -> Any:
    import polars as pl

    target = paths if len(paths) > 1 else paths[0]
    if kind == "csv":
        return pl.scan_csv(target, schema_overrides=overrides, infer_schema_length=INFER_ROWS)
    if kind == "jsonl":
        return pl.scan_ndjson(target, schema_overrides=overrides, infer_schema_length=INFER_ROWS)
    return pl.scan_parquet(target)


def scan(
    source: Any,
    user_column: str = "user",
    label_column: str = "label",
    p_column: str | None = None,
    group_column: str | None = None,
) -> tuple[Any, Columns]:
    """A polars LazyFrame over ``source`` with its id columns as written, and the resolved columns.

    Args:
        source: a parquet, CSV or JSONL file, a directory of parquet files, a list of paths of one
            format, or a `pyarrow.dataset.Dataset`.
        user_column, label_column, p_column, group_column: as `resolve_columns`.

    Returns:
        ``(lazy_frame, columns)``; nothing is read beyond the schema until the frame is collected
        (inside `reading`, to turn parse errors into `DataError`).
    """
    import polars as pl

    if type(source).__module__.startswith("pyarrow") and hasattr(source, "schema"):
        columns = resolve_columns(source.schema.names, user_column, label_column, p_column, group_column)
        return pl.scan_pyarrow_dataset(source), columns
    paths = _paths(source)
    kinds = {file_format(path) for path in paths}
    if len(kinds) > 1:
        raise DataError(f"the data paths mix formats {sorted(kinds)}: read one format at a time")
    kind = kinds.pop()
    with reading(source):
        names = _lazy(paths, kind, {}).collect_schema().names()
        columns = resolve_columns(
            names, user_column, label_column, p_column, group_column, source=_describe(source)
        )
        overrides = {column: pl.String for column in columns.ids} if kind != "parquet" else {}
        return _lazy(paths, kind, overrides), columns


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip() == ""
    try:
        return value != value  # NaN and pandas' NA
    except TypeError:
        return True


def check_ids(ids: Sequence[Any], first_rows: Sequence[int], column: str) -> None:
    """Every distinct id is present and non-empty.

    Args:
        ids: the distinct ids of a column.
        first_rows: the row (0-based, header excluded) where each id first occurs.
        column: the column name, for the message.

    Raises:
        DataError: naming the first row with a missing (null/NaN) or empty id.
    """
    bad_rows = [int(row) for value, row in zip(ids, first_rows) if _is_missing(value)]
    if bad_rows:
        raise DataError(
            f"column {column!r} has a missing or empty id at row {min(bad_rows)} (rows count from 0, header "
            "excluded): every label needs an id; drop or fill those rows"
        )


def check_labels(values: Sequence[Any], first_rows: Sequence[int], column: str, numeric: bool) -> None:
    """Labels are 0/1 (1 = preferred the stronger model A) and present.

    Args:
        values: the distinct label values.
        first_rows: the row where each value first occurs.
        column: the label column's name.
        numeric: whether the column has a numeric or boolean type.

    Raises:
        DataError: a non-numeric column, a missing label, or a value outside {0, 1}, naming a row.
    """
    if not numeric:
        raise DataError(
            f"column {column!r} is not numeric; labels must be 0/1 (1 = preferred the stronger model A): "
            "check label_column=<name> names the label column"
        )
    missing = [int(row) for value, row in zip(values, first_rows) if _is_missing(value)]
    if missing:
        raise DataError(
            f"column {column!r} has a missing (NaN/null) label at row {min(missing)}: drop or fill those rows"
        )
    bad = sorted(
        ((int(row), value) for value, row in zip(values, first_rows) if value not in (0, 1)),
        key=lambda pair: pair[0],
    )
    if bad:
        examples = [value.item() if hasattr(value, "item") else value for _, value in bad[:5]]
        raise DataError(
            f"column {column!r} has values outside {{0, 1}}, e.g. {examples}, first at row {bad[0][0]}: "
            "labels must be 1 (preferred model A) or 0 (preferred model B)"
        )
