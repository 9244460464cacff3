"""Arena votes: the loader keeps ids as written, sufficient statistics match a plain count, bad input names its column."""

import numpy as np
import pandas as pd
import pytest

from jaxpref.arena import load_votes, pair_stats
from jaxpref.errors import DataError


def _votes():
    return pd.DataFrame({
        "judge": ["007", "7", "007", "abc", "7", "abc"],
        "model_a": ["gpt-x", "claude", "claude", "007-model", "gpt-x", "claude"],
        "model_b": ["claude", "gpt-x", "007-model", "gpt-x", "claude", "gpt-x"],
        "winner": ["model_a", "tie", "model_b", "tie (bothbad)", "model_b", "model_a"],
        "question_id": range(6),
    })


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_loader_keeps_ids_as_written(tmp_path, suffix):
    frame = _votes()
    path = tmp_path / f"votes{suffix}"
    {".parquet": lambda: frame.to_parquet(path), ".csv": lambda: frame.to_csv(path, index=False),
     ".jsonl": lambda: frame.to_json(path, orient="records", lines=True)}[suffix]()
    votes = load_votes(path)
    assert votes.voter_column == "judge"
    assert votes.voter_ids.tolist() == ["007", "7", "abc"]
    assert votes.model_ids.tolist() == ["007-model", "claude", "gpt-x"]
    assert votes.score_a.tolist() == [1.0, 0.5, 0.0, 0.5, 0.0, 1.0]
    assert votes.frame["question_id"].tolist() == list(range(6))


def test_caller_frame_is_not_aliased():
    frame = _votes()
    votes = load_votes(frame)
    frame.loc[0, "winner"] = "model_b"
    assert votes.frame.loc[0, "winner"] == "model_a"


def test_pair_stats_match_a_plain_count():
    rng = np.random.default_rng(3)
    num_votes, models = 400, np.asarray(["a", "b", "c", "d"])
    first = rng.integers(0, 4, num_votes)
    second = (first + rng.integers(1, 4, num_votes)) % 4
    frame = pd.DataFrame({"user": rng.integers(0, 7, num_votes).astype(str), "model_a": models[first],
                          "model_b": models[second],
                          "winner": rng.choice(["model_a", "model_b", "tie", "tie (bothbad)"], num_votes)})
    stats = pair_stats(load_votes(frame))
    voter_ids = load_votes(frame).voter_ids
    expected = {}
    for row in frame.itertuples():
        a, b = models.tolist().index(row.model_a), models.tolist().index(row.model_b)
        score = {"model_a": 1.0, "model_b": 0.0}.get(row.winner, 0.5)
        key = (voter_ids.tolist().index(row.user), min(a, b), max(a, b))
        wins, games = expected.get(key, (0.0, 0))
        expected[key] = (wins + (score if a < b else 1.0 - score), games + 1)
    got = {(int(v), int(f), int(s)): (w, n) for v, f, s, w, n in
           zip(stats.voter, stats.first, stats.second, stats.score_first, stats.num_votes)}
    assert got.keys() == expected.keys()
    for key, (wins, games) in expected.items():
        assert got[key] == pytest.approx((wins, games))


@pytest.mark.parametrize(
    "column, value, fragment",
    [
        ("winner", "model_c", "'winner'"),
        ("winner", None, "'winner'"),
        ("winner", np.nan, "'winner'"),
        ("model_a", np.nan, "'model_a/model_b'"),
        ("judge", None, "'judge'"),
        ("model_b", "gpt-x", "'model_b'"),  # row 0 then compares gpt-x with itself
    ],
)
def test_bad_votes_name_the_column(column, value, fragment):
    frame = _votes().astype(object)
    frame.loc[0, column] = value
    with pytest.raises(DataError, match=fragment):
        load_votes(frame)


def test_empty_and_missing_columns():
    with pytest.raises(DataError, match="empty"):
        load_votes(_votes().iloc[:0])
    with pytest.raises(DataError, match="winner_column='outcome'"):
        load_votes(_votes(), winner_column="outcome")
    with pytest.raises(DataError, match="no voter column"):
        load_votes(_votes().drop(columns="judge"))
    with pytest.raises(DataError, match="does not exist"):
        load_votes("/nonexistent/votes.parquet")


def test_custom_voter_column_in_csv_keeps_ids(tmp_path):
    path = tmp_path / "votes.csv"
    _votes().rename(columns={"judge": "rater"}).to_csv(path, index=False)
    votes = load_votes(path, voter_column="rater")
    assert votes.voter_ids.tolist() == ["007", "7", "abc"]
