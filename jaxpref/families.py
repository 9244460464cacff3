"""P_eta families on one grid engine: point, two_point, beta and npmle.

Every family is a set of nodes ``eta_grid`` with log-weights ``log_weights``:

| family      | nodes                                   | M-step                                  |
|-------------|-----------------------------------------|-----------------------------------------|
| `point`     | one node, estimated                     | node = expected attentive share         |
| `two_point` | {lo, hi}, fixed or estimated            | weights = mean posterior (+ nodes)      |
| `beta`      | G cell midpoints of [0, 1], fixed       | Newton on (alpha, beta), monotone guard |
| `npmle`     | G equispaced nodes on [0, 1], fixed     | weights = mean posterior (Kiefer-Wolfowitz) |

Estimated nodes use the complete-data EM over (node, attentive-or-not): with ``A_g`` expected
attentive labels and ``N_g`` expected labels at node g, the new node is ``A_g / N_g``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from jaxpref.data import DataError
from jaxpref.likelihood import ExpectedCounts, safe_log

__all__ = [
    "FAMILIES",
    "FamilySpec",
    "FamilyParams",
    "make_family",
    "initial_family_params",
    "family_m_step",
    "beta_log_weights",
]

FAMILIES = ("point", "two_point", "beta", "npmle")

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


def beta_grid(num_nodes: int, dtype=jnp.float32) -> Array:
    """Midpoints of G equal cells of [0, 1]: the beta family's quadrature nodes."""
    return (jnp.arange(num_nodes, dtype=dtype) + 0.5) / num_nodes


def beta_log_weights(eta_grid: Float[Array, " num_nodes"], beta_shape: Float[Array, " 2"]) -> Array:
    """Normalised log Beta(alpha, beta) density on the nodes: the discretised P_eta."""
    alpha, beta = beta_shape[0], beta_shape[1]
    log_density = (alpha - 1.0) * jnp.log(eta_grid) + (beta - 1.0) * jnp.log1p(-eta_grid)
    return jax.nn.log_softmax(log_density)


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
    """Generalised M-step for (alpha, beta): Newton in the natural parameters.

    ``Q(alpha, beta) = sum_g R_g log w_g(alpha, beta)`` with ``log w_g = (alpha - 1) s1_g +
    (beta - 1) s2_g - A(alpha, beta)`` and ``s = (log eta, log(1 - eta))``: an exponential
    family, so ``grad Q = sum_g R_g s_g - W E_w[s]`` and ``hess Q = -W Cov_w[s]`` (W = sum R),
    and Q is concave. Each step tries step sizes 1, 1/2, 1/4, 1/8 and 0 and keeps the best,
    so Q never decreases and EM stays monotone.
    """
    lower, upper = BETA_SHAPE_BOUNDS
    sufficient = jnp.stack([jnp.log(grid), jnp.log1p(-grid)], axis=1)  # (num_nodes, 2)
    total = jnp.sum(node_totals)
    observed = node_totals @ sufficient
    step_sizes = jnp.asarray([1.0, 0.5, 0.25, 0.125, 0.0], grid.dtype)

    def objective(s):
        return jnp.sum(node_totals * beta_log_weights(grid, s))

    def newton_step(s, _):
        weights = jnp.exp(beta_log_weights(grid, s))
        mean = weights @ sufficient
        centred = sufficient - mean
        gradient = observed - total * mean
        information = total * (centred.T * weights) @ centred
        information = information + 1e-9 * (1.0 + jnp.trace(information)) * jnp.eye(2, dtype=s.dtype)
        # The 2 x 2 solve in closed form (a LAPACK call costs more to compile than to run).
        (a, b), (_, d) = information
        direction = jnp.stack([d * gradient[0] - b * gradient[1], a * gradient[1] - b * gradient[0]]) / (a * d - b * b)
        candidates = jnp.clip(s[None, :] + step_sizes[:, None] * direction[None, :], lower, upper)
        values = jax.vmap(objective)(candidates)
        values = jnp.where(jnp.isfinite(values), values, -jnp.inf)
        return candidates[jnp.argmax(values)], None

    shape, _ = jax.lax.scan(newton_step, shape, None, length=num_steps)
    return shape


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
