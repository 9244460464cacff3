"""The data layer: every accepted input form, and every bad input with a clear error."""

import jax
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import jaxpref
from jaxpref.io.data import DataError, bucket_size, compress_counts, histogram_counts, load_preferences, user_counts

FRAME = pd.DataFrame({"user": ["b", "a", "b", "c", "a"], "label": [1, 0, 1, 1, 1], "p": [0.7, 0.8, 0.9, 0.6, 0.7]})


def expected_counts():
    # users in order of first appearance: b, a, c
    return np.array([[2], [1], [1]]), np.array([[2], [2], [1]])


@pytest.mark.parametrize(
    "convert",
    [
        lambda f, tmp: f,
        lambda f, tmp: pl.from_pandas(f),
        lambda f, tmp: pa.Table.from_pandas(f),
        lambda f, tmp: {name: f[name].to_numpy() for name in f.columns},
        lambda f, tmp: (f.to_parquet(tmp / "d.parquet"), tmp / "d.parquet")[1],
        lambda f, tmp: (f.to_csv(tmp / "d.csv", index=False), str(tmp / "d.csv"))[1],
        lambda f, tmp: (f.to_json(tmp / "d.jsonl", orient="records", lines=True), tmp / "d.jsonl")[1],
    ],
    ids=["pandas", "polars", "arrow", "dict", "parquet", "csv", "jsonl"],
)
def test_every_input_form_gives_the_same_data(convert, tmp_path):
    data = load_preferences(convert(FRAME, tmp_path), p_column="p")
    assert list(data.user_ids) == ["b", "a", "c"]
    k, n = user_counts(data)
    np.testing.assert_array_equal(k, expected_counts()[0])
    np.testing.assert_array_equal(n, expected_counts()[1])
    np.testing.assert_allclose(data.p, FRAME["p"])


def test_crowdkit_column_names_are_accepted():
    data = load_preferences(FRAME.rename(columns={"user": "worker"}))
    assert data.user_column == "worker" and data.num_users == 3


def test_configurable_column_names():
    frame = FRAME.rename(columns={"user": "annotator_id", "label": "chose_a"})
    data = load_preferences(frame, user_column="annotator_id", label_column="chose_a")
    assert data.num_labels == 5


def test_boolean_labels_are_accepted():
    assert load_preferences(FRAME.assign(label=FRAME["label"].astype(bool))).label.tolist() == [1, 0, 1, 1, 1]


BAD_INPUTS = [
    ("empty", FRAME.iloc[:0], {}, "empty"),
    ("label outside 0/1", FRAME.assign(label=[1, 0, 2, 1, 1]), {}, r"column 'label' has values outside \{0, 1\}, e.g. \[2\], first at row 2"),
    ("label NaN", FRAME.assign(label=[1, 0, np.nan, 1, 1]), {}, "column 'label' has a missing .* label at row 2"),
    ("label strings", FRAME.assign(label=["A", "B", "A", "A", "A"]), {}, "column 'label' is not numeric"),
    ("user null", FRAME.assign(user=["b", None, "b", "c", "a"]), {}, "column 'user' has a missing or empty id at row 1"),
    ("p outside", FRAME.assign(p=[0.7, 1.0, 0.9, 0.6, 0.7]), {"p_column": "p"}, r"column 'p' .* outside the open interval"),
    ("p NaN", FRAME.assign(p=[0.7, np.nan, 0.9, 0.6, 0.7]), {"p_column": "p"}, "column 'p' has 1 missing"),
    ("unknown label column", FRAME, {"label_column": "choice"}, "label column 'choice' not found"),
    ("unknown p column", FRAME, {"p_column": "prob"}, "p column 'prob' not found"),
    ("unknown group column", FRAME, {"group_column": "topic"}, "group column 'topic' not found"),
    ("p and group", FRAME.assign(g=1), {"p_column": "p", "group_column": "g"}, "p_column and group_column"),
    ("mismatched arrays", {"user": [1, 2, 3], "label": [1, 0]}, {}, "mismatched lengths"),
    ("unknown type", 42, {}, "cannot read data of type int"),
    ("missing file", "/nonexistent/labels.parquet", {}, "does not exist"),
    ("bad suffix", "labels.xlsx", {}, "does not exist|unknown format"),
]


@pytest.mark.parametrize("name, data, columns, message", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_raises_a_clear_error(name, data, columns, message):
    with pytest.raises(DataError, match=message):
        load_preferences(data, **columns)


BAD_OPTIONS = [
    ({"mu": 0.5}, r"mu=0.5 is outside \(0.5, 1\)"),
    ({"mu": 0.3}, r"outside \(0.5, 1\)"),
    ({"mu": 1.0}, r"outside \(0.5, 1\)"),
    ({"mu": float("nan")}, "finite number"),
    ({"mu": "fixed"}, "not understood"),
    ({"mu": [0.7, 0.8]}, "2 values but the data have 1 group"),
    ({"mu": {"x": 0.7}}, "no group column"),
    ({"mu_prior": (8, -2)}, "mu_prior b"),
    ({"mu_prior": "8"}, "two numbers"),
    ({"family": "gaussian"}, "family='gaussian' is unknown"),
    ({"family": "beta", "num_grid": 1}, "num_grid=1"),
    ({"family": "beta", "support": (0.1, 0.9)}, "applies to family=.two_point. only"),
    ({"family": "two_point", "support": (0.9, 0.1)}, "lo < hi"),
    ({"family": "two_point", "support": (0.1, 1.5)}, "lo < hi"),
    ({"dtype": "float16"}, "dtype='float16'"),
    ({"num_restarts": 0}, "num_restarts=0"),
    ({"threshold": 1.5}, r"threshold=1.5"),
    ({"tol": -1.0}, "tol=-1.0"),
    ({"mu": 0.8, "p_column": "p"}, "drop mu or p_column"),
]


@pytest.mark.parametrize("options, message", BAD_OPTIONS, ids=[str(o) for o, _ in BAD_OPTIONS])
def test_bad_fit_options_raise_clear_errors(options, message):
    with pytest.raises(DataError, match=message):
        jaxpref.fit_attentiveness(FRAME, **options)


def test_group_mu_mapping_must_cover_every_group():
    frame = FRAME.assign(topic=["x", "y", "x", "y", "x"])
    with pytest.raises(DataError, match=r"no value for group\(s\) \['y'\]"):
        jaxpref.fit_attentiveness(frame, group_column="topic", mu={"x": 0.7})


@pytest.mark.parametrize("size", [1, 7, 8, 9, 12, 13, 100, 1000, 10**6 + 1])
def test_bucket_sizes_hold_the_data_and_waste_at_most_a_third(size):
    bucket = bucket_size(size)
    assert bucket >= size
    assert bucket <= max(8, 4 * size / 3 + 1)


def test_compression_round_trips_every_user():
    rng = np.random.default_rng(0)
    n = rng.integers(1, 30, size=(500, 2))
    k = rng.binomial(n, 0.6)
    stats, row_of_user = compress_counts(k, n, np.float64)
    np.testing.assert_array_equal(np.asarray(stats.num_pref_a)[row_of_user], k)
    np.testing.assert_array_equal(np.asarray(stats.num_labels)[row_of_user], n)
    assert stats.multiplicity.sum() == 500


@pytest.mark.parametrize("max_labels", [30, 5000])  # counted keys / sorted keys
@pytest.mark.parametrize("dtype", [np.int64, np.float32])  # simulators return float counts
def test_one_group_compression_rows_are_the_distinct_pairs(max_labels, dtype):
    rng = np.random.default_rng(2)
    n = rng.integers(1, max_labels, size=(400, 1))
    k = rng.binomial(n, 0.6)
    n, k = n.astype(dtype), k.astype(dtype)
    stats, row_of_user = compress_counts(k, n, np.float64)
    pairs = pd.DataFrame({"k": k[:, 0], "n": n[:, 0]}).value_counts().sort_index(level=["n", "k"])
    used = stats.multiplicity > 0
    assert used.sum() == len(pairs)
    np.testing.assert_array_equal(stats.multiplicity[used], pairs.to_numpy())
    np.testing.assert_array_equal(stats.num_pref_a[row_of_user], k)
    np.testing.assert_array_equal(stats.num_labels[row_of_user], n)


def test_histogram_counts_matches_exact_compression():
    rng = np.random.default_rng(1)
    n = rng.integers(1, 11, size=300)
    k = rng.binomial(n, 0.7)
    hist = histogram_counts(k, n, 10)
    exact, _ = compress_counts(k[:, None], n[:, None], np.float64)
    as_dict = lambda s: {  # noqa: E731
        (float(a), float(b)): float(m)
        for a, b, m in zip(np.ravel(s.num_pref_a), np.ravel(s.num_labels), np.ravel(s.multiplicity)) if m > 0
    }
    assert as_dict(hist) == as_dict(exact)


def test_users_keep_original_ids_in_outputs():
    sim = jaxpref.simulate(jax.random.key(0), 30, 5, mu=0.8)
    frame = sim.frame.assign(user="id-" + sim.frame["user"].astype(str))
    fit = jaxpref.fit_attentiveness(frame, family="two_point", support=(0.1, 0.9), mu=0.8, num_restarts=1)
    assert fit.users["user"].tolist() == [f"id-{i}" for i in range(30)]
    assert list(fit.labels.columns[:3]) == ["user", "label", "label_attentive"]
