"""Recovery at the paper's settings, standard errors, and finding attentive users."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxpref
from jaxpref.core import driver, em
from jaxpref.io.data import histogram_counts
from jaxpref.core.families import make_family
from jaxpref.metrics import roc_auc
from jaxpref.simulate import eta_distribution, replicate, simulate_counts
from jaxpref.core.uncertainty import standard_errors

NUM_USERS = 10**6
LABELS = 20


def fit_counts(key, distribution, config, mu_true, mu_start):
    k, n, _ = simulate_counts(key, NUM_USERS, LABELS, jnp.asarray(mu_true), distribution)
    stats = histogram_counts(k, n, LABELS)
    out = driver.fit(em.init(config, jnp.asarray([mu_start])), stats, config, method="em")
    return out, standard_errors(out.state, stats, config)


def test_two_point_at_the_paper_setting():
    """Weights (0.6, 0.4) on eta in {0, 1}, mu = 0.98 under the Beta(8, 2) prior: the paper
    reports 0.5 % relative error; at m = 1e6 the standard errors are far below that."""
    with jax.enable_x64(True):
        config = em.EMConfig(make_family("two_point", support=(0.0, 1.0)), "prior", (8.0, 2.0), tol=1e-10, max_iter=5000)
        distribution = eta_distribution("two_point", support=(0.0, 1.0), weight_hi=0.4)
        out, errors = fit_counts(jax.random.key(0), distribution, config, 0.98, 0.75)
    weight_hi, mu = float(jnp.exp(out.state.family.log_weights[1])), float(out.state.mu[0])
    assert bool(out.converged)
    assert abs(weight_hi - 0.4) / 0.4 < 0.005 and abs(mu - 0.98) / 0.98 < 0.005
    assert abs(weight_hi - 0.4) < 4 * errors["weight_hi"] and abs(mu - 0.98) < 4 * errors["mu[0]"]


def test_beta_at_the_paper_setting():
    """Beta(3, 5) with mu = 0.98 known: the paper reports (3.01, 5.02), 0.4 %."""
    with jax.enable_x64(True):
        config = em.EMConfig(make_family("beta", 64), "known", tol=1e-10, max_iter=5000)
        distribution = eta_distribution("beta", alpha=3.0, beta=5.0)
        out, errors = fit_counts(jax.random.key(1), distribution, config, 0.98, 0.98)
    alpha, beta = (float(v) for v in out.state.family.beta_shape)
    assert bool(out.converged)
    assert abs(alpha - 3.0) / 3.0 < 0.01 and abs(beta - 5.0) / 5.0 < 0.01
    assert abs(alpha - 3.0) < 4 * errors["alpha"] and abs(beta - 5.0) < 4 * errors["beta"]


def test_standard_errors_match_the_spread_over_replications():
    """Observed-information SEs against the sd of estimates over 64 vmapped replications."""
    distribution = eta_distribution("two_point", support=(0.1, 0.9), weight_hi=0.4)
    with jax.enable_x64(True):
        config = em.EMConfig(make_family("two_point", support=(0.1, 0.9)), "free", tol=1e-11, max_iter=5000)
        k, n, _ = replicate(jax.random.key(2), 64, 2000, 10, 0.8, distribution)

        def one(k, n):
            return driver.fit(em.init(config, jnp.asarray([0.7])), histogram_counts(k, n, 10), config, method="em")

        fits = jax.jit(jax.vmap(one))(k, n)
        first = jax.tree.map(lambda leaf: leaf[0], fits)
        errors = standard_errors(first.state, histogram_counts(k[0], n[0], 10), config)
    spread_mu = float(np.std(np.asarray(fits.state.mu[:, 0]), ddof=1))
    spread_weight = float(np.std(np.exp(np.asarray(fits.state.family.log_weights[:, 1])), ddof=1))
    # The sd of 64 draws is itself uncertain by about 1/sqrt(2 * 63) = 9 %: allow 35 %.
    assert errors["mu[0]"] == pytest.approx(spread_mu, rel=0.35)
    assert errors["weight_hi"] == pytest.approx(spread_weight, rel=0.35)


def test_posterior_mean_ranks_attentive_users_better_than_the_raw_share():
    """With a random number of labels per user, eta_mean weighs evidence by n; the share
    of A-votes k/n does not."""
    sim = jaxpref.simulate(
        jax.random.key(4), 3000, 12, family="two_point", support=(0.1, 0.9), weight_hi=0.4, mu=0.8,
        label_count="poisson",
    )
    fit = jaxpref.fit_attentiveness(sim.frame, family="two_point", mu=0.8, num_restarts=2)
    attentive = sim.eta > 0.5
    auc = roc_auc(fit.users["eta_mean"].to_numpy(), attentive)
    naive = roc_auc((fit.users["n_pref_a"] / fit.users["n_labels"]).to_numpy(), attentive)
    assert auc > naive + 0.005
    assert auc > 0.85
