"""Agent and principal in the jaxpref model: NumPy/SciPy parity, first best, rates, global IC."""

from __future__ import annotations

import contracts_reference as ref
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxpref.contracts.agent import best_response, economy, expected_utility
from jaxpref.contracts.general import general_contract
from jaxpref.contracts.monitoring import ex_monitor, monitor_fisher, sc_monitor
from jaxpref.contracts.principal import (
    binary_contract,
    binary_contract_two_actions,
    contract_wages,
    first_best,
    fit_rate,
    gap_curve,
    linear_contract,
    second_best,
)

MONITORS = {"ex": (ex_monitor(0.2), (0.4, 1.0)), "sc": (sc_monitor(0.15), (0.3, 2.0))}
RATE_NS = 2.0 ** np.arange(6, 13)


def _pair(name: str, n: int, **kwargs):
    monitor, (scale, power) = MONITORS[name]
    return economy(monitor, n, **kwargs), ref.Params(scale, power, n, **_reference_names(kwargs))


def _reference_names(kwargs: dict) -> dict:
    names = {"risk_aversion": "rho", "cost_scale": "kappa", "cost_power": "gamma", "outside_utility": "u0"}
    return {names.get(key, key): value for key, value in kwargs.items()}


@settings(deadline=None, max_examples=15)
@given(
    st.sampled_from([1, 7, 30]),
    st.floats(0.0, 1.0),
    st.one_of(st.just(0.0), st.floats(0.01, 2.5)),
    st.integers(0, 2**31 - 1),
)
def test_expected_utility_matches_reference(n, a, rho, seed):
    econ, params = _pair("sc", n, risk_aversion=rho)
    wages = np.random.default_rng(seed).normal(size=n + 1)
    np.testing.assert_allclose(
        expected_utility(wages, a, econ), ref.expected_utility(wages, a, params), rtol=1e-11, atol=1e-13
    )


@pytest.mark.parametrize("name", ["ex", "sc"])
def test_first_best_matches_reference(name):
    econ, params = _pair(name, 50, cost_scale=0.8, outside_utility=0.1)
    fb = first_best(econ)
    a_ref, v_ref = ref.first_best(params)
    np.testing.assert_allclose([float(fb.action), float(fb.value)], [a_ref, v_ref], rtol=1e-8)


@pytest.mark.parametrize("name", ["ex", "sc"])
@pytest.mark.parametrize("n", [40, 150])
def test_linear_contract_matches_reference(name, n):
    econ, params = _pair(name, n, risk_aversion=1.5)
    contract, expected = linear_contract(econ, 0.7), ref.linear_contract(params, 0.7)
    np.testing.assert_allclose(
        [float(contract.intercept), float(contract.slope), float(contract.gap)],
        [expected["intercept"], expected["slope"], expected["gap"]],
        rtol=1e-9,
    )
    assert bool(contract.incentive_compatible) == expected["feasible"]


@pytest.mark.parametrize("name", ["ex", "sc"])
@pytest.mark.parametrize("n", [40, 150])
def test_binary_contract_matches_reference(name, n):
    econ, params = _pair(name, n)
    contract, expected = binary_contract(econ, 0.7), ref.binary_contract(params, 0.7)
    assert bool(contract.incentive_compatible)
    assert int(contract.cutoff) == expected["cutoff"]
    np.testing.assert_allclose(
        [float(contract.bonus_utility), float(contract.low_utility), float(contract.gap)],
        [expected["bonus_utility"], expected["low_utility"], expected["gap"]],
        rtol=1e-9,
    )


def test_two_action_contract_matches_reference():
    econ, params = _pair("ex", 60)
    np.testing.assert_allclose(
        float(binary_contract_two_actions(econ, 0.8, 0.4).gap),
        ref.binary_two_actions(params, 0.8, 0.4),
        rtol=1e-8,
    )


@pytest.mark.parametrize("name", ["ex", "sc"])
def test_general_contract_matches_reference(name):
    econ, params = _pair(name, 30)
    contract = general_contract(econ, 0.7)
    assert bool(contract.converged)
    np.testing.assert_allclose(float(contract.gap), ref.general_contract(params, 0.7), rtol=1e-5)


def test_contracts_broadcast_over_annotators_and_n():
    econ = economy(sc_monitor(0.1), 100)
    batched = econ._replace(
        monitor=econ.monitor._replace(scale=np.array([0.16, 0.3])), num_samples=np.array([[64.0], [256.0]])
    )
    contracts = linear_contract(batched, 0.7)
    assert contracts.gap.shape == (2, 2)
    one = linear_contract(economy(sc_monitor(0.15), 256), 0.7)
    np.testing.assert_allclose(float(contracts.gap[1, 1]), float(one.gap), rtol=1e-12)


def test_risk_neutral_linear_attains_first_best():
    econ = economy(ex_monitor(0.2), 100, risk_aversion=0.0)
    result = second_best(
        econ._replace(num_samples=np.array([10.0, 100.0, 1000.0, 10000.0])), "linear", num_zooms=12
    )
    np.testing.assert_array_less(np.abs(np.asarray(result.gap)), 1e-10)


@pytest.mark.parametrize("outside_utility", [None, 0.2])
def test_linear_gap_closed_form(outside_utility):
    """Gaussian scores, fixed a: gap = rho c'^2 / (2 u'^2 I n), u' = 1 - rho (c + u0) the marginal utility
    at the certainty equivalent (docs/contracts.md writes it with u' = 1 - rho_u (c(a) + u0))."""
    a, rho, n = 0.7, 1.5, np.array([1e8, 1e9])
    cost, marginal = a**3 / 3, a**2
    u0 = -cost if outside_utility is None else outside_utility
    econ = economy(ex_monitor(0.2), 1, risk_aversion=rho, outside_utility=u0, min_wage=-np.inf)
    contract = linear_contract(econ._replace(num_samples=n), a, gaussian=True)
    marginal_utility = 1.0 - rho * (cost + u0)
    expected = rho * marginal**2 / (2.0 * marginal_utility**2 * ref.fisher_ex(a, 0.2) * n)
    np.testing.assert_allclose(contract.gap, expected, rtol=1e-6)


def test_gaussian_linear_gap_approaches_exact():
    econ = economy(ex_monitor(0.2), 1)._replace(num_samples=np.array([1e3, 1e5]))
    exact, gaussian = linear_contract(econ, 0.7).gap, linear_contract(econ, 0.7, gaussian=True).gap
    relative = np.abs(np.asarray(gaussian / exact) - 1.0)
    assert relative[1] < relative[0] and relative[1] < 1e-3


def test_linear_rate():
    ns = 2.0 ** np.arange(6, 15)
    fit = fit_rate(ns, gap_curve(economy(ex_monitor(0.2), 1), "linear", ns))
    assert -1.05 <= fit.slope <= -0.95


@pytest.fixture(scope="module")
def binary_vs_linear():
    """Fixed target a = a_FB (an upper bound on the second-best gap, equal to leading order)."""
    econ = economy(ex_monitor(0.2), 1)
    a = float(first_best(econ).action)
    batch = econ._replace(num_samples=RATE_NS)
    return a, binary_contract(batch, a), linear_contract(batch, a)


def test_binary_rate(binary_vs_linear):
    a, binary, linear = binary_vs_linear
    assert bool(np.all(binary.incentive_compatible))
    fit = fit_rate(RATE_NS, binary.gap, log_correction=True)
    assert -0.6 <= fit.slope <= -0.4
    phi = 0.5 + 0.4 * a
    z = (RATE_NS * phi - np.asarray(binary.cutoff)) / np.sqrt(RATE_NS * phi * (1.0 - phi))
    # Lenient and growing: z^2 = log(I n) + O(log log n). A first sketch wrote z ~ sqrt(2 log(I n)),
    # but its own sketch, phi(z) ~ c' / (c sqrt(I n)), gives z^2 ~ log(I n): the square root halves
    # the log. The measured slope of z^2 on log n is about 0.9.
    assert np.all(z > 0.0) and np.all(np.diff(z) > 0.0)
    assert 0.7 <= np.polyfit(np.log(RATE_NS), z**2, 1)[0] <= 1.3
    assert np.all(np.diff(np.asarray(binary.gap / linear.gap)) > 0.0)


def test_second_best_binary_no_worse_than_fixed_target(binary_vs_linear):
    a, binary, _ = binary_vs_linear
    result = second_best(economy(ex_monitor(0.2), int(RATE_NS[2])), "binary", num_zooms=2)
    assert 0.0 < float(result.gap) <= float(binary.gap[2]) + 1e-12


def test_gap_depends_on_I_times_n():
    """SC and EX monitors with equal I(a) at the target give the same linear gap (to leading order)."""
    a, m2 = 0.7, 0.15
    information = ref.fisher_sc(a, m2)
    rho = np.sqrt(information / (16.0 * (1.0 + a**2 * information)))  # solves I_EX(a; rho) = I_SC(a; m2)
    np.testing.assert_allclose(float(monitor_fisher(ex_monitor(rho), a)), information, rtol=1e-12)
    ns = np.array([1e3, 1e5])
    sc = linear_contract(economy(sc_monitor(m2), 1)._replace(num_samples=ns), a).gap
    ex = linear_contract(economy(ex_monitor(rho), 1)._replace(num_samples=ns), a).gap
    ratio = np.abs(np.asarray(sc / ex) - 1.0)
    assert ratio[0] < 0.02 and ratio[1] < 1e-3


@pytest.mark.parametrize("kind", ["binary", "linear"])
@pytest.mark.parametrize("name", ["ex", "sc"])
def test_global_ic(kind, name):
    econ, _ = _pair(name, 200)
    solve = binary_contract if kind == "binary" else linear_contract
    for a in (0.3, 0.6, 0.9):
        contract = solve(econ, a)
        assert bool(contract.incentive_compatible)
        assert abs(float(best_response(contract_wages(contract, 200), econ)) - a) <= 1.0 / 2048


def test_quadratic_cost_sc_linear_is_flagged_not_ic():
    """gamma = 2 on self-consistency: beta phi(a') - c(a') is flat in a'
    (docs/contracts.md, "Global IC, checked"), so the (risk-neutral) agent is indifferent and the
    contract is flagged; gamma = 3 is fine."""
    flat = linear_contract(economy(sc_monitor(0.15), 200, cost_power=2.0, risk_aversion=0.0), 0.6)
    assert not bool(flat.incentive_compatible)
    assert bool(
        linear_contract(
            economy(sc_monitor(0.15), 200, cost_power=3.0, risk_aversion=0.0), 0.6
        ).incentive_compatible
    )


def test_general_contract_not_better_than_rate():
    """General (Mirrlees) contract: rho c'^2 / (2 u'^2 I n) (1 - o(1)) <= gap <= linear gap."""
    a = 0.7
    for n in (50, 100, 200):
        econ = economy(ex_monitor(0.2), n)
        general, linear = general_contract(econ, a), linear_contract(econ, a)
        assert bool(general.converged)
        bound = a**4 / (2.0 * (1.0 - a**3 / 3.0) ** 2 * ref.fisher_ex(a, 0.2) * n)
        assert 0.9 * bound <= float(general.gap) <= float(linear.gap) + 1e-12
    assert abs(float(best_response(general.wages, econ)) - a) <= 1.0 / 2048  # n = 200: globally IC


def test_discrete_actions_exponential():
    """Two actions: the binary gap decays like exp(-kappa n): log gap is linear in n, not in log n."""
    ns = np.arange(10.0, 130.0, 10.0)
    gaps = np.asarray(
        binary_contract_two_actions(economy(ex_monitor(0.2), 1)._replace(num_samples=ns), 0.8, 0.4).gap
    )
    log_gap = np.log(gaps)
    residuals = log_gap - np.polyval(np.polyfit(ns, log_gap, 1), ns)
    assert np.polyfit(ns, log_gap, 1)[0] < -0.1 and 1.0 - residuals.var() / log_gap.var() > 0.98
    # A power law has a constant log-log slope; exp(-kappa n) has slope -kappa n, steepening with n.
    first, second = (
        np.polyfit(np.log(ns[half]), log_gap[half], 1)[0] for half in (slice(0, 6), slice(6, 12))
    )
    assert second < 1.5 * first < 0.0


def test_fit_rate_recovers_slope_and_log_correction():
    ns = 2.0 ** np.arange(4, 16)
    np.testing.assert_allclose(fit_rate(ns, 3.0 / ns).slope, -1.0, atol=1e-12)
    fit = fit_rate(ns, 1.0 / np.sqrt(ns * np.log(ns)), log_correction=True)
    np.testing.assert_allclose([fit.slope, fit.stderr], [-0.5, 0.0], atol=1e-12)
    with pytest.raises(ValueError, match="positive"):
        fit_rate(ns, -ns)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"num_samples": 0}, "num_samples"),
        ({"risk_aversion": -1.0}, "risk_aversion"),
        ({"cost_power": 0.5}, "cost_power"),
        ({"risk_aversion": 5.0}, "risk_aversion"),
        ({"min_wage": 1.0}, "min_wage"),
    ],
)
def test_economy_rejects_bad_primitives(kwargs, name):
    arguments = {"monitor": ex_monitor(0.2), "num_samples": 10, **kwargs}
    with pytest.raises(ValueError, match=name):
        economy(**arguments)


def test_second_best_rejects_unknown_kind_and_options():
    econ = economy(ex_monitor(0.2), 10)
    with pytest.raises(ValueError, match="kind"):
        second_best(econ, "quadratic")
    with pytest.raises(ValueError, match="unknown options"):
        second_best(econ, "linear", num_cutoffs=3)
