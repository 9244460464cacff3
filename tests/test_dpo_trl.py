"""TRL route: weights and flip rates mapped onto TRL, and a few real DPOTrainer steps."""

import numpy as np
import pandas as pd
import pytest

from jaxpref.dpo.export import preference_frame
from jaxpref.dpo.trl_adapter import prepare_for_trl, train_with_trl

WORDS = ["red", "green", "blue", "cat", "dog", "yes", "no", "one", "two"]


def make_frame(num_labels=12, seed=0):
    rng = np.random.default_rng(seed)
    labels = pd.DataFrame(
        {
            "user": rng.integers(0, 3, size=num_labels),
            "label": rng.integers(0, 2, size=num_labels),
            "prompt": [" ".join(rng.choice(WORDS, 2)) for _ in range(num_labels)],
            "response_a": [" " + " ".join(rng.choice(WORDS, 3)) for _ in range(num_labels)],
            "response_b": [" " + " ".join(rng.choice(WORDS, 2)) for _ in range(num_labels)],
            "label_attentive": rng.uniform(0, 1, size=num_labels),
        }
    )
    labels["flip_rate"] = (1 - labels["label_attentive"]) / 2
    return preference_frame(labels, weight="label_attentive", eps="flip_rate")


def test_resampling_follows_the_weights():
    frame = make_frame(4).assign(weight=[0.0, 1.0, 3.0, 0.0], eps=[0.5, 0.1, 0.2, 0.5])
    frame = pd.concat([frame] * 500, ignore_index=True)
    rows, mean_eps = prepare_for_trl(frame, weighting="resample", seed=1)
    assert mean_eps == pytest.approx((0.1 * 1 + 0.2 * 3) / 4)
    assert len(rows) == len(frame) and list(rows.columns) == ["prompt", "chosen", "rejected", "user"]
    counts = rows["chosen"].value_counts()
    # rows of weight 0 never come back; rows 1 and 2 come back in a 1 : 3 ratio
    assert set(counts.index) == set(frame["chosen"].iloc[[1, 2]])
    share = counts[frame["chosen"].iloc[2]] / len(rows)
    assert share == pytest.approx(0.75, abs=0.03)


def test_drop_zero_and_ignore():
    frame = make_frame(4).assign(weight=[0.0, 1.0, 3.0, 0.0])
    assert (
        prepare_for_trl(frame, weighting="drop_zero")[0]["chosen"].tolist()
        == frame["chosen"].iloc[[1, 2]].tolist()
    )
    assert len(prepare_for_trl(frame, weighting="ignore")[0]) == 4


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="weighting"):
        prepare_for_trl(make_frame(), weighting="soft")
    with pytest.raises(ValueError, match="weight 0"):
        prepare_for_trl(make_frame().assign(weight=0.0))
    with pytest.raises(ValueError, match="preference_frame"):
        prepare_for_trl(pd.DataFrame({"prompt": ["x"]}))
    with pytest.raises(ValueError, match="loss_type"):
        train_with_trl(None, None, make_frame(), output_dir="unused", loss_type="ipo")


def tiny_tokenizer():
    tokenizers = pytest.importorskip("tokenizers")
    from transformers import PreTrainedTokenizerFast

    vocabulary = {word: index for index, word in enumerate(["<pad>", "<eos>", "<unk>", *WORDS])}
    backend = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocabulary, unk_token="<unk>"))
    backend.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>"
    )


@pytest.mark.parametrize("loss_type", ["sigmoid", "robust"])
def test_trl_dpo_trainer_runs_a_few_steps(loss_type, tmp_path):
    torch = pytest.importorskip("torch", reason="the TRL route needs the hf extra (torch)")
    pytest.importorskip("trl", reason="the TRL route needs the hf extra (trl)")
    import transformers

    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    config = transformers.GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=32,
        n_embd=16,
        n_layer=1,
        n_head=2,
        bos_token_id=1,
        eos_token_id=1,
        pad_token_id=0,
    )
    model = transformers.GPT2LMHeadModel(config)
    before = {name: value.clone() for name, value in model.named_parameters()}
    frame = make_frame()
    trainer = train_with_trl(
        model,
        tokenizer,
        frame,
        output_dir=str(tmp_path),
        loss_type=loss_type,
        max_steps=3,
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        logging_steps=1,
        use_cpu=True,
        disable_tqdm=True,
        max_length=32,
    )
    assert trainer.state.global_step == 3
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 3 and np.isfinite(losses).all()
    assert trainer.label_smoothing == (
        pytest.approx(np.average(frame["eps"], weights=frame["weight"])) if loss_type == "robust" else 0.0
    )
    assert any(not torch.equal(before[name], value) for name, value in model.named_parameters())
