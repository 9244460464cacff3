r"""Streaming ingestion: per-user label counts from parquet, CSV or JSONL files without holding the rows.

The files are scanned by `jaxpref.io.tables.scan` (the same reader as in-memory loading, ids as
written) and aggregated by a polars streaming ``group_by`` over (user, group): memory is
bounded by the number of users (and groups), never by the number of labels. A large parquet
source is aggregated in several passes, each over one hash partition of the users
(`num_passes`), which keeps polars' working memory to a fraction. Ids and labels are
checked on the aggregate with the in-memory path's checks, each error naming the first bad row.
The result is a `jaxpref.io.data.UserCounts`, which `jaxpref.fit_attentiveness` fits directly
(``jaxpref fit`` does this for files); `filter_stream` writes a filter's kept rows in a second pass.

Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "labels.csv")
    >>> _ = open(path, "w").write("user,label\n007,1\n7,0\n007,1\n")
    >>> counts = stream_counts(path, progress=False)
    >>> counts.user_ids.tolist(), counts.pref_a_counts[:, 0].tolist(), counts.label_counts[:, 0].tolist()
    (['007', '7'], [2, 0], [2, 1])
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from jaxpref.io.data import UserCounts
from jaxpref.io.atomic import atomic_paths, check_output
from jaxpref.errors import DataError
from jaxpref.io.tables import SUFFIXES, check_ids, check_labels, file_format, reading, scan

__all__ = ["can_stream", "num_passes", "stream_counts", "filter_stream"]

#: Name of the row-number column added while aggregating (dropped before anything is returned).
ROW = "__jaxpref_row__"
#: Estimated cells per aggregation pass (`num_passes`), the most passes made, and the rows sampled
#: at the start of a parquet source for the estimate.
CELLS_PER_PASS = 25_000_000
MAX_PASSES = 16
SAMPLE_ROWS = 1 << 20


def can_stream(path: Any) -> bool:
    """Whether `stream_counts` reads ``path``: a parquet, CSV or JSONL file, or a parquet directory."""
    if not isinstance(path, (str, os.PathLike)):
        return False
    return os.path.isdir(path) or os.path.splitext(str(path))[1].lower() in SUFFIXES


@contextlib.contextmanager
def _status(message: str, show: bool) -> Iterator[None]:
    """A spinner on stderr while polars works (it reports no progress of its own)."""
    if not show:
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(message, spinner="dots"):
        yield


def _missing(column: str, dtype: Any) -> Any:
    """A polars expression true where an id is missing: null, blank text, or a float NaN (as `check_ids`)."""
    import polars as pl

    missing = pl.col(column).is_null()
    if dtype == pl.String or dtype == pl.Categorical or dtype == pl.Enum:
        missing = missing | (pl.col(column).cast(pl.String).str.strip_chars() == "")
    elif dtype.is_float():
        missing = missing | pl.col(column).is_nan()
    return missing


def num_passes(source: Any, lazy: Any, ids: tuple[str, ...]) -> int:
    """Passes `stream_counts` makes over ``source``, each aggregating one hash partition of the users.

    polars' streaming ``group_by`` holds partial tables that grow with the rows and with the
    distinct ids each stretch of rows holds. On 2 cores, 1e8 labels of 1e7 users in random order
    peaked at 2.2-2.5 GB in one pass and at 1.1-1.3 GB in four passes over disjoint quarters of
    the users, in about the same time (6.4 s and 6.7 s); 1e8 labels of 5e6 users with sorted ids
    peaked under 0.8 GB in one pass, where four passes cost 1.6x the time. So the passes follow
    an estimate of the cells: the rows (from the file's metadata) times the share of distinct
    (user[, group]) cells among the first `SAMPLE_ROWS` rows, one pass per `CELLS_PER_PASS`. Each
    pass re-reads the file, which for parquet is cheap next to the aggregation. CSV and JSONL are
    parsed once, since parsing is their cost; so is a `pyarrow.dataset.Dataset`.

    Args:
        source: as `stream_counts`.
        lazy: the polars LazyFrame `jaxpref.io.tables.scan` made of it.
        ids: the id columns the cells are grouped by.
    """
    import polars as pl

    paths = [source] if isinstance(source, (str, os.PathLike)) else source
    if not isinstance(paths, (list, tuple)) or any(file_format(path) != "parquet" for path in paths):
        return 1
    with reading(source):
        num_rows = lazy.select(pl.len()).collect().item()
        if num_rows <= CELLS_PER_PASS:
            return 1
        distinct, sampled = lazy.head(SAMPLE_ROWS).select(pl.struct(ids).n_unique(), pl.len()).collect().row(0)
    cells = num_rows * distinct / max(sampled, 1)
    return int(min(MAX_PASSES, max(1, -(-cells // CELLS_PER_PASS))))


def _cells(source: Any, user_column: str, label_column: str, group_column: str | None, progress: bool):
    """Checked per-(user, group) label counts: ``(cells, columns)`` with ``cells`` a polars DataFrame of
    ``user[, group], n, k, first`` (first = row of the cell's first label), in no particular order.

    One streaming query groups by the ids only (grouping by the label too costs twice as much) and notes
    whether each cell's labels are all 0/1; only when one is not, a second pass finds the bad values'
    rows. Ids are checked on the aggregate, inside polars: only bad ids ever reach Python. A large
    parquet source runs the query once per hash partition of the users (`num_passes`); rows are
    numbered before the partition, so ``first`` is the row in the whole source.
    """
    import polars as pl

    lazy, columns = scan(
        source, user_column=user_column, label_column=label_column, group_column=group_column
    )
    with reading(source):
        schema = lazy.collect_schema()
    label_type = schema[columns.label]
    if not (label_type.is_numeric() or label_type == pl.Boolean):
        check_labels([], [], columns.label, numeric=False)
    label = pl.col(columns.label).cast(pl.Int8) if label_type == pl.Boolean else pl.col(columns.label)
    valid = label.is_in([0, 1]).fill_null(False)
    passes = num_passes(source, lazy, columns.ids)
    # polars hashes a null to a fixed value, so rows with a missing id land in a pass and are checked.
    partition = pl.col(columns.user).hash(seed=0) % passes
    with _status(f"reading labels from {source}", progress), reading(source):
        cells = pl.concat([
            (lazy.with_row_index(ROW).filter(partition == index) if passes > 1 else lazy.with_row_index(ROW))
            .group_by(columns.ids)
            .agg(n=pl.len(), k=label.sum(), first=pl.col(ROW).min(), valid=valid.all())
            .collect(engine="streaming")
            for index in range(passes)
        ])
        if not cells["valid"].all():
            bad = (
                lazy.with_row_index(ROW)
                .filter(~valid)
                .group_by(label)
                .agg(first=pl.col(ROW).min())
                .collect(engine="streaming")
            )
            check_labels(bad[columns.label].to_list(), bad["first"].to_list(), columns.label, numeric=True)
    if cells.height == 0:
        raise DataError(f"the data {source!r} have no rows: pass at least one labelled comparison")
    for key in columns.ids:
        bad_ids = cells.filter(_missing(key, schema[key]))
        check_ids(bad_ids[key].to_list(), bad_ids["first"].to_list(), key)
    return cells.drop("valid"), columns


def stream_counts(
    source: Any,
    *,
    user_column: str = "user",
    label_column: str = "label",
    group_column: str | None = None,
    progress: bool = True,
) -> UserCounts:
    """Per-user label counts from parquet, CSV or JSONL, aggregated without holding the rows.

    One polars streaming query (``scan_*`` -> ``group_by(user[, group])``) gives every count; memory
    is bounded by the number of (user, group) cells, never by the number of labels.

    Args:
        source: a parquet, CSV or JSONL file, a directory (or list) of parquet files, or a
            `pyarrow.dataset.Dataset`.
        user_column: user id column (``worker`` / ``annotator`` / ``user_id`` accepted when
            ``user`` is absent, as in `jaxpref.io.data.load_preferences`).
        label_column: 0/1 label column (1 = preferred the stronger model A).
        group_column: optional group column; each group gets its own count column.
        progress: show a spinner on stderr while reading.

    Returns:
        `jaxpref.io.data.UserCounts`: users in order of first appearance in the rows (files in the
        order given, a directory's files in polars' path order), groups sorted, ids as written
        (the same as `jaxpref.io.data.load_preferences` gives for the same file).

    Raises:
        DataError: missing columns, missing or empty ids, labels outside {0, 1}, unreadable files,
            or no rows.
    """
    import polars as pl

    cells, columns = _cells(source, user_column, label_column, group_column, progress)
    if columns.group:
        # A user's first row is the first row of any of its cells; users are numbered in that order.
        cells = cells.with_columns(user_first=pl.col("first").min().over(columns.user)).sort("user_first")
        new_user = pl.col("user_first") != pl.col("user_first").shift(1, fill_value=-1)
        cells = cells.with_columns(user_code=new_user.cum_sum() - 1)
        users = cells.filter(new_user)[columns.user]
        try:
            group_ids = np.sort(cells[columns.group].unique().to_numpy(), kind="stable")
        except TypeError:
            raise DataError(
                f"column {columns.group!r} mixes ids of different types: write every group the same way"
            ) from None
        group_code = np.searchsorted(group_ids, cells[columns.group].to_numpy())
        user_code = cells["user_code"].to_numpy()
        pref_a = np.zeros((users.len(), group_ids.shape[0]), np.int64)
        labels = np.zeros((users.len(), group_ids.shape[0]), np.int64)
        labels[user_code, group_code] = cells["n"].to_numpy()
        pref_a[user_code, group_code] = cells["k"].to_numpy()
        return UserCounts(pref_a, labels, users.to_numpy(), group_ids)
    # One cell per user: sorting the cells by their first row orders the users.
    cells = cells.sort("first")
    pref_a = cells["k"].cast(pl.Int64).to_numpy().reshape(-1, 1)
    labels = cells["n"].cast(pl.Int64).to_numpy().reshape(-1, 1)
    return UserCounts(pref_a, labels, cells[columns.user].to_numpy(), None)


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
    progress: bool = True,
) -> int:
    """Writes the rows of the kept users to ``out`` atomically, streaming ``source`` a second time.

    The second pass of a streamed filter: fit on `stream_counts` of ``source``, choose users
    (`jaxpref.core.posterior.select_users`), then copy their rows, every column kept, in input order.

    Args:
        source: the data the counts were streamed from.
        out: output path, ``.parquet``, ``.csv`` or ``.jsonl``; never one of the inputs.
        fit: the `jaxpref.estimator.AttentivenessFit` of the streamed counts (one gap per group).
        keep_user: ``(num_users,)`` bool, aligned with ``fit.users``.
        weights: add ``label_attentive``, ``flip_rate`` and ``eta_mean`` columns.
        user_column, label_column, group_column, progress: as `stream_counts`.

    Returns:
        The number of rows written.

    Raises:
        DataError: a bad output path, bad columns, a table the output format cannot hold, or
            data that changed between the passes (the old output, if any, is left in place).
    """
    import polars as pl

    kind = check_output(out, [source] if isinstance(source, (str, os.PathLike)) else list(source), "output")
    lazy, columns = scan(
        source, user_column=user_column, label_column=label_column, group_column=group_column
    )
    user_ids = fit.users["user"].to_numpy()
    kept = np.flatnonzero(np.asarray(keep_user, bool))
    num_groups = 1 if not columns.group else len(fit.data.group_ids)
    position = np.repeat(kept, num_groups)
    group = np.tile(np.arange(num_groups), kept.shape[0])
    table = {columns.user: pl.Series(user_ids[position])}
    if columns.group:
        table[columns.group] = pl.Series(np.asarray(fit.data.group_ids)[group])
    helpers = []
    if weights:
        for answer in (1, 0):
            table[f"{ROW}{answer}"] = fit.count_label_attentiveness(
                position, group if columns.group else None, np.full(position.shape[0], answer)
            )
        table[f"{ROW}eta"] = fit.users["eta_mean"].to_numpy()[position]
        helpers = [f"{ROW}1", f"{ROW}0", f"{ROW}eta"]
    with reading(source):
        schema = lazy.collect_schema()
        keys = pl.DataFrame(table).with_columns(*(pl.col(key).cast(schema[key]) for key in columns.ids))
    rows = lazy.join(keys.lazy(), on=columns.ids, how="inner", maintain_order="left")
    if weights:
        attentive = pl.when(pl.col(columns.label) == 1).then(pl.col(f"{ROW}1")).otherwise(pl.col(f"{ROW}0"))
        rows = rows.with_columns(
            label_attentive=attentive, flip_rate=(1.0 - attentive) / 2.0, eta_mean=pl.col(f"{ROW}eta")
        ).drop(helpers)
    expected = int(fit.users["n_labels"].to_numpy()[kept].sum())
    with (
        _status(f"writing kept labels to {out}", progress),
        reading(out, "write"),
        atomic_paths([out]) as (temporary,),
    ):
        {"parquet": rows.sink_parquet, "csv": rows.sink_csv, "jsonl": rows.sink_ndjson}[kind](temporary)
        written = _count_rows(temporary, kind)
        if written != expected:
            raise DataError(
                f"{written} rows of the kept users were found in {source!r}, but the fit counted "
                f"{expected}: the data changed between the passes; fit and filter the same data"
            )
    return written


def _count_rows(path: str, kind: str) -> int:
    import polars as pl

    reader = {"parquet": pl.scan_parquet, "csv": pl.scan_csv, "jsonl": pl.scan_ndjson}[kind]
    if os.path.getsize(path) == 0:
        return 0
    return int(reader(path).select(pl.len()).collect().item())
