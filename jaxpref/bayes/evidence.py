"""Marginal likelihood p(data | model) of a fitted marginal-form model, by bridge sampling.

eta is summed out on the grid, so a model has a handful of parameters (mu per group and the
few of P_eta), and the NUTS draws are an excellent sample of the posterior. Bridge sampling
(Meng & Wong 1996, in the form of Gronau et al. 2017, "A tutorial on bridge sampling") uses
them directly: in NumPyro's unconstrained space (where the posterior is close to Gaussian) a
multivariate normal fitted to the first half of the draws is the proposal g, and the
iterative bridge estimator combines the second half with as many draws of g:

    r <- mean_g[ q/g / (s1 q/g + s2 r) ] / mean_post[ 1 / (s1 q/g + s2 r) ],

with q = exp(-potential) the unnormalised posterior (Jacobians included) and s1, s2 the
shares of the two samples. It converges to p(data); its Monte Carlo error is approximated by
the relative mean squared error of Fruehwirth-Schnatter (2004). It is checked against exact
quadrature in the tests.

The likelihood is that of the labels (a product of Bernoulli terms, no binomial
coefficients), the same for every model of the same labels, so log Bayes factors
``log p(data | A) - log p(data | B)`` compare any two models of the same data: families, mu
known / estimated / per group. mu's Beta prior is a ``factor`` on a uniform site in the
model, so its normalising constant is added here. The log density is evaluated in float64
whatever the precision of the fit (float32 sums of thousands of users lose the second decimal).
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy import special
from scipy import stats as scipy_stats

from jaxpref.errors import DataError

__all__ = ["Evidence", "log_evidence", "log_prior_normaliser"]


class Evidence(NamedTuple):
    """The log marginal likelihood of a model.

    Attributes:
        log_evidence: log p(data | model).
        mc_sd: approximate Monte Carlo standard error of ``log_evidence``.
        num_parameters: dimension of the unconstrained parameter space.
        iterations: bridge iterations of the first repeat.
    """

    log_evidence: float
    mc_sd: float
    num_parameters: int
    iterations: int


def log_prior_normaliser(config: Any, num_groups: int) -> float:
    """log of the integral over mu of the model's prior of mu: Uniform(1/2, 1) times EM's Beta factor.

    EM's log-prior drops the Beta function and the truncation to (1/2, 1), so the model's
    prior density of one mu is ``2 mu^(a-1) (1-mu)^(b-1)``, whose integral is
    ``2 B(a, b) (1 - I_{1/2}(a, b))``; 0 unless ``mu_mode == "prior"``.
    """
    em_config = config.em_config
    if em_config.mu_mode != "prior":
        return 0.0
    a, b = em_config.mu_prior
    upper_mass = scipy_stats.beta(a, b).sf(0.5)
    return num_groups * (math.log(2.0) + special.betaln(a, b) + math.log(upper_mass))


def _bridge(log_post_draws: np.ndarray, log_post_proposals: np.ndarray, tolerance: float = 1e-10,
            max_iterations: int = 1000) -> tuple[float, float, int]:
    """Iterative bridge estimate of log Z from ``l = log q - log g`` at posterior and proposal draws.

    Returns:
        ``(log_z, sd, iterations)``; ``sd`` approximates the standard error of ``log_z`` by its
        relative mean squared error (Fruehwirth-Schnatter 2004, Gronau et al. 2017, eq. 17),
        treating the posterior draws as independent.
    """
    num_post, num_proposal = log_post_draws.size, log_post_proposals.size
    s1, s2 = num_post / (num_post + num_proposal), num_proposal / (num_post + num_proposal)
    shift = float(np.median(log_post_draws))
    ratio_post, ratio_proposal = np.exp(log_post_draws - shift), np.exp(log_post_proposals - shift)
    estimate = 1.0
    for iteration in range(1, max_iterations + 1):
        numerator = np.mean(ratio_proposal / (s1 * ratio_proposal + s2 * estimate))
        denominator = np.mean(1.0 / (s1 * ratio_post + s2 * estimate))
        previous, estimate = estimate, numerator / denominator
        if abs(math.log(estimate) - math.log(previous)) < tolerance:
            break
    at_post = 1.0 / (s1 * ratio_post / estimate + s2)
    at_proposal = (ratio_proposal / estimate) / (s1 * ratio_proposal / estimate + s2)
    relative_mse = (np.var(at_proposal) / np.mean(at_proposal) ** 2 / num_proposal
                    + np.var(at_post) / np.mean(at_post) ** 2 / num_post)
    return math.log(estimate) + shift, math.sqrt(relative_mse), iteration


def log_evidence(fit: Any, *, seed: int = 0) -> Evidence:
    """Bridge-sampling estimate of log p(data | model) from a NUTS `BayesFit`.

    Args:
        fit: a `jaxpref.bayes.model.BayesFit` of the marginal form.
        seed: seed of the proposal draws.

    Returns:
        An `Evidence`.

    Raises:
        DataError: too few draws.
    """
    from jax.flatten_util import ravel_pytree
    from numpyro.infer.util import initialize_model, unconstrain_fn

    from jaxpref.bayes.model import attentiveness_model, model_arguments

    config = fit.config
    model = functools.partial(attentiveness_model, config=config)
    with jax.enable_x64(True):
        model_args = model_arguments(fit, np.float64)
        setup = initialize_model(jax.random.key(seed), model, model_args=model_args)
        sites = list(setup.param_info.z)
        draws = {name: jnp.asarray(fit.samples[name].reshape((-1,) + fit.samples[name].shape[2:]), jnp.float64)
                 for name in sites}
        num_draws = next(iter(draws.values())).shape[0]
        if num_draws < 20:
            raise DataError(f"log_evidence needs at least 20 posterior draws, the fit has {num_draws}: "
                            "raise num_samples")
        unconstrained = jax.vmap(lambda draw: unconstrain_fn(model, model_args, {}, draw))(draws)
        flat = jax.vmap(lambda draw: ravel_pytree(draw)[0])(unconstrained)
        _, unravel = ravel_pytree(jax.tree.map(lambda leaf: leaf[0], unconstrained))
        log_q = jax.jit(jax.vmap(lambda vector: -setup.potential_fn(unravel(vector))))
        flat = np.asarray(flat, np.float64)
        # Gronau et al.: fit the proposal on the first half, bridge with the second (no double use).
        half = num_draws // 2
        fitting, bridging = flat[:half], flat[half:]
        mean = fitting.mean(axis=0)
        covariance = np.atleast_2d(np.cov(fitting, rowvar=False))
        proposal = scipy_stats.multivariate_normal(mean, covariance, allow_singular=False)
        log_q_bridging = np.asarray(log_q(jnp.asarray(bridging, flat.dtype)), np.float64)
        l_post = log_q_bridging - proposal.logpdf(bridging).reshape(-1)
        rng = np.random.default_rng(seed)
        proposals = np.atleast_2d(proposal.rvs(size=bridging.shape[0], random_state=rng)).reshape(bridging.shape)
        log_q_proposals = np.asarray(log_q(jnp.asarray(proposals, flat.dtype)), np.float64)
        l_proposal = log_q_proposals - proposal.logpdf(proposals).reshape(-1)
        # A proposal outside the support (NaN potential) has q = 0.
        l_proposal = np.where(np.isfinite(l_proposal), l_proposal, -np.inf)
        estimate, sd, iterations = _bridge(l_post, l_proposal)
    num_groups = fit.samples["mu"].shape[-1] if "mu" in fit.samples else 1
    correction = log_prior_normaliser(config, num_groups)
    return Evidence(
        log_evidence=estimate - correction,
        mc_sd=sd,
        num_parameters=flat.shape[1],
        iterations=iterations,
    )
