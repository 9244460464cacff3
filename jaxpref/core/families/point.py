"""The point family: every user has the same attentiveness eta (one node, estimated)."""

from __future__ import annotations

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
)
from jaxpref.errors import DataError

__all__ = ["Point"]


class Point(Family):
    """P_eta = a point mass at eta; its M-step sets eta to the expected attentive share."""

    name = "point"
    weights_on_nodes = False

    @classmethod
    def create(cls, num_grid: int = 64, support: tuple[float, float] | None = None) -> Point:
        if support is not None:
            raise DataError(f"support={support!r} applies to family='two_point' only, not 'point'")
        return cls(num_nodes=1)

    @property
    def num_shape_parameters(self) -> int:
        return 1

    @property
    def moving_nodes(self) -> bool:
        return True

    def init(self, key: Array | None, dtype=jnp.float32) -> FamilyParams:
        eta = jnp.full((1,), 0.5, dtype) if key is None else jax.random.uniform(key, (1,), dtype, 0.1, 0.9)
        return FamilyParams(eta, jnp.zeros((1,), dtype), jnp.ones((2,), dtype))

    def m_step(self, params, node_totals, counts) -> FamilyParams:
        moved = super().m_step(params, node_totals, counts)
        return moved._replace(log_weights=jnp.zeros_like(moved.log_weights))

    def boundary(self, params: FamilyParams) -> FamilyParams:
        return params._replace(eta_grid=jnp.zeros_like(params.eta_grid))

    def extrapolation_weights(self, params: FamilyParams) -> Array:
        return params.log_weights[:0]

    def from_extrapolation_weights(self, template: FamilyParams, weights: Array, grid: Array) -> FamilyParams:
        return template._replace(eta_grid=grid)

    def to_unconstrained(self, params: FamilyParams) -> Array:
        return jnp.clip(logit(params.eta_grid), -COORDINATE_BOUND, COORDINATE_BOUND)

    def from_unconstrained(self, template: FamilyParams, coordinates: Array) -> FamilyParams:
        coordinates = jnp.clip(coordinates, -COORDINATE_BOUND, COORDINATE_BOUND)
        return template._replace(eta_grid=jax.nn.sigmoid(coordinates[:1]))

    def natural_parameters(self, params: FamilyParams, edge: float) -> NaturalParameters:
        return natural([("eta", np.asarray(params.eta_grid, np.float64)[0], 0.0, 1.0)])

    def from_natural(self, params: FamilyParams, theta: Array, active: tuple[int, ...]) -> FamilyParams:
        return params._replace(eta_grid=theta[:1])

    def report(self, grid: np.ndarray, weights: np.ndarray, beta_shape: np.ndarray) -> dict[str, Any]:
        return {"support": grid.tolist()}

    def table_rows(self, params: dict[str, Any]) -> list[tuple[str, float, str]]:
        return [("eta", params["support"][0], "eta")]

    def sample_sites(self, dtype, concentration: float) -> dict[str, Array]:
        """``eta ~ Uniform(0, 1)``."""
        import numpyro
        import numpyro.distributions as dist

        return {"eta": numpyro.sample("eta", dist.Uniform(jnp.zeros((), dtype), jnp.ones((), dtype)))}

    def from_sites(self, sites: dict[str, Array], dtype) -> tuple[Array, Array]:
        return jnp.reshape(sites["eta"], (1,)), jnp.zeros((1,), dtype)

    @classmethod
    def truth(cls, *, eta: float = 0.5, **_: Any) -> EtaDistribution:
        """Everyone has attentiveness ``eta``."""
        if not 0.0 <= eta <= 1.0:
            raise DataError(f"eta={eta!r} must lie in [0, 1]")
        return EtaDistribution(cls.name, (float(eta),), (1.0,))
