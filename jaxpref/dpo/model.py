"""A GPT-2-architecture causal language model in Flax NNX, with a local Hugging Face loader.

The module tree mirrors Hugging Face's ``GPT2LMHeadModel`` (pre-layer-norm blocks, fused
query/key/value projection, learned positions, output head tied to the token embedding), so a
checkpoint directory with ``config.json`` and ``model.safetensors`` loads without conversion
tricks: Hugging Face stores GPT-2's ``Conv1D`` weights as (in, out), the layout of
``nnx.Linear`` kernels. Dropout is left out: DPO fine-tuning runs without it (TRL disables
dropout by default too). Nothing is downloaded; the loader reads a local directory only.

Example:
    >>> from flax import nnx
    >>> import jax.numpy as jnp
    >>> config = GPT2Config(vocab_size=11, max_positions=8, hidden_size=16, num_layers=1, num_heads=2)
    >>> model = GPT2LMHeadModel(config, rngs=nnx.Rngs(0))
    >>> model(jnp.zeros((2, 5), jnp.int32)).shape
    (2, 5, 11)
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Array, Float, Int

__all__ = ["GPT2Config", "GPT2LMHeadModel", "load_hf_gpt2", "sample", "save_hf_gpt2"]

_ACTIVATIONS = {
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "relu": jax.nn.relu,
}

# Our spelled-out field names and the names Hugging Face's GPT2Config uses for them.
_HF_NAMES = {
    "vocab_size": "vocab_size",
    "max_positions": "n_positions",
    "hidden_size": "n_embd",
    "num_layers": "n_layer",
    "num_heads": "n_head",
    "mlp_size": "n_inner",
    "layer_norm_epsilon": "layer_norm_epsilon",
    "activation": "activation_function",
    "scale_attention_weights": "scale_attn_weights",
    "scale_attention_by_inverse_layer_index": "scale_attn_by_inverse_layer_idx",
}


@dataclasses.dataclass(frozen=True)
class GPT2Config:
    """Architecture of a GPT-2 model (defaults: the 124M-parameter GPT-2 small).

    Attributes:
        vocab_size: number of token ids.
        max_positions: longest sequence the learned position table covers.
        hidden_size: width of the residual stream (``n_embd``).
        num_layers: transformer blocks (``n_layer``).
        num_heads: attention heads; must divide ``hidden_size``.
        mlp_size: width of the MLP; None means 4 * hidden_size (``n_inner``).
        layer_norm_epsilon: epsilon of every layer norm.
        activation: MLP non-linearity, one of ``gelu_new`` (GPT-2's), ``gelu_pytorch_tanh``,
            ``gelu``, ``relu``.
        scale_attention_weights: divide attention logits by sqrt(head size) (GPT-2's default;
            ``scale_attn_weights=False`` in a Hugging Face config turns it off).
        scale_attention_by_inverse_layer_index: also divide attention logits by layer index + 1.
    """

    vocab_size: int = 50257
    max_positions: int = 1024
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    mlp_size: int | None = None
    layer_norm_epsilon: float = 1e-5
    activation: str = "gelu_new"
    scale_attention_weights: bool = True
    scale_attention_by_inverse_layer_index: bool = False

    def __post_init__(self):
        for name in ("vocab_size", "max_positions", "hidden_size", "num_layers", "num_heads"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value > 0):
                raise ValueError(f"GPT2Config.{name} must be a positive int; got {value!r}.")
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"GPT2Config.num_heads ({self.num_heads}) must divide hidden_size ({self.hidden_size})."
            )
        if self.activation not in _ACTIVATIONS:
            raise ValueError(
                f"GPT2Config.activation must be one of {sorted(_ACTIVATIONS)}; got {self.activation!r}."
            )

    @property
    def inner_size(self) -> int:
        return self.mlp_size or 4 * self.hidden_size

    @classmethod
    def from_hf_dict(cls, hf_config: dict[str, Any]) -> GPT2Config:
        """From the contents of a Hugging Face GPT-2 ``config.json``."""
        model_type = hf_config.get("model_type", "gpt2")
        if model_type != "gpt2":
            raise ValueError(f"config.json describes a {model_type!r} model; only 'gpt2' loads.")
        if hf_config.get("tie_word_embeddings", True) is False:
            raise ValueError("Only GPT-2 checkpoints with tied input/output embeddings are supported.")
        values = {ours: hf_config[theirs] for ours, theirs in _HF_NAMES.items() if theirs in hf_config}
        return cls(**values)

    def to_hf_dict(self) -> dict[str, Any]:
        """A ``config.json`` body that ``transformers.GPT2Config`` reads back."""
        hf_config = {theirs: getattr(self, ours) for ours, theirs in _HF_NAMES.items()}
        hf_config.update(
            model_type="gpt2",
            architectures=["GPT2LMHeadModel"],
            tie_word_embeddings=True,
            n_ctx=self.max_positions,
            attn_pdrop=0.0,
            embd_pdrop=0.0,
            resid_pdrop=0.0,
        )
        return hf_config


class CausalSelfAttention(nnx.Module):
    """Multi-head causal self-attention with GPT-2's fused query/key/value projection."""

    def __init__(self, config: GPT2Config, layer_index: int, *, rngs: nnx.Rngs):
        width = config.hidden_size
        self.num_heads = config.num_heads
        self.scale = (width // config.num_heads) ** -0.5 if config.scale_attention_weights else 1.0
        if config.scale_attention_by_inverse_layer_index:
            self.scale /= layer_index + 1
        self.query_key_value = nnx.Linear(width, 3 * width, rngs=rngs)
        self.output = nnx.Linear(width, width, rngs=rngs)

    def __call__(
        self, hidden: Float[Array, "batch length width"], mask: Array
    ) -> Float[Array, "batch length width"]:
        batch, length, width = hidden.shape
        heads = self.query_key_value(hidden).reshape(batch, length, 3, self.num_heads, -1)
        query, key, value = heads[:, :, 0], heads[:, :, 1], heads[:, :, 2]
        attended = jax.nn.dot_product_attention(query, key, value, mask=mask, scale=self.scale)
        return self.output(attended.reshape(batch, length, width))


class Block(nnx.Module):
    """Pre-layer-norm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, config: GPT2Config, layer_index: int, *, rngs: nnx.Rngs):
        width = config.hidden_size
        self.attention_norm = nnx.LayerNorm(width, epsilon=config.layer_norm_epsilon, rngs=rngs)
        self.attention = CausalSelfAttention(config, layer_index, rngs=rngs)
        self.mlp_norm = nnx.LayerNorm(width, epsilon=config.layer_norm_epsilon, rngs=rngs)
        self.mlp_in = nnx.Linear(width, config.inner_size, rngs=rngs)
        self.mlp_out = nnx.Linear(config.inner_size, width, rngs=rngs)
        self.activation = _ACTIVATIONS[config.activation]

    def __call__(self, hidden, mask):
        hidden = hidden + self.attention(self.attention_norm(hidden), mask)
        return hidden + self.mlp_out(self.activation(self.mlp_in(self.mlp_norm(hidden))))


class GPT2LMHeadModel(nnx.Module):
    """GPT-2 language model; ``model(tokens)`` returns next-token logits at every position."""

    def __init__(self, config: GPT2Config, *, rngs: nnx.Rngs):
        self.config = config
        normal = nnx.initializers.normal(0.02)
        self.token_embedding = nnx.Embed(
            config.vocab_size, config.hidden_size, embedding_init=normal, rngs=rngs
        )
        self.position_embedding = nnx.Embed(
            config.max_positions, config.hidden_size, embedding_init=normal, rngs=rngs
        )
        self.blocks = nnx.List([Block(config, index, rngs=rngs) for index in range(config.num_layers)])
        self.final_norm = nnx.LayerNorm(config.hidden_size, epsilon=config.layer_norm_epsilon, rngs=rngs)

    def __call__(
        self,
        tokens: Int[Array, "batch length"],
        attention_mask: Int[Array, "batch length"] | None = None,
    ) -> Float[Array, "batch length vocab"]:
        """Logits for every position.

        Args:
            tokens: token ids.
            attention_mask: 1 for real tokens, 0 for padding. Needed only with left padding:
                positions then count real tokens (as Hugging Face's ``generate`` does) and no
                token attends to padding. With right padding (what the trainer uses) the causal
                mask already keeps real tokens away from the padding after them.
        """
        length = tokens.shape[1]
        causal = jnp.tril(jnp.ones((length, length), dtype=bool))
        if attention_mask is None:
            positions = jnp.arange(length)[None, :]
            mask = causal[None, None]
        else:
            positions = jnp.maximum(jnp.cumsum(attention_mask, axis=1) - 1, 0)
            # A query always sees itself, so rows of pure padding stay finite.
            keys = attention_mask.astype(bool)[:, None, None, :] | jnp.eye(length, dtype=bool)
            mask = causal[None, None] & keys
        hidden = self.token_embedding(tokens) + self.position_embedding(positions)
        for block in self.blocks:
            hidden = block(hidden, mask)
        return self.token_embedding.attend(self.final_norm(hidden))


def _hf_parameter_table(model: GPT2LMHeadModel) -> dict[str, nnx.Variable]:
    """Hugging Face state-dict key -> our parameter, the one map both loading and saving use."""
    table = {
        "wte.weight": model.token_embedding.embedding,
        "wpe.weight": model.position_embedding.embedding,
        "ln_f.weight": model.final_norm.scale,
        "ln_f.bias": model.final_norm.bias,
    }
    for index, block in enumerate(model.blocks):
        prefix = f"h.{index}."
        modules = {
            "ln_1": block.attention_norm,
            "attn.c_attn": block.attention.query_key_value,
            "attn.c_proj": block.attention.output,
            "ln_2": block.mlp_norm,
            "mlp.c_fc": block.mlp_in,
            "mlp.c_proj": block.mlp_out,
        }
        for name, module in modules.items():
            if isinstance(module, nnx.LayerNorm):
                table[prefix + name + ".weight"] = module.scale
            else:
                table[prefix + name + ".weight"] = module.kernel
            table[prefix + name + ".bias"] = module.bias
    return table


def load_hf_gpt2(directory: str | os.PathLike, *, dtype=jnp.float32) -> GPT2LMHeadModel:
    """Load a Hugging Face GPT-2 checkpoint from a local directory.

    Args:
        directory: folder with ``config.json`` and ``model.safetensors`` (as written by
            ``GPT2LMHeadModel.save_pretrained``). Nothing is downloaded.
        dtype: parameter dtype.

    Returns:
        The model with the checkpoint's weights.

    Raises:
        FileNotFoundError: when either file is missing.
        ValueError: when the config is not GPT-2, or tensors are missing or mis-shaped.
    """
    from safetensors.numpy import load_file

    directory = os.fspath(directory)
    config_path = os.path.join(directory, "config.json")
    weights_path = os.path.join(directory, "model.safetensors")
    for path in (config_path, weights_path):
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"{path} not found; `directory` must hold config.json and model.safetensors "
                "(save the model with save_pretrained(..., safe_serialization=True))."
            )
    with open(config_path) as handle:
        config = GPT2Config.from_hf_dict(json.load(handle))
    tensors = load_file(weights_path)
    # GPT2LMHeadModel prefixes its keys with "transformer."; a bare GPT2Model does not.
    tensors = {key.removeprefix("transformer."): value for key, value in tensors.items()}
    model = nnx.eval_shape(lambda: GPT2LMHeadModel(config, rngs=nnx.Rngs(0)))
    table = _hf_parameter_table(model)
    missing = sorted(set(table) - set(tensors))
    if missing:
        raise ValueError(f"{weights_path} lacks GPT-2 tensors {missing[:5]}.")
    for key, variable in table.items():
        tensor = tensors[key]
        expected_shape = variable.get_value().shape
        if tensor.shape != expected_shape:
            raise ValueError(f"Tensor {key} has shape {tensor.shape}; config.json implies {expected_shape}.")
        variable.set_value(jnp.asarray(tensor, dtype=dtype))
    return model


def save_hf_gpt2(model: GPT2LMHeadModel, directory: str | os.PathLike) -> str:
    """Write ``config.json`` and ``model.safetensors`` that ``transformers`` can load."""
    from safetensors.numpy import save_file

    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    tensors = {
        "transformer." + key: np.asarray(variable.get_value(), dtype=np.float32)
        for key, variable in _hf_parameter_table(model).items()
    }
    save_file(tensors, os.path.join(directory, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(directory, "config.json"), "w") as handle:
        json.dump(model.config.to_hf_dict(), handle, indent=2)
    return directory


def sample(
    key: jax.Array,
    model: GPT2LMHeadModel,
    prompts: Int[Array, "batch prompt_length"],
    num_new_tokens: int,
    *,
    temperature: float = 1.0,
    vocab_limit: int | None = None,
) -> Int[Array, "batch num_new_tokens"]:
    """Sample continuations of equal-length prompts by ancestral sampling.

    Each step re-runs the model on a fixed-size buffer (no key/value cache), which keeps one
    compiled program for all steps; that is the right trade for the short sequences of tests
    and toy experiments.

    Args:
        key: PRNG key.
        model: the language model.
        prompts: prompt token ids, all of the same length (no padding).
        num_new_tokens: tokens to generate per prompt.
        temperature: softmax temperature (> 0).
        vocab_limit: sample only among token ids below this (e.g. to exclude special tokens).

    Returns:
        The generated token ids.
    """
    if not temperature > 0:
        raise ValueError(f"`temperature` must be positive; got {temperature!r}.")
    prompts = jnp.asarray(prompts, dtype=jnp.int32)
    if prompts.ndim != 2:
        raise ValueError(f"`prompts` must be 2-D (batch, prompt_length); got shape {prompts.shape}.")
    graphdef, state = nnx.split(model)
    return _sample(key, graphdef, state, prompts, num_new_tokens, temperature, vocab_limit)


@functools.partial(jax.jit, static_argnums=(1, 4, 5, 6))
def _sample(key, graphdef, state, prompts, num_new_tokens, temperature, vocab_limit):
    model = nnx.merge(graphdef, state)
    batch, prompt_length = prompts.shape
    buffer = jnp.concatenate([prompts, jnp.zeros((batch, num_new_tokens), jnp.int32)], axis=1)
    keys = jax.random.split(key, num_new_tokens)

    def step(index, buffer):
        position = prompt_length + index
        logits = model(buffer)[:, position - 1] / temperature
        if vocab_limit is not None:
            logits = jnp.where(jnp.arange(logits.shape[-1]) < vocab_limit, logits, -jnp.inf)
        token = jax.random.categorical(keys[index], logits).astype(jnp.int32)
        return buffer.at[:, position].set(token)

    buffer = jax.lax.fori_loop(0, num_new_tokens, step, buffer)
    return buffer[:, prompt_length:]
