"""The beta family: P_eta = Beta(alpha, beta), discretised exactly on G cells.

The nodes are the midpoints of cells with edges ``(1 - cos(pi t)) / 2``, t = 0, 1/G, ..., 1
(finer near 0 and 1, where a Beta density with a shape below 1 is singular), and each node's
weight is the Beta mass of its cell, not the density at the node (which is biased when a shape is
below 1: -11 % in alpha at Beta(0.5, 0.8)). The M-step is Fisher scoring in log shapes.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from jaxpref.core.families.base import EtaDistribution, Family, FamilyParams, NaturalParameters, natural
from jaxpref.checks import check_positive

__all__ = ["BAYES_SHAPE_PRIOR", "BETA_SHAPE_BOUNDS", "Beta", "beta_cell_edges", "beta_grid", "beta_log_weights"]

#: Bounds on Beta shape parameters during estimation; they keep the grid weights finite.
BETA_SHAPE_BOUNDS = (1e-2, 1e3)

#: LogNormal (location, scale) prior of each Beta shape in the Bayesian model: median e = 2.7,
#: 95 % of its mass in (0.14, 51).
BAYES_SHAPE_PRIOR = (1.0, 1.5)

#: Gauss-Legendre nodes and weights on [0, 1] for the integral of the Beta density over one cell.
_CELL_NODES, _CELL_WEIGHTS = (lambda x, w: ((x + 1.0) / 2.0, w / 2.0))(*np.polynomial.legendre.leggauss(8))


def beta_cell_edges(num_nodes: int, dtype=jnp.float32) -> Array:
    """``(num_nodes + 1,)`` edges ``(1 - cos(pi t)) / 2``, t = 0, 1/G, ..., 1, of the cells."""
    t = np.arange(num_nodes + 1) / num_nodes
    return jnp.asarray((1.0 - np.cos(np.pi * t)) / 2.0, dtype)


def beta_grid(num_nodes: int, dtype=jnp.float32) -> Array:
    """``(num_nodes,)`` midpoints of the cells (`beta_cell_edges`): the family's fixed nodes."""
    edges = beta_cell_edges(num_nodes, dtype)
    return (edges[1:] + edges[:-1]) / 2.0


def beta_log_weights(eta_grid: Float[Array, " num_nodes"], beta_shape: Float[Array, " 2"]) -> Array:
    """Log Beta(alpha, beta) probabilities of the cells around the nodes: the discretised P_eta.

    The masses are integrals by 8-point Gauss-Legendre per cell; in the first cell ``x = e_1
    t^(1/alpha)`` (and in the last ``1 - x = h t^(1/beta)``) removes the singularity at the edge,
    so the quadrature is accurate (and differentiable in the shapes, which
    `jax.scipy.special.betainc` is not) for shapes down to 0.01.

    Args:
        eta_grid: ``(num_nodes,)`` the nodes of `beta_grid` (only their number and dtype are used).
        beta_shape: ``(2,)`` (alpha, beta).

    Returns:
        ``(num_nodes,)`` normalised log-probabilities.
    """
    num_nodes, dtype = eta_grid.shape[0], eta_grid.dtype
    alpha, beta = beta_shape[0], beta_shape[1]
    edges = beta_cell_edges(num_nodes, dtype)
    log_quadrature = jnp.log(jnp.asarray(_CELL_WEIGHTS, dtype))
    t = jnp.asarray(_CELL_NODES, dtype)

    lower, upper = edges[1:-2], edges[2:-1]
    x = lower[:, None] + (upper - lower)[:, None] * t[None, :]  # (num_nodes - 2, 8) interior cells
    log_density = (alpha - 1.0) * jnp.log(x) + (beta - 1.0) * jnp.log1p(-x)
    interior = jnp.log(upper - lower) + jax.nn.logsumexp(log_density + log_quadrature, axis=1)

    def edge_cell(width, near_shape, far_shape):
        # integral_0^width x^(near - 1) (1 - x)^(far - 1) dx with x = width t^(1 / near).
        far_part = (far_shape - 1.0) * jnp.log1p(-width * t ** (1.0 / near_shape))
        return near_shape * jnp.log(width) - jnp.log(near_shape) + jax.nn.logsumexp(far_part + log_quadrature)

    first = edge_cell(edges[1], alpha, beta)
    last = edge_cell(1.0 - edges[-2], beta, alpha)
    log_mass = jnp.concatenate([first[None], interior, last[None]])
    return log_mass - jax.nn.logsumexp(log_mass)


def _fisher_scoring(grid: Array, shape: Array, node_totals: Array, num_steps: int = 3) -> Array:
    """Generalised M-step for (alpha, beta): safeguarded Fisher-scoring steps in (log alpha, log beta).

    Maximises ``Q = sum_g R_g log w_g(alpha, beta)`` (R = ``node_totals``, w the exact cell
    probabilities). With ``J = d log w / d(log shapes)`` (``(num_nodes, 2)``, by forward-mode
    autodiff), the gradient is ``J^T R`` and the expected information ``W J^T diag(w) J`` (W =
    sum R): always positive definite, and equal to the Newton step where the weights form an
    exponential family. Each step tries step sizes 1, 1/2, 1/4, 1/8 and 0 and keeps the best, so
    Q never decreases and EM stays monotone.
    """
    lower, upper = (np.log(bound) for bound in BETA_SHAPE_BOUNDS)
    step_sizes = jnp.asarray([1.0, 0.5, 0.25, 0.125, 0.0], grid.dtype)
    total = jnp.sum(node_totals)

    def log_weights(log_shape):
        return beta_log_weights(grid, jnp.exp(log_shape))

    def scoring_step(log_shape, _):
        current, jacobian = log_weights(log_shape), jax.jacfwd(log_weights)(log_shape)
        gradient = node_totals @ jacobian
        information = total * (jacobian.T * jnp.exp(current)) @ jacobian
        information = information + 1e-9 * (1.0 + jnp.trace(information)) * jnp.eye(2, dtype=grid.dtype)
        # The 2 x 2 solve in closed form (a LAPACK call costs more to compile than to run).
        (a, b), (_, d) = information
        direction = jnp.stack([d * gradient[0] - b * gradient[1], a * gradient[1] - b * gradient[0]]) / (a * d - b * b)
        candidates = jnp.clip(log_shape[None, :] + step_sizes[:, None] * direction[None, :], lower, upper)
        values = jax.vmap(log_weights)(candidates) @ node_totals
        values = jnp.where(jnp.isfinite(values), values, -jnp.inf)
        return candidates[jnp.argmax(values)], None

    log_shape, _ = jax.lax.scan(scoring_step, jnp.log(shape), None, length=num_steps)
    return jnp.exp(log_shape)


class Beta(Family):
    """Beta(alpha, beta) on G fixed cells; ``beta_shape`` holds (alpha, beta)."""

    name = "beta"
    weights_on_nodes = False

    @property
    def num_shape_parameters(self) -> int:
        return 2

    def _with_shape(self, params: FamilyParams, shape: Array) -> FamilyParams:
        return FamilyParams(params.eta_grid, beta_log_weights(params.eta_grid, shape), shape)

    def init(self, key: Array | None, dtype=jnp.float32) -> FamilyParams:
        grid = beta_grid(self.num_nodes, dtype)
        shape = jnp.full((2,), 2.0, dtype) if key is None else jax.random.uniform(key, (2,), dtype, 0.5, 8.0)
        return FamilyParams(grid, beta_log_weights(grid, shape), shape)

    def m_step(self, params, node_totals, counts) -> FamilyParams:
        return self._with_shape(params, _fisher_scoring(params.eta_grid, params.beta_shape, node_totals))

    def boundary(self, params: FamilyParams) -> FamilyParams:
        """Beta(0.5, 20): almost all mass near eta = 0."""
        return self._with_shape(params, jnp.asarray([0.5, 20.0], params.log_weights.dtype))

    def extrapolation_weights(self, params: FamilyParams) -> Array:
        """Log shapes."""
        return jnp.log(params.beta_shape)

    def from_extrapolation_weights(self, template: FamilyParams, weights: Array, grid: Array) -> FamilyParams:
        return self._with_shape(template, jnp.clip(jnp.exp(weights), *BETA_SHAPE_BOUNDS))

    def inside_bounds(self, weights: Array) -> Array:
        """False when extrapolation left the box of the shapes. Clipping onto the box would be a
        valid state, but the M-step's scoring steps crawl along a bound, so a clipped point can
        stall EM short of the optimum that plain EM reaches."""
        lower, upper = BETA_SHAPE_BOUNDS
        return jnp.all((weights > jnp.log(lower)) & (weights < jnp.log(upper)))

    def to_unconstrained(self, params: FamilyParams) -> Array:
        """Log shapes."""
        return jnp.log(params.beta_shape)

    def from_unconstrained(self, template: FamilyParams, coordinates: Array) -> FamilyParams:
        lower, upper = (np.log(bound) for bound in BETA_SHAPE_BOUNDS)
        return self._with_shape(template, jnp.exp(jnp.clip(coordinates[:2], lower, upper)))

    def natural_parameters(self, params: FamilyParams, edge: float) -> NaturalParameters:
        alpha, beta = np.asarray(params.beta_shape, np.float64)
        return natural([("alpha", alpha, *BETA_SHAPE_BOUNDS), ("beta", beta, *BETA_SHAPE_BOUNDS)])

    def from_natural(self, params: FamilyParams, theta: Array, active: tuple[int, ...]) -> FamilyParams:
        return self._with_shape(params, theta[:2])

    def report(self, grid: np.ndarray, weights: np.ndarray, beta_shape: np.ndarray) -> dict[str, Any]:
        return {"alpha": float(beta_shape[0]), "beta": float(beta_shape[1])}

    def table_rows(self, params: dict[str, Any]) -> list[tuple[str, float, str]]:
        return [("alpha", params["alpha"], "alpha"), ("beta", params["beta"], "beta")]

    def sample_sites(self, dtype, concentration: float) -> dict[str, Array]:
        """``alpha, beta ~ LogNormal`` (`BAYES_SHAPE_PRIOR`)."""
        import numpyro
        import numpyro.distributions as dist

        prior = dist.LogNormal(jnp.asarray(BAYES_SHAPE_PRIOR[0], dtype), BAYES_SHAPE_PRIOR[1])
        return {"alpha": numpyro.sample("alpha", prior), "beta": numpyro.sample("beta", prior)}

    def from_sites(self, sites: dict[str, Array], dtype) -> tuple[Array, Array]:
        grid = beta_grid(self.num_nodes, dtype)
        return grid, beta_log_weights(grid, jnp.stack([sites["alpha"], sites["beta"]]))

    @classmethod
    def truth(cls, *, alpha: float = 3.0, beta: float = 5.0, **_: Any) -> EtaDistribution:
        """eta ~ Beta(``alpha``, ``beta``)."""
        return EtaDistribution(cls.name, alpha=check_positive(alpha, "alpha"), beta=check_positive(beta, "beta"))
