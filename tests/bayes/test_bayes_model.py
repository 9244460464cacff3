"""NumPyro Bayesian variant: NUTS against an exact grid posterior, EM MAP and the observed information.

The reference posterior is computed independently in NumPy/SciPy (binomial pmfs summed
over the two support points, on a fine 2-D grid of (mu, weight_hi)).
"""

import warnings

import jax
import numpy as np
import pytest
from scipy import special, stats

from jaxpref.bayes.model import fit_bayes
from jaxpref.io.data import DataError
from jaxpref.estimator import fit_attentiveness
from jaxpref.simulate import simulate

warnings.filterwarnings("ignore", category=FutureWarning, module="arviz")

SUPPORT = (0.1, 0.9)
PRIOR = (8.0, 2.0)


@pytest.fixture(scope="module")
def frame():
    sim = simulate(jax.random.key(3), 200, 10, family="two_point", support=SUPPORT, weight_hi=0.4, mu=0.8)
    frame = sim.frame.copy()
    # Ids written with leading zeros must come back exactly so ('007' is not 7).
    frame["user"] = frame["user"].map(lambda user: f"{user:03d}")
    return frame


@pytest.fixture(scope="module")
def nuts_fit(frame):
    return fit_bayes(
        frame, family="two_point", support=SUPPORT, mu=None, mu_prior=PRIOR,
        num_warmup=300, num_samples=400, num_chains=2, seed=1,
    )


@pytest.fixture(scope="module")
def em_fit(frame):
    return fit_attentiveness(frame, family="two_point", support=SUPPORT, mu=None, mu_prior=PRIOR, dtype="float64")


def user_counts_numpy(frame):
    grouped = frame.groupby("user", sort=False)["label"]
    return grouped.sum().to_numpy(), grouped.count().to_numpy()


def user_loglik_numpy(k, n, mu, weight_hi):
    """log P(labels of user | mu, weight_hi), the product of Bernoulli terms (no binomial coefficient)."""
    lo, hi = SUPPORT
    terms = []
    for eta, weight in ((lo, 1.0 - weight_hi), (hi, weight_hi)):
        q = 0.5 + eta * (mu - 0.5)
        terms.append(np.log(weight) + k * np.log(q) + (n - k) * np.log1p(-q))
    return np.logaddexp(*terms)


@pytest.fixture(scope="module")
def grid_posterior(frame):
    """Exact posterior of (mu, weight_hi) on a 300 x 300 grid of cell midpoints."""
    k, n = user_counts_numpy(frame)
    mu = 0.5 + 0.5 * (np.arange(300) + 0.5) / 300
    weight = (np.arange(300) + 0.5) / 300
    mu_mesh, weight_mesh = np.meshgrid(mu, weight, indexing="ij")
    # Distinct (k, n) pairs with counts: the same sum, far fewer terms.
    pairs, counts = np.unique(np.stack([k, n], 1), axis=0, return_counts=True)
    log_post = stats.beta.logpdf(mu_mesh, *PRIOR)
    for (k_value, n_value), count in zip(pairs, counts):
        log_post = log_post + count * user_loglik_numpy(k_value, n_value, mu_mesh, weight_mesh)
    post = np.exp(log_post - special.logsumexp(log_post))
    mu_marginal, weight_marginal = post.sum(1), post.sum(0)

    def moments(values, probabilities):
        mean = np.sum(values * probabilities)
        return mean, np.sqrt(np.sum((values - mean) ** 2 * probabilities))

    return {"mu": moments(mu, mu_marginal), "weight_hi": moments(weight, weight_marginal)}


def test_nuts_matches_exact_grid_posterior(nuts_fit, grid_posterior):
    summary = nuts_fit.summary
    for name, row in (("mu", "mu[0]"), ("weight_hi", "weight_hi")):
        exact_mean, exact_sd = grid_posterior[name]
        mean, sd, ess = summary.loc[row, ["mean", "sd", "ess_bulk"]]
        # Monte Carlo error of the mean is sd / sqrt(ESS); allow 4 of those.
        assert abs(mean - exact_mean) < 4.0 * exact_sd / np.sqrt(ess), (name, mean, exact_mean)
        assert sd == pytest.approx(exact_sd, rel=0.2), name


def test_nuts_diagnostics_are_healthy(nuts_fit):
    summary = nuts_fit.summary
    assert list(summary.columns) == ["mean", "sd", "q5", "q95", "r_hat", "ess_bulk", "ess_tail"]
    assert list(summary.index) == ["mu[0]", "weight_hi"]
    assert (summary["r_hat"] < 1.05).all()
    assert (summary["ess_bulk"] > 100).all()
    assert (summary["q5"] < summary["mean"]).all() and (summary["mean"] < summary["q95"]).all()
    assert nuts_fit.num_divergences == 0


def test_em_map_lies_within_a_few_posterior_sds(nuts_fit, em_fit):
    summary = nuts_fit.summary
    for row, estimate in (("mu[0]", em_fit.params["mu"]), ("weight_hi", em_fit.params["weights"][1])):
        mean, sd = summary.loc[row, ["mean", "sd"]]
        assert abs(mean - estimate) < 2.0 * sd, (row, mean, estimate, sd)


def test_observed_information_matches_posterior_sd(nuts_fit, em_fit):
    summary = nuts_fit.summary
    for row, name in (("mu[0]", "mu[0]"), ("weight_hi", "weight_hi")):
        ratio = summary.loc[row, "sd"] / em_fit.standard_errors[name]
        assert 0.75 < ratio < 1.33, (name, ratio)


def test_pointwise_loglik_is_the_per_user_marginal(nuts_fit, frame):
    loglik = nuts_fit.inference_data.log_likelihood["loglik"].values
    num_users = frame["user"].nunique()
    assert loglik.shape == (2, 400, num_users)
    k, n = user_counts_numpy(frame)
    mu = nuts_fit.samples["mu"][..., 0]
    weight = nuts_fit.samples["weight_hi"]
    for chain, draw in ((0, 0), (1, 123), (0, 399)):
        expected = user_loglik_numpy(k, n, mu[chain, draw], weight[chain, draw])
        np.testing.assert_allclose(loglik[chain, draw], expected, rtol=1e-4, atol=1e-4)


def test_user_summaries_are_rao_blackwell_averages(nuts_fit, frame):
    k, n = user_counts_numpy(frame)
    mu = nuts_fit.samples["mu"][..., 0].reshape(-1)[:, None].astype(np.float64)
    weight = nuts_fit.samples["weight_hi"].reshape(-1)[:, None].astype(np.float64)
    lo, hi = SUPPORT
    log_hi = np.log(weight) + k * np.log(0.5 + hi * (mu - 0.5)) + (n - k) * np.log(0.5 - hi * (mu - 0.5))
    log_lo = np.log1p(-weight) + k * np.log(0.5 + lo * (mu - 0.5)) + (n - k) * np.log(0.5 - lo * (mu - 0.5))
    prob_hi = np.exp(log_hi - np.logaddexp(log_hi, log_lo))  # (draws, users)
    eta_mean = (lo + (hi - lo) * prob_hi).mean(0)
    second = (lo**2 + (hi**2 - lo**2) * prob_hi).mean(0)
    users = nuts_fit.users
    np.testing.assert_allclose(users["eta_mean"], eta_mean, atol=1e-4)
    np.testing.assert_allclose(users["eta_sd"], np.sqrt(second - eta_mean**2), atol=1e-3)
    np.testing.assert_allclose(users["prob_attentive"], prob_hi.mean(0), atol=1e-4)
    np.testing.assert_array_equal(users["n_labels"], n)


def test_inference_data_is_complete_and_named(nuts_fit, frame, tmp_path):
    import arviz as az
    import matplotlib

    matplotlib.use("Agg")
    idata = nuts_fit.inference_data
    for group in ("posterior", "sample_stats", "log_likelihood", "posterior_predictive", "prior",
                  "prior_predictive", "observed_data", "constant_data"):
        assert group in idata.groups(), group
    assert {"diverging", "energy", "tree_depth", "n_steps", "step_size", "lp", "acceptance_rate"} <= set(
        idata.sample_stats.data_vars)
    # The users' ids as written, in the users table's order.
    ids = frame["user"].drop_duplicates().tolist()
    assert idata.log_likelihood["user"].values.tolist() == ids == nuts_fit.users["user"].tolist()
    assert idata.observed_data["group"].values.tolist() == ["all"]
    k, n = user_counts_numpy(frame)
    np.testing.assert_array_equal(idata.observed_data["k"].values[:, 0], k)
    np.testing.assert_array_equal(idata.constant_data["n"].values[:, 0], n)
    assert idata.posterior_predictive["k"].shape == (2, 400, len(ids), 1)
    # The prior group holds draws of the prior: mu ~ Beta(8, 2) on (1/2, 1), weight_hi ~ U(0, 1).
    prior_mu = idata.prior["mu"].values.ravel()
    truncated = stats.beta(*PRIOR)
    expected_mean = truncated.expect(lambda x: x, lb=0.5, ub=1.0, conditional=True)
    assert abs(prior_mu.mean() - expected_mean) < 4 * prior_mu.std() / np.sqrt(prior_mu.size)
    assert (prior_mu > 0.5).all()
    # arviz's own tools work on it directly.
    assert np.all(np.asarray(az.bfmi(idata)) > 0.3)
    az.plot_ppc(idata, data_pairs={"k": "k"}, num_pp_samples=20)
    az.plot_trace(idata, var_names=["mu", "weight_hi"])
    path = tmp_path / "fit.nc"
    idata.to_netcdf(str(path))
    reloaded = az.from_netcdf(str(path))
    assert reloaded.log_likelihood["user"].values.tolist() == ids
    np.testing.assert_array_equal(reloaded.posterior["mu"].values, idata.posterior["mu"].values)
    np.testing.assert_array_equal(reloaded.sample_stats["energy"].values, idata.sample_stats["energy"].values)


def test_users_credible_intervals_are_posterior_quantiles(nuts_fit):
    # two_point on (0.1, 0.9): eta_j's posterior has two atoms, P(eta_j = 0.9) = prob_attentive, so the
    # 5 % quantile is 0.9 exactly when P(eta_j = 0.1) < 0.05, and the 95 % quantile is 0.1 when P(0.9) < 0.05.
    users = nuts_fit.users
    prob_hi = users["prob_attentive"].to_numpy()
    # The interval is a Monte Carlo estimate (800 draws, sd of a share <= 0.008): skip users near the cut.
    clear = np.minimum(np.abs(1.0 - prob_hi - 0.05), np.abs(prob_hi - 0.05)) > 0.03
    expected_lo = np.where(1.0 - prob_hi < 0.05, 0.9, 0.1)
    expected_hi = np.where(prob_hi < 0.05, 0.1, 0.9)
    np.testing.assert_allclose(users["eta_lo"][clear], expected_lo[clear], atol=1e-6)
    np.testing.assert_allclose(users["eta_hi"][clear], expected_hi[clear], atol=1e-6)
    assert clear.sum() > 100


def test_healthy_fit_is_silent_and_short_run_warns(frame):
    from jaxpref.bayes.checks import ConvergenceWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit_bayes(frame, family="two_point", support=SUPPORT, mu=None, mu_prior=PRIOR,
                  num_warmup=20, num_samples=30, num_chains=2, seed=1)
    messages = [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]
    assert any("ESS < 400" in message and "num_samples" in message for message in messages), messages


def exact_log_evidence(frame, num_cells=600):
    """log p(labels) by midpoint quadrature over (mu, weight_hi), the truncated Beta(8, 2) prior normalised."""
    k, n = user_counts_numpy(frame)
    mu = 0.5 + 0.5 * (np.arange(num_cells) + 0.5) / num_cells
    weight = (np.arange(num_cells) + 0.5) / num_cells
    mu_mesh, weight_mesh = np.meshgrid(mu, weight, indexing="ij")
    log_joint = stats.beta.logpdf(mu_mesh, *PRIOR) - np.log(stats.beta.sf(0.5, *PRIOR))
    pairs, counts = np.unique(np.stack([k, n], 1), axis=0, return_counts=True)
    for (k_value, n_value), count in zip(pairs, counts):
        log_joint = log_joint + count * user_loglik_numpy(k_value, n_value, mu_mesh, weight_mesh)
    cell_area = (0.5 / num_cells) * (1.0 / num_cells)
    return special.logsumexp(log_joint) + np.log(cell_area)


def test_bridge_sampling_matches_exact_quadrature(nuts_fit, frame):
    from jaxpref.bayes.evidence import log_evidence

    exact = exact_log_evidence(frame)
    # The quadrature itself: halving the cells moves it by far less than the tolerance.
    assert abs(exact_log_evidence(frame, 300) - exact) < 1e-3
    evidence = log_evidence(nuts_fit)
    assert evidence.num_parameters == 2
    assert 0 < evidence.mc_sd < 0.05
    # 4 Monte Carlo standard errors, plus 0.01 for the draws' autocorrelation the estimate ignores.
    assert abs(evidence.log_evidence - exact) < 4 * evidence.mc_sd + 0.01, (evidence, exact)


def test_svi_delta_is_the_em_map(frame, em_fit):
    fit = fit_bayes(
        frame, family="two_point", support=SUPPORT, mu=None, mu_prior=PRIOR, method="svi", guide="delta",
        num_steps=3000, learning_rate=0.01, num_samples=10, dtype="float64",
    )
    assert fit.summary.loc["mu[0]", "mean"] == pytest.approx(em_fit.params["mu"], abs=2e-3)
    assert fit.summary.loc["weight_hi", "mean"] == pytest.approx(em_fit.params["weights"][1], abs=2e-3)
    assert fit.summary.loc["mu[0]", "sd"] < 1e-12  # a point mass (up to rounding of the vmapped draws)
    assert fit.inference_data.log_likelihood["loglik"].shape == (1, 10, frame["user"].nunique())


@pytest.mark.parametrize(
    "options, message",
    [
        ({"form": "grid"}, "form="),
        ({"method": "hmc"}, "method="),
        ({"chain_method": "threads"}, "chain_method="),
        ({"guide": "flow"}, "guide="),
        ({"num_samples": 0}, "num_samples="),
        ({"form": "explicit", "family": "beta"}, "removed"),
        ({"family": "gaussian"}, "family="),
        ({"mu": 0.4}, "outside (0.5, 1)"),
    ],
)
def test_bad_options_raise_clear_errors(frame, options, message):
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        fit_bayes(frame, **options)
