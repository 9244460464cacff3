"""tunix's DPO trainer with jaxpref's per-label weights and flip rates (modern models in JAX).

Needs the ``tunix`` extra (``pip install jaxpref[tunix]``: google-tunix, which brings qwix for
LoRA, grain and safetensors loaders for Qwen2/3, Llama 3 and Gemma). tunix's ``DPOTrainer`` takes
one global ``label_smoothing`` and no weights; ``WeightedTunixDPOTrainer`` is that trainer with
its loss replaced (through tunix's own ``with_loss_fn`` hook) by ``jaxpref.dpo.losses.dpo_loss``:
the weighted mean of the ``sigmoid``, ``conservative``, ``robust`` or ``ipo`` loss, with one
weight and one flip rate per pair. Everything else is tunix's: tokenisation, LoRA (a qwix LoRA
model trains only its adapters), gradient accumulation, sharding, checkpoints, evaluation and
metrics logging. The trainer is returned unstarted; call ``train(batches)`` yourself.

Batches are tunix's DPO inputs plus two keys: dicts with ``prompts``, ``chosen_responses``,
``rejected_responses`` (strings; the trainer's tokenizer tokenises them) or with tunix's
tokenised ``TrainingInput`` fields, and ``weight`` and ``eps`` arrays of shape (batch,).
``preference_batches`` makes the string form from a jaxpref preference frame or dataset.

Example (not run: needs google-tunix and a model):
    >>> from jaxpref.dpo.tunix_trainer import WeightedTunixDPOTrainer, preference_batches
    >>> trainer = WeightedTunixDPOTrainer(lora_policy, reference, optax.adamw(1e-5),  # doctest: +SKIP
    ...     DPOTrainingConfig(max_steps=100, max_prompt_length=128, max_response_length=256),
    ...     tokenizer=tokenizer, loss_type="sigmoid")
    >>> trainer.train(preference_batches(frame, batch_size=8, seed=0))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from tunix.sft.dpo import dpo_trainer as tunix_dpo

from jaxpref.dpo.losses import LOSS_TYPES, dpo_loss

__all__ = ["WeightedExample", "WeightedTunixDPOTrainer", "preference_batches", "weighted_dpo_loss_fn"]


@flax.struct.dataclass(frozen=True)
class WeightedExample:
    """tunix's prepared DPO example with each pair's weight and flip rate.

    Attributes:
        example: tunix's ``TrainExample`` (chosen and rejected halves stacked).
        weights: per-pair weight, (batch,).
        eps: per-pair flip rate, (batch,).
    """

    example: tunix_dpo.TrainExample
    weights: jax.Array
    eps: jax.Array


def weighted_dpo_loss_fn(
    model, train_example: tunix_dpo.TrainExample, weights, eps, *, beta: float, loss_type: str
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """jaxpref's weighted DPO loss on tunix's log-probabilities, with tunix's metric names."""
    chosen, rejected = tunix_dpo.compute_logps(
        model,
        train_example.input_ids,
        train_example.positions,
        train_example.attention_mask,
        train_example.logits_to_keep,
        train_example.completion_mask,
        images=train_example.images,
    )
    loss, metrics = dpo_loss(
        chosen,
        rejected,
        train_example.ref_chosen_logps,
        train_example.ref_rejected_logps,
        beta=beta,
        loss_type=loss_type,
        eps=eps if loss_type in ("conservative", "robust") else None,
        weights=weights,
    )
    aux = {
        "rewards/chosen": metrics.chosen_reward,
        "rewards/rejected": metrics.rejected_reward,
        "rewards/margin": metrics.reward_margin,
        "rewards/accuracy": metrics.reward_accuracy,
        "log_probs/chosen": chosen.mean(),
        "log_probs/rejected": rejected.mean(),
    }
    return loss, aux


class WeightedTunixDPOTrainer(tunix_dpo.DPOTrainer):
    """tunix ``DPOTrainer`` whose loss is jaxpref's weighted DPO loss.

    Args:
        model: the policy, a tunix NNX model (a qwix LoRA model trains only its adapters).
        ref_model: the frozen reference (e.g. the base model the LoRA policy was made from);
            required: without it tunix drops the reference term, which is not DPO.
        optimizer: an optax optimizer.
        training_config: tunix's ``DPOTrainingConfig`` with ``algorithm="dpo"`` and
            ``label_smoothing=0`` (flip rates come per pair, in the batches' ``eps``).
        tokenizer: tunix tokenizer (or one its ``TokenizerAdapter`` takes) for string batches.
        loss_type: ``"sigmoid"``, ``"conservative"``, ``"robust"`` or ``"ipo"``.

    Raises:
        ValueError: on an unknown ``loss_type``, a missing reference, ORPO or a global
            ``label_smoothing``.
    """

    def __init__(self, model, ref_model, optimizer, training_config, tokenizer=None, *, loss_type="sigmoid"):
        if loss_type not in LOSS_TYPES:
            raise ValueError(f"`loss_type` must be one of {LOSS_TYPES}; got {loss_type!r}.")
        if ref_model is None:
            raise ValueError("`ref_model` is required: pass the frozen base model (DPO needs a reference).")
        if training_config.algorithm != "dpo" or training_config.label_smoothing:
            raise ValueError(
                "training_config must have algorithm='dpo' and label_smoothing=0; per-pair flip rates "
                "go in each batch's `eps` (loss_type='conservative' or 'robust')."
            )
        super().__init__(model, ref_model, optimizer, training_config, tokenizer=tokenizer)
        beta = float(training_config.beta)

        # Positional parameters only: nnx.value_and_grad maps tunix's keyword inputs to positions.
        def loss_fn(model, train_example, weights, eps):
            return weighted_dpo_loss_fn(model, train_example, weights, eps, beta=beta, loss_type=loss_type)

        self.with_loss_fn(loss_fn, has_aux=True)
        inputs_of = lambda x: {"train_example": x.example, "weights": x.weights, "eps": x.eps}  # noqa: E731
        self.with_gen_model_input_fn(inputs_of)
        self.gen_model_input_fn = inputs_of

    def _prepare_inputs(self, training_input: dict[str, Any]) -> WeightedExample:
        if not isinstance(training_input, dict) or not {"weight", "eps"} <= set(training_input):
            raise ValueError(
                "each batch must be a dict with tunix's DPO fields plus `weight` and `eps`; build them "
                "with jaxpref.dpo.tunix_trainer.preference_batches."
            )
        rest = {k: v for k, v in training_input.items() if k not in ("weight", "eps")}
        example = super()._prepare_inputs(rest)
        weights = jnp.asarray(training_input["weight"], jnp.float32)
        eps = jnp.asarray(training_input["eps"], jnp.float32)
        return WeightedExample(example, weights, eps)


def preference_batches(
    data, batch_size: int, *, seed: int | None = None, epochs: int = 1
) -> Iterator[dict[str, Any]]:
    """String batches for ``WeightedTunixDPOTrainer`` from a jaxpref preference frame or dataset.

    Args:
        data: ``jaxpref.dpo.preference_frame(...)`` output or its ``to_dataset`` form.
        batch_size: pairs per batch (the last partial batch of an epoch is dropped).
        seed: shuffle each epoch with this seed (None: input order).
        epochs: passes over the data.

    Yields:
        dicts with ``prompts``, ``chosen_responses``, ``rejected_responses`` (lists of str) and
        ``weight``, ``eps`` (float32 arrays).
    """
    frame = data if isinstance(data, pd.DataFrame) else data.to_pandas()
    missing = [c for c in ("prompt", "chosen", "rejected", "weight", "eps") if c not in frame.columns]
    if missing:
        raise ValueError(f"`data` lacks {missing}; build it with jaxpref.dpo.export.preference_frame.")
    if not (isinstance(batch_size, int) and 0 < batch_size <= len(frame)):
        raise ValueError(f"`batch_size` must be an int in [1, {len(frame)}]; got {batch_size!r}.")
    rng = None if seed is None else np.random.default_rng(seed)
    for _ in range(epochs):
        order = np.arange(len(frame)) if rng is None else rng.permutation(len(frame))
        for start in range(0, len(frame) - batch_size + 1, batch_size):
            rows = frame.iloc[order[start : start + batch_size]]
            yield {
                "prompts": rows["prompt"].astype(str).tolist(),
                "chosen_responses": rows["chosen"].astype(str).tolist(),
                "rejected_responses": rows["rejected"].astype(str).tolist(),
                "weight": rows["weight"].to_numpy(np.float32),
                "eps": rows["eps"].to_numpy(np.float32),
            }
