"""Bradley-Terry strengths and voters' attentiveness, estimated together by EM (certified).

Voter j, with attentiveness eta_j drawn from P_eta, prefers model a to model b with probability

    P(a > b | eta_j) = 1/2 + eta_j (sigma(theta_a - theta_b) - 1/2),

the core's comparison-mode model with the gap mu of a pair replaced by its Bradley-Terry win
probability. Each (voter, pair) entry of `jaxpref.arena.data.PairStats` is one group of the core's
count likelihood with ``mu = sigma(theta_first - theta_second)``; that mu may be below 1/2 (the
first model may be the weaker), which the core's formulas allow: they are symmetric in the
orientation of a pair (``tests/arena`` checks that flipping a pair leaves the likelihood unchanged).

EM (docs/arena.md):

- E-step: the core's (`jaxpref.core.likelihood.marginal_loglik` on the per-voter table built with
  `log_lik_table`, and `expected_counts` per entry): posterior over the eta grid per voter, and the
  expected attentive wins of each side per entry.
- M-step for theta: a weighted Bradley-Terry (logistic) regression on the expected attentive wins
  per pair, by safeguarded Newton steps (each keeps the best of step sizes 1, 1/2, 1/4, 1/8, 0,
  so the objective never decreases). Anchor: ``sum(theta) = 0``.
- M-step for P_eta: the family's own `m_step` (`jaxpref.core.families`), for the parametric families (point, two_point,
  beta). npmle is not offered: its weights live on a simplex, where EM alone certifies slowly
  (the core finishes them by an interior-point method that works on its own statistics).

Without a family (``family=None``) every voter is attentive (eta = 1) and the fit is the plain
Bradley-Terry maximum likelihood estimate.

Certified stop, as in the core: the fit is converged only when a bound on the objective still to
gain (nats, whole data set), computed in float64 on the exact marginal log-likelihood, is at most
``gap_tol``: the Newton decrement ``g^T (-H)^-1 g / 2`` over (theta, P_eta's unconstrained
parameters), infinite where ``-H`` is not positive definite. Between EM rounds a
Newton step on the same coordinates (kept only when it raises the objective) finishes what EM's
slow tail would take long to do.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from jaxpref.arena.data import PairStats
from jaxpref.core.families.base import Family, FamilyParams
from jaxpref.core.likelihood import ExpectedCounts, LogLikTable, expected_counts, log_lik_table, marginal_loglik
from jaxpref.io.data import CountStats

__all__ = [
    "ArenaConfig",
    "ArenaState",
    "ArenaFit",
    "win_probability",
    "voter_log_lik",
    "posterior",
    "newton_coordinates",
    "state_from",
    "objective",
    "em_step",
    "run_em",
    "certify",
    "newton_step",
    "init_state",
    "fit_arena",
]

#: Step sizes tried by every safeguarded Newton step (0 keeps the current point).
STEP_SIZES = (1.0, 0.5, 0.25, 0.125, 0.0)


class ArenaConfig(NamedTuple):
    """Static options of an arena fit (hashable: a jit static argument).

    Attributes:
        num_models: K.
        family: P_eta's family (point, two_point or beta), or None for plain Bradley-Terry
            (every voter attentive).
        gap_tol: converged when the certificate is at most this (nats).
        em_steps: EM iterations between two certificate checks.
        max_rounds: cap on the number of checks.
        newton_steps: safeguarded Newton steps of the theta M-step per EM iteration.
    """

    num_models: int
    family: Family | None
    gap_tol: float = 1e-3
    em_steps: int = 20
    max_rounds: int = 200
    newton_steps: int = 3


class ArenaState(NamedTuple):
    """Parameters: ``theta`` ``(num_models,)`` summing to zero, and P_eta on its grid."""

    theta: Float[Array, " num_models"]
    family: FamilyParams


class ArenaFit(NamedTuple):
    """The result of `fit_arena`.

    Attributes:
        state: the final parameters.
        objective: the observed log-likelihood at ``state`` (nats).
        optimality_gap: the certificate at ``state``.
        converged: ``optimality_gap <= gap_tol``.
        num_iter: EM iterations run.
        objective_trace: ``(num_iter,)`` log-likelihood before each EM iteration.
    """

    state: ArenaState
    objective: float
    optimality_gap: float
    converged: bool
    num_iter: int
    objective_trace: np.ndarray


def win_probability(theta: Array, stats: PairStats) -> Array:
    """``(num_entries,)`` sigma(theta_first - theta_second): an attentive vote's chance for ``first``."""
    return jax.nn.sigmoid(theta[stats.first] - theta[stats.second])


def _entry_counts(stats: PairStats) -> CountStats:
    """Each entry as a one-row, one-group `CountStats` (a batch of them, for vmap)."""
    return CountStats(stats.score_first[:, None, None], stats.num_votes[:, None, None],
                      jnp.ones_like(stats.num_votes)[:, None])


def voter_log_lik(theta: Array, family: FamilyParams, stats: PairStats) -> Array:
    """``(num_voters, num_nodes)`` log-likelihood of each voter's votes at each eta node."""
    mu = win_probability(theta, stats)
    per_entry = jax.vmap(log_lik_table, in_axes=(0, None, 0))(_entry_counts(stats), family.eta_grid, mu[:, None])
    return jax.ops.segment_sum(per_entry[:, 0, :], stats.voter, num_segments=stats.multiplicity.shape[0])


def posterior(state: ArenaState, stats: PairStats) -> tuple[Array, Array]:
    """``(per-voter log-likelihood, log posterior over nodes)`` by the core's `marginal_loglik`."""
    table = LogLikTable(voter_log_lik(state.theta, state.family, stats), stats.multiplicity)
    return marginal_loglik(table, state.family.eta_grid, state.family.log_weights, jnp.zeros((1,), table.table.dtype))


def objective(state: ArenaState, stats: PairStats) -> Array:
    """The observed log-likelihood ``sum_j m_j log P(votes_j)`` (nats)."""
    per_voter, _ = posterior(state, stats)
    return jnp.sum(stats.multiplicity * per_voter)


def _pair_matrix(values: Array, stats: PairStats, num_models: int) -> Array:
    """``(K, K)`` sums of an entry quantity over entries of each (first, second) pair."""
    return jnp.zeros((num_models, num_models), values.dtype).at[stats.first, stats.second].add(values)


def _bradley_terry_m_step(theta: Array, wins: Array, num_steps: int) -> Array:
    """Safeguarded Newton steps on ``sum_ab wins_ab log sigma(theta_a - theta_b)``, sum(theta) = 0.

    Args:
        theta: ``(K,)`` start, summing to zero.
        wins: ``(K, K)`` (expected attentive) wins of row over column.
        num_steps: Newton steps.
    """
    num_models = theta.shape[0]
    games = wins + wins.T
    step_sizes = jnp.asarray(STEP_SIZES, theta.dtype)

    def log_lik(value):
        return jnp.sum(wins * jax.nn.log_sigmoid(value[:, None] - value[None, :]))

    def step(value, _):
        prob = jax.nn.sigmoid(value[:, None] - value[None, :])
        gradient = jnp.sum(wins - games * prob, axis=1)
        weight = games * prob * (1.0 - prob)
        laplacian = jnp.diag(jnp.sum(weight, axis=1)) - weight
        # + 1 1^T / K removes the null direction of the anchor; the ridge keeps a model without
        # (attentive) games solvable (its gradient is 0, so it stays where it is).
        system = laplacian + 1.0 / num_models + 1e-10 * (1.0 + jnp.trace(laplacian) / num_models) * jnp.eye(num_models)
        direction = jnp.linalg.solve(system, gradient)
        direction = direction - jnp.mean(direction)
        candidates = value[None, :] + step_sizes[:, None] * direction[None, :]
        values = jax.vmap(log_lik)(candidates)
        return candidates[jnp.argmax(jnp.where(jnp.isfinite(values), values, -jnp.inf))], None

    theta, _ = jax.lax.scan(step, theta, None, length=num_steps)
    return theta


def em_step(state: ArenaState, stats: PairStats, config: ArenaConfig) -> tuple[ArenaState, Array]:
    """One EM iteration; returns the new state and the log-likelihood at the input state."""
    per_voter, log_resp = posterior(state, stats)
    weighted_resp = jnp.exp(log_resp) * stats.multiplicity[:, None]
    mu = win_probability(state.theta, stats)
    per_entry = jax.vmap(expected_counts, in_axes=(0, None, 0, 0))(
        _entry_counts(stats), state.family.eta_grid, mu[:, None], weighted_resp[stats.voter][:, None, :]
    )  # each field (num_entries, num_nodes, 1)
    counts = ExpectedCounts(*(field[:, :, 0].T for field in per_entry))  # (num_nodes, num_entries)
    wins_first = _pair_matrix(jnp.sum(counts.attentive_pref_a, axis=0), stats, config.num_models)
    wins_second = _pair_matrix(jnp.sum(counts.attentive_pref_b, axis=0), stats, config.num_models)
    theta = _bradley_terry_m_step(state.theta, wins_first + wins_second.T, config.newton_steps)
    family = state.family
    if config.family is not None:
        family = config.family.m_step(family, jnp.sum(weighted_resp, axis=0), counts)
    return ArenaState(theta, family), jnp.sum(stats.multiplicity * per_voter)


def run_em(state: ArenaState, stats: PairStats, config: ArenaConfig, num_steps: int) -> tuple[ArenaState, Array]:
    """``num_steps`` EM iterations (a `lax.scan`); returns the state and the ``(num_steps,)`` objective trace."""
    return jax.lax.scan(lambda carry, _: em_step(carry, stats, config), state, None, length=num_steps)


def newton_coordinates(state: ArenaState, config: ArenaConfig) -> Array:
    """The certified coordinates: theta without its last entry (the anchor fixes it), then P_eta's
    unconstrained parameters."""
    parts = [state.theta[:-1]]
    if config.family is not None:
        parts.append(config.family.to_unconstrained(state.family))
    return jnp.concatenate(parts)


def state_from(coordinates: Array, template: ArenaState, config: ArenaConfig) -> ArenaState:
    """Inverse of `newton_coordinates`; P_eta's fixed parts come from ``template``."""
    free = coordinates[: config.num_models - 1]
    theta = jnp.concatenate([free, -jnp.sum(free, keepdims=True)])
    family = template.family
    if config.family is not None:
        family = config.family.from_unconstrained(family, coordinates[config.num_models - 1:])
    return ArenaState(theta, family)


def _newton_system(state: ArenaState, stats: PairStats, config: ArenaConfig) -> tuple[Array, Array, Array]:
    """``(gradient, -Hessian, Newton decrement)`` of the objective in the certified coordinates.

    The decrement ``g^T (-H)^-1 g / 2`` is infinite where ``-H`` is not positive definite (a saddle
    or a valley: no certificate there); a relative ridge of 1e-10 absorbs directions the data leave flat.
    """
    def value(coordinates):
        return objective(state_from(coordinates, state, config), stats)

    coordinates = newton_coordinates(state, config)
    gradient = jax.grad(value)(coordinates)
    curvature = -jax.hessian(value)(coordinates)
    scale = 1.0 + jnp.max(jnp.abs(jnp.diag(curvature)))
    factor = jnp.linalg.cholesky(curvature + 1e-10 * scale * jnp.eye(coordinates.shape[0], dtype=coordinates.dtype))
    whitened = jax.scipy.linalg.solve_triangular(factor, gradient, lower=True)
    decrement = 0.5 * jnp.sum(whitened**2)
    return gradient, curvature, jnp.where(jnp.all(jnp.isfinite(factor)), decrement, jnp.inf)


def certify(state: ArenaState, stats: PairStats, config: ArenaConfig) -> Array:
    """The certificate: a bound (nats, whole data set) on the objective still to gain at ``state``."""
    return _newton_system(state, stats, config)[2]


def newton_step(state: ArenaState, stats: PairStats, config: ArenaConfig) -> tuple[ArenaState, Array]:
    """The certificate at ``state`` and a safeguarded Newton step from it (the best of `STEP_SIZES`).

    Returns:
        ``(new_state, gap)``; ``new_state`` is ``state`` when no step raises the objective.
    """
    gradient, curvature, gap = _newton_system(state, stats, config)
    scale = 1.0 + jnp.max(jnp.abs(jnp.diag(curvature)))
    direction = jnp.linalg.solve(curvature + 1e-8 * scale * jnp.eye(gradient.shape[0], dtype=gradient.dtype), gradient)
    start = newton_coordinates(state, config)
    candidates = [state_from(start + size * direction, state, config) for size in STEP_SIZES]
    values = jnp.stack([objective(candidate, stats) for candidate in candidates])
    best = jnp.argmax(jnp.where(jnp.isfinite(values), values, -jnp.inf))
    new_state = jax.tree.map(lambda *leaves: jnp.stack(leaves)[best], *candidates)
    return new_state, gap


def init_state(config: ArenaConfig, dtype=jnp.float64) -> ArenaState:
    """theta = 0; P_eta at the core's default start, or a point mass at eta = 1 without a family."""
    theta = jnp.zeros((config.num_models,), dtype)
    if config.family is None:
        return ArenaState(theta, FamilyParams(jnp.ones((1,), dtype), jnp.zeros((1,), dtype), jnp.ones((2,), dtype)))
    return ArenaState(theta, config.family.init(None, dtype))


_run_em = jax.jit(run_em, static_argnames=("config", "num_steps"))
_newton_step = jax.jit(newton_step, static_argnames=("config",))
_certify = jax.jit(certify, static_argnames=("config",))
_objective = jax.jit(objective)


def fit_arena(stats: PairStats, config: ArenaConfig, state: ArenaState | None = None) -> ArenaFit:
    """EM rounds of ``config.em_steps`` iterations, each checked by the certificate and followed by
    a safeguarded Newton step, until the certificate is at most ``config.gap_tol``.

    Call inside ``jax.enable_x64(True)`` with float64 statistics (`jaxpref.arena.fit` does): the
    certificate needs float64 to resolve 1e-3 nats on large data.

    Args:
        stats: sparse statistics (`jaxpref.arena.data.pair_stats`), as JAX or NumPy arrays.
        config: static options.
        state: start; default `init_state`.
    """
    stats = PairStats(*(jnp.asarray(field) for field in stats))
    state = init_state(config) if state is None else state
    traces, gap = [], jnp.inf
    for _ in range(config.max_rounds):
        state, trace = _run_em(state, stats, config, config.em_steps)
        traces.append(np.asarray(trace))
        polished, gap = _newton_step(state, stats, config)
        if float(gap) <= config.gap_tol:
            break
        state = polished
    else:
        gap = _certify(state, stats, config)
    gap = float(gap)
    trace = np.concatenate(traces) if traces else np.zeros(0)
    return ArenaFit(state, float(_objective(state, stats)), gap, gap <= config.gap_tol, int(trace.shape[0]), trace)
