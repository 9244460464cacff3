"""Identifiability of mu: the profile log-likelihood and a flatness check.

Only ``delta_j = eta_j (mu - 1/2)`` enters the likelihood (docs/identifiability.md), so
with a free P_eta support, ``(eta, mu)`` and ``(c eta, 1/2 + (mu - 1/2) / c)`` fit equally
well and mu is pinned only by the edge ``eta <= 1`` or by a prior. The profile

    l_p(mu) = max over P_eta of l(P_eta, mu)

is computed on a grid of mu with one vmapped EM run per grid point (mu known there). Its
likelihood-ratio interval ``{mu : 2 (max l_p - l_p(mu)) <= chi2_1(level)}`` says how well the
data pin mu; the profile is *flat* when that interval spans most of (1/2, 1).

Example:
    >>> import jax
    >>> from jaxpref.simulate import simulate
    >>> sim = simulate(jax.random.key(0), 300, 20, family="two_point", support=(0.1, 0.9), mu=0.8)
    >>> profile = profile_loglik_mu(sim.frame, family="two_point")  # free support
    >>> flat_profile(profile)
    True
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxpref.core import driver, em
from jaxpref.io.data import CountStats, count_stats, load_preferences
from jaxpref.errors import DataError, IdentifiabilityWarning
from jaxpref.core.families import make_family
from jaxpref.checks import float_dtype
from jaxpref.options import FitOptions

__all__ = [
    "MuProfile",
    "default_mu_grid",
    "profile_from_stats",
    "profile_loglik_mu",
    "likelihood_ratio_interval",
    "flat_profile",
    "warn_if_flat",
    "plot_profile",
]

#: Share of (1/2, 1) a likelihood-ratio interval must span for the profile to count as flat.
FLAT_FRACTION = 0.4
#: The same share for an interval open at the top of the mu grid (no upper bound from the data).
OPEN_FRACTION = 0.1


class MuProfile(NamedTuple):
    """A profile log-likelihood of mu.

    Attributes:
        mu_grid: ``(num_mu,)`` values of mu, increasing.
        loglik: ``(num_mu,)`` profile log-likelihood (maximised over P_eta at each mu).
        log_prior: ``(num_mu,)`` log Beta prior of mu (zeros without a prior).
        mu_hat: grid value maximising ``loglik + log_prior``.
        interval: ``(lo, hi)`` likelihood-ratio interval at ``level`` (grid edges when open).
        level: the interval's level.
        family: the P_eta family profiled over.
    """

    mu_grid: np.ndarray
    loglik: np.ndarray
    log_prior: np.ndarray
    mu_hat: float
    interval: tuple[float, float]
    level: float
    family: str

    @property
    def objective(self) -> np.ndarray:
        """``loglik + log_prior``: the (penalised) profile the interval is read from."""
        return self.loglik + self.log_prior


def default_mu_grid(num_mu: int = 49) -> np.ndarray:
    """``num_mu`` equispaced values on [0.51, 0.99]."""
    return np.linspace(0.51, 0.99, num_mu)


@functools.partial(jax.jit, static_argnames=("config", "num_restarts"))
def profile_from_stats(
    key: jax.Array, stats: CountStats, config: em.EMConfig, mu_grid: jax.Array, num_restarts: int = 4
) -> jax.Array:
    """Profile log-likelihood on a grid of one gap, all grid points in one vmapped EM.

    Args:
        key: PRNG key of the EM restarts (the same restarts at every mu).
        stats: one-gap `CountStats`.
        config: EM configuration with ``mu_mode="known"``.
        mu_grid: ``(num_mu,)`` values of mu.
        num_restarts: EM starts per grid point.

    Returns:
        ``(num_mu,)`` maximised log-likelihood at each mu.
    """

    # EM alone at each grid point: the profile is a diagnostic read on a chi-square scale, and the
    # Newton polish vmapped over every mu would cost more than all the EM fits.
    unpolished = config._replace(polish=False)

    def at(mu):
        best, _ = driver.fit_restarts(key, stats, unpolished, mu[None], num_restarts)
        return best.loglik

    return jax.vmap(at)(mu_grid)


def likelihood_ratio_interval(
    mu_grid: np.ndarray, objective: np.ndarray, level: float = 0.95
) -> tuple[float, float]:
    """``{mu : 2 (max - objective(mu)) <= chi2_1(level)}`` by linear interpolation on the grid.

    The ends are the grid edges when the set reaches them (an open interval).
    """
    cutoff = np.max(objective) - 0.5 * _chi2_quantile(level)
    inside = np.flatnonzero(objective >= cutoff)
    first, last = inside[0], inside[-1]

    def crossing(outside, inner):
        # Linear interpolation of the objective between a point outside and one inside.
        fraction = (cutoff - objective[outside]) / (objective[inner] - objective[outside])
        return float(mu_grid[outside] + fraction * (mu_grid[inner] - mu_grid[outside]))

    lo = float(mu_grid[0]) if first == 0 else crossing(first - 1, first)
    hi = float(mu_grid[-1]) if last == len(mu_grid) - 1 else crossing(last + 1, last)
    return lo, hi


def _profile(stats, config, mu_grid, level, seed, num_restarts, prior=None) -> MuProfile:
    dtype = stats.multiplicity.dtype
    loglik = np.asarray(
        profile_from_stats(jax.random.key(seed), stats, config, jnp.asarray(mu_grid, dtype), num_restarts),
        np.float64,
    )
    mu_grid = np.asarray(mu_grid, np.float64)
    log_prior = np.zeros_like(loglik)
    if prior is not None:
        a, b = prior
        log_prior = (a - 1.0) * np.log(mu_grid) + (b - 1.0) * np.log1p(-mu_grid)
    objective = loglik + log_prior
    return MuProfile(
        mu_grid=mu_grid,
        loglik=loglik,
        log_prior=log_prior,
        mu_hat=float(mu_grid[np.argmax(objective)]),
        interval=likelihood_ratio_interval(mu_grid, objective, level),
        level=level,
        family=config.family.name,
    )


def _chi2_quantile(level: float) -> float:
    """The ``level`` quantile of chi-square with 1 degree of freedom (SciPy is imported here, not
    with the module: `scipy.stats` costs half a second of every command line fit's start-up)."""
    from scipy import stats

    return float(stats.chi2.ppf(level, df=1))


def profile_loglik_mu(
    data: Any,
    options: FitOptions | None = None,
    *,
    mu_grid: Any = None,
    level: float = 0.95,
    **option_values: Any,
) -> MuProfile:
    """Profile log-likelihood of mu (one gap), maximising over P_eta at each mu.

    Args:
        data: labels (see `jaxpref.io.data.load_preferences`); one gap, no per-label p.
        options: a `jaxpref.options.FitOptions`: the family (``family``, ``support``,
            ``num_grid``) profiled over, EM settings at each grid point (``num_restarts``,
            ``seed``, ``tol``, ``max_iter``, ``dtype``), column names (per-label p and groups
            are refused: no single mu to profile), and an optional ``mu_prior``: the interval is
            then read from the penalised profile ``loglik + log prior``. ``mu`` must be None
            (it is what is profiled).
        mu_grid: increasing values in (1/2, 1); default `default_mu_grid`.
        level: level of the likelihood-ratio interval.
        **option_values: options as keywords, applied over ``options``.

    Returns:
        A `MuProfile`.
    """
    options = (options or FitOptions()).replace(**option_values)
    if options.mu is not None:
        raise DataError(f"mu={options.mu!r} was given, but profile_loglik_mu profiles mu: drop mu")
    if not 0.0 < float(level) < 1.0:
        raise DataError(f"level={level!r} must lie in (0, 1)")
    mu_grid = default_mu_grid() if mu_grid is None else np.asarray(mu_grid, np.float64).reshape(-1)
    if mu_grid.size < 3 or np.any(np.diff(mu_grid) <= 0) or mu_grid[0] <= 0.5 or mu_grid[-1] >= 1.0:
        raise DataError("mu_grid must hold at least 3 increasing values inside (0.5, 1), e.g. np.linspace(0.51, 0.99, 49)")
    spec = make_family(options.family, options.num_grid, options.support)
    data = load_preferences(data, **options.columns)
    if data.p is not None or data.num_groups != 1:
        raise DataError(
            "profile_loglik_mu needs one gap mu: the data have per-label p or groups; "
            "profile each group's data apart"
        )
    config = em.EMConfig(family=spec, mu_mode="known", tol=options.tol, max_iter=options.max_iter)
    with jax.enable_x64(options.dtype == "float64"):
        stats, _ = count_stats(data, float_dtype(options.dtype))
        stats = jax.tree.map(jnp.asarray, stats)
        return _profile(stats, config, mu_grid, float(level), options.seed, options.num_restarts, options.mu_prior)


def flat_profile(profile: MuProfile, fraction: float = FLAT_FRACTION, open_fraction: float = OPEN_FRACTION) -> bool:
    """Whether the data fail to pin mu.

    True when the likelihood-ratio interval of mu spans at least ``fraction`` of (1/2, 1),
    or when it is open at an end of the grid and spans at least ``open_fraction`` of (1/2, 1):
    open at the top, the data set no upper bound on mu (as with a free two_point support, whose
    flat region starts where eta_hi reaches 1); open at the bottom, the data cannot tell mu from
    1/2 (little signal, e.g. every label B, where the best fit has no attentive users and any
    mu). A sharp interval against the top edge (a true mu near 1 with a fixed support) is not flat.
    """
    lo, hi = profile.interval
    width = (hi - lo) / 0.5
    open_at_an_end = hi >= profile.mu_grid[-1] or lo <= profile.mu_grid[0]
    return bool(width >= fraction or (open_at_an_end and width >= open_fraction))


def warn_if_flat(
    stats: CountStats,
    config: em.EMConfig,
    *,
    seed: int = 0,
    num_restarts: int = 4,
    level: float = 0.95,
    fraction: float = FLAT_FRACTION,
    open_fraction: float = OPEN_FRACTION,
) -> MuProfile | None:
    """Profiles mu for a fit with ``mu_mode="free"`` and warns when the profile is flat.

    Meant for `jaxpref.fit_attentiveness`; does nothing (returns None) unless mu is free
    and the statistics are one-gap `CountStats`.

    Returns:
        The `MuProfile`, or None when no check applies.

    Warns:
        IdentifiabilityWarning: `flat_profile` holds (the 95 % likelihood-ratio interval of
            mu spans most of (1/2, 1), or is open at the top).
    """
    if config.mu_mode != "free" or not isinstance(stats, CountStats) or stats.num_pref_a.shape[1] != 1:
        return None
    known = config._replace(mu_mode="known")
    profile = _profile(stats, known, default_mu_grid(), level, seed, num_restarts)
    if flat_profile(profile, fraction, open_fraction):
        lo, hi = profile.interval
        warnings.warn(
            f"the profile likelihood of mu is flat: its {level:.0%} likelihood-ratio interval is "
            f"[{lo:.2f}, {hi:.2f}], so the data barely pin mu (family="
            f"{config.family.name!r}). Fix mu, give mu_prior=(8, 2), or fix the support; see "
            "jaxpref.identifiability.profile_loglik_mu.",
            IdentifiabilityWarning,
            stacklevel=3,
        )
    return profile


def plot_profile(profile: MuProfile, ax: Any = None, label: str | None = None):
    """Plots ``objective - max`` against mu with the likelihood-ratio cut-off and interval.

    Returns:
        The matplotlib Axes.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    relative = profile.objective - np.max(profile.objective)
    line = ax.plot(profile.mu_grid, relative, label=label or profile.family)[0]
    lo, hi = profile.interval
    ax.axvspan(lo, hi, color=line.get_color(), alpha=0.12)
    ax.axhline(-0.5 * _chi2_quantile(profile.level), color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("mu")
    ax.set_ylabel("profile log-likelihood - max")
    return ax
