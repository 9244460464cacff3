"""The beta family against the continuous Beta mixture (exact by Gauss-Jacobi quadrature in SciPy).

With n labels per user, P(k | alpha, beta) = integral of Binomial(k; n, 1/2 + eta (mu - 1/2)) under
Beta(alpha, beta): a polynomial of degree n in eta, so Gauss-Jacobi quadrature with n + 1 nodes is
exact. That is the model jaxpref's 64-node beta family approximates.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize, special, stats

from jaxpref.core import driver, em
from jaxpref.io.data import CountStats
from jaxpref.core.families import make_family

MU, LABELS = 0.8, 10


def exact_probabilities(alpha, beta):
    """``(LABELS + 1,)`` P(k) under the continuous Beta mixture."""
    nodes, weights = special.roots_sh_jacobi(LABELS + 1, alpha + beta - 1.0, alpha)
    q = 0.5 + nodes * (MU - 0.5)
    k = np.arange(LABELS + 1)
    return stats.binom.pmf(k[:, None], LABELS, q[None, :]) @ (weights / weights.sum())


def fit_shapes(multiplicity):
    with jax.enable_x64(True):
        k = jnp.arange(LABELS + 1, dtype=jnp.float64)[:, None]
        counts = CountStats(k, jnp.full_like(k, LABELS), jnp.asarray(multiplicity, jnp.float64))
        config = em.EMConfig(make_family("beta"), "known")
        out = driver.fit(em.init(config, jnp.asarray([MU])), counts, config)
    assert bool(out.converged)
    return np.asarray(out.state.family.beta_shape)


@pytest.mark.parametrize("alpha, beta", [(0.5, 0.8), (0.5, 0.5), (0.3, 0.3), (0.8, 3.0), (3.0, 5.0)])
def test_shapes_are_unbiased_as_m_grows(alpha, beta):
    """Fitted to the expected counts of 1e6 users (the m -> infinity limit, no sampling noise), the
    shapes come back within 1 % (density-at-midpoint weights missed Beta(0.5, 0.8) by -11 %)."""
    shapes = fit_shapes(1e6 * exact_probabilities(alpha, beta))
    np.testing.assert_allclose(shapes, [alpha, beta], rtol=0.01)


def test_fitted_likelihood_is_near_the_continuous_optimum():
    """At m = 4e4 users from Beta(0.5, 0.8), jaxpref's shapes score within 0.05 nats of the continuous
    model's own maximum likelihood (found by SciPy)."""
    rng = np.random.default_rng(0)
    eta = rng.beta(0.5, 0.8, 40_000)
    counts = np.bincount(rng.binomial(LABELS, 0.5 + eta * (MU - 0.5)), minlength=LABELS + 1).astype(float)

    def loglik(shapes):
        return float(counts @ np.log(exact_probabilities(*shapes)))

    best = optimize.minimize(lambda log_shapes: -loglik(np.exp(log_shapes)), np.log([0.5, 0.8]), method="Nelder-Mead",
                             options={"xatol": 1e-9, "fatol": 1e-10})
    assert loglik(fit_shapes(counts)) >= -best.fun - 0.05
