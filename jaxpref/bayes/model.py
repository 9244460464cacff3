"""The Bayesian variant in NumPyro: the same likelihood as EM, with priors and full posteriors.

One form of the model (docs/bayes.md): eta is summed out on the family's grid, exactly as in
EM (`jaxpref.core.likelihood.marginal_loglik` on the compressed `CountStats`), so NUTS only sees
the few parameters of P_eta and mu. Per-user posteriors are exact Rao-Blackwell averages of
the per-draw node posteriors. (An explicit form with one sampled ``eta_j ~ Beta(alpha, beta)``
per user was removed: at its defaults NUTS gave r-hat 1.06-1.11, ESS under 100 and divergences,
its non-centred inverse-CDF form needs a ``betaincinv`` NumPyro lacks without
TensorFlow Probability, and the marginal form's per-user posteriors are exact.)

Priors: mu as in EM (known; Beta(a, b) restricted to (1/2, 1), the density EM's MAP uses; or
flat on (1/2, 1) for ``mu="free"``), one mu per group; point ``eta ~ U(0, 1)``; two_point
``weight_hi ~ U(0, 1)`` and, with a free support, ``eta_lo ~ U(0, 1)``,
``eta_hi = eta_lo + (1 - eta_lo) gap`` with ``gap ~ U(0, 1)``; beta
``alpha, beta ~ LogNormal(1, 1.5)``; npmle grid weights ``~ Dirichlet(concentration)``.
Uniform priors make the posterior mode of point/two_point coincide with EM's MAP.

NumPyro's ``log_likelihood`` does not marginalise discrete latents (numpyro#744), so the
pointwise per-user marginal log-likelihood ``l_j`` that arviz uses for LOO/WAIC is computed
here from the posterior draws with the core `marginal_loglik`.

Example:
    >>> import jax
    >>> from jaxpref.simulate import simulate
    >>> sim = simulate(jax.random.key(0), 100, 10, family="two_point", support=(0.1, 0.9), mu=0.8)
    >>> fit = fit_bayes(sim.frame, family="two_point", support=(0.1, 0.9), mu=0.8,
    ...                 num_warmup=200, num_samples=200, num_chains=2)  # doctest: +SKIP
    >>> fit.summary.loc["weight_hi", ["mean", "sd", "r_hat"]]         # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
from jaxtyping import Array

from jaxpref.bayes import checks
from jaxpref.checks import check_positive, float_dtype
from jaxpref.options import FitOptions

from jaxpref.core import em
from jaxpref.io.data import (
    DataError,
    PreferenceData,
    count_stats,
    label_stats,
    load_preferences,
    user_counts,
)
from jaxpref.core.families import make_family
from jaxpref.core.likelihood import Stats, marginal_loglik

__all__ = [
    "FORMS",
    "METHODS",
    "GUIDES",
    "BayesConfig",
    "BayesFit",
    "statistics",
    "attentiveness_model",
    "family_from_sites",
    "mu_from_sites",
    "pointwise_loglik",
    "user_summaries",
    "posterior_table",
    "fit_bayes",
    "Design",
    "design",
    "observed_counts",
    "replicate_counts",
    "prior_draws",
    "model_arguments",
    "group_names",
    "inference_data",
]

FORMS = ("marginal",)
METHODS = ("nuts", "svi")
GUIDES = ("normal", "delta")
CHAIN_METHODS = ("vectorized", "sequential", "parallel")
#: Sites that are parameters of P_eta or mu (the rows of the summary table).
PARAMETER_SITES = ("mu", "eta", "weight_hi", "eta_lo", "eta_hi", "alpha", "beta", "weights")


class BayesConfig(NamedTuple):
    """Static model description (hashable).

    Attributes:
        em_config: family, mu mode and Beta prior of mu, shared with EM (`jaxpref.core.em.EMConfig`).
        form: ``marginal`` (the only form).
        concentration: Dirichlet concentration of each npmle grid weight.
    """

    em_config: em.EMConfig
    form: str = "marginal"
    concentration: float = 1.0


def family_from_sites(config: BayesConfig, sites: dict[str, Array], dtype=jnp.float32) -> tuple[Array, Array]:
    """``(eta_grid, log_weights)`` of P_eta from the sampled sites (one draw): the family's own
    `jaxpref.core.families.base.Family.from_sites`, used by the model and by post-processing."""
    return config.em_config.family.from_sites(sites, dtype)


def mu_from_sites(config: BayesConfig, sites: dict[str, Array], mu_known: Array) -> Array:
    """``(num_groups,)`` the gap of one draw: sampled, or the known value."""
    return sites["mu"] if config.em_config.estimates_mu else mu_known


def statistics(data: PreferenceData, dtype: Any = np.float32) -> tuple[Stats, np.ndarray]:
    """``(stats, row_of_user)``: compressed `CountStats` for gap data, `LabelStats` for per-label p.

    ``row_of_user`` is ``(num_users,)``, the row of ``stats`` of each user (in the order of
    ``data.user_ids``). Arrays are JAX arrays of ``dtype``.
    """
    if data.p is not None:
        stats, row_of_user = label_stats(data, dtype), np.arange(data.num_users)
    else:
        stats, row_of_user = count_stats(data, dtype)
    return jax.tree.map(jnp.asarray, stats), row_of_user


def attentiveness_model(stats: Stats, mu_known: Array, config: BayesConfig) -> None:
    """NumPyro model of comparison-mode labels.

    Args:
        stats: `CountStats` (one or several gaps) or `LabelStats` (per-label p).
        mu_known: ``(num_groups,)`` the known gap (ignored when mu is sampled or p is given).
        config: static `BayesConfig`.
    """
    em_config = config.em_config
    dtype = mu_known.dtype
    sites: dict[str, Array] = {}
    if em_config.estimates_mu:
        with numpyro.plate("groups", mu_known.shape[0]):
            sites["mu"] = numpyro.sample("mu", dist.Uniform(jnp.asarray(0.5, dtype), jnp.ones((), dtype)))
        # EM's own log-prior: the posterior mode is EM's MAP (flat for mu="free").
        numpyro.factor("mu_prior", em.log_prior(em_config, sites["mu"]))
    mu = mu_from_sites(config, sites, mu_known)
    sites.update(em_config.family.sample_sites(dtype, config.concentration))
    grid, log_weights = family_from_sites(config, sites, dtype)
    per_row, _ = marginal_loglik(stats, grid, log_weights, mu)
    numpyro.factor("loglik", jnp.sum(stats.multiplicity * per_row))


def _flat_draws(samples: dict[str, np.ndarray]) -> tuple[dict[str, Array], tuple[int, int]]:
    """``(chain, draw, ...)`` arrays -> ``(chain * draw, ...)`` and the leading shape."""
    leading = next(iter(samples.values())).shape[:2]
    return {name: jnp.asarray(value.reshape((-1,) + value.shape[2:])) for name, value in samples.items()}, leading


def pointwise_loglik(
    config: BayesConfig,
    samples: dict[str, np.ndarray],
    stats: Stats,
    row_of_user: np.ndarray,
    mu_known: Array,
) -> np.ndarray:
    """Per-user marginal log-likelihood ``l_j`` at every posterior draw.

    Args:
        config: the model.
        samples: posterior draws, each ``(num_chains, num_draws, ...)``.
        stats: the (compressed) statistics the marginal form uses.
        row_of_user: ``(num_users,)`` row of ``stats`` of each user.
        mu_known: ``(num_groups,)`` known gap.

    Returns:
        ``(num_chains, num_draws, num_users)`` float64.
    """
    draws, leading = _flat_draws(samples)
    dtype = mu_known.dtype

    @jax.jit
    def per_row(draw):
        grid, log_weights = family_from_sites(config, draw, dtype)
        return marginal_loglik(stats, grid, log_weights, mu_from_sites(config, draw, mu_known))[0]

    rows = np.asarray(jax.lax.map(per_row, draws, batch_size=256), np.float64)
    return rows[:, row_of_user].reshape(leading + (row_of_user.shape[0],))


def user_summaries(
    config: BayesConfig,
    samples: dict[str, np.ndarray],
    stats: Stats,
    row_of_user: np.ndarray,
    mu_known: Array,
    threshold: float,
    key: Array,
    level: float = 0.9,
) -> dict[str, np.ndarray]:
    """Per-user posterior mean, sd and credible interval of eta and P(eta >= threshold).

    Each draw contributes its exact node posterior (Rao-Blackwell); the sd uses the law of
    total variance.

    The equal-tailed ``level`` credible interval ``(eta_lo, eta_hi)`` is read off one draw of
    eta_j per posterior draw (from its node posterior), so it is a Monte Carlo estimate.

    Returns:
        ``{"eta_mean", "eta_sd", "eta_lo", "eta_hi", "prob_attentive"}``, each ``(num_users,)`` float64.
    """
    tails = [(1.0 - level) / 2, (1.0 + level) / 2]
    draws, _ = _flat_draws(samples)
    dtype = mu_known.dtype
    num_draws = next(iter(draws.values())).shape[0]
    draws["key"] = jax.random.split(key, num_draws)

    @jax.jit
    def moments(draw):
        grid, log_weights = family_from_sites(config, draw, dtype)
        mu = mu_from_sites(config, draw, mu_known)
        log_resp = marginal_loglik(stats, grid, log_weights, mu)[1]
        resp = jnp.exp(log_resp)
        eta = grid[jax.random.categorical(draw["key"], log_resp)]
        return resp @ grid, resp @ jnp.square(grid), resp @ (grid >= threshold).astype(dtype), eta

    first, second, attentive, eta = (
        np.asarray(value, np.float64) for value in jax.lax.map(moments, draws, batch_size=256)
    )
    first, second, attentive = (value.mean(axis=0)[row_of_user] for value in (first, second, attentive))
    lower, upper = np.quantile(eta, tails, axis=0)[:, row_of_user]
    return {
        "eta_mean": first,
        "eta_sd": np.sqrt(np.maximum(second - np.square(first), 0.0)),
        "eta_lo": lower,
        "eta_hi": upper,
        "prob_attentive": np.clip(attentive, 0.0, 1.0),
    }


class Design(NamedTuple):
    """What a replicated data set keeps fixed: who labelled how much, under which gap.

    Attributes:
        num_labels: ``(num_users, num_groups)`` labels per user and group (n_jg).
        label_user: ``(num_labels,)`` user of each label, for per-label p; else None.
        label_p: ``(num_labels,)`` per-label p, or None for gap data.
    """

    num_labels: Array
    label_user: Array | None = None
    label_p: Array | None = None


def design(data: PreferenceData, dtype: Any) -> Design:
    """The `Design` of observed data (counts per user and group; per-label p if given)."""
    num_pref_a, num_labels = user_counts(data)
    if data.p is None:
        return Design(jnp.asarray(num_labels, dtype))
    total = jnp.asarray(num_labels.sum(axis=1, keepdims=True), dtype)
    return Design(total, jnp.asarray(data.user_index), jnp.asarray(data.p, dtype))


def observed_counts(data: PreferenceData) -> tuple[np.ndarray, np.ndarray]:
    """``(k, n)``: labels preferring A and labels, each ``(num_users, num_groups)`` int64
    (one column when p is given per label: the p already differ within a user)."""
    num_pref_a, num_labels = user_counts(data)
    if data.p is not None:
        return num_pref_a.sum(axis=1, keepdims=True), num_labels.sum(axis=1, keepdims=True)
    return num_pref_a, num_labels


def replicate_counts(
    seed: int, config: BayesConfig, samples: dict[str, np.ndarray], plan: Design, mu_known: Array
) -> np.ndarray:
    """Replicated counts ``k_jg`` for the same users, one data set per draw of the parameters.

    Each replication gives every user a fresh ``eta_j ~ P_eta`` (the family of that draw) and
    draws ``k_jg ~ Binomial(n_jg, 1/2 + eta_j (mu_g - 1/2))`` (per label with per-label p):
    the "mixed" predictive of hierarchical models, which checks P_eta itself rather than
    each user's own posterior (that would reproduce every user's data almost by construction).
    Fed posterior draws it is the posterior predictive, fed prior draws the prior predictive.
    The sampling is NumPy's (no compiling); the grid of each draw comes from `family_from_sites`.

    Args:
        seed: seed of NumPy's generator.
        config: the model.
        samples: draws per site, each ``(num_chains, num_draws, ...)``.
        plan: the `Design` to replicate.
        mu_known: ``(num_groups,)`` known gap.

    Returns:
        ``(num_chains, num_draws, num_users, num_groups)`` int32.
    """
    draws, leading = _flat_draws(samples)
    dtype = mu_known.dtype

    def family_and_mu(draw):
        return (*family_from_sites(config, draw, dtype), mu_from_sites(config, draw, mu_known))

    grid, log_weights, mu = (np.asarray(value, np.float64) for value in jax.jit(jax.vmap(family_and_mu))(draws))
    rng = np.random.default_rng(seed)
    num_labels = np.asarray(plan.num_labels, np.int64)
    weights = np.exp(log_weights)
    cumulative = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1)
    uniform = rng.random((grid.shape[0], num_labels.shape[0]))
    # Inverse-CDF draw of each user's node, one draw at a time (no (draws, users, nodes) array).
    node = np.stack([np.searchsorted(row, values, side="right") for row, values in zip(cumulative, uniform)])
    eta = np.take_along_axis(grid, np.minimum(node, grid.shape[1] - 1), axis=1)  # (draws, users)
    if plan.label_p is None:
        prob = 0.5 + eta[:, :, None] * (mu[:, None, :] - 0.5)
        replicated = rng.binomial(num_labels[None], prob).astype(np.int32)
    else:
        user = np.asarray(plan.label_user)
        prob = 0.5 + eta[:, user] * (np.asarray(plan.label_p, np.float64) - 0.5)
        chosen = rng.random(prob.shape) < prob
        replicated = np.stack([np.bincount(user, weights=row, minlength=num_labels.shape[0]) for row in chosen])
        replicated = replicated.astype(np.int32)[:, :, None]
    return replicated.reshape(leading + replicated.shape[1:])


def prior_draws(key: Array, model, model_args, config: BayesConfig, num_draws: int) -> dict[str, np.ndarray]:
    """``num_draws`` draws of every latent site from the prior, each ``(1, num_draws, ...)``.

    mu's Beta prior enters the model as a ``factor`` on a uniform site, which forward sampling
    ignores, so mu is drawn here from the truncated Beta itself.
    """
    from numpyro.infer import Predictive

    site_key, mu_key = jax.random.split(key)
    predictive = Predictive(model, num_samples=num_draws, return_sites=_latent_sites(model, model_args))
    draws = {name: np.asarray(value)[None] for name, value in predictive(site_key, *model_args).items()}
    if config.em_config.mu_mode == "prior":
        from scipy import stats as scipy_stats

        prior = scipy_stats.beta(*config.em_config.mu_prior)
        # Inverse-CDF sampling of the Beta restricted to (1/2, 1).
        uniform = np.asarray(jax.random.uniform(mu_key, draws["mu"].shape, minval=prior.cdf(0.5), maxval=1.0))
        draws["mu"] = np.clip(prior.ppf(uniform), 0.5, 1.0).astype(draws["mu"].dtype)
    return draws


def posterior_table(idata, var_names: list[str]) -> pd.DataFrame:
    """Posterior mean, sd, equal-tailed 90 % interval, r_hat and ESS per scalar parameter.

    Args:
        idata: an `arviz.InferenceData` with a ``posterior`` group.
        var_names: variables to summarise (vectors get one row per element, ``name[i]``).

    Returns:
        DataFrame indexed by parameter with columns ``mean, sd, q5, q95, r_hat, ess_bulk, ess_tail``.
    """
    import arviz as az

    rows: dict[str, dict[str, float]] = {}
    num_chains = idata.posterior.sizes["chain"]
    diagnostics = {}
    if num_chains > 1:
        diagnostics = {
            "r_hat": az.rhat(idata, var_names=var_names),
            "ess_bulk": az.ess(idata, var_names=var_names, method="bulk"),
            "ess_tail": az.ess(idata, var_names=var_names, method="tail"),
        }
    for name in var_names:
        values = np.asarray(idata.posterior[name].values, np.float64)
        flat = values.reshape(values.shape[0] * values.shape[1], -1)
        for index in range(flat.shape[1]):
            label = name if values.ndim == 2 else f"{name}[{index}]"
            column = flat[:, index]
            row = {
                "mean": column.mean(),
                "sd": column.std(ddof=1) if column.size > 1 else 0.0,
                "q5": np.quantile(column, 0.05),
                "q95": np.quantile(column, 0.95),
            }
            for key in ("r_hat", "ess_bulk", "ess_tail"):
                row[key] = (
                    float(np.ravel(diagnostics[key][name].values)[index]) if diagnostics else math.nan
                )
            rows[label] = row
    return pd.DataFrame.from_dict(rows, orient="index")


@dataclasses.dataclass(frozen=True)
class BayesFit:
    """A fitted Bayesian attentiveness model.

    Attributes:
        samples: posterior draws per site, each ``(num_chains, num_draws, ...)``.
        inference_data: `arviz.InferenceData` (see `inference_data`): posterior, prior, their
            predictive counts, observed data, ``log_likelihood`` (``loglik``, the per-user
            marginal log-likelihood, dims ``(chain, draw, user)``) and, for NUTS, the full
            ``sample_stats`` (diverging, energy, tree_depth, n_steps, step_size, lp,
            acceptance_rate). Coordinates are the user and group ids as written.
        summary: `posterior_table` of mu and the parameters of P_eta.
        users: ``user, n_labels, n_pref_a, eta_mean, eta_sd, eta_lo, eta_hi, prob_attentive``
            (``eta_lo, eta_hi``: the central 90 % credible interval).
        family, mu_mode, form, method: the options used.
        num_divergences: divergent NUTS transitions after warm-up (0 for SVI).
        config: the static `BayesConfig`.
        data: the validated input.
        mu_known: ``(num_groups,)`` the known gap (a placeholder when mu is sampled).
        dtype: ``float32`` or ``float64``, the precision of the fit.
    """

    samples: dict[str, np.ndarray]
    inference_data: Any
    summary: pd.DataFrame
    users: pd.DataFrame
    family: str
    mu_mode: str
    form: str
    method: str
    num_divergences: int
    config: BayesConfig = dataclasses.field(repr=False)
    data: PreferenceData = dataclasses.field(repr=False)
    mu_known: np.ndarray = dataclasses.field(repr=False, default=None)
    dtype: str = "float32"


def model_arguments(fit: BayesFit, dtype: Any = None) -> tuple[Stats, Array]:
    """``(stats, mu_known)``: the arguments `attentiveness_model` was run with for ``fit``, in
    ``dtype`` (default the fit's; call under ``jax.enable_x64`` for float64)."""
    dtype = np.dtype(fit.dtype if dtype is None else dtype)
    return statistics(fit.data, dtype)[0], jnp.asarray(fit.mu_known, dtype)


def _check_count(value: Any, argument: str) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise DataError(f"{argument}={value!r} must be an integer >= 1")
    return int(value)


#: NumPyro's per-transition fields kept as arviz ``sample_stats`` (``potential_energy`` becomes ``lp``).
EXTRA_FIELDS = ("diverging", "energy", "num_steps", "accept_prob", "adapt_state.step_size", "potential_energy")


def _run_nuts(key, model, model_args, num_warmup, num_samples, num_chains, chain_method, target_accept):
    """``(samples, sample_stats)``: draws per site and arviz's sample statistics, each ``(chain, draw, ...)``."""
    from numpyro.infer import MCMC, NUTS

    kernel = NUTS(model, target_accept_prob=target_accept)
    mcmc = MCMC(
        kernel,
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        chain_method=chain_method,
        progress_bar=False,
    )
    mcmc.run(key, *model_args, extra_fields=EXTRA_FIELDS)
    samples = {name: np.asarray(value) for name, value in mcmc.get_samples(group_by_chain=True).items()}
    extra = {name: np.asarray(value) for name, value in mcmc.get_extra_fields(group_by_chain=True).items()}
    num_steps = extra["num_steps"].astype(np.int64)
    sample_stats = {
        "diverging": extra["diverging"].astype(bool),
        "energy": extra["energy"],
        "n_steps": num_steps,
        # A NUTS tree of depth d takes up to 2^d - 1 leapfrog steps.
        "tree_depth": np.ceil(np.log2(num_steps + 1)).astype(np.int64),
        "acceptance_rate": extra["accept_prob"],
        "step_size": extra["adapt_state.step_size"],
        # The log density NUTS samples: unconstrained space, Jacobians included.
        "lp": -extra["potential_energy"],
    }
    return samples, sample_stats


def _latent_sites(model, model_args) -> list[str]:
    """Names of the sampled and deterministic sites (not the ``factor`` terms)."""
    trace = numpyro.handlers.trace(numpyro.handlers.seed(model, 0)).get_trace(*model_args)
    return [
        name
        for name, site in trace.items()
        if site["type"] == "deterministic" or (site["type"] == "sample" and not site["is_observed"])
    ]


def _run_svi(key, model, model_args, guide_name, num_steps, learning_rate, num_samples):
    import optax
    from numpyro.infer import SVI, Predictive, Trace_ELBO
    from numpyro.infer.autoguide import AutoDelta, AutoNormal
    from numpyro.optim import optax_to_numpyro

    guide = (AutoNormal if guide_name == "normal" else AutoDelta)(model)
    svi = SVI(model, guide, optax_to_numpyro(optax.adam(learning_rate)), Trace_ELBO())
    fit_key, draw_key = jax.random.split(key)
    result = svi.run(fit_key, num_steps, *model_args, progress_bar=False)
    predictive = Predictive(
        model, guide=guide, params=result.params, num_samples=num_samples,
        return_sites=_latent_sites(model, model_args),
    )
    draws = predictive(draw_key, *model_args)
    # One "chain" of independent draws from the variational posterior.
    return {name: np.asarray(value)[None] for name, value in draws.items()}, None


def fit_bayes(
    data: Any,
    *,
    family: str = "two_point",
    mu: Any = None,
    mu_prior: tuple[float, float] | None = None,
    support: tuple[float, float] | None = None,
    num_grid: int = 64,
    form: str = "marginal",
    method: str = "nuts",
    num_warmup: int = 500,
    num_samples: int = 500,
    num_chains: int = 4,
    chain_method: str = "vectorized",
    target_accept: float = 0.9,
    guide: str = "normal",
    num_steps: int = 3000,
    learning_rate: float = 0.01,
    concentration: float = 1.0,
    threshold: float = 0.5,
    seed: int = 0,
    dtype: str = "float32",
    user_column: str = "user",
    label_column: str = "label",
    p_column: str | None = None,
    group_column: str | None = None,
) -> BayesFit:
    """Fits the Bayesian attentiveness model by NUTS or SVI.

    Args:
        data: labels (see `jaxpref.io.data.load_preferences`).
        family: ``point``, ``two_point``, ``beta`` or ``npmle``.
        mu, mu_prior: as in `jaxpref.fit_attentiveness`: a known gap (number, list per
            group or ``{group: mu}``), None for the Beta ``mu_prior`` (default the paper's
            (8, 2)), or ``"free"`` for a flat prior on (1/2, 1).
        support: fixed ``(lo, hi)`` for two_point; None samples it.
        num_grid: grid size for beta and npmle.
        form: ``marginal`` (eta summed out on the grid), the only form.
        method: ``nuts`` or ``svi``.
        num_warmup, num_samples, num_chains, target_accept: NUTS settings.
        chain_method: NumPyro's ``vectorized`` (default: all chains in one vmapped program,
            the fast choice on CPU), ``sequential`` or ``parallel`` (one device per chain).
        guide, num_steps, learning_rate: SVI settings (``normal`` = AutoNormal,
            ``delta`` = AutoDelta, i.e. MAP) with optax Adam; ``num_samples`` draws are
            taken from the fitted guide.
        concentration: Dirichlet concentration of the npmle weights.
        threshold: tau in ``prob_attentive = P(eta >= tau | data)``.
        seed: PRNG seed.
        dtype: ``float32`` or ``float64``.
        user_column, label_column, p_column, group_column: column names.

    Returns:
        A `BayesFit`.

    Raises:
        DataError: bad data or options (the message names the argument and the fix).
    """
    if form == "explicit":
        raise DataError(
            "form='explicit' (one sampled eta per user) was removed: NUTS did not converge on it at its defaults; "
            "use form='marginal', whose per-user posteriors are exact averages over the grid"
        )
    if form not in FORMS:
        raise DataError(f"form={form!r} must be one of {', '.join(FORMS)}")
    if method not in METHODS:
        raise DataError(f"method={method!r} must be one of {', '.join(METHODS)}")
    if guide not in GUIDES:
        raise DataError(f"guide={guide!r} must be 'normal' (AutoNormal) or 'delta' (AutoDelta, MAP)")
    if chain_method not in CHAIN_METHODS:
        raise DataError(f"chain_method={chain_method!r} must be one of {', '.join(CHAIN_METHODS)}")
    precision = float_dtype(dtype)
    for argument, value in (("num_warmup", num_warmup), ("num_samples", num_samples), ("num_chains", num_chains),
                            ("num_steps", num_steps)):
        _check_count(value, argument)
    check_positive(learning_rate, "learning_rate")
    check_positive(concentration, "concentration")
    if not 0.0 < float(target_accept) < 1.0:
        raise DataError(f"target_accept={target_accept!r} must lie in (0, 1)")
    threshold = float(threshold)
    if not 0.0 <= threshold <= 1.0:
        raise DataError(f"threshold={threshold!r} must lie in [0, 1]")
    spec = make_family(family, num_grid, support)
    data = load_preferences(
        data, user_column=user_column, label_column=label_column, p_column=p_column, group_column=group_column
    )
    mode, mu_start, prior = FitOptions(family=family, mu=mu, mu_prior=mu_prior, support=support).resolve_mu(data)
    config = BayesConfig(em.EMConfig(family=spec, mu_mode=mode, mu_prior=prior), form, float(concentration))

    with jax.enable_x64(dtype == "float64"):
        stats, row_of_user = statistics(data, precision)
        mu_known = jnp.asarray(mu_start, precision)
        sample_key, summary_key, prior_key = jax.random.split(jax.random.key(seed), 3)
        # The static config is bound here so that it never becomes a traced model argument.
        model = functools.partial(attentiveness_model, config=config)
        model_args = (stats, mu_known)
        if method == "nuts":
            samples, sample_stats = _run_nuts(
                sample_key, model, model_args, num_warmup, num_samples, num_chains, chain_method,
                float(target_accept),
            )
        else:
            samples, sample_stats = _run_svi(
                sample_key, model, model_args, guide, num_steps, float(learning_rate), num_samples
            )
        loglik = pointwise_loglik(config, samples, stats, row_of_user, mu_known)
        summaries = user_summaries(config, samples, stats, row_of_user, mu_known, threshold, summary_key)
        plan = design(data, precision)
        replicated = replicate_counts(seed, config, samples, plan, mu_known)
        prior = prior_draws(prior_key, model, model_args, config, num_samples)
        prior_replicated = replicate_counts(seed + 1, config, prior, plan, mu_known)

    idata = inference_data(data, samples, sample_stats, loglik, replicated, prior, prior_replicated)
    parameters = [name for name in PARAMETER_SITES if name in idata.posterior]
    summary = posterior_table(idata, parameters)
    if method == "nuts":
        checks.warn(checks.convergence_problems(idata, parameters), f"fit_bayes(family={family!r}, form={form!r})")
    users = pd.DataFrame(
        {
            "user": data.user_ids,
            "n_labels": np.bincount(data.user_index, minlength=data.num_users),
            "n_pref_a": np.bincount(data.user_index, weights=data.label, minlength=data.num_users).astype(np.int64),
            **summaries,
        }
    )
    return BayesFit(
        samples=samples,
        inference_data=idata,
        summary=summary,
        users=users,
        family=family,
        mu_mode=mode,
        form=form,
        method=method,
        num_divergences=0 if sample_stats is None else int(sample_stats["diverging"].sum()),
        config=config,
        data=data,
        mu_known=np.asarray(mu_start, np.float64),
        dtype=dtype,
    )


def group_names(data: PreferenceData) -> list[Any]:
    """Coordinate of the ``group`` dimension: the group ids as written, or ``["all"]``."""
    return ["all"] if data.group_ids is None or data.p is not None else list(data.group_ids)


def inference_data(
    data: PreferenceData,
    samples: dict[str, np.ndarray],
    sample_stats: dict[str, np.ndarray] | None,
    loglik: np.ndarray,
    replicated: np.ndarray,
    prior: dict[str, np.ndarray],
    prior_replicated: np.ndarray,
):
    """The `arviz.InferenceData` of a fit, with named coordinates (user and group ids as written).

    Groups: ``posterior``, ``sample_stats`` (NUTS), ``log_likelihood`` (``loglik``, per user),
    ``posterior_predictive`` and ``prior_predictive`` (``k``, per user and group), ``prior``,
    ``observed_data`` (``k``) and ``constant_data`` (``n``, the labels per user and group).
    """
    import arviz as az

    hidden = {"eta_gap"}  # the sampled helper of eta_hi (eta_hi itself is kept)
    posterior = {name: value for name, value in samples.items() if name not in hidden}
    prior = {name: value for name, value in prior.items() if name not in hidden}
    observed_k, observed_n = observed_counts(data)
    dims = {"loglik": ["user"], "mu": ["group"], "weights": ["node"],
            "k": ["user", "group"], "n": ["user", "group"]}
    coords = {"user": list(data.user_ids), "group": group_names(data)}
    return az.from_dict(
        posterior=posterior,
        sample_stats=sample_stats,
        log_likelihood={"loglik": loglik},
        posterior_predictive={"k": replicated},
        prior=prior,
        prior_predictive={"k": prior_replicated},
        observed_data={"k": observed_k},
        constant_data={"n": observed_n},
        coords=coords,
        dims=dims,
    )
