"""How well attentive users are found: ROC AUC, precision and recall."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from jaxpref.errors import DataError

__all__ = ["roc_auc", "precision_recall"]


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U / (n_pos n_neg)), ties counted 1/2.

    Args:
        scores: ``(num_users,)`` higher = more likely attentive (e.g. ``eta_mean``).
        positive: ``(num_users,)`` booleans, the truly attentive users.

    Returns:
        The AUC, or NaN when one class is empty.

    Example:
        >>> roc_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([False, False, True, True]))
        0.75
    """
    scores = np.asarray(scores, np.float64)
    positive = np.asarray(positive, bool)
    if scores.shape != positive.shape:
        raise DataError(f"scores {scores.shape} and positive {positive.shape} have mismatched shapes")
    num_pos = int(positive.sum())
    num_neg = positive.size - num_pos
    if num_pos == 0 or num_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - num_pos * (num_pos + 1) / 2) / (num_pos * num_neg))


def precision_recall(selected: np.ndarray, positive: np.ndarray) -> tuple[float, float]:
    """``(precision, recall)`` of a selection against the truth (NaN when undefined)."""
    selected = np.asarray(selected, bool)
    positive = np.asarray(positive, bool)
    hits = float(np.sum(selected & positive))
    precision = hits / selected.sum() if selected.any() else float("nan")
    recall = hits / positive.sum() if positive.any() else float("nan")
    return precision, recall
