"""Direct preference optimisation losses on sequence log-probabilities.

Every loss here is an elementwise function in the style of ``optax.losses``: it takes the
per-example DPO logit

    h = (log pi(chosen) - log ref(chosen)) - (log pi(rejected) - log ref(rejected))

and returns one loss per example without reducing. ``dpo_loss`` is the friendly layer on top:
it validates its inputs, applies per-example weights and per-example flip rates ``eps`` (so each
label can carry its own attentiveness-derived weight or noise level, see ``docs/model.md``) and returns the
weighted mean loss together with the usual DPO metrics.

Losses (beta > 0 is the KL strength, eps the probability that the label was flipped):

- ``sigmoid`` (Rafailov et al. 2023): ``-log sigmoid(beta h)``.
- ``conservative`` (cDPO, label smoothing): ``-(1 - eps) log sigmoid(beta h) - eps log sigmoid(-beta h)``.
- ``robust`` (rDPO, Chowdhury et al. 2024): ``[(1 - eps) l(h) - eps l(-h)] / (1 - 2 eps)`` with
  ``l(h) = -log sigmoid(beta h)``; its expectation under labels flipped at rate eps is the clean loss.
  The factor 1 / (1 - 2 eps) is infinite at eps = 1/2 (a label judged a sure coin flip, which
  jaxpref's own ``flip_rate`` reaches), so the robust loss caps eps at ``ROBUST_MAX_EPS`` = 0.45:
  no flip rate in [0, 1/2] gives NaN or infinite gradients. The cap is deliberate, not a fit to
  data: a label with eps near 1/2 carries almost no signal and would get 1 / (1 - 2 eps) times
  the gradient of a clean one; give such labels a small weight instead (see ``docs/dpo.md``).
- ``ipo`` (Azar et al. 2023): ``(h - 1 / (2 beta))**2``. Here h is built from *summed* sequence
  log-probabilities, as in the IPO paper's derivation; TRL's ``loss_type="ipo"`` divides each
  log-probability by the number of response tokens first. Pass length-averaged log-probabilities
  (``sequence_log_probs(...) / loss_mask[:, 1:].sum(-1)``) to get TRL's variant; the two agree
  only when every response has one token, and ``beta`` does not transfer between them.

Example:
    >>> import jax.numpy as jnp
    >>> from jaxpref.dpo.losses import dpo_loss
    >>> zeros = jnp.zeros(3)
    >>> loss, metrics = dpo_loss(zeros, zeros, zeros, zeros, beta=0.1)
    >>> round(float(loss), 4)  # log 2 when policy equals reference
    0.6931
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

__all__ = [
    "LOSS_TYPES",
    "ROBUST_MAX_EPS",
    "DPOMetrics",
    "conservative_loss",
    "dpo_logits",
    "dpo_loss",
    "ipo_loss",
    "robust_loss",
    "sequence_log_probs",
    "sigmoid_loss",
]

LOSS_TYPES = ("sigmoid", "conservative", "robust", "ipo")
# rDPO scales a label's loss by 1 / (1 - 2 eps); at this cap the factor is 10.
ROBUST_MAX_EPS = 0.45


class DPOMetrics(NamedTuple):
    """Weighted batch means of the usual DPO diagnostics (all scalars).

    Attributes:
        reward_accuracy: share of examples whose implicit reward ranks chosen above rejected.
        reward_margin: mean of ``chosen_reward - rejected_reward``.
        chosen_reward: mean implicit reward ``beta (log pi - log ref)`` of the chosen responses.
        rejected_reward: the same for the rejected responses.
    """

    reward_accuracy: Float[Array, ""]
    reward_margin: Float[Array, ""]
    chosen_reward: Float[Array, ""]
    rejected_reward: Float[Array, ""]


def dpo_logits(
    policy_chosen_log_probs: Float[Array, " batch"],
    policy_rejected_log_probs: Float[Array, " batch"],
    reference_chosen_log_probs: Float[Array, " batch"],
    reference_rejected_log_probs: Float[Array, " batch"],
) -> Float[Array, " batch"]:
    """The DPO logit h: policy log-ratio of chosen over rejected minus the reference's."""
    policy_log_ratio = policy_chosen_log_probs - policy_rejected_log_probs
    reference_log_ratio = reference_chosen_log_probs - reference_rejected_log_probs
    return policy_log_ratio - reference_log_ratio


def sigmoid_loss(logits: Float[Array, " batch"], beta: float) -> Float[Array, " batch"]:
    """Standard DPO loss ``-log sigmoid(beta h)`` per example."""
    return -jax.nn.log_sigmoid(beta * logits)


def conservative_loss(
    logits: Float[Array, " batch"], beta: float, eps: Float[Array, " batch"] | float
) -> Float[Array, " batch"]:
    """Conservative DPO (label smoothing eps in [0, 1]) per example."""
    return -(1.0 - eps) * jax.nn.log_sigmoid(beta * logits) - eps * jax.nn.log_sigmoid(-beta * logits)


def robust_loss(
    logits: Float[Array, " batch"], beta: float, eps: Float[Array, " batch"] | float
) -> Float[Array, " batch"]:
    """Robust DPO (Chowdhury et al. 2024), unbiased under a known flip rate eps <= ``ROBUST_MAX_EPS``.

    Flip rates above ``ROBUST_MAX_EPS`` (up to 1/2 and beyond) are capped there, so the loss and
    its gradient stay finite for every input.
    """
    eps = jnp.clip(eps, 0.0, ROBUST_MAX_EPS)
    clean = -jax.nn.log_sigmoid(beta * logits)
    flipped = -jax.nn.log_sigmoid(-beta * logits)
    return ((1.0 - eps) * clean - eps * flipped) / (1.0 - 2.0 * eps)


def ipo_loss(logits: Float[Array, " batch"], beta: float) -> Float[Array, " batch"]:
    """IPO loss ``(h - 1/(2 beta))**2`` per example (Azar et al. 2023)."""
    return (logits - 1.0 / (2.0 * beta)) ** 2


def sequence_log_probs(
    logits: Float[Array, "batch length vocab"],
    tokens: Int[Array, "batch length"],
    loss_mask: Float[Array, "batch length"],
) -> Float[Array, " batch"]:
    """Sum of next-token log-probabilities over the positions the mask selects.

    Args:
        logits: model outputs for ``tokens``; ``logits[:, t]`` predicts ``tokens[:, t + 1]``.
        tokens: prompt and response token ids, padded.
        loss_mask: 1 where ``tokens[:, t]`` is a response token to score, 0 on the prompt and
            padding (prompt masking). Position 0 is never scored: nothing predicts it.

    Returns:
        log pi(response | prompt) per sequence.
    """
    log_softmax = jax.nn.log_softmax(logits[:, :-1].astype(jnp.float32), axis=-1)
    token_log_probs = jnp.take_along_axis(log_softmax, tokens[:, 1:, None], axis=-1)[..., 0]
    return jnp.sum(token_log_probs * loss_mask[:, 1:], axis=-1)


def _check_concrete(name: str, value, low: float, high: float, high_inclusive: bool) -> None:
    """Range-check a concrete argument; traced values are trusted (checked at the boundary)."""
    if value is None or isinstance(value, jax.core.Tracer):
        return
    array = np.asarray(value, dtype=np.float64)
    upper_ok = array <= high if high_inclusive else array < high
    if not (np.all(np.isfinite(array)) and np.all(array >= low) and np.all(upper_ok)):
        bracket = "]" if high_inclusive else ")"
        raise ValueError(
            f"`{name}` must lie in [{low}, {high}{bracket}; got values from {array.min()} to "
            f"{array.max()}. Clip it (e.g. eps = (1 - label_attentive) / 2 is always in [0, 1/2])."
        )


def _validate(loss_type, beta, eps, weights, batch_shape) -> None:
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"`loss_type` must be one of {LOSS_TYPES}; got {loss_type!r}.")
    if not (isinstance(beta, (int, float)) and beta > 0):
        raise ValueError(f"`beta` must be a positive Python number; got {beta!r}.")
    if loss_type in ("sigmoid", "ipo") and eps is not None:
        raise ValueError(
            f"`eps` has no effect with loss_type={loss_type!r}; use 'conservative' or 'robust', "
            "or drop `eps`."
        )
    if eps is not None:
        # robust caps eps at ROBUST_MAX_EPS itself; above 1/2 a "flip rate" means a mislabelled input.
        _check_concrete("eps", eps, 0.0, 0.5 if loss_type == "robust" else 1.0, high_inclusive=True)
    if weights is not None:
        _check_concrete("weights", weights, 0.0, np.inf, high_inclusive=True)
    for name, value in (("eps", eps), ("weights", weights)):
        shape = jnp.shape(value) if value is not None else ()
        if shape not in ((), batch_shape):
            raise ValueError(f"`{name}` must be a scalar or have the batch shape {batch_shape}; got {shape}.")


@functools.partial(jax.jit, static_argnames=("beta", "loss_type"))
def _dpo_loss(
    policy_chosen_log_probs,
    policy_rejected_log_probs,
    reference_chosen_log_probs,
    reference_rejected_log_probs,
    eps,
    weights,
    *,
    beta: float,
    loss_type: str,
):
    logits = dpo_logits(
        policy_chosen_log_probs,
        policy_rejected_log_probs,
        reference_chosen_log_probs,
        reference_rejected_log_probs,
    )
    if loss_type == "sigmoid":
        losses = sigmoid_loss(logits, beta)
    elif loss_type == "conservative":
        losses = conservative_loss(logits, beta, eps)
    elif loss_type == "robust":
        losses = robust_loss(logits, beta, eps)
    else:
        losses = ipo_loss(logits, beta)
    weights = jnp.broadcast_to(weights, logits.shape)
    # A weighted mean (not a weighted sum) keeps the step size comparable between arms whose
    # weights have different averages, e.g. soft attentiveness weights versus all ones.
    total_weight = jnp.maximum(jnp.sum(weights), jnp.finfo(logits.dtype).tiny)

    def weighted_mean(values):
        return jnp.sum(weights * values) / total_weight

    # Implicit rewards are diagnostics, so they carry no gradient into the loss.
    chosen_rewards = beta * jax.lax.stop_gradient(policy_chosen_log_probs - reference_chosen_log_probs)
    rejected_rewards = beta * jax.lax.stop_gradient(policy_rejected_log_probs - reference_rejected_log_probs)
    metrics = DPOMetrics(
        reward_accuracy=weighted_mean((chosen_rewards > rejected_rewards).astype(logits.dtype)),
        reward_margin=weighted_mean(chosen_rewards - rejected_rewards),
        chosen_reward=weighted_mean(chosen_rewards),
        rejected_reward=weighted_mean(rejected_rewards),
    )
    return weighted_mean(losses), metrics


def dpo_loss(
    policy_chosen_log_probs: Float[Array, " batch"],
    policy_rejected_log_probs: Float[Array, " batch"],
    reference_chosen_log_probs: Float[Array, " batch"],
    reference_rejected_log_probs: Float[Array, " batch"],
    *,
    beta: float = 0.1,
    loss_type: str = "sigmoid",
    eps: Float[Array, " batch"] | float | None = None,
    weights: Float[Array, " batch"] | None = None,
) -> tuple[Float[Array, ""], DPOMetrics]:
    """Weighted mean DPO loss over a batch, with metrics.

    Args:
        policy_chosen_log_probs: log pi(chosen | prompt), shape (batch,).
        policy_rejected_log_probs: log pi(rejected | prompt), shape (batch,).
        reference_chosen_log_probs: log ref(chosen | prompt), shape (batch,).
        reference_rejected_log_probs: log ref(rejected | prompt), shape (batch,).
        beta: KL strength, a positive Python float (static under jit).
        loss_type: one of ``"sigmoid"``, ``"conservative"``, ``"robust"``, ``"ipo"``.
        eps: flip rate for ``conservative`` (in [0, 1]) and ``robust`` (in [0, 1/2], capped at
            ``ROBUST_MAX_EPS``); a scalar or one per example. Defaults to 0.
        weights: non-negative per-example weights, e.g. ``label_attentive``. Defaults to 1.

    Returns:
        ``(loss, metrics)``: the weighted mean loss (scalar) and a ``DPOMetrics``.

    Raises:
        ValueError: on an unknown ``loss_type``, a non-positive ``beta``, ``eps`` or ``weights``
            out of range or of the wrong shape, or ``eps`` given to a loss that ignores it.
    """
    batch_shape = jnp.shape(policy_chosen_log_probs)
    for name, value in (
        ("policy_rejected_log_probs", policy_rejected_log_probs),
        ("reference_chosen_log_probs", reference_chosen_log_probs),
        ("reference_rejected_log_probs", reference_rejected_log_probs),
    ):
        if jnp.shape(value) != batch_shape:
            raise ValueError(
                f"`{name}` has shape {jnp.shape(value)}, but `policy_chosen_log_probs` has "
                f"{batch_shape}; pass one log-probability per example to each argument."
            )
    if len(batch_shape) != 1:
        raise ValueError(f"log-probabilities must be 1-D (batch,); got shape {batch_shape}.")
    _validate(loss_type, beta, eps, weights, batch_shape)
    return _dpo_loss(
        policy_chosen_log_probs,
        policy_rejected_log_probs,
        reference_chosen_log_probs,
        reference_rejected_log_probs,
        jnp.asarray(0.0 if eps is None else eps, dtype=jnp.result_type(policy_chosen_log_probs)),
        jnp.asarray(1.0 if weights is None else weights, dtype=jnp.result_type(policy_chosen_log_probs)),
        beta=float(beta),
        loss_type=loss_type,
    )
