"""Calibration: simulation-based calibration (SBC) of mu.

Fast: the exact posterior of mu on a 1-D grid (two_point with known support and weights),
built from the same pieces as the NumPyro model (prior sampler, `marginal_loglik`, EM's
log-prior), must give uniform probability-integral transforms of the true mu and 90 %
intervals that cover it 90 % of the time; a wrong prior must be caught (power).
Slow: full SBC of the marginalised NUTS model (`simulation_based_calibration`).
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from scipy.stats import beta as beta_distribution

from jaxpref.core import em
from jaxpref.bayes.sbc import simulation_based_calibration
from jaxpref.io.data import histogram_counts
from jaxpref.core.families import make_family
from jaxpref.core.likelihood import marginal_loglik
from jaxpref.simulate import eta_distribution, simulate_counts

warnings.filterwarnings("ignore", category=FutureWarning, module="arviz")

NUM_REPLICATIONS = 1000
NUM_USERS, NUM_LABELS = 50, 10
PRIOR = (8.0, 2.0)


def grid_pit(prior_used):
    """PIT of the true mu under the grid posterior computed with ``prior_used``, and coverage."""
    distribution = eta_distribution("two_point", support=(0.1, 0.9), weight_hi=0.4)
    truth_key, data_key = jax.random.split(jax.random.key(11))
    # Beta(8, 2) restricted to (1/2, 1) by its inverse CDF.
    prior = beta_distribution(*PRIOR)
    uniform = np.asarray(jax.random.uniform(truth_key, (NUM_REPLICATIONS,), minval=prior.cdf(0.5), maxval=1.0))
    mu_true = jnp.asarray(prior.ppf(uniform), jnp.float32)
    keys = jax.random.split(data_key, NUM_REPLICATIONS)
    num_pref_a, num_labels, _ = jax.vmap(simulate_counts, in_axes=(0, None, None, 0, None))(
        keys, NUM_USERS, jnp.asarray(float(NUM_LABELS)), mu_true, distribution
    )
    stats = jax.vmap(lambda k, n: histogram_counts(k, n, NUM_LABELS))(num_pref_a, num_labels)
    mu_grid = 0.5 + 0.5 * (jnp.arange(500) + 0.5) / 500
    grid, log_weights = jnp.asarray([0.1, 0.9]), jnp.log(jnp.asarray([0.6, 0.4]))
    config = em.EMConfig(family=make_family("two_point", support=(0.1, 0.9)), mu_mode="prior", mu_prior=prior_used)

    def log_posterior(data_stats):
        def at(mu):
            per_row, _ = marginal_loglik(data_stats, grid, log_weights, mu[None])
            return jnp.sum(data_stats.multiplicity * per_row) + em.log_prior(config, mu[None])

        return jax.vmap(at)(mu_grid)

    log_post = np.asarray(jax.lax.map(jax.jit(log_posterior), stats, batch_size=100), np.float64)
    post = np.exp(log_post - log_post.max(axis=1, keepdims=True))
    cdf = np.cumsum(post, axis=1) / post.sum(axis=1, keepdims=True)
    mu_true = np.asarray(mu_true, np.float64)
    grid_values = np.asarray(mu_grid, np.float64)
    pit = np.array([np.interp(m, grid_values, c) for m, c in zip(mu_true, cdf)])
    lower = np.array([np.interp(0.05, c, grid_values) for c in cdf])
    upper = np.array([np.interp(0.95, c, grid_values) for c in cdf])
    return pit, np.mean((lower <= mu_true) & (mu_true <= upper))


def test_exact_grid_posterior_is_calibrated():
    pit, coverage = grid_pit(PRIOR)
    assert stats.kstest(pit, "uniform").pvalue > 0.01
    # Binomial sd of the coverage over 1000 replications is 0.0095.
    assert abs(coverage - 0.9) < 0.03


def test_wrong_prior_is_detected():
    # Power check: the same test rejects a posterior built with the wrong prior.
    pit, _ = grid_pit((2.0, 2.0))
    assert stats.kstest(pit, "uniform").pvalue < 1e-4


@pytest.mark.slow
def test_nuts_sbc_of_mu_and_weight():
    result = simulation_based_calibration(
        jax.random.key(2026), 400, num_users=NUM_USERS, labels_per_user=NUM_LABELS, mu_prior=PRIOR,
        num_warmup=300, num_samples=300, thin=3,
    )
    table = result.table.set_index("parameter")
    assert list(table.index) == ["mu[0]", "weight_hi"] and result.num_draws == 99
    for name, ranks in result.ranks.items():
        assert ranks.shape == (400,) and ranks.min() >= 0 and ranks.max() <= result.num_draws
        assert table.loc[name, "chi2_pvalue"] > 0.01, name
        # Binomial sd of the coverage over 400 replications is 0.015.
        assert abs(table.loc[name, "coverage"] - 0.9) < 0.05, name


@pytest.mark.slow
def test_sbc_covers_groups_and_beta_shapes():
    grouped = simulation_based_calibration(jax.random.key(1), 16, num_groups=2, num_users=20, labels_per_user=5,
                                           num_warmup=100, num_samples=99, thin=1)
    assert list(grouped.table["parameter"]) == ["mu[0]", "mu[1]", "weight_hi"]
    # The truths are prior draws: mu on (1/2, 1).
    assert ((grouped.truths["mu[1]"] > 0.5) & (grouped.truths["mu[1]"] < 1.0)).all()
    beta = simulation_based_calibration(jax.random.key(1), 16, family="beta", num_grid=8, num_users=20,
                                        labels_per_user=5, num_warmup=100, num_samples=99, thin=1)
    assert set(beta.table["parameter"]) == {"mu[0]", "alpha", "beta"}
    assert beta.num_draws == 99 and beta.ranks["alpha"].max() <= 99
