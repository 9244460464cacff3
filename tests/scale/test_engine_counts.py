"""Counts from a SQL / DataFrame engine (the docs/scale.md recipe): polars aggregates the rows, only the
per-user counts reach `load_counts`, and the fit equals the fit of the rows themselves."""

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jaxpref.estimator import fit_attentiveness
from jaxpref.io.data import load_counts

TOPICS = np.array(["code", "chat", "math"])


def labels_file(path, seed=0, num_users=120):
    """Rows of users with 1-14 labels each over three topics, interleaved (random row order)."""
    rng = np.random.default_rng(seed)
    per_user = rng.integers(1, 15, num_users)
    user = rng.permutation(np.repeat(np.arange(num_users), per_user))
    topic = rng.integers(0, 3, user.shape[0])
    attentive = rng.random(num_users) < 0.5
    prefer_a = np.where(attentive[user], np.array([0.9, 0.75, 0.8])[topic], 0.5)
    frame = pd.DataFrame({"user": [f"w{u:03d}" for u in user], "topic": TOPICS[topic],
                          "label": (rng.random(user.shape[0]) < prefer_a).astype(np.int64)})
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    return frame


def sql_counts_by_topic(path):
    """The recipe with groups: one SQL GROUP BY, then one row per user and a column per topic."""
    # "user" is quoted: USER is an SQL keyword.
    query = 'SELECT "user", topic, SUM(label) AS k, COUNT(*) AS n FROM labels GROUP BY "user", topic'
    cells = pl.SQLContext(labels=pl.scan_parquet(path)).execute(query, eager=False).collect(engine="streaming")
    topics = sorted(cells["topic"].unique().to_list())
    wide = cells.pivot(on="topic", index="user", values=["k", "n"]).fill_null(0).sort("user")
    return load_counts(
        wide.select([f"k_{topic}" for topic in topics]).to_numpy(),
        wide.select([f"n_{topic}" for topic in topics]).to_numpy(),
        user_ids=wide["user"].to_numpy(),
        group_ids=np.array(topics),
    )


def frame_counts(path):
    """The recipe without groups, DataFrame API."""
    per_user = (
        pl.scan_parquet(path).group_by("user").agg(k=pl.col("label").sum(), n=pl.len()).collect(engine="streaming")
    )
    return load_counts(per_user["k"].to_numpy(), per_user["n"].to_numpy(), user_ids=per_user["user"].to_numpy())


@pytest.mark.parametrize("grouped", [True, False])
def test_engine_counts_fit_like_the_rows(tmp_path, grouped):
    path = tmp_path / "labels.parquet"
    frame = labels_file(path)
    options = dict(family="two_point", support=(0.1, 0.9), dtype="float64", tol=1e-10)
    from_rows = fit_attentiveness(frame, group_column="topic" if grouped else None, **options)
    counts = sql_counts_by_topic(path) if grouped else frame_counts(path)
    assert counts.num_labels == len(frame) and counts.num_users == frame["user"].nunique()
    from_counts = fit_attentiveness(counts, **options)
    assert from_counts.params["mu"] == pytest.approx(from_rows.params["mu"], rel=1e-9)  # one per topic
    np.testing.assert_allclose(from_counts.params["weights"], from_rows.params["weights"], rtol=1e-9, atol=1e-12)
    assert from_counts.loglik == pytest.approx(from_rows.loglik, rel=1e-12)
    # The engine's users come in its own order: align by id.
    by_id = [fit.users.set_index("user").sort_index() for fit in (from_counts, from_rows)]
    pd.testing.assert_frame_equal(*by_id, check_exact=False, rtol=1e-9)
