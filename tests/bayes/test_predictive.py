"""Replicated counts (posterior / prior predictive) against their closed-form moments; no sampling by NUTS."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxpref.bayes.model import BayesConfig, Design, replicate_counts
from jaxpref.core import em
from jaxpref.core.families import make_family


def two_point_config(mu_mode="known"):
    return BayesConfig(em.EMConfig(family=make_family("two_point", support=(0.2, 0.9)), mu_mode=mu_mode))


def test_counts_follow_the_mixture_of_binomials():
    # One draw repeated: weight 0.3 on eta = 0.9, else 0.2; two groups with gaps 0.6 and 0.95.
    samples = {"weight_hi": np.full((2, 500), 0.3, np.float32)}
    num_labels = np.array([[10, 0], [20, 20], [0, 20]], np.float32)
    mu = jnp.asarray([0.6, 0.95], jnp.float32)
    counts = replicate_counts(0, two_point_config(), samples, Design(jnp.asarray(num_labels)), mu)
    assert counts.shape == (2, 500, 3, 2) and counts.dtype == np.int32
    assert (counts <= num_labels).all() and (counts[..., num_labels == 0] == 0).all()
    flat = counts.reshape(1000, 3, 2).astype(np.float64)
    mean_eta = 0.3 * 0.9 + 0.7 * 0.2
    expected = num_labels * (0.5 + mean_eta * (np.asarray(mu) - 0.5))
    # Var k = E Var(k | eta) + Var E(k | eta), over the two atoms.
    probs = {eta: 0.5 + eta * (np.asarray(mu) - 0.5) for eta in (0.2, 0.9)}
    within = sum(w * num_labels * probs[eta] * (1 - probs[eta]) for eta, w in ((0.9, 0.3), (0.2, 0.7)))
    between = sum(w * (num_labels * probs[eta] - expected) ** 2 for eta, w in ((0.9, 0.3), (0.2, 0.7)))
    sd_of_mean = np.sqrt((within + between) / 1000)
    assert np.all(np.abs(flat.mean(0) - expected) <= 4 * sd_of_mean + 1e-9)
    # A user's eta is shared across groups: Cov(k_1, k_2) = n_1 n_2 (mu_1 - 1/2)(mu_2 - 1/2) Var(eta),
    # 0 if eta were drawn per group.
    var_eta = 0.3 * 0.7 * (0.9 - 0.2) ** 2
    exact = 20 * 20 * (0.6 - 0.5) * (0.95 - 0.5) * var_eta
    sample = np.cov(flat[:, 1, 0], flat[:, 1, 1])
    sd = np.sqrt(sample[0, 0] * sample[1, 1] / 1000)
    assert abs(sample[0, 1] - exact) < 4 * sd and exact > 4 * sd


def test_per_label_p_sums_bernoullis_per_user():
    samples = {"weight_hi": np.full((1, 2000), 1.0, np.float32)}  # everyone at eta = 0.9
    label_user = jnp.asarray([0, 0, 1, 1, 1])
    label_p = jnp.asarray([0.6, 0.8, 0.7, 0.7, 1.0], jnp.float32)
    plan = Design(jnp.asarray([[2.0], [3.0]]), label_user, label_p)
    counts = replicate_counts(1, two_point_config("per_label"), samples, plan, jnp.asarray([0.75]))
    assert counts.shape == (1, 2000, 2, 1)
    expected = np.array([(0.5 + 0.9 * 0.1) + (0.5 + 0.9 * 0.3), 2 * (0.5 + 0.9 * 0.2) + (0.5 + 0.9 * 0.5)])
    mean = counts[0, :, :, 0].mean(0)
    assert mean == pytest.approx(expected, abs=4 * np.sqrt(0.75 / 2000))


def test_same_seed_same_replications():
    samples = {"weight_hi": np.linspace(0.1, 0.9, 20, dtype=np.float32).reshape(2, 10)}
    plan = Design(jnp.full((5, 1), 8.0))
    first = replicate_counts(3, two_point_config(), samples, plan, jnp.asarray([0.8]))
    np.testing.assert_array_equal(first, replicate_counts(3, two_point_config(), samples, plan, jnp.asarray([0.8])))
    assert not np.array_equal(first, replicate_counts(4, two_point_config(), samples, plan, jnp.asarray([0.8])))
