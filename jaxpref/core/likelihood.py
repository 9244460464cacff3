"""The comparison-mode likelihood on an eta grid: one implementation for EM, Bayes and outputs.

For user (row) j and grid node g (docs/model.md):

    L[j, g] = sum_i log P(y_i | eta_g),   P(y_i = 1 | eta) = 1/2 + eta (p_i - 1/2)

With counts per group this is ``k log q + (n - k) log(1 - q)`` with ``q = 1/2 + eta (mu - 1/2)``.
All functions are pure and jittable; the statistics come from `jaxpref.io.data`.

The statistics types share one protocol, two generic functions dispatched on the type
(`functools.singledispatch`): `log_lik_table` (L at every row and node) and `expected_counts`
(the E-step's complete-data counts). Every other function of the engine is written on those
two, so a new statistics type registers its implementations (as `jaxpref.core.dense.DenseTable`
does) and touches nothing else.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from jaxpref.io.data import CountStats, LabelStats

__all__ = [
    "LogLikTable",
    "Stats",
    "safe_log",
    "prob_pref_a",
    "log_lik_table",
    "attentive_given_label",
    "ExpectedCounts",
    "expected_counts",
    "marginal_loglik",
]


class LogLikTable(NamedTuple):
    """A precomputed ``(num_rows, num_grid)`` table L, for per-label p on a fixed grid.

    Attributes:
        table: ``(num_rows, num_grid)`` log-likelihood of each row at each grid node.
        multiplicity: ``(num_rows,)`` weight of each row (0 for padding).
    """

    table: Float[Array, "num_rows num_grid"]
    multiplicity: Float[Array, " num_rows"]


Stats = CountStats | LabelStats | LogLikTable


def safe_log(x: Array) -> Array:
    """log(x) floored at log(tiny) so that 0 * log(0) stays 0 instead of NaN."""
    return jnp.log(jnp.maximum(x, jnp.finfo(jnp.result_type(x)).tiny))


def prob_pref_a(eta: Array, p: Array) -> Array:
    """P(y = 1 | eta) = 1/2 + eta (p - 1/2), broadcasting ``eta`` against ``p``."""
    return 0.5 + eta * (p - 0.5)


@functools.singledispatch
def log_lik_table(stats: Stats, eta_grid: Float[Array, " num_grid"], mu: Float[Array, " num_groups"]) -> Array:
    """Log-likelihood of every row at every grid node (dispatched on the statistics' type).

    Args:
        stats: `CountStats`, `LabelStats`, a precomputed `LogLikTable`, or another registered type.
        eta_grid: ``(num_grid,)`` attentiveness nodes in [0, 1].
        mu: ``(num_groups,)`` gaps; ignored for per-label p.

    Returns:
        ``(num_rows, num_grid)`` table L.
    """
    raise TypeError(
        f"statistics of type {type(stats).__name__} have no likelihood: pass CountStats, LabelStats or LogLikTable"
    )


@log_lik_table.register
def _(stats: LogLikTable, eta_grid: Array, mu: Array) -> Array:
    return stats.table


@log_lik_table.register
def _(stats: CountStats, eta_grid: Array, mu: Array) -> Array:
    q = prob_pref_a(eta_grid[None, :], mu[:, None])  # (num_groups, num_grid)
    num_pref_b = stats.num_labels - stats.num_pref_a
    return stats.num_pref_a @ safe_log(q) + num_pref_b @ safe_log(1.0 - q)


@log_lik_table.register
def _(stats: LabelStats, eta_grid: Array, mu: Array) -> Array:
    q = prob_pref_a(eta_grid[None, :], stats.p[:, None])  # (num_labels, num_grid)
    per_label = jnp.where(stats.label[:, None] > 0.5, safe_log(q), safe_log(1.0 - q))
    return jax.ops.segment_sum(per_label, stats.row_index, num_segments=stats.multiplicity.shape[0])


def attentive_given_label(eta: Array, p: Array, chose_a: Array | bool) -> Array:
    """P(z = 1 | y, eta): the chance a label was given attentively, at attentiveness eta.

    ``eta p / q`` when the label chose A and ``eta (1 - p) / (1 - q)`` when it chose B, with
    ``q = 1/2 + eta (p - 1/2)``; arguments broadcast.
    """
    q = prob_pref_a(eta, p)
    return jnp.where(
        chose_a,
        eta * p / jnp.maximum(q, 1e-30),
        eta * (1.0 - p) / jnp.maximum(1.0 - q, 1e-30),
    )


class ExpectedCounts(NamedTuple):
    """Expected complete-data counts at each grid node (and group) given the posterior.

    Attributes:
        attentive_pref_a: ``(num_grid, num_groups)`` expected attentive labels choosing A.
        attentive_pref_b: ``(num_grid, num_groups)`` expected attentive labels choosing B.
        labels: ``(num_grid, num_groups)`` expected labels (attentive or not).
    """

    attentive_pref_a: Array
    attentive_pref_b: Array
    labels: Array


@functools.singledispatch
def expected_counts(
    stats: Stats,
    eta_grid: Float[Array, " num_grid"],
    mu: Float[Array, " num_groups"],
    weighted_resp: Float[Array, "num_rows num_grid"],
) -> ExpectedCounts:
    """E-step counts over the latent node g and per-label attentiveness z (dispatched on the
    statistics' type; needed only when nodes or mu move).

    ``P(z = 1 | y = 1, eta) = eta p / q`` and ``P(z = 1 | y = 0, eta) = eta (1 - p) / (1 - q)``.

    Args:
        stats: count or label statistics.
        eta_grid: ``(num_grid,)`` nodes.
        mu: ``(num_groups,)`` gaps (ignored for per-label p).
        weighted_resp: ``(num_rows, num_grid)`` posterior node probabilities times row
            multiplicity.
    """
    raise ValueError(
        f"statistics of type {type(stats).__name__} hold a fixed likelihood table, which cannot update "
        "nodes or mu: pass CountStats or LabelStats"
    )


@expected_counts.register
def _(stats: CountStats, eta_grid: Array, mu: Array, weighted_resp: Array) -> ExpectedCounts:
    # (num_grid, num_groups) sums over rows. Not ``weighted_resp.T @ counts``: a float32 matrix
    # product over millions of rows on CPU accumulates sequentially (~1e-2 relative error at
    # 1e7 rows, which biased mu and stalled SQUAREM); XLA's reductions stay at ~1e-7.
    def per_group(counts):
        return jnp.stack([jnp.sum(weighted_resp * counts[:, t, None], axis=0) for t in range(counts.shape[1])], axis=1)

    pref_a, labels = per_group(stats.num_pref_a), per_group(stats.num_labels)
    eta, mu = eta_grid[:, None], mu[None, :]
    attentive_a = pref_a * attentive_given_label(eta, mu, True)
    attentive_b = (labels - pref_a) * attentive_given_label(eta, mu, False)
    return ExpectedCounts(attentive_a, attentive_b, labels)


@expected_counts.register
def _(stats: LabelStats, eta_grid: Array, mu: Array, weighted_resp: Array) -> ExpectedCounts:
    label_resp = weighted_resp[stats.row_index]  # (num_labels, num_grid)
    chose_a = stats.label[:, None] > 0.5
    attentive = label_resp * attentive_given_label(eta_grid[None, :], stats.p[:, None], chose_a)
    attentive_a = jnp.sum(jnp.where(chose_a, attentive, 0.0), axis=0)[:, None]
    attentive_b = jnp.sum(jnp.where(chose_a, 0.0, attentive), axis=0)[:, None]
    return ExpectedCounts(attentive_a, attentive_b, jnp.sum(label_resp, axis=0)[:, None])


def marginal_loglik(
    stats: Stats,
    eta_grid: Float[Array, " num_grid"],
    log_weights: Float[Array, " num_grid"],
    mu: Float[Array, " num_groups"],
) -> tuple[Array, Array]:
    """Observed log-likelihood and log posterior over nodes.

    Returns:
        ``(per_row_loglik, log_resp)``: ``(num_rows,)`` log P(data_j) per row (not weighted
        by multiplicity) and ``(num_rows, num_grid)`` log P(node g | data_j).
    """
    log_joint = log_weights[None, :] + log_lik_table(stats, eta_grid, mu)
    per_row = jax.nn.logsumexp(log_joint, axis=1)
    return per_row, log_joint - per_row[:, None]
