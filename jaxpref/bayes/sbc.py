"""Simulation-based calibration (Talts et al. 2018) of every parameter of the marginalised model.

Each replication draws all parameters from the model's priors (`jaxpref.bayes.model.prior_draws`:
mu per group from its truncated Beta, the weights, Beta shapes or free support of P_eta),
simulates every user's counts from them (`replicate_counts`, the model's own generative
process), and runs NUTS on the simulated data; all replications run as one `jax.vmap` over
NumPyro's functional NUTS kernel, so after compiling each costs a fraction of a second. If
inference is calibrated, the rank of each true parameter among its posterior draws is uniform.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jaxtyping import Array

from jaxpref.bayes.model import BayesConfig, Design, attentiveness_model, prior_draws, replicate_counts
from jaxpref.core import em
from jaxpref.core.families import REGISTRY, make_family
from jaxpref.errors import DataError
from jaxpref.io.data import CountStats

__all__ = ["SBCResult", "simulation_based_calibration", "plot_ranks"]


class SBCResult(NamedTuple):
    """Simulation-based calibration of every scalar parameter.

    Attributes:
        table: one row per parameter (``mu[0]``, ``weight_hi``, ``alpha``, ...): ``chi2_pvalue``
            (chi-square test of uniform ranks over ``num_bins`` bins) and ``coverage`` (share of
            replications whose central ``level`` interval holds the truth).
        truths: ``{parameter: (num_replications,)}`` the values drawn from the prior.
        ranks: ``{parameter: (num_replications,)}`` posterior draws below the truth, in ``[0, num_draws]``.
        num_draws: posterior draws per replication (after thinning).
        num_bins: bins of the chi-square test.
        num_divergences: divergent transitions after warm-up, over all replications.
    """

    table: pd.DataFrame
    truths: dict[str, np.ndarray]
    ranks: dict[str, np.ndarray]
    num_draws: int
    num_bins: int
    num_divergences: int


def _scalar_columns(values: dict[str, np.ndarray], leading: int) -> dict[str, np.ndarray]:
    """``{site: (..., k)}`` -> ``{site[i]: (...)}`` (scalar sites keep their name)."""
    columns = {}
    for name, value in values.items():
        flat = value.reshape(value.shape[:leading] + (-1,))
        if value.ndim == leading:
            columns[name] = flat[..., 0]
        else:
            columns.update({f"{name}[{index}]": flat[..., index] for index in range(flat.shape[-1])})
    return columns


def simulation_based_calibration(
    key: Array,
    num_replications: int,
    *,
    family: str = "two_point",
    support: tuple[float, float] | None = (0.1, 0.9),
    num_groups: int = 1,
    mu_prior: tuple[float, float] = (8.0, 2.0),
    num_grid: int = 16,
    num_users: int = 50,
    labels_per_user: int = 10,
    num_warmup: int = 300,
    num_samples: int = 300,
    thin: int = 3,
    num_bins: int = 10,
    level: float = 0.9,
) -> SBCResult:
    """SBC of the marginalised model under NUTS, for any family, support and number of groups.

    Args:
        key: PRNG key.
        num_replications: simulated data sets.
        family: ``point``, ``two_point``, ``beta`` or ``npmle``.
        support: fixed two_point support, or None to sample it (two_point only).
        num_groups: groups, one mu each; every user gives ``labels_per_user`` labels in each.
        mu_prior: Beta(a, b) prior of each mu on (1/2, 1).
        num_grid: grid size of beta and npmle.
        num_users, labels_per_user: size of each data set.
        num_warmup, num_samples, thin: NUTS settings; ``num_samples // thin`` draws are ranked.
        num_bins: bins of the chi-square test of uniform ranks.
        level: level of the central credible interval whose coverage is counted.

    Returns:
        An `SBCResult`.
    """
    from numpyro.infer.hmc import hmc
    from numpyro.infer.util import initialize_model
    from scipy import stats as scipy_stats

    spec = make_family(family, num_grid, support if family in REGISTRY and REGISTRY[family].takes_support else None)
    config = BayesConfig(em.EMConfig(family=spec, mu_mode="prior", mu_prior=tuple(float(v) for v in mu_prior)))
    model = functools.partial(attentiveness_model, config=config)
    truth_key, data_key, chain_key, init_key = jax.random.split(key, 4)
    num_labels = jnp.full((num_users, num_groups), float(labels_per_user))
    ones = jnp.ones((num_users,))
    mu_placeholder = jnp.full((num_groups,), 0.75)
    placeholder = CountStats(jnp.zeros_like(num_labels), num_labels, ones)
    truths = prior_draws(truth_key, model, (placeholder, mu_placeholder), config, num_replications)
    seed = int(jax.random.randint(data_key, (), 0, 2**31 - 1))
    num_pref_a = replicate_counts(seed, config, truths, Design(num_labels), mu_placeholder)[0]
    # One row per user (no compression): every replication has the same shapes, so it vmaps.
    stats = CountStats(
        jnp.asarray(num_pref_a, jnp.float32),
        jnp.broadcast_to(num_labels, num_pref_a.shape),
        jnp.broadcast_to(ones, num_pref_a.shape[:2]),
    )
    first_stats = jax.tree.map(lambda leaf: leaf[0], stats)
    setup = initialize_model(init_key, model, model_args=(first_stats, mu_placeholder), dynamic_args=True)
    # Every chain starts at the centre of the unconstrained space (e.g. mu = 3/4, weight_hi = 1/2).
    start = jax.tree.map(jnp.zeros_like, setup.param_info.z)
    init_kernel, sample_kernel = hmc(potential_fn_gen=setup.potential_fn, algo="NUTS")

    def run_chain(chain_key, data_stats):
        model_args = (data_stats, mu_placeholder)
        state = init_kernel(start, num_warmup=num_warmup, model_args=model_args, rng_key=chain_key)

        def transition(state, _):
            state = sample_kernel(state, model_args=model_args)
            return state, (state.z, state.diverging)

        _, (draws, diverging) = jax.lax.scan(transition, state, None, length=num_warmup + num_samples)
        draws = jax.tree.map(lambda leaf: leaf[num_warmup::thin], draws)
        return jax.vmap(setup.postprocess_fn(*model_args))(draws), jnp.sum(diverging[num_warmup:])

    chain_keys = jax.random.split(chain_key, num_replications)
    draws, divergences = jax.jit(jax.vmap(run_chain))(chain_keys, stats)
    hidden = {"eta_gap"}  # eta_hi, its deterministic image, is calibrated instead
    draws = _scalar_columns({name: np.asarray(value, np.float64) for name, value in draws.items()
                             if name not in hidden}, 2)
    truths = _scalar_columns({name: np.asarray(value[0], np.float64) for name, value in truths.items()
                              if name not in hidden}, 1)
    some = next(iter(draws.values()))
    # num_draws + 1 possible ranks must split evenly into the chi-square bins.
    num_draws = (some.shape[1] + 1) // num_bins * num_bins - 1
    if num_draws < num_bins:
        raise DataError(f"num_samples // thin = {some.shape[1]} draws is too few for num_bins={num_bins}")
    rows, ranks = [], {}
    for name, values in draws.items():
        values, truth = values[:, :num_draws], truths[name]
        ranks[name] = np.sum(values < truth[:, None], axis=1)
        lower, upper = np.quantile(values, [(1.0 - level) / 2, (1.0 + level) / 2], axis=1)
        observed = np.bincount(ranks[name] * num_bins // (num_draws + 1), minlength=num_bins)
        rows.append({"parameter": name, "chi2_pvalue": float(scipy_stats.chisquare(observed).pvalue),
                     "coverage": float(np.mean((lower <= truth) & (truth <= upper)))})
    return SBCResult(pd.DataFrame(rows), truths, ranks, num_draws, num_bins, int(np.sum(divergences)))


def plot_ranks(results: dict[str, SBCResult]) -> Any:
    """Rank histograms, one row per SBC run (by name) and one panel per parameter (at most 4).

    The dotted line is the expected count per bin under uniform ranks.

    Returns:
        The matplotlib figure.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = min(4, max(len(result.ranks) for result in results.values()))
    figure, axes = plt.subplots(len(results), width, figsize=(3 * width, 2.4 * len(results)), squeeze=False)
    for row, (label, result) in enumerate(results.items()):
        for column in range(width):
            axis = axes[row, column]
            if column >= len(result.ranks):
                axis.axis("off")
                continue
            name = list(result.ranks)[column]
            counts = np.bincount(result.ranks[name] * result.num_bins // (result.num_draws + 1),
                                 minlength=result.num_bins)
            axis.bar(np.arange(result.num_bins), counts, width=0.9)
            axis.axhline(len(result.ranks[name]) / result.num_bins, color="black", linestyle=":")
            p_value = result.table.set_index("parameter").loc[name, "chi2_pvalue"]
            axis.set_title(f"{label}: {name}\nchi2 p = {p_value:.2f}", fontsize="small")
            axis.set_xticks([])
    figure.tight_layout()
    return figure
