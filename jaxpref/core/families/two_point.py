"""The two_point family: a share ``weight_hi`` of users at eta_hi, the rest at eta_lo.

The support is fixed (``support=(lo, hi)``) or estimated, by the complete-data EM over (node,
attentive or not): with ``A_g`` expected attentive labels and ``N_g`` expected labels at node g,
the new node is ``A_g / N_g``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from jaxpref.core.families.base import (
    COORDINATE_BOUND,
    EtaDistribution,
    Family,
    FamilyParams,
    NaturalParameters,
    logit,
    natural,
    random_log_weights,
    unit_nodes,
)
from jaxpref.errors import DataError
from jaxpref.checks import check_support
from jaxpref.core.likelihood import safe_log

__all__ = ["TwoPoint"]


@dataclasses.dataclass(frozen=True)
class TwoPoint(Family):
    """Two nodes {lo, hi}.

    Attributes:
        support: the fixed ``(lo, hi)``, or None when the nodes are estimated.
    """

    support: tuple[float, float] | None = None

    name = "two_point"

    @classmethod
    def create(cls, num_grid: int = 64, support: tuple[float, float] | None = None) -> TwoPoint:
        return cls(num_nodes=2, support=None if support is None else check_support(support))

    @property
    def num_shape_parameters(self) -> int:
        return 1 if self.support is not None else 3

    @property
    def moving_nodes(self) -> bool:
        return self.support is None

    def init(self, key: Array | None, dtype=jnp.float32) -> FamilyParams:
        if self.support is not None:
            grid = jnp.asarray(self.support, dtype)
        elif key is None:
            grid = jnp.asarray([0.1, 0.9], dtype)
        else:
            lo, hi = jax.random.uniform(jax.random.fold_in(key, 1), (2,), dtype, 0.0, 1.0)
            grid = jnp.stack([0.5 * lo, 0.5 + 0.5 * hi])
        log_weights = jnp.log(jnp.full((2,), 0.5, dtype)) if key is None else random_log_weights(key, 2, dtype)
        return FamilyParams(grid, log_weights, jnp.ones((2,), dtype))

    def boundary(self, params: FamilyParams) -> FamilyParams:
        """All weight on the lower node; an estimated support starts at {0, 1/2}."""
        if self.moving_nodes:
            params = params._replace(eta_grid=jnp.asarray([0.0, 0.5], params.eta_grid.dtype))
        return super().boundary(params)

    def canonical(self, params: FamilyParams) -> FamilyParams:
        """An estimated support ordered as (lo, hi)."""
        if not self.moving_nodes:
            return params
        order = jnp.argsort(params.eta_grid)
        return FamilyParams(params.eta_grid[order], params.log_weights[order], params.beta_shape)

    def to_unconstrained(self, params: FamilyParams) -> Array:
        """The logit of the weight of the second node, then the logit nodes when they are estimated."""
        weight_logit = (params.log_weights[1] - params.log_weights[0])[None]
        nodes = logit(params.eta_grid) if self.moving_nodes else params.eta_grid[:0]
        return jnp.clip(jnp.concatenate([weight_logit, nodes]), -COORDINATE_BOUND, COORDINATE_BOUND)

    def from_unconstrained(self, template: FamilyParams, coordinates: Array) -> FamilyParams:
        coordinates = jnp.clip(coordinates, -COORDINATE_BOUND, COORDINATE_BOUND)
        log_weights = jnp.stack([jax.nn.log_sigmoid(-coordinates[0]), jax.nn.log_sigmoid(coordinates[0])])
        grid = jax.nn.sigmoid(coordinates[1:3]) if self.moving_nodes else template.eta_grid
        return FamilyParams(grid, log_weights, template.beta_shape)

    def natural_parameters(self, params: FamilyParams, edge: float) -> NaturalParameters:
        grid = np.asarray(params.eta_grid, np.float64)
        entries = [("weight_hi", np.exp(np.asarray(params.log_weights, np.float64))[1], 0.0, 1.0)]
        if self.moving_nodes:
            entries += [("eta_lo", grid[0], 0.0, 1.0), ("eta_hi", grid[1], 0.0, 1.0)]
        return natural(entries)

    def from_natural(self, params: FamilyParams, theta: Array, active: tuple[int, ...]) -> FamilyParams:
        grid = theta[1:3] if self.moving_nodes else params.eta_grid
        return FamilyParams(grid, jnp.log(jnp.stack([1.0 - theta[0], theta[0]])), params.beta_shape)

    def report(self, grid: np.ndarray, weights: np.ndarray, beta_shape: np.ndarray) -> dict[str, Any]:
        return {"support": grid.tolist(), "weights": weights.tolist()}

    def table_rows(self, params: dict[str, Any]) -> list[tuple[str, float, str]]:
        (lo, hi), weights = params["support"], params["weights"]
        return [("eta_lo", lo, "eta_lo"), ("eta_hi", hi, "eta_hi"), ("weight_hi", weights[1], "weight_hi")]

    def sample_sites(self, dtype, concentration: float) -> dict[str, Array]:
        """``weight_hi ~ Uniform(0, 1)``; an estimated support ``eta_lo ~ Uniform(0, 1)`` and
        ``eta_hi = eta_lo + (1 - eta_lo) gap``, ``gap ~ Uniform(0, 1)`` (ordered nodes)."""
        import numpyro
        import numpyro.distributions as dist

        uniform = dist.Uniform(jnp.zeros((), dtype), jnp.ones((), dtype))
        sites = {"weight_hi": numpyro.sample("weight_hi", uniform)}
        if self.moving_nodes:
            sites["eta_lo"] = numpyro.sample("eta_lo", uniform)
            gap = numpyro.sample("eta_gap", uniform)
            sites["eta_hi"] = numpyro.deterministic("eta_hi", sites["eta_lo"] + (1.0 - sites["eta_lo"]) * gap)
        return sites

    def from_sites(self, sites: dict[str, Array], dtype) -> tuple[Array, Array]:
        if self.moving_nodes:
            grid = jnp.stack([sites["eta_lo"], sites["eta_hi"]])
        else:
            grid = jnp.asarray(self.support, dtype)
        weight_hi = sites["weight_hi"]
        return grid, safe_log(jnp.stack([1.0 - weight_hi, weight_hi]))

    @classmethod
    def truth(cls, *, support: tuple[float, ...] = (0.1, 0.9), weight_hi: float = 0.4, **_: Any) -> EtaDistribution:
        """A share ``weight_hi`` of users at ``support[1]``, the rest at ``support[0]``."""
        nodes = unit_nodes(support)
        if len(nodes) != 2 or nodes[0] >= nodes[1]:
            raise DataError(f"support={support!r} must be two values lo < hi for family='two_point'")
        if not 0.0 <= weight_hi <= 1.0:
            raise DataError(f"weight_hi={weight_hi!r} must lie in [0, 1]")
        return EtaDistribution(cls.name, nodes, (1.0 - float(weight_hi), float(weight_hi)))
