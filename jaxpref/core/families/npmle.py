"""The npmle family: free weights on G equispaced nodes on [0, 1] (Kiefer-Wolfowitz NPMLE).

Its M-step sets each weight to the mean posterior mass of its node; the polish is the
interior-point method of `jaxpref.core.polish`, certified by the Kiefer-Wolfowitz bound. All of
its protocol is the discrete default of `jaxpref.core.families.base.Family`.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array

from jaxpref.core.families.base import Family, FamilyParams, random_log_weights

__all__ = ["NPMLE"]


class NPMLE(Family):
    """Nonparametric P_eta on a fixed grid."""

    name = "npmle"
    simplex_weights = True

    def init(self, key: Array | None, dtype=jnp.float32) -> FamilyParams:
        grid = jnp.linspace(0.0, 1.0, self.num_nodes, dtype=dtype)
        if key is None:
            log_weights = jnp.full((self.num_nodes,), -jnp.log(self.num_nodes), dtype)
        else:
            log_weights = random_log_weights(key, self.num_nodes, dtype)
        return FamilyParams(grid, log_weights, jnp.ones((2,), dtype))
