"""Standard errors from the observed information (JAX autodiff of the marginal objective).

The free parameters are written in their natural coordinates (mu, eta, the weight pi of
eta_hi, the support, alpha and beta, the npmle weights of nodes in use), the objective
(log-likelihood plus log-prior of mu, if any) is differentiated twice with `jax.hessian`,
and ``se = sqrt(diag((-H)^-1))``. A parameter on the edge of its range (a weight of 0 or 1,
a node at 0 or 1, mu at its bound, a Beta shape at its bound) has no regular standard error
and gets NaN.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxpref.core.em import MU_MARGIN, EMConfig, EMState, objective
from jaxpref.core.families import BETA_SHAPE_BOUNDS, FamilyParams, beta_log_weights
from jaxpref.core.likelihood import Stats

__all__ = ["free_parameters", "unpack", "standard_errors"]

#: A parameter closer than this to the edge of its range is treated as on the edge.
EDGE = 1e-5


def free_parameters(state: EMState, config: EMConfig) -> tuple[list[str], np.ndarray, np.ndarray, tuple[int, ...]]:
    """Natural coordinates of the free parameters.

    Returns:
        ``(names, values, on_edge, active)``: ``active`` lists the npmle nodes in use (empty
        for the other families); ``unpack(theta, state, config, active)`` rebuilds an
        `EMState` from a vector ``theta`` of the same length as ``values``.
    """
    family = state.family
    spec = config.family
    grid = np.asarray(family.eta_grid, np.float64)
    weights = np.exp(np.asarray(family.log_weights, np.float64))
    names: list[str] = []
    values: list[float] = []
    on_edge: list[bool] = []

    def add(name, value, low, high):
        names.append(name)
        values.append(float(value))
        on_edge.append(bool(value <= low + EDGE or value >= high - EDGE))

    num_mu = state.mu.shape[0] if config.estimates_mu else 0
    for index in range(num_mu):
        add(f"mu[{index}]", state.mu[index], 0.5 + MU_MARGIN, 1.0 - MU_MARGIN)
    if spec.name == "point":
        add("eta", grid[0], 0.0, 1.0)
    elif spec.name == "two_point":
        add("weight_hi", weights[1], 0.0, 1.0)
        if spec.support is None:
            add("eta_lo", grid[0], 0.0, 1.0)
            add("eta_hi", grid[1], 0.0, 1.0)
    elif spec.name == "beta":
        add("alpha", family.beta_shape[0], *BETA_SHAPE_BOUNDS)
        add("beta", family.beta_shape[1], *BETA_SHAPE_BOUNDS)
    active: tuple[int, ...] = ()
    if spec.name == "npmle":
        active = tuple(int(node) for node in np.flatnonzero(weights > EDGE))
        for node in active[:-1]:
            add(f"weight[{node}]", weights[node], 0.0, 1.0)

    dtype = np.float64 if state.mu.dtype == jnp.float64 else np.float32
    return names, np.asarray(values, dtype), np.asarray(on_edge), active


def unpack(theta: jax.Array, state: EMState, config: EMConfig, active: tuple[int, ...]) -> EMState:
    """The `EMState` at natural coordinates ``theta`` (see `free_parameters`); the parameters
    that are not free are taken from ``state``."""
    family, spec = state.family, config.family
    num_mu = state.mu.shape[0] if config.estimates_mu else 0
    mu = theta[:num_mu] if num_mu else state.mu
    rest = theta[num_mu:]
    grid_j, log_weights, shape = family.eta_grid, family.log_weights, family.beta_shape
    if spec.name == "point":
        grid_j = rest[:1]
    elif spec.name == "two_point":
        log_weights = jnp.log(jnp.stack([1.0 - rest[0], rest[0]]))
        if spec.support is None:
            grid_j = rest[1:3]
    elif spec.name == "beta":
        shape = rest[:2]
        log_weights = beta_log_weights(grid_j, shape)
    elif spec.name == "npmle":
        nodes = np.asarray(active, np.int32)
        full = jnp.zeros_like(family.log_weights)
        full = full.at[nodes[:-1]].set(rest).at[nodes[-1]].set(1.0 - jnp.sum(rest))
        log_weights = jnp.log(full)
    return EMState(FamilyParams(grid_j, log_weights, shape), mu)


@functools.partial(jax.jit, static_argnames=("config", "active"))
@functools.partial(jax.hessian, argnums=0)
def _hessian(theta, state: EMState, stats: Stats, config: EMConfig, active: tuple[int, ...]) -> jax.Array:
    """Hessian of the negative objective in natural coordinates (compiled once per model and shape)."""
    return -objective(unpack(theta, state, config, active), stats, config)[1]


def standard_errors(state: EMState, stats: Stats, config: EMConfig) -> dict[str, float]:
    """Observed-information standard errors of the free parameters.

    Returns:
        ``{name: se}``; NaN for parameters on the edge of their range, and for all of them
        when the model is not identified (mu free with moving nodes: point, or two_point
        with an estimated support) or the information matrix is numerically singular.
    """
    names, values, on_edge, active = free_parameters(state, config)
    if not names:
        return {}
    if config.mu_mode == "free" and config.family.moving_nodes:
        # Not identified (docs/identifiability.md): the likelihood depends on eta * (mu - 1/2) only, so the
        # information is singular in theory; numerically it is merely ill-conditioned.
        return dict.fromkeys(names, float("nan"))

    interior = ~on_edge
    errors = np.full(len(names), np.nan)
    if interior.any():
        hessian = np.asarray(_hessian(jnp.asarray(values), state, stats, config, active), np.float64)
        information = hessian[np.ix_(interior, interior)]
        eigenvalues = np.linalg.eigvalsh(information) if np.all(np.isfinite(information)) else [-1.0]
        # A relative cut-off: a near-singular information matrix means a flat direction.
        if np.min(eigenvalues) > 1e-8 * max(np.max(np.abs(eigenvalues)), 1e-300):
            errors[interior] = np.sqrt(np.diag(np.linalg.inv(information)))
    return dict(zip(names, errors.tolist()))
