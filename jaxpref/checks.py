"""Argument checks shared by every layer, and the choices of the simple options.

The bottom of the package: it imports only NumPy and `jaxpref.errors`, so the engine
(`jaxpref.core`), the options object (`jaxpref.options`) and the command line all use it, the last
before JAX loads. Each check raises a `DataError` naming the argument and the fix.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from jaxpref.errors import DataError

__all__ = ["METHODS", "DTYPES", "check_positive", "check_support", "float_dtype", "validate_mu"]

#: EM methods (`jaxpref.core.driver.fit`): SQUAREM-accelerated or plain EM.
METHODS = ("squarem", "em")
#: Float precisions a fit can run in.
DTYPES = ("float32", "float64")


def float_dtype(dtype: str) -> np.dtype:
    """The NumPy dtype of a ``dtype`` option; `DataError` unless it is one of `DTYPES`."""
    if dtype not in DTYPES:
        raise DataError(f"dtype={dtype!r} must be 'float32' or 'float64'")
    return np.dtype(dtype)


def validate_mu(mu: Any, argument: str = "mu") -> np.ndarray:
    """Checks a gap (scalar or one per group) lies in the open interval (1/2, 1)."""
    try:
        values = np.atleast_1d(np.asarray(mu, dtype=np.float64))
    except (TypeError, ValueError):
        raise DataError(f"{argument}={mu!r} must be a number in (0.5, 1), or one per group") from None
    if values.size == 0 or not np.all(np.isfinite(values)):
        raise DataError(f"{argument}={mu!r} must be a finite number in (0.5, 1)")
    if np.any(values <= 0.5) or np.any(values >= 1.0):
        raise DataError(
            f"{argument}={mu!r} is outside (0.5, 1): mu is the probability that an attentive user "
            "prefers the stronger model A, so it must exceed 1/2 (swap A and B if it does not) "
            "and be below 1"
        )
    return values


def check_positive(value: Any, argument: str) -> float:
    """A finite, strictly positive float, or a `DataError` naming the argument."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{argument}={value!r} must be a positive number") from None
    if not math.isfinite(number) or number <= 0:
        raise DataError(f"{argument}={value!r} must be a finite number > 0")
    return number


def check_support(support: Any) -> tuple[float, float]:
    """A fixed two_point support ``(lo, hi)`` with ``0 <= lo < hi <= 1``, as floats."""
    try:
        lo, hi = (float(value) for value in support)
    except (TypeError, ValueError):
        raise DataError(f"support={support!r} must be two numbers lo,hi") from None
    if not 0.0 <= lo < hi <= 1.0:
        raise DataError(f"support={support!r} must satisfy 0 <= lo < hi <= 1")
    return lo, hi
