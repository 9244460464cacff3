"""DPO trainer: learning, prompt masking, warm-up, frozen reference, checkpoints, data parallel."""

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxpref.dpo.model import GPT2Config, GPT2LMHeadModel
from jaxpref.dpo.train import DPOTrainer, TrainConfig, encode_pairs

MODEL_CONFIG = GPT2Config(vocab_size=8, max_positions=16, hidden_size=16, num_layers=1, num_heads=2)
CONFIG = TrainConfig(batch_size=8, num_steps=4, learning_rate=3e-2, progress=False)


def make_policy(seed=0):
    return GPT2LMHeadModel(MODEL_CONFIG, rngs=nnx.Rngs(seed))


def make_pairs(num_pairs=16, seed=0):
    """Prompts of one or two tokens; the chosen response repeats the prompt's first token."""
    rng = np.random.default_rng(seed)
    prompts = [list(rng.integers(1, 8, size=rng.integers(1, 3))) for _ in range(num_pairs)]
    chosen = [[p[0], p[0]] for p in prompts]
    rejected = [[(p[0] % 7) + 1, (p[0] % 7) + 1] for p in prompts]
    return encode_pairs(prompts, chosen, rejected)


def params_of(model):
    return jax.tree.leaves(nnx.state(model))


def assert_same_params(first, second, **tolerance):
    for a, b in zip(params_of(first), params_of(second)):
        np.testing.assert_allclose(a, b, **tolerance)


def numpy_sequence_log_prob(logits, sequence, prompt_length):
    """log p(response | prompt) by explicit next-token log-softmax over one sequence's logits."""
    logits = np.asarray(logits, dtype=np.float64)
    total = 0.0
    for position in range(prompt_length, len(sequence)):
        row = logits[position - 1]
        total += row[sequence[position]] - np.log(np.exp(row).sum())
    return total


def test_encode_pairs_masks_prompt_and_padding():
    pairs = encode_pairs([[5, 6], [7]], [[1], [2, 3]], [[4, 4, 4], [1]], pad_id=0, pad_to_multiple=4)
    np.testing.assert_array_equal(pairs.chosen_tokens, [[5, 6, 1, 0, 0, 0, 0, 0], [7, 2, 3, 0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(pairs.chosen_mask[:, :4], [[0, 0, 1, 0], [0, 1, 1, 0]])
    np.testing.assert_array_equal(pairs.rejected_tokens[0, :5], [5, 6, 4, 4, 4])
    np.testing.assert_array_equal(pairs.rejected_mask.sum(1), [3, 1])
    np.testing.assert_array_equal(pairs.weights, [1, 1])
    np.testing.assert_array_equal(pairs.eps, [0, 0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"weights": [1.0]}, "weights"),
        ({"weights": [1.0, -1.0]}, "weights"),
        ({"eps": [0.0, 0.7]}, "eps"),
        ({"length": 2}, "length"),
    ],
)
def test_encode_pairs_rejects_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        encode_pairs([[1], [2]], [[3, 3], [4]], [[5], [6]], **kwargs)
    with pytest.raises(ValueError, match="at least one token"):
        encode_pairs([[]], [[1]], [[2]])


def test_reference_log_probs_mask_prompt_and_ignore_padding():
    model = make_policy(1)
    prompts, chosen, rejected = [[1, 2], [3]], [[4, 5], [6, 7, 1]], [[2], [5, 5]]
    trainer = DPOTrainer(model, config=CONFIG)
    short = trainer.reference_log_probs(encode_pairs(prompts, chosen, rejected))
    long = trainer.reference_log_probs(encode_pairs(prompts, chosen, rejected, length=16))
    # Reference values from the logits of each unpadded sequence (causal: a prefix's logits
    # do not depend on what follows, which test_dpo_model checks).
    sequences = [p + c for p, c in zip(prompts, chosen)] + [p + r for p, r in zip(prompts, rejected)]
    padded = np.zeros((4, 16), np.int32)
    for row, sequence in enumerate(sequences):
        padded[row, : len(sequence)] = sequence
    logits = nnx.jit(lambda model, tokens: model(tokens))(model, jnp.asarray(padded))
    for row in range(2):
        expected_chosen = numpy_sequence_log_prob(logits[row], sequences[row], len(prompts[row]))
        expected_rejected = numpy_sequence_log_prob(logits[row + 2], sequences[row + 2], len(prompts[row]))
        for pairs in (short, long):
            assert pairs.reference_chosen_log_probs[row] == pytest.approx(expected_chosen, abs=1e-4)
            assert pairs.reference_rejected_log_probs[row] == pytest.approx(expected_rejected, abs=1e-4)


def test_training_learns_the_preference_and_keeps_reference_frozen():
    policy, reference = make_policy(0), make_policy(0)
    before = [np.array(leaf) for leaf in params_of(policy)]
    trainer = DPOTrainer(policy, reference, config=dataclasses.replace(CONFIG, num_steps=30))
    result = trainer.fit(jax.random.key(0), make_pairs())
    first, last = result.history[0], result.history[-1]
    assert first["loss"] == pytest.approx(np.log(2), abs=1e-5)  # policy == reference at step 0
    assert last["loss"] < 0.5 * first["loss"]
    assert last["reward_accuracy"] == 1.0 and last["reward_margin"] > 0
    assert [entry["step"] for entry in result.history] == list(range(1, 31))
    # neither the model handed in nor the reference moves; the returned model does
    for original, leaf in zip(before, params_of(policy)):
        np.testing.assert_array_equal(original, leaf)
    assert_same_params(reference, policy)
    assert not all(np.allclose(a, b) for a, b in zip(params_of(result.model), before))


def test_robust_loss_with_per_pair_eps_and_warmup():
    # One warm-up step: the learning rate is 0 at step 0, so only step 2 moves the parameters.
    policy = make_policy(0)
    start = [np.array(leaf) for leaf in params_of(policy)]

    def distance_from_start(step, model):
        del step
        return {"moved": float(sum(np.abs(a - b).sum() for a, b in zip(params_of(model), start)))}

    pairs = make_pairs()._replace(eps=np.linspace(0.0, 0.3, 16).astype(np.float32))
    config = dataclasses.replace(CONFIG, loss_type="robust", warmup_steps=1, num_steps=2, eval_every=1)
    result = DPOTrainer(policy, config=config).fit(jax.random.key(0), pairs, eval_hook=distance_from_start)
    assert [entry["moved"] > 0 for entry in result.evaluations] == [False, True]
    assert np.isfinite([entry["loss"] for entry in result.history]).all()


def test_checkpoint_resume_reproduces_an_uninterrupted_run(tmp_path):
    pytest.importorskip("orbax.checkpoint")
    key, pairs = jax.random.key(3), make_pairs(seed=1)
    straight = DPOTrainer(make_policy(0), config=CONFIG).fit(key, pairs)
    half = dataclasses.replace(CONFIG, num_steps=2, checkpoint_every=1)
    DPOTrainer(make_policy(0), config=half, checkpoint_dir=tmp_path).fit(key, pairs)
    assert sorted(os.listdir(tmp_path)) == ["1", "2"]
    resumed = DPOTrainer(make_policy(0), config=CONFIG, checkpoint_dir=tmp_path).fit(key, pairs)
    assert [entry["step"] for entry in resumed.history] == [3, 4]
    assert_same_params(resumed.model, straight.model, rtol=1e-6, atol=1e-7)


def test_eval_hook_selects_the_best_step():
    key, pairs = jax.random.key(0), make_pairs()

    def eval_hook(step, model):
        del model  # the score depends on the step only, so the best step is known: 2
        return {"score": -abs(step - 2)}

    config = dataclasses.replace(CONFIG, eval_every=1, best_metric="score")
    result = DPOTrainer(make_policy(0), config=config).fit(key, pairs, eval_hook=eval_hook)
    assert [entry["step"] for entry in result.evaluations] == [1, 2, 3, 4]
    assert result.best_step == 2
    two_steps = DPOTrainer(make_policy(0), config=dataclasses.replace(CONFIG, num_steps=2)).fit(key, pairs)
    assert_same_params(result.model, two_steps.model, rtol=1e-6, atol=1e-7)


def test_resumed_early_stopping_returns_the_best_model_of_the_whole_run(tmp_path):
    # The best step (2) lies before the interruption; a resumed run must still return it.
    pytest.importorskip("orbax.checkpoint")
    key, pairs = jax.random.key(0), make_pairs()

    def eval_hook(step, model):
        del model
        return {"score": -abs(step - 2)}

    config = dataclasses.replace(CONFIG, eval_every=1, best_metric="score", checkpoint_every=1)
    straight = DPOTrainer(make_policy(0), config=config).fit(key, pairs, eval_hook=eval_hook)
    DPOTrainer(make_policy(0), config=dataclasses.replace(config, num_steps=2), checkpoint_dir=tmp_path).fit(
        key, pairs, eval_hook=eval_hook
    )
    resumed = DPOTrainer(make_policy(0), config=config, checkpoint_dir=tmp_path).fit(
        key, pairs, eval_hook=eval_hook
    )
    assert [entry["step"] for entry in resumed.evaluations] == [3, 4]
    assert straight.best_step == resumed.best_step == 2
    assert_same_params(resumed.model, straight.model, rtol=1e-6, atol=1e-7)


def test_robust_training_with_flip_rates_of_one_half_stays_finite():
    # jaxpref's flip_rate reaches 1/2 for a label judged a sure coin flip; rDPO divides by 1 - 2 eps.
    pairs = make_pairs()._replace(eps=np.full(16, 0.5, np.float32))
    config = dataclasses.replace(CONFIG, loss_type="robust")
    result = DPOTrainer(make_policy(0), config=config).fit(jax.random.key(0), pairs)
    assert np.isfinite([entry["loss"] for entry in result.history]).all()
    assert all(np.isfinite(leaf).all() for leaf in params_of(result.model))


def test_trainer_rejects_bad_settings():
    with pytest.raises(ValueError, match="batch_size"):
        DPOTrainer(make_policy(0), config=CONFIG).fit(jax.random.key(0), make_pairs(num_pairs=4))
    with pytest.raises(ValueError, match="eval_hook"):
        DPOTrainer(make_policy(0), config=dataclasses.replace(CONFIG, best_metric="x")).fit(
            jax.random.key(0), make_pairs()
        )
    with pytest.raises(ValueError, match="loss_type"):
        TrainConfig(loss_type="hinge")
    with pytest.raises(ValueError, match="num_steps"):
        TrainConfig(num_steps=0)
    other = GPT2LMHeadModel(dataclasses.replace(MODEL_CONFIG, num_layers=2), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="architecture"):
        DPOTrainer(make_policy(0), other)


DATA_PARALLEL_SCRIPT = textwrap.dedent(
    """
    import json, jax
    from tests_dpo_train_helpers import CONFIG, make_pairs, make_policy
    from jaxpref.dpo.train import DPOTrainer
    assert jax.device_count() == 2, jax.devices()
    trainer = DPOTrainer(make_policy(0), config=CONFIG)
    assert trainer.data_sharded.mesh.shape["data"] == 2
    result = trainer.fit(jax.random.key(0), make_pairs())
    print(json.dumps([entry["loss"] for entry in result.history]))
    """
)


def test_data_parallel_over_two_devices_matches_one(tmp_path):
    single_device = DPOTrainer(make_policy(0), config=CONFIG, devices=jax.devices()[:1])
    expected = [entry["loss"] for entry in single_device.fit(jax.random.key(0), make_pairs()).history]
    # A fresh process, because the host device count is fixed when JAX starts.
    helpers = tmp_path / "tests_dpo_train_helpers.py"
    helpers.write_text(Path(__file__).read_text())
    environment = dict(
        os.environ,
        XLA_FLAGS="--xla_force_host_platform_device_count=2",
        PYTHONPATH=os.pathsep.join([str(tmp_path), os.getcwd(), os.environ.get("PYTHONPATH", "")]),
    )
    completed = subprocess.run(
        [sys.executable, "-c", DATA_PARALLEL_SCRIPT],
        check=False,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    np.testing.assert_allclose(
        json.loads(completed.stdout.strip().splitlines()[-1]), expected, rtol=1e-5, atol=1e-6
    )
