"""One ingestion path: ids kept as written, in-memory and streamed reading agree, the fit owns its data,
conflicting options and degenerate data are reported, outputs are atomic."""

import warnings

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from jaxpref.cli import app
from jaxpref.io.data import DataError, DegenerateDataWarning, load_preferences, user_counts
from jaxpref.estimator import AttentivenessEM, fit_attentiveness
from jaxpref.scale.streaming import stream_counts

runner = CliRunner()


def both_ways(path, **columns):
    """Per-user ``(ids, k, n)`` read in memory and streamed."""
    data = load_preferences(str(path), **columns)
    k, n = user_counts(data)
    streamed = stream_counts(path, progress=False, **columns)
    return (data.user_ids.tolist(), k.tolist(), n.tolist()), (
        streamed.user_ids.tolist(),
        streamed.pref_a_counts.tolist(),
        streamed.label_counts.tolist(),
    )


def test_ids_are_kept_as_written(tmp_path):
    big = [str(10**20 + i) for i in range(6)]
    users = ["007", "7", *big, "007"]
    path = tmp_path / "ids.csv"
    path.write_text("user,label\n" + "".join(f"{u},{i % 2}\n" for i, u in enumerate(users)))
    in_memory, streamed = both_ways(path)
    assert in_memory == streamed
    assert in_memory[0] == ["007", "7", *big]  # 8 users: '007' != '7', ids beyond int64 distinct


def test_numeric_then_text_ids_read_the_same_throughout(tmp_path):
    rows = [(str(i % 5000), i % 2) for i in range(60_000)] + [(f"user{i % 3}", 1) for i in range(30)]
    path = tmp_path / "mixed.csv"
    path.write_text("user,label\n" + "".join(f"{u},{y}\n" for u, y in rows))
    in_memory, streamed = both_ways(path)
    assert in_memory == streamed and len(in_memory[0]) == 5003
    assert sum(map(sum, in_memory[2])) == len(rows)


def test_empty_id_is_an_error_naming_the_row(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("user,label\na,1\n,0\nb,1\nb,0\n")
    for read in (load_preferences, lambda p: stream_counts(p, progress=False)):
        with pytest.raises(DataError, match="missing or empty id at row 1"):
            read(str(path))


id_text = st.one_of(
    st.from_regex(r"0{0,2}[0-9]{1,3}", fullmatch=True),
    st.sampled_from(["a", "B", "x y", "é"]),
    st.integers(10**19, 10**19 + 3).map(str),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(
        st.tuples(id_text, st.integers(0, 1), st.sampled_from(["t1", "t0", "10"])), min_size=1, max_size=40
    ),
    suffix=st.sampled_from([".csv", ".jsonl", ".parquet"]),
    grouped=st.booleans(),
)
def test_in_memory_and_streamed_counts_are_identical(tmp_path, rows, suffix, grouped):
    frame = pd.DataFrame(rows, columns=["user", "label", "topic"])
    path = tmp_path / f"labels{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path, index=False)
    columns = {"group_column": "topic"} if grouped else {}
    in_memory, streamed = both_ways(path, **columns)
    assert in_memory == streamed
    assert in_memory[0] == list(pd.unique(frame["user"]))  # ids exactly as written, first appearance order
    assert (
        streamed[2]
        == pd.crosstab(frame["user"], frame["topic"] if grouped else 0).loc[in_memory[0]].to_numpy().tolist()
    )


def test_the_fit_owns_its_data():
    frame = pd.DataFrame({"user": list("abcabcabcd") * 3, "label": [1, 0, 1, 1, 0, 0, 1, 1, 1, 0] * 3})
    model = AttentivenessEM(mu=0.8).fit(frame)
    before = model.labels_.copy()
    frame.sort_values(["user", "label"], inplace=True)
    frame.loc[:, "label"] = 0
    pd.testing.assert_frame_equal(model.labels_, before)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"mu": 0.74, "mu_prior": (8, 2)}, "not both"),
        ({"mu": "free", "mu_prior": (8, 2)}, "not both"),
        ({"mu": {0: 0.6, 1: 0.7, 5: 0.8}, "group_column": "group"}, "key 5"),
        ({"mu": {"0": 0.6, 0: 0.7, "1": 0.8}, "group_column": "group"}, "twice"),
    ],
)
def test_conflicting_options_are_errors(options, message):
    frame = pd.DataFrame({"user": list("aabbccdd"), "label": [1, 0, 1, 1, 0, 1, 1, 1], "group": [0, 1] * 4})
    with pytest.raises(DataError, match=message):
        fit_attentiveness(frame, **options)


def test_text_keys_match_numeric_groups():
    frame = pd.DataFrame(
        {"user": list("aabbccdd") * 3, "label": [1, 0, 1, 1, 0, 1, 1, 1] * 3, "group": [0, 1] * 12}
    )
    fit = fit_attentiveness(frame, mu={"0": 0.6, "1": 0.9}, group_column="group")
    assert fit.params["mu"] == pytest.approx({0: 0.6, 1: 0.9})


@pytest.mark.parametrize(
    "users, labels, message",
    [
        (["a"] * 5, [1, 0, 1, 1, 0], "one user"),
            (list("aabbcc"), [1] * 6, "every label is 1"),
        (list("aabbcc"), [0] * 6, "A and B swapped"),
    ],
)
def test_degenerate_data_warn(users, labels, message):
    with pytest.warns(DegenerateDataWarning, match=message):
        fit_attentiveness({"user": users, "label": labels}, mu=0.8)


def test_well_posed_data_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateDataWarning)
        fit_attentiveness({"user": list("aabbcc"), "label": [1, 0, 1, 1, 0, 1]}, mu=0.8)


def test_simulate_writes_both_outputs_or_neither(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JAXPREF_COMPILATION_CACHE", "off")
    result = runner.invoke(
        app, ["simulate", "--users", "20", "--out", "s.parquet", "--truth-out", "no/t.parquet"]
    )
    assert result.exit_code == 2 and not list(tmp_path.iterdir())
    result = runner.invoke(
        app, ["simulate", "--users", "20", "--out", "s.parquet", "--truth-out", "t.parquet"]
    )
    assert result.exit_code == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["s.parquet", "t.parquet"]


def test_filter_never_writes_over_its_input(tmp_path):
    path = tmp_path / "same.parquet"
    pq.write_table(pa.table({"user": list("aabb"), "label": [1, 0, 1, 1]}), path)
    before = path.read_bytes()
    result = runner.invoke(app, ["filter", str(path), "--mu", "0.74", "--out", str(path)])
    assert result.exit_code == 2 and "is the input" in result.stderr and path.read_bytes() == before


def test_gzip_compressed_csv_reads_like_plain_csv(tmp_path):
    import gzip

    path = tmp_path / "labels.csv"
    path.write_bytes(gzip.compress(b"user,label\n007,1\n7,0\n007,0\n"))
    in_memory, streamed = both_ways(path)
    assert in_memory == streamed == (["007", "7"], [[1], [0]], [[2], [1]])


def test_filtering_a_counts_fit_is_a_data_error():
    from jaxpref.io.data import load_counts
    from jaxpref.core.posterior import filter_labels

    fit = fit_attentiveness(load_counts([3, 1, 2], [4, 2, 2]), mu=0.8)
    with pytest.raises(DataError, match="per-user counts"):
        filter_labels(fit)


def test_jsonl_numbers_and_strings_read_as_text(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text('{"user": "007", "label": 1}\n{"user": 7, "label": 0}\n{"user": 100000000000000000010, "label": 1}\n')
    in_memory, streamed = both_ways(path)
    assert in_memory == streamed and in_memory[0] == ["007", "7", "100000000000000000010"]
