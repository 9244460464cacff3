"""Streaming ingestion: per-user label counts from parquet (or CSV / JSONL) files without loading all rows.

A `pyarrow.dataset` scanner reads record batches and ``np.bincount`` adds each batch's labels
to per-user (and per-group) counts. User ids are coded batch by batch: non-negative integer ids
address the count arrays directly (no hashing; the fast path); other ids are dictionary-encoded
by Arrow and looked up in a running pandas hash index of the ids seen so far, once per distinct
id in the batch. Memory is bounded by the number of users (and groups), never by the number of
labels. The result is a `jaxpref.data.UserCounts`, which `jaxpref.fit_attentiveness` fits
directly (``jaxpref fit`` does this for parquet and CSV inputs).

Example:
    >>> import os, tempfile
    >>> import pyarrow as pa, pyarrow.parquet as pq
    >>> path = os.path.join(tempfile.mkdtemp(), "labels.parquet")
    >>> pq.write_table(pa.table({"user": ["a", "b", "a"], "label": [1, 0, 1]}), path)
    >>> counts = stream_counts(path, progress=False)
    >>> counts.user_ids.tolist(), counts.pref_a_counts[:, 0].tolist(), counts.label_counts[:, 0].tolist()
    (['a', 'b'], [2, 0], [2, 1])
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jaxpref.data import USER_ALIASES, DataError, UserCounts

__all__ = ["STREAMABLE_SUFFIXES", "can_stream", "stream_counts", "filter_stream"]

#: File suffixes `stream_counts` reads, with their `pyarrow.dataset` format (directories are parquet).
STREAMABLE_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "json", ".ndjson": "json"}
#: Formats `filter_stream` writes.
WRITABLE_FORMATS = ("parquet", "csv")

#: Integer ids up to this value (or 4x the rows read so far, if larger) are used as row numbers directly.
DIRECT_ID_LIMIT = 1 << 24


def _distinct(values: Any) -> tuple[pd.Index, np.ndarray]:
    """``(distinct ids, position of each value among them)`` of an Arrow array (dictionary-encoded)."""
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(values)
    return (pd.Index(encoded.dictionary.to_numpy(zero_copy_only=False)),
            encoded.indices.to_numpy(zero_copy_only=False))


class _HashCoder:
    """Codes hashable ids as 0, 1, 2, ... in order of first appearance, batch by batch.

    Each batch is dictionary-encoded by Arrow; only its distinct ids are looked up (vectorised,
    in a pandas hash index of the ids seen so far), and new ones are appended.
    """

    def __init__(self, seen: pd.Index | None = None) -> None:
        # Built from the first batch, so the ids keep their dtype (int64 ids stay int64).
        self.index = seen

    def encode(self, values: Any) -> np.ndarray:
        batch_ids, indices = _distinct(values)
        if self.index is None:
            self.index = batch_ids[:0]
        codes = self.index.get_indexer(batch_ids)
        new = codes < 0
        if new.any():
            codes[new] = len(self.index) + np.arange(int(new.sum()))
            self.index = self.index.append(batch_ids[new])
        return codes.astype(np.int64)[indices]

    def finish(self) -> tuple[np.ndarray, np.ndarray | None]:
        """``(ids, rows)``: the ids in order of first appearance; their count rows (None: 0, 1, ...)."""
        return (np.asarray([]) if self.index is None else self.index.to_numpy()), None


class _DirectCoder:
    """Uses small non-negative integer ids as their own codes: no hashing at all.

    The order of first appearance is kept as the first row number at which each id was seen.
    `encode` returns None for a batch it cannot code (a negative or too large id); the caller
    then switches to `_HashCoder` via `to_hash_coder`.
    """

    def __init__(self) -> None:
        self.first_row = np.zeros(0, np.int64)
        self.rows_read = 0
        self.num_seen = 0

    def encode(self, values: Any) -> np.ndarray | None:
        """Codes a batch, or None when its ids would make the count arrays much larger than the users."""
        ids = np.asarray(values.to_numpy(zero_copy_only=False))
        limit = max(DIRECT_ID_LIMIT, 4 * (self.num_seen + ids.size))
        if ids.size and (ids.min() < 0 or ids.max() >= limit):
            return None
        ids = ids.astype(np.int64)
        size = int(ids.max()) + 1 if ids.size else 0
        if size > self.first_row.shape[0]:
            grown = np.full(max(size, 2 * self.first_row.shape[0]), np.iinfo(np.int64).max)
            grown[: self.first_row.shape[0]] = self.first_row
            self.first_row = grown
        row_numbers = self.rows_read + np.arange(ids.size)
        np.minimum.at(self.first_row, ids, row_numbers)
        self.num_seen += int(np.count_nonzero(self.first_row[ids] == row_numbers))
        self.rows_read += ids.size
        return ids

    def finish(self) -> tuple[np.ndarray, np.ndarray | None]:
        seen = np.flatnonzero(self.first_row < np.iinfo(np.int64).max)
        rows = seen[np.argsort(self.first_row[seen], kind="stable")]
        return rows, rows

    def to_hash_coder(self) -> tuple[_HashCoder, np.ndarray]:
        """The equivalent `_HashCoder` and the count rows to keep, in its code order."""
        ids, rows = self.finish()
        return _HashCoder(pd.Index(ids)), rows


def _dataset(source: Any):
    import pyarrow.dataset as ds

    if isinstance(source, ds.Dataset):
        return source
    paths = [source] if isinstance(source, (str, os.PathLike)) else source
    if isinstance(paths, (list, tuple)) and paths and all(isinstance(p, (str, os.PathLike)) for p in paths):
        for path in paths:
            if not os.path.exists(path):
                raise DataError(f"data path {str(path)!r} does not exist: check the path")
        formats = {STREAMABLE_SUFFIXES.get(Path(path).suffix.lower(), "parquet") for path in paths}
        if len(formats) > 1:
            raise DataError(f"the data paths mix formats {sorted(formats)}: stream one format at a time")
        with _arrow_errors():
            return ds.dataset([str(p) for p in paths] if len(paths) > 1 else str(paths[0]), format=formats.pop())
    raise DataError(
        f"cannot stream data of type {type(source).__name__}: pass a parquet, CSV or JSONL file, a directory of "
        "parquet files, a list of paths or a pyarrow.dataset.Dataset"
    )


def can_stream(path: Any) -> bool:
    """Whether `stream_counts` reads ``path``: a parquet, CSV or JSONL file, or a directory (of parquet files)."""
    if not isinstance(path, (str, os.PathLike)):
        return False
    return os.path.isdir(path) or Path(path).suffix.lower() in STREAMABLE_SUFFIXES


def _grow(array: np.ndarray, rows: int) -> np.ndarray:
    if rows <= array.shape[0]:
        return array
    grown = np.zeros((max(rows, 2 * array.shape[0]), array.shape[1]), array.dtype)
    grown[: array.shape[0]] = array
    return grown


def stream_counts(
    source: Any,
    *,
    user_column: str = "user",
    label_column: str = "label",
    group_column: str | None = None,
    batch_size: int = 1 << 20,
    progress: bool = True,
) -> UserCounts:
    """Per-user label counts from parquet, CSV or JSONL, read in batches.

    Args:
        source: a parquet, CSV or JSONL file, a directory (or list) of parquet files, or a
            `pyarrow.dataset.Dataset`.
        user_column: user id column (``worker`` / ``annotator`` / ``user_id`` accepted when
            ``user`` is absent, as in `jaxpref.data.load_preferences`).
        label_column: 0/1 label column (1 = preferred the stronger model A).
        group_column: optional group column; each group gets its own count column.
        batch_size: rows per record batch.
        progress: show a rich progress bar over rows (on stderr).

    Returns:
        `jaxpref.data.UserCounts`, users in order of first appearance, groups sorted (as
        `jaxpref.data.load_preferences` codes them).

    Raises:
        DataError: missing columns, nulls, labels outside {0, 1}, or no rows.
    """
    import pyarrow as pa

    dataset = _dataset(source)
    user_column = _resolve_columns(dataset, user_column, label_column, group_column)
    columns = [user_column, label_column] + ([group_column] if group_column else [])

    users: _DirectCoder | _HashCoder
    users = _DirectCoder() if pa.types.is_integer(dataset.schema.field(user_column).type) else _HashCoder()
    groups = _HashCoder()
    pref_a = np.zeros((1024, 1), np.int64)
    labels = np.zeros((1024, 1), np.int64)
    num_rows = 0
    bar = _progress_bar(dataset.count_rows(), "reading labels") if progress else None
    try:
        for batch in _batches(dataset, batch_size, columns):
            if batch.num_rows == 0:
                continue
            label = _checked_labels(batch, columns, label_column, num_rows)
            user_code = users.encode(batch.column(user_column))
            if user_code is None:  # ids too large or negative for direct coding: switch to hashing
                users, keep = users.to_hash_coder()
                pref_a, labels = pref_a[keep], labels[keep]
                user_code = users.encode(batch.column(user_column))
            group_code = groups.encode(batch.column(group_column)) if group_column else np.zeros_like(user_code)
            num_groups = max(pref_a.shape[1], int(group_code.max()) + 1)
            if num_groups > pref_a.shape[1]:
                pad = ((0, 0), (0, num_groups - pref_a.shape[1]))
                pref_a, labels = np.pad(pref_a, pad), np.pad(labels, pad)
            pref_a, labels = _grow(pref_a, int(user_code.max()) + 1), _grow(labels, int(user_code.max()) + 1)
            cell = user_code * num_groups + group_code
            _add_counts(labels, cell)
            _add_counts(pref_a, cell[label == 1])
            num_rows += batch.num_rows
            if bar is not None:
                bar.update(bar.task_ids[0], advance=batch.num_rows)
    finally:
        if bar is not None:
            bar.stop()
    if num_rows == 0:
        raise DataError("the data have no rows: pass at least one labelled comparison")
    user_ids, rows = users.finish()
    pref_a = pref_a[: len(user_ids)] if rows is None else pref_a[rows]
    labels = labels[: len(user_ids)] if rows is None else labels[rows]
    group_ids = None
    if group_column:
        # Sorted group order, as `load_preferences` codes groups.
        group_ids, _ = groups.finish()
        order = np.argsort(group_ids, kind="stable")
        group_ids, pref_a, labels = group_ids[order], pref_a[:, order], labels[:, order]
    return UserCounts(pref_a, labels, user_ids, group_ids)


@contextlib.contextmanager
def _arrow_errors() -> Iterator[None]:
    """Arrow's read and parse errors become a one-line `DataError`."""
    import pyarrow as pa

    try:
        yield
    except pa.ArrowException as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DataError(f"cannot read the data: {first_line}: check the file's format and column types") from None


def _batches(dataset: Any, batch_size: int, columns: list[str] | None = None) -> Iterator[Any]:
    """The dataset's record batches (see `_arrow_errors`)."""
    with _arrow_errors():
        yield from dataset.to_batches(columns=columns, batch_size=batch_size)


def _add_counts(counts: np.ndarray, cells: np.ndarray) -> None:
    """Adds one to ``counts.flat[cell]`` for every cell (repeats add up), in place.

    ``np.bincount`` costs O(size of counts) per batch, ``np.add.at`` O(cells): the former wins
    while the counts are small next to the batch, the latter with millions of users.
    """
    flat = counts.reshape(-1)
    if flat.shape[0] <= 2 * cells.shape[0]:
        flat += np.bincount(cells, minlength=flat.shape[0])
    else:
        np.add.at(flat, cells, 1)


def _resolve_columns(dataset: Any, user_column: str, label_column: str, group_column: str | None) -> str:
    """Checks the columns exist; returns the user column (``worker``/``annotator``/``user_id``
    stand in for an absent ``user``)."""
    names = dataset.schema.names
    if user_column not in names:
        aliases = [a for a in USER_ALIASES if a in names] if user_column == "user" else []
        if not aliases:
            raise DataError(f"user column {user_column!r} not found; columns are {names}: pass user_column=<name>")
        user_column = aliases[0]
    for column, what in ((label_column, "label"), (group_column, "group")):
        if column is not None and column not in names:
            raise DataError(f"{what} column {column!r} not found; columns are {names}: pass {what}_column=<name>")
    return user_column


class _Positions:
    """Positions of known ids (a fit's users, or its groups) for batches of ids: a lookup array
    for small non-negative integer ids, a pandas hash index otherwise; -1 for unknown ids."""

    def __init__(self, known_ids: np.ndarray) -> None:
        known_ids = np.asarray(known_ids)
        self.table = None
        if known_ids.dtype.kind in "iu" and known_ids.size and known_ids.min() >= 0 and \
                known_ids.max() < max(DIRECT_ID_LIMIT, 4 * known_ids.size):
            self.table = np.full(int(known_ids.max()) + 1, -1, np.int64)
            self.table[known_ids] = np.arange(known_ids.size)
        self.index = pd.Index(known_ids)

    def of(self, values: Any) -> np.ndarray:
        import pyarrow as pa

        if self.table is not None and pa.types.is_integer(values.type):
            ids = np.asarray(values.to_numpy(zero_copy_only=False), np.int64)
            inside = (ids >= 0) & (ids < self.table.shape[0])
            return np.where(inside, self.table[np.where(inside, ids, 0)], -1)
        distinct_ids, indices = _distinct(values)
        return self.index.get_indexer(distinct_ids)[indices]


def filter_stream(
    source: Any,
    out: str | os.PathLike,
    fit: Any,
    keep_user: np.ndarray,
    *,
    weights: bool = False,
    user_column: str = "user",
    label_column: str = "label",
    group_column: str | None = None,
    batch_size: int = 1 << 20,
    progress: bool = True,
) -> int:
    """Writes the rows of the kept users to ``out``, reading ``source`` in batches.

    The second pass of a streamed filter: fit on `stream_counts` of ``source``, choose users
    (`jaxpref.posterior.select_users`), then copy their rows, every column kept, in input order.

    Args:
        source: the parquet/CSV data the counts were streamed from.
        out: output path, ``.parquet`` (or ``.pq``) or ``.csv``.
        fit: the `jaxpref.estimator.AttentivenessFit` of the streamed counts (one gap per group).
        keep_user: ``(num_users,)`` bool, aligned with ``fit.users``.
        weights: add ``label_attentive``, ``flip_rate`` and ``eta_mean`` columns.
        user_column, label_column, group_column, batch_size, progress: as `stream_counts`.

    Returns:
        The number of rows written.

    Raises:
        DataError: bad columns or labels, an output format other than parquet/CSV, or users
            or groups that the fit has not seen (the data changed between the passes).
    """
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    kind = STREAMABLE_SUFFIXES.get(Path(out).suffix.lower())
    if kind not in WRITABLE_FORMATS:
        raise DataError(f"output {str(out)!r} must be .parquet or .csv to be written in batches")
    dataset = _dataset(source)
    user_column = _resolve_columns(dataset, user_column, label_column, group_column)
    users = _Positions(fit.users["user"].to_numpy())
    groups = _Positions(fit.data.group_ids) if group_column else None
    eta_mean = fit.users["eta_mean"].to_numpy()
    writer = None
    num_written = num_read = 0
    bar = _progress_bar(dataset.count_rows(), "writing kept labels") if progress else None
    try:
        for batch in _batches(dataset, batch_size):
            position = users.of(batch.column(user_column))
            group = None if groups is None else groups.of(batch.column(group_column))
            if (position < 0).any() or (group is not None and (group < 0).any()):
                raise DataError(f"rows near row {num_read} have users or groups the fit has not seen: fit and "
                                "filter the same data")
            keep = keep_user[position]
            table = pa.Table.from_batches([batch]).filter(pa.array(keep))
            if weights:
                label = _checked_labels(batch, [user_column, label_column], label_column, num_read)[keep]
                attentive = fit.count_label_attentiveness(position[keep], None if group is None else group[keep], label)
                table = (table.append_column("label_attentive", pa.array(attentive))
                         .append_column("flip_rate", pa.array((1.0 - attentive) / 2.0))
                         .append_column("eta_mean", pa.array(eta_mean[position[keep]])))
            if writer is None:
                writer = pq.ParquetWriter(out, table.schema) if kind == "parquet" else pa_csv.CSVWriter(out, table.schema)
            writer.write_table(table)
            num_written += table.num_rows
            num_read += batch.num_rows
            if bar is not None:
                bar.update(bar.task_ids[0], advance=batch.num_rows)
    finally:
        if writer is not None:
            writer.close()
        if bar is not None:
            bar.stop()
    return num_written


def _checked_labels(batch: Any, columns: list[str], label_column: str, rows_before: int) -> np.ndarray:
    """The batch's labels as a NumPy array, after checking for nulls and values outside {0, 1}."""
    import pyarrow.compute as pc

    for column in columns:
        if batch.column(column).null_count:
            raise DataError(f"column {column!r} has missing (null) values near row {rows_before}: drop or fill them")
    label = batch.column(label_column)
    if label.type == "bool":
        label = pc.cast(label, "int8")
    label = np.asarray(label.to_numpy(zero_copy_only=False))
    valid = (label == 0) | (label == 1)
    if not valid.all():
        bad = pd.unique(label[~valid])[:5].tolist()
        raise DataError(f"column {label_column!r} has values outside {{0, 1}}, e.g. {bad}: labels must be 0 or 1")
    return label


def _progress_bar(total: int, description: str):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   transient=True, console=Console(stderr=True))
    bar.add_task("read", total=total)
    bar.start()
    return bar
