"""The simulator (determinism, moments), numerical edge cases, and compile behaviour."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import jaxpref
from jaxpref.core import driver, em
from jaxpref.io.data import DataError, compress_counts
from jaxpref.core.families import make_family


def test_same_key_same_data_and_different_key_different_data():
    first = jaxpref.simulate(jax.random.key(5), 50, 8, family="beta", mu=0.7)
    again = jaxpref.simulate(jax.random.key(5), 50, 8, family="beta", mu=0.7)
    other = jaxpref.simulate(jax.random.key(6), 50, 8, family="beta", mu=0.7)
    pd.testing.assert_frame_equal(first.frame, again.frame)
    np.testing.assert_array_equal(first.eta, again.eta)
    assert not np.array_equal(first.eta, other.eta)


def test_label_rate_matches_the_model():
    """P(y = 1) = 1/2 + E[eta] (mu - 1/2); Beta(3, 5) has mean 3/8."""
    sim = jaxpref.simulate(jax.random.key(0), 20000, 10, family="beta", alpha=3.0, beta=5.0, mu=0.9)
    expected = 0.5 + 3 / 8 * 0.4
    assert abs(sim.frame["label"].mean() - expected) < 4 * np.sqrt(0.25 / len(sim.frame))
    assert abs(sim.attentive.mean() - 3 / 8) < 0.01


def test_groups_poisson_counts_and_reward_gap():
    grouped = jaxpref.simulate(jax.random.key(1), 500, 10, mu=(0.6, 0.95))
    rates = grouped.frame.groupby("group")["label"].mean()
    assert rates[1] > rates[0] + 0.05
    poisson = jaxpref.simulate(jax.random.key(2), 2000, 10, label_count="poisson")
    counts = poisson.frame.groupby("user").size()
    assert counts.min() >= 1 and abs(counts.mean() - 10) < 0.3 and counts.var() > 5
    rewarded = jaxpref.simulate(jax.random.key(3), 100, 10, reward_gap=(1.0, 0.5))
    assert rewarded.frame["p"].between(0, 1, inclusive="neither").all()
    assert rewarded.mu[0] == pytest.approx(rewarded.frame["p"].mean())


@pytest.mark.parametrize(
    "options, message",
    [
        ({"family": "two_point", "support": (0.9, 0.1)}, "lo < hi"),
        ({"family": "beta", "alpha": 0.0}, "alpha"),
        ({"family": "npmle", "support": (0.1, 0.5), "weights": (0.5, 0.6)}, "summing to 1"),
        ({"mu": 0.5}, "outside"),
        ({"label_count": "normal"}, "label_count"),
    ],
)
def test_simulator_rejects_bad_parameters(options, message):
    with pytest.raises(DataError, match=message):
        jaxpref.simulate(jax.random.key(0), 10, 5, **options)


EDGE_FRAMES = {
    "all labels 1": pd.DataFrame({"user": np.repeat(np.arange(20), 5), "label": 1}),
    "all labels 0": pd.DataFrame({"user": np.repeat(np.arange(20), 5), "label": 0}),
    "a single user": pd.DataFrame({"user": 0, "label": [1, 1, 0, 1]}),
    "a single label": pd.DataFrame({"user": [7], "label": [1]}),
}


@pytest.mark.parametrize("frame", EDGE_FRAMES.values(), ids=EDGE_FRAMES.keys())
@pytest.mark.parametrize(
    "options",
    [
        {"family": "two_point", "mu": "free"},
        {"family": "npmle", "mu": 0.9, "num_grid": 8},
        {"family": "two_point", "support": (0.0, 1.0), "mu_prior": (8, 2)},
    ],
    ids=["two_point-free", "npmle-known", "two_point-01-prior"],
)
def test_edge_cases_give_finite_results(frame, options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jaxpref.IdentifiabilityWarning)
        fit = jaxpref.fit_attentiveness(frame, num_restarts=2, **options)
    assert np.isfinite(fit.loglik)
    assert np.all(np.isfinite(fit.users[["eta_mean", "eta_map", "eta_sd", "prob_attentive"]].to_numpy()))
    assert np.all(np.isfinite(fit.label_attentiveness()))
    assert fit.users["eta_mean"].between(0, 1).all()


def test_free_mu_warns_about_identifiability():
    frame = EDGE_FRAMES["all labels 1"]
    with pytest.warns(jaxpref.IdentifiabilityWarning, match="not identified"):
        jaxpref.fit_attentiveness(frame, family="two_point", mu="free", num_restarts=1)
    # npmle with mu free: free weights on a grid up to eta = 1 leave mu pinned only by that edge.
    sim = jaxpref.simulate(jax.random.key(2), 500, 10, family="two_point", support=(0.1, 0.6), mu=0.8)
    with pytest.warns(jaxpref.IdentifiabilityWarning, match="profile likelihood of mu is flat"):
        jaxpref.fit_attentiveness(sim.frame, family="npmle", mu="free", num_restarts=1, num_grid=16)


def test_unidentified_model_reports_nan_standard_errors():
    sim = jaxpref.simulate(jax.random.key(9), 500, 10, family="point", eta=0.6, mu=0.8)
    with pytest.warns(jaxpref.IdentifiabilityWarning):
        fit = jaxpref.fit_attentiveness(sim.frame, family="point", mu="free", dtype="float64", num_restarts=1)
    # Only eta * (mu - 1/2) is identified: the information matrix is singular.
    assert all(np.isnan(value) for value in fit.standard_errors.values())
    product = fit.params["support"][0] * (fit.params["mu"] - 0.5)
    assert product == pytest.approx(0.6 * 0.3, abs=0.03)


def test_float32_and_float64_agree():
    sim = jaxpref.simulate(jax.random.key(8), 800, 15, family="two_point", support=(0.1, 0.9), mu=0.8)
    options = dict(family="two_point", support=(0.1, 0.9), mu_prior=(8, 2), num_restarts=1, tol=1e-9)
    single = jaxpref.fit_attentiveness(sim.frame, dtype="float32", **options)
    double = jaxpref.fit_attentiveness(sim.frame, dtype="float64", **options)
    assert double.users["eta_mean"].dtype == np.float64
    # float32 stops where round-off hides the objective's progress; that must cost a small
    # fraction of the statistical error.
    errors = double.standard_errors
    assert abs(single.params["mu"] - double.params["mu"]) < 0.1 * errors["mu[0]"]
    assert abs(single.params["weights"][1] - double.params["weights"][1]) < 0.1 * errors["weight_hi"]
    np.testing.assert_allclose(single.loglik, double.loglik, rtol=1e-5)


def test_new_data_in_the_same_size_bucket_does_not_recompile():
    config = em.EMConfig(make_family("npmle", 16), "known")
    start = em.init(config, jnp.asarray([0.8]))
    rng = np.random.default_rng(0)
    sizes = set()
    before = driver.fit._cache_size()
    for num_users in (300, 600, 900, 1200):
        n = rng.integers(1, 40, size=(num_users, 1))
        stats, _ = compress_counts(rng.binomial(n, 0.7), n)
        sizes.add(stats.multiplicity.shape[0])
        driver.fit(start, jax.tree.map(jnp.asarray, stats), config, method="em")
    # One compilation per padded size bucket, however many users.
    assert driver.fit._cache_size() - before == len(sizes) < 4
