"""Properties of the EM core, checked with hypothesis and brute force (float64)."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jaxpref
from jaxpref.core import driver, em
from jaxpref.io.data import CountStats, compress_counts, label_stats
from jaxpref.core.families import make_family
from jaxpref.core.likelihood import marginal_loglik
from jaxpref.core.posterior import per_label_attentiveness

NUM_USERS = 20
MAX_LABELS = 12
SETTINGS = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])

FAMILIES = {
    "point": make_family("point"),
    "two_point_fixed": make_family("two_point", support=(0.05, 0.95)),
    "two_point_free": make_family("two_point"),
    "beta": make_family("beta", 16),
    "npmle": make_family("npmle", 16),
}
MU_MODES = [("known", (1.0, 1.0)), ("prior", (8.0, 2.0)), ("free", (1.0, 1.0))]


@st.composite
def user_counts(draw, num_groups=1):
    """Per-user (k, n) per group for NUM_USERS users; n >= 1 in total."""
    n = np.array(draw(st.lists(st.integers(0, MAX_LABELS), min_size=NUM_USERS * num_groups,
                               max_size=NUM_USERS * num_groups))).reshape(NUM_USERS, num_groups)
    n[:, 0] = np.maximum(n[:, 0], 1)
    fractions = np.array(draw(st.lists(st.floats(0, 1), min_size=n.size, max_size=n.size))).reshape(n.shape)
    k = np.floor(fractions * (n + 1)).clip(0, n)
    return k.astype(np.float64), n.astype(np.float64)


def per_user_stats(k, n):
    return CountStats(jnp.asarray(k), jnp.asarray(n), jnp.ones(k.shape[0], jnp.float64))


@pytest.mark.parametrize("mode, prior", MU_MODES, ids=[m for m, _ in MU_MODES])
@pytest.mark.parametrize("family", list(FAMILIES))
@SETTINGS
@given(counts=user_counts(), mu=st.floats(0.55, 0.95))
def test_objective_never_decreases(family, mode, prior, counts, mu):
    with jax.enable_x64(True):
        config = em.EMConfig(FAMILIES[family], mode, prior, tol=1e-300, max_iter=40)
        out = driver.fit(em.init(config, jnp.asarray([mu])), per_user_stats(*counts), config, method="em")
        trace = np.asarray(out.objective_trace)[: int(out.num_iter)]
    assert np.all(np.isfinite(trace)) and np.all(np.isnan(np.asarray(out.objective_trace)[int(out.num_iter):]))
    assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:])), np.diff(trace).min()
    assert float(out.objective) >= trace[-1] - 1e-9 * abs(trace[-1])


@SETTINGS
@given(counts=user_counts(num_groups=2), mu=st.tuples(st.floats(0.55, 0.95), st.floats(0.55, 0.95)))
def test_objective_never_decreases_with_groups(counts, mu):
    with jax.enable_x64(True):
        config = em.EMConfig(FAMILIES["npmle"], "prior", (8.0, 2.0), tol=1e-300, max_iter=40)
        out = driver.fit(em.init(config, jnp.asarray(mu)), per_user_stats(*counts), config, method="em")
        trace = np.asarray(out.objective_trace)[: int(out.num_iter)]
    assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:]))


@SETTINGS
@given(counts=user_counts(), mu=st.floats(0.55, 0.95), seed=st.integers(0, 2**16))
def test_posteriors_sum_to_one(counts, mu, seed):
    with jax.enable_x64(True):
        config = em.EMConfig(FAMILIES["npmle"], "known")
        state = em.init(config, jnp.asarray([mu]), jax.random.key(seed))
        _, log_resp = marginal_loglik(per_user_stats(*counts), state.family.eta_grid, state.family.log_weights, state.mu)
        np.testing.assert_allclose(np.exp(np.asarray(log_resp)).sum(axis=1), 1.0, atol=1e-12)


@SETTINGS
@given(counts=user_counts(), mu=st.floats(0.55, 0.95))
def test_compressed_statistics_give_the_same_fit(counts, mu):
    k, n = counts
    with jax.enable_x64(True):
        compressed, _ = compress_counts(k.astype(int), n.astype(int), np.float64)
        config = em.EMConfig(FAMILIES["two_point_free"], "prior", (8.0, 2.0), tol=1e-300, max_iter=30)
        start = em.init(config, jnp.asarray([mu]))
        full = driver.fit(start, per_user_stats(k, n), config, method="em")
        small = driver.fit(start, jax.tree.map(jnp.asarray, compressed), config, method="em")
    assert int(small.num_iter) == int(full.num_iter)
    np.testing.assert_allclose(small.objective_trace, full.objective_trace, rtol=1e-12)
    np.testing.assert_allclose(small.state.mu, full.state.mu, atol=1e-12)
    np.testing.assert_allclose(small.state.family.eta_grid, full.state.family.eta_grid, atol=1e-12)


def frame_strategy():
    return st.lists(
        st.tuples(st.integers(0, 14), st.integers(0, 1)), min_size=30, max_size=30
    ).map(lambda rows: pd.DataFrame(rows, columns=["user", "label"]))


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=frame_strategy(), seed=st.integers(0, 2**16))
def test_permuting_rows_and_renaming_users_changes_nothing(frame, seed):
    rng = np.random.default_rng(seed)
    shuffled = frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)
    shuffled["user"] = "user-" + (shuffled["user"] * 7 + 3).astype(str)
    options = dict(family="two_point", support=(0.1, 0.9), mu=0.8, dtype="float64", num_restarts=1, tol=1e-12)
    original = jaxpref.fit_attentiveness(frame, **options)
    renamed = jaxpref.fit_attentiveness(shuffled, **options)
    np.testing.assert_allclose(renamed.loglik, original.loglik, rtol=1e-10)
    np.testing.assert_allclose(renamed.params["weights"], original.params["weights"], atol=1e-8)
    lookup = original.users.assign(user="user-" + (original.users["user"] * 7 + 3).astype(str)).set_index("user")
    mine = renamed.users.set_index("user").loc[lookup.index]
    np.testing.assert_allclose(mine["eta_mean"], lookup["eta_mean"], atol=1e-8)
    np.testing.assert_array_equal(mine["n_labels"], lookup["n_labels"])


@pytest.mark.parametrize("family", ["npmle", "point"])
def test_per_label_p_equal_to_mu_matches_scalar_mu(family):
    sim = jaxpref.simulate(jax.random.key(3), 60, 10, family="beta", mu=0.8)
    frame = sim.frame.assign(p=0.8)
    options = dict(family=family, num_grid=12, dtype="float64", num_restarts=1, tol=1e-12)
    scalar = jaxpref.fit_attentiveness(frame, mu=0.8, **options)
    per_label = jaxpref.fit_attentiveness(frame, p_column="p", **options)
    np.testing.assert_allclose(per_label.loglik, scalar.loglik, rtol=1e-10)
    np.testing.assert_allclose(per_label.params["eta_grid"], scalar.params["eta_grid"], atol=1e-7)
    np.testing.assert_allclose(per_label.users["eta_mean"], scalar.users["eta_mean"], atol=1e-7)
    np.testing.assert_allclose(per_label.label_attentiveness(), scalar.label_attentiveness(), atol=1e-7)


def brute_force_user_likelihood(labels, p, eta_grid, weights):
    """Sum over every attentive/casual pattern z and every node: no algebra used."""
    total = 0.0
    for eta, weight in zip(eta_grid, weights):
        for pattern in itertools.product((0, 1), repeat=len(labels)):
            probability = weight
            for y, prob_a, z in zip(labels, p, pattern):
                chose = prob_a if y == 1 else 1 - prob_a
                probability *= eta * chose if z else (1 - eta) * 0.5
            total += probability
    return total


@settings(max_examples=10, deadline=None)
@given(
    labels=st.lists(st.integers(0, 1), min_size=1, max_size=6),
    p_value=st.floats(0.05, 0.95),
    weights=st.lists(st.floats(0.01, 1.0), min_size=3, max_size=3),
)
def test_likelihood_and_label_posterior_match_brute_force(labels, p_value, weights):
    eta_grid = np.array([0.0, 0.4, 1.0])
    weights = np.array(weights) / np.sum(weights)
    p = np.full(len(labels), p_value)
    expected = brute_force_user_likelihood(labels, p, eta_grid, weights)
    frame = pd.DataFrame({"user": 0, "label": labels, "p": p})
    with jax.enable_x64(True):
        data = jaxpref.load_preferences(frame, p_column="p")
        stats = jax.tree.map(jnp.asarray, label_stats(data, np.float64))
        per_row, log_resp = marginal_loglik(stats, jnp.asarray(eta_grid), jnp.log(jnp.asarray(weights)), jnp.zeros(1))
    np.testing.assert_allclose(float(per_row[0]), np.log(expected), rtol=1e-10)
    # P(z_1 = 1 | data) by brute force: patterns with z_1 = 1 over all patterns.
    attentive_first = 0.0
    for eta, weight in zip(eta_grid, weights):
        rest = brute_force_user_likelihood(labels[1:], p[1:], [eta], [weight]) if len(labels) > 1 else weight
        chose = p[0] if labels[0] == 1 else 1 - p[0]
        attentive_first += eta * chose * rest
    with jax.enable_x64(True):
        got = per_label_attentiveness(np.asarray(log_resp), eta_grid, np.zeros(len(labels), int), p, np.asarray(labels))
    np.testing.assert_allclose(got[0], attentive_first / expected, rtol=1e-8)


def test_float32_expected_counts_stay_accurate_over_millions_of_rows():
    """The E-step sums over rows must not lose float32 precision as rows grow: a matrix product over
    8e6 rows on CPU had 1e-5 relative error (growing with the rows), which biased mu and stalled
    SQUAREM at 1e7 users; XLA's reductions stay at 5e-7."""
    from jaxpref.core.likelihood import expected_counts

    rng = np.random.default_rng(0)
    num_rows = 1 << 23
    resp = rng.dirichlet([1.0, 1.0], num_rows)
    k = rng.integers(0, 11, (num_rows, 1)).astype(np.float64)
    stats = CountStats(jnp.asarray(k, jnp.float32), jnp.full((num_rows, 1), 10.0, jnp.float32),
                       jnp.ones(num_rows, jnp.float32))
    counts = jax.jit(expected_counts)(stats, jnp.asarray([0.1, 0.9], jnp.float32), jnp.asarray([0.8], jnp.float32),
                                      jnp.asarray(resp, jnp.float32))
    np.testing.assert_allclose(np.asarray(counts.labels)[:, 0], 10.0 * resp.sum(axis=0), rtol=2e-6)
    pref_a = resp.T @ k
    attentive_a = pref_a[:, 0] * np.array([0.1, 0.9]) * 0.8 / (0.5 + np.array([0.1, 0.9]) * 0.3)
    np.testing.assert_allclose(np.asarray(counts.attentive_pref_a)[:, 0], attentive_a, rtol=2e-6)
