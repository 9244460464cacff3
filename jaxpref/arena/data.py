"""Arena votes: validation at the boundary, and sparse sufficient statistics per (voter, pair).

A vote is a voter, two models and an outcome, in the Chatbot Arena public schema: columns
``model_a``, ``model_b``, ``winner`` in {``model_a``, ``model_b``, ``tie``, ``tie (bothbad)``}
and the voter's hashed ``judge`` (``user`` and the core's aliases are accepted too). A tie of
either kind counts as half a win for each side, as LMArena's leaderboard does.

The model has no position effect (P(a beats b) does not depend on which side a was shown), so a
vote for (b, a) is a vote for (a, b) with the outcome reversed: each (voter, unordered pair) is
one entry, oriented so that ``first < second`` (model codes), holding the score of ``first``
(wins plus half the ties) and the number of votes. Only pairs a voter compared are stored: memory
grows with the votes, not with voters x models^2.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from jaxtyping import Float, Int

from jaxpref.errors import DataError
from jaxpref.io.data import bucket_size
from jaxpref.io.tables import USER_ALIASES, check_ids, file_format, reading

__all__ = [
    "WINNER_SCORES",
    "VOTER_ALIASES",
    "ArenaVotes",
    "PairStats",
    "load_votes",
    "read_votes",
    "pair_stats",
    "pad_stats",
]

#: The arena's outcomes and the score they give ``model_a`` (a tie is half a win for each side).
WINNER_SCORES = {"model_a": 1.0, "model_b": 0.0, "tie": 0.5, "tie (bothbad)": 0.5}
#: Columns accepted as the voter column, in order of preference (the arena's releases use ``judge``).
VOTER_ALIASES = ("judge", *USER_ALIASES)


@dataclasses.dataclass(frozen=True)
class ArenaVotes:
    """Validated votes in long format.

    Attributes:
        frame: the input rows with every original column, in input order (a copy the fit owns).
        voter_index: ``(num_votes,)`` int32 voter code in ``[0, num_voters)``.
        model_a_index, model_b_index: ``(num_votes,)`` int32 model codes in ``[0, num_models)``.
        score_a: ``(num_votes,)`` float64 score of ``model_a``: 1 win, 0 loss, 1/2 tie.
        voter_ids: ``(num_voters,)`` voter ids as written, in order of first appearance.
        model_ids: ``(num_models,)`` model names as written, sorted.
        voter_column, model_a_column, model_b_column, winner_column: the column names used.
    """

    frame: pd.DataFrame
    voter_index: np.ndarray
    model_a_index: np.ndarray
    model_b_index: np.ndarray
    score_a: np.ndarray
    voter_ids: np.ndarray
    model_ids: np.ndarray
    voter_column: str = "judge"
    model_a_column: str = "model_a"
    model_b_column: str = "model_b"
    winner_column: str = "winner"

    @property
    def num_votes(self) -> int:
        return int(self.score_a.shape[0])

    @property
    def num_voters(self) -> int:
        return int(self.voter_ids.shape[0])

    @property
    def num_models(self) -> int:
        return int(self.model_ids.shape[0])


class PairStats(NamedTuple):
    """Sparse sufficient statistics: one entry per (voter, unordered pair) with votes.

    Attributes:
        voter: ``(num_entries,)`` int32 voter code of the entry.
        first, second: ``(num_entries,)`` int32 model codes, ``first < second``.
        score_first: ``(num_entries,)`` wins of ``first`` plus half the ties.
        num_votes: ``(num_entries,)`` votes in the entry.
        multiplicity: ``(num_voters,)`` weight of each voter (1; resampling counts in the bootstrap).
    """

    voter: Int[Any, " num_entries"]
    first: Int[Any, " num_entries"]
    second: Int[Any, " num_entries"]
    score_first: Float[Any, " num_entries"]
    num_votes: Float[Any, " num_entries"]
    multiplicity: Float[Any, " num_voters"]


def _frame_of(data: Any) -> pd.DataFrame:
    """The caller's table as a DataFrame the fit owns (later changes by the caller do not reach it)."""
    if isinstance(data, pd.DataFrame):
        return data.copy(deep=True)
    if type(data).__module__.split(".")[0] in ("polars", "pyarrow") and hasattr(data, "to_pandas"):
        with reading(type(data).__name__):
            return data.to_pandas()
    if isinstance(data, Mapping):
        try:
            return pd.DataFrame({name: list(values) for name, values in data.items()})
        except ValueError:
            raise DataError("the vote columns have different lengths: give one value per vote in each") from None
    raise DataError(
        f"cannot read votes of type {type(data).__name__}: pass a pandas/polars DataFrame, a pyarrow "
        "Table, a dict of columns, or a .parquet/.csv/.jsonl path"
    )


def read_votes(path: str | os.PathLike, id_columns: tuple[str, ...] = (*VOTER_ALIASES, "model_a", "model_b")) -> pd.DataFrame:
    """Reads a votes file (parquet, CSV or JSONL by suffix) into a DataFrame.

    Id columns of text formats are read as strings, so ids stay exactly as written (``007`` is not
    ``7``); parquet keeps its own types. Read errors become a `DataError` naming the file.
    """
    import polars as pl

    if not os.path.exists(path):
        raise DataError(f"votes file {str(path)!r} does not exist: check the path")
    kind = file_format(path, what="votes file")
    with reading(path):
        if kind == "parquet":
            return pl.read_parquet(path).to_pandas()
        reader = pl.scan_csv if kind == "csv" else pl.scan_ndjson
        names = reader(path, infer_schema_length=0 if kind == "csv" else 10_000).collect_schema().names()
        overrides = {name: pl.String for name in id_columns if name in names}
        return reader(path, schema_overrides=overrides).collect().to_pandas()


def _voter_column(names: list[str], voter_column: str | None) -> str:
    if voter_column is not None:
        return voter_column
    found = next((name for name in VOTER_ALIASES if name in names), None)
    if found is None:
        raise DataError(
            f"the votes have no voter column (looked for {', '.join(VOTER_ALIASES)}): name it with voter_column=<name>"
        )
    return found


def _codes(values: pd.Series, column: str, sort: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(code per row, distinct ids)``: ids present, as written, in order of first appearance or sorted."""
    codes, ids = pd.factorize(values, sort=False, use_na_sentinel=False)
    ids = np.asarray(ids, dtype=object)
    _, first_rows = np.unique(codes, return_index=True)
    check_ids(list(ids), first_rows, column)
    if sort:
        try:
            order = np.argsort(ids, kind="stable")
        except TypeError:
            raise DataError(
                f"column {column!r} mixes ids of different types (e.g. numbers and text): write every id the same way"
            ) from None
        rank = np.empty_like(order)
        rank[order] = np.arange(order.shape[0])
        codes, ids = rank[codes], ids[order]
    return codes.astype(np.int32), ids


def _scores(values: pd.Series, column: str) -> np.ndarray:
    text = values.astype(object)
    missing = values.isna().to_numpy()
    if missing.any():
        raise DataError(
            f"column {column!r} has {int(missing.sum())} missing (NaN/null) outcome(s), first at row "
            f"{int(np.flatnonzero(missing)[0])}: drop or fill those rows"
        )
    scores = text.map(lambda value: WINNER_SCORES.get(value) if isinstance(value, str) else None)
    bad = scores.isna().to_numpy()
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        examples = sorted({repr(value) for value in text[bad].head(1000)})[:5]
        raise DataError(
            f"column {column!r} has {int(bad.sum())} value(s) outside {sorted(WINNER_SCORES)}, e.g. "
            f"{', '.join(examples)}, first at row {first} (rows count from 0): use the arena's outcome names"
        )
    return scores.to_numpy(dtype=np.float64)


def load_votes(
    data: Any,
    voter_column: str | None = None,
    model_a_column: str = "model_a",
    model_b_column: str = "model_b",
    winner_column: str = "winner",
) -> ArenaVotes:
    """Validates arena votes and codes them as integer arrays.

    Args:
        data: a pandas/polars DataFrame, a pyarrow Table, a dict of columns, or a path to a
            parquet/CSV/JSONL file in the arena's public schema.
        voter_column: the voter column; default the first of ``judge``, ``user``, ``worker``,
            ``annotator``, ``user_id`` present.
        model_a_column, model_b_column, winner_column: the other columns.

    Returns:
        `ArenaVotes`; model ids sorted, voter ids in order of first appearance, both as written.

    Raises:
        DataError: naming the column (and first bad row): missing columns, missing ids or
            outcomes, unknown outcome values, a model compared with itself, or no votes.

    Example:
        >>> votes = load_votes({"judge": ["u1", "u1"], "model_a": ["x", "y"], "model_b": ["y", "x"],
        ...                     "winner": ["model_a", "tie"]})
        >>> votes.model_ids.tolist(), votes.score_a.tolist()
        (['x', 'y'], [1.0, 0.5])
    """
    if isinstance(data, (str, os.PathLike)):
        ids = (*VOTER_ALIASES, *([voter_column] if voter_column else []), model_a_column, model_b_column)
        frame = read_votes(data, ids)
    else:
        frame = _frame_of(data)
    names = [str(name) for name in frame.columns]
    voter_column = _voter_column(names, voter_column)
    roles = {"voter_column": voter_column, "model_a_column": model_a_column,
             "model_b_column": model_b_column, "winner_column": winner_column}
    for role, column in roles.items():
        if column not in names:
            raise DataError(f"{role}={column!r} is not a column of the votes (columns: {names}): name the right one")
    if len(set(roles.values())) < len(roles):
        raise DataError(f"the vote columns {roles} must be four different columns")
    if len(frame) == 0:
        raise DataError(f"the votes are empty (column {winner_column!r} has no rows): pass at least one vote")
    voter_index, voter_ids = _codes(frame[voter_column], voter_column, sort=False)
    both = pd.concat([frame[model_a_column], frame[model_b_column]], ignore_index=True)
    model_codes, model_ids = _codes(both, f"{model_a_column}/{model_b_column}", sort=True)
    model_a_index, model_b_index = model_codes[: len(frame)], model_codes[len(frame):]
    same = model_a_index == model_b_index
    if same.any():
        first = int(np.flatnonzero(same)[0])
        raise DataError(
            f"column {model_b_column!r} equals {model_a_column!r} in {int(same.sum())} vote(s), first at row "
            f"{first} ({model_ids[model_a_index[first]]!r}): a model cannot be compared with itself; drop those rows"
        )
    score_a = _scores(frame[winner_column], winner_column)
    return ArenaVotes(frame, voter_index, model_a_index, model_b_index, score_a, voter_ids, model_ids,
                      voter_column, model_a_column, model_b_column, winner_column)


def pair_stats(votes: ArenaVotes, dtype: Any = np.float64) -> PairStats:
    """Sums the votes per (voter, unordered pair), oriented ``first < second``.

    Returns:
        `PairStats` as NumPy arrays (entries sorted by voter, then pair).
    """
    first = np.minimum(votes.model_a_index, votes.model_b_index).astype(np.int64)
    second = np.maximum(votes.model_a_index, votes.model_b_index).astype(np.int64)
    score_first = np.where(votes.model_a_index == first, votes.score_a, 1.0 - votes.score_a)
    num_models = votes.num_models
    key = (votes.voter_index.astype(np.int64) * num_models + first) * num_models + second
    keys, entry = np.unique(key, return_inverse=True)
    pair = keys % (num_models * num_models)
    return PairStats(
        voter=(keys // (num_models * num_models)).astype(np.int32),
        first=(pair // num_models).astype(np.int32),
        second=(pair % num_models).astype(np.int32),
        score_first=np.bincount(entry, weights=score_first, minlength=keys.shape[0]).astype(dtype),
        num_votes=np.bincount(entry, minlength=keys.shape[0]).astype(dtype),
        multiplicity=np.ones(votes.num_voters, dtype),
    )


def pad_stats(stats: PairStats, num_entries: int | None = None, num_voters: int | None = None) -> PairStats:
    """Pads entries and voters to fixed sizes (default: the core's `bucket_size`), so that fits of
    similar sizes share one compilation. Padded entries hold no votes and padded voters have
    multiplicity 0: neither changes the likelihood, its derivatives or the EM updates.
    """
    num_entries = bucket_size(stats.voter.shape[0]) if num_entries is None else num_entries
    num_voters = bucket_size(stats.multiplicity.shape[0]) if num_voters is None else num_voters
    extra = num_entries - stats.voter.shape[0]
    if extra < 0 or num_voters < stats.multiplicity.shape[0]:
        raise DataError(f"cannot pad {stats.voter.shape[0]} entries and {stats.multiplicity.shape[0]} voters to "
                        f"{num_entries} and {num_voters}: give sizes at least as large")
    # A padded entry compares models 0 and 1 (so theta's difference is defined) with no votes.
    return PairStats(
        voter=np.pad(stats.voter, (0, extra)),
        first=np.pad(stats.first, (0, extra)),
        second=np.pad(stats.second, (0, extra), constant_values=1),
        score_first=np.pad(stats.score_first, (0, extra)),
        num_votes=np.pad(stats.num_votes, (0, extra)),
        multiplicity=np.pad(stats.multiplicity, (0, num_voters - stats.multiplicity.shape[0])),
    )
