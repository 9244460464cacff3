"""Accelerated EM: SQUAREM on the EM map, with a monotonicity safeguard.

Plain EM converges linearly, and slowly when the information is split between P_eta and
mu (the paper's Beta(8, 2) prior setting) or spread over many npmle weights: hundreds to
tens of thousands of iterations. SQUAREM (Varadhan & Roland 2008, "Simple and globally
convergent methods for accelerating the convergence of any EM algorithm", scheme S3)
takes two EM steps ``x1 = F(x0)``, ``x2 = F(x1)`` and extrapolates along them,

    r = x1 - x0,  v = x2 - 2 x1 + x0,  alpha = clip(|r| / |v|, 1, step_max)
    x' = x0 + 2 alpha r + alpha^2 v,

then takes one stabilising EM step from ``x'``. alpha = 1 gives back ``x2``.

The extrapolation happens in unconstrained coordinates, so every extrapolated point is a
valid state: node weights are extrapolated as probabilities and projected back on the
simplex (negative parts set to 0, then renormalised; in log space the many vanishing npmle
weights dominate the step length and slow SQUAREM down several-fold), Beta shapes in log
space, moving nodes projected on [0, 1], and mu through ``log((mu - 1/2) / (1 - mu))``.

Safeguard: the objective (log-likelihood plus log-prior of mu) at ``x'`` comes free with
the stabilising step's E-step. The step is accepted only when it is finite and not below
the objective at ``x0``; otherwise the cycle falls back to the plain EM point ``x2``. EM
steps never lower the objective, so the objective at the start of each cycle never
decreases (up to float round-off), exactly as for plain EM. ``step_max`` grows by 4 after an
accepted step that hit it and shrinks by 4 after a rejected one (the SQUAREM package's
defaults).

The EM map is `jaxpref.core.em.step`, dispatched on the statistics (a `jaxpref.core.dense.DenseTable`
takes its fast fixed-table step). The loop that runs the
cycles (and plain EM) is `jaxpref.core.driver.fit`.

Example:
    >>> import jax.numpy as jnp
    >>> from jaxpref.core import em
    >>> from jaxpref.io.data import CountStats
    >>> from jaxpref.core.families import make_family
    >>> stats = CountStats(jnp.array([[9.0], [5.0]]), jnp.array([[10.0], [10.0]]), jnp.array([60.0, 40.0]))
    >>> config = em.EMConfig(family=make_family("beta", 16), mu_mode="prior", mu_prior=(8.0, 2.0))
    >>> start = em.init(config, mu=jnp.array([0.8]))
    >>> state, step_max, info = squarem_cycle(start, jnp.ones(()), stats, config)
    >>> bool(em.objective(state, stats, config)[1] >= info.objective)
    True
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array

from jaxpref.core import em
from jaxpref.core.likelihood import Stats

__all__ = [
    "Coordinates",
    "to_coordinates",
    "from_coordinates",
    "squarem_cycle",
    "EM_STEPS_PER_ITERATION",
]

#: EM-map evaluations per outer iteration of each method (the unit of cost).
EM_STEPS_PER_ITERATION = {"squarem": 3, "em": 1}

#: Growth factor of the largest allowed extrapolation (SQUAREM's ``mstep``).
STEP_GROWTH = 4.0
#: Cap on the extrapolation length; far beyond anything useful, it only keeps numbers finite.
MAX_STEP = 2.0**20


class Coordinates(NamedTuple):
    """Free parameters of an `EMState` in unconstrained coordinates.

    Parts a configuration does not estimate are empty ``(0,)`` arrays, so tree arithmetic
    and norms only see the free parameters.

    Attributes:
        weights: node probabilities (two_point, npmle) or log Beta shapes (beta); empty for point.
        nodes: node locations when they move (point, two_point with free support).
        mu: ``log((mu - 1/2) / (1 - mu))`` per group when mu is estimated.
    """

    weights: Array
    nodes: Array
    mu: Array


def _empty(like: Array) -> Array:
    return jnp.zeros((0,), like.dtype)


def to_coordinates(state: em.EMState, config: em.EMConfig) -> Coordinates:
    """Maps a state to its unconstrained coordinates (see `Coordinates`)."""
    family = state.family
    nodes = family.eta_grid if config.family.moving_nodes else _empty(family.eta_grid)
    mu = jnp.log((state.mu - 0.5) / (1.0 - state.mu)) if config.estimates_mu else _empty(state.mu)
    return Coordinates(config.family.extrapolation_weights(family), nodes, mu)


def from_coordinates(coordinates: Coordinates, template: em.EMState, config: em.EMConfig) -> em.EMState:
    """Maps coordinates back to a valid state; fixed parts come from ``template``."""
    family = template.family
    grid = jnp.clip(coordinates.nodes, 0.0, 1.0) if config.family.moving_nodes else family.eta_grid
    new_family = config.family.from_extrapolation_weights(family, coordinates.weights, grid)
    mu = template.mu
    if config.estimates_mu:
        mu = 0.5 + 0.5 * jax.nn.sigmoid(coordinates.mu)
        mu = jnp.clip(mu, 0.5 + em.MU_MARGIN, 1.0 - em.MU_MARGIN)
    return em.EMState(new_family, mu)


def _squared_norm(tree: Coordinates) -> Array:
    return sum(jnp.sum(jnp.square(leaf)) for leaf in jax.tree.leaves(tree))


class CycleInfo(NamedTuple):
    """What one SQUAREM cycle saw.

    Attributes:
        loglik, objective: at the cycle's starting state.
        step_length: the extrapolation length alpha used.
        accepted: whether the extrapolated point passed the safeguard.
    """

    loglik: Array
    objective: Array
    step_length: Array
    accepted: Array


def squarem_cycle(
    state: em.EMState, step_max: Array, stats: Stats, config: em.EMConfig
) -> tuple[em.EMState, Array, CycleInfo]:
    """One safeguarded SQUAREM cycle (three EM steps).

    Args:
        state: starting state x0.
        step_max: ``()`` largest allowed extrapolation length (>= 1).
        stats: statistics, as for `jaxpref.core.em.step`.
        config: static EM configuration.

    Returns:
        ``(new_state, new_step_max, info)``; the objective at ``new_state`` is at least
        ``info.objective`` up to round-off.
    """
    state1, info0 = em.step(state, stats, config)
    state2, _ = em.step(state1, stats, config)
    x0, x1, x2 = (to_coordinates(s, config) for s in (state, state1, state2))
    r = jax.tree.map(jnp.subtract, x1, x0)
    v = jax.tree.map(lambda a, b, c: c - 2.0 * b + a, x0, x1, x2)
    r_norm2, v_norm2 = _squared_norm(r), _squared_norm(v)
    raw = jnp.sqrt(r_norm2 / jnp.where(v_norm2 > 0, v_norm2, 1.0))
    # v = 0 means the EM map is locally a translation (or has converged): plain EM is as good.
    alpha = jnp.where(v_norm2 > 0, jnp.clip(raw, 1.0, step_max), 1.0)
    extrapolated = jax.tree.map(lambda a, b, c: a + 2.0 * alpha * b + alpha**2 * c, x0, r, v)
    candidate = from_coordinates(extrapolated, state2, config)
    stabilised, info_candidate = em.step(candidate, stats, config)
    accepted = (
        jnp.isfinite(info_candidate.objective)
        & (info_candidate.objective >= info0.objective)
        & config.family.inside_bounds(extrapolated.weights)
    )
    at_cap = alpha >= step_max
    new_step_max = jnp.where(
        accepted,
        jnp.where(at_cap, jnp.minimum(step_max * STEP_GROWTH, MAX_STEP), step_max),
        jnp.where(at_cap, jnp.maximum(1.0, step_max / STEP_GROWTH), step_max),
    )
    new_state = jax.tree.map(lambda good, fallback: jnp.where(accepted, good, fallback), stabilised, state2)
    return new_state, new_step_max, CycleInfo(info0.loglik, info0.objective, alpha, accepted)
