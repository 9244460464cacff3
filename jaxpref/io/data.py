"""Validation at the boundary, `PreferenceData`, and sufficient statistics.

Everything a user hands to jaxpref passes through `load_preferences`, which checks it
once and turns it into integer-coded NumPy arrays. The JAX core never sees bad input.

Sufficient statistics (README, "The model"): with one gap mu per group, a user's labels enter the
likelihood only through ``(k_jt, n_jt)``, the number of labels that preferred A and the
number of labels in group ``t``. Users with identical count rows are merged into one row
with a multiplicity, so EM cost per iteration depends on the number of distinct rows,
not on the number of users. With per-label ``p`` nothing compresses and the labels
themselves are the statistics (`LabelStats`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from jaxtyping import Float, Int

from jaxpref.errors import DataError, DegenerateDataWarning
from jaxpref.io.tables import check_ids, check_labels, reading, resolve_columns, scan

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DataError",
    "DegenerateDataWarning",
    "warn_degenerate",
    "PreferenceData",
    "UserCounts",
    "load_counts",
    "CountStats",
    "LabelStats",
    "load_preferences",
    "user_counts",
    "compress_counts",
    "count_stats",
    "histogram_counts",
    "fixed_n_counts",
    "label_stats",
    "bucket_size",
]



@dataclasses.dataclass(frozen=True)
class PreferenceData:
    """Validated comparison-mode labels in long format.

    Attributes:
        frame: the input rows with every original column, in input order.
        user_index: ``(num_labels,)`` int32, user code in ``[0, num_users)``.
        label: ``(num_labels,)`` int8, 1 when the user preferred the stronger model A.
        p: ``(num_labels,)`` float64 per-label probability that an attentive user prefers
            A, or None when a gap mu is used instead.
        group_index: ``(num_labels,)`` int32 group code, or None (one group).
        user_ids: ``(num_users,)`` the original user ids, ``user_ids[user_index]`` per label.
        group_ids: ``(num_groups,)`` the original group ids, or None.
        user_column, label_column, p_column, group_column: the column names used.
    """

    frame: pd.DataFrame
    user_index: np.ndarray
    label: np.ndarray
    p: np.ndarray | None
    group_index: np.ndarray | None
    user_ids: np.ndarray
    group_ids: np.ndarray | None
    user_column: str = "user"
    label_column: str = "label"
    p_column: str | None = None
    group_column: str | None = None

    @property
    def num_labels(self) -> int:
        return int(self.label.shape[0])

    @property
    def num_users(self) -> int:
        return int(self.user_ids.shape[0])

    @property
    def num_groups(self) -> int:
        return 1 if self.group_ids is None else int(self.group_ids.shape[0])


@dataclasses.dataclass(frozen=True)
class UserCounts:
    """Per-user label counts without the label rows: data for fits that need no per-label output.

    Built by `jaxpref.scale.streaming.stream_counts` (files too large to hold) or `load_counts`
    (counts from elsewhere, e.g. a SQL ``GROUP BY``). With one gap mu per group these counts
    are sufficient for the fit and every per-user output; per-label outputs need the rows.

    Attributes:
        pref_a_counts: ``(num_users, num_groups)`` int64 labels that preferred A.
        label_counts: ``(num_users, num_groups)`` int64 labels.
        user_ids: ``(num_users,)`` original user ids.
        group_ids: ``(num_groups,)`` sorted group ids, or None (one group).
    """

    pref_a_counts: np.ndarray
    label_counts: np.ndarray
    user_ids: np.ndarray
    group_ids: np.ndarray | None = None

    #: Counts carry no per-label p (per-label p does not compress).
    p = None

    @property
    def num_labels(self) -> int:
        return int(self.label_counts.sum())

    @property
    def frame(self) -> pd.DataFrame:
        """Counts hold no label rows: a `DataError` saying what to do instead."""
        raise DataError(
            "this fit was made from per-user counts, which hold no label rows: per-label outputs and "
            "filter_labels need the rows, so fit the labels themselves, or write the kept rows with "
            "jaxpref.scale.streaming.filter_stream"
        )

    @property
    def num_users(self) -> int:
        return int(self.user_ids.shape[0])

    @property
    def num_groups(self) -> int:
        return int(self.label_counts.shape[1])


def _count_array(value: Any, name: str) -> np.ndarray:
    """``value`` as int64 counts, ``(num_users, num_groups)``; int64 input is not copied (a view)."""
    array = np.asarray(value)
    if array.dtype.kind not in "iuf" or (array.dtype.kind == "f" and not np.all(np.isfinite(array))):
        raise DataError(f"{name} must hold finite whole numbers, got dtype {array.dtype}")
    if array.dtype.kind == "f" and np.any(array != np.round(array)):
        raise DataError(f"{name} has fractional values: counts must be whole numbers")
    array = array.astype(np.int64, copy=False)
    return array[:, None] if array.ndim == 1 else array


def _blocks(num_users: int, minimum: int = 0) -> list[slice]:
    """Slices of ``2**20`` users (at least ``minimum``) covering ``num_users``: work on one fits in cache."""
    size = max(1 << 20, minimum)
    return [slice(start, start + size) for start in range(0, num_users, size)]


def load_counts(num_pref_a: Any, num_labels: Any, user_ids: Any = None, group_ids: Any = None) -> UserCounts:
    """Validates per-user counts.

    Counts aggregated elsewhere (a SQL ``GROUP BY``, Spark, polars, DuckDB: docs/scale.md) come in
    here; ``jaxpref.fit_attentiveness`` fits the result. int64 arrays are used as they are, without
    a copy (the returned counts are read-only views: change the arrays after the fit, not before);
    other integer or whole float arrays are converted to int64.

    Args:
        num_pref_a: ``(num_users,)`` or ``(num_users, num_groups)`` labels that preferred A.
        num_labels: same shape, labels per user (and group).
        user_ids: ``(num_users,)`` ids; default ``0 .. num_users - 1``.
        group_ids: ``(num_groups,)`` ids for two-dimensional counts; default None.

    Returns:
        A `UserCounts`.

    Raises:
        DataError: mismatched shapes, non-integer or negative counts, ``num_pref_a > num_labels``,
            users without labels, or no users.

    Example:
        >>> counts = load_counts([3, 0], [4, 2], user_ids=["a", "b"])
        >>> counts.num_users, counts.num_labels
        (2, 6)
    """
    pref_a, labels = _count_array(num_pref_a, "num_pref_a"), _count_array(num_labels, "num_labels")
    if pref_a.ndim != 2 or pref_a.shape != labels.shape:
        raise DataError(f"num_pref_a {np.shape(num_pref_a)} and num_labels {np.shape(num_labels)} must have "
                        "the same shape, (num_users,) or (num_users, num_groups)")
    if pref_a.shape[0] == 0:
        raise DataError("the counts have no users: pass at least one user's labels")
    # 0 <= k <= n cell by cell, and n > 0 for some group of each user; compared in blocks of users
    # (a boolean temporary as long as the data costs more in page faults than the comparison).
    if pref_a.min() < 0 or any(np.any(pref_a[rows] > labels[rows]) for rows in _blocks(pref_a.shape[0])):
        raise DataError("num_pref_a must lie in [0, num_labels] for every user (and group)")
    if labels.min() == 0 if labels.shape[1] == 1 else not labels.any(axis=1).all():
        first = int(np.flatnonzero(labels.sum(axis=1) == 0)[0])
        raise DataError(f"user at position {first} has no labels: drop users with num_labels == 0")
    user_ids = np.arange(pref_a.shape[0]) if user_ids is None else np.asarray(user_ids)
    if user_ids.shape != (pref_a.shape[0],):
        raise DataError(f"user_ids has {user_ids.size} entries for {pref_a.shape[0]} users: give one id per user")
    if group_ids is not None:
        group_ids = np.asarray(group_ids)
        if group_ids.shape != (pref_a.shape[1],):
            raise DataError(f"group_ids has {group_ids.size} entries for {pref_a.shape[1]} count columns")
    return UserCounts(_read_only(pref_a), _read_only(labels), user_ids, group_ids)


def _read_only(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


class CountStats(NamedTuple):
    """Label counts per row; a row is a user or a distinct count pattern shared by users.

    Attributes:
        num_pref_a: ``(num_rows, num_groups)`` labels that preferred A (k).
        num_labels: ``(num_rows, num_groups)`` labels (n).
        multiplicity: ``(num_rows,)`` users sharing the row (0 for padding rows).
    """

    num_pref_a: Float[Any, "num_rows num_groups"]
    num_labels: Float[Any, "num_rows num_groups"]
    multiplicity: Float[Any, " num_rows"]


class LabelStats(NamedTuple):
    """Per-label data for the uncompressible case of per-label p.

    Attributes:
        row_index: ``(num_labels,)`` int32 user row of each label.
        label: ``(num_labels,)`` 1.0 if A was preferred, else 0.0.
        p: ``(num_labels,)`` probability that an attentive user prefers A.
        multiplicity: ``(num_rows,)`` 1 for real users, 0 for padding rows.
    """

    row_index: Int[Any, " num_labels"]
    label: Float[Any, " num_labels"]
    p: Float[Any, " num_labels"]
    multiplicity: Float[Any, " num_rows"]


def bucket_size(size: int, minimum: int = 8) -> int:
    """Smallest size of the form 2^k or 3 * 2^(k-1) that holds ``size``.

    Padding arrays to these buckets keeps the number of distinct compiled shapes
    logarithmic in the data size while wasting at most a third of the memory.
    """
    size = max(int(size), minimum)
    power = 1 << (size - 1).bit_length()
    three_quarters = (3 * power) // 4
    return three_quarters if three_quarters >= size else power


def _to_pandas(data: Any) -> pd.DataFrame:
    """The caller's table as a DataFrame that the fit owns: the caller's later changes do not reach it."""
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        # Copy-on-write (pandas >= 3) makes a shallow copy a snapshot; older pandas needs a deep copy.
        return data.copy(deep=int(pd.__version__.split(".")[0]) < 3)
    module = type(data).__module__.split(".")[0]
    if module in ("polars", "pyarrow") and hasattr(data, "to_pandas"):
        with reading(type(data).__name__):
            return data.to_pandas()
    if isinstance(data, Mapping):
        lengths = {name: len(np.asarray(values).reshape(-1)) for name, values in data.items()}
        if len(set(lengths.values())) > 1:
            raise DataError(
                f"arrays have mismatched lengths {lengths}: give one value per label in every array"
            )
        return pd.DataFrame({name: np.array(values).reshape(-1) for name, values in data.items()})
    raise DataError(
        f"cannot read data of type {type(data).__name__}: pass a pandas/polars DataFrame, "
        "a pyarrow Table, a .parquet/.csv/.jsonl path, or a dict of arrays"
    )


def _first_rows(codes: np.ndarray) -> np.ndarray:
    """Row of the first occurrence of each code, for codes numbered in order of first appearance."""
    return np.flatnonzero(np.diff(np.maximum.accumulate(codes), prepend=-1))


def _code_ids(values: pd.Series, column: str, sort: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(code per row, distinct ids)`` after `check_ids`; ids in order of first appearance, or sorted."""
    import pandas as pd

    codes, ids = pd.factorize(values, sort=False, use_na_sentinel=False)
    check_ids(list(ids), _first_rows(codes), column)
    if sort:
        try:
            order = np.argsort(np.asarray(ids), kind="stable")
        except TypeError:
            raise DataError(f"column {column!r} mixes ids of different types (e.g. numbers and text): "
                            "write every id the same way") from None
        rank = np.empty_like(order)
        rank[order] = np.arange(order.shape[0])
        codes, ids = rank[codes], np.asarray(ids)[order]
    return codes.astype(np.int32), np.asarray(ids)


def _validate_labels(values: pd.Series, column: str) -> np.ndarray:
    import pandas as pd

    numeric = pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)
    codes, distinct = pd.factorize(values, use_na_sentinel=False) if numeric else (np.zeros(0, np.int64), [])
    check_labels(list(distinct), _first_rows(codes), column, numeric)
    return values.to_numpy().astype(np.int8)


def _check_no_nulls(values: pd.Series, column: str) -> None:
    missing = int(values.isna().sum())
    if missing:
        first = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise DataError(
            f"column {column!r} has {missing} missing (NaN/null) value(s), first at row {first}: "
            "drop or fill those rows"
        )


def _validate_probabilities(values: pd.Series, column: str) -> np.ndarray:
    import pandas as pd

    _check_no_nulls(values, column)
    if not pd.api.types.is_numeric_dtype(values) or values.dtype == bool:
        raise DataError(f"column {column!r} has dtype {values.dtype}; p must be a float in (0, 1)")
    array = values.to_numpy(dtype=np.float64)
    bad = (array <= 0.0) | (array >= 1.0) | ~np.isfinite(array)
    if bad.any():
        examples = np.unique(array[bad])[:5].tolist()
        raise DataError(
            f"column {column!r} has {int(bad.sum())} value(s) outside the open interval (0, 1), "
            f"e.g. {examples}: clip p away from 0 and 1"
        )
    return array


def load_preferences(
    data: Any,
    *,
    user_column: str = "user",
    label_column: str = "label",
    p_column: str | None = None,
    group_column: str | None = None,
) -> PreferenceData:
    """Validates comparison-mode labels and codes them as arrays.

    Args:
        data: a pandas or polars DataFrame, a pyarrow Table, a path to a .parquet, .csv or
            .jsonl file, a dict of equal-length arrays, or an existing `PreferenceData`.
        user_column: column of user ids (any hashable), kept exactly as written: from CSV and
            JSONL files they are text (``007`` and ``7`` are two users). ``worker`` /
            ``annotator`` are accepted when ``user`` is absent, as in crowd-kit.
        label_column: column of labels, 1 = preferred the stronger model A, 0 = model B.
        p_column: optional column of per-label probabilities in (0, 1) that an attentive
            user prefers A (e.g. a reward model's sigmoid(r_A - r_B)).
        group_column: optional column of groups (topics or model pairs); each group gets its
            own gap mu.

    Returns:
        The validated `PreferenceData`.

    Raises:
        DataError: empty data, missing columns, NaN/null values, labels outside {0, 1},
            p outside (0, 1), mismatched array lengths or unreadable files.

    Example:
        >>> data = load_preferences({"user": ["a", "a", "b"], "label": [1, 0, 1]})
        >>> data.num_users, data.num_labels
        (2, 3)
    """
    if isinstance(data, PreferenceData):
        return data
    if isinstance(data, (str, os.PathLike)):
        lazy, columns = scan(data, user_column, label_column, p_column, group_column)
        with reading(data):
            frame = lazy.collect().to_pandas()
        if len(frame) == 0:
            raise DataError(f"data file {str(data)!r} has no labels (rows): pass at least one comparison")
    else:
        frame = _to_pandas(data)
        if len(frame) == 0:
            raise DataError("data is empty: it has no labels (rows); pass at least one labelled comparison")
        columns = resolve_columns(list(frame.columns), user_column, label_column, p_column, group_column)
    user_column, label_column, p_column, group_column = columns.user, columns.label, columns.p, columns.group
    user_index, user_ids = _code_ids(frame[user_column], user_column)
    label = _validate_labels(frame[label_column], label_column)
    p = None if p_column is None else _validate_probabilities(frame[p_column], p_column)
    group_index, group_ids = None, None
    if group_column is not None:
        group_index, group_ids = _code_ids(frame[group_column], group_column, sort=True)

    return PreferenceData(
        frame=frame,
        user_index=user_index,
        label=label,
        p=p,
        group_index=group_index,
        user_ids=user_ids,
        group_ids=group_ids,
        user_column=user_column,
        label_column=label_column,
        p_column=p_column,
        group_column=group_column,
    )


def warn_degenerate(num_pref_a: np.ndarray, num_labels: np.ndarray, mu_mode: str) -> None:
    """Warns (`DegenerateDataWarning`) when the data cannot inform the fit, whatever the optimiser reports:
    one user, or every label the same answer. (Too few labels per user for the family's parameters is
    the estimator's `IdentifiabilityWarning`.)

    Args:
        num_pref_a: ``(num_users, num_groups)`` labels that preferred A.
        num_labels: ``(num_users, num_groups)`` labels.
        mu_mode: ``known``, ``prior``, ``free`` or ``per_label``.
    """
    import warnings

    total, total_a = int(num_labels.sum()), int(num_pref_a.sum())
    messages = []
    if num_labels.shape[0] == 1:
        messages.append(
            "the data have one user: the spread of attentiveness over users (P_eta) cannot be "
            "estimated from one user; fit many users together"
        )
    if mu_mode != "per_label" and total_a == total:
        messages.append(
            "every label is 1 (prefers model A): nothing separates attentive from casual users; "
            "check that the label column holds both answers"
        )
    elif mu_mode != "per_label" and total_a == 0:
        messages.append(
            "every label is 0 (prefers model B): are A and B swapped? label 1 must mean that the "
            "user preferred the stronger model A"
        )
    for message in messages:
        warnings.warn(message, DegenerateDataWarning, stacklevel=3)


def user_counts(data: PreferenceData | UserCounts) -> tuple[np.ndarray, np.ndarray]:
    """Per-user, per-group counts.

    Returns:
        ``(num_pref_a, num_labels)``, each ``(num_users, num_groups)`` int64.
    """
    if isinstance(data, UserCounts):
        return data.pref_a_counts, data.label_counts
    num_groups = data.num_groups
    group = np.zeros_like(data.user_index) if data.group_index is None else data.group_index
    cell = data.user_index.astype(np.int64) * num_groups + group
    size = data.num_users * num_groups
    num_labels = np.bincount(cell, minlength=size).reshape(data.num_users, num_groups)
    num_pref_a = np.bincount(cell, weights=data.label, minlength=size).reshape(data.num_users, num_groups)
    return num_pref_a.astype(np.int64), num_labels


def _pattern_keys(num_pref_a: np.ndarray, num_labels: np.ndarray, width: int) -> np.ndarray:
    """Each user's count row as one int64, digits ``n_1, k_1, n_2, k_2, ...`` in base ``width``
    (first group most significant): rows are equal exactly when their keys are."""
    key = np.multiply(num_labels[:, 0], width, dtype=np.int64, casting="unsafe")
    np.add(key, num_pref_a[:, 0], out=key, casting="unsafe")
    for group in range(1, num_labels.shape[1]):
        for digits in (num_labels[:, group], num_pref_a[:, group]):
            key *= width
            np.add(key, digits, out=key, casting="unsafe")
    return key


def _pattern_rows(unique_keys: np.ndarray, width: int, num_groups: int) -> np.ndarray:
    """``(num_patterns, 2 * num_groups)`` rows ``k_1 .. k_G, n_1 .. n_G`` of keys from `_pattern_keys`."""
    rows = np.empty((unique_keys.shape[0], 2 * num_groups), np.int64)
    rest = unique_keys.copy()
    for group in reversed(range(num_groups)):
        rest, rows[:, group] = np.divmod(rest, width)
        rest, rows[:, num_groups + group] = np.divmod(rest, width)
    return rows


def compress_counts(
    num_pref_a: np.ndarray, num_labels: np.ndarray, dtype: Any = np.float32
) -> tuple[CountStats, np.ndarray]:
    """Merges users with identical count rows and pads to a bucketed number of rows.

    Each user's row is coded as one integer (`_pattern_keys`); when there are few possible keys they
    are counted with one ``np.bincount`` (time linear in the users, no sort), otherwise sorted
    (``np.unique``). Only rows too wide for one int64 key fall back to ``np.unique`` over rows.

    Args:
        num_pref_a: ``(num_users, num_groups)`` labels that preferred A per user.
        num_labels: ``(num_users, num_groups)`` labels per user.
        dtype: float dtype of the returned statistics.

    Returns:
        ``(stats, row_of_user)`` where ``row_of_user`` is ``(num_users,)`` int32 (int64 beyond 2^31
        rows) and maps each user to its row of ``stats``. Rows are sorted by their key.
    """
    num_users, num_groups = num_pref_a.shape
    width = int(num_labels.max()) + 1
    num_keys = width ** (2 * num_groups)  # exact (a Python int): does the key overflow int64?
    if num_keys <= max(1 << 22, num_users):
        # Few possible keys: count them directly, O(users) instead of sorting, in blocks of users so
        # the keys stay in cache and are never a (num_users,) array (computing them twice is cheaper
        # than the page faults of one).
        blocks = _blocks(num_users, num_keys)
        key_counts = np.zeros(num_keys, np.int64)
        for rows_of_block in blocks:
            key = _pattern_keys(num_pref_a[rows_of_block], num_labels[rows_of_block], width)
            key_counts += np.bincount(key, minlength=num_keys)
        unique_keys = np.flatnonzero(key_counts)
        multiplicity = key_counts[unique_keys]
        rank = np.zeros(num_keys, _index_dtype(unique_keys.shape[0]))
        rank[unique_keys] = np.arange(unique_keys.shape[0])
        row_of_user = np.empty(num_users, rank.dtype)
        for rows_of_block in blocks:
            key = _pattern_keys(num_pref_a[rows_of_block], num_labels[rows_of_block], width)
            rank.take(key, out=row_of_user[rows_of_block])
        rows = _pattern_rows(unique_keys, width, num_groups)
    elif num_keys < 1 << 63:
        unique_keys, row_of_user, multiplicity = np.unique(
            _pattern_keys(num_pref_a, num_labels, width), return_inverse=True, return_counts=True
        )
        rows = _pattern_rows(unique_keys, width, num_groups)
    else:
        rows, row_of_user, multiplicity = np.unique(
            np.concatenate([num_pref_a, num_labels], axis=1), axis=0, return_inverse=True, return_counts=True
        )
    num_rows = bucket_size(rows.shape[0])
    padded = np.zeros((num_rows, 2 * num_groups), dtype=dtype)
    padded[: rows.shape[0]] = rows
    padded_multiplicity = np.zeros(num_rows, dtype=dtype)
    padded_multiplicity[: rows.shape[0]] = multiplicity
    stats = CountStats(
        num_pref_a=padded[:, :num_groups],
        num_labels=padded[:, num_groups:],
        multiplicity=padded_multiplicity,
    )
    row_of_user = row_of_user.reshape(-1)
    return stats, row_of_user.astype(_index_dtype(rows.shape[0]), copy=False)


def _index_dtype(size: int) -> type:
    """The smallest of int32 / int64 that indexes ``size`` rows."""
    return np.int32 if size < 1 << 31 else np.int64


def count_stats(data: PreferenceData | UserCounts, dtype: Any = np.float32) -> tuple[CountStats, np.ndarray]:
    """Compressed `CountStats` of validated data; see `compress_counts`."""
    if data.p is not None:
        raise DataError("data has per-label p: counts are not sufficient, use label_stats")
    return compress_counts(*user_counts(data), dtype=dtype)


def label_stats(data: PreferenceData, dtype: Any = np.float32) -> LabelStats:
    """Per-label statistics padded to bucketed sizes (padding labels go to a padding row).

    Returns:
        `LabelStats` whose rows are users in the order of ``data.user_ids``.
    """
    if data.p is None:
        raise DataError("label_stats needs per-label p: pass p_column=...")
    num_rows = bucket_size(data.num_users + 1)
    num_labels = bucket_size(data.num_labels)
    pad = num_labels - data.num_labels
    row_index = np.concatenate([data.user_index, np.full(pad, num_rows - 1, np.int32)])
    label = np.concatenate([data.label, np.zeros(pad, np.int8)]).astype(dtype)
    p = np.concatenate([data.p, np.full(pad, 0.5)]).astype(dtype)
    multiplicity = np.zeros(num_rows, dtype=dtype)
    multiplicity[: data.num_users] = 1.0
    return LabelStats(row_index=row_index, label=label, p=p, multiplicity=multiplicity)


def histogram_counts(num_pref_a: Any, num_labels: Any, max_labels: int) -> CountStats:
    """Jittable compression of one-gap counts into all (k, n) pairs with ``n <= max_labels``.

    Unlike `compress_counts` (NumPy, exact distinct rows), the output shape depends only on
    ``max_labels``, so it can be vmapped over simulated replications.

    Args:
        num_pref_a: ``(num_users,)`` k per user.
        num_labels: ``(num_users,)`` n per user, each at most ``max_labels``.
        max_labels: static bound on n.

    Returns:
        `CountStats` with ``(max_labels + 1)**2`` rows, row ``n * (max_labels + 1) + k``;
        rows that no user has (or with k > n) have multiplicity 0.
    """
    import jax
    import jax.numpy as jnp

    width = max_labels + 1
    k_values = jnp.tile(jnp.arange(width), width)
    n_values = jnp.repeat(jnp.arange(width), width)
    cell = jnp.asarray(num_labels, jnp.int32) * width + jnp.asarray(num_pref_a, jnp.int32)
    dtype = jnp.result_type(float)
    multiplicity = jax.ops.segment_sum(jnp.ones(cell.shape, dtype), cell, num_segments=width * width)
    return CountStats(
        num_pref_a=k_values[:, None].astype(dtype),
        num_labels=n_values[:, None].astype(dtype),
        multiplicity=multiplicity,
    )


def fixed_n_counts(num_pref_a: Any, labels_per_user: int) -> CountStats:
    """Exact jittable compression when every user has ``labels_per_user`` labels (one gap).

    One row per k = 0 .. n, so the statistics have ``n + 1`` rows whatever the number of users
    (`histogram_counts` allows any n and has ``(n + 1)**2``).

    Args:
        num_pref_a: ``(num_users,)`` k per user, each in ``[0, labels_per_user]``.
        labels_per_user: static n.

    Returns:
        `CountStats` with ``labels_per_user + 1`` rows; row k holds the users with k_j = k.

    Example:
        >>> stats = fixed_n_counts(np.array([0, 2, 2]), 2)
        >>> stats.multiplicity.tolist(), stats.num_labels[:, 0].tolist()
        ([1.0, 0.0, 2.0], [2.0, 2.0, 2.0])
    """
    import jax
    import jax.numpy as jnp

    width = labels_per_user + 1
    dtype = jnp.result_type(float)
    multiplicity = jax.ops.segment_sum(
        jnp.ones(jnp.shape(num_pref_a), dtype), jnp.asarray(num_pref_a, jnp.int32), num_segments=width
    )
    k_values = jnp.arange(width, dtype=dtype)[:, None]
    return CountStats(k_values, jnp.full_like(k_values, labels_per_user), multiplicity)
