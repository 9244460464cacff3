"""Simulation studies at scale: R replications of (simulate, fit) in one jitted computation.

Each replication simulates m users with n labels each from a true P_eta and gap mu
(`jaxpref.simulate.simulate_counts`), compresses them exactly to n + 1 count rows
(`jaxpref.io.data.fixed_n_counts`) and fits EM (`jaxpref.core.driver.fit`). The
replications run under `jax.lax.map` with ``batch_size``: each batch is vmapped, batches run
one after another, so memory is that of ``batch_size`` replications whatever R is.

Example:
    >>> import jax
    >>> from jaxpref.core import em
    >>> from jaxpref.core.families import make_family
    >>> from jaxpref.simulate import eta_distribution
    >>> truth = eta_distribution("two_point", support=(0.1, 0.9), weight_hi=0.4)
    >>> config = em.EMConfig(make_family("two_point", support=(0.1, 0.9)), "known")
    >>> fits = replicate_fits(jax.random.key(0), 8, 2000, 20, 0.8, truth, config, batch_size=4)
    >>> fits.weights.shape, bool(abs(fits.weights[:, 1].mean() - 0.4) < 0.03)
    ((8, 2), True)
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from jaxpref.core import em
from jaxpref.core.driver import fit
from jaxpref.io.data import fixed_n_counts
from jaxpref.checks import validate_mu
from jaxpref.errors import DataError
from jaxpref.checks import METHODS
from jaxpref.simulate import EtaDistribution, simulate_counts

__all__ = ["StudyFits", "replicate_fits", "default_batch_size"]

#: Memory budget per batch of replications used by `default_batch_size`.
BATCH_BYTES = 1 << 30
#: Bytes held per simulated user inside one replication (eta, k, n, random bits; generous).
BYTES_PER_USER = 64


class StudyFits(NamedTuple):
    """Fitted parameters of R replications, NumPy arrays with a leading replication axis.

    Attributes:
        eta_grid: ``(R, G)`` nodes.
        weights: ``(R, G)`` node probabilities.
        beta_shape: ``(R, 2)`` Beta (alpha, beta) (meaningful for the beta family).
        mu: ``(R, 1)`` fitted (or known) gap (one group).
        objective: ``(R,)`` final objective.
        num_iter: ``(R,)`` iterations run.
        converged: ``(R,)`` whether the tolerance was met.
    """

    eta_grid: np.ndarray
    weights: np.ndarray
    beta_shape: np.ndarray
    mu: np.ndarray
    objective: np.ndarray
    num_iter: np.ndarray
    converged: np.ndarray


def default_batch_size(num_replications: int, num_users: int) -> int:
    """Replications per vmapped batch so a batch holds about `BATCH_BYTES` of simulated users."""
    return int(max(1, min(num_replications, BATCH_BYTES // (BYTES_PER_USER * num_users))))


@functools.partial(
    jax.jit, static_argnames=("num_replications", "num_users", "labels_per_user", "distribution", "config",
                              "method", "batch_size")
)
def _replicate_fits(key, mu, start_mu, num_replications, num_users, labels_per_user, distribution, config,
                    method, batch_size):
    initial = em.init(config, start_mu)

    def one(replication_key):
        num_pref_a, _, _ = simulate_counts(replication_key, num_users, jnp.asarray(labels_per_user), mu, distribution)
        out = fit(initial, fixed_n_counts(num_pref_a, labels_per_user), config, method)
        family = out.state.family
        return (family.eta_grid, jnp.exp(family.log_weights), family.beta_shape, out.state.mu, out.objective,
                out.num_iter, out.converged)

    return jax.lax.map(one, jax.random.split(key, num_replications), batch_size=batch_size)


def replicate_fits(
    key: Array,
    num_replications: int,
    num_users: int,
    labels_per_user: int,
    mu: float,
    distribution: EtaDistribution,
    config: em.EMConfig,
    *,
    method: str = "squarem",
    batch_size: int | None = None,
) -> StudyFits:
    """Simulates and fits ``num_replications`` data sets in one jitted computation.

    Args:
        key: PRNG key; replication r uses ``jax.random.split(key, R)[r]``.
        num_replications: R.
        num_users: m users per data set.
        labels_per_user: n labels per user.
        mu: the true gap in (1/2, 1); also the start (and the value) when ``config`` knows mu,
            otherwise EM starts from 0.75, never from the truth.
        distribution: the true P_eta (`jaxpref.simulate.eta_distribution`).
        config: the fitted model (one group, no per-label p).
        method: ``"squarem"`` or ``"em"``.
        batch_size: replications vmapped together; None picks `default_batch_size`. Results do
            not depend on it.

    Returns:
        `StudyFits`.
    """
    for value, name in ((num_replications, "num_replications"), (num_users, "num_users"),
                        (labels_per_user, "labels_per_user")):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise DataError(f"{name}={value!r} must be an integer >= 1")
    if method not in METHODS:
        raise DataError(f"method={method!r} must be one of {', '.join(METHODS)}")
    if config.mu_mode == "per_label":
        raise DataError("replicate_fits simulates one gap mu: use a config with mu_mode known, prior or free")
    gap = float(validate_mu(mu)[0])
    if batch_size is None:
        batch_size = default_batch_size(num_replications, num_users)
    elif not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise DataError(f"batch_size={batch_size!r} must be an integer >= 1")
    dtype = jnp.result_type(float)
    start_mu = jnp.asarray([gap if config.mu_mode == "known" else 0.75], dtype)
    fits = _replicate_fits(key, jnp.asarray(gap, dtype), start_mu, int(num_replications), int(num_users),
                           int(labels_per_user), distribution, config, method, int(min(batch_size, num_replications)))
    return StudyFits(*jax.device_get(fits))
