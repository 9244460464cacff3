"""P_eta families: one module per family, one protocol (`jaxpref.core.families.base.Family`).

Every family is a set of nodes ``eta_grid`` with log-weights ``log_weights`` on which the E-step
works; the family says how those are parameterised, updated and reported:

| family      | module        | nodes                                      | M-step                                      |
|-------------|---------------|--------------------------------------------|---------------------------------------------|
| `point`     | `point`       | one node, estimated                        | node = expected attentive share             |
| `two_point` | `two_point`   | {lo, hi}, fixed or estimated               | weights = mean posterior (+ nodes)          |
| `beta`      | `beta`        | G cell midpoints, fixed; exact cell masses | Fisher scoring on log (alpha, beta)         |
| `npmle`     | `npmle`       | G equispaced nodes on [0, 1], fixed        | weights = mean posterior (Kiefer-Wolfowitz) |

Adding a family is one module with a `Family` subclass and one line in `REGISTRY`. This
package's ``__init__`` imports no JAX, so the command line validates ``--family`` against
`REGISTRY` before JAX loads; `make_family` imports the family's module on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, NamedTuple

from jaxpref.errors import DataError

if TYPE_CHECKING:
    from jaxpref.core.families.base import Family

__all__ = ["REGISTRY", "FamilyEntry", "family_class", "make_family"]


class FamilyEntry(NamedTuple):
    """Where a family lives, and what the options need to know of it before JAX loads.

    Attributes:
        target: ``module:class`` of its `jaxpref.core.families.base.Family` subclass.
        takes_support: whether it accepts a fixed ``support`` option.
    """

    target: str
    takes_support: bool = False


#: Family name -> its `FamilyEntry`.
REGISTRY = {
    "point": FamilyEntry("jaxpref.core.families.point:Point"),
    "two_point": FamilyEntry("jaxpref.core.families.two_point:TwoPoint", takes_support=True),
    "beta": FamilyEntry("jaxpref.core.families.beta:Beta"),
    "npmle": FamilyEntry("jaxpref.core.families.npmle:NPMLE"),
}


def family_class(name: str) -> type[Family]:
    """The `Family` subclass registered as ``name``; `DataError` naming the choices otherwise."""
    if name not in REGISTRY:
        raise DataError(f"family={name!r} is unknown: choose one of {', '.join(REGISTRY)}")
    module, attribute = REGISTRY[name].target.split(":")
    return getattr(importlib.import_module(module), attribute)


def make_family(name: str, num_grid: int = 64, support: tuple[float, float] | None = None) -> Family:
    """Validates family options and returns the static (hashable) `Family`.

    Args:
        name: a key of `REGISTRY`: ``point``, ``two_point``, ``beta`` or ``npmle``.
        num_grid: grid size G for the families on a grid (``beta``, ``npmle``; at least 2).
        support: fixed ``(lo, hi)`` with ``0 <= lo < hi <= 1`` for ``two_point``; None estimates it.
    """
    return family_class(name).create(num_grid=num_grid, support=support)
