"""Monitoring in the jaxpref model: success probabilities, Fisher information, sample complexity."""

from __future__ import annotations

from math import comb

import contracts_reference as ref
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from jaxpref.contracts.monitoring import (
    comparison_monitor,
    crossover_action,
    estimate_action,
    ex_monitor,
    ex_scores,
    fisher_bernoulli,
    monitor_fisher,
    phi_comparison,
    phi_ex,
    phi_sc,
    sample_complexity,
    sc_beats_ex,
    sc_loglik_grid,
    sc_monitor,
    sc_scores,
    simulate_annotators,
)

NUM_ANNOTATORS, NUM_ITEMS = 4, 250_000  # 10^6 monitoring units
ACTIONS = np.array([0.2, 0.5, 0.8, 1.0])
actions = st.floats(0.01, 1.0)


def _heterogeneous_tastes(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Annotator tastes p_ij scattered around a shared item-level taste, plus an expert's."""
    rng = np.random.default_rng(seed)
    shared = rng.uniform(0.1, 0.9, NUM_ITEMS)
    own = np.clip(shared[None, :] + rng.normal(0.0, 0.15, (NUM_ANNOTATORS, NUM_ITEMS)), 0.0, 1.0)
    expert = np.clip(shared + rng.normal(0.0, 0.15, NUM_ITEMS), 0.0, 1.0)
    return own, expert


def _within_three_se(scores: np.ndarray, expected: np.ndarray) -> None:
    mean = scores.mean(axis=1)
    se = np.sqrt(expected * (1.0 - expected) / scores.shape[1])
    np.testing.assert_array_less(np.abs(mean - expected), 3.0 * se)


def test_phi_sc_matches_simulation():
    own, expert = _heterogeneous_tastes(0)
    sample = simulate_annotators(jax.random.key(0), ACTIONS, own, expert)
    m2 = np.mean((own - 0.5) ** 2, axis=1)
    _within_three_se(
        np.asarray(sc_scores(sample.labels, sample.duplicate_labels)), np.asarray(phi_sc(ACTIONS, m2))
    )


def test_phi_ex_matches_simulation():
    own, expert = _heterogeneous_tastes(1)
    sample = simulate_annotators(jax.random.key(1), ACTIONS, own, expert)
    rho = np.mean((own - 0.5) * (expert - 0.5)[None, :], axis=1)
    _within_three_se(
        np.asarray(ex_scores(sample.labels, sample.expert_labels)), np.asarray(phi_ex(ACTIONS, rho))
    )


@settings(deadline=None, max_examples=30)
@given(actions, st.floats(0.001, 0.25), st.floats(-0.25, 0.25), st.floats(0.01, 0.99))
def test_fisher_closed_forms(a, m2, rho, mu):
    np.testing.assert_allclose(monitor_fisher(sc_monitor(m2), a), ref.fisher_sc(a, m2), rtol=1e-10)
    np.testing.assert_allclose(
        monitor_fisher(ex_monitor(rho), a), ref.fisher_ex(a, rho), rtol=1e-10, atol=1e-300
    )
    np.testing.assert_allclose(
        monitor_fisher(comparison_monitor(mu), a), ref.fisher_comparison(a, mu), rtol=1e-10
    )


def test_fisher_bernoulli_takes_any_phi():
    with jax.enable_x64(True):
        got = fisher_bernoulli(lambda a: phi_comparison(a, 0.8), jnp.asarray([0.3, 0.9]))
    np.testing.assert_allclose(got, ref.fisher_comparison(np.array([0.3, 0.9]), 0.8), rtol=1e-12)


@settings(deadline=None, max_examples=60)
@given(actions, st.floats(0.001, 0.25), st.floats(-0.25, 0.25))
def test_sc_vs_ex_crossover(a, m2, rho):
    criterion = 4 * a**2 * m2**2 - rho**2 - 48 * a**4 * m2**2 * rho**2
    if abs(criterion) < 1e-12:  # a tie within round-off has no sign to compare
        return
    assert bool(sc_beats_ex(a, m2, rho)) == (criterion > 0)


@pytest.mark.parametrize(("m2", "rho"), [(0.08, 0.02), (0.02, 0.01), (0.08, 0.08), (0.2, 0.05)])
def test_crossover_action_is_the_lowest_tie(m2, rho):
    a_cross = float(crossover_action(m2, rho))
    np.testing.assert_allclose(ref.fisher_sc(a_cross, m2), ref.fisher_ex(a_cross, rho), rtol=1e-8)
    assert not bool(sc_beats_ex(0.9 * a_cross, m2, rho))
    assert bool(sc_beats_ex(min(1.1 * a_cross, 1.0), m2, rho)) or a_cross > 0.95


def test_crossover_action_nan_when_expert_always_wins():
    assert np.isnan(float(crossover_action(0.02, 0.08)))  # |rho| > 2 m2: no a in [0, 1] favours SC


@settings(deadline=None, max_examples=40)
@given(st.floats(0.01, 1.0), st.floats(0.501, 0.999))
def test_sc_info_below_label_info(eta, mu):
    """With shared tastes a duplicate pair is two comparison labels: I_SC <= 2 I_C (data processing)."""
    sc = monitor_fisher(sc_monitor((mu - 0.5) ** 2), eta)
    comparison = monitor_fisher(comparison_monitor(mu), eta)
    assert float(sc) <= 2.0 * float(comparison) * (1.0 + 1e-12)


@pytest.mark.parametrize(("monitor", "a"), [(sc_monitor(0.08), 0.6), (ex_monitor(0.1), 0.5)])
def test_estimator_coverage(monitor, a):
    eps, delta, replications = 0.05, 0.05, 2000
    units = int(sample_complexity(a, monitor, eps, delta))
    phi = 0.5 + monitor.scale * a**monitor.power
    successes = jax.random.binomial(jax.random.key(7), units, phi, shape=(replications,))
    estimates = np.asarray(estimate_action(np.asarray(successes, dtype=np.float64), units, monitor))
    coverage = np.mean(np.abs(estimates - a) <= eps)
    assert abs(coverage - (1.0 - delta)) < 0.02


def test_sample_complexity_matches_cramer_rao_formula():
    z = stats.norm.ppf(0.975)
    got = sample_complexity(np.array([0.3, 0.6, 0.9]), sc_monitor(0.08), 0.05, 0.05)
    np.testing.assert_array_equal(
        got, np.ceil(z**2 / (ref.fisher_sc(np.array([0.3, 0.6, 0.9]), 0.08) * 0.05**2))
    )
    assert np.isinf(float(sample_complexity(0.5, ex_monitor(0.0), 0.05, 0.05)))  # an uninformative expert


def test_estimate_action_inverts_phi_and_clips():
    monitor = sc_monitor(0.1)
    np.testing.assert_allclose(
        estimate_action(np.asarray(phi_sc(0.7, 0.1)) * 1000, 1000, monitor), 0.7, rtol=1e-12
    )
    assert float(estimate_action(400, 1000, monitor)) == 0.0  # below 1/2: no evidence of effort
    assert float(estimate_action(1000, 1000, monitor)) == 1.0


def test_sc_loglik_grid_is_binomial_loglik_without_constant():
    eta = np.linspace(0.0, 1.0, 5)
    consistent, pairs, mu = np.array([3.0, 10.0]), np.array([10.0, 12.0]), 0.8
    phi = 0.5 + 2.0 * eta**2 * (mu - 0.5) ** 2
    log_binomial_coefficient = np.log([comb(int(d), int(c)) for c, d in zip(consistent, pairs)])
    expected = (
        stats.binom.logpmf(consistent[:, None], pairs[:, None], phi[None, :])
        - log_binomial_coefficient[:, None]
    )
    np.testing.assert_allclose(sc_loglik_grid(eta, consistent, pairs, mu), expected, rtol=1e-12)


@pytest.mark.parametrize(
    ("build", "value", "name"),
    [(sc_monitor, 0.3, "m2"), (ex_monitor, -0.3, "rho"), (comparison_monitor, 1.2, "mu")],
)
def test_monitor_constructors_reject_out_of_range(build, value, name):
    with pytest.raises(ValueError, match=name):
        build(value)


def test_simulate_annotators_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="num_annotators"):
        simulate_annotators(jax.random.key(0), np.array([0.5, 0.5]), np.full((3, 4), 0.6))
