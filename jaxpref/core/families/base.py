"""The family protocol: what the engine asks of a P_eta family, and what all families share.

A family is a frozen dataclass (hashable: the EM configuration is a jit static argument) whose
methods are pure functions of `FamilyParams`. The engine never asks a family its name: EM calls
`Family.init` and `Family.m_step`, SQUAREM the extrapolation coordinates, the Newton polish the
unconstrained coordinates, the standard errors the natural parameters, the outputs `Family.report`
and `Family.table_rows`, the simulator `Family.truth`.

The defaults here are those of a discrete P_eta with free weights on its nodes (two_point and
npmle); a family overrides what differs.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from jaxpref.core.likelihood import ExpectedCounts, safe_log
from jaxpref.errors import DataError

__all__ = [
    "COORDINATE_BOUND",
    "EtaDistribution",
    "Family",
    "FamilyParams",
    "NaturalParameters",
    "logit",
    "natural",
    "random_log_weights",
    "unit_nodes",
]

#: Unconstrained coordinates are kept within +-COORDINATE_BOUND (a logit of 30 is a share of 1e-13).
COORDINATE_BOUND = 30.0


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


class NaturalParameters(NamedTuple):
    """A family's free parameters in their natural coordinates (for standard errors).

    Attributes:
        names: one name per parameter (``weight_hi``, ``alpha``, ``weight[3]``...).
        values: ``(num_free,)`` float64 values.
        lower, upper: ``(num_free,)`` the ends of each parameter's range.
        active: nodes whose weights are parameters (npmle: the nodes in use); empty otherwise.
    """

    names: tuple[str, ...]
    values: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    active: tuple[int, ...] = ()


class EtaDistribution(NamedTuple):
    """A true P_eta to simulate from (static: hashable).

    Attributes:
        family: the name of the family it came from.
        support: nodes of a discrete P_eta; empty for a Beta distribution.
        weights: node probabilities.
        alpha, beta: Beta shapes (used when ``support`` is empty).
    """

    family: str
    support: tuple[float, ...] = ()
    weights: tuple[float, ...] = ()
    alpha: float = 1.0
    beta: float = 1.0


def logit(share: Array) -> Array:
    """log(share / (1 - share)), with the share clipped inside (0, 1) at the dtype's resolution."""
    eps = jnp.finfo(share.dtype).eps
    share = jnp.clip(share, eps * eps, 1.0 - eps)
    return jnp.log(share) - jnp.log1p(-share)


def natural(entries: list[tuple[str, Any, float, float]], active: tuple[int, ...] = ()) -> NaturalParameters:
    names = tuple(name for name, *_ in entries)
    values, lower, upper = (np.asarray([entry[i] for entry in entries], np.float64).reshape(-1) for i in (1, 2, 3))
    return NaturalParameters(names, values, lower, upper, active)


@dataclasses.dataclass(frozen=True)
class Family:
    """The protocol every P_eta family implements (defaults: free weights on fixed nodes).

    Attributes:
        num_nodes: number of grid nodes G.
    """

    num_nodes: int

    #: The family's name (its key in `jaxpref.core.families.REGISTRY`).
    name: ClassVar[str]
    #: True when the weights are free on the simplex and polished by the interior-point method
    #: (`jaxpref.core.polish`) rather than by Newton steps in `to_unconstrained` coordinates.
    simplex_weights: ClassVar[bool] = False
    #: True when the node weights are free parameters (so the Kiefer-Wolfowitz bound applies to them).
    weights_on_nodes: ClassVar[bool] = True

    # -- construction -------------------------------------------------------------------------------

    @classmethod
    def create(cls, num_grid: int = 64, support: tuple[float, float] | None = None) -> Family:
        """Validates the options of `jaxpref.core.families.make_family` for this family."""
        if support is not None:
            raise DataError(f"support={support!r} applies to family='two_point' only, not {cls.name!r}")
        return cls(num_nodes=cls._grid_size(num_grid))

    @classmethod
    def _grid_size(cls, num_grid: int) -> int:
        if not isinstance(num_grid, int) or isinstance(num_grid, bool) or num_grid < 2:
            raise DataError(f"num_grid={num_grid!r} must be an integer >= 2 for family={cls.name!r}")
        return num_grid

    @property
    def num_shape_parameters(self) -> int | None:
        """Free parameters of P_eta (None for a nonparametric family)."""
        return None

    @property
    def moving_nodes(self) -> bool:
        """True when node locations are parameters."""
        return False

    # -- EM -----------------------------------------------------------------------------------------

    def init(self, key: Array | None, dtype=jnp.float32) -> FamilyParams:
        """Starting values; ``key=None`` is the deterministic default start, a key a random start."""
        raise NotImplementedError

    def m_step(
        self, params: FamilyParams, node_totals: Float[Array, " num_nodes"], counts: ExpectedCounts | None
    ) -> FamilyParams:
        """M-step given the posterior mass per node (``node_totals``: sum over users of P(node g |
        data_j)) and, when `moving_nodes`, the expected attentive / total labels per node."""
        log_weights = safe_log(node_totals) - safe_log(jnp.sum(node_totals))
        grid = params.eta_grid
        if self.moving_nodes:
            attentive = jnp.sum(counts.attentive_pref_a + counts.attentive_pref_b, axis=1)
            labels = jnp.sum(counts.labels, axis=1)
            # A node with (almost) no posterior mass keeps its place instead of becoming 0/0.
            grid = jnp.where(labels > 1e-12, jnp.clip(attentive / jnp.maximum(labels, 1e-30), 0.0, 1.0), grid)
        return FamilyParams(grid, log_weights, params.beta_shape)

    def boundary(self, params: FamilyParams) -> FamilyParams:
        """P_eta with (almost) all mass at eta = 0: the start that reaches optima on that boundary.

        Default: all weight on the lowest node."""
        weights = jnp.zeros_like(params.log_weights).at[jnp.argmin(params.eta_grid)].set(1.0)
        return params._replace(log_weights=safe_log(weights))

    def canonical(self, params: FamilyParams) -> FamilyParams:
        """The same P_eta in the family's canonical labelling (EM may swap interchangeable nodes)."""
        return params

    # -- SQUAREM (jaxpref.core.accelerate) ----------------------------------------------------------

    def extrapolation_weights(self, params: FamilyParams) -> Array:
        """The weight part of the coordinates SQUAREM extrapolates in: the node probabilities."""
        return jnp.exp(params.log_weights)

    def from_extrapolation_weights(self, template: FamilyParams, weights: Array, grid: Array) -> FamilyParams:
        """Inverse of `extrapolation_weights`: projected on the simplex (negative parts set to 0).

        ``safe_log`` keeps a node that extrapolation drove to zero weight finite (as the M-step
        does), so a later EM step can still revive it."""
        weights = jnp.maximum(weights, 0.0)
        return FamilyParams(grid, safe_log(weights) - safe_log(jnp.sum(weights)), template.beta_shape)

    def inside_bounds(self, weights: Array) -> Array:
        """False when an extrapolated point left a box that clipping would stall on."""
        return jnp.asarray(True)

    # -- Newton polish (jaxpref.core.polish) --------------------------------------------------------

    def to_unconstrained(self, params: FamilyParams) -> Array:
        """The parameters the Newton polish moves, as one unconstrained vector (empty by default:
        simplex weights are polished by the interior-point method)."""
        return params.log_weights[:0]

    def from_unconstrained(self, template: FamilyParams, coordinates: Array) -> FamilyParams:
        """Inverse of `to_unconstrained`; the parts that are not free come from ``template``."""
        return template

    # -- standard errors (jaxpref.core.uncertainty) -------------------------------------------------

    def natural_parameters(self, params: FamilyParams, edge: float) -> NaturalParameters:
        """The free parameters in natural coordinates. Default: the weights of the nodes in use
        (weight above ``edge``), all but the last (they sum to one)."""
        weights = np.exp(np.asarray(params.log_weights, np.float64))
        active = tuple(int(node) for node in np.flatnonzero(weights > edge))
        return natural([(f"weight[{node}]", weights[node], 0.0, 1.0) for node in active[:-1]], active)

    def from_natural(self, params: FamilyParams, theta: Array, active: tuple[int, ...]) -> FamilyParams:
        """Inverse of `natural_parameters` (differentiable in ``theta``)."""
        nodes = np.asarray(active, np.int32)
        full = jnp.zeros_like(params.log_weights)
        full = full.at[nodes[:-1]].set(theta).at[nodes[-1]].set(1.0 - jnp.sum(theta))
        return params._replace(log_weights=jnp.log(full))

    # -- outputs ------------------------------------------------------------------------------------

    def report(self, grid: np.ndarray, weights: np.ndarray, beta_shape: np.ndarray) -> dict[str, Any]:
        """The family's entries of a fit's ``params`` (``support``, ``weights``, ``alpha``,
        ``beta``); the others are None. Default: the weights."""
        return {"weights": weights.tolist()}

    def table_rows(self, params: dict[str, Any]) -> list[tuple[str, float, str]]:
        """Rows ``(label, estimate, standard-error key)`` of the command line's summary table.
        Default: the nodes with weight above 0.001."""
        return [
            (f"weight at eta={node:.2f}", weight, f"weight[{index}]")
            for index, (node, weight) in enumerate(zip(params["eta_grid"], params["weights"]))
            if weight > 1e-3
        ]

    # -- the Bayesian model (jaxpref.bayes.model) ----------------------------------------------------

    def sample_sites(self, dtype, concentration: float) -> dict[str, Array]:
        """Samples the family's parameters from their prior as NumPyro sites (call inside a model).
        Default: ``weights ~ Dirichlet(concentration)`` on the nodes."""
        import numpyro
        import numpyro.distributions as dist

        return {"weights": numpyro.sample("weights", dist.Dirichlet(jnp.full((self.num_nodes,), concentration, dtype)))}

    def from_sites(self, sites: dict[str, Array], dtype) -> tuple[Array, Array]:
        """``(eta_grid, log_weights)`` of one draw of `sample_sites`."""
        return self.init(None, dtype).eta_grid, safe_log(sites["weights"])

    # -- simulation (jaxpref.simulate) ---------------------------------------------------------------

    @classmethod
    def truth(cls, *, support: tuple[float, ...] = (0.1, 0.9), weights: tuple[float, ...] | None = None,
              **_: Any) -> EtaDistribution:
        """A true P_eta of this family to simulate from. Default: nodes ``support`` with
        probabilities ``weights`` (uniform when None). Options of other families are ignored."""
        nodes = unit_nodes(support)
        probabilities = np.full(len(nodes), 1.0 / len(nodes)) if weights is None else np.asarray(weights, float)
        if probabilities.shape != (len(nodes),) or np.any(probabilities < 0) or not np.isclose(probabilities.sum(), 1.0):
            raise DataError(f"weights={weights!r} must be {len(nodes)} non-negative numbers summing to 1")
        return EtaDistribution(cls.name, nodes, tuple(probabilities.tolist()))


def unit_nodes(support: Any) -> tuple[float, ...]:
    try:
        nodes = tuple(float(value) for value in support)
    except (TypeError, ValueError):
        raise DataError(f"support={support!r} must be numbers in [0, 1]") from None
    if not nodes or any(not 0.0 <= value <= 1.0 for value in nodes):
        raise DataError(f"support={support!r} must be numbers in [0, 1]")
    return nodes


def random_log_weights(key: Array, num_nodes: int, dtype) -> Array:
    """Logistic-normal log-weights for a random start (cheaper to compile than a Dirichlet)."""
    return jax.nn.log_softmax(jax.random.normal(key, (num_nodes,), dtype))
