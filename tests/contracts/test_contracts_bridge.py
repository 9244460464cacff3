"""The bridge from the EM posterior to binary contracts (jaxpref.contracts.bridge)."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from scipy import stats

import jaxpref
from jaxpref.contracts.agent import economy
from jaxpref.contracts.bridge import posterior_bonus_rule
from jaxpref.contracts.monitoring import comparison_monitor
from jaxpref.contracts.principal import binary_contract, binary_contract_at_cutoff


def _bayes_reference(eta_grid, weights, mu, n, threshold):
    """P(eta >= threshold | k of n) by plain Bayes with SciPy's binomial pmf."""
    counts = np.arange(n + 1)
    likelihood = stats.binom.pmf(counts[:, None], n, 0.5 + np.asarray(eta_grid)[None, :] * (mu - 0.5))
    joint = likelihood * np.asarray(weights)[None, :]
    return (joint * (np.asarray(eta_grid) >= threshold)).sum(axis=1) / joint.sum(axis=1)


@pytest.mark.parametrize("level", [0.5, 0.9])
def test_posterior_rule_matches_bayes_and_is_a_cutoff(level):
    eta_grid, weights = np.array([0.1, 0.4, 0.9]), np.array([0.3, 0.3, 0.4])
    rule = posterior_bonus_rule(eta_grid, weights, 0.74, 40, threshold=0.5, level=level)
    expected = _bayes_reference(eta_grid, weights, 0.74, 40, 0.5)
    np.testing.assert_allclose(rule.prob_attentive, expected, rtol=1e-10, atol=1e-14)
    assert rule.monotone
    assert rule.cutoff == int(np.flatnonzero(expected >= level)[0])


def test_posterior_rule_agrees_with_fitted_em_users_table():
    n = 30
    sim = jaxpref.simulate(
        jax.random.key(3), 400, n, family="two_point", mu=0.74, support=(0.1, 0.9), weight_hi=0.6
    )
    model = jaxpref.AttentivenessEM(family="two_point", mu=0.74, threshold=0.5, num_restarts=1).fit(sim.frame)
    rule = posterior_bonus_rule(
        model.params_["eta_grid"], model.params_["weights"], 0.74, n, threshold=0.5, level=0.9
    )
    users = model.users_
    np.testing.assert_allclose(
        rule.prob_attentive[users["n_pref_a"].to_numpy()], users["prob_attentive"], atol=1e-4
    )
    # Away from ties at the level, the EM's rule and the cutoff pay the same users.
    clear = np.abs(users["prob_attentive"].to_numpy() - 0.9) > 1e-3
    paid_by_em = users["prob_attentive"].to_numpy() >= 0.9
    np.testing.assert_array_equal(paid_by_em[clear], (users["n_pref_a"].to_numpy() >= rule.cutoff)[clear])


def test_rule_at_optimal_cutoff_is_the_optimal_binary_contract():
    econ = economy(comparison_monitor(0.74), 50)
    optimal = binary_contract(econ, 0.8)
    priced = binary_contract_at_cutoff(econ, 0.8, optimal.cutoff)
    np.testing.assert_allclose(
        [float(priced.gap), float(priced.bonus_utility)],
        [float(optimal.gap), float(optimal.bonus_utility)],
        rtol=1e-12,
    )
    assert bool(priced.incentive_compatible)
    # A strict cutoff (bonus only above the mean count) cannot stop the annotator from shirking.
    assert not bool(binary_contract_at_cutoff(econ, 0.8, 45.0).incentive_compatible)


def test_posterior_rule_rejects_bad_input():
    with pytest.raises(ValueError, match="mu"):
        posterior_bonus_rule([0.1, 0.9], [0.5, 0.5], 0.5, 10)
    with pytest.raises(ValueError, match="same length"):
        posterior_bonus_rule([0.1, 0.9], [1.0], 0.74, 10)
