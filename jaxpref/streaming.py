"""Streaming ingestion: per-user label counts from parquet files without loading all rows.

A `pyarrow.dataset` scanner reads record batches; each batch's user ids are coded against a
running hash index of the ids seen so far (looked up once per distinct id in the batch), and ``np.bincount`` adds the batch's labels to per-user (and per-group) counts.
Memory is bounded by the number of users (and groups), never by the number of labels.
The result feeds `jaxpref.data.compress_counts` directly.

Example:
    >>> import os, tempfile
    >>> import pyarrow as pa, pyarrow.parquet as pq
    >>> path = os.path.join(tempfile.mkdtemp(), "labels.parquet")
    >>> pq.write_table(pa.table({"user": ["a", "b", "a"], "label": [1, 0, 1]}), path)
    >>> counts = stream_counts(path, progress=False)
    >>> counts.user_ids.tolist(), counts.num_pref_a[:, 0].tolist(), counts.num_labels[:, 0].tolist()
    (['a', 'b'], [2, 0], [2, 1])
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from jaxpref.data import USER_ALIASES, DataError

__all__ = ["StreamedCounts", "stream_counts"]


class StreamedCounts(NamedTuple):
    """Per-user, per-group counts built from a stream of label rows.

    Attributes:
        num_pref_a: ``(num_users, num_groups)`` int64 labels that preferred A.
        num_labels: ``(num_users, num_groups)`` int64 labels.
        user_ids: ``(num_users,)`` original user ids in order of first appearance.
        group_ids: ``(num_groups,)`` sorted group ids, or None without a group column.
        num_rows: labels read.
    """

    num_pref_a: np.ndarray
    num_labels: np.ndarray
    user_ids: np.ndarray
    group_ids: np.ndarray | None
    num_rows: int


class _Coder:
    """Codes hashable ids as 0, 1, 2, ... in order of first appearance, batch by batch.

    Each batch is dictionary-encoded by Arrow; only its distinct ids are looked up (vectorised,
    in a pandas hash index of the ids seen so far), and new ones are appended.
    """

    def __init__(self) -> None:
        # Built from the first batch, so the ids keep their dtype (int64 ids stay int64).
        self.index: pd.Index | None = None

    def encode(self, values: Any) -> np.ndarray:
        import pyarrow.compute as pc

        encoded = pc.dictionary_encode(values)
        batch_ids = pd.Index(encoded.dictionary.to_numpy(zero_copy_only=False))
        if self.index is None:
            self.index = batch_ids[:0]
        codes = self.index.get_indexer(batch_ids)
        new = codes < 0
        if new.any():
            codes[new] = len(self.index) + np.arange(int(new.sum()))
            self.index = self.index.append(batch_ids[new])
        return codes.astype(np.int64)[encoded.indices.to_numpy(zero_copy_only=False)]

    def __len__(self) -> int:
        return 0 if self.index is None else len(self.index)

    def ids(self) -> np.ndarray:
        return np.asarray([]) if self.index is None else self.index.to_numpy()


def _dataset(source: Any):
    import pyarrow.dataset as ds

    if isinstance(source, ds.Dataset):
        return source
    if isinstance(source, (str, os.PathLike)):
        if not os.path.exists(source):
            raise DataError(f"data path {str(source)!r} does not exist: check the path")
        return ds.dataset(source, format="parquet")
    if isinstance(source, (list, tuple)) and all(isinstance(p, (str, os.PathLike)) for p in source):
        return ds.dataset([str(p) for p in source], format="parquet")
    raise DataError(
        f"cannot stream data of type {type(source).__name__}: pass a parquet file, a directory of parquet "
        "files, a list of paths or a pyarrow.dataset.Dataset"
    )


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
) -> StreamedCounts:
    """Per-user label counts from parquet, read in batches.

    Args:
        source: a parquet file, a directory (or list) of parquet files, or a
            `pyarrow.dataset.Dataset`.
        user_column: user id column (``worker`` / ``annotator`` / ``user_id`` accepted when
            ``user`` is absent, as in `jaxpref.data.load_preferences`).
        label_column: 0/1 label column (1 = preferred the stronger model A).
        group_column: optional group column; each group gets its own count column.
        batch_size: rows per record batch.
        progress: show a rich progress bar over rows.

    Returns:
        `StreamedCounts`; ``compress_counts(out.num_pref_a, out.num_labels)`` gives the
        statistics of `jaxpref.em`.

    Raises:
        DataError: missing columns, nulls, labels outside {0, 1}, or no rows.
    """
    import pyarrow.compute as pc

    dataset = _dataset(source)
    names = dataset.schema.names
    if user_column not in names:
        aliases = [a for a in USER_ALIASES if a in names] if user_column == "user" else []
        if not aliases:
            raise DataError(f"user column {user_column!r} not found; columns are {names}: pass user_column=<name>")
        user_column = aliases[0]
    for column, what in ((label_column, "label"), (group_column, "group")):
        if column is not None and column not in names:
            raise DataError(f"{what} column {column!r} not found; columns are {names}: pass {what}_column=<name>")
    columns = [user_column, label_column] + ([group_column] if group_column else [])
    users, groups = _Coder(), _Coder()
    num_groups_seen = 1
    pref_a = np.zeros((1024, 1), np.int64)
    labels = np.zeros((1024, 1), np.int64)
    num_rows = 0
    total = dataset.count_rows()
    bar = _progress_bar(total) if progress else None
    try:
        for batch in dataset.to_batches(columns=columns, batch_size=batch_size):
            if batch.num_rows == 0:
                continue
            for column in columns:
                if batch.column(column).null_count:
                    raise DataError(f"column {column!r} has missing (null) values near row {num_rows}: drop or fill them")
            label = batch.column(label_column)
            if label.type == "bool":
                label = pc.cast(label, "int8")
            label = np.asarray(label.to_numpy(zero_copy_only=False))
            if not np.isin(label, (0, 1)).all():
                bad = np.unique(label[~np.isin(label, (0, 1))])[:5].tolist()
                raise DataError(f"column {label_column!r} has values outside {{0, 1}}, e.g. {bad}: labels must be 0 or 1")
            user_code = users.encode(batch.column(user_column))
            group_code = groups.encode(batch.column(group_column)) if group_column else np.zeros_like(user_code)
            num_users, num_groups_seen = len(users), max(num_groups_seen, len(groups))
            if num_groups_seen > pref_a.shape[1]:
                pad = ((0, 0), (0, num_groups_seen - pref_a.shape[1]))
                pref_a, labels = np.pad(pref_a, pad), np.pad(labels, pad)
            pref_a, labels = _grow(pref_a, num_users), _grow(labels, num_users)
            cell = user_code * pref_a.shape[1] + group_code
            size = pref_a.shape[0] * pref_a.shape[1]
            labels += np.bincount(cell, minlength=size).reshape(pref_a.shape)
            pref_a += np.bincount(cell, weights=label, minlength=size).astype(np.int64).reshape(pref_a.shape)
            num_rows += batch.num_rows
            if bar is not None:
                bar.update(bar.task_ids[0], advance=batch.num_rows)
    finally:
        if bar is not None:
            bar.stop()
    if num_rows == 0:
        raise DataError("the parquet data have no rows: pass at least one labelled comparison")
    num_users = len(users)
    pref_a, labels = pref_a[:num_users, :num_groups_seen], labels[:num_users, :num_groups_seen]
    group_ids = None
    if group_column:
        # Sorted group order, as `load_preferences` codes groups.
        group_ids = groups.ids()
        order = np.argsort(group_ids, kind="stable")
        group_ids, pref_a, labels = group_ids[order], pref_a[:, order], labels[:, order]
    return StreamedCounts(pref_a, labels, users.ids(), group_ids, num_rows)


def _progress_bar(total: int):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("reading labels"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   transient=True)
    bar.add_task("read", total=total)
    bar.start()
    return bar
