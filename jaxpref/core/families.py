"""P_eta families on one grid engine: point, two_point, beta and npmle.

Every family is a set of nodes ``eta_grid`` with log-weights ``log_weights``:

| family      | nodes                                   | M-step                                  |
|-------------|-----------------------------------------|-----------------------------------------|
| `point`     | one node, estimated                     | node = expected attentive share         |
| `two_point` | {lo, hi}, fixed or estimated            | weights = mean posterior (+ nodes)      |
| `beta`      | G cell midpoints, fixed; exact cell masses | Newton on log (alpha, beta), monotone guard |
| `npmle`     | G equispaced nodes on [0, 1], fixed     | weights = mean posterior (Kiefer-Wolfowitz) |

Estimated nodes use the complete-data EM over (node, attentive-or-not): with ``A_g`` expected
attentive labels and ``N_g`` expected labels at node g, the new node is ``A_g / N_g``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from jaxpref.errors import DataError
from jaxpref.options import FAMILIES
from jaxpref.core.likelihood import ExpectedCounts, safe_log

__all__ = [
    "FAMILIES",
    "FamilySpec",
    "FamilyParams",
    "make_family",
    "initial_family_params",
    "family_m_step",
    "beta_log_weights",
    "beta_grid",
    "to_unconstrained",
    "from_unconstrained",
    "boundary_params",
]


#: Bounds on Beta shape parameters during estimation; they keep the grid weights finite.
BETA_SHAPE_BOUNDS = (1e-2, 1e3)


class FamilySpec(NamedTuple):
    """Static description of a P_eta family (hashable: used as a jit static argument).

    Attributes:
        name: one of `FAMILIES`.
        num_nodes: number of grid nodes G (1 for point, 2 for two_point).
        support: fixed ``(lo, hi)`` for two_point, or None when estimated.
    """

    name: str
    num_nodes: int
    support: tuple[float, float] | None = None

    @property
    def num_shape_parameters(self) -> int | None:
        """Free parameters of P_eta (None for npmle, which is nonparametric)."""
        if self.name == "npmle":
            return None
        return {"point": 1, "beta": 2}.get(self.name, 1 if self.support is not None else 3)

    @property
    def moving_nodes(self) -> bool:
        """True when node locations are parameters (point, two_point with free support)."""
        return self.name == "point" or (self.name == "two_point" and self.support is None)


class FamilyParams(NamedTuple):
    """P_eta on the grid.

    Attributes:
        eta_grid: ``(num_nodes,)`` nodes in [0, 1].
        log_weights: ``(num_nodes,)`` log-probabilities of the nodes.
        beta_shape: ``(2,)`` (alpha, beta) for the beta family; ones otherwise.
    """

    eta_grid: Float[Array, " num_nodes"]
    log_weights: Float[Array, " num_nodes"]
    beta_shape: Float[Array, " 2"]


def make_family(name: str, num_grid: int = 64, support: tuple[float, float] | None = None) -> FamilySpec:
    """Validates family options and returns the static `FamilySpec`.

    Args:
        name: ``point``, ``two_point``, ``beta`` or ``npmle``.
        num_grid: grid size G for ``beta`` and ``npmle`` (at least 2).
        support: fixed ``(lo, hi)`` with ``0 <= lo < hi <= 1`` for ``two_point``; None estimates it.
    """
    if name not in FAMILIES:
        raise DataError(f"family={name!r} is unknown: choose one of {', '.join(FAMILIES)}")
    if support is not None:
        if name != "two_point":
            raise DataError(f"support={support!r} applies to family='two_point' only, not {name!r}")
        try:
            lo, hi = (float(v) for v in support)
        except (TypeError, ValueError):
            raise DataError(f"support={support!r} must be two numbers lo,hi") from None
        if not (0.0 <= lo < hi <= 1.0):
            raise DataError(f"support={support!r} must satisfy 0 <= lo < hi <= 1")
        support = (lo, hi)
    if name in ("beta", "npmle") and (not isinstance(num_grid, int) or num_grid < 2):
        raise DataError(f"num_grid={num_grid!r} must be an integer >= 2 for family={name!r}")
    num_nodes = {"point": 1, "two_point": 2}.get(name, num_grid)
    return FamilySpec(name=name, num_nodes=num_nodes, support=support)


#: Gauss-Legendre nodes and weights on [0, 1] for the integral of the Beta density over one cell.
_CELL_NODES, _CELL_WEIGHTS = (lambda x, w: ((x + 1.0) / 2.0, w / 2.0))(*np.polynomial.legendre.leggauss(8))


def beta_cell_edges(num_nodes: int, dtype=jnp.float32) -> Array:
    """``(num_nodes + 1,)`` edges ``(1 - cos(pi t)) / 2``, t = 0, 1/G, ..., 1, of the beta family's cells.

    The cells are finer near 0 and 1, where a Beta density with a shape below 1 is singular and
    most of its mass sits in the first or last cell.
    """
    t = np.arange(num_nodes + 1) / num_nodes
    return jnp.asarray((1.0 - np.cos(np.pi * t)) / 2.0, dtype)


def beta_grid(num_nodes: int, dtype=jnp.float32) -> Array:
    """``(num_nodes,)`` midpoints of the beta family's cells (`beta_cell_edges`): its fixed nodes."""
    edges = beta_cell_edges(num_nodes, dtype)
    return (edges[1:] + edges[:-1]) / 2.0


def beta_log_weights(eta_grid: Float[Array, " num_nodes"], beta_shape: Float[Array, " 2"]) -> Array:
    """Log Beta(alpha, beta) probabilities of the cells around the nodes: the discretised P_eta.

    Each weight is the Beta mass of its cell (not the density at the node, which is biased when a
    shape is below 1: -11 % in alpha at Beta(0.5, 0.8)). The masses are integrals by 8-point
    Gauss-Legendre per cell; in the first cell ``x = e_1 t^(1/alpha)`` (and in the last ``1 - x =
    h t^(1/beta)``) removes the singularity at the edge, so the quadrature is accurate (and
    differentiable in the shapes, which `jax.scipy.special.betainc` is not) for shapes down to 0.01.

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


def initial_family_params(
    key: Array | None, spec: FamilySpec, dtype=jnp.float32
) -> FamilyParams:
    """Starting values; ``key=None`` gives the deterministic default start.

    Random starts (for restarts) draw logistic-normal weights (softmax of standard normals;
    cheaper to compile than a Dirichlet's gamma sampler), supports and Beta shapes from wide
    uniforms.
    """
    ones = jnp.ones((2,), dtype)
    if spec.name == "point":
        eta = jnp.full((1,), 0.5, dtype) if key is None else jax.random.uniform(key, (1,), dtype, 0.1, 0.9)
        return FamilyParams(eta, jnp.zeros((1,), dtype), ones)
    if spec.name == "two_point":
        if spec.support is not None:
            grid = jnp.asarray(spec.support, dtype)
        elif key is None:
            grid = jnp.asarray([0.1, 0.9], dtype)
        else:
            lo, hi = jax.random.uniform(jax.random.fold_in(key, 1), (2,), dtype, 0.0, 1.0)
            grid = jnp.stack([0.5 * lo, 0.5 + 0.5 * hi])
        if key is None:
            log_weights = jnp.log(jnp.full((2,), 0.5, dtype))
        else:
            log_weights = jax.nn.log_softmax(jax.random.normal(key, (2,), dtype))
        return FamilyParams(grid, log_weights, ones)
    if spec.name == "beta":
        grid = beta_grid(spec.num_nodes, dtype)
        shape = ones * 2.0 if key is None else jax.random.uniform(key, (2,), dtype, 0.5, 8.0)
        return FamilyParams(grid, beta_log_weights(grid, shape), shape)
    grid = jnp.linspace(0.0, 1.0, spec.num_nodes, dtype=dtype)
    if key is None:
        log_weights = jnp.full((spec.num_nodes,), -jnp.log(spec.num_nodes), dtype)
    else:
        log_weights = jax.nn.log_softmax(jax.random.normal(key, (spec.num_nodes,), dtype))
    return FamilyParams(grid, log_weights, ones)


def _beta_newton(grid: Array, shape: Array, node_totals: Array, num_steps: int = 3) -> Array:
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


def family_m_step(
    spec: FamilySpec,
    params: FamilyParams,
    node_totals: Float[Array, " num_nodes"],
    counts: ExpectedCounts,
) -> FamilyParams:
    """M-step for P_eta given the posterior mass per node and the expected counts.

    Args:
        spec: the family.
        params: current parameters.
        node_totals: ``(num_nodes,)`` sum over users of P(node g | data_j).
        counts: expected attentive/total labels per node (for moving nodes).
    """
    total = jnp.sum(node_totals)
    if spec.name == "beta":
        shape = _beta_newton(params.eta_grid, params.beta_shape, node_totals)
        return FamilyParams(params.eta_grid, beta_log_weights(params.eta_grid, shape), shape)
    log_weights = safe_log(node_totals) - safe_log(total)
    grid = params.eta_grid
    if spec.moving_nodes:
        attentive = jnp.sum(counts.attentive_pref_a + counts.attentive_pref_b, axis=1)
        labels = jnp.sum(counts.labels, axis=1)
        # A node with (almost) no posterior mass keeps its place instead of becoming 0/0.
        grid = jnp.where(labels > 1e-12, jnp.clip(attentive / jnp.maximum(labels, 1e-30), 0.0, 1.0), grid)
    if spec.name == "point":
        log_weights = jnp.zeros_like(log_weights)
    return FamilyParams(grid, log_weights, params.beta_shape)


#: Unconstrained coordinates are kept within +-COORDINATE_BOUND (a logit of 30 is a share of 1e-13).
COORDINATE_BOUND = 30.0


def _logit(share: Array) -> Array:
    eps = jnp.finfo(share.dtype).eps
    share = jnp.clip(share, eps * eps, 1.0 - eps)
    return jnp.log(share) - jnp.log1p(-share)


def to_unconstrained(spec: FamilySpec, params: FamilyParams) -> Array:
    """The family's free parameters as one unconstrained vector (for Newton steps).

    point: logit eta; two_point: logit of the weight of the second node, and logit nodes when
    the support is estimated; beta: log shapes; npmle: empty (its weights are constrained to
    the simplex and polished by an interior-point method instead).
    """
    if spec.name == "point":
        return _logit(params.eta_grid)
    if spec.name == "two_point":
        weight_logit = (params.log_weights[1] - params.log_weights[0])[None]
        nodes = _logit(params.eta_grid) if spec.moving_nodes else params.eta_grid[:0]
        return jnp.clip(jnp.concatenate([weight_logit, nodes]), -COORDINATE_BOUND, COORDINATE_BOUND)
    if spec.name == "beta":
        return jnp.log(params.beta_shape)
    return params.log_weights[:0]


def from_unconstrained(spec: FamilySpec, template: FamilyParams, coordinates: Array) -> FamilyParams:
    """Inverse of `to_unconstrained`; parts that are not free come from ``template``."""
    coordinates = jnp.clip(coordinates, -COORDINATE_BOUND, COORDINATE_BOUND)
    if spec.name == "point":
        return template._replace(eta_grid=jax.nn.sigmoid(coordinates[:1]))
    if spec.name == "two_point":
        log_weights = jnp.stack([jax.nn.log_sigmoid(-coordinates[0]), jax.nn.log_sigmoid(coordinates[0])])
        grid = jax.nn.sigmoid(coordinates[1:3]) if spec.moving_nodes else template.eta_grid
        return FamilyParams(grid, log_weights, template.beta_shape)
    if spec.name == "beta":
        lower, upper = (np.log(bound) for bound in BETA_SHAPE_BOUNDS)
        shape = jnp.exp(jnp.clip(coordinates[:2], lower, upper))
        return FamilyParams(template.eta_grid, beta_log_weights(template.eta_grid, shape), shape)
    return template


def boundary_params(spec: FamilySpec, params: FamilyParams) -> FamilyParams:
    """P_eta with (almost) all mass at eta = 0, the start that reaches optima on that boundary.

    point: eta = 0; beta: Beta(0.5, 20); two_point and npmle: all weight on the lowest node
    (an estimated support starts at {0, 1/2}).
    """
    dtype = params.log_weights.dtype
    if spec.name == "point":
        return params._replace(eta_grid=jnp.zeros((1,), dtype))
    if spec.name == "beta":
        shape = jnp.asarray([0.5, 20.0], dtype)
        return params._replace(log_weights=beta_log_weights(params.eta_grid, shape), beta_shape=shape)
    grid = jnp.asarray([0.0, 0.5], dtype) if spec.moving_nodes else params.eta_grid
    weights = jnp.zeros_like(params.log_weights).at[jnp.argmin(grid)].set(1.0)
    return FamilyParams(grid, safe_log(weights), params.beta_shape)
