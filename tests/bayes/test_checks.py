"""Diagnostics and predictive checks on hand-made InferenceData (no sampling, no compiling)."""

import warnings

import arviz as az
import numpy as np
import pytest

from jaxpref.bayes import checks

warnings.filterwarnings("ignore", category=FutureWarning, module="arviz")


def idata_with(posterior, sample_stats=None, **groups):
    return az.from_dict(posterior=posterior, sample_stats=sample_stats, **groups)


def test_healthy_chains_raise_nothing():
    rng = np.random.default_rng(0)
    idata = idata_with(
        {"mu": rng.normal(size=(4, 1000))},
        {"diverging": np.zeros((4, 1000), bool), "energy": rng.normal(size=(4, 1000)),
         "tree_depth": np.full((4, 1000), 3)},
    )
    assert checks.convergence_problems(idata, ["mu"]) == []


def test_each_failure_is_named_with_its_fix():
    rng = np.random.default_rng(1)
    # Two chains stuck in different places (r_hat >> 1.01), strongly autocorrelated (low ESS).
    stuck = np.cumsum(rng.normal(size=(2, 300)), axis=1) * 0.05 + np.array([[0.0], [3.0]])
    diverging = np.zeros((2, 300), bool)
    diverging[0, :7] = True
    # A random walk in energy: E-BFMI = E[dE^2] / Var(E) far below 0.3.
    energy = np.cumsum(rng.normal(size=(2, 300)), axis=1)
    idata = idata_with({"mu": stuck}, {"diverging": diverging, "energy": energy, "tree_depth": np.full((2, 300), 10)})
    problems = checks.convergence_problems(idata, ["mu"])
    text = "\n".join(problems)
    assert "r_hat > 1.01" in text and "num_chains" in text
    assert "bulk ESS < 400" in text and "tail ESS < 400" in text
    assert "7 divergent transitions" in text and "target_accept" in text
    assert "E-BFMI" in text and "maximum tree depth" in text
    with pytest.warns(checks.ConvergenceWarning, match="divergent"):
        checks.warn(problems, "fit")


def test_pareto_k_names_the_users():
    messages = checks.pareto_k_problems(np.array([0.1, 0.9, 0.2, 1.3]), "beta", np.array(["007", "a", "b", "c"]))
    assert len(messages) == 1 and "2 users" in messages[0] and "'a'" in messages[0] and "'c'" in messages[0]
    assert checks.pareto_k_problems(np.array([0.1, 0.5]), "beta", np.array(["x", "y"])) == []


def predictive_idata(observed_share_sampler, seed):
    """200 users with 10 labels, one group; replications draw k ~ Binomial(10, 0.7) per user."""
    rng = np.random.default_rng(seed)
    n = np.full((200, 1), 10)
    replicated = rng.binomial(10, 0.7, size=(1, 400, 200, 1))
    observed = observed_share_sampler(rng, n)
    return az.from_dict(
        posterior={"mu": rng.normal(size=(1, 400))},
        posterior_predictive={"k": replicated},
        observed_data={"k": observed},
        constant_data={"n": n},
        dims={"k": ["user", "group"], "n": ["user", "group"]},
        coords={"group": ["all"]},
    )


def chi2_reference(observed_k, replicated_k, n):
    """Plain loops: users per bin of k/n, chi-square to the mean replicated histogram."""
    def histogram(k):
        counts = np.zeros(10)
        for value, size in zip(k, n):
            counts[min(int(value / size * 10), 9)] += 1
        return counts

    replicated = np.array([histogram(k) for k in replicated_k])
    expected = replicated.mean(0)
    used = expected > 0
    distance = lambda h: np.sum((h[used] - expected[used]) ** 2 / expected[used])  # noqa: E731
    observed = distance(histogram(observed_k))
    return observed, np.mean([distance(h) >= observed for h in replicated])


def test_p_value_matches_plain_loops_and_detects_misfit():
    same = predictive_idata(lambda rng, n: rng.binomial(n, 0.7), seed=2)
    # Over-dispersed data: half the users at 0.5, half at 0.9 (same mean 0.7).
    mixed = predictive_idata(lambda rng, n: rng.binomial(n, np.where(rng.random(n.shape) < 0.5, 0.5, 0.9)), seed=3)
    for idata in (same, mixed):
        check = checks.predictive_check(idata)
        chi2, p_value = chi2_reference(
            idata.observed_data["k"].values[:, 0], idata.posterior_predictive["k"].values[0, :, :, 0], np.full(200, 10)
        )
        assert check.table.loc[0, "chi2"] == pytest.approx(chi2)
        assert check.table.loc[0, "p_value"] == pytest.approx(p_value)
    assert checks.predictive_check(same).table.loc[0, "p_value"] > 0.05
    assert checks.predictive_check(mixed).table.loc[0, "p_value"] == 0.0
    figure = checks.plot_predictive_check(checks.predictive_check(mixed))
    assert len(figure.axes) == 1
