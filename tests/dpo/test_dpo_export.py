"""Export of user labels to TRL's prompt / chosen / rejected format."""

import numpy as np
import pandas as pd
import pytest

from jaxpref.dpo.export import TRL_COLUMNS, preference_frame, to_dataset, write_parquet


@pytest.fixture
def labels():
    return pd.DataFrame(
        {
            "user": [7, 7, 9, 11],
            "label": [1, 0, 1, 0],
            "prompt": ["p0", "p1", "p2", "p3"],
            "response_a": ["a0", "a1", "a2", "a3"],
            "response_b": ["b0", "b1", "b2", "b3"],
            "label_attentive": [0.9, 0.2, 0.0, 0.6],
            "flip_rate": [0.05, 0.4, 0.5, 0.2],
        }
    )


def test_chosen_and_rejected_follow_the_label(labels):
    frame = preference_frame(labels, weight="label_attentive", eps="flip_rate")
    assert list(frame.columns[:3]) == list(TRL_COLUMNS)
    assert frame["chosen"].tolist() == ["a0", "b1", "a2", "b3"]
    assert frame["rejected"].tolist() == ["b0", "a1", "b2", "a3"]
    np.testing.assert_array_equal(frame["weight"], labels["label_attentive"])
    np.testing.assert_array_equal(frame["eps"], labels["flip_rate"])
    assert frame["user"].tolist() == [7, 7, 9, 11]
    assert frame["prompt"].tolist() == labels["prompt"].tolist()


def test_defaults_are_unit_weight_and_zero_flip_rate(labels):
    frame = preference_frame(labels)
    assert (frame["weight"] == 1.0).all() and (frame["eps"] == 0.0).all()


def test_array_weights_and_dropping_zero_weights(labels):
    frame = preference_frame(labels, weight=np.array([1.0, 0.0, 2.0, 0.0]), drop_zero_weight=True)
    assert frame["prompt"].tolist() == ["p0", "p2"]
    assert frame["weight"].tolist() == [1.0, 2.0]


def test_custom_column_names(labels):
    renamed = labels.rename(columns={"user": "worker", "response_a": "left", "response_b": "right"})
    frame = preference_frame(
        renamed, user_column="worker", response_a_column="left", response_b_column="right"
    )
    assert frame["chosen"].tolist() == ["a0", "b1", "a2", "b3"]


def test_dataset_and_parquet_round_trip(labels, tmp_path):
    import datasets

    frame = preference_frame(labels, weight="label_attentive", eps="flip_rate")
    dataset = to_dataset(frame)
    assert set(TRL_COLUMNS) <= set(dataset.column_names)
    assert dataset["chosen"] == frame["chosen"].tolist()
    path = write_parquet(frame, tmp_path / "prefs.parquet")
    reloaded = datasets.load_dataset("parquet", data_files=path, split="train")
    assert reloaded.column_names == dataset.column_names
    pd.testing.assert_frame_equal(reloaded.to_pandas(), frame, check_dtype=False)
    np.testing.assert_allclose(pd.read_parquet(path)["eps"], frame["eps"])


def test_mixed_user_ids_become_strings(labels):
    mixed = labels.assign(user=[1, "b", 2, "c"])
    assert to_dataset(preference_frame(mixed))["user"] == ["1", "b", "2", "c"]


@pytest.mark.parametrize(
    ("change", "kwargs", "message"),
    [
        (lambda d: d.drop(columns="response_b"), {}, "response_b"),
        (lambda d: d.assign(label=[1, 2, 0, 0]), {}, "label"),
        (lambda d: d, {"weight": "nope"}, "nope"),
        (lambda d: d, {"weight": np.array([1.0, -1.0, 1.0, 1.0])}, "weight"),
        (lambda d: d, {"weight": np.ones(3)}, "weight"),
        (lambda d: d, {"eps": np.array([0.0, 0.6, 0.0, 0.0])}, "eps"),
    ],
)
def test_bad_input_raises(labels, change, kwargs, message):
    with pytest.raises(ValueError, match=message):
        preference_frame(change(labels), **kwargs)


def test_not_a_frame_raises():
    with pytest.raises(TypeError, match="labels"):
        preference_frame({"user": [1]})
    with pytest.raises(ValueError, match="preference_frame"):
        to_dataset(pd.DataFrame({"prompt": ["x"]}))


@pytest.mark.slow  # the EM fit compiles for tens of seconds on 2 busy cores
def test_hand_off_from_a_fitted_attentiveness_model():
    """AttentivenessEM.labels_ -> TRL rows: weights and flip rates come from the fit."""
    jaxpref = pytest.importorskip("jaxpref")
    rng = np.random.default_rng(0)
    num_users, per_user = 40, 10
    user = np.repeat(np.arange(num_users), per_user)
    attentive_user = np.arange(num_users) < num_users // 2
    label = np.where(attentive_user[user], rng.uniform(size=user.size) < 0.9, rng.integers(0, 2, user.size))
    data = pd.DataFrame(
        {
            "user": user,
            "label": label.astype(int),
            "prompt": [f"p{i}" for i in range(user.size)],
            "response_a": "good",
            "response_b": "bad",
        }
    )
    model = jaxpref.AttentivenessEM(family="two_point", mu=0.9).fit(data)
    frame = preference_frame(model.labels_, weight="label_attentive", eps="flip_rate")
    np.testing.assert_allclose(frame["weight"] + 2 * frame["eps"], 1.0, rtol=1e-6)
    assert frame["prompt"].tolist() == data["prompt"].tolist()
    assert (frame["chosen"] == np.where(data["label"] == 1, "good", "bad")).all()
    # the attentive half of the users carries more weight than the casual half
    weight_by_user = frame.groupby("user")["weight"].mean()
    assert weight_by_user[attentive_user].mean() > weight_by_user[~attentive_user].mean() + 0.2
