"""Profile likelihood of mu: closed form for the point family, flatness, warning, plot."""

import warnings

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import pytest

from jaxpref.core import em
from jaxpref.io.data import DataError, count_stats, load_preferences
from jaxpref.estimator import IdentifiabilityWarning
from jaxpref.core.families import make_family
from jaxpref.identifiability import (
    MuProfile,
    default_mu_grid,
    flat_profile,
    likelihood_ratio_interval,
    plot_profile,
    profile_from_stats,
    profile_loglik_mu,
    warn_if_flat,
)
from jaxpref.simulate import simulate

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def two_point_frame():
    return simulate(jax.random.key(0), 300, 20, family="two_point", support=(0.1, 0.9), weight_hi=0.4, mu=0.8).frame


def test_point_profile_has_a_closed_form():
    # Everyone shares eta, so q = 1/2 + eta (mu - 1/2) ranges over [1/2, mu]: the profile
    # maximiser is q* = clip(K / N, 1/2, mu) and l_p(mu) = K log q* + (N - K) log(1 - q*).
    frame = simulate(jax.random.key(5), 150, 8, family="point", eta=0.7, mu=0.85).frame
    with jax.enable_x64(True):
        stats, _ = count_stats(load_preferences(frame), np.float64)
        stats = jax.tree.map(jnp.asarray, stats)
        config = em.EMConfig(family=make_family("point"), mu_mode="known", tol=1e-12, max_iter=5000)
        mu_grid = default_mu_grid(25)
        profile = np.asarray(profile_from_stats(jax.random.key(0), stats, config, jnp.asarray(mu_grid), 2))
    total_a, total = frame["label"].sum(), len(frame)
    q = np.clip(total_a / total, 0.5, mu_grid)
    expected = total_a * np.log(q) + (total - total_a) * np.log1p(-q)
    # EM approaches the edge eta = 1 slowly (sublinearly), hence 1e-3 rather than round-off.
    np.testing.assert_allclose(profile, expected, rtol=0, atol=1e-3)


def test_likelihood_ratio_interval_of_a_quadratic():
    mu_grid = np.linspace(0.51, 0.99, 481)
    centre, scale = 0.75, 0.03
    objective = -0.5 * ((mu_grid - centre) / scale) ** 2
    lo, hi = likelihood_ratio_interval(mu_grid, objective, 0.95)
    assert lo == pytest.approx(centre - 1.959964 * scale, abs=1e-4)
    assert hi == pytest.approx(centre + 1.959964 * scale, abs=1e-4)
    # A monotone objective gives an interval open at the grid edge.
    assert likelihood_ratio_interval(mu_grid, mu_grid * 100.0, 0.95)[1] == mu_grid[-1]


@pytest.mark.parametrize(
    "interval, flat",
    [((0.6, 0.85), True), ((0.7, 0.8), False), ((0.85, 0.99), True), ((0.97, 0.99), False), ((0.51, 0.99), True)],
)
def test_flat_profile_rule(interval, flat):
    mu_grid = default_mu_grid()
    profile = MuProfile(mu_grid, np.zeros_like(mu_grid), np.zeros_like(mu_grid), 0.8, interval, 0.95, "beta")
    assert flat_profile(profile) is flat


def test_free_two_point_support_gives_a_flat_profile(two_point_frame):
    profile = profile_loglik_mu(two_point_frame, family="two_point")
    assert flat_profile(profile)
    lo, hi = profile.interval
    assert hi == pytest.approx(0.99) and hi - lo > 0.2
    # Above the edge eta_hi <= 1 the profile is flat to the optimiser's tolerance.
    above_edge = profile.mu_grid >= 0.85
    assert np.ptp(profile.loglik[above_edge]) < 0.5


def test_fixed_support_or_beta_pin_mu(two_point_frame):
    fixed = profile_loglik_mu(two_point_frame, family="two_point", support=(0.1, 0.9))
    assert not flat_profile(fixed)
    lo, hi = fixed.interval
    assert lo < 0.8 < hi and hi - lo < 0.1
    beta = profile_loglik_mu(two_point_frame, family="beta", num_grid=32)
    assert not flat_profile(beta)


def test_prior_penalises_the_profile(two_point_frame):
    plain = profile_loglik_mu(two_point_frame, family="two_point", support=(0.1, 0.9))
    penalised = profile_loglik_mu(two_point_frame, family="two_point", support=(0.1, 0.9), mu_prior=(8, 2))
    np.testing.assert_allclose(penalised.loglik, plain.loglik)
    expected = 7.0 * np.log(plain.mu_grid) + np.log1p(-plain.mu_grid)
    np.testing.assert_allclose(penalised.log_prior, expected)
    np.testing.assert_allclose(penalised.objective, plain.loglik + expected)


def test_warn_if_flat_warns_only_for_a_flat_free_mu(two_point_frame):
    stats, _ = count_stats(load_preferences(two_point_frame))
    stats = jax.tree.map(jnp.asarray, stats)
    free = em.EMConfig(family=make_family("two_point"), mu_mode="free")
    with pytest.warns(IdentifiabilityWarning, match="profile likelihood of mu is flat"):
        profile = warn_if_flat(stats, free)
    assert profile is not None and flat_profile(profile)
    fixed = em.EMConfig(family=make_family("two_point", support=(0.1, 0.9)), mu_mode="free")
    with warnings.catch_warnings():
        warnings.simplefilter("error", IdentifiabilityWarning)
        assert not flat_profile(warn_if_flat(stats, fixed))
    assert warn_if_flat(stats, free._replace(mu_mode="known")) is None


def test_plot_profile_draws_the_curve(two_point_frame):
    profile = profile_loglik_mu(two_point_frame, family="two_point", support=(0.1, 0.9))
    ax = plot_profile(profile, label="fixed support")
    x, y = ax.lines[0].get_data()
    np.testing.assert_allclose(x, profile.mu_grid)
    assert np.max(y) == 0.0
    matplotlib.pyplot.close(ax.figure)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"mu_grid": [0.4, 0.6, 0.8]}, "mu_grid"),
        ({"mu_grid": [0.9, 0.8, 0.7]}, "mu_grid"),
        ({"level": 1.5}, "level="),
        ({"mu_prior": (8,)}, "mu_prior="),
        ({"family": "cauchy"}, "family="),
    ],
)
def test_bad_options(options, message):
    with pytest.raises(DataError, match=message):
        profile_loglik_mu({"user": [0, 0, 1], "label": [1, 0, 1]}, **options)


def test_groups_are_refused():
    frame = {"user": [0, 0, 1], "label": [1, 0, 1], "group": ["a", "b", "a"]}
    with pytest.raises(DataError, match="groups"):
        profile_loglik_mu(frame, group_column="group")
