"""The optimal general contract ``w_K`` (any wage per score), by the first-order approach.

Liu, Wang, Ma & Li (arXiv 2502.06387) state that linear contracts are rate-optimal among general
contracts. Here, in **the jaxpref model** (CARA utility, docs/contracts.md), the cheapest schedule
``u_K = u(w_K)`` that implements ``a`` under IR and the *local* IC solves a convex program:

    min_u  sum_K p_K h(u_K)   s.t.   sum_K p_K u_K = c(a) + u0,   sum_K p_K s_K u_K = c'(a),
           u_K >= u(min_wage)

(``p_K = Binom(K; n, phi(a))``, ``s_K = (K - n phi) phi' / (phi (1 - phi))`` the score). Its KKT
conditions give the Holmström–Mirrlees form ``h'(u_K) = max(lambda + mu s_K, h'(u(min_wage)))``,
i.e. for CARA ``w_K = max(log(lambda + mu s_K) / rho_u, min_wage)``: two unknowns, found by
damped (semi-smooth) Newton. A convex program
solved exactly replaces a linear program over the wages. The result is verified
for global IC with `best_response`; when it passes, it is the optimal contract of any form.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array

from jaxpref.contracts._float64 import as_float64, float64
from jaxpref.contracts.agent import Economy, binomial_log_pmf, effort_cost, inverse_utility, marginal_cost
from jaxpref.contracts.monitoring import monitor_phi

__all__ = ["GeneralContract", "general_contract"]


class GeneralContract(NamedTuple):
    """Mirrlees schedule: ``wages[K]`` for ``K = 0..n``, multipliers, ``cost``, ``gap``, convergence."""

    action: Array
    wages: Array
    multiplier_ir: Array
    multiplier_ic: Array
    cost: Array
    gap: Array
    converged: Array


@functools.partial(jax.jit, static_argnames=("num_outcomes", "newton_steps"))
def _general_contract(econ: Economy, a: Array, num_outcomes: int, newton_steps: int) -> GeneralContract:
    rho, num_samples = econ.risk_aversion, econ.num_samples
    # Outcomes are padded to a bucket (one compiled program for many n); padded K get no mass.
    successes = jnp.arange(num_outcomes, dtype=jnp.float64)
    real = successes <= num_samples
    phi, phi_slope = jax.value_and_grad(lambda x: monitor_phi(econ.monitor, x))(a)
    log_pmf = binomial_log_pmf(jnp.where(real, successes, 0.0), num_samples, phi)
    pmf = jnp.where(real, jnp.exp(log_pmf), 0.0)
    score = jnp.where(real, (successes - num_samples * phi) * phi_slope / (phi * (1.0 - phi)), 0.0)
    mean_utility = effort_cost(a, econ) + econ.outside_utility
    targets = jnp.stack([mean_utility, marginal_cost(a, econ)])
    # Limited liability w_K >= min_wage caps h'(u_K) = lambda + mu s_K from below at exp(rho min_wage).
    floor = jnp.exp(rho * econ.min_wage)
    steps = 0.5 ** jnp.arange(40.0)

    def level_of(multipliers):
        return jnp.maximum(multipliers[0] + multipliers[1] * score, floor)

    def residual(multipliers):
        util = (1.0 - 1.0 / level_of(multipliers)) / rho
        return jnp.stack([pmf @ util, (pmf * score) @ util]) - targets

    def jacobian(multipliers):
        # d u_K / d level = 1 / (rho level^2) where the floor does not bind, 0 where it does.
        raw = multipliers[0] + multipliers[1] * score
        slope = jnp.where(raw > floor, 1.0 / (rho * level_of(multipliers) ** 2), 0.0) * pmf
        return jnp.array([[slope.sum(), slope @ score], [slope @ score, slope @ score**2]])

    def admissible(multipliers):
        return jnp.all(level_of(multipliers) > 0.0)

    def newton(_, multipliers):
        step = jnp.linalg.solve(jacobian(multipliers), residual(multipliers))
        # Largest step 2^-j that keeps every lambda + mu s_K positive (u_K below the bound 1/rho).
        trials = multipliers[None, :] - steps[:, None] * step[None, :]
        ok = jax.vmap(admissible)(trials)
        candidate = trials[jnp.argmax(ok)]
        return jnp.where(jnp.any(ok) & jnp.all(jnp.isfinite(candidate)), candidate, multipliers)

    # Start from the linearised solution: lambda = h'(u_bar), mu = rho lambda^2 c'(a) / (n I).
    ir_level = 1.0 / (1.0 - rho * mean_utility)
    start = jnp.stack([ir_level, rho * ir_level**2 * marginal_cost(a, econ) / (pmf @ score**2)])
    multipliers = jax.lax.fori_loop(0, newton_steps, newton, start)
    wages = jnp.log(level_of(multipliers)) / rho
    cost = pmf @ wages
    converged = jnp.max(jnp.abs(residual(multipliers))) < 1e-10
    gap = cost - inverse_utility(mean_utility, rho)
    return GeneralContract(a, wages, multipliers[0], multipliers[1], cost, gap, converged)


@float64
def general_contract(econ: Economy, a: float, *, newton_steps: int = 60) -> GeneralContract:
    """Cheapest contract of any form implementing ``a`` under IR and local IC (CARA, ``rho_u > 0``).

    Args:
        econ: scalar `Economy`; ``num_samples`` must be a concrete integer (the schedule has
            ``n + 1`` wages).
        a: target action in (0, 1).
        newton_steps: damped Newton iterations on the two multipliers.

    Returns:
        `GeneralContract`; check ``converged`` (False when no schedule of the Mirrlees form meets
        both constraints, e.g. very risk-averse agents with few units) and global IC with
        `jaxpref.contracts.agent.best_response` on ``wages``.
    """
    if not float(econ.risk_aversion) > 0.0:
        raise ValueError(
            "general_contract needs risk_aversion > 0: for a risk-neutral agent every contract shape"
            " is optimal"
        )
    num_samples = int(econ.num_samples)
    if num_samples != econ.num_samples or num_samples < 1:
        raise ValueError(f"num_samples={econ.num_samples!r} must be a positive integer")
    num_outcomes = max(256, 1 << num_samples.bit_length())
    contract = _general_contract(
        as_float64(econ), jnp.asarray(a, dtype=jnp.float64), num_outcomes, newton_steps
    )
    return contract._replace(wages=contract.wages[: num_samples + 1])
