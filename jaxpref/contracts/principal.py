"""The company as principal: first best, optimal binary and linear contracts, second best, rates.

Claims from Liu, Wang, Ma & Li (arXiv 2502.06387): with a continuous action, the gap to the first
best is Θ(1/sqrt(I n log n)) for binary contracts and Θ(1/(I n)) for linear ones (I: Fisher
information of the monitor, n: monitored units); linear contracts are rate-optimal; with discrete
actions binary contracts reach exp(-Θ(n)) (Frick, Iijima & Ishii, arXiv 2312.16789). The model
that reproduces them here is **the jaxpref model** (docs/contracts.md, "Contracts"):

- first best: the action is observed, a fixed wage ``h(c(a) + u0)`` buys it;
- binary: utility ``u_L + D 1{K >= k}``; local IC fixes ``D = c'(a) / P_k'(a)``, IR fixes ``u_L``;
  every cutoff in a window around ``n phi(a)`` is priced exactly (binomial tails by the
  regularised incomplete beta), and the cheapest one that passes the *global* IC check wins;
- linear: wage ``alpha + beta K / n``; with CARA utility the binomial moment generating function
  gives ``beta`` (local IC) and ``alpha`` (IR) in closed form, or, with ``gaussian=True``,
  the normal approximation ``K / n ~ N(phi, phi (1 - phi) / n)`` (any n);
- second best: the best target action, by a zooming grid search over [0, 1].

Two findings of the jaxpref model worth knowing: the optimal binary cutoff is lenient with
``z = (n phi(a) - k) / sd`` growing like ``sqrt(log(I n))`` (not ``sqrt(2 log(I n))`` as our first
sketch of the model said: there ``phi(z) ~ c' / (c sqrt(I n))``), and the binary rate needs limited
liability (see `jaxpref.contracts.agent`): without it extreme cutoffs with huge penalties do better.

Every contract is checked for global incentive compatibility on a grid of deviations (the agent
must strictly prefer the target to actions two grid cells away); contracts that fail are
flagged (``incentive_compatible = False``) and never
chosen by `second_best`. All functions broadcast over the leaves of the `Economy` and the
target action, e.g. over ``num_samples`` (gap curves) or over annotators' monitors.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats
from jax.scipy.special import betainc
from jaxtyping import Array, ArrayLike

from jaxpref.contracts._float64 import float64
from jaxpref.contracts.agent import (
    IC_TOLERANCE,
    Economy,
    binomial_log_pmf,
    effort_cost,
    global_ic_holds,
    inverse_utility,
    marginal_cost,
    maximize_on_grid,
    revenue,
    utility,
)
from jaxpref.contracts.monitoring import monitor_phi

__all__ = [
    "FirstBest",
    "BinaryContract",
    "LinearContract",
    "SecondBest",
    "RateFit",
    "KINDS",
    "first_best",
    "binary_contract",
    "linear_contract",
    "binary_contract_two_actions",
    "binary_contract_at_cutoff",
    "second_best",
    "gap_curve",
    "fit_rate",
    "contract_wages",
]

KINDS = ("binary", "linear")

# Cutoffs are searched for z = (n phi(a) - k) / (sd sqrt(n)) in this window: the optimum is
# lenient, z ~ sqrt(log(I n)) < 4 for I n < 1e7; strict cutoffs (z < 0) never pass global IC.
Z_STRICT, Z_LENIENT = -1.0, 7.0


class FirstBest(NamedTuple):
    """Observable action: ``action = argmax R(a) - h(c(a) + u0)`` and that ``value``."""

    action: Array
    value: Array


class BinaryContract(NamedTuple):
    """Bonus iff ``K >= cutoff``: wage ``low_wage``, or ``high_wage`` with the bonus.

    Attributes:
        action: target action ``a``.
        cutoff: ``k``.
        low_utility: ``u_L``, the utility without bonus.
        bonus_utility: ``D = u_H - u_L``.
        low_wage, high_wage: ``h(u_L)``, ``h(u_L + D)``.
        pass_probability: ``P(K >= k | a)``.
        cost: expected wage ``E_a[w]``.
        gap: ``cost - h(c(a) + u0)``, the risk premium paid over the first-best wage.
        incentive_compatible: feasible: the target is the agent's global best response and
            limited liability holds.
    """

    action: Array
    cutoff: Array
    low_utility: Array
    bonus_utility: Array
    low_wage: Array
    high_wage: Array
    pass_probability: Array
    cost: Array
    gap: Array
    incentive_compatible: Array


class LinearContract(NamedTuple):
    """Wage ``intercept + slope * K / n``; ``cost``, ``gap`` and flag as in `BinaryContract`.

    IR binds; when that puts the intercept below ``min_wage`` the contract is flagged infeasible
    (linear contracts that leave the annotator a rent are not modelled).
    """

    action: Array
    intercept: Array
    slope: Array
    cost: Array
    gap: Array
    incentive_compatible: Array


class SecondBest(NamedTuple):
    """Best contract of a class: ``action``, principal's ``value``, ``gap = first_best_value - value``."""

    action: Array
    value: Array
    gap: Array
    first_best_value: Array


class RateFit(NamedTuple):
    """Least-squares slope of ``log gap`` on ``log n`` with its standard error and 95% interval."""

    slope: float
    intercept: float
    stderr: float
    ci_low: float
    ci_high: float


MIN_BUCKET = 16
"""Batches are padded to a power of two (at least this) so that new shapes rarely recompile."""


@functools.partial(jax.jit, static_argnames=("core", "options"))
def _vmapped(core: Callable[..., Any], options: tuple, econ: Economy, *args: Array) -> Any:
    return jax.vmap(functools.partial(core, **dict(options)))(econ, *args)


def _broadcast_map(core: Callable[..., Any], econ: Economy, *args: ArrayLike, **options: Any) -> Any:
    """Applies a scalar ``core(econ, *args, **options)`` over the broadcast shape of all leaves.

    The leaves are flattened and padded (with copies of the first element) to a bucket size, so
    one compiled program serves every batch up to that size; ``core`` is a module-level function.
    """
    leaves, treedef = jax.tree_util.tree_flatten((econ, args))
    leaves = [np.asarray(leaf, dtype=np.float64) for leaf in leaves]
    shape = np.broadcast_shapes(*(leaf.shape for leaf in leaves))
    size = int(np.prod(shape))
    bucket = max(MIN_BUCKET, 1 << (size - 1).bit_length())
    flat = []
    for leaf in leaves:
        values = np.broadcast_to(leaf, shape).reshape(-1)
        flat.append(np.concatenate([values, np.repeat(values[:1], bucket - size)]))
    flat_econ, flat_args = jax.tree_util.tree_unflatten(treedef, flat)
    out = _vmapped(core, tuple(sorted(options.items())), flat_econ, *flat_args)
    return jax.tree_util.tree_map(lambda leaf: leaf[:size].reshape(shape + leaf.shape[1:]), out)


def _phi_and_slope(econ: Economy, a: Array) -> tuple[Array, Array]:
    return jax.value_and_grad(lambda x: monitor_phi(econ.monitor, x))(a)


def _first_best_objective(a: Array, econ: Economy) -> Array:
    return revenue(a, econ) - inverse_utility(effort_cost(a, econ) + econ.outside_utility, econ.risk_aversion)


def _first_best_core(econ: Economy) -> FirstBest:
    action, value = maximize_on_grid(lambda a: _first_best_objective(a, econ), 2049)
    return FirstBest(action, value)


@float64
def first_best(econ: Economy) -> FirstBest:
    """First best: the company observes ``a`` and pays the fixed wage ``h(c(a) + u0)``.

    Example:
        >>> from jaxpref.contracts.agent import economy
        >>> from jaxpref.contracts.monitoring import ex_monitor
        >>> fb = first_best(economy(ex_monitor(0.2), 100, risk_aversion=0.0, cost_power=2.0))
        >>> round(float(fb.action), 6), round(float(fb.value), 6)  # r = c'(a) = a
        (1.0, 0.5)
    """
    return _broadcast_map(_first_best_core, econ)


def _binary_gap(mean_utility: Array, bonus: Array, fail: Array, risk_aversion: Array) -> Array:
    """Expected wage over ``h(mean_utility)`` for utility ``u_H`` w.p. ``1 - fail``, ``u_H - bonus`` else."""
    high = mean_utility + bonus * fail
    low = high - bonus
    cost = (1.0 - fail) * inverse_utility(high, risk_aversion) + fail * inverse_utility(low, risk_aversion)
    return cost - inverse_utility(mean_utility, risk_aversion)


def _fail_probability(cutoff: Array, num_samples: Array, phi: Array) -> Array:
    # P(K < k) = I_{1 - phi}(n - k + 1, k), accurate when it is tiny (lenient cutoffs).
    return betainc(num_samples - cutoff + 1.0, cutoff, 1.0 - phi)


def _cutoff_candidates(low: Array, high: Array, num_samples: Array, num_cutoffs: int) -> Array:
    """``num_cutoffs`` integers spanning [low, high] within [1, n]: all of them when they fit."""
    low = jnp.clip(jnp.floor(low), 1.0, num_samples)
    high = jnp.clip(jnp.ceil(high), 1.0, num_samples)
    step = jnp.maximum(1.0, (high - low) / (num_cutoffs - 1))
    return jnp.clip(jnp.round(low + step * jnp.arange(num_cutoffs)), 1.0, num_samples)


def _binary_payoff(econ: Economy, cutoff: Array, bonus: Array, actions: Array) -> tuple[Array, Array]:
    """The agent's payoff under bonus ``D`` iff ``K >= k``, up to the constant ``u_L + D``:
    ``-D P(K < k | x) - c(x)``; also returns ``P(K < k | x)``."""
    fail_at = _fail_probability(cutoff, econ.num_samples, monitor_phi(econ.monitor, actions))
    return -bonus * fail_at - effort_cost(actions, econ), fail_at


def _local_ic_bonus(econ: Economy, a: Array, cutoffs: Array) -> tuple[Array, Array]:
    """Bonus utility ``D = c'(a) / P_k'(a)`` per cutoff, and ``P_k'(a)``."""
    phi, phi_slope = _phi_and_slope(econ, a)
    # dP(K >= k)/da = n phi'(a) Binom(k - 1; n - 1, phi(a)).
    n = econ.num_samples
    pass_slope = n * phi_slope * jnp.exp(binomial_log_pmf(cutoffs - 1.0, n - 1.0, phi))
    return marginal_cost(a, econ) / pass_slope, pass_slope


def _binary_feasible(econ: Economy, a: Array, bonus: Array, fail: Array, gap: Array) -> Array:
    # Limited liability: the utility without bonus, u_L = u_bar - D (1 - F), stays >= u(min_wage).
    mean_utility = effort_cost(a, econ) + econ.outside_utility
    liable = mean_utility - bonus * (1.0 - fail) >= utility(econ.min_wage, econ.risk_aversion)
    return jnp.isfinite(gap) & jnp.isfinite(bonus) & (bonus > 0.0) & liable


def _assemble_binary(
    econ: Economy, a: Array, cutoff: Array, bonus: Array, fail: Array, gap: Array, feasible: Array
) -> BinaryContract:
    rho = econ.risk_aversion
    mean_utility = effort_cost(a, econ) + econ.outside_utility
    low_utility = mean_utility - bonus * (1.0 - fail)
    return BinaryContract(
        action=a,
        cutoff=cutoff,
        low_utility=low_utility,
        bonus_utility=bonus,
        low_wage=inverse_utility(low_utility, rho),
        high_wage=inverse_utility(low_utility + bonus, rho),
        pass_probability=1.0 - fail,
        cost=gap + inverse_utility(mean_utility, rho),
        gap=gap,
        incentive_compatible=feasible,
    )


def _binary_contract_core(
    econ: Economy, a: Array, *, num_cutoffs: int, screen_grid: int, check_grid: int, num_checked: int
) -> BinaryContract:
    num_samples = econ.num_samples
    phi = monitor_phi(econ.monitor, a)
    spread = jnp.sqrt(phi * (1.0 - phi) * num_samples)
    cutoffs = _cutoff_candidates(
        num_samples * phi - Z_LENIENT * spread,
        num_samples * phi - Z_STRICT * spread,
        num_samples,
        num_cutoffs,
    )
    bonus, _ = _local_ic_bonus(econ, a, cutoffs)
    # One pass prices every cutoff (its failure probability at the target) and screens it for
    # global IC on a coarse grid of deviations; the cheapest survivors then get the fine check.
    actions = jnp.concatenate([a[None], jnp.linspace(0.0, 1.0, screen_grid)])
    values, fail_at = jax.vmap(lambda k, d: _binary_payoff(econ, k, d, actions))(cutoffs, bonus)
    fail = fail_at[:, 0]
    gap = _binary_gap(effort_cost(a, econ) + econ.outside_utility, bonus, fail, econ.risk_aversion)
    survives = values[:, 0] >= jnp.max(values, axis=1) - IC_TOLERANCE * (1.0 + jnp.abs(values[:, 0]))
    ranked_gap = jnp.where(_binary_feasible(econ, a, bonus, fail, gap) & survives, gap, jnp.inf)
    _, order = jax.lax.top_k(-ranked_gap, num_checked)
    checked = jax.vmap(
        lambda k, d: global_ic_holds(lambda x: _binary_payoff(econ, k, d, x)[0], a, check_grid)
    )(cutoffs[order], bonus[order])
    checked &= jnp.isfinite(ranked_gap[order])
    chosen = order[jnp.argmax(checked)]
    return _assemble_binary(
        econ, a, cutoffs[chosen], bonus[chosen], fail[chosen], gap[chosen], jnp.any(checked)
    )


def _binary_at_cutoff_core(econ: Economy, a: Array, cutoff: Array, *, check_grid: int) -> BinaryContract:
    bonus, _ = _local_ic_bonus(econ, a, cutoff)
    fail = _fail_probability(cutoff, econ.num_samples, monitor_phi(econ.monitor, a))
    gap = _binary_gap(effort_cost(a, econ) + econ.outside_utility, bonus, fail, econ.risk_aversion)
    feasible = _binary_feasible(econ, a, bonus, fail, gap) & global_ic_holds(
        lambda x: _binary_payoff(econ, cutoff, bonus, x)[0], a, check_grid
    )
    return _assemble_binary(econ, a, cutoff, bonus, fail, gap, feasible)


@float64
def binary_contract_at_cutoff(
    econ: Economy, a: ArrayLike, cutoff: ArrayLike, *, check_grid: int = 513
) -> BinaryContract:
    """The binary contract with a *given* cutoff ``k`` (bonus iff ``K >= k``) that implements ``a``.

    The bonus follows from the local IC, the base wage from IR; ``incentive_compatible`` tells
    whether ``a`` is then the agent's global best response (and limited liability holds). Use it
    to price a bonus rule whose cutoff is fixed elsewhere, e.g. by the EM posterior
    (`jaxpref.contracts.bridge`).
    """
    return _broadcast_map(_binary_at_cutoff_core, econ, a, cutoff, check_grid=check_grid)


@float64
def binary_contract(
    econ: Economy,
    a: ArrayLike,
    *,
    num_cutoffs: int = 512,
    screen_grid: int = 9,
    check_grid: int = 513,
    num_checked: int = 8,
) -> BinaryContract:
    """Cheapest globally incentive-compatible binary contract that implements ``a``.

    Args:
        econ: the `Economy` (leaves broadcast against ``a``).
        a: target action(s) in (0, 1].
        num_cutoffs: cutoffs priced per target (all integers in the search window when it fits).
        screen_grid: deviations on which every cutoff is screened for global IC.
        check_grid: grid of the full global IC check of the ``num_checked`` cheapest survivors.
        num_checked: survivors checked in full.

    Returns:
        `BinaryContract` with the broadcast shape; ``incentive_compatible`` is False (and the
        gap that of a non-IC cutoff) when no cutoff in the window is globally IC.

    The window is ``z = (n phi(a) - k) / sd`` in [-1, 7]. With limited liability off
    (``min_wage = -inf``) the infimum lies at extreme cutoffs outside it (huge penalties), so the
    result is then the best *lenient* contract, not the optimum.
    """
    return _broadcast_map(
        _binary_contract_core,
        econ,
        a,
        num_cutoffs=num_cutoffs,
        screen_grid=screen_grid,
        check_grid=check_grid,
        num_checked=num_checked,
    )


def _certainty_shift(econ: Economy, slope: Array, x: Array, gaussian: bool) -> Array:
    """Certainty equivalent of ``slope * K / n`` at action ``x`` (the agent's, CARA)."""
    num_samples, rho = econ.num_samples, econ.risk_aversion
    phi = monitor_phi(econ.monitor, x)
    if gaussian:
        return slope * phi - 0.5 * rho * slope**2 * phi * (1.0 - phi) / num_samples
    safe_rho = jnp.where(rho == 0.0, 1.0, rho)
    # -(1/rho) log E[exp(-rho slope K / n)] from the binomial moment generating function.
    exact = -num_samples * jnp.log1p(phi * jnp.expm1(-safe_rho * slope / num_samples)) / safe_rho
    return jnp.where(rho == 0.0, slope * phi, exact)


def _linear_slope(econ: Economy, a: Array, target: Array, gaussian: bool) -> Array:
    """Slope ``beta`` with ``d/da CE(a) = target`` (local IC in certainty-equivalent units)."""
    num_samples, rho = econ.num_samples, econ.risk_aversion
    phi, phi_slope = _phi_and_slope(econ, a)
    if gaussian:
        quadratic = 0.5 * rho * (1.0 - 2.0 * phi) * phi_slope / num_samples
        discriminant = phi_slope**2 - 4.0 * quadratic * target
        # Smaller root of quadratic beta^2 - phi' beta + target = 0, written without cancellation.
        return jnp.where(discriminant >= 0.0, 2.0 * target / (phi_slope + jnp.sqrt(discriminant)), jnp.nan)
    safe_rho = jnp.where(rho == 0.0, 1.0, rho)
    # CE'(a) = n phi' x / (rho (1 - phi x)) with x = 1 - exp(-rho beta / n); solve for x.
    ratio = target * safe_rho / (num_samples * phi_slope)
    fraction = ratio / (1.0 + phi * ratio)
    exact = jnp.where(fraction < 1.0, -num_samples * jnp.log1p(-fraction) / safe_rho, jnp.nan)
    return jnp.where(rho == 0.0, target / phi_slope, exact)


def _linear_contract_core(econ: Economy, a: Array, *, gaussian: bool, check_grid: int) -> LinearContract:
    rho = econ.risk_aversion
    mean_utility = effort_cost(a, econ) + econ.outside_utility
    # u'(h(u)) = 1 - rho u for CARA: the local IC d/da u(alpha + CE(a)) = c'(a) in CE units.
    marginal_utility = 1.0 - rho * mean_utility
    slope = _linear_slope(econ, a, marginal_cost(a, econ) / marginal_utility, gaussian)
    shift = _certainty_shift(econ, slope, a, gaussian)
    intercept = inverse_utility(mean_utility, rho) - shift
    gap = slope * monitor_phi(econ.monitor, a) - shift

    def payoff(x):
        return utility(intercept + _certainty_shift(econ, slope, x, gaussian), rho) - effort_cost(x, econ)

    # The lowest wage is the intercept (K = 0); a linear contract below min_wage is infeasible.
    ok = global_ic_holds(payoff, a, check_grid) & jnp.isfinite(gap) & (intercept >= econ.min_wage)
    return LinearContract(a, intercept, slope, intercept + slope * monitor_phi(econ.monitor, a), gap, ok)


@float64
def linear_contract(
    econ: Economy, a: ArrayLike, *, gaussian: bool = False, check_grid: int = 513
) -> LinearContract:
    """Linear contract ``alpha + beta K / n`` implementing ``a`` with IR binding (CARA, closed form).

    Args:
        econ: the `Economy` (leaves broadcast against ``a``).
        a: target action(s) in (0, 1].
        gaussian: use ``K / n ~ N(phi, phi (1 - phi) / n)`` instead of the exact binomial.
        check_grid: grid of the global IC check.

    Example:
        >>> from jaxpref.contracts.agent import economy
        >>> from jaxpref.contracts.monitoring import ex_monitor
        >>> c = linear_contract(economy(ex_monitor(0.2), 400), 0.5)
        >>> bool(c.incentive_compatible), bool(0.0 < float(c.gap) < 1e-3)
        (True, True)
    """
    return _broadcast_map(_linear_contract_core, econ, a, gaussian=gaussian, check_grid=check_grid)


def _two_action_core(econ: Economy, a_high: Array, a_low: Array, *, num_cutoffs: int) -> BinaryContract:
    num_samples = econ.num_samples
    cutoffs = _cutoff_candidates(jnp.ones(()), num_samples, num_samples, num_cutoffs)
    phis = monitor_phi(econ.monitor, jnp.stack([a_high, a_low]))
    fail_high, fail_low = _fail_probability(cutoffs[None, :], num_samples, phis[:, None])
    # With two actions the only deviation is a_low: IC binds, D (P_k(a_hi) - P_k(a_lo)) = c(a_hi) - c(a_lo).
    bonus = (effort_cost(a_high, econ) - effort_cost(a_low, econ)) / (fail_low - fail_high)
    gap = _binary_gap(effort_cost(a_high, econ) + econ.outside_utility, bonus, fail_high, econ.risk_aversion)
    gap = jnp.where(
        (fail_low > fail_high) & _binary_feasible(econ, a_high, bonus, fail_high, gap), gap, jnp.inf
    )
    chosen = jnp.argmin(gap)
    return _assemble_binary(
        econ,
        a_high,
        cutoffs[chosen],
        bonus[chosen],
        fail_high[chosen],
        gap[chosen],
        jnp.isfinite(gap[chosen]),
    )


@float64
def binary_contract_two_actions(
    econ: Economy, a_high: ArrayLike, a_low: ArrayLike, *, num_cutoffs: int = 512
) -> BinaryContract:
    """Optimal binary contract when the annotator can only choose ``a_low`` or ``a_high``.

    The discrete-action contrast (Frick, Iijima & Ishii): a lenient cutoff separates the two
    actions with a failure probability exp(-Θ(n)), so the gap decays exponentially in ``n``.
    Cutoffs span [1, n] (exhaustively when ``n <= num_cutoffs``).
    """
    return _broadcast_map(_two_action_core, econ, a_high, a_low, num_cutoffs=num_cutoffs)


@float64
def second_best(
    econ: Economy, kind: str, *, num_targets: int = 9, num_zooms: int = 5, **options: Any
) -> SecondBest:
    """Second best within a contract class: the best target action and its contract's value.

    A grid of ``num_targets`` actions on (0, 1] is refined ``num_zooms`` times around the best
    feasible (globally IC, limited-liability) target; each zoom shrinks the spacing by
    ``(num_targets - 1) / 2``, and the value is assumed unimodal in the target at that resolution.
    Zero effort at the fixed wage ``h(u0)`` is always available.

    Args:
        econ: the `Economy` (any leaf may be an array, e.g. ``num_samples`` for a gap curve).
        kind: ``"binary"`` or ``"linear"``.
        num_targets: grid size per round.
        num_zooms: refinement rounds.
        **options: passed to `binary_contract` / `linear_contract` (e.g. ``gaussian=True``).

    Returns:
        `SecondBest` with the broadcast shape of the economy's leaves.
    """
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r} is unknown: choose one of {', '.join(KINDS)}")
    if num_targets < 3 or num_zooms < 0:
        raise ValueError(f"need num_targets >= 3 and num_zooms >= 0, got {num_targets} and {num_zooms}")
    solve = binary_contract if kind == "binary" else linear_contract
    allowed = {
        "binary": ("num_cutoffs", "screen_grid", "check_grid", "num_checked"),
        "linear": ("gaussian", "check_grid"),
    }
    unknown = set(options) - set(allowed[kind])
    if unknown:
        raise ValueError(
            f"unknown options {sorted(unknown)} for kind={kind!r}: choose from {sorted(allowed[kind])}"
        )
    first = first_best(econ)
    shape = np.shape(first.value)
    along_targets = jax.tree_util.tree_map(lambda leaf: np.asarray(leaf, dtype=np.float64)[..., None], econ)
    low, high = np.full(shape, 1.0 / num_targets), np.ones(shape)
    for _ in range(num_zooms + 1):
        targets = low[..., None] + (high - low)[..., None] * np.linspace(0.0, 1.0, num_targets)
        contracts = solve(along_targets, targets, **options)
        cost = np.asarray(contracts.cost)
        feasible = np.asarray(contracts.incentive_compatible) & np.isfinite(cost)
        values = np.where(feasible, np.asarray(along_targets.revenue_per_action) * targets - cost, -np.inf)
        best = np.argmax(values, axis=-1)[..., None]
        action, value = (
            np.take_along_axis(targets, best, -1)[..., 0],
            np.take_along_axis(values, best, -1)[..., 0],
        )
        spacing = (high - low) / (num_targets - 1)
        low, high = np.maximum(action - spacing, 1e-6), np.minimum(action + spacing, 1.0)
    idle_value = -np.asarray(
        inverse_utility(np.asarray(econ.outside_utility), np.asarray(econ.risk_aversion))
    )
    idle = np.broadcast_to(idle_value, shape) >= value
    chosen = np.where(idle, idle_value, value)
    first_value = np.asarray(first.value)
    return SecondBest(
        jnp.asarray(np.where(idle, 0.0, action)),
        jnp.asarray(chosen),
        jnp.asarray(first_value - chosen),
        first.value,
    )


def gap_curve(econ: Economy, kind: str, num_samples: ArrayLike, **options: Any) -> Array:
    """Gap to the first best for each ``n`` in ``num_samples`` (vmapped over ``n``)."""
    ns = np.asarray(num_samples, dtype=np.float64)
    if ns.ndim != 1 or np.any(ns < 1) or np.any(ns != np.round(ns)):
        raise ValueError("num_samples must be a 1-D list of positive integers (monitored units)")
    return second_best(econ._replace(num_samples=ns), kind, **options).gap


def fit_rate(num_samples: ArrayLike, gaps: ArrayLike, *, log_correction: bool = False) -> RateFit:
    """Slope of ``log gap`` on ``log n`` (ordinary least squares, t-based 95% interval).

    Args:
        num_samples: ``n`` values, at least 3.
        gaps: positive gaps.
        log_correction: regress ``log(gap * sqrt(log n))`` instead, which removes the
            ``sqrt(log n)`` of the binary rate ``1 / sqrt(n log n)`` so that its slope is -1/2.
    """
    log_n = np.log(np.asarray(num_samples, dtype=np.float64))
    gaps = np.asarray(gaps, dtype=np.float64)
    if log_n.shape != gaps.shape or log_n.ndim != 1 or log_n.size < 3:
        raise ValueError("num_samples and gaps must be 1-D arrays of the same length (at least 3)")
    if np.any(~np.isfinite(gaps)) or np.any(gaps <= 0.0):
        raise ValueError("gaps must be positive and finite to fit a rate on log-log axes")
    response = np.log(gaps) + (0.5 * np.log(log_n) if log_correction else 0.0)
    design = np.column_stack([np.ones_like(log_n), log_n])
    coefficients, *_ = np.linalg.lstsq(design, response, rcond=None)
    residual_variance = np.sum((response - design @ coefficients) ** 2) / (log_n.size - 2)
    stderr = float(np.sqrt(residual_variance / np.sum((log_n - log_n.mean()) ** 2)))
    quantile = float(scipy.stats.t.ppf(0.975, log_n.size - 2))
    slope = float(coefficients[1])
    return RateFit(
        slope, float(coefficients[0]), stderr, slope - quantile * stderr, slope + quantile * stderr
    )


def contract_wages(contract: BinaryContract | LinearContract, num_samples: int) -> np.ndarray:
    """Wage schedule ``w_K``, ``K = 0..n`` (float64 NumPy) of one unbatched contract, for `best_response`."""
    successes = np.arange(num_samples + 1, dtype=np.float64)
    if isinstance(contract, BinaryContract):
        return np.where(
            successes >= float(contract.cutoff), float(contract.high_wage), float(contract.low_wage)
        )
    return float(contract.intercept) + float(contract.slope) * successes / num_samples
