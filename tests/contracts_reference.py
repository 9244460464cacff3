"""Plain NumPy/SciPy reference for `jaxpref.contracts` (deliberately independent: no JAX).

Closed forms are taken from docs/contracts.md (the jaxpref model); contracts are solved by brute
force: every cutoff, root finding on sums over the binomial pmf, SciPy optimisers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats


@dataclass(frozen=True)
class Params:
    """Monitor ``phi(a) = 1/2 + scale a^power``; CARA ``rho``; cost ``kappa a^gamma / gamma``."""

    scale: float
    power: float
    n: int
    rho: float = 1.0
    kappa: float = 1.0
    gamma: float = 3.0
    r: float = 1.0
    u0: float = 0.0
    min_wage: float = -5.0

    def phi(self, a):
        return 0.5 + self.scale * np.power(a, self.power)

    def dphi(self, a):
        return self.scale * self.power * np.power(a, self.power - 1.0)

    def cost(self, a):
        return self.kappa * np.power(a, self.gamma) / self.gamma

    def dcost(self, a):
        return self.kappa * np.power(a, self.gamma - 1.0)

    def u(self, w):
        return w if self.rho == 0.0 else (1.0 - np.exp(-self.rho * w)) / self.rho

    def h(self, util):
        return util if self.rho == 0.0 else -np.log(1.0 - self.rho * util) / self.rho


def fisher_sc(a, m2):
    return 16.0 * a**2 * m2**2 / (0.25 - 4.0 * a**4 * m2**2)


def fisher_ex(a, rho):
    return 4.0 * rho**2 / (0.25 - 4.0 * a**2 * rho**2)


def fisher_comparison(a, mu):
    delta = mu - 0.5
    return delta**2 / (0.25 - a**2 * delta**2)


def expected_utility(wages, a, params: Params) -> float:
    n = len(wages) - 1
    return float(np.sum(stats.binom.pmf(np.arange(n + 1), n, params.phi(a)) * params.u(np.asarray(wages))))


def first_best(params: Params) -> tuple[float, float]:
    result = optimize.minimize_scalar(
        lambda a: -(params.r * a - params.h(params.cost(a) + params.u0)),
        bounds=(0.0, 1.0),
        method="bounded",
        options={"xatol": 1e-12},
    )
    return float(result.x), float(-result.fun)


def linear_contract(params: Params, a: float) -> dict:
    """Nested root finding: alpha from IR for each beta, beta from the local IC."""
    n = params.n
    successes = np.arange(n + 1)
    pmf = stats.binom.pmf(successes, n, params.phi(a))
    score = (successes - n * params.phi(a)) * params.dphi(a) / (params.phi(a) * (1.0 - params.phi(a)))
    mean_utility = params.cost(a) + params.u0

    def intercept(beta):
        return optimize.brentq(
            lambda alpha: np.sum(pmf * params.u(alpha + beta * successes / n)) - mean_utility,
            -50.0,
            50.0,
            xtol=1e-14,
        )

    def ic(beta):
        return np.sum(pmf * score * params.u(intercept(beta) + beta * successes / n)) - params.dcost(a)

    beta = optimize.brentq(ic, 1e-9, 50.0, xtol=1e-13)
    alpha = intercept(beta)
    cost = alpha + beta * params.phi(a)
    return {
        "intercept": alpha,
        "slope": beta,
        "cost": cost,
        "gap": cost - params.h(mean_utility),
        "feasible": alpha >= params.min_wage,
    }


def _binary_gap(params: Params, mean_utility, bonus, fail):
    """Expected wage over h(mean utility); utilities from the *failure* probability (no cancellation)."""
    high = mean_utility + bonus * fail
    low = high - bonus
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        cost = (1.0 - fail) * params.h(high) + fail * params.h(low)
        feasible = (low >= params.u(params.min_wage)) & (
            high < (np.inf if params.rho == 0 else 1.0 / params.rho)
        )
    return np.where(feasible & np.isfinite(cost), cost - params.h(mean_utility), np.inf), low


def binary_contract(params: Params, a: float, num_grid: int = 2001) -> dict:
    """Every cutoff k = 1..n priced exactly; the cheapest globally IC one (grid of deviations)."""
    n = params.n
    cutoffs = np.arange(1, n + 1)
    phi = params.phi(a)
    fail = stats.binom.cdf(cutoffs - 1, n, phi)
    slope = n * params.dphi(a) * stats.binom.pmf(cutoffs - 1, n - 1, phi)
    with np.errstate(divide="ignore"):
        bonus = params.dcost(a) / slope
    mean_utility = params.cost(a) + params.u0
    gap, low = _binary_gap(params, mean_utility, bonus, fail)
    deviations = np.linspace(0.0, 1.0, num_grid)
    fail_at = stats.binom.cdf(cutoffs[:, None] - 1, n, params.phi(deviations)[None, :])
    with np.errstate(invalid="ignore"):
        payoff = -bonus[:, None] * fail_at - params.cost(deviations)[None, :]
        target = -bonus * fail - params.cost(a)
        ic = target >= payoff.max(axis=1) - 1e-9 * (1.0 + np.abs(target))
    gap = np.where(ic, gap, np.inf)
    best = int(np.argmin(gap))
    return {
        "cutoff": int(cutoffs[best]),
        "bonus_utility": float(bonus[best]),
        "low_utility": float(low[best]),
        "gap": float(gap[best]),
    }


def binary_two_actions(params: Params, a_high: float, a_low: float) -> float:
    """Gap of the optimal binary contract when only a_low and a_high are available."""
    n = params.n
    cutoffs = np.arange(1, n + 1)
    fail_high = stats.binom.cdf(cutoffs - 1, n, params.phi(a_high))
    fail_low = stats.binom.cdf(cutoffs - 1, n, params.phi(a_low))
    with np.errstate(divide="ignore", invalid="ignore"):
        bonus = (params.cost(a_high) - params.cost(a_low)) / (fail_low - fail_high)
    gap, _ = _binary_gap(params, params.cost(a_high) + params.u0, bonus, fail_high)
    return float(np.min(np.where(fail_low > fail_high, gap, np.inf)))


def general_contract(params: Params, a: float) -> float:
    """Gap of the cheapest schedule u_K under IR and local IC, by SLSQP on the utilities."""
    n = params.n
    successes = np.arange(n + 1)
    phi = params.phi(a)
    pmf = stats.binom.pmf(successes, n, phi)
    score = (successes - n * phi) * params.dphi(a) / (phi * (1.0 - phi))
    mean_utility = params.cost(a) + params.u0
    bound = 1.0 / params.rho - 1e-9
    floor = params.u(params.min_wage)
    start = np.clip(mean_utility + params.dcost(a) * score / np.sum(pmf * score**2), floor, None)
    result = optimize.minimize(
        lambda util: np.sum(pmf * params.h(np.minimum(util, bound))),
        np.minimum(start, 0.5 * (bound + mean_utility)),
        jac=lambda util: pmf / (1.0 - params.rho * np.minimum(util, bound)),
        method="SLSQP",
        constraints=[
            {"type": "eq", "fun": lambda util: np.sum(pmf * util) - mean_utility, "jac": lambda util: pmf},
            {
                "type": "eq",
                "fun": lambda util: np.sum(pmf * score * util) - params.dcost(a),
                "jac": lambda util: pmf * score,
            },
        ],
        bounds=[(floor, bound)] * (n + 1),
        options={"ftol": 1e-15, "maxiter": 1000},
    )
    return float(result.fun - params.h(mean_utility))
