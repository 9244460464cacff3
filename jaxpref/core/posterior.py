"""Per-user and per-label posterior outputs, filtering rules and soft label weights.

Given the posterior over grid nodes of each user, ``r[j, g] = P(eta_j = eta_g | data)``:

- ``eta_mean = sum_g r eta_g``, ``eta_map = eta_{argmax_g r}``, ``eta_sd``,
  ``prob_attentive = P(eta_j >= threshold | data)``;
- per label, ``P(z_i = 1 | y_i, data) = sum_g r[j, g] P(z = 1 | y_i, eta_g)`` (``docs/model.md``),
  a weight for weighted DPO, and its flip rate ``(1 - P(z_i = 1 | ...)) / 2`` for conservative DPO.
  Not for robust DPO: this flip rate depends on the label's direction, which rDPO turns into a
  pull towards the worse response; give rDPO the per-user rate ``(1 - eta_mean) / 2`` if any
  (``docs/dpo.md``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from jaxpref.errors import DataError
from jaxpref.core.likelihood import attentive_given_label

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "UserPosterior",
    "user_posterior",
    "count_label_attentiveness",
    "per_label_attentiveness",
    "FILTER_RULES",
    "check_rule",
    "select_users",
    "filter_labels",
]

FILTER_RULES = ("eta_map", "eta_mean", "prob_attentive", "top_fraction")

#: Labels per chunk in the per-label pass: a fixed shape, so one compilation serves any size.
LABEL_CHUNK = 1 << 16


class UserPosterior(NamedTuple):
    """Posterior summaries per row, each ``(num_rows,)``."""

    eta_mean: Array
    eta_map: Array
    eta_sd: Array
    prob_attentive: Array


@jax.jit
def user_posterior(
    log_resp: Float[Array, "num_rows num_nodes"], eta_grid: Float[Array, " num_nodes"], threshold: Array
) -> UserPosterior:
    """Summaries of each row's posterior over the grid nodes."""
    resp = jnp.exp(log_resp)
    eta_mean = resp @ eta_grid
    second_moment = resp @ jnp.square(eta_grid)
    eta_sd = jnp.sqrt(jnp.maximum(second_moment - jnp.square(eta_mean), 0.0))
    eta_map = eta_grid[jnp.argmax(log_resp, axis=1)]
    prob_attentive = resp @ (eta_grid >= threshold).astype(resp.dtype)
    return UserPosterior(eta_mean, eta_map, eta_sd, jnp.clip(prob_attentive, 0.0, 1.0))


@jax.jit
def count_label_attentiveness(
    log_resp: Float[Array, "num_rows num_nodes"], eta_grid: Float[Array, " num_nodes"], mu: Float[Array, " num_groups"]
) -> tuple[Array, Array]:
    """P(z = 1 | y, data) for labels that chose A and B, per row and group (one gap per group).

    Returns:
        ``(if_chose_a, if_chose_b)``, each ``(num_rows, num_groups)``.
    """
    resp = jnp.exp(log_resp)
    eta, gap = eta_grid[:, None], mu[None, :]
    return resp @ attentive_given_label(eta, gap, True), resp @ attentive_given_label(eta, gap, False)


@jax.jit
def _label_chunk(log_resp_of_label, eta_grid, p, chose_a):
    resp = jnp.exp(log_resp_of_label)
    return jnp.sum(resp * attentive_given_label(eta_grid[None, :], p[:, None], chose_a[:, None]), axis=1)


def per_label_attentiveness(
    log_resp: np.ndarray, eta_grid: np.ndarray, row_index: np.ndarray, p: np.ndarray, label: np.ndarray
) -> np.ndarray:
    """P(z_i = 1 | y_i, data) with per-label p, in fixed-size chunks of labels.

    Args:
        log_resp: ``(num_rows, num_nodes)`` log posterior over nodes per user row.
        eta_grid: ``(num_nodes,)`` nodes.
        row_index: ``(num_labels,)`` row of each label's user.
        p: ``(num_labels,)`` per-label probability that an attentive user prefers A.
        label: ``(num_labels,)`` 0/1 labels.

    Returns:
        ``(num_labels,)`` float64 array.
    """
    num_labels = row_index.shape[0]
    dtype = np.asarray(log_resp).dtype
    out = np.empty(num_labels, np.float64)
    log_resp = jnp.asarray(log_resp)
    grid = jnp.asarray(eta_grid)
    for start in range(0, num_labels, LABEL_CHUNK):
        stop = min(start + LABEL_CHUNK, num_labels)
        pad = LABEL_CHUNK - (stop - start)
        rows = np.pad(row_index[start:stop], (0, pad))
        chunk_p = np.pad(p[start:stop].astype(dtype), (0, pad), constant_values=0.5)
        chunk_label = np.pad(label[start:stop] > 0, (0, pad))
        values = _label_chunk(log_resp[rows], grid, jnp.asarray(chunk_p), jnp.asarray(chunk_label))
        out[start:stop] = np.asarray(values)[: stop - start]
    return out



def check_rule(rule: str, **cutoffs: float | None) -> None:
    """Raises a `DataError` for an unknown rule or a cut-off outside [0, 1] (None is skipped)."""
    if rule not in FILTER_RULES:
        raise DataError(f"rule={rule!r} is unknown: choose one of {', '.join(FILTER_RULES)}")
    for name, value in cutoffs.items():
        if value is not None and not 0.0 <= float(value) <= 1.0:
            raise DataError(f"{name}={value!r} must lie in [0, 1]")


def select_users(
    users: pd.DataFrame,
    rule: str = "eta_map",
    *,
    threshold: float = 0.5,
    level: float = 0.9,
    fraction: float = 0.5,
) -> np.ndarray:
    """Which users a filtering rule keeps.

    Args:
        users: the per-user table of a fit (``eta_map``, ``eta_mean``, ``prob_attentive``).
        rule: ``eta_map`` (MAP eta >= threshold, the paper's rule), ``eta_mean``
            (posterior mean >= threshold), ``prob_attentive`` (P(eta >= tau) >= level, tau
            being the fit's threshold), or ``top_fraction`` (the top ``fraction`` of users
            by posterior mean; ties broken by order of appearance).
        threshold, level, fraction: the rule's cut-off.

    Returns:
        ``(num_users,)`` boolean mask aligned with ``users``.
    """
    check_rule(rule, threshold=threshold, level=level, fraction=fraction)
    if rule in ("eta_map", "eta_mean"):
        return users[rule].to_numpy() >= threshold
    if rule == "prob_attentive":
        return users["prob_attentive"].to_numpy() >= level
    num_keep = int(round(fraction * len(users)))
    order = np.argsort(-users["eta_mean"].to_numpy(), kind="stable")
    keep = np.zeros(len(users), bool)
    keep[order[:num_keep]] = True
    return keep


def filter_labels(
    fit,
    rule: str = "eta_map",
    *,
    threshold: float | None = None,
    level: float = 0.9,
    fraction: float = 0.5,
    weights: bool = False,
) -> pd.DataFrame:
    """The input rows of the users a rule keeps, with every original column.

    Args:
        fit: an `AttentivenessFit` or a fitted `AttentivenessEM`.
        rule, level, fraction: see `select_users`.
        threshold: cut-off for ``eta_map`` / ``eta_mean``; defaults to the fit's threshold.
        weights: also add the per-label ``label_attentive``, ``flip_rate`` and ``eta_mean``
            columns (weights for weighted DPO, flip rates for conservative DPO; see ``docs/dpo.md``).

    Example:
        >>> kept = filter_labels(model, rule="eta_map", threshold=0.5)  # doctest: +SKIP
    """
    fit = getattr(fit, "result_", fit)
    threshold = fit.threshold if threshold is None else threshold
    keep_user = select_users(fit.users, rule, threshold=threshold, level=level, fraction=fraction)
    frame = fit.labels if weights else fit.data.frame
    return frame[keep_user[fit.data.user_index]]
