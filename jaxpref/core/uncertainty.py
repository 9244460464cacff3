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
from jaxpref.core.likelihood import Stats
from jaxpref.core.program_cache import cached_jit

__all__ = ["free_parameters", "unpack", "standard_errors"]

#: A parameter closer than this to the edge of its range is treated as on the edge.
EDGE = 1e-5


def free_parameters(state: EMState, config: EMConfig) -> tuple[list[str], np.ndarray, np.ndarray, tuple[int, ...]]:
    """Natural coordinates of the free parameters: the mu per group when estimated, then the
    family's (`jaxpref.core.families.base.Family.natural_parameters`).

    Returns:
        ``(names, values, on_edge, active)``: ``active`` lists the nodes whose weights are
        parameters (npmle: those in use); ``unpack(theta, state, config, active)`` rebuilds an
        `EMState` from a vector ``theta`` of the same length as ``values``.
    """
    num_mu = state.mu.shape[0] if config.estimates_mu else 0
    family = config.family.natural_parameters(state.family, EDGE)
    names = [f"mu[{index}]" for index in range(num_mu)] + list(family.names)
    values = np.concatenate([np.asarray(state.mu, np.float64)[:num_mu], family.values])
    lower = np.concatenate([np.full(num_mu, 0.5 + MU_MARGIN), family.lower])
    upper = np.concatenate([np.full(num_mu, 1.0 - MU_MARGIN), family.upper])
    on_edge = (values <= lower + EDGE) | (values >= upper - EDGE)
    dtype = np.float64 if state.mu.dtype == jnp.float64 else np.float32
    return names, values.astype(dtype), on_edge, family.active


def unpack(theta: jax.Array, state: EMState, config: EMConfig, active: tuple[int, ...]) -> EMState:
    """The `EMState` at natural coordinates ``theta`` (see `free_parameters`); the parameters
    that are not free are taken from ``state``."""
    num_mu = state.mu.shape[0] if config.estimates_mu else 0
    mu = theta[:num_mu] if num_mu else state.mu
    return EMState(config.family.from_natural(state.family, theta[num_mu:], active), mu)


@cached_jit(static_argnames=("config", "active"))
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
