"""The options of a fit, validated once: `FitOptions`, taken by every fitting entry point.

`jaxpref.estimator.fit_attentiveness`, `jaxpref.estimator.AttentivenessEM`,
`jaxpref.identifiability.profile_loglik_mu` and the command line build one `FitOptions`; its
constructor checks every option (naming the argument and the fix), and `FitOptions.resolve_mu`
turns the mu options into the EM's mu mode once the data (groups, per-label p) are known.

It imports only NumPy, `jaxpref.checks` and the family registry (no JAX), so the command line
checks options against it before JAX loads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Protocol

import numpy as np

from jaxpref.checks import METHODS, check_positive, check_support, float_dtype, validate_mu
from jaxpref.core.families import REGISTRY
from jaxpref.errors import DataError

__all__ = ["FAMILIES", "PAPER_MU_PRIOR", "FitOptions", "MuSetting", "json_key"]

#: The P_eta families, in the order of `jaxpref.core.families.REGISTRY`.
FAMILIES = tuple(REGISTRY)
#: The paper's "Prior" setting for mu: Beta(8, 2).
PAPER_MU_PRIOR = (8.0, 2.0)


def _check_prior(mu_prior: Any) -> tuple[float, float]:
    try:
        a, b = (float(value) for value in mu_prior)
    except (TypeError, ValueError):
        raise DataError(f"mu_prior={mu_prior!r} must be two numbers a,b (e.g. 8,2)") from None
    return check_positive(a, "mu_prior a"), check_positive(b, "mu_prior b")


def _check_integer(value: Any, argument: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise DataError(f"{argument}={value!r} must be an integer >= {low}")
    return int(value)


class GroupedData(Protocol):
    """What `FitOptions.resolve_mu` reads of the data (`jaxpref.io.data.PreferenceData` / `UserCounts`)."""

    p: Any
    group_ids: Any
    num_groups: int


class MuSetting(NamedTuple):
    """The mu options resolved against the data.

    Attributes:
        mode: ``known``, ``prior``, ``free`` or ``per_label`` (`jaxpref.core.em.MU_MODES`).
        start: ``(num_groups,)`` the known gaps, or the starting values when estimated.
        prior: Beta(a, b) prior of mu (``(1, 1)`` unless ``mode == "prior"``).
    """

    mode: str
    start: np.ndarray
    prior: tuple[float, float]


def json_key(value: Any) -> Any:
    """A NumPy scalar as the Python value JSON writes (group ids as keys)."""
    return value.item() if isinstance(value, np.generic) else value


@dataclasses.dataclass(frozen=True)
class FitOptions:
    """Every option of a fit, checked on construction (`DataError` naming the argument and the fix).

    Attributes:
        family: P_eta family (a key of `jaxpref.core.families.REGISTRY`).
        mu: the gap. A number in (0.5, 1) (known; one per group as a list in sorted group
            order or a ``{group: mu}`` dict), ``"free"`` for the MLE, or None for the MAP
            under ``mu_prior``.
        mu_prior: Beta(a, b) prior on mu; with ``mu=None`` the default is the paper's (8, 2).
            Giving it with a numeric ``mu`` or ``mu="free"`` is an error (conflicting options).
        support: fixed ``(lo, hi)`` for ``two_point``; None estimates it.
        num_grid: grid size G for ``beta`` and ``npmle``.
        threshold: tau in ``prob_attentive = P(eta >= tau | data)``.
        num_restarts: EM starts run together with `jax.vmap`; the best objective is kept. A
            concave fit (fixed nodes, mu known or per-label p, free weights) runs one start.
        seed: seed of the random starts.
        tol: EM hands over to the Newton polish when the objective changes by less than
            ``tol`` per user over one iteration.
        max_iter: EM iteration cap.
        gap_tol: a fit is ``converged`` when its certificate (a bound on the objective still
            to gain, nats for the whole data set) is at most ``gap_tol``.
        dtype: ``"float32"`` or ``"float64"`` for EM and the outputs (the polish and its
            certificate always run in float64).
        method: ``"squarem"`` (accelerated EM) or ``"em"`` (plain EM).
        user_column, label_column, p_column, group_column: column names of label rows.
    """

    family: str = "two_point"
    mu: float | Sequence[float] | Mapping[Any, float] | str | None = None
    mu_prior: tuple[float, float] | None = None
    support: tuple[float, float] | None = None
    num_grid: int = 64
    threshold: float = 0.5
    num_restarts: int = 4
    seed: int = 0
    tol: float = 1e-7
    max_iter: int = 2000
    gap_tol: float = 1e-3
    dtype: str = "float32"
    method: str = "squarem"
    user_column: str = "user"
    label_column: str = "label"
    p_column: str | None = None
    group_column: str | None = None

    def __post_init__(self) -> None:
        def normalise(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        if self.family not in REGISTRY:
            raise DataError(f"family={self.family!r} is unknown: choose one of {', '.join(REGISTRY)}")
        if self.support is not None:
            if not REGISTRY[self.family].takes_support:
                takers = [name for name, entry in REGISTRY.items() if entry.takes_support]
                raise DataError(f"support={self.support!r} applies to family={' or '.join(map(repr, takers))} only, "
                                f"not {self.family!r}")
            normalise("support", check_support(self.support))
        normalise("num_grid", _check_integer(self.num_grid, "num_grid", 2))
        if self.method not in METHODS:
            raise DataError(f"method={self.method!r} must be one of {', '.join(METHODS)}")
        float_dtype(self.dtype)
        normalise("num_restarts", _check_integer(self.num_restarts, "num_restarts", 1))
        normalise("max_iter", _check_integer(self.max_iter, "max_iter", 1))
        normalise("tol", check_positive(self.tol, "tol"))
        normalise("gap_tol", check_positive(self.gap_tol, "gap_tol"))
        threshold = self.threshold
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.number)) or not 0 <= threshold <= 1:
            raise DataError(f"threshold={threshold!r} must be a number in [0, 1]")
        normalise("threshold", float(threshold))
        seed = self.seed
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not -(2**63) <= seed < 2**63:
            raise DataError(f"seed={seed!r} must be a 64-bit integer, in [-2^63, 2^63)")
        for name in ("user_column", "label_column", "p_column", "group_column"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise DataError(f"{name}={value!r} must be a column name (a string)")
        self._check_mu()

    def _check_mu(self) -> None:
        mu, mu_prior = self.mu, self.mu_prior
        if isinstance(mu, str) and mu != "free":
            raise DataError(f"mu={mu!r} is not understood: pass a number in (0.5, 1), a list per group, or 'free'")
        if mu is not None and mu_prior is not None:
            what = "mu='free' asks for the MLE" if mu == "free" else f"mu={mu!r} fixes the gap"
            raise DataError(f"{what}, so mu_prior={mu_prior!r} would be ignored: pass mu or mu_prior, not both")
        if mu_prior is not None:
            object.__setattr__(self, "mu_prior", _check_prior(mu_prior))
        if isinstance(mu, Mapping):
            validate_mu(list(mu.values()))
        elif mu is not None and mu != "free":
            validate_mu(mu)

    def replace(self, **changes: Any) -> FitOptions:
        """A copy with ``changes`` (validated again)."""
        return dataclasses.replace(self, **changes)

    @property
    def columns(self) -> dict[str, str | None]:
        """The column options, as keyword arguments of `jaxpref.io.data.load_preferences`."""
        return {name: getattr(self, name) for name in ("user_column", "label_column", "p_column", "group_column")}

    def resolve_mu(self, data: GroupedData) -> MuSetting:
        """The EM's mu mode, known or starting gaps per group, and prior, for ``data``."""
        mu = self.mu
        if data.p is not None:
            if mu is not None or self.mu_prior is not None:
                raise DataError(
                    "mu/mu_prior were given with per-label p: p already is each label's gap; drop mu or p_column"
                )
            return MuSetting("per_label", np.asarray([0.75]), (1.0, 1.0))
        num_groups = data.num_groups
        if mu is None:
            return MuSetting("prior", np.full(num_groups, 0.75), self.mu_prior or PAPER_MU_PRIOR)
        if mu == "free":
            return MuSetting("free", np.full(num_groups, 0.75), (1.0, 1.0))
        if isinstance(mu, Mapping):
            return MuSetting("known", _mu_per_group(mu, data), (1.0, 1.0))
        values = validate_mu(mu)
        if values.size == 1:
            values = np.full(num_groups, values[0])
        elif values.size != num_groups:
            raise DataError(
                f"mu has {values.size} values but the data have {num_groups} group(s): "
                "give one mu, or one per group in sorted group order"
            )
        return MuSetting("known", values, (1.0, 1.0))


def _mu_per_group(mu: Mapping[Any, float], data: GroupedData) -> np.ndarray:
    """A ``{group: mu}`` mapping as gaps in the data's group order."""
    if data.group_ids is None:
        raise DataError("mu was given per group but the data have no group column: pass group_column=<name>")
    # A key matches a group equal to it, or written the same way (the CLI's "0=0.6" is the group 0).
    groups = set(data.group_ids.tolist())
    by_text = {str(group): group for group in groups}
    values_by_group = {}
    for key, value in mu.items():
        group = key if key in groups else by_text.get(str(key))  # ids are never None (checked on input)
        if group is None or group in values_by_group:
            known = [json_key(g) for g in data.group_ids[:10]]
            raise DataError(f"mu has key {key!r}, which is not a group (or names one twice); groups are {known}: "
                            "give one mu per group")
        values_by_group[group] = value
    missing = [json_key(g) for g in data.group_ids if json_key(g) not in values_by_group]
    if missing:
        raise DataError(f"mu has no value for group(s) {missing[:5]}: give one mu per group")
    return validate_mu([values_by_group[json_key(g)] for g in data.group_ids])
