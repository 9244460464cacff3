"""DPO fine-tuning of a Flax NNX causal LM: jitted steps, data parallel, checkpoints.

The trainer is a thin host loop around one pure, jitted step:

- the reference model is frozen: its sequence log-probabilities are computed once for the
  whole data set before training (TRL's ``precompute_ref_log_probs``), so each step runs one
  policy forward and backward pass over the chosen and rejected sequences together;
- prompts and padding are masked out of the sequence log-probabilities (``loss_mask``);
- optax AdamW with linear warm-up and global-norm gradient clipping;
- data parallel over the local devices with ``jax.sharding``: the batch is split along a
  ``"data"`` mesh axis, parameters are replicated, and XLA inserts the gradient all-reduce;
- orbax checkpoints of (step, parameters, optimiser state), and under early stopping also the
  best-so-far parameters, their step and score; ``fit`` resumes from the latest one, and the
  batch order is a function of (key, epoch), so a resumed run sees the same batches and returns
  the same model as an uninterrupted one;
- a rich progress bar, metrics logged every ``log_every`` steps, and an evaluation hook that
  can also select the best step (early stopping on a held-out set).

Example:
    >>> from flax import nnx
    >>> import jax
    >>> from jaxpref.dpo.model import GPT2Config, GPT2LMHeadModel
    >>> config = GPT2Config(vocab_size=8, max_positions=8, hidden_size=16, num_layers=1, num_heads=2)
    >>> policy = GPT2LMHeadModel(config, rngs=nnx.Rngs(0))
    >>> pairs = encode_pairs([[1, 2]] * 4, [[3, 4]] * 4, [[5, 6]] * 4)
    >>> trainer = DPOTrainer(policy, config=TrainConfig(batch_size=4, num_steps=2, progress=False))
    >>> result = trainer.fit(jax.random.key(0), pairs)  # doctest: +SKIP
    >>> [entry["step"] for entry in result.history]  # doctest: +SKIP
    [1, 2]
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jaxtyping import Array, Float, Int

from jaxpref.dpo.losses import LOSS_TYPES, dpo_loss, sequence_log_probs
from jaxpref.dpo.model import GPT2LMHeadModel

__all__ = [
    "DPOTrainer",
    "PreferencePairs",
    "StepSettings",
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "encode_pairs",
    "sequence_log_probs_of_model",
]


class PreferencePairs(NamedTuple):
    """Tokenised preference pairs, right-padded to one length (host NumPy or device arrays).

    Attributes:
        chosen_tokens: prompt + chosen response + padding, (num_pairs, length) int32.
        chosen_mask: 1.0 on chosen-response tokens, 0.0 on prompt and padding.
        rejected_tokens: prompt + rejected response + padding.
        rejected_mask: 1.0 on rejected-response tokens.
        weights: per-pair weight, (num_pairs,).
        eps: per-pair flip rate, (num_pairs,).
        reference_chosen_log_probs: log ref(chosen | prompt), filled in by the trainer.
        reference_rejected_log_probs: log ref(rejected | prompt), filled in by the trainer.
    """

    chosen_tokens: Int[Array, "num_pairs length"]
    chosen_mask: Float[Array, "num_pairs length"]
    rejected_tokens: Int[Array, "num_pairs length"]
    rejected_mask: Float[Array, "num_pairs length"]
    weights: Float[Array, " num_pairs"]
    eps: Float[Array, " num_pairs"]
    reference_chosen_log_probs: Float[Array, " num_pairs"] | None = None
    reference_rejected_log_probs: Float[Array, " num_pairs"] | None = None

    @property
    def num_pairs(self) -> int:
        return self.chosen_tokens.shape[0]

    def take(self, indices) -> PreferencePairs:
        """The pairs at ``indices`` (fields that are None stay None)."""
        return PreferencePairs(*(None if field is None else field[indices] for field in self))


def encode_pairs(
    prompts: Sequence[Sequence[int]],
    chosen: Sequence[Sequence[int]],
    rejected: Sequence[Sequence[int]],
    *,
    weights: Sequence[float] | None = None,
    eps: Sequence[float] | None = None,
    pad_id: int = 0,
    length: int | None = None,
    pad_to_multiple: int = 8,
) -> PreferencePairs:
    """Concatenate prompt and response token ids, right-pad, and mask the prompt out.

    Args:
        prompts: token ids of each prompt.
        chosen: token ids of each chosen response (without the prompt).
        rejected: token ids of each rejected response.
        weights: per-pair weights (default 1).
        eps: per-pair flip rates (default 0).
        pad_id: token id used for padding (masked out; any valid id works).
        length: padded length; default the longest sequence rounded up to ``pad_to_multiple``
            (size buckets, so new data of similar length do not trigger a recompile).
        pad_to_multiple: bucket size for the default length.

    Returns:
        ``PreferencePairs`` of NumPy arrays.
    """
    num_pairs = len(prompts)
    if not (len(chosen) == len(rejected) == num_pairs) or num_pairs == 0:
        raise ValueError(
            f"`prompts`, `chosen` and `rejected` must be non-empty and of one length; got "
            f"{num_pairs}, {len(chosen)}, {len(rejected)}."
        )
    longest = max(len(p) + max(len(c), len(r)) for p, c, r in zip(prompts, chosen, rejected))
    if length is None:
        length = -(-longest // pad_to_multiple) * pad_to_multiple
    elif longest > length:
        raise ValueError(f"`length`={length} is shorter than the longest sequence ({longest}).")

    def pad(responses):
        tokens = np.full((num_pairs, length), pad_id, dtype=np.int32)
        mask = np.zeros((num_pairs, length), dtype=np.float32)
        for row, (prompt, response) in enumerate(zip(prompts, responses)):
            if len(prompt) == 0 or len(response) == 0:
                raise ValueError(
                    f"pair {row}: prompts and responses need at least one token (the first "
                    "response token is predicted from the prompt)."
                )
            sequence = list(prompt) + list(response)
            tokens[row, : len(sequence)] = sequence
            mask[row, len(prompt) : len(sequence)] = 1.0
        return tokens, mask

    chosen_tokens, chosen_mask = pad(chosen)
    rejected_tokens, rejected_mask = pad(rejected)
    weights = np.ones(num_pairs, np.float32) if weights is None else np.asarray(weights, np.float32)
    eps = np.zeros(num_pairs, np.float32) if eps is None else np.asarray(eps, np.float32)
    for name, values in (("weights", weights), ("eps", eps)):
        if values.shape != (num_pairs,):
            raise ValueError(f"`{name}` must have one value per pair ({num_pairs}); got {values.shape}.")
    if not (np.isfinite(weights).all() and (weights >= 0).all()):
        raise ValueError("`weights` must be finite and non-negative.")
    if not ((eps >= 0).all() and (eps <= 0.5).all()):
        raise ValueError("`eps` must lie in [0, 1/2].")
    return PreferencePairs(chosen_tokens, chosen_mask, rejected_tokens, rejected_mask, weights, eps)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of DPO training (hashable: the jitted step is cached on it).

    Attributes:
        beta: DPO KL strength.
        loss_type: ``sigmoid``, ``conservative``, ``robust`` or ``ipo``; the last three's eps
            come per pair from ``PreferencePairs.eps``.
        learning_rate: peak AdamW learning rate, reached after ``warmup_steps``.
        warmup_steps: steps of linear warm-up from 0.
        weight_decay: AdamW decoupled weight decay.
        max_grad_norm: global-norm clipping threshold.
        batch_size: pairs per step, across all devices; a multiple of the device count.
        num_steps: total optimiser steps (resumed runs continue to this number).
        log_every: steps between logged metric entries.
        eval_every: steps between evaluation-hook calls (0: only at the end).
        checkpoint_every: steps between orbax checkpoints (0: only at the end).
        best_metric: name of an evaluation-hook metric to maximise; the result then holds the
            parameters of the best evaluation (early stopping), else the last ones.
        progress: show a rich progress bar.
    """

    beta: float = 0.1
    loss_type: str = "sigmoid"
    learning_rate: float = 1e-4
    warmup_steps: int = 0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    batch_size: int = 64
    num_steps: int = 100
    log_every: int = 1
    eval_every: int = 0
    checkpoint_every: int = 0
    best_metric: str | None = None
    progress: bool = True

    def __post_init__(self):
        if self.loss_type not in LOSS_TYPES:
            raise ValueError(f"TrainConfig.loss_type must be one of {LOSS_TYPES}; got {self.loss_type!r}.")
        for name in ("beta", "learning_rate", "max_grad_norm"):
            if not getattr(self, name) > 0:
                raise ValueError(f"TrainConfig.{name} must be positive; got {getattr(self, name)!r}.")
        for name in ("batch_size", "num_steps", "log_every"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) > 0):
                raise ValueError(f"TrainConfig.{name} must be a positive int; got {getattr(self, name)!r}.")
        for name in ("warmup_steps", "eval_every", "checkpoint_every"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 0):
                raise ValueError(f"TrainConfig.{name} must be a non-negative int.")

    def step_settings(self) -> StepSettings:
        """The fields the jitted step depends on (the rest must not trigger recompiles)."""
        return StepSettings(*(getattr(self, name) for name in StepSettings._fields))


class StepSettings(NamedTuple):
    """Static, hashable hyper-parameters of one train step (see ``TrainConfig``)."""

    beta: float
    loss_type: str
    learning_rate: float
    warmup_steps: int
    weight_decay: float
    max_grad_norm: float

    def optimizer(self) -> optax.GradientTransformation:
        """Clipping, then AdamW on a linear warm-up to a constant learning rate."""
        schedule = optax.join_schedules(
            [
                optax.linear_schedule(0.0, self.learning_rate, max(self.warmup_steps, 1)),
                optax.constant_schedule(self.learning_rate),
            ],
            boundaries=[self.warmup_steps],
        )
        return optax.chain(
            optax.clip_by_global_norm(self.max_grad_norm),
            optax.adamw(schedule, weight_decay=self.weight_decay),
        )


class TrainState(NamedTuple):
    """What a checkpoint holds: the step count, parameters and optimiser state."""

    step: Int[Array, ""]
    params: Any
    opt_state: Any


class BestSoFar(NamedTuple):
    """Early stopping's memory, checkpointed with the state so that a resumed run keeps it.

    Attributes:
        params: parameters of the best evaluation so far (the initial ones before any; None
            without early stopping).
        value: its ``best_metric`` value (-inf before any evaluation).
        step: the step it was taken at.
    """

    params: Any
    value: Float[Array, ""]
    step: Int[Array, ""]


class StepInfo(NamedTuple):
    """Per-step diagnostics (scalars)."""

    loss: Float[Array, ""]
    reward_accuracy: Float[Array, ""]
    reward_margin: Float[Array, ""]
    chosen_reward: Float[Array, ""]
    rejected_reward: Float[Array, ""]
    grad_norm: Float[Array, ""]


class TrainResult(NamedTuple):
    """Output of ``DPOTrainer.fit``.

    Attributes:
        model: the policy with the final parameters, or the best ones when
            ``TrainConfig.best_metric`` is set.
        history: logged training metrics, one dict per ``log_every`` steps.
        evaluations: the evaluation hook's dicts, each with its ``step``.
        best_step: the step whose parameters ``model`` holds.
    """

    model: GPT2LMHeadModel
    history: list[dict[str, float]]
    evaluations: list[dict[str, float]]
    best_step: int


def sequence_log_probs_of_model(model: GPT2LMHeadModel, tokens, loss_mask):
    """log pi(response | prompt) per sequence for a model (prompt and padding masked)."""
    return sequence_log_probs(model(tokens), tokens, loss_mask)


def _pair_log_probs(model, pairs: PreferencePairs):
    """Chosen and rejected log-probabilities from one forward pass over both halves."""
    tokens = jnp.concatenate([pairs.chosen_tokens, pairs.rejected_tokens])
    mask = jnp.concatenate([pairs.chosen_mask, pairs.rejected_mask])
    log_probs = sequence_log_probs_of_model(model, tokens, mask)
    return jnp.split(log_probs, 2)


@functools.partial(jax.jit, static_argnums=(0,))
def _reference_log_probs(graphdef, params, pairs: PreferencePairs):
    return _pair_log_probs(nnx.merge(graphdef, params), pairs)


@functools.partial(jax.jit, static_argnums=(0, 1), donate_argnums=(2,))
def _train_step(graphdef, settings: StepSettings, state: TrainState, pairs: PreferencePairs):
    def loss_of(params):
        policy_chosen, policy_rejected = _pair_log_probs(nnx.merge(graphdef, params), pairs)
        uses_eps = settings.loss_type in ("conservative", "robust")
        return dpo_loss(
            policy_chosen,
            policy_rejected,
            pairs.reference_chosen_log_probs,
            pairs.reference_rejected_log_probs,
            beta=settings.beta,
            loss_type=settings.loss_type,
            eps=pairs.eps if uses_eps else None,
            weights=pairs.weights,
        )

    (loss, metrics), gradients = jax.value_and_grad(loss_of, has_aux=True)(state.params)
    updates, opt_state = settings.optimizer().update(gradients, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    info = StepInfo(loss, *metrics, grad_norm=optax.tree.norm(gradients))
    return TrainState(state.step + 1, params, opt_state), info


class DPOTrainer:
    """Trains a policy by DPO against a frozen reference.

    Args:
        policy: the model to fine-tune (its parameters are the starting point; it is not
            modified, ``fit`` returns a new model).
        reference: the frozen reference; defaults to a copy of ``policy`` as given.
        config: hyper-parameters.
        checkpoint_dir: where orbax checkpoints go; None disables checkpointing.
        devices: devices for data parallelism; default all local devices.
    """

    def __init__(
        self,
        policy: GPT2LMHeadModel,
        reference: GPT2LMHeadModel | None = None,
        *,
        config: TrainConfig = TrainConfig(),
        checkpoint_dir: str | os.PathLike | None = None,
        devices: Sequence[jax.Device] | None = None,
    ):
        self.config = config
        self.graphdef, initial_params = nnx.split(policy)
        reference_graphdef, self.reference_params = nnx.split(policy if reference is None else reference)
        if reference_graphdef != self.graphdef:
            raise ValueError("`reference` must have the same architecture as `policy`.")
        devices = list(devices or jax.local_devices())
        if config.batch_size % len(devices):
            raise ValueError(
                f"TrainConfig.batch_size ({config.batch_size}) must be a multiple of the number "
                f"of devices ({len(devices)}) for data parallelism."
            )
        self.mesh = Mesh(np.array(devices), ("data",))
        self.replicated = NamedSharding(self.mesh, PartitionSpec())
        self.data_sharded = NamedSharding(self.mesh, PartitionSpec("data"))
        self.initial_params = jax.device_put(initial_params, self.replicated)
        self.reference_params = jax.device_put(self.reference_params, self.replicated)
        self.checkpoint_dir = None if checkpoint_dir is None else os.path.abspath(checkpoint_dir)

    def reference_log_probs(self, pairs: PreferencePairs) -> PreferencePairs:
        """``pairs`` with the frozen reference's log-probabilities filled in."""
        chosen, rejected = [], []
        batch_size = self.config.batch_size
        for start in range(0, pairs.num_pairs, batch_size):
            indices = np.arange(start, min(start + batch_size, pairs.num_pairs))
            # Pad the last batch to full size so that one compiled program serves every batch.
            padded = np.resize(indices, batch_size)
            batch = self._shard(
                pairs.take(padded)._replace(
                    reference_chosen_log_probs=None, reference_rejected_log_probs=None
                )
            )
            batch_chosen, batch_rejected = _reference_log_probs(self.graphdef, self.reference_params, batch)
            chosen.append(np.asarray(batch_chosen)[: len(indices)])
            rejected.append(np.asarray(batch_rejected)[: len(indices)])
        return pairs._replace(
            reference_chosen_log_probs=np.concatenate(chosen),
            reference_rejected_log_probs=np.concatenate(rejected),
        )

    def _shard(self, pairs: PreferencePairs) -> PreferencePairs:
        return jax.device_put(pairs, self.data_sharded)

    def _batches(self, key: jax.Array, first_step: int, num_pairs: int):
        """Pair indices for each step from ``first_step``: epochs in random order (a function of
        key and epoch only, so a resumed run sees the same batches), last partial batch dropped."""
        batch_size = self.config.batch_size
        batches_per_epoch = num_pairs // batch_size
        epoch, position = divmod(first_step, batches_per_epoch)
        while True:
            order = np.asarray(jax.random.permutation(jax.random.fold_in(key, epoch), num_pairs))
            for start in range(position * batch_size, batches_per_epoch * batch_size, batch_size):
                yield order[start : start + batch_size]
            epoch, position = epoch + 1, 0

    def _checkpoint_manager(self):
        import orbax.checkpoint as ocp

        return ocp.CheckpointManager(
            self.checkpoint_dir,
            options=ocp.CheckpointManagerOptions(max_to_keep=2, enable_async_checkpointing=False),
        )

    def _initial_state(self, manager) -> tuple[TrainState, BestSoFar]:
        # Copies, because the train step donates its state and the trainer keeps its start;
        # everything replicated, so the first step compiles the same program as the later ones.
        params = jax.tree.map(jnp.copy, self.initial_params)
        optimizer_state = self.config.step_settings().optimizer().init(params)
        state = jax.device_put(TrainState(jnp.zeros((), jnp.int32), params, optimizer_state), self.replicated)
        best = BestSoFar(
            None if self.config.best_metric is None else jax.tree.map(jnp.copy, params),
            jnp.asarray(-jnp.inf, jnp.float32),
            jnp.zeros((), jnp.int32),
        )
        if manager is None or manager.latest_step() is None:
            return state, best
        import orbax.checkpoint as ocp

        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, self._checkpoint(state, best))
        restored = manager.restore(manager.latest_step(), args=ocp.args.StandardRestore(abstract))
        return TrainState(**restored["state"]), BestSoFar(**restored.get("best", best._asdict()))

    def _checkpoint(self, state: TrainState, best: BestSoFar) -> dict:
        """The checkpointed tree: the state, and early stopping's memory when it is on."""
        tree = {"state": state._asdict()}
        if self.config.best_metric is not None:
            tree["best"] = best._asdict()
        return tree

    def fit(
        self,
        key: jax.Array,
        pairs: PreferencePairs,
        *,
        eval_hook: Callable[[int, GPT2LMHeadModel], dict[str, float]] | None = None,
    ) -> TrainResult:
        """Run DPO to ``config.num_steps``, resuming from the latest checkpoint if there is one.

        Args:
            key: PRNG key for the batch order.
            pairs: training pairs (``encode_pairs``); reference log-probabilities are computed
                here when absent.
            eval_hook: ``eval_hook(step, model) -> dict`` of metrics, called every
                ``eval_every`` steps and at the end.

        Returns:
            A ``TrainResult``.
        """
        config = self.config
        if pairs.num_pairs < config.batch_size:
            raise ValueError(
                f"{pairs.num_pairs} pairs are fewer than TrainConfig.batch_size ({config.batch_size}); "
                "lower the batch size."
            )
        if config.best_metric is not None and eval_hook is None:
            raise ValueError("TrainConfig.best_metric needs an `eval_hook` to evaluate it.")
        if pairs.reference_chosen_log_probs is None:
            pairs = self.reference_log_probs(pairs)
        manager = None if self.checkpoint_dir is None else self._checkpoint_manager()
        state, best = self._initial_state(manager)
        history, evaluations = [], []

        def evaluate(step, params):
            nonlocal best
            metrics = dict(eval_hook(step, nnx.merge(self.graphdef, params)), step=step)
            evaluations.append(metrics)
            if config.best_metric is not None and metrics[config.best_metric] > float(best.value):
                # Copied: the next step donates (and may overwrite) the current buffers.
                best = BestSoFar(
                    jax.tree.map(jnp.copy, params),
                    jnp.asarray(metrics[config.best_metric], jnp.float32),
                    jnp.asarray(step, jnp.int32),
                )

        from rich.progress import Progress

        with Progress(disable=not config.progress, transient=True) as progress:
            task = progress.add_task("DPO", total=config.num_steps, completed=int(state.step))
            batches = self._batches(key, int(state.step), pairs.num_pairs)
            for step, indices in zip(range(int(state.step), config.num_steps), batches):
                batch = self._shard(pairs.take(indices))
                state, info = _train_step(self.graphdef, config.step_settings(), state, batch)
                done = step + 1
                if done % config.log_every == 0 or done == config.num_steps:
                    entry = {name: float(value) for name, value in info._asdict().items()}
                    history.append({"step": done, **entry})
                    progress.update(task, description=f"DPO loss {entry['loss']:.3f}")
                if eval_hook is not None and config.eval_every and done % config.eval_every == 0:
                    evaluate(done, state.params)
                if manager is not None and config.checkpoint_every and done % config.checkpoint_every == 0:
                    self._save(manager, state, best)
                progress.advance(task)
        if eval_hook is not None and (not evaluations or evaluations[-1]["step"] != config.num_steps):
            evaluate(config.num_steps, state.params)
        if manager is not None:
            self._save(manager, state, best)
            manager.close()
        if config.best_metric is None or not np.isfinite(float(best.value)):
            return TrainResult(nnx.merge(self.graphdef, state.params), history, evaluations, int(state.step))
        return TrainResult(nnx.merge(self.graphdef, best.params), history, evaluations, int(best.step))

    def _save(self, manager, state: TrainState, best: BestSoFar) -> None:
        import orbax.checkpoint as ocp

        step = int(state.step)
        if manager.latest_step() != step:
            manager.save(step, args=ocp.args.StandardSave(self._checkpoint(state, best)))
            manager.wait_until_finished()
