"""tunix route: jaxpref's weighted losses in tunix's DPO trainer, on a tiny random Qwen3 with LoRA.

The test writes the tiny model's weights as Hugging Face safetensors (HF key names and layouts),
loads them with tunix's Qwen3 loader, trains LoRA adapters with ``WeightedTunixDPOTrainer``,
saves the merged model as safetensors and loads it back. Skipped without ``jaxpref[tunix]``.
"""

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("tunix", reason="the tunix route needs the tunix extra (pip install jaxpref[tunix])")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402
import qwix  # noqa: E402
import safetensors.numpy as safetensors_numpy  # noqa: E402
from flax import nnx  # noqa: E402
from tunix.models.qwen3 import model as qwen3_model  # noqa: E402
from tunix.models.qwen3 import params as qwen3_params  # noqa: E402
from tunix.sft.dpo import dpo_trainer as tunix_dpo  # noqa: E402

from jaxpref.dpo.export import preference_frame  # noqa: E402
from jaxpref.dpo.losses import dpo_loss  # noqa: E402
from jaxpref.dpo.tunix_trainer import (  # noqa: E402
    WeightedTunixDPOTrainer,
    preference_batches,
    weighted_dpo_loss_fn,
)

WIDTH, HEADS, HEAD_SIZE, KV_HEADS, MLP, VOCAB, LAYERS = 32, 4, 8, 2, 64, 32, 2
CONFIG = qwen3_model.ModelConfig(
    num_layers=LAYERS, vocab_size=VOCAB, embed_dim=WIDTH, hidden_dim=MLP, num_heads=HEADS,
    head_dim=HEAD_SIZE, num_kv_heads=KV_HEADS, rope_theta=10_000, norm_eps=1e-6, use_tied_embedding=False,
)
LORA_RANK, LORA_ALPHA = 4, 8.0
BATCH = 8


def hf_qwen3_tensors(seed=0) -> dict[str, np.ndarray]:
    """Random Qwen3 weights under Hugging Face's names and (out, in) layouts."""
    rng = np.random.default_rng(seed)

    def normal(*shape, scale=0.3):
        return rng.normal(0.0, scale, shape).astype(np.float32)

    def norm(size):
        return (1.0 + 0.1 * rng.normal(size=size)).astype(np.float32)

    tensors = {
        "model.embed_tokens.weight": normal(VOCAB, WIDTH, scale=0.5),
        "model.norm.weight": norm(WIDTH),
        "lm_head.weight": normal(VOCAB, WIDTH, scale=0.5),
    }
    for layer in range(LAYERS):
        prefix = f"model.layers.{layer}."
        tensors |= {
            prefix + "self_attn.q_proj.weight": normal(HEADS * HEAD_SIZE, WIDTH),
            prefix + "self_attn.k_proj.weight": normal(KV_HEADS * HEAD_SIZE, WIDTH),
            prefix + "self_attn.v_proj.weight": normal(KV_HEADS * HEAD_SIZE, WIDTH),
            prefix + "self_attn.o_proj.weight": normal(WIDTH, HEADS * HEAD_SIZE),
            prefix + "self_attn.q_norm.weight": norm(HEAD_SIZE),
            prefix + "self_attn.k_norm.weight": norm(HEAD_SIZE),
            prefix + "mlp.gate_proj.weight": normal(MLP, WIDTH),
            prefix + "mlp.up_proj.weight": normal(MLP, WIDTH),
            prefix + "mlp.down_proj.weight": normal(WIDTH, MLP),
            prefix + "input_layernorm.weight": norm(WIDTH),
            prefix + "post_attention_layernorm.weight": norm(WIDTH),
        }
    return tensors


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    directory = tmp_path_factory.mktemp("qwen3")
    tensors = hf_qwen3_tensors()
    safetensors_numpy.save_file(tensors, str(directory / "model.safetensors"))
    return directory, tensors


def load(directory):
    return qwen3_params.create_model_from_safe_tensors(str(directory), CONFIG)


def lora_policy(base):
    provider = qwix.LoraProvider(module_path=".*q_proj|.*v_proj|.*gate_proj|.*up_proj", rank=LORA_RANK, alpha=LORA_ALPHA)
    return qwix.apply_lora_to_model(base, provider, **base.get_model_input())


def token_batch(seed, weight=None, eps=None):
    """Pairs whose chosen response repeats the prompt's first token (a learnable preference)."""
    rng = np.random.default_rng(seed)
    prompts = rng.integers(3, VOCAB, size=(BATCH, 4)).astype(np.int32)
    chosen = np.repeat(prompts[:, :1], 3, axis=1)
    rejected = ((chosen - 3 + 1) % (VOCAB - 3) + 3).astype(np.int32)
    ones = np.ones_like(chosen)
    return {
        "prompt_ids": prompts, "prompt_mask": np.ones_like(prompts), "chosen_ids": chosen,
        "chosen_mask": ones, "rejected_ids": rejected, "rejected_mask": ones,
        "weight": np.ones(BATCH, np.float32) if weight is None else np.asarray(weight, np.float32),
        "eps": np.zeros(BATCH, np.float32) if eps is None else np.asarray(eps, np.float32),
    }


def make_trainer(checkpoint, loss_type="sigmoid", steps=1, beta=0.5, learning_rate=1e-2):
    directory, _ = checkpoint
    config = tunix_dpo.DPOTrainingConfig(max_steps=steps, eval_every_n_steps=10_000, beta=beta)
    return WeightedTunixDPOTrainer(
        lora_policy(load(directory)), load(directory), optax.adam(learning_rate), config, loss_type=loss_type
    )


def logits(model, tokens):
    tokens = jnp.asarray(tokens)
    mask = jnp.ones_like(tokens)
    from tunix.rl import common

    output, _ = model(
        tokens, positions=common.build_positions_from_mask(mask), cache=None,
        attention_mask=common.make_causal_attn_mask(mask),
    )
    return np.asarray(output)


def test_safetensors_load_keeps_the_hf_weights(checkpoint):
    directory, tensors = checkpoint
    model = load(directory)
    np.testing.assert_array_equal(model.embedder.input_embedding[...], tensors["model.embed_tokens.weight"])
    # HF stores q_proj as (heads * head_size, width); tunix as (width, heads, head_size).
    expected = tensors["model.layers.1.self_attn.q_proj.weight"].T.reshape(WIDTH, HEADS, HEAD_SIZE)
    np.testing.assert_array_equal(model.layers[1].attn.q_proj.w[...], expected)


@pytest.mark.parametrize("loss_type", ["sigmoid", "conservative", "robust", "ipo"])
def test_loss_is_jaxpref_weighted_loss_and_tunix_loss_at_unit_weights(checkpoint, loss_type):
    trainer = make_trainer(checkpoint, loss_type)
    rng = np.random.default_rng(1)
    weight, eps = rng.uniform(0, 2, BATCH), rng.uniform(0, 0.5, BATCH)
    prepared = trainer._prepare_inputs(token_batch(0, weight, eps))
    example = prepared.example
    # Move the LoRA policy off the reference so that the DPO logits are not 0.
    state = nnx.state(trainer.model, nnx.LoRAParam)
    nnx.update(trainer.model, jax.tree.map(lambda v: v + 0.2, state))
    loss, aux = weighted_dpo_loss_fn(trainer.model, example, prepared.weights, prepared.eps, beta=0.5, loss_type=loss_type)
    chosen, rejected = tunix_dpo.compute_logps(
        trainer.model, example.input_ids, example.positions, example.attention_mask, example.logits_to_keep,
        example.completion_mask,
    )
    uses_eps = loss_type in ("conservative", "robust")
    expected, _ = dpo_loss(
        chosen, rejected, example.ref_chosen_logps, example.ref_rejected_logps, beta=0.5,
        loss_type=loss_type, eps=prepared.eps if uses_eps else None, weights=prepared.weights,
    )
    h = (chosen - rejected) - (example.ref_chosen_logps - example.ref_rejected_logps)
    assert np.abs(np.asarray(h)).max() > 1e-3  # the comparison is on non-trivial logits
    assert float(loss) == pytest.approx(float(expected), rel=1e-6)
    assert set(aux) >= {"rewards/chosen", "rewards/accuracy", "log_probs/chosen"}
    if loss_type in ("sigmoid", "conservative"):
        # tunix's own loss (one global label smoothing) at unit weights and one flip rate.
        smoothing = 0.2 if loss_type == "conservative" else 0.0
        ones = jnp.ones(BATCH)
        ours, _ = weighted_dpo_loss_fn(
            trainer.model, example, ones, jnp.full(BATCH, smoothing), beta=0.5, loss_type=loss_type
        )
        theirs, _ = tunix_dpo.dpo_loss_fn(trainer.model, example, beta=0.5, label_smoothing=smoothing)
        assert float(ours) == pytest.approx(float(theirs), rel=1e-5)


def test_zero_weight_pair_contributes_no_gradient(checkpoint):
    trainer = make_trainer(checkpoint, "robust")
    nnx.update(trainer.model, jax.tree.map(lambda v: v + 0.2, nnx.state(trainer.model, nnx.LoRAParam)))
    weight, eps = np.r_[0.0, np.ones(BATCH - 1)], np.full(BATCH, 0.3)
    batch = token_batch(0, weight, eps)
    swapped = dict(batch, chosen_ids=batch["chosen_ids"].copy(), rejected_ids=batch["rejected_ids"].copy())
    swapped["chosen_ids"][0], swapped["rejected_ids"][0] = batch["rejected_ids"][0], batch["chosen_ids"][0]

    def lora_gradients(batch):
        prepared = trainer._prepare_inputs(batch)

        def loss_of(model):
            return weighted_dpo_loss_fn(model, prepared.example, prepared.weights, prepared.eps, beta=0.5, loss_type="robust")[0]

        return jax.tree.leaves(nnx.grad(loss_of, argnums=nnx.DiffState(0, nnx.LoRAParam))(trainer.model))

    for ours, theirs in zip(lora_gradients(batch), lora_gradients(swapped)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-7)
    # a positive weight on that pair does move the gradient (the check has teeth)
    weighted = dict(swapped, weight=np.ones(BATCH, np.float32))
    assert any(
        not np.allclose(a, b, rtol=1e-5, atol=1e-7)
        for a, b in zip(lora_gradients(batch), lora_gradients(weighted))
    )


def test_lora_training_lowers_the_loss_and_round_trips_through_safetensors(checkpoint, tmp_path):
    directory, _ = checkpoint
    steps = 30
    trainer = make_trainer(checkpoint, "sigmoid", steps=steps, learning_rate=3e-2)
    base_before = [np.array(v) for v in jax.tree.leaves(nnx.state(trainer.ref_model))]
    rng = np.random.default_rng(2)
    batches = [token_batch(step % 4, weight=rng.uniform(0.2, 1, BATCH)) for step in range(steps)]
    trainer.train(batches)
    losses = np.asarray(trainer.metrics_logger.get_metric_history("", "loss", "train"))
    assert len(losses) == steps and np.isfinite(losses).all()
    assert losses[0] == pytest.approx(np.log(2), abs=1e-5)  # policy == reference at step 0
    assert losses[-5:].mean() < 0.5 * losses[0]
    for before, after in zip(base_before, jax.tree.leaves(nnx.state(trainer.ref_model))):
        np.testing.assert_array_equal(before, after)  # the reference stays frozen
    merged_directory = tmp_path / "merged"
    qwen3_params.save_lora_merged_model_as_safetensors(
        str(directory), str(merged_directory), trainer.model, rank=LORA_RANK, alpha=LORA_ALPHA
    )
    tokens = np.random.default_rng(3).integers(3, VOCAB, size=(2, 7))
    np.testing.assert_allclose(logits(load(merged_directory), tokens), logits(trainer.model, tokens), atol=2e-4)
    assert not np.allclose(logits(load(directory), tokens), logits(trainer.model, tokens), atol=1e-2)


def test_preference_batches_from_a_jaxpref_frame():
    labels = pd.DataFrame(
        {"user": ["007", "7", "007"], "label": [1, 0, 1], "prompt": ["p1", "p2", "p3"],
         "response_a": ["a1", "a2", "a3"], "response_b": ["b1", "b2", "b3"]}
    )
    frame = preference_frame(labels, weight=np.array([0.5, 1.0, 0.0]), eps=np.array([0.1, 0.2, 0.5]))
    (batch,) = list(preference_batches(frame, batch_size=2))  # the partial last batch is dropped
    assert batch["chosen_responses"] == ["a1", "b2"] and batch["rejected_responses"] == ["b1", "a2"]
    np.testing.assert_array_equal(batch["weight"], [0.5, 1.0])
    assert len(list(preference_batches(frame, batch_size=1, seed=0, epochs=2))) == 6
    with pytest.raises(ValueError, match="batch_size"):
        list(preference_batches(frame, batch_size=4))
    with pytest.raises(ValueError, match="weight"):
        list(preference_batches(frame.drop(columns="weight"), batch_size=1))


def test_bad_settings_raise(checkpoint):
    directory, _ = checkpoint
    config = tunix_dpo.DPOTrainingConfig(max_steps=1, eval_every_n_steps=10)
    with pytest.raises(ValueError, match="loss_type"):
        WeightedTunixDPOTrainer(load(directory), load(directory), optax.adam(1e-3), config, loss_type="hinge")
    with pytest.raises(ValueError, match="ref_model"):
        WeightedTunixDPOTrainer(load(directory), None, optax.adam(1e-3), config)
    smoothed = tunix_dpo.DPOTrainingConfig(max_steps=1, eval_every_n_steps=10, label_smoothing=0.1)
    with pytest.raises(ValueError, match="label_smoothing"):
        WeightedTunixDPOTrainer(load(directory), load(directory), optax.adam(1e-3), smoothed)
    trainer = WeightedTunixDPOTrainer(load(directory), load(directory), optax.adam(1e-3), config)
    with pytest.raises(ValueError, match="weight"):
        trainer._prepare_inputs({k: v for k, v in token_batch(0).items() if k != "weight"})
