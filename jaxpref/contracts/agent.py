"""The annotator as an agent: utility of a contract and the global best response.

Principal-agent structure after Liu, Wang, Ma & Li (arXiv 2502.06387): the annotator chooses a
continuous action ``a`` (attentiveness) and is paid on a monitoring score. The functional forms
are **the jaxpref model** (docs/contracts.md), not the paper's:

- CARA utility ``u(w) = (1 - exp(-rho_u w)) / rho_u`` (``rho_u = 0``: risk neutral, ``u(w) = w``),
  inverse ``h = u^{-1}``;
- effort cost ``c(a) = kappa a^gamma / gamma``, revenue ``R(a) = r a``, outside option ``u0``;
- limited liability ``w_K >= min_wage``. It is **on by default** (``min_wage = -5``), unlike our
  first sketch: CARA utility is unbounded below, so without it a binary contract with an
  extreme cutoff (bonus unless K is absurdly low) and a huge penalty approaches the first best
  (Mirrlees' unbounded-penalty construction) and the binary rate of the paper disappears. Pass
  ``min_wage=-inf`` to switch it off;
- a contract pays ``w_K`` after ``K ~ Binomial(n, phi(a))`` successes of the monitor.

An `Economy` holds numbers only (no callables), so it is a pytree: jit it, vmap it over
annotators (monitor parameters) and over the number of monitored units ``n``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import gammaln, xlog1py, xlogy
from jaxtyping import Array, ArrayLike, Float

from jaxpref.contracts._float64 import as_float64, float64
from jaxpref.contracts.monitoring import Monitor, monitor_phi

__all__ = [
    "Economy",
    "economy",
    "utility",
    "inverse_utility",
    "inverse_utility_float",
    "effort_cost",
    "marginal_cost",
    "revenue",
    "binomial_log_pmf",
    "expected_utility",
    "maximize_on_grid",
    "global_ic_holds",
    "best_response",
]

IC_TOLERANCE = 1e-9
"""Relative slack allowed in the global incentive constraint (float64 round-off of payoffs)."""


class Economy(NamedTuple):
    """Primitives of the contracting problem (every leaf a number or an array of numbers).

    Attributes:
        monitor: the `Monitor` that scores the annotator.
        num_samples: ``n``, monitored units per annotator.
        risk_aversion: CARA coefficient ``rho_u >= 0`` (0: risk neutral).
        cost_scale: ``kappa`` in ``c(a) = kappa a^gamma / gamma``.
        cost_power: ``gamma >= 1``.
        revenue_per_action: ``r`` in ``R(a) = r a``.
        outside_utility: ``u0``, the annotator's reservation utility.
        min_wage: limited liability, every wage ``>= min_wage`` (``-inf``: off).
    """

    monitor: Monitor
    num_samples: ArrayLike
    risk_aversion: ArrayLike = 1.0
    cost_scale: ArrayLike = 1.0
    cost_power: ArrayLike = 3.0
    revenue_per_action: ArrayLike = 1.0
    outside_utility: ArrayLike = 0.0
    min_wage: ArrayLike = -5.0


def economy(
    monitor: Monitor,
    num_samples: int,
    *,
    risk_aversion: float = 1.0,
    cost_scale: float = 1.0,
    cost_power: float = 3.0,
    revenue_per_action: float = 1.0,
    outside_utility: float = 0.0,
    min_wage: float = -5.0,
) -> Economy:
    """Validates scalar primitives and builds an `Economy`.

    The default ``cost_power = 3`` keeps linear pay on self-consistency globally incentive
    compatible; with ``cost_power = 2`` the agent's payoff is flat in the action
    (docs/contracts.md, "Global IC, checked").

    Example:
        >>> from jaxpref.contracts.monitoring import ex_monitor
        >>> economy(ex_monitor(0.2), 100).num_samples
        100
    """
    if int(num_samples) != num_samples or num_samples < 1:
        raise ValueError(f"num_samples={num_samples!r} must be a positive integer (monitored units)")
    if not risk_aversion >= 0.0:
        raise ValueError(f"risk_aversion={risk_aversion!r} must be >= 0 (0 means a risk-neutral annotator)")
    if not cost_scale > 0.0:
        raise ValueError(f"cost_scale={cost_scale!r} must be positive")
    if not cost_power >= 1.0:
        raise ValueError(f"cost_power={cost_power!r} must be >= 1 so that the effort cost is convex")
    if not revenue_per_action >= 0.0:
        raise ValueError(f"revenue_per_action={revenue_per_action!r} must be >= 0")
    if risk_aversion > 0.0 and not (cost_scale / cost_power + outside_utility) * risk_aversion < 1.0:
        raise ValueError(
            "CARA utility is bounded by 1/risk_aversion: need (cost_scale/cost_power + outside_utility)"
            f" * risk_aversion < 1, got {(cost_scale / cost_power + outside_utility) * risk_aversion:.3g};"
            " lower cost_scale, outside_utility or risk_aversion"
        )
    if min_wage != min_wage or min_wage >= inverse_utility_float(outside_utility, risk_aversion):
        raise ValueError(
            f"min_wage={min_wage!r} must be a number below the outside-option wage (or -inf to switch"
            " limited liability off)"
        )
    scale = float(monitor.scale)
    if scale == 0.0:
        raise ValueError("the monitor has scale 0 (no information about effort): choose m2, rho or mu != 1/2")
    return Economy(
        Monitor(scale, float(monitor.power)),
        int(num_samples),
        float(risk_aversion),
        float(cost_scale),
        float(cost_power),
        float(revenue_per_action),
        float(outside_utility),
        float(min_wage),
    )


def inverse_utility_float(util: float, risk_aversion: float) -> float:
    """`inverse_utility` for Python floats (validation at the boundary, no JAX)."""
    return util if risk_aversion == 0.0 else -math.log1p(-risk_aversion * util) / risk_aversion


def _safe_risk_aversion(risk_aversion: Array) -> Array:
    # Keeps the untaken branch of jnp.where finite (and its gradient NaN-free) when rho_u = 0.
    return jnp.where(risk_aversion == 0.0, 1.0, risk_aversion)


def utility(wage: ArrayLike, risk_aversion: ArrayLike) -> Array:
    """CARA utility ``(1 - exp(-rho w)) / rho``; ``w`` when ``rho = 0``."""
    safe = _safe_risk_aversion(risk_aversion)
    return jnp.where(risk_aversion == 0.0, wage, -jnp.expm1(-safe * wage) / safe)


def inverse_utility(util: ArrayLike, risk_aversion: ArrayLike) -> Array:
    """``h(u) = -log(1 - rho u) / rho``, the wage that gives utility ``u``; ``+inf`` past ``1/rho``."""
    safe = _safe_risk_aversion(risk_aversion)
    inside = safe * util < 1.0
    wage = -jnp.log1p(-jnp.where(inside, safe * util, 0.0)) / safe
    return jnp.where(risk_aversion == 0.0, util, jnp.where(inside, wage, jnp.inf))


def effort_cost(a: ArrayLike, econ: Economy) -> Array:
    """``c(a) = kappa a^gamma / gamma`` in utility units."""
    return econ.cost_scale * jnp.power(a, econ.cost_power) / econ.cost_power


def marginal_cost(a: ArrayLike, econ: Economy) -> Array:
    """``c'(a) = kappa a^(gamma - 1)``."""
    return econ.cost_scale * jnp.power(a, econ.cost_power - 1.0)


def revenue(a: ArrayLike, econ: Economy) -> Array:
    """The company's value of action ``a``: ``R(a) = r a``."""
    return econ.revenue_per_action * a


def binomial_log_pmf(successes: ArrayLike, trials: ArrayLike, prob: ArrayLike) -> Array:
    """``log Binom(K; n, p)`` via gammaln; finite at ``p`` in {0, 1} where the mass is."""
    return (
        gammaln(trials + 1.0)
        - gammaln(successes + 1.0)
        - gammaln(trials - successes + 1.0)
        + xlogy(successes, prob)
        + xlog1py(trials - successes, -prob)
    )


@jax.jit
def _expected_utility(wages: Array, a: Array, econ: Economy) -> Array:
    num_samples = wages.shape[-1] - 1
    successes = jnp.arange(num_samples + 1, dtype=wages.dtype)
    log_pmf = binomial_log_pmf(successes, num_samples, monitor_phi(econ.monitor, a))
    return jnp.sum(jnp.exp(log_pmf) * utility(wages, econ.risk_aversion))


@float64
def expected_utility(wages: Float[Array, " n_plus_1"], a: ArrayLike, econ: Economy) -> Array:
    """``E_a[u(w_K)] = sum_K Binom(K; n, phi(a)) u(w_K)``; ``n = len(wages) - 1``.

    Example:
        >>> from jaxpref.contracts.monitoring import ex_monitor
        >>> econ = economy(ex_monitor(0.2), 2, risk_aversion=0.0)
        >>> round(float(expected_utility(jnp.array([0.0, 1.0, 2.0]), 0.5, econ)), 6)  # 2 phi(0.5)
        1.4
    """
    return _expected_utility(
        jnp.asarray(wages, dtype=jnp.float64), jnp.asarray(a, dtype=jnp.float64), as_float64(econ)
    )


def maximize_on_grid(
    payoff: Callable[[Array], Array], num_grid: int, newton_steps: int = 20
) -> tuple[Array, Array]:
    """Global maximiser of a scalar payoff on [0, 1]: grid argmax, then bounded Newton steps.

    The Newton iterate stays within one grid cell of the best node and is kept only if it
    improves on it, so the result is never worse than the grid (use inside jit).

    Returns:
        ``(argmax, max)``.
    """
    grid = jnp.linspace(0.0, 1.0, num_grid)
    values = jax.vmap(payoff)(grid)
    best = jnp.argmax(values)
    spacing = 1.0 / (num_grid - 1)
    low, high = jnp.maximum(grid[best] - spacing, 0.0), jnp.minimum(grid[best] + spacing, 1.0)
    slope, curvature = jax.grad(payoff), jax.grad(jax.grad(payoff))

    def newton(_, x):
        step = slope(x) / curvature(x)
        # Only a concave model gives an ascent step; otherwise stay put.
        return jnp.where(curvature(x) < 0.0, jnp.clip(x - step, low, high), x)

    refined = jax.lax.fori_loop(0, newton_steps, newton, grid[best])
    refined_value = payoff(refined)
    keep = jnp.isfinite(refined_value) & (refined_value > values[best])
    return jnp.where(keep, refined, grid[best]), jnp.where(keep, refined_value, values[best])


def global_ic_holds(payoff: Callable[[Array], Array], a: Array, num_grid: int) -> Array:
    """Whether ``a`` is the agent's strict global best response on [0, 1].

    No grid action pays more than the target (up to 1e-9 relative), and actions more than two
    grid cells away pay strictly less: a flat payoff (an indifferent agent, docs/contracts.md,
    "Global IC, checked") does not count as incentive compatible. Grid only: `best_response`
    (with Newton) verifies final contracts, and second derivatives of binomial tails are costly to compile.
    """
    grid = jnp.linspace(0.0, 1.0, num_grid)
    values = jax.vmap(payoff)(grid)
    target_value = payoff(a)
    slack = IC_TOLERANCE * (1.0 + jnp.abs(target_value))
    far = jnp.abs(grid - a) > 2.0 / (num_grid - 1)
    return jnp.all(values <= target_value + slack) & jnp.all(
        jnp.where(far, values < target_value - slack, True)
    )


@functools.partial(jax.jit, static_argnames="num_grid")
def _best_response(wages: Array, econ: Economy, num_grid: int) -> Array:
    action, _ = maximize_on_grid(lambda x: _expected_utility(wages, x, econ) - effort_cost(x, econ), num_grid)
    return action


@float64
def best_response(wages: Float[Array, " n_plus_1"], econ: Economy, num_grid: int = 2049) -> Array:
    """The annotator's global best response to the wage schedule ``w_K``, ``K = 0..n``.

    Args:
        wages: ``(n + 1,)`` wages by number of successes.
        econ: the `Economy` (its ``num_samples`` is ignored: ``n = len(wages) - 1``).
        num_grid: grid size on [0, 1] before Newton refinement.

    Returns:
        The action maximising ``E_a[u(w_K)] - c(a)``.
    """
    if num_grid < 3:
        raise ValueError(f"num_grid={num_grid!r} must be at least 3")
    return _best_response(jnp.asarray(wages, dtype=jnp.float64), as_float64(econ), num_grid)
