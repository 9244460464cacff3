"""The dense fixed-table EM path: NumPy parity, chunk invariance, the underflow fallback, float64 agreement."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference_em import user_log_lik
from scipy.special import logsumexp

from jaxpref.core import dense, driver, em
from jaxpref.io.data import CountStats, LabelStats
from jaxpref.core.families import make_family
from jaxpref.core.likelihood import LogLikTable, marginal_loglik

SETTINGS = settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NUM_USERS, NUM_GRID = 30, 9


def random_labels(seed, num_users=NUM_USERS, max_labels=15):
    """Per-label data with per-label p, users with 1..max_labels labels each."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, max_labels + 1, num_users)
    rows = np.repeat(np.arange(num_users), counts)
    p = rng.uniform(0.51, 0.99, rows.size)
    eta = rng.uniform(0, 1, num_users)[rows]
    labels = (rng.uniform(size=rows.size) < 0.5 + eta * (p - 0.5)).astype(np.float64)
    return rows, labels, p


def numpy_em_step(table, multiplicity, weights):
    """One plain EM step for fixed-node weights: w_g <- mean_j posterior_jg (independent NumPy)."""
    log_joint = table + np.log(weights)[None, :]
    per_row = logsumexp(log_joint, axis=1)
    posterior = np.exp(log_joint - per_row[:, None])
    return multiplicity @ posterior / multiplicity.sum(), float(multiplicity @ per_row)


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), chunk_size=st.sampled_from([1, 7, 64]))
def test_label_table_matches_numpy(seed, chunk_size):
    rows, labels, p = random_labels(seed)
    grid = np.linspace(0, 1, NUM_GRID)
    users = [{"labels": labels[rows == j], "p": p[rows == j]} for j in range(NUM_USERS)]
    with jax.enable_x64(True):
        table = dense.label_log_lik_table(jnp.asarray(rows), jnp.asarray(labels), jnp.asarray(p), jnp.asarray(grid),
                                          num_rows=NUM_USERS, chunk_size=chunk_size)
    np.testing.assert_allclose(table, user_log_lik(grid, users, None), rtol=1e-12, atol=1e-12)


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), chunk_size=st.sampled_from([1, 4, 13, 4096]))
def test_step_matches_numpy(seed, chunk_size):
    rng = np.random.default_rng(seed)
    table = -rng.gamma(2.0, 4.0, (NUM_USERS, NUM_GRID))
    multiplicity = rng.integers(0, 4, NUM_USERS).astype(np.float64)
    multiplicity[0] = 1.0
    weights = rng.dirichlet(np.ones(NUM_GRID))
    expected_weights, expected_loglik = numpy_em_step(table, multiplicity, weights)
    with jax.enable_x64(True):
        config = em.EMConfig(make_family("npmle", NUM_GRID), "per_label")
        state = em.init(config, jnp.asarray([0.75]))
        state = state._replace(family=state.family._replace(log_weights=jnp.log(jnp.asarray(weights))))
        table_stats = dense.dense_table(LogLikTable(jnp.asarray(table), jnp.asarray(multiplicity)),
                                        chunk_size=chunk_size)
        new_state, info = dense.step(state, table_stats, config)
    np.testing.assert_allclose(np.exp(new_state.family.log_weights), expected_weights, rtol=1e-10)
    np.testing.assert_allclose(float(info.loglik), expected_loglik, rtol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_underflowing_rows_use_the_exact_fallback(dtype):
    """A user whose likelihood favours a node with ~zero weight by 200 nats: ``scaled`` underflows there."""
    table = np.zeros((8, 4))
    table[:, 1:] = -1.0
    table[0] = [0.0, -200.0, -800.0, -900.0]
    weights = np.asarray([1e-30, 0.5, 0.25, 0.25])
    weights /= weights.sum()
    expected_weights, expected_loglik = numpy_em_step(table, np.ones(8), weights)
    with jax.enable_x64(dtype == "float64"):
        config = em.EMConfig(make_family("npmle", 4), "per_label")
        state = em.init(config, jnp.asarray([0.75], dtype))
        state = state._replace(family=state.family._replace(log_weights=jnp.log(jnp.asarray(weights, dtype))))
        new_state, info = dense.step(state, dense.dense_table(LogLikTable(jnp.asarray(table, dtype), jnp.ones(8, dtype)),
                                                              chunk_size=4), config)
    np.testing.assert_allclose(np.exp(np.asarray(new_state.family.log_weights, np.float64)), expected_weights,
                               rtol=1e-5, atol=1e-30)
    np.testing.assert_allclose(float(info.loglik), expected_loglik, rtol=1e-6)


def test_starts_vmapped_together_share_the_exact_pass_and_each_gets_its_own_step():
    """Under fit_restarts' vmap (axis `em.RESTART_AXIS`) the exact pass is decided for all starts at
    once, so it stays a branch; a start that needs it and one that does not each get the NumPy step."""
    table = np.zeros((8, 4))
    table[:, 1:] = -1.0
    table[0] = [0.0, -200.0, -800.0, -900.0]
    underflowing = np.asarray([1e-30, 0.5, 0.25, 0.25])
    plain = np.asarray([0.4, 0.3, 0.2, 0.1])
    config = em.EMConfig(make_family("npmle", 4), "per_label")
    template = em.init(config, jnp.asarray([0.75]))
    stats = dense.dense_table(LogLikTable(jnp.asarray(table, jnp.float32), jnp.ones(8)), chunk_size=4)

    def one_step(log_weights):
        state = template._replace(family=template.family._replace(log_weights=log_weights))
        new_state, info = dense.step(state, stats, config)
        return new_state.family.log_weights, info.loglik

    starts = jnp.log(jnp.asarray(np.stack([underflowing, plain]), jnp.float32))
    together = jax.vmap(one_step, axis_name=em.RESTART_AXIS)
    assert " cond[" in str(jax.make_jaxpr(together)(starts))  # a branch, not a select of both
    log_weights, logliks = together(starts)
    for index, weights in enumerate((underflowing, plain)):
        expected_weights, expected_loglik = numpy_em_step(table, np.ones(8), weights)
        np.testing.assert_allclose(np.exp(np.asarray(log_weights[index], np.float64)), expected_weights,
                                   rtol=1e-5, atol=1e-30)
        np.testing.assert_allclose(float(logliks[index]), expected_loglik, rtol=1e-6)


@pytest.mark.parametrize("family", ["two_point", "beta", "npmle"])
def test_float64_fit_matches_the_log_space_path(family):
    """A full float64 fit on the dense table agrees with the same fit on the log-space path (jaxpref.core.em.step):
    the same objective, and the same fitted per-user likelihoods.

    The npmle weights are not asserted: on a fine grid neighbouring nodes trade mass along a flat ridge, so
    two fits that agree to 1e-9 in the objective can differ by 1e-6 in the weights (seen on some machines).
    The per-user marginal likelihoods f_j are what the NPMLE pins down (the objective is strictly concave
    in them), so they are compared instead; the identified two_point weights and Beta shapes are compared too.
    """
    rows, labels, p = random_labels(1, num_users=200)
    spec = make_family(family, 16, (0.1, 0.9) if family == "two_point" else None)
    with jax.enable_x64(True):
        stats = LabelStats(jnp.asarray(rows, jnp.int32), jnp.asarray(labels), jnp.asarray(p), jnp.ones(200))
        config = em.EMConfig(spec, "per_label", tol=1e-13, max_iter=3000)
        start = em.init(config, jnp.asarray([0.75]))
        plain = driver.fit(start, stats, config, method="em")
        reference = driver.fit(start, stats, config)
        fast = driver.fit(start, dense.dense_table(stats, start.family.eta_grid, chunk_size=64), config)
        per_user = [np.asarray(marginal_loglik(stats, fit.state.family.eta_grid, fit.state.family.log_weights,
                                               fit.state.mu)[0]) for fit in (reference, fast)]
    # Plain EM may stop short on npmle's flat ridge; the accelerated fits must be at least as good.
    assert float(fast.objective) >= float(plain.objective) - 1e-10 * abs(float(plain.objective))
    np.testing.assert_allclose(float(fast.objective), float(reference.objective), rtol=1e-10)
    np.testing.assert_allclose(per_user[1], per_user[0], atol=1e-6)
    if family != "npmle":
        np.testing.assert_allclose(fast.state.family.beta_shape, reference.state.family.beta_shape, rtol=1e-6)
        np.testing.assert_allclose(np.exp(fast.state.family.log_weights),
                                   np.exp(reference.state.family.log_weights), rtol=1e-6)


def test_count_stats_with_known_mu_give_the_same_table():
    with jax.enable_x64(True):
        counts = CountStats(jnp.asarray([[3.0, 1.0], [0.0, 4.0]]), jnp.asarray([[5.0, 2.0], [1.0, 6.0]]),
                            jnp.asarray([2.0, 1.0]))
        grid, mu = jnp.linspace(0, 1, 5), jnp.asarray([0.7, 0.9])
        table = dense.dense_table(counts, grid, mu, chunk_size=3)
    grid = np.linspace(0, 1, 5)
    expected = (3 * np.log(0.5 + 0.2 * grid) + 2 * np.log(0.5 - 0.2 * grid)
                + np.log(0.5 + 0.4 * grid) + np.log(0.5 - 0.4 * grid))
    np.testing.assert_allclose(table.log_table[0, 0], expected, rtol=1e-12)
    np.testing.assert_allclose(table.multiplicity, [2.0, 1.0, 0.0])
    back = dense.to_log_lik_table(table, 2)
    np.testing.assert_allclose(back.table[0], expected, rtol=1e-12)
    np.testing.assert_allclose(back.multiplicity, [2.0, 1.0])


@pytest.mark.parametrize("spec, mode", [(make_family("two_point"), "known"), (make_family("npmle", 4), "prior")])
def test_moving_parameters_are_rejected(spec, mode):
    config = em.EMConfig(spec, mode)
    table = dense.dense_table(LogLikTable(jnp.zeros((2, spec.num_nodes)), jnp.ones(2)))
    with pytest.raises(ValueError, match="moves the nodes or mu"):
        dense.step(em.init(config, jnp.asarray([0.8])), table, config)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="chunk_size=0"):
        dense.dense_table(LogLikTable(jnp.zeros((2, 3)), jnp.ones(2)), chunk_size=0)
    with pytest.raises(TypeError, match="cannot be tabulated"):
        dense.dense_table({"table": jnp.zeros((2, 3))})
    with pytest.raises(ValueError, match="eta_grid is needed"):
        dense.dense_table(LabelStats(jnp.zeros(2, jnp.int32), jnp.ones(2), jnp.ones(2) * 0.7, jnp.ones(1)))
