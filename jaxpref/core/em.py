"""EM for the attentiveness model: the configuration, the state and a pure `step`.

The complete data are each user's grid node g and each label's attentiveness z
(docs/model.md; fitting in docs/em.md). The E-step gives the posterior over nodes per user and the expected attentive
labels; the M-step is closed form for node weights, moving nodes and mu, and a monotone
Newton step for the Beta shapes. The objective (log-likelihood plus log-prior of mu when mu
has a prior) never decreases. The loop that runs these steps, the Newton polish and the
restarts live in `jaxpref.core.driver`.

Example:
    >>> import jax.numpy as jnp
    >>> from jaxpref.io.data import CountStats
    >>> from jaxpref.core.families import make_family
    >>> stats = CountStats(jnp.array([[9.0], [5.0]]), jnp.array([[10.0], [10.0]]), jnp.array([60.0, 40.0]))
    >>> config = EMConfig(family=make_family("two_point", support=(0.0, 1.0)), mu_mode="known")
    >>> state, info = step(init(config, mu=jnp.array([0.9])), stats, config)
    >>> bool(step(state, stats, config)[1].objective >= info.objective)
    True
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax.numpy as jnp
from jaxtyping import Array, Float

from jaxpref.core.families.base import Family, FamilyParams
from jaxpref.core.likelihood import Stats, expected_counts, marginal_loglik

__all__ = [
    "MU_MODES",
    "RESTART_AXIS",
    "EMConfig",
    "EMState",
    "EMInfo",
    "FitOutput",
    "init",
    "log_prior",
    "objective",
    "step",
    "step_on",
    "node_log_posterior",
]

#: ``known``: mu fixed; ``prior``: MAP under Beta(a, b); ``free``: MLE; ``per_label``: p given.
MU_MODES = ("known", "prior", "free", "per_label")

#: mu is kept inside [1/2 + MU_MARGIN, 1 - MU_MARGIN] so that log(1 - q) stays finite.
MU_MARGIN = 1e-6

#: Name of the vmapped axis of the starts in `jaxpref.core.driver.fit_restarts`. A step may reduce a
#: branch decision over it (`jaxpref.core.dense`), so that the branch stays a branch under vmap.
RESTART_AXIS = "restarts"


class EMConfig(NamedTuple):
    """Static EM configuration (hashable; a jit static argument).

    Attributes:
        family: the P_eta family.
        mu_mode: one of `MU_MODES`.
        mu_prior: Beta(a, b) prior on each mu (used when ``mu_mode == "prior"``).
        tol: EM hands over to the Newton polish when the objective changes by less than
            ``tol`` per user over one iteration.
        max_iter: iteration cap of EM (also the length of the trace).
        gap_tol: a fit is converged when its certificate, a bound on the objective still to
            gain (nats, for the whole data set), is at most ``gap_tol`` (`jaxpref.core.polish`).
        polish: finish with Newton steps on the exact objective (`jaxpref.core.polish.polish`);
            False keeps the EM point and reports no certificate (never converged).
    """

    family: Family
    mu_mode: str = "known"
    mu_prior: tuple[float, float] = (1.0, 1.0)
    tol: float = 1e-7
    max_iter: int = 2000
    gap_tol: float = 1e-3
    polish: bool = True

    @property
    def estimates_mu(self) -> bool:
        return self.mu_mode in ("prior", "free")

    @property
    def fixed_table(self) -> bool:
        """True when the per-user table ``L[j, g]`` stays fixed during the fit: fixed nodes and mu
        not estimated (known, or per-label p)."""
        return not (self.family.moving_nodes or self.estimates_mu)

    @property
    def concave(self) -> bool:
        """True when the objective is concave in everything the fit moves: a `fixed_table` and free
        node weights. ``sum_j m_j log sum_g w_g exp(L[j, g])`` is then concave in ``w`` on the
        simplex, so EM from any start with positive weights reaches the same optimal value and
        restarts cannot find a better one (`jaxpref.core.driver.fit_restarts` runs one start)."""
        return self.fixed_table and self.family.weights_on_nodes


class EMState(NamedTuple):
    """Parameters carried between iterations.

    Attributes:
        family: P_eta on the grid.
        mu: ``(num_groups,)`` gaps (a dummy ``(1,)`` for per-label p).
    """

    family: FamilyParams
    mu: Float[Array, " num_groups"]


class EMInfo(NamedTuple):
    """What one step saw, evaluated at the step's input parameters."""

    loglik: Array
    objective: Array


class FitOutput(NamedTuple):
    """Result of `jaxpref.core.driver.fit`.

    Attributes:
        state: final parameters.
        loglik: observed log-likelihood at ``state``.
        objective: ``loglik`` plus the log-prior of mu (equal to loglik without a prior).
        num_iter: EM iterations run (SQUAREM: cycles of three EM steps).
        converged: whether ``optimality_gap <= config.gap_tol``.
        loglik_trace: ``(max_iter,)`` log-likelihood before each EM iteration, NaN after the end.
        objective_trace: ``(max_iter,)`` objective before each EM iteration, NaN after the end.
        optimality_gap: the certificate: a bound (nats) on the objective still to gain
            (`jaxpref.core.polish.certify`); NaN when the fit was not polished.
        num_newton: Newton iterations of the polish.
    """

    state: EMState
    loglik: Array
    objective: Array
    num_iter: Array
    converged: Array
    loglik_trace: Array
    objective_trace: Array
    optimality_gap: Array
    num_newton: Array


def init(config: EMConfig, mu: Array, key: Array | None = None) -> EMState:
    """Starting state in the float dtype of ``mu``; ``key=None`` is the deterministic default start."""
    mu = jnp.asarray(mu)
    return EMState(config.family.init(key, mu.dtype), mu)


def log_prior(config: EMConfig, mu: Array) -> Array:
    """Log Beta(a, b) prior density of mu (up to a constant); 0 unless ``mu_mode == "prior"``."""
    if config.mu_mode != "prior":
        return jnp.zeros((), mu.dtype)
    a, b = config.mu_prior
    return jnp.sum((a - 1.0) * jnp.log(mu) + (b - 1.0) * jnp.log1p(-mu))


def objective(state: EMState, stats: Stats, config: EMConfig) -> tuple[Array, Array]:
    """``(loglik, objective)`` at ``state``."""
    per_row, _ = marginal_loglik(stats, state.family.eta_grid, state.family.log_weights, state.mu)
    loglik = jnp.sum(stats.multiplicity * per_row)
    return loglik, loglik + log_prior(config, state.mu)


def _mu_m_step(config: EMConfig, mu: Array, attentive_a: Array, attentive_b: Array) -> Array:
    a, b = config.mu_prior if config.mu_mode == "prior" else (1.0, 1.0)
    numerator = attentive_a + (a - 1.0)
    denominator = attentive_a + attentive_b + (a + b - 2.0)
    proposal = numerator / jnp.where(denominator > 0, denominator, 1.0)
    # The objective is concave in mu, so clipping to the allowed interval is the exact
    # constrained maximiser.
    proposal = jnp.clip(proposal, 0.5 + MU_MARGIN, 1.0 - MU_MARGIN)
    return jnp.where(denominator > 0, proposal, mu)


def step(state: EMState, stats: Stats, config: EMConfig) -> tuple[EMState, EMInfo]:
    """One EM iteration (`step_on`, dispatched on the statistics' type).

    Args:
        state: current parameters.
        stats: `CountStats`, `LabelStats`, `LogLikTable` (per-label p on a fixed grid), or a
            `jaxpref.core.dense.DenseTable`.
        config: static configuration.

    Returns:
        ``(new_state, info)`` where ``info`` holds the log-likelihood and objective at the
        *input* state (computed by the E-step anyway).
    """
    return step_on(stats, state, config)


@functools.singledispatch
def step_on(stats: Stats, state: EMState, config: EMConfig) -> tuple[EMState, EMInfo]:
    """`step` with the statistics first, for dispatch: the E-step on `log_lik_table`, then the
    M-steps. A statistics type with a faster step of its own registers it here (as
    `jaxpref.core.dense` does for its fixed tables)."""
    family = state.family
    per_row, log_resp = marginal_loglik(stats, family.eta_grid, family.log_weights, state.mu)
    multiplicity = stats.multiplicity
    loglik = jnp.sum(multiplicity * per_row)
    info = EMInfo(loglik, loglik + log_prior(config, state.mu))

    weighted_resp = jnp.exp(log_resp) * multiplicity[:, None]
    node_totals = jnp.sum(weighted_resp, axis=0)
    needs_counts = not config.fixed_table
    counts = expected_counts(stats, family.eta_grid, state.mu, weighted_resp) if needs_counts else None
    new_family = config.family.m_step(family, node_totals, counts)
    mu = state.mu
    if config.estimates_mu:
        mu = _mu_m_step(
            config, mu, jnp.sum(counts.attentive_pref_a, axis=0), jnp.sum(counts.attentive_pref_b, axis=0)
        )
    return EMState(new_family, mu), info


def node_log_posterior(state: EMState, stats: Stats) -> Array:
    """``(num_rows, num_nodes)`` log P(node g | data_j) at ``state``."""
    _, log_resp = marginal_loglik(stats, state.family.eta_grid, state.family.log_weights, state.mu)
    return log_resp

