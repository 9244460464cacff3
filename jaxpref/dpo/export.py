"""Hand filtered or weighted user labels to DPO trainers as prompt / chosen / rejected.

The label table that ``jaxpref`` produces (``AttentivenessEM.labels_`` or the rows kept by
``jaxpref.filter_labels``) has one row per label with ``user``, ``label`` (1 = the user preferred
the response of the stronger model A), ``response_a``, ``response_b`` and ``prompt``. TRL's
preference format wants ``prompt``, ``chosen`` and ``rejected``; this module builds that table,
adds a per-label ``weight`` and flip rate ``eps`` and the user id, and writes it as a
``datasets.Dataset`` or a parquet file.

Example:
    >>> import pandas as pd
    >>> from jaxpref.dpo.export import preference_frame
    >>> labels = pd.DataFrame({"user": ["u1", "u2"], "label": [1, 0], "prompt": ["2+2?", "2+2?"],
    ...                        "response_a": ["4", "4"], "response_b": ["5", "5"]})
    >>> preference_frame(labels)[["chosen", "rejected"]].values.tolist()
    [['4', '5'], ['5', '4']]
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

__all__ = ["TRL_COLUMNS", "preference_frame", "to_dataset", "write_parquet"]

TRL_COLUMNS = ("prompt", "chosen", "rejected")


def _numeric_column(labels: pd.DataFrame, source, name: str, default: float) -> np.ndarray:
    """A per-label column given by name, by values, or as a constant default."""
    if source is None:
        return np.full(len(labels), default, dtype=np.float64)
    if isinstance(source, str):
        if source not in labels.columns:
            raise ValueError(
                f"`{name}`={source!r} is not a column of `labels` (columns: {list(labels.columns)}); "
                "fit AttentivenessEM and pass its `labels_`, or pass the values directly."
            )
        values = labels[source].to_numpy(dtype=np.float64)
    else:
        values = np.asarray(source, dtype=np.float64)
        if values.shape != (len(labels),):
            raise ValueError(
                f"`{name}` must have one value per label ({len(labels)}); got shape {values.shape}."
            )
    return values


def preference_frame(
    labels: pd.DataFrame,
    *,
    weight: str | np.ndarray | None = None,
    eps: str | np.ndarray | None = None,
    user_column: str = "user",
    label_column: str = "label",
    prompt_column: str = "prompt",
    response_a_column: str = "response_a",
    response_b_column: str = "response_b",
    drop_zero_weight: bool = False,
) -> pd.DataFrame:
    """Turn user labels on (response_a, response_b) pairs into TRL preference rows.

    Args:
        labels: one row per label; needs the user, label, prompt and two response columns.
        weight: per-label weight: a column name (``"label_attentive"`` for the posterior
            probability that the label was attentive, ``"eta_mean"`` for the user's posterior
            mean), an array, or None for 1.
        eps: per-label flip rate in [0, 1/2]: a column name (``"flip_rate"``), an array, or
            None for 0.
        user_column, label_column, prompt_column, response_a_column, response_b_column: names
            of those columns in ``labels``.
        drop_zero_weight: drop rows whose weight is exactly 0.

    Returns:
        DataFrame with columns ``prompt``, ``chosen``, ``rejected``, ``weight``, ``eps``,
        ``user`` and ``label`` (the original label, 1 = A chosen), in the input order.

    Raises:
        ValueError: on missing columns, labels outside {0, 1}, negative or non-finite weights,
            or flip rates outside [0, 1/2].
    """
    if not isinstance(labels, pd.DataFrame):
        raise TypeError(f"`labels` must be a pandas DataFrame; got {type(labels).__name__}.")
    required = [user_column, label_column, prompt_column, response_a_column, response_b_column]
    missing = [column for column in required if column not in labels.columns]
    if missing:
        raise ValueError(
            f"`labels` lacks the columns {missing}; it needs {required} (rename them or pass the "
            "*_column arguments)."
        )
    label_values = labels[label_column].to_numpy()
    if not np.isin(label_values, (0, 1)).all():
        raise ValueError(
            f"`{label_column}` must be 0 or 1 (1 = the user preferred response A); got "
            f"{sorted(set(np.unique(label_values).tolist()) - {0, 1})[:5]}."
        )
    weights = _numeric_column(labels, weight, "weight", 1.0)
    if not (np.isfinite(weights).all() and (weights >= 0).all()):
        raise ValueError("`weight` must be finite and non-negative for every label.")
    flip_rates = _numeric_column(labels, eps, "eps", 0.0)
    if not (np.isfinite(flip_rates).all() and (flip_rates >= 0).all() and (flip_rates <= 0.5).all()):
        raise ValueError("`eps` (a flip rate) must lie in [0, 1/2] for every label.")

    prefers_a = label_values.astype(bool)
    response_a = labels[response_a_column].to_numpy(dtype=object)
    response_b = labels[response_b_column].to_numpy(dtype=object)
    frame = pd.DataFrame(
        {
            "prompt": labels[prompt_column].to_numpy(dtype=object),
            "chosen": np.where(prefers_a, response_a, response_b),
            "rejected": np.where(prefers_a, response_b, response_a),
            "weight": weights,
            "eps": flip_rates,
            "user": labels[user_column].to_numpy(),
            "label": label_values.astype(np.int64),
        }
    )
    if drop_zero_weight:
        frame = frame[frame["weight"] > 0].reset_index(drop=True)
    return frame


def to_dataset(frame: pd.DataFrame):
    """A ``datasets.Dataset`` with TRL's preference columns (plus weight, eps, user, label)."""
    import datasets

    _check_frame(frame)
    # Mixed-type user ids (e.g. ints and strings) cannot share an Arrow column; strings can.
    if frame["user"].map(type).nunique() > 1:
        frame = frame.assign(user=frame["user"].astype(str))
    return datasets.Dataset.from_pandas(frame, preserve_index=False)


def write_parquet(frame: pd.DataFrame, path: str | os.PathLike) -> str:
    """Write a preference frame to parquet (readable by ``datasets.load_dataset("parquet")``)."""
    _check_frame(frame)
    path = os.fspath(path)
    to_dataset(frame).to_parquet(path)
    return path


def _check_frame(frame: pd.DataFrame) -> None:
    missing = [c for c in (*TRL_COLUMNS, "weight", "eps", "user") if c not in frame.columns]
    if missing:
        raise ValueError(f"`frame` lacks {missing}; build it with jaxpref.dpo.export.preference_frame.")
