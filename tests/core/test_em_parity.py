"""jaxpref's EM against the independent NumPy reference (tests/reference_em.py), in float64."""

import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxpref
from jaxpref.core import driver, em
from jaxpref.io.data import count_stats, label_stats, load_preferences
from jaxpref.core.families import make_family
from jaxpref.core.dense import dense_table

from reference_em import beta_weights
from reference_em import em as reference_em
from reference_em import users_from_frame

NUM_STEPS = 25


def simulated(seed, num_users=120, labels=8, **options):
    options.setdefault("family", "two_point")
    return jaxpref.simulate(jax.random.key(seed), num_users, labels, **options)


def run_core(frame, config, mu, p_column=None, group_column=None):
    """Exactly NUM_STEPS EM iterations of the jitted core from its default start (no Newton polish)."""
    data = load_preferences(frame, p_column=p_column, group_column=group_column)
    with jax.enable_x64(True):
        if p_column:
            stats = jax.tree.map(jnp.asarray, label_stats(data, np.float64))
        else:
            stats = jax.tree.map(jnp.asarray, count_stats(data, np.float64)[0])
        start = em.init(config, jnp.asarray(mu, jnp.float64))
        if p_column and not config.family.moving_nodes:
            stats = dense_table(stats, start.family.eta_grid)
        config = config._replace(tol=1e-300, max_iter=NUM_STEPS, polish=False)
        out = driver.fit(start, stats, config, method="em")
        return jax.tree.map(np.asarray, out), jax.tree.map(np.asarray, start)


CASES = [
    # (name, simulate options, config, mu, p_column, group_column)
    ("two_point fixed, mu known", {}, em.EMConfig(make_family("two_point", support=(0.1, 0.9)), "known"), [0.8], None, None),
    ("two_point free support, mu prior", {}, em.EMConfig(make_family("two_point"), "prior", (8.0, 2.0)), [0.75], None, None),
    ("npmle, mu free", {"family": "beta"}, em.EMConfig(make_family("npmle", 11), "free"), [0.7], None, None),
    ("point, mu known", {"family": "point", "eta": 0.6}, em.EMConfig(make_family("point"), "known"), [0.8], None, None),
    (
        "two_point fixed, mu prior, 2 groups",
        {"mu": (0.65, 0.9)},
        em.EMConfig(make_family("two_point", support=(0.0, 1.0)), "prior", (8.0, 2.0)),
        [0.7, 0.7],
        None,
        "group",
    ),
    ("npmle, per-label p", {"reward_gap": (1.0, 1.0)}, em.EMConfig(make_family("npmle", 9), "per_label"), [0.75], "p", None),
    ("point, per-label p", {"reward_gap": (1.0, 1.0), "family": "beta"}, em.EMConfig(make_family("point"), "per_label"), [0.75], "p", None),
]


@pytest.mark.parametrize("name, options, config, mu, p_column, group_column", CASES, ids=[c[0] for c in CASES])
def test_steps_match_reference(name, options, config, mu, p_column, group_column):
    frame = simulated(zlib.crc32(name.encode()) % 1000, **options).frame  # hash() is salted per process
    out, start = run_core(frame, config, mu, p_column, group_column)
    reference = reference_em(
        users_from_frame(frame, p_column, group_column),
        config.family.name,
        start.family.eta_grid,
        np.exp(start.family.log_weights),
        mu,
        mu_mode=config.mu_mode,
        prior=config.mu_prior,
        moving_nodes=config.family.moving_nodes,
        num_iter=NUM_STEPS,
    )
    # The core stops early only at an exact fixed point (tol=1e-300); the reference keeps stepping
    # and must then stay at the same objective.
    steps = int(out.num_iter)
    np.testing.assert_allclose(out.objective_trace[:steps], reference["trace"][:steps], rtol=1e-10)
    np.testing.assert_allclose(reference["trace"][steps:], reference["trace"][steps - 1], rtol=1e-10)
    np.testing.assert_allclose(out.state.family.eta_grid, reference["eta_grid"], atol=1e-9)
    np.testing.assert_allclose(np.exp(out.state.family.log_weights), reference["weights"], atol=1e-9)
    if config.mu_mode != "per_label":
        np.testing.assert_allclose(out.state.mu, reference["mu"], atol=1e-9)
    np.testing.assert_allclose(out.loglik, reference["loglik"], rtol=1e-10)


def test_beta_optimum_matches_reference():
    """Beta's M-step differs (Newton vs Nelder-Mead), so compare the converged optimum."""
    # Many labels per user and a wide gap identify the Beta's shape well, so both EMs
    # reach the optimum instead of crawling along a flat ridge.
    frame = simulated(7, num_users=150, labels=60, family="beta", alpha=2.0, beta=3.0, mu=0.95).frame
    fit = jaxpref.fit_attentiveness(
        frame, family="beta", mu=0.95, num_grid=16, dtype="float64", tol=1e-12, max_iter=5000, num_restarts=1
    )
    grid = np.asarray(fit.params["eta_grid"])
    reference = reference_em(
        users_from_frame(frame), "beta", grid, beta_weights(grid, 2.0, 2.0), [0.95],
        beta_shape=np.array([2.0, 2.0]), num_iter=3000, tol=1e-11,
    )
    assert fit.converged
    np.testing.assert_allclose([fit.params["alpha"], fit.params["beta"]], reference["beta_shape"], rtol=2e-3)
    np.testing.assert_allclose(fit.loglik, reference["loglik"], rtol=1e-8)
    assert fit.loglik >= reference["loglik"] - 1e-6
