"""Monitoring an annotator's effort: self-consistency, expert agreement, comparison mode.

The questions come from Liu, Wang, Ma & Li, "How Humans Help LLMs: Assessing and Incentivizing
Human Preference Annotators" (arXiv 2502.06387): the paper compares self-consistency (SC) with
expert-based (EX) monitoring and gives the sample complexity of both. The formulas below are
**the jaxpref model** (our reconstruction, see docs/contracts.md), not the paper's
notation:

- action ``a`` in [0, 1]: with probability ``a`` a label is given carefully, else by a coin flip
  (the same object as the attentiveness eta of docs/model.md);
- a monitoring unit gives a Bernoulli score with success probability ``phi(a)``; over ``n``
  units the number of successes ``K ~ Binomial(n, phi(a))`` is sufficient;
- SC (hidden duplicate, score = the two labels agree): ``phi = 1/2 + 2 a^2 m2`` with
  ``m2 = E[delta^2]`` the annotator's own decisiveness;
- EX (score = agrees with an expert): ``phi = 1/2 + 2 a rho`` with ``rho = E[delta delta_E]`` the
  taste alignment of annotator and expert;
- comparison mode (label 1 = prefers the stronger model A, docs/model.md) is EX with an "expert" who
  always says A: ``phi = 1/2 + a (mu - 1/2)``.

All three are ``phi(a) = 1/2 + scale * a**power``, so a monitor is the pytree `Monitor(scale,
power)` and everything here broadcasts (or vmaps) over annotators.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import ndtri
from jaxtyping import Array, ArrayLike, Float

from jaxpref.contracts._float64 import as_float64, float64

__all__ = [
    "Monitor",
    "sc_monitor",
    "ex_monitor",
    "comparison_monitor",
    "monitor_phi",
    "phi_sc",
    "phi_ex",
    "phi_comparison",
    "fisher_bernoulli",
    "monitor_fisher",
    "AnnotationSample",
    "simulate_annotators",
    "sc_scores",
    "ex_scores",
    "estimate_action",
    "sample_complexity",
    "sc_beats_ex",
    "crossover_action",
    "sc_loglik_grid",
]


class Monitor(NamedTuple):
    """A monitoring method: a unit succeeds with probability ``1/2 + scale * a**power``.

    Attributes:
        scale: ``2 m2`` (self-consistency), ``2 rho`` (expert), ``mu - 1/2`` (comparison mode).
        power: 2 for self-consistency, 1 for expert agreement and comparison mode.
    """

    scale: ArrayLike
    power: ArrayLike


def _check_range(value: float, name: str, low: float, high: float, meaning: str) -> float:
    value = float(value)
    if not low <= value <= high:
        raise ValueError(f"{name}={value!r} must lie in [{low}, {high}] ({meaning})")
    return value


def sc_monitor(m2: float) -> Monitor:
    """Self-consistency with hidden duplicates, for an annotator with decisiveness ``m2``.

    Args:
        m2: ``E_i[(p_ij - 1/2)^2]`` in [0, 1/4], how decided the annotator's own tastes are.

    Example:
        >>> sc_monitor(0.08)
        Monitor(scale=0.16, power=2.0)
    """
    return Monitor(2.0 * _check_range(m2, "m2", 0.0, 0.25, "the mean squared preference margin"), 2.0)


def ex_monitor(rho: float) -> Monitor:
    """Agreement with an expert whose tastes have alignment ``rho`` with the annotator's.

    Args:
        rho: ``E_i[delta_ij delta_i^E]`` in [-1/4, 1/4]; 0 means the expert carries no signal.
    """
    return Monitor(2.0 * _check_range(rho, "rho", -0.25, 0.25, "the annotator-expert taste alignment"), 1.0)


def comparison_monitor(mu: float) -> Monitor:
    """Comparison-mode labels (1 = preferred the stronger model A) with gap ``mu``.

    Args:
        mu: probability in [0, 1] that a careful user prefers model A (docs/model.md).
    """
    return Monitor(_check_range(mu, "mu", 0.0, 1.0, "P(careful user prefers model A)") - 0.5, 1.0)


def monitor_phi(monitor: Monitor, a: ArrayLike) -> Array:
    """Success probability of one monitoring unit at action ``a`` (broadcasts)."""
    return 0.5 + monitor.scale * jnp.power(a, monitor.power)


def phi_sc(a: ArrayLike, m2: ArrayLike) -> Array:
    """Self-consistency: ``1/2 + 2 a^2 m2`` (the jaxpref model)."""
    return monitor_phi(Monitor(2.0 * jnp.asarray(m2), 2.0), a)


def phi_ex(a: ArrayLike, rho: ArrayLike) -> Array:
    """Expert agreement: ``1/2 + 2 a rho`` (the jaxpref model)."""
    return monitor_phi(Monitor(2.0 * jnp.asarray(rho), 1.0), a)


def phi_comparison(a: ArrayLike, mu: ArrayLike) -> Array:
    """Comparison mode: ``P(label = 1) = 1/2 + a (mu - 1/2)`` (docs/model.md)."""
    return monitor_phi(Monitor(jnp.asarray(mu) - 0.5, 1.0), a)


def fisher_bernoulli(phi_fn: Callable[[Array], Array], a: ArrayLike) -> Array:
    """Fisher information about ``a`` in one Bernoulli(phi(a)) unit, by autodiff.

    ``I(a) = phi'(a)^2 / (phi(a) (1 - phi(a)))``; ``phi_fn`` maps a scalar to a scalar and the
    result broadcasts over ``a``.

    Example:
        >>> round(float(fisher_bernoulli(lambda a: phi_ex(a, 0.2), 0.5)), 6)
        0.761905
    """
    derivative = jnp.vectorize(jax.grad(phi_fn))(jnp.asarray(a, dtype=float))
    phi = phi_fn(a)
    return derivative**2 / (phi * (1.0 - phi))


@float64
def monitor_fisher(monitor: Monitor, a: ArrayLike) -> Float[Array, "..."]:
    """Fisher information per unit of a `Monitor`, broadcast over monitors and actions."""
    scale, power, a = jnp.broadcast_arrays(
        *(jnp.asarray(x, dtype=jnp.float64) for x in (monitor.scale, monitor.power, a))
    )
    one = jnp.vectorize(lambda s, p, x: fisher_bernoulli(lambda b: monitor_phi(Monitor(s, p), b), x))
    return one(scale, power, a)


class AnnotationSample(NamedTuple):
    """Simulated labels for ``num_annotators`` annotators on the same ``num_items`` items.

    Attributes:
        labels: ``(num_annotators, num_items)`` first labels (1 = preferred response A).
        duplicate_labels: ``(num_annotators, num_items)`` labels of the hidden duplicates.
        expert_labels: ``(num_items,)`` one careful expert label per item.
    """

    labels: Array
    duplicate_labels: Array
    expert_labels: Array


def _careful_or_coin(key: Array, a: Array, p: Array) -> Array:
    careful_key, careful_label_key, coin_key = jax.random.split(key, 3)
    careful = jax.random.bernoulli(careful_key, a[:, None], p.shape)
    careful_label = jax.random.bernoulli(careful_label_key, p)
    coin = jax.random.bernoulli(coin_key, 0.5, p.shape)
    return jnp.where(careful, careful_label, coin).astype(jnp.int32)


@float64
def simulate_annotators(
    key: Array,
    a: Float[Array, " num_annotators"],
    p: Float[Array, "num_annotators num_items"],
    expert_p: Float[Array, " num_items"] | None = None,
) -> AnnotationSample:
    """Draws labels, hidden-duplicate labels and expert labels (the jaxpref model).

    Each label is careful with probability ``a_j`` (then 1 w.p. ``p_ij``, the annotator's own
    taste) and a fair coin otherwise; the duplicate is an independent second draw; the expert is
    always careful with tastes ``expert_p`` (default: 1/2, an uninformative expert).

    Args:
        key: PRNG key.
        a: actions, shape ``(num_annotators,)``.
        p: per-annotator preference probabilities, shape ``(num_annotators, num_items)``.
        expert_p: the expert's preference probabilities, shape ``(num_items,)``.

    Returns:
        `AnnotationSample` with int32 labels.
    """
    a, p = as_float64((a, p))
    if a.ndim != 1 or p.ndim != 2 or p.shape[0] != a.shape[0]:
        raise ValueError(
            "a must have shape (num_annotators,) and p (num_annotators, num_items);"
            f" got {a.shape} and {p.shape}"
        )
    expert_p = jnp.full(p.shape[1], 0.5) if expert_p is None else jnp.asarray(expert_p, dtype=jnp.float64)
    if expert_p.shape != (p.shape[1],):
        raise ValueError(f"expert_p must have shape (num_items,) = ({p.shape[1]},); got {expert_p.shape}")
    first_key, duplicate_key, expert_key = jax.random.split(key, 3)
    return AnnotationSample(
        labels=_careful_or_coin(first_key, a, p),
        duplicate_labels=_careful_or_coin(duplicate_key, a, p),
        expert_labels=jax.random.bernoulli(expert_key, expert_p).astype(jnp.int32),
    )


def sc_scores(labels: Array, duplicate_labels: Array) -> Array:
    """Self-consistency scores ``1{y = y'}``, shape ``(num_annotators, num_units)``."""
    return (jnp.asarray(labels) == jnp.asarray(duplicate_labels)).astype(jnp.int32)


def ex_scores(labels: Array, expert_labels: Array) -> Array:
    """Expert-agreement scores ``1{y = e}``; ``expert_labels`` broadcast over annotators."""
    return (jnp.asarray(labels) == jnp.asarray(expert_labels)[None, :]).astype(jnp.int32)


@float64
def estimate_action(num_successes: ArrayLike, num_units: ArrayLike, monitor: Monitor) -> Array:
    """Moment (= maximum likelihood) estimate ``phi^{-1}(K / n)`` clipped to [0, 1].

    Args:
        num_successes: K, any shape.
        num_units: n, broadcast against K.
        monitor: the `Monitor` that produced the scores.

    Example:
        >>> round(float(estimate_action(60, 100, ex_monitor(0.1))), 12)
        0.5
    """
    successes, units, scale, power = as_float64((num_successes, num_units, monitor.scale, monitor.power))
    excess = jnp.maximum(successes / units - 0.5, 0.0) / scale
    return jnp.clip(jnp.power(excess, 1.0 / power), 0.0, 1.0)


@float64
def sample_complexity(a: ArrayLike, monitor: Monitor, eps: float, delta: float) -> Array:
    """Units needed for ``|a_hat - a| <= eps`` with probability ``1 - delta`` (Cramér–Rao).

    ``n(eps, delta) = ceil(z_{1 - delta/2}^2 / (I(a) eps^2))``; infinite where ``I(a) = 0``.
    """
    if not 0.0 < eps:
        raise ValueError(f"eps={eps!r} must be positive (the tolerated estimation error)")
    if not 0.0 < delta < 1.0:
        raise ValueError(f"delta={delta!r} must lie in (0, 1) (the allowed failure probability)")
    z = ndtri(1.0 - delta / 2.0)
    return jnp.ceil(z**2 / (monitor_fisher(monitor, a) * eps**2))


@float64
def sc_beats_ex(a: ArrayLike, m2: ArrayLike, rho: ArrayLike) -> Array:
    """Whether a self-consistency unit carries more Fisher information than an expert unit."""
    sc = monitor_fisher(Monitor(2.0 * jnp.asarray(m2, dtype=jnp.float64), 2.0), a)
    ex = monitor_fisher(Monitor(2.0 * jnp.asarray(rho, dtype=jnp.float64), 1.0), a)
    return sc > ex


@float64
def crossover_action(m2: ArrayLike, rho: ArrayLike) -> Array:
    """Lowest action where ``I_SC = I_EX``; SC wins just above it (NaN when no crossing in [0, 1]).

    ``I_SC > I_EX`` iff ``48 m2^2 rho^2 A^2 - 4 m2^2 A + rho^2 < 0`` with ``A = a^2``; the lower
    root, written without cancellation, is ``2 rho^2 / (4 m2^2 + sqrt(16 m2^4 - 192 m2^2 rho^4))``
    (about ``|rho| / (2 m2)``).
    """
    m2, rho = as_float64((m2, rho))
    discriminant = 16.0 * m2**4 - 192.0 * m2**2 * rho**4
    root = 2.0 * rho**2 / (4.0 * m2**2 + jnp.sqrt(jnp.maximum(discriminant, 0.0)))
    action = jnp.sqrt(root)
    return jnp.where((discriminant >= 0.0) & (m2 > 0.0) & (action <= 1.0), action, jnp.nan)


@float64
def sc_loglik_grid(
    eta_grid: Float[Array, " num_grid"],
    consistent: Float[Array, " num_users"],
    pairs: Float[Array, " num_users"],
    mu: ArrayLike,
) -> Float[Array, "num_users num_grid"]:
    """Log-likelihood of duplicate-pair agreement counts on the EM's eta grid.

    With shared tastes (docs/model.md, p_i = mu) self-consistency is SC with ``m2 = (mu - 1/2)^2``:
    ``c log(1/2 + 2 eta^2 (mu - 1/2)^2) + (d - c) log(1/2 - 2 eta^2 (mu - 1/2)^2)`` for ``c``
    consistent pairs out of ``d``. Add it to the EM's ``L[j, g]`` only for duplicates whose labels
    are not already counted in ``k_j`` (e.g. when the direction is unknown), never both.

    Args:
        eta_grid: nodes, shape ``(num_grid,)``.
        consistent: consistent pairs per user, shape ``(num_users,)``.
        pairs: duplicate pairs per user, shape ``(num_users,)``.
        mu: the gap.

    Returns:
        ``(num_users, num_grid)`` log-likelihood terms.
    """
    eta_grid, consistent, pairs, mu = as_float64((eta_grid, consistent, pairs, mu))
    phi = phi_sc(eta_grid, (mu - 0.5) ** 2)
    return (
        consistent[:, None] * jnp.log(phi)[None, :] + (pairs - consistent)[:, None] * jnp.log1p(-phi)[None, :]
    )
