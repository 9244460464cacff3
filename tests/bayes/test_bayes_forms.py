"""The other model structures: per-label p, groups, npmle, SVI AutoNormal.

Each NUTS/SVI compilation costs seconds on 2 cores, so these run with ``-m slow``.
"""

import warnings

import jax
import numpy as np
import pytest

from jaxpref.bayes.model import fit_bayes
from jaxpref.estimator import fit_attentiveness
from jaxpref.simulate import simulate

warnings.filterwarnings("ignore", category=FutureWarning, module="arviz")

pytestmark = pytest.mark.slow

NUTS = {"num_warmup": 400, "num_samples": 400, "num_chains": 2}


def test_groups_and_per_label_p_match_em_map():
    grouped = simulate(jax.random.key(8), 300, 20, family="two_point", support=(0.1, 0.9), mu=(0.7, 0.9)).frame
    delta = {"method": "svi", "guide": "delta", "num_steps": 4000, "num_samples": 5, "dtype": "float64"}
    fit = fit_bayes(grouped, family="two_point", support=(0.1, 0.9), group_column="group", **delta)
    em_fit = fit_attentiveness(grouped, family="two_point", support=(0.1, 0.9), group_column="group", dtype="float64")
    np.testing.assert_allclose(fit.summary.loc[["mu[0]", "mu[1]"], "mean"], list(em_fit.params["mu"].values()), atol=3e-3)

    labelled = simulate(jax.random.key(9), 200, 20, family="two_point", support=(0.1, 0.9), reward_gap=(1.5, 0.5)).frame
    fit = fit_bayes(labelled, family="two_point", support=(0.1, 0.9), p_column="p", **delta)
    em_fit = fit_attentiveness(labelled, family="two_point", support=(0.1, 0.9), p_column="p", dtype="float64")
    assert fit.summary.loc["weight_hi", "mean"] == pytest.approx(em_fit.params["weights"][1], abs=3e-3)
    assert "mu[0]" not in fit.summary.index


def test_npmle_and_autonormal_run_and_agree_with_nuts():
    frame = simulate(jax.random.key(10), 300, 20, family="two_point", support=(0.2, 0.9), weight_hi=0.5, mu=0.8).frame
    npmle = fit_bayes(frame, family="npmle", mu=0.8, num_grid=12, **NUTS)
    weights = npmle.summary.loc[[f"weights[{g}]" for g in range(12)], "mean"].to_numpy()
    assert weights.sum() == pytest.approx(1.0, abs=1e-3)
    grid = np.linspace(0.0, 1.0, 12)
    assert abs(weights @ grid - (0.5 * 0.2 + 0.5 * 0.9)) < 0.05
    nuts = fit_bayes(frame, family="two_point", support=(0.2, 0.9), mu=None, **NUTS)
    normal = fit_bayes(frame, family="two_point", support=(0.2, 0.9), mu=None, method="svi", num_samples=2000)
    # A mean-field Gaussian in the unconstrained space misses skew and the (negative)
    # correlation of mu and weight_hi, so it shrinks the marginal sds (by about a third here).
    for row in ("mu[0]", "weight_hi"):
        nuts_sd = nuts.summary.loc[row, "sd"]
        assert abs(normal.summary.loc[row, "mean"] - nuts.summary.loc[row, "mean"]) < nuts_sd
        assert 0.5 * nuts_sd < normal.summary.loc[row, "sd"] < 1.1 * nuts_sd
