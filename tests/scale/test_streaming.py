"""Streaming ingestion from parquet: counts equal a pandas group-by of the whole table, batch by batch."""

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jaxpref.io.data import DataError, compress_counts
from jaxpref.scale import streaming
from jaxpref.scale.streaming import stream_counts

SETTINGS = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                         HealthCheck.function_scoped_fixture])


def random_frame(seed, num_rows, id_kind):
    """Labels of users with string ids, small integer ids (direct coding), or integer ids that
    outgrow direct coding part way (the coder switches to hashing)."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, max(1, num_rows // 3), num_rows)
    if id_kind == "large_int":
        users = np.where(np.arange(num_rows) >= num_rows // 2, users + 2**40, users)
    return pd.DataFrame({
        "user": [f"u{u}" for u in users] if id_kind == "string" else users,
        "label": rng.integers(0, 2, num_rows),
        "group": rng.choice(["b", "a", "c"], num_rows),
    })


def write_parts(frame, folder, num_files):
    folder.mkdir(parents=True, exist_ok=True)
    for index, part in enumerate(np.array_split(np.arange(len(frame)), num_files)):
        pq.write_table(pa.Table.from_pandas(frame.iloc[part], preserve_index=False), folder / f"part-{index}.parquet")
    return folder


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), num_rows=st.integers(1, 200),
       id_kind=st.sampled_from(["string", "small_int", "large_int"]), with_groups=st.booleans(),
       cells_per_pass=st.sampled_from([streaming.CELLS_PER_PASS, 1, 17]))
def test_counts_match_a_pandas_group_by(tmp_path_factory, monkeypatch, seed, num_rows, id_kind, with_groups,
                                        cells_per_pass):
    """Also over several passes (one per hash partition of the users): the same counts and order."""
    frame = random_frame(seed, num_rows, id_kind)
    folder = write_parts(frame, tmp_path_factory.mktemp("parts"), num_files=3)
    monkeypatch.setattr(streaming, "CELLS_PER_PASS", cells_per_pass)
    out = stream_counts(folder, group_column="group" if with_groups else None, progress=False)
    keys = ["user", "group"] if with_groups else ["user"]
    expected = frame.groupby(keys, sort=False)["label"].agg(["sum", "count"])
    assert out.num_labels == num_rows
    assert out.user_ids.tolist() == list(pd.unique(frame["user"]))
    groups = out.group_ids.tolist() if with_groups else [None]
    assert groups == (sorted(frame["group"].unique()) if with_groups else [None])
    for row, user in enumerate(out.user_ids):
        for column, group in enumerate(groups):
            key = (user, group) if with_groups else user
            total, count = expected.loc[key].tolist() if key in expected.index else (0, 0)
            assert (out.pref_a_counts[row, column], out.label_counts[row, column]) == (total, count)


def test_feeds_compress_counts(tmp_path):
    frame = random_frame(0, 500, "string")
    path = tmp_path / "labels.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    out = stream_counts(str(path), progress=True)
    stats, row_of_user = compress_counts(out.pref_a_counts, out.label_counts)
    assert float(stats.multiplicity.sum()) == len(out.user_ids)
    np.testing.assert_array_equal(stats.num_labels[row_of_user, 0], out.label_counts[:, 0])


def test_crowdkit_worker_column_is_accepted(tmp_path):
    path = tmp_path / "w.parquet"
    pq.write_table(pa.table({"worker": [3, 3, 5], "label": [True, False, True]}), path)
    out = stream_counts(path, progress=False)
    assert out.user_ids.tolist() == [3, 5] and out.pref_a_counts[:, 0].tolist() == [1, 1]
    assert out.user_ids.dtype == np.int64


@pytest.mark.parametrize(
    "table, options, message",
    [
        ({"user": [1, 2], "label": [1, 2]}, {}, "outside \\{0, 1\\}"),
        ({"user": [1, None], "label": [1, 0]}, {}, "missing or empty id at row 1"),
        ({"user": [1, 2], "y": [1, 0]}, {}, "label column 'label' not found"),
        ({"who": [1, 2], "label": [1, 0]}, {}, "user column 'user' not found"),
        ({"user": [1, 2], "label": [1, 0]}, {"group_column": "topic"}, "group column 'topic' not found"),
    ],
)
def test_bad_input_raises_a_clear_error(tmp_path, table, options, message):
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table(table), path)
    with pytest.raises(DataError, match=message):
        stream_counts(path, progress=False, **options)


def test_missing_path_and_empty_data(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        stream_counts(tmp_path / "nope.parquet")
    path = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"user": pa.array([], pa.int64()), "label": pa.array([], pa.int64())}), path)
    with pytest.raises(DataError, match="no rows"):
        stream_counts(path, progress=False)


@pytest.mark.parametrize("users", [[5, -1, 5, 2], [7, 2**62, 7, 3]])
def test_negative_and_huge_integer_ids_are_kept(tmp_path, users):
    path = tmp_path / "ids.parquet"
    pq.write_table(pa.table({"user": users, "label": [1, 0, 0, 1]}), path)
    out = stream_counts(path, progress=False)
    assert out.user_ids.tolist() == list(pd.unique(np.asarray(users)))
    assert out.pref_a_counts[:, 0].tolist() == [1, 0, 1] and out.label_counts[:, 0].tolist() == [2, 1, 1]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_text_formats_stream_like_parquet_with_ids_as_text(tmp_path, suffix):
    frame = random_frame(3, 300, "small_int")
    frame["user"] = frame["user"].astype(str)  # text formats keep ids as written: as strings
    path = tmp_path / f"labels{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_json(path, orient="records", lines=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "labels.parquet")
    from_text = stream_counts(path, group_column="group", progress=False)
    from_parquet = stream_counts(tmp_path / "labels.parquet", group_column="group", progress=False)
    for field in ("pref_a_counts", "label_counts", "user_ids", "group_ids"):
        np.testing.assert_array_equal(getattr(from_text, field), getattr(from_parquet, field))


def test_unreadable_text_is_a_data_error(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("user,label\n1,0\n2,1,7\n")  # a row with an extra field
    with pytest.raises(DataError, match="cannot read '.*bad.csv'"):
        stream_counts(path, progress=False)


@pytest.mark.parametrize(
    "users",
    [pd.Categorical(["a", " ", "a"]), pd.Series(["a", "", "a"]), pd.Series([1.0, float("nan"), 1.0])],
    ids=["categorical blank", "empty string", "float NaN"],
)
@pytest.mark.parametrize("cells_per_pass", [streaming.CELLS_PER_PASS, 1])
def test_missing_ids_of_every_type_are_found_in_the_aggregate(tmp_path, monkeypatch, users, cells_per_pass):
    path = tmp_path / "ids.parquet"
    pq.write_table(pa.Table.from_pandas(pd.DataFrame({"user": users, "label": [1, 0, 1]}), preserve_index=False), path)
    monkeypatch.setattr(streaming, "CELLS_PER_PASS", cells_per_pass)
    with pytest.raises(DataError, match="missing or empty id at row 1"):
        stream_counts(path, progress=False)


@pytest.mark.parametrize("cells_per_pass", [streaming.CELLS_PER_PASS, 1])
def test_a_null_id_is_found_in_any_pass(tmp_path, monkeypatch, cells_per_pass):
    """Rows with a null id reach a pass (and the id check) whatever the number of passes."""
    path = tmp_path / "ids.parquet"
    frame = pd.DataFrame({"user": pd.array([5, 6, None, 6], dtype="Int64"), "label": [1, 0, 1, 1]})
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    monkeypatch.setattr(streaming, "CELLS_PER_PASS", cells_per_pass)
    with pytest.raises(DataError, match="missing or empty id at row 2"):
        stream_counts(path, progress=False)


def test_passes_follow_the_estimated_cells_of_parquet_only(tmp_path, monkeypatch):
    """Rows times the share of distinct users in a sample: sorted ids need fewer passes than the same
    rows shuffled; text is parsed once; the passes are capped."""
    users = np.repeat(np.arange(20), 20)
    sorted_frame = pd.DataFrame({"user": users, "label": 1})
    shuffled_frame = sorted_frame.sample(frac=1.0, random_state=0)
    paths = {name: tmp_path / f"{name}.parquet" for name in ("sorted", "shuffled")}
    sorted_frame.to_parquet(paths["sorted"])
    shuffled_frame.to_parquet(paths["shuffled"])
    text = tmp_path / "labels.csv"
    shuffled_frame.to_csv(text, index=False)
    monkeypatch.setattr(streaming, "SAMPLE_ROWS", 100)
    monkeypatch.setattr(streaming, "CELLS_PER_PASS", 30)

    def passes(path, lazy):
        return streaming.num_passes(str(path), lazy, ("user",))

    sampled = shuffled_frame["user"].iloc[:100].nunique()
    assert passes(paths["sorted"], pl.scan_parquet(paths["sorted"])) == 1  # 400 rows x 5/100 = 20 cells
    assert passes(paths["shuffled"], pl.scan_parquet(paths["shuffled"])) == int(np.ceil(400 * sampled / 100 / 30))
    assert passes(text, pl.scan_csv(text)) == 1
    monkeypatch.setattr(streaming, "CELLS_PER_PASS", 1)
    assert passes(paths["shuffled"], pl.scan_parquet(paths["shuffled"])) == streaming.MAX_PASSES
