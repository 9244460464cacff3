"""Flax NNX GPT-2: logit parity with transformers' own GPT-2 on a tiny random checkpoint."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxpref.dpo.model import GPT2Config, GPT2LMHeadModel, load_hf_gpt2, sample, save_hf_gpt2

forward = nnx.jit(lambda model, tokens, attention_mask=None: model(tokens, attention_mask))
TINY = GPT2Config(vocab_size=37, max_positions=16, hidden_size=24, num_layers=2, num_heads=3)


@pytest.fixture(scope="module")
def torch_checkpoint(tmp_path_factory):
    """A tiny random transformers GPT-2 saved locally, and the torch model itself."""
    torch = pytest.importorskip("torch", reason="parity needs torch (pip install jaxpref[hf])")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    hf_config = transformers.GPT2Config(
        vocab_size=37,
        n_positions=16,
        n_embd=24,
        n_layer=2,
        n_head=3,
        attn_pdrop=0.0,
        embd_pdrop=0.0,
        resid_pdrop=0.0,
    )
    torch_model = transformers.GPT2LMHeadModel(hf_config).eval()
    # Random init leaves layer-norm scales at 1 and biases at 0: perturb them so the test
    # would notice a swapped or dropped parameter.
    with torch.no_grad():
        for name, parameter in torch_model.named_parameters():
            if "ln" in name or name.endswith("bias"):
                parameter.add_(0.1 * torch.randn_like(parameter))
    directory = tmp_path_factory.mktemp("gpt2")
    torch_model.save_pretrained(directory, safe_serialization=True)
    return directory, torch_model, torch


def torch_logits(torch_model, torch, tokens, attention_mask=None):
    with torch.no_grad():
        inputs = torch.tensor(np.asarray(tokens))
        mask = None if attention_mask is None else torch.tensor(np.asarray(attention_mask))
        if mask is None:
            return torch_model(inputs).logits.numpy()
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        return torch_model(inputs, attention_mask=mask, position_ids=positions).logits.numpy()


def test_logit_parity_with_transformers(torch_checkpoint):
    directory, torch_model, torch = torch_checkpoint
    model = load_hf_gpt2(directory)
    assert model.config == TINY
    tokens = np.random.default_rng(0).integers(0, 37, size=(3, 11))
    np.testing.assert_allclose(
        forward(model, jnp.asarray(tokens)), torch_logits(torch_model, torch, tokens), atol=1e-4, rtol=1e-4
    )


@pytest.mark.parametrize(
    "scaling",
    [
        {"scale_attn_weights": False},
        {"scale_attn_by_inverse_layer_idx": True},
        {"scale_attn_weights": False, "scale_attn_by_inverse_layer_idx": True},
    ],
)
def test_attention_scaling_options_match_transformers(scaling, tmp_path):
    torch = pytest.importorskip("torch", reason="parity needs torch (pip install jaxpref[hf])")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(1)
    hf_config = transformers.GPT2Config(
        vocab_size=37, n_positions=16, n_embd=24, n_layer=2, n_head=3, **scaling
    )
    torch_model = transformers.GPT2LMHeadModel(hf_config).eval()
    with torch.no_grad():
        # Large query/key weights make the attention logits, and so the scaling, matter.
        for name, parameter in torch_model.named_parameters():
            if name.endswith("attn.c_attn.weight"):
                parameter.mul_(20.0)
    torch_model.save_pretrained(tmp_path, safe_serialization=True)
    model = load_hf_gpt2(tmp_path)
    tokens = np.random.default_rng(3).integers(0, 37, size=(2, 12))
    theirs = torch_logits(torch_model, torch, tokens)
    np.testing.assert_allclose(forward(model, jnp.asarray(tokens)), theirs, atol=1e-4, rtol=1e-4)
    # The check has teeth: the same weights under GPT-2's default scaling give other logits.
    default = tmp_path / "default"
    save_hf_gpt2(model, default)
    config = json.loads((default / "config.json").read_text())
    config.update({"scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False})
    (default / "config.json").write_text(json.dumps(config))
    unscaled = np.asarray(forward(load_hf_gpt2(default), jnp.asarray(tokens)))
    assert np.abs(unscaled - theirs).max() > 1e-2


def test_left_padding_parity_with_transformers(torch_checkpoint):
    directory, torch_model, torch = torch_checkpoint
    model = load_hf_gpt2(directory)
    tokens = np.random.default_rng(1).integers(0, 37, size=(2, 9))
    attention_mask = np.ones_like(tokens)
    attention_mask[0, :3] = 0
    ours = np.asarray(forward(model, jnp.asarray(tokens), jnp.asarray(attention_mask)))
    theirs = torch_logits(torch_model, torch, tokens, attention_mask)
    real = attention_mask.astype(bool)
    np.testing.assert_allclose(ours[real], theirs[real], atol=1e-4, rtol=1e-4)


def test_save_round_trip_through_transformers(torch_checkpoint, tmp_path):
    torch = torch_checkpoint[2]
    import transformers

    model = GPT2LMHeadModel(TINY, rngs=nnx.Rngs(3))
    save_hf_gpt2(model, tmp_path)
    reloaded_torch = transformers.GPT2LMHeadModel.from_pretrained(tmp_path).eval()
    tokens = np.random.default_rng(2).integers(0, 37, size=(2, 7))
    np.testing.assert_allclose(
        forward(model, jnp.asarray(tokens)), torch_logits(reloaded_torch, torch, tokens), atol=1e-4, rtol=1e-4
    )


def test_save_and_load_round_trip_without_torch(tmp_path):
    model = GPT2LMHeadModel(TINY, rngs=nnx.Rngs(4))
    reloaded = load_hf_gpt2(save_hf_gpt2(model, tmp_path))
    tokens = jnp.arange(10)[None] % 37
    np.testing.assert_array_equal(forward(model, tokens), forward(reloaded, tokens))


def test_causality():
    model = GPT2LMHeadModel(TINY, rngs=nnx.Rngs(0))
    tokens = jnp.asarray(np.random.default_rng(0).integers(0, 37, size=(1, 8)))
    changed = tokens.at[0, 5].set((tokens[0, 5] + 1) % 37)
    before, after = forward(model, tokens), forward(model, changed)
    np.testing.assert_array_equal(before[:, :5], after[:, :5])
    assert not np.allclose(before[:, 5:], after[:, 5:])


def test_sample_shapes_vocab_limit_and_determinism():
    model = GPT2LMHeadModel(TINY, rngs=nnx.Rngs(0))
    prompts = jnp.zeros((4, 2), jnp.int32)
    first = sample(jax.random.key(0), model, prompts, 5, vocab_limit=3)
    assert first.shape == (4, 5) and int(first.max()) < 3
    np.testing.assert_array_equal(first, sample(jax.random.key(0), model, prompts, 5, vocab_limit=3))


def test_greedy_limit_of_sampling_follows_argmax():
    model = GPT2LMHeadModel(TINY, rngs=nnx.Rngs(1))
    prompts = jnp.asarray([[3, 4], [5, 6]], jnp.int32)
    generated = sample(jax.random.key(1), model, prompts, 3, temperature=1e-4)
    # causal model: the logits of the whole sequence give each step's next-token distribution
    tokens = jnp.concatenate([prompts, generated], axis=1)
    greedy = jnp.argmax(forward(model, tokens)[:, 1:-1], axis=-1)
    np.testing.assert_array_equal(generated, greedy)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model_type": "llama"}, "llama"),
        ({"n_head": 5}, "num_heads"),
        ({"activation_function": "swish"}, "activation"),
        ({"tie_word_embeddings": False}, "tied"),
    ],
)
def test_bad_config_raises(tmp_path, changes, message):
    save_hf_gpt2(GPT2LMHeadModel(TINY, rngs=nnx.Rngs(0)), tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config.update(changes)
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=message):
        load_hf_gpt2(tmp_path)


def test_missing_files_raise(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_hf_gpt2(tmp_path)
