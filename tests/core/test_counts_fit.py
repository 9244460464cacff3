"""Fitting per-user counts (`UserCounts`: streamed files, `load_counts`) gives the fit of the label rows."""

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from jaxpref.cli import app
from jaxpref.io.data import DataError, load_counts, load_preferences, user_counts
from jaxpref.estimator import fit_attentiveness
from jaxpref.core.posterior import filter_labels, select_users
from jaxpref.scale.streaming import filter_stream, stream_counts


def grouped_frame(seed=0, num_users=150):
    rng = np.random.default_rng(seed)
    attentive = rng.random(num_users) < 0.4
    rows = []
    for user in rng.permutation(num_users):
        for _ in range(rng.integers(1, 12)):
            group = rng.choice(["chat", "code"])
            gap = 0.9 if group == "code" else 0.75
            rows.append((f"u{user}", group, int(rng.random() < (gap if attentive[user] else 0.5))))
    return pd.DataFrame(rows, columns=["user", "topic", "label"])


@pytest.mark.parametrize("group_column", [None, "topic"])
def test_counts_fit_equals_the_rows_fit(group_column):
    frame = grouped_frame()
    options = dict(family="npmle", num_grid=16, dtype="float64", tol=1e-10, group_column=group_column)
    from_rows = fit_attentiveness(frame, **options)
    data = load_preferences(frame, group_column=group_column)
    counts = load_counts(*user_counts(data), user_ids=data.user_ids, group_ids=data.group_ids)
    from_counts = fit_attentiveness(counts, **{**options, "group_column": None})
    assert from_counts.params["mu"] == pytest.approx(from_rows.params["mu"], rel=1e-9)
    np.testing.assert_allclose(from_counts.params["weights"], from_rows.params["weights"], atol=1e-9)
    assert from_counts.loglik == pytest.approx(from_rows.loglik, rel=1e-12)
    pd.testing.assert_frame_equal(from_counts.users, from_rows.users)
    assert from_counts.summary()["n_labels"] == len(frame)
    with pytest.raises(DataError, match="per-user counts"):
        from_counts.labels


def test_users_table_is_built_when_first_asked_for_and_matches_a_numpy_posterior():
    """The fit keeps one summary per distinct count pattern; the per-user table is gathered on first
    use and equals the posterior of each user computed directly from the fitted P_eta and mu."""
    rng = np.random.default_rng(3)
    num_labels = rng.integers(1, 9, 400)
    num_pref_a = rng.binomial(num_labels, 0.7)
    fit = fit_attentiveness(load_counts(num_pref_a, num_labels, user_ids=[f"u{j:03d}" for j in range(400)]),
                            family="two_point", support=(0.1, 0.9), mu=0.8, dtype="float64")
    assert "users" not in vars(fit)
    assert len(fit.row_summaries["eta_mean"]) < 400  # one row per pattern (padded), not per user
    users = fit.users
    assert users is fit.users  # built once
    grid, weights = np.array([0.1, 0.9]), np.asarray(fit.params["weights"])
    p_a = 0.5 + grid * (0.8 - 0.5)
    log_joint = np.log(weights) + num_pref_a[:, None] * np.log(p_a) + (num_labels - num_pref_a)[:, None] * np.log1p(-p_a)
    posterior = np.exp(log_joint - np.logaddexp.reduce(log_joint, axis=1, keepdims=True))
    np.testing.assert_allclose(users["eta_mean"], posterior @ grid, rtol=1e-10)
    np.testing.assert_array_equal(users["n_labels"], num_labels)
    np.testing.assert_array_equal(users["n_pref_a"], num_pref_a)
    assert users["user"].tolist() == [f"u{j:03d}" for j in range(400)]


def test_streamed_file_fit_equals_the_rows_fit(tmp_path):
    frame = grouped_frame(1)
    path = tmp_path / "labels.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    options = dict(family="two_point", support=(0.1, 0.9), group_column="topic", dtype="float64")
    streamed = fit_attentiveness(stream_counts(path, group_column="topic", progress=False),
                                 **{**options, "group_column": None})
    from_rows = fit_attentiveness(frame, **options)
    assert streamed.params["mu"] == pytest.approx(from_rows.params["mu"], rel=1e-9)
    pd.testing.assert_frame_equal(streamed.users, from_rows.users)


@pytest.mark.parametrize(
    "args, message",
    [
        (([1, 2], [1]), "same shape"),
        (([1.5], [2]), "fractional"),
        (([3], [2]), "num_pref_a must lie in"),
        (([-1], [2]), "num_pref_a must lie in"),
        (([0, 1], [0, 2]), "position 0 has no labels"),
        (([], []), "no users"),
        ((["a"], [1]), "whole numbers"),
        (([np.nan], [1]), "whole numbers"),
    ],
)
def test_load_counts_rejects_bad_counts(args, message):
    with pytest.raises(DataError, match=message):
        load_counts(*args)


def test_counts_with_p_column_are_refused():
    with pytest.raises(DataError, match="per-label p needs the label rows"):
        fit_attentiveness(load_counts([1], [2]), p_column="p")


def test_cli_fit_streams_parquet_directories_and_csv(tmp_path):
    frame = grouped_frame(2)
    folder = tmp_path / "parts"
    folder.mkdir()
    for index, part in enumerate(np.array_split(np.arange(len(frame)), 3)):
        pq.write_table(pa.Table.from_pandas(frame.iloc[part], preserve_index=False), folder / f"{index}.parquet")
    frame.to_csv(tmp_path / "labels.csv", index=False)
    runner = CliRunner()
    summaries = []
    for source in (folder, tmp_path / "labels.csv"):
        result = runner.invoke(app, ["fit", str(source), "--group-column", "topic", "--json", "--dtype", "float64"])
        assert result.exit_code == 0, result.output
        summaries.append(json.loads(result.stdout.strip().splitlines()[-1]))
    expected = fit_attentiveness(frame, group_column="topic", dtype="float64").summary()
    for summary in summaries:
        assert summary["n_users"] == expected["n_users"] and summary["n_labels"] == len(frame)
        for group, value in expected["params"]["mu"].items():
            assert summary["params"]["mu"][group] == pytest.approx(value, rel=1e-6)


@pytest.mark.parametrize("suffix, group_column", [(".parquet", "topic"), (".csv", None)])
def test_streamed_filter_writes_the_in_memory_filter_rows(tmp_path, suffix, group_column):
    frame = grouped_frame(3)
    frame["extra"] = np.arange(len(frame)) * 0.5
    path = tmp_path / "labels.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    options = dict(family="npmle", num_grid=16, group_column=group_column)
    in_memory = filter_labels(fit_attentiveness(frame, **options), "eta_mean", threshold=0.4, weights=True)
    counts = stream_counts(path, group_column=group_column, progress=False)
    fit = fit_attentiveness(counts, **{**options, "group_column": None})
    keep = select_users(fit.users, "eta_mean", threshold=0.4)
    out = tmp_path / f"kept{suffix}"
    written = filter_stream(path, out, fit, keep, weights=True, group_column=group_column, progress=False)
    streamed = pd.read_parquet(out) if suffix == ".parquet" else pd.read_csv(out)
    assert written == len(in_memory) == len(streamed) and 0 < written < len(frame)
    pd.testing.assert_frame_equal(streamed, in_memory.reset_index(drop=True), check_dtype=False, atol=1e-6)


def test_streamed_filter_refuses_data_the_fit_has_not_seen(tmp_path):
    frame = grouped_frame(4)
    path = tmp_path / "labels.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    fit = fit_attentiveness(load_counts([3], [4], user_ids=["someone else"]), mu=0.8)
    with pytest.raises(DataError, match="changed between the passes"):
        filter_stream(path, tmp_path / "out.parquet", fit, np.ones(1, bool), progress=False)
    assert not (tmp_path / "out.parquet").exists()
    with pytest.raises(DataError, match="unknown format '.txt'"):
        filter_stream(path, tmp_path / "out.txt", fit, np.ones(1, bool), progress=False)


def test_cli_filter_streams_parquet_like_the_in_memory_filter(tmp_path):
    frame = grouped_frame(5)
    path = tmp_path / "labels.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    runner = CliRunner()
    common = ["--rule", "top_fraction", "--fraction", "0.3", "--weights", "--dtype", "float64"]
    for out in ("kept.parquet", "kept.jsonl"):  # streamed, in memory
        result = runner.invoke(app, ["filter", str(path), "--out", str(tmp_path / out), *common])
        assert result.exit_code == 0, result.output
    streamed, in_memory = pd.read_parquet(tmp_path / "kept.parquet"), pd.read_json(tmp_path / "kept.jsonl", lines=True)
    pd.testing.assert_frame_equal(streamed, in_memory, check_dtype=False, atol=1e-9)
