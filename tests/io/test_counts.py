"""Counts at the memory floor: `load_counts` copies nothing already int64, and `compress_counts` finds the
distinct count rows by every route (counted keys, sorted keys, rows too wide for one key), checked
against a pandas group-by of the rows."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxpref.io.data import DataError, compress_counts, load_counts


def test_int64_counts_are_not_copied_and_cannot_be_changed_through_the_counts():
    k, n = np.array([3, 0, 2]), np.array([4, 2, 2])
    counts = load_counts(k, n)
    assert np.shares_memory(counts.pref_a_counts, k) and np.shares_memory(counts.label_counts, n)
    assert not counts.label_counts.flags.writeable and n.flags.writeable  # the caller's array is untouched
    small = load_counts(k.astype(np.int32), n.astype(np.uint8))
    assert small.label_counts.dtype == np.int64 and not np.shares_memory(small.label_counts, n)


@pytest.mark.parametrize(
    "k, n, message",
    [
        ([[1, 0], [0, 0]], [[2, 1], [0, 0]], "user at position 1 has no labels"),
        ([0, 3], [1, 0], "num_pref_a must lie in"),
        ([-1, 0], [1, 1], "num_pref_a must lie in"),
    ],
)
def test_bad_counts_name_the_problem(k, n, message):
    with pytest.raises(DataError, match=message):
        load_counts(k, n)


def test_a_bad_user_past_the_first_block_is_found():
    n = np.ones(3 << 20, np.int64)
    k = np.zeros_like(n)
    k[-1] = 2
    with pytest.raises(DataError, match="num_pref_a must lie in"):
        load_counts(k, n)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    num_users=st.integers(1, 300),
    num_groups=st.integers(1, 4),
    max_labels=st.sampled_from([1, 6, 40, 5000, 2**40]),  # counted keys, sorted keys, rows wider than a key
)
def test_compression_gives_the_distinct_rows(seed, num_users, num_groups, max_labels):
    rng = np.random.default_rng(seed)
    n = rng.integers(0, max_labels + 1, (num_users, num_groups))
    k = rng.integers(0, n + 1)
    stats, row_of_user = compress_counts(k, n, np.float64)
    used = stats.multiplicity > 0
    reference = pd.DataFrame(np.concatenate([k, n], axis=1)).value_counts()
    assert used.sum() == len(reference)
    found = {
        tuple(int(value) for value in np.concatenate([stats.num_pref_a[row], stats.num_labels[row]])):
            int(stats.multiplicity[row])
        for row in np.flatnonzero(used)
    }
    assert found == {tuple(int(value) for value in key): int(count) for key, count in reference.items()}
    assert not stats.multiplicity[~used].any() and stats.num_labels[~used].sum() == 0
    assert row_of_user.dtype == np.int32
    np.testing.assert_array_equal(stats.num_pref_a[row_of_user], k)
    np.testing.assert_array_equal(stats.num_labels[row_of_user], n)


def test_counted_keys_span_several_blocks_of_users():
    rng = np.random.default_rng(0)
    n = rng.integers(1, 30, (3 << 20) + 5)[:, None]
    k = rng.binomial(n, 0.6)
    stats, row_of_user = compress_counts(k, n, np.float64)
    np.testing.assert_array_equal(stats.num_pref_a[row_of_user], k)
    np.testing.assert_array_equal(stats.num_labels[row_of_user], n)
    reference = pd.DataFrame({"k": k[:, 0], "n": n[:, 0]}).value_counts().sort_index(level=["n", "k"])
    np.testing.assert_array_equal(stats.multiplicity[stats.multiplicity > 0], reference.to_numpy())
