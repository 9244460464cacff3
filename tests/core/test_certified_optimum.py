"""Certified fits reach the optimum: jaxpref (default float32, default tolerance) against an
independent SciPy optimiser of the same exact objective (tests/reference_optimum.py)."""

import warnings

import numpy as np
import pytest
from certified_settings import SETTINGS, setting

import jaxpref

#: jaxpref's objective must be within this of the reference optimum (nats, whole data set).
NATS = 0.01


@pytest.mark.parametrize("name", SETTINGS)
def test_certified_fit_reaches_the_reference_optimum(name):
    frame, options, problem = setting(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jaxpref.IdentifiabilityWarning)
        fit = jaxpref.fit_attentiveness(frame, **options)
    reference, _ = problem.maximise()
    assert fit.converged and 0.0 <= fit.optimality_gap <= 1e-3
    assert fit.objective >= reference - NATS, (fit.objective, reference)
    # The reference is an optimiser too: a jaxpref fit far above it would mean the reference failed.
    assert fit.objective <= reference + NATS, (fit.objective, reference)


def test_all_b_reaches_the_closed_form_map():
    """All labels B: the MAP is eta = 0 (every label a coin flip) with mu at its prior mode 7/8."""
    frame, options, _ = setting("all labels B, two_point, mu prior")
    fit = jaxpref.fit_attentiveness(frame, **options)
    closed_form = len(frame) * np.log(0.5) + 7 * np.log(0.875) + np.log(0.125)
    assert fit.objective == pytest.approx(closed_form, abs=1e-6)
    assert fit.params["mu"] == pytest.approx(0.875, abs=1e-6)


def test_a_slow_em_step_is_not_a_certificate():
    """The issue's example (beta, mu under the Beta(8, 2) prior, m = 5000, n = 15): plain EM stops on
    its per-user tolerance well short of the optimum; the certificate of that point says so, and the
    polish closes the gap it reports."""
    import jax
    import jax.numpy as jnp

    from jaxpref.core import driver, em, polish
    from jaxpref.io.data import compress_counts
    from jaxpref.core.families import make_family

    rng = np.random.default_rng(1)
    k = rng.binomial(15, 0.5 + rng.beta(3, 5, 5000) * 0.4)
    with jax.enable_x64(True):
        stats = jax.tree.map(jnp.asarray, compress_counts(k[:, None], np.full((5000, 1), 15), np.float64)[0])
        config = em.EMConfig(make_family("beta"), "prior", (8.0, 2.0), polish=False)
        start = em.init(config, jnp.asarray([0.75]))
        stopped = driver.fit(start, stats, config, method="em")
        reported_gap = float(polish.certify(stopped.state, stats, config))
        finished = polish.polish(stopped.state, stats, config)
    assert not bool(stopped.converged)
    gained = float(finished.objective - stopped.objective)
    assert gained > 0.05 and reported_gap > 0.05, (gained, reported_gap)
    assert float(finished.optimality_gap) <= 1e-3
