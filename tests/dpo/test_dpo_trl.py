"""TRL route: WeightedDPOTrainer carries per-label weights and flip rates exactly.

A tiny random GPT-2 and a word-level tokenizer are built in code (no hub downloads).
"""

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch", reason="the TRL route needs the hf extra (torch)")
pytest.importorskip("trl", reason="the TRL route needs the hf extra (trl)")

import transformers  # noqa: E402
from trl import DPOConfig, DPOTrainer  # noqa: E402

from jaxpref.dpo.export import preference_frame, to_dataset  # noqa: E402
from jaxpref.dpo.losses import dpo_logits, dpo_loss, ipo_loss, sigmoid_loss  # noqa: E402
from jaxpref.dpo.losses import conservative_loss, robust_loss  # noqa: E402
from jaxpref.dpo.trl_trainer import WeightedDPOTrainer  # noqa: E402

WORDS = ["red", "green", "blue", "cat", "dog", "yes", "no", "one", "two"]


def make_frame(num_labels=12, seed=0):
    rng = np.random.default_rng(seed)
    labels = pd.DataFrame(
        {
            "user": [f"u{index:03d}" for index in rng.integers(0, 3, size=num_labels)],
            "label": rng.integers(0, 2, size=num_labels),
            "prompt": [" ".join(rng.choice(WORDS, 2)) for _ in range(num_labels)],
            "response_a": [" " + " ".join(rng.choice(WORDS, 3)) for _ in range(num_labels)],
            "response_b": [" " + " ".join(rng.choice(WORDS, 2)) for _ in range(num_labels)],
            "label_attentive": rng.uniform(0, 1, size=num_labels),
        }
    )
    labels["flip_rate"] = (1 - labels["label_attentive"]) / 2
    return preference_frame(labels, weight="label_attentive", eps="flip_rate")


def tiny_tokenizer():
    tokenizers = pytest.importorskip("tokenizers")

    vocabulary = {word: index for index, word in enumerate(["<pad>", "<eos>", "<unk>", *WORDS])}
    backend = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocabulary, unk_token="<unk>"))
    backend.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>"
    )


def tiny_model(seed=0):
    torch.manual_seed(seed)
    config = transformers.GPT2Config(
        vocab_size=len(WORDS) + 3, n_positions=32, n_embd=16, n_layer=1, n_head=2,
        bos_token_id=1, eos_token_id=1, pad_token_id=0,
    )
    return transformers.GPT2LMHeadModel(config)


def config(tmp_path, **overrides):
    settings = dict(
        output_dir=str(tmp_path), beta=0.5, per_device_train_batch_size=4, learning_rate=1e-2,
        logging_steps=1, use_cpu=True, bf16=False, disable_tqdm=True, max_length=32, report_to="none",
        save_strategy="no", seed=0,
    )
    settings.update(overrides)
    return DPOConfig(**settings)


def make_trainer(tmp_path, loss_type="sigmoid", data=None, **overrides):
    return WeightedDPOTrainer(
        tiny_model(),
        args=config(tmp_path, **overrides),
        train_dataset=to_dataset(make_frame()) if data is None else data,
        processing_class=tiny_tokenizer(),
        loss_type=loss_type,
    )


def move_policy(trainer, seed=0):
    """Move the policy away from the reference, so that the log-ratios are not all 0."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in trainer.model.parameters():
            parameter.add_(0.3 * torch.randn(parameter.shape, generator=generator))
    return trainer


def first_batch(trainer, size=None):
    examples = [trainer.train_dataset[index] for index in range(size or len(trainer.train_dataset))]
    return trainer._prepare_inputs(trainer.data_collator(examples))


JAX_LOSSES = {
    "sigmoid": lambda h, beta, eps: sigmoid_loss(h, beta),
    "conservative": conservative_loss,
    "robust": robust_loss,
    "ipo": lambda h, beta, eps: ipo_loss(h, beta),
}


@pytest.mark.parametrize("loss_type", ["sigmoid", "conservative", "robust", "ipo"])
def test_per_example_loss_equals_jaxpref_losses(loss_type, tmp_path):
    trainer = move_policy(make_trainer(tmp_path, loss_type))
    batch = first_batch(trainer)
    with torch.no_grad():
        parts = {k: v.double().numpy() for k, v in trainer.per_example_losses(trainer.model, batch).items()}
        loss = float(trainer.compute_loss(trainer.model, batch))
    logps = [parts[k] for k in ("chosen_logps", "rejected_logps", "ref_chosen_logps", "ref_rejected_logps")]
    h = np.asarray(dpo_logits(*logps), np.float64)
    assert np.abs(h).max() > 0.1  # the check compares non-trivial logits
    frame = make_frame()
    np.testing.assert_array_equal(parts["weight"], frame["weight"].to_numpy(np.float32))
    np.testing.assert_array_equal(parts["eps"], frame["eps"].to_numpy(np.float32))
    expected = np.asarray(JAX_LOSSES[loss_type](h, 0.5, parts["eps"]), np.float64)
    np.testing.assert_allclose(parts["losses"], expected, rtol=1e-6, atol=1e-6)
    uses_eps = loss_type in ("conservative", "robust")
    jax_loss, _ = dpo_loss(
        *logps, beta=0.5, loss_type=loss_type, eps=parts["eps"] if uses_eps else None, weights=parts["weight"]
    )
    assert loss == pytest.approx(float(jax_loss), rel=1e-6, abs=1e-6)


def test_unit_weights_reproduce_trl_sigmoid_loss(tmp_path):
    # With weight 1 and eps 0 the loss is TRL's own: same batch, same log-probabilities.
    data = to_dataset(make_frame().assign(weight=1.0, eps=0.0))
    ours = make_trainer(tmp_path, data=data)
    theirs = DPOTrainer(
        ours.model, ref_model=ours.ref_model, args=config(tmp_path),
        train_dataset=data.remove_columns(["weight", "eps"]), processing_class=tiny_tokenizer(),
    )
    move_policy(ours)
    with torch.no_grad():
        batch = first_batch(ours)
        trl_batch = {k: v for k, v in batch.items() if k not in ("weight", "eps")}
        assert float(ours.compute_loss(ours.model, batch)) == pytest.approx(
            float(theirs.compute_loss(ours.model, trl_batch)), rel=1e-6
        )


def gradients(trainer, batch):
    trainer.model.zero_grad()
    trainer.compute_loss(trainer.model, batch).backward()
    return [p.grad.clone() for p in trainer.model.parameters()]


def test_zero_weight_example_contributes_no_gradient(tmp_path):
    frame = make_frame().assign(weight=[0.0] + [1.0] * 11)
    trainer = move_policy(make_trainer(tmp_path, "robust", data=to_dataset(frame)))
    batch = first_batch(trainer)
    # Swapping chosen and rejected of the zero-weight pair changes its loss, not the gradient.
    swapped = make_trainer(tmp_path, "robust", data=to_dataset(frame.assign(
        chosen=[frame["rejected"][0], *frame["chosen"][1:]], rejected=[frame["chosen"][0], *frame["rejected"][1:]]
    )))
    swapped.model.load_state_dict(trainer.model.state_dict())
    swapped_batch = first_batch(swapped)
    with torch.no_grad():
        assert not torch.allclose(
            trainer.per_example_losses(trainer.model, batch)["losses"][0],
            swapped.per_example_losses(swapped.model, swapped_batch)["losses"][0],
        )
    for ours, theirs in zip(gradients(trainer, batch), gradients(swapped, swapped_batch)):
        torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-7)
    # ... while a positive weight there does change it.
    positive = make_trainer(tmp_path, "robust", data=to_dataset(frame.assign(weight=1.0)))
    positive.model.load_state_dict(trainer.model.state_dict())
    assert any(
        not torch.allclose(a, b) for a, b in zip(gradients(trainer, batch), gradients(positive, first_batch(positive)))
    )


def test_returned_unstarted_with_eval_set_and_callbacks_and_trains(tmp_path):
    seen = []

    class Recorder(transformers.TrainerCallback):
        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            seen.append(metrics)

    frame = make_frame()
    trainer = WeightedDPOTrainer(
        tiny_model(),
        args=config(tmp_path, max_steps=3, eval_strategy="steps", eval_steps=3),
        train_dataset=frame,  # a pandas frame is accepted as it is
        eval_dataset=to_dataset(make_frame(8, seed=1)).remove_columns(["weight", "eps"]),
        processing_class=tiny_tokenizer(),
        callbacks=[Recorder()],
        loss_type="robust",
    )
    assert trainer.state.global_step == 0
    before = {name: value.clone() for name, value in trainer.model.named_parameters()}
    trainer.train()
    assert trainer.state.global_step == 3
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 3 and np.isfinite(losses).all()
    assert len(seen) == 1 and np.isfinite(seen[0]["eval_loss"])
    assert any(not torch.equal(before[name], value) for name, value in trainer.model.named_parameters())
    # the weight metric is the mean weight of the batches seen, not 1
    weights = [entry["weight"] for entry in trainer.state.log_history if "weight" in entry and "loss" in entry]
    assert all(0 < weight < 1 for weight in weights)


def test_precomputed_reference_gives_the_same_losses(tmp_path):
    live = move_policy(make_trainer(tmp_path, "conservative"))
    cached = make_trainer(tmp_path / "cached", "conservative", precompute_ref_log_probs=True)
    cached.model.load_state_dict(live.model.state_dict())
    with torch.no_grad():
        ours = live.per_example_losses(live.model, first_batch(live))["losses"]
        theirs = cached.per_example_losses(cached.model, first_batch(cached))["losses"]
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)


def test_token_ids_are_used_as_given(tmp_path):
    import datasets

    data = datasets.Dataset.from_dict(
        {"prompt_ids": [[3, 4], [5]], "chosen_ids": [[6, 7], [8]], "rejected_ids": [[9], [10, 3]],
         "weight": [1.0, 0.5], "eps": [0.0, 0.1]}
    )
    trainer = make_trainer(tmp_path, "conservative", data=data, per_device_train_batch_size=2)
    batch = first_batch(trainer)
    # no EOS appended: the chosen half is prompt + chosen, right-padded with the pad id 0
    assert batch["input_ids"][:2].tolist() == [[3, 4, 6, 7], [5, 8, 0, 0]]
    assert batch["completion_mask"][:2].tolist() == [[0, 0, 1, 1], [0, 1, 0, 0]]
    assert batch["weight"].tolist() == [1.0, 0.5]


def test_robust_flip_rates_of_one_half_stay_finite(tmp_path):
    trainer = make_trainer(tmp_path, "robust", data=to_dataset(make_frame().assign(eps=0.5)), max_steps=2)
    trainer.train()
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_lora_adapter_trains(tmp_path):
    peft = pytest.importorskip("peft", reason="LoRA needs peft")
    trainer = WeightedDPOTrainer(
        tiny_model(),
        args=config(tmp_path, max_steps=2),
        train_dataset=to_dataset(make_frame()),
        processing_class=tiny_tokenizer(),
        peft_config=peft.LoraConfig(r=4, target_modules=["c_attn"], task_type="CAUSAL_LM"),
        loss_type="conservative",
    )
    assert trainer.ref_model is None  # the reference is the policy with its adapter disabled
    trainer.train()
    assert trainer.state.global_step == 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"loss_type": "hinge"}, "loss_type"),
        ({"args": {"loss_type": ["ipo"]}}, "DPOConfig.loss_type"),
        ({"args": {"ld_alpha": 0.5}}, "ld_alpha"),
        ({"data": lambda frame: frame.drop(columns="weight"), "loss_type": "sigmoid"}, "weight"),
        ({"data": lambda frame: frame.assign(eps=0.7)}, "eps"),
        ({"data": lambda frame: frame.assign(weight=-1.0)}, "weight"),
        ({"data": lambda frame: frame.assign(weight=0.0)}, "weight"),
        ({"data": lambda frame: frame.to_dict("list")}, "train_dataset"),
    ],
)
def test_bad_input_raises_clear_errors(change, message, tmp_path):
    frame = make_frame()
    data = change.get("data", lambda f: f)(frame)
    with pytest.raises((ValueError, TypeError), match=message):
        WeightedDPOTrainer(
            tiny_model(),
            args=config(tmp_path, **change.get("args", {})),
            train_dataset=data,
            processing_class=tiny_tokenizer(),
            loss_type=change.get("loss_type", "robust"),
        )
