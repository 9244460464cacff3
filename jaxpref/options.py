"""Options shared by every fitting entry point, validated in one place.

It imports only NumPy and `jaxpref.errors`, so the command line can check options against it
before JAX loads.
"""

import numpy as np

from jaxpref.errors import DataError

__all__ = ["FAMILIES", "METHODS", "DTYPES", "PAPER_MU_PRIOR", "float_dtype"]

#: The P_eta families (`jaxpref.core.families`).
FAMILIES = ("point", "two_point", "beta", "npmle")
#: EM methods (`jaxpref.core.driver.fit`): SQUAREM-accelerated or plain EM.
METHODS = ("squarem", "em")
#: Float precisions a fit can run in.
DTYPES = ("float32", "float64")
#: The paper's "Prior" setting for mu: Beta(8, 2).
PAPER_MU_PRIOR = (8.0, 2.0)


def float_dtype(dtype: str) -> np.dtype:
    """The NumPy dtype of a ``dtype`` option; `DataError` unless it is one of `DTYPES`."""
    if dtype not in DTYPES:
        raise DataError(f"dtype={dtype!r} must be 'float32' or 'float64'")
    return np.dtype(dtype)
