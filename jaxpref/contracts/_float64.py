"""Float64 for the contracts code without flipping JAX's global default.

Gaps to the first best fall to 1e-6 and below, and binomial tails to 1e-12: float32 cannot
resolve them. Every public entry point of `jaxpref.contracts` runs inside
``jax.enable_x64(True)`` and returns NumPy arrays, so float64 never leaks into the rest of
jaxpref, which keeps whatever precision the user chose.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["float64", "as_float64"]

F = TypeVar("F", bound=Callable[..., Any])


def float64(fn: F) -> F:
    """Runs ``fn`` (and traces anything it jits) with 64-bit floats; JAX arrays come back as NumPy."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with jax.enable_x64(True):
            result = fn(*args, **kwargs)
            return jax.tree_util.tree_map(
                lambda leaf: np.asarray(leaf) if isinstance(leaf, jax.Array) else leaf, result
            )

    return wrapper  # type: ignore[return-value]


def as_float64(tree: Any) -> Any:
    """Casts every leaf of a pytree (lists count as leaves) to a float64 array (inside `float64`)."""
    return jax.tree_util.tree_map(
        lambda leaf: jnp.asarray(leaf, dtype=jnp.float64), tree, is_leaf=lambda node: isinstance(node, list)
    )
