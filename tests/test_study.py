"""Replicated (simulate, fit) studies: chunking over R changes nothing; equal to a loop of single fits."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxpref.core import driver, em
from jaxpref.io.data import DataError, compress_counts, fixed_n_counts
from jaxpref.core.families import make_family
from jaxpref.simulate import eta_distribution, simulate_counts
from jaxpref.study import default_batch_size, replicate_fits

TRUTH = eta_distribution("two_point", support=(0.1, 0.9), weight_hi=0.4)
CONFIG = em.EMConfig(make_family("two_point", support=(0.1, 0.9)), "prior", (8.0, 2.0), tol=1e-10, max_iter=3000)


@settings(max_examples=20, deadline=None)
@given(k=st.lists(st.integers(0, 6), min_size=1, max_size=40))
def test_fixed_n_counts_equals_the_exact_compression(k):
    stats = fixed_n_counts(np.asarray(k), 6)
    exact, _ = compress_counts(np.asarray(k)[:, None], np.full((len(k), 1), 6), np.float64)
    present = exact.multiplicity > 0
    expected = np.zeros(7)
    expected[exact.num_pref_a[present, 0].astype(int)] = exact.multiplicity[present]
    np.testing.assert_array_equal(np.asarray(stats.multiplicity), expected)
    assert np.all(np.asarray(stats.num_labels) == 6)


def test_batches_do_not_change_results_and_equal_a_loop_of_single_fits():
    key = jax.random.key(4)
    with jax.enable_x64(True):
        fits = [replicate_fits(key, 5, 800, 12, 0.8, TRUTH, CONFIG, batch_size=size) for size in (1, 2, 5)]
        for other in fits[1:]:
            np.testing.assert_allclose(other.mu, fits[0].mu, rtol=1e-12)
            np.testing.assert_allclose(other.weights, fits[0].weights, rtol=1e-12)
        initial = em.init(CONFIG, jnp.asarray([0.75]))
        for index, replication_key in enumerate(jax.random.split(key, 5)):
            k, n, _ = simulate_counts(replication_key, 800, jnp.asarray(12), jnp.asarray(0.8), TRUTH)
            stats, _ = compress_counts(np.asarray(k)[:, None], np.asarray(n)[:, None], np.float64)
            single = driver.fit(initial, jax.tree.map(jnp.asarray, stats), CONFIG)
            assert fits[0].mu[index, 0] == pytest.approx(float(single.state.mu[0]), rel=1e-6)
            assert fits[0].objective[index] == pytest.approx(float(single.objective), rel=1e-9)
    assert fits[0].converged.all()


def test_recovers_the_truth_on_average():
    fits = replicate_fits(jax.random.key(0), 16, 5000, 20, 0.8, TRUTH, CONFIG._replace(tol=1e-7))
    assert abs(fits.weights[:, 1].mean() - 0.4) < 0.01 and abs(fits.mu.mean() - 0.8) < 0.01


def test_bad_arguments_and_batch_size_bound():
    with pytest.raises(DataError, match="num_replications=0"):
        replicate_fits(jax.random.key(0), 0, 10, 5, 0.8, TRUTH, CONFIG)
    with pytest.raises(DataError, match="outside"):
        replicate_fits(jax.random.key(0), 2, 10, 5, 0.4, TRUTH, CONFIG)
    with pytest.raises(DataError, match="batch_size=0"):
        replicate_fits(jax.random.key(0), 2, 10, 5, 0.8, TRUTH, CONFIG, batch_size=0)
    assert default_batch_size(1000, 10**8) == 1 and default_batch_size(4, 100) == 4
