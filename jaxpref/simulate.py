"""The generative model of docs/model.md, with explicit PRNG keys.

    eta_j ~ P_eta;   z_i ~ Bernoulli(eta_j);   y_i ~ Bernoulli(p_i) if z_i else Bernoulli(1/2)

Two entry points:

- `simulate`: label-level data as a DataFrame (``user, label[, p][, group]``) with the true
  eta per user and the true attentiveness z per label; labels per user fixed or
  ``1 + Poisson(n - 1)``; one gap, one gap per group, or per-label p from a reward gap.
- `simulate_counts`: the sufficient statistics (k_j, n_j) directly, jittable and vmappable
  over keys for large simulation studies (`replicate`).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jaxtyping import Array

from jaxpref.core.families import family_class
from jaxpref.core.families.base import EtaDistribution
from jaxpref.errors import DataError
from jaxpref.checks import validate_mu

__all__ = ["EtaDistribution", "eta_distribution", "sample_eta", "Simulation", "simulate", "simulate_counts", "replicate"]


#: Options of the true P_eta (each family's `truth` takes its own).
TRUTH_OPTIONS = ("eta", "support", "weight_hi", "weights", "alpha", "beta")


def eta_distribution(family: str, **options: Any) -> EtaDistribution:
    """Validates and builds the true P_eta of a family (`jaxpref.core.families.base.Family.truth`).

    Args:
        family: ``point`` (everyone has ``eta``), ``two_point`` (``support`` = (lo, hi), a share
            ``weight_hi`` at hi), ``beta`` (Beta(``alpha``, ``beta``)), ``npmle`` (nodes
            ``support`` with probabilities ``weights``, equal when omitted).
        **options: the family's options; those of other families are ignored.
    """
    unknown = sorted(set(options) - set(TRUTH_OPTIONS))
    if unknown:
        raise DataError(f"unknown option(s) {', '.join(unknown)} for the true P_eta: use {', '.join(TRUTH_OPTIONS)}")
    return family_class(family).truth(**options)


@functools.partial(jax.jit, static_argnames=("num_users", "distribution"))
def sample_eta(key: Array, num_users: int, distribution: EtaDistribution) -> Array:
    """``(num_users,)`` draws of eta from ``distribution``."""
    if not distribution.support:
        return jax.random.beta(key, distribution.alpha, distribution.beta, (num_users,))
    nodes = jnp.asarray(distribution.support)
    index = jax.random.choice(key, nodes.shape[0], (num_users,), p=jnp.asarray(distribution.weights))
    return nodes[index]


@functools.partial(jax.jit, static_argnames=("num_users", "distribution"))
def simulate_counts(
    key: Array, num_users: int, labels_per_user: Array, mu: Array, distribution: EtaDistribution
) -> tuple[Array, Array, Array]:
    """Sufficient statistics of one gap, simulated directly: ``k_j ~ Binomial(n_j, q(eta_j))``.

    Args:
        key: PRNG key.
        num_users: m (static).
        labels_per_user: scalar n or ``(num_users,)`` n_j.
        mu: the gap in (1/2, 1).
        distribution: the true P_eta.

    Returns:
        ``(num_pref_a, num_labels, eta)``, each ``(num_users,)``.
    """
    eta_key, label_key = jax.random.split(key)
    eta = sample_eta(eta_key, num_users, distribution)
    num_labels = jnp.broadcast_to(jnp.asarray(labels_per_user, jnp.float32), (num_users,))
    num_pref_a = jax.random.binomial(label_key, num_labels, 0.5 + eta * (mu - 0.5))
    return num_pref_a, num_labels, eta


def replicate(
    key: Array, num_replications: int, num_users: int, labels_per_user: int, mu: float, distribution: EtaDistribution
) -> tuple[Array, Array, Array]:
    """`simulate_counts` for ``num_replications`` independent keys in one vmapped call.

    Returns:
        ``(num_pref_a, num_labels, eta)``, each ``(num_replications, num_users)``.
    """
    keys = jax.random.split(key, num_replications)
    return jax.vmap(simulate_counts, in_axes=(0, None, None, None, None))(
        keys, num_users, jnp.asarray(labels_per_user), jnp.asarray(mu), distribution
    )


@jax.jit
def _sample_labels(key: Array, eta_of_label: Array, p: Array) -> tuple[Array, Array]:
    attentive_key, label_key = jax.random.split(key)
    attentive = jax.random.bernoulli(attentive_key, eta_of_label)
    prob_a = jnp.where(attentive, p, 0.5)
    return jax.random.bernoulli(label_key, prob_a), attentive


class Simulation(NamedTuple):
    """Simulated comparison-mode data with the truth.

    Attributes:
        frame: labels, columns ``user, label`` plus ``p`` (per-label p) or ``group``.
        eta: ``(num_users,)`` true attentiveness of users ``0 .. num_users - 1``.
        attentive: ``(num_labels,)`` true z per row of ``frame``.
        mu: the true gap (per group, or E[p] with per-label p).
    """

    frame: pd.DataFrame
    eta: np.ndarray
    attentive: np.ndarray
    mu: np.ndarray

    @property
    def truth(self) -> pd.DataFrame:
        """Per-user truth table ``user, eta``."""
        return pd.DataFrame({"user": np.arange(self.eta.shape[0]), "eta": self.eta})


def simulate(
    key: Array,
    num_users: int,
    labels_per_user: int,
    *,
    family: str = "two_point",
    mu: float | tuple[float, ...] = 0.74,
    label_count: str = "fixed",
    reward_gap: tuple[float, float] | None = None,
    **family_options,
) -> Simulation:
    """Simulates label-level data.

    Args:
        key: PRNG key (same key, same data).
        num_users: m users, with ids ``0 .. m - 1``.
        labels_per_user: n, or the mean of ``1 + Poisson(n - 1)`` when ``label_count="poisson"``.
        family: the true P_eta family; options (``eta``, ``support``, ``weight_hi``, ``weights``,
            ``alpha``, ``beta``) as in `eta_distribution`.
        mu: the gap; a tuple gives one gap per group (column ``group``, groups drawn uniformly).
        label_count: ``"fixed"`` or ``"poisson"``.
        reward_gap: ``(mean, sd)``: per-label ``p = sigmoid(r_A - r_B)`` with the reward gap
            ``r_A - r_B ~ Normal(mean, sd)`` (column ``p``; ``mu`` is ignored).

    Returns:
        A `Simulation`.

    Example:
        >>> sim = simulate(jax.random.key(0), 100, 10, family="beta", alpha=3, beta=5, mu=0.8)
        >>> sim.frame.shape, sim.eta.shape
        ((1000, 2), (100,))
    """
    if not isinstance(num_users, (int, np.integer)) or num_users < 1:
        raise DataError(f"num_users={num_users!r} must be an integer >= 1")
    if not isinstance(labels_per_user, (int, np.integer)) or labels_per_user < 1:
        raise DataError(f"labels_per_user={labels_per_user!r} must be an integer >= 1")
    if label_count not in ("fixed", "poisson"):
        raise DataError(f"label_count={label_count!r} must be 'fixed' or 'poisson'")
    distribution = eta_distribution(family, **family_options)
    eta_key, count_key, group_key, p_key, label_key = jax.random.split(key, 5)
    eta = np.asarray(sample_eta(eta_key, int(num_users), distribution), np.float64)
    if label_count == "fixed":
        counts = np.full(num_users, labels_per_user)
    else:
        counts = 1 + np.asarray(jax.random.poisson(count_key, labels_per_user - 1.0, (num_users,)))
    user = np.repeat(np.arange(num_users), counts)
    columns: dict[str, np.ndarray] = {"user": user}
    if reward_gap is not None:
        mean, sd = (float(v) for v in reward_gap)
        gap = mean + sd * np.asarray(jax.random.normal(p_key, (user.shape[0],)), np.float64)
        p = 1.0 / (1.0 + np.exp(-gap))
        true_mu = np.asarray([p.mean()])
    else:
        true_mu = validate_mu(mu)
        group = np.asarray(jax.random.randint(group_key, (user.shape[0],), 0, true_mu.shape[0]))
        p = true_mu[group]
    label, attentive = _sample_labels(label_key, jnp.asarray(eta[user], jnp.float32), jnp.asarray(p, jnp.float32))
    columns["label"] = np.asarray(label, np.int8)
    if reward_gap is not None:
        columns["p"] = p
    elif true_mu.shape[0] > 1:
        columns["group"] = group
    return Simulation(pd.DataFrame(columns), eta, np.asarray(attentive), true_mu)
