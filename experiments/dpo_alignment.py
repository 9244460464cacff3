"""End to end: does DPO on attentiveness-filtered or -weighted user labels beat DPO on all labels?

A toy generation task with a known reward, so that win rates are exact:

- prompt ``[START, c]`` with a digit c; response: ``response_length`` digits; true reward = the
  number of positions t whose digit is ``(c + t) mod 10`` (0 .. response_length).
- reference policy: a tiny GPT-2 (``jaxpref.dpo.model``) trained briefly by SFT on noisy
  demonstrations (each digit right with probability ``sft_correct_probability``).
- generators: the reference at temperature ``temperature_a`` (A, better) and ``temperature_b``
  (B, worse); the gap mu = P(A's reward > B's) + P(tie) / 2 is estimated by Monte Carlo.
- users: eta_j ~ P_eta (``jaxpref.simulate``'s two-point, Beta, or a two-point with three casual
  users in four, ``mostly_casual``); each label is attentive with probability eta_j or a coin flip
  (docs/model.md). An attentive label follows the true reward (``attentive_labels="argmax"``, ties
  by a coin) or is drawn from P(A > B) = sigmoid((r_A - r_B) / T) (``"bradley_terry"``: attentive
  people are noisy too); mu is the chance that an attentive label picks A.
- jaxpref fits EM with mu known (``AttentivenessEM(family, mu=mu)``); its ``users_`` drive the
  filter (MAP eta >= threshold, the paper's rule) and its ``labels_`` the weights and flip rates,
  handed to DPO through ``jaxpref.dpo.export.preference_frame``.

Arms (all start from the reference, same steps, batch and learning rate): DPO on all labels;
filtered by MAP eta >= 0.5; soft weights per label (P(z_i = 1 | data)) and per user (E[eta_j |
data]); cDPO and rDPO with per-label flip rates; DPO on the truly attentive labels (oracle);
the reference itself; and a threshold sweep of the filter.

Metrics: win rate against the reference under the true reward (ties 1/2) and mean true reward on
held-out prompts, evaluated every ``eval_every`` steps; reported at the last step and at the step a
small clean held-out preference set picks (early stopping on the implicit-reward accuracy, the
same rule for every arm), and over the whole curve: area under the win-rate curve, steps to reach
a win rate of 0.9, and the level of the last two evaluations, each paired to DPO on all labels.
Filter precision/recall and AUCs sit beside the win rates.

Usage:
    python experiments/dpo_alignment.py --quick     # about 6 minutes a seed on 2 CPU cores
    python experiments/dpo_alignment.py             # full mode (GPU-ready)
    python experiments/dpo_alignment.py --quick --steps 600 --families mostly_casual \
        --attentive-labels bradley_terry --arms filter,soft_label_weights --no-sweep --tag _mine
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
from flax import nnx

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxpref import AttentivenessEM
from jaxpref.dpo.export import preference_frame
from jaxpref.dpo.losses import dpo_logits
from jaxpref.dpo.model import GPT2Config, GPT2LMHeadModel, sample
from jaxpref.dpo.train import (
    DPOTrainer,
    TrainConfig,
    encode_pairs,
    sequence_log_probs_of_model,
)
from jaxpref.simulate import eta_distribution, sample_eta

NUM_DIGITS = 10
START = NUM_DIGITS  # token id of the prompt's start marker
RESULTS_DIRECTORY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "dpo")
P_ETA = {
    "two_point": eta_distribution("two_point", support=(0.1, 0.9), weight_hi=0.5),
    "beta": eta_distribution("beta", alpha=2.0, beta=2.0),
    # Three casual users in four: label noise large enough to matter at the plateau too.
    "mostly_casual": eta_distribution("two_point", support=(0.1, 0.9), weight_hi=0.25),
}
# The family jaxpref's EM fits for each P_eta setting.
EM_FAMILY = {"two_point": "two_point", "beta": "beta", "mostly_casual": "two_point"}
ATTENTIVE_LABELS = ("argmax", "bradley_terry")
WIN_TARGET = 0.9  # "steps to reach" this win rate


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """Sizes of the experiment; ``quick()`` shrinks them for CPUs and tests."""

    num_users: int = 300
    labels_per_user: int = 20
    response_length: int = 8
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    families: tuple[str, ...] = ("two_point", "beta")
    thresholds: tuple[float, ...] = (0.2, 0.35, 0.5, 0.65, 0.8)
    main_threshold: float = 0.5
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    sft_steps: int = 400
    sft_batch_size: int = 256
    sft_correct_probability: float = 0.4
    temperature_a: float = 1.0
    temperature_b: float = 1.5
    num_mu_pairs: int = 20000
    dpo_steps: int = 300
    batch_size: int = 128
    beta: float = 0.1
    learning_rate: float = 3e-4
    warmup_steps: int = 10
    eval_every: int = 25
    num_heldout_pairs: int = 512
    num_eval_prompts: int = 4000
    # How an attentive user labels: "argmax" follows the true reward exactly; "bradley_terry"
    # draws the label from P(A > B) = sigmoid((r_A - r_B) / preference_temperature), as a real,
    # attentive but still noisy, person would.
    attentive_labels: str = "argmax"
    preference_temperature: float = 1.0
    # Arms to train (empty: all); the all_labels arm is always trained, it is the baseline.
    arms: tuple[str, ...] = ()
    # Also train these arms through TRL (jaxpref.dpo.trl_trainer, needs jaxpref[hf]) as "trl_<arm>".
    trl_arms: tuple[str, ...] = ()

    @classmethod
    def quick(cls) -> ExperimentConfig:
        return cls(
            num_users=200,
            seeds=(0, 1),
            thresholds=(0.3, 0.5, 0.7),
            hidden_size=32,
            sft_steps=200,
            sft_batch_size=128,
            num_mu_pairs=8000,
            dpo_steps=150,
            batch_size=64,
            eval_every=30,
            num_heldout_pairs=256,
            num_eval_prompts=1000,
        )


# ----------------------------------------------------------------------------- the toy task


def true_reward(prompts: np.ndarray, responses: np.ndarray) -> np.ndarray:
    """Number of positions t with response digit (c + t) mod 10, for prompt [START, c]."""
    positions = np.arange(responses.shape[1])
    target = (prompts[:, 1:2] + positions[None, :]) % NUM_DIGITS
    return (np.asarray(responses) == target).sum(axis=1)


def random_prompts(rng: np.random.Generator, num_prompts: int) -> np.ndarray:
    digits = rng.integers(0, NUM_DIGITS, size=num_prompts)
    return np.stack([np.full(num_prompts, START), digits], axis=1).astype(np.int32)


SFT_OPTIMIZER = optax.adam(3e-3)


@functools.partial(jax.jit, static_argnums=0)
def _sft_step(graphdef, params, optimizer_state, tokens, loss_mask):
    def negative_log_likelihood(params):
        return -jnp.mean(sequence_log_probs_of_model(nnx.merge(graphdef, params), tokens, loss_mask))

    gradients = jax.grad(negative_log_likelihood)(params)
    updates, optimizer_state = SFT_OPTIMIZER.update(gradients, optimizer_state, params)
    return optax.apply_updates(params, updates), optimizer_state


def train_reference(key, config: ExperimentConfig, rng: np.random.Generator) -> GPT2LMHeadModel:
    """SFT on noisy demonstrations: each digit right with probability q, else uniform."""
    model_config = GPT2Config(
        vocab_size=NUM_DIGITS + 1,
        max_positions=2 + config.response_length,
        hidden_size=config.hidden_size,
        num_layers=config.num_layers,
        num_heads=config.num_heads,
    )
    model = GPT2LMHeadModel(model_config, rngs=nnx.Rngs(int(jax.random.randint(key, (), 0, 2**30))))
    graphdef, params = nnx.split(model)
    optimizer_state = SFT_OPTIMIZER.init(params)
    loss_mask = np.zeros((config.sft_batch_size, 2 + config.response_length), np.float32)
    loss_mask[:, 2:] = 1.0
    positions = np.arange(config.response_length)
    for _ in range(config.sft_steps):
        prompts = random_prompts(rng, config.sft_batch_size)
        correct = (prompts[:, 1:2] + positions) % NUM_DIGITS
        noise = rng.integers(0, NUM_DIGITS, size=correct.shape)
        is_correct = rng.uniform(size=correct.shape) < config.sft_correct_probability
        tokens = np.concatenate([prompts, np.where(is_correct, correct, noise)], axis=1)
        params, optimizer_state = _sft_step(
            graphdef, params, optimizer_state, tokens.astype(np.int32), loss_mask
        )
    return nnx.merge(graphdef, params)


@nnx.jit
def heldout_accuracy(policy, pairs, reference_chosen, reference_rejected):
    """Share of clean held-out pairs whose implicit DPO reward ranks the better response first."""
    chosen = sequence_log_probs_of_model(policy, pairs.chosen_tokens, pairs.chosen_mask)
    rejected = sequence_log_probs_of_model(policy, pairs.rejected_tokens, pairs.rejected_mask)
    logits = dpo_logits(chosen, rejected, reference_chosen, reference_rejected)
    return jnp.mean(logits > 0) + 0.5 * jnp.mean(logits == 0)


def generate(key, model, prompts, config: ExperimentConfig, temperature=1.0) -> np.ndarray:
    return np.asarray(
        sample(key, model, prompts, config.response_length, temperature=temperature, vocab_limit=NUM_DIGITS)
    )


def attentive_preference(rng, reward_a, reward_b) -> np.ndarray:
    """1 if A's true reward is higher, 0 if lower, a coin flip on ties."""
    coin = rng.integers(0, 2, size=reward_a.shape)
    return np.where(reward_a > reward_b, 1, np.where(reward_a < reward_b, 0, coin))


def bradley_terry_preference(rng, reward_a, reward_b, temperature: float) -> np.ndarray:
    """1 with probability sigmoid((r_A - r_B) / temperature): an attentive but noisy labeller."""
    probability_a = 1.0 / (1.0 + np.exp(-(np.asarray(reward_a) - np.asarray(reward_b)) / temperature))
    return (rng.uniform(size=probability_a.shape) < probability_a).astype(np.int64)


# ----------------------------------------------------------------------------- one replication


def win_rate(prompts, policy_responses, reference_responses) -> tuple[float, float]:
    policy_reward = true_reward(prompts, policy_responses)
    reference_reward = true_reward(prompts, reference_responses)
    wins = (policy_reward > reference_reward) + 0.5 * (policy_reward == reference_reward)
    return float(wins.mean()), float(policy_reward.mean())


def auc(scores: np.ndarray, positives: np.ndarray) -> float:
    """Area under the ROC curve by the rank-sum formula (ties get half credit)."""
    positives = positives.astype(bool)
    if positives.all() or not positives.any():
        return float("nan")
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    num_positive, num_negative = positives.sum(), (~positives).sum()
    return float(
        (ranks[positives].sum() - num_positive * (num_positive + 1) / 2) / (num_positive * num_negative)
    )


def pairs_from_labels(labels: pd.DataFrame, weight=None, eps=None):
    """The jaxpref -> DPO hand-off: label table -> prompt/chosen/rejected -> token pairs."""
    frame = preference_frame(labels, weight=weight, eps=eps)
    return encode_pairs(
        frame["prompt"].tolist(),
        frame["chosen"].tolist(),
        frame["rejected"].tolist(),
        weights=frame["weight"].to_numpy(),
        eps=frame["eps"].to_numpy(),
        pad_to_multiple=2,
    )


def run_seed(seed: int, config: ExperimentConfig, log) -> list[dict]:
    """One seed: reference, generated pairs and evaluation set, shared by every P_eta family."""
    key = jax.random.key(seed)
    reference_key, data_key, eta_key, eval_key, train_key = jax.random.split(key, 5)
    rng = np.random.default_rng(seed)
    started = time.time()
    reference = train_reference(reference_key, config, rng)

    def responses_of_both(key, prompts):
        key_a, key_b = jax.random.split(key)
        return (
            generate(key_a, reference, prompts, config, config.temperature_a),
            generate(key_b, reference, prompts, config, config.temperature_b),
        )

    # The gap mu under the true reward, by Monte Carlo.
    mu_prompts = random_prompts(rng, config.num_mu_pairs)
    mu_a, mu_b = responses_of_both(jax.random.fold_in(data_key, 0), mu_prompts)
    mu_reward_a, mu_reward_b = true_reward(mu_prompts, mu_a), true_reward(mu_prompts, mu_b)
    # mu is the chance that an attentive label picks A: the model jaxpref fits (docs/model.md).
    if config.attentive_labels == "bradley_terry":
        mu = float(np.mean(1.0 / (1.0 + np.exp(-(mu_reward_a - mu_reward_b) / config.preference_temperature))))
    else:
        mu = float(np.mean((mu_reward_a > mu_reward_b) + 0.5 * (mu_reward_a == mu_reward_b)))

    # The pairs users will label, with their attentive (true-reward) preference.
    num_labels = config.num_users * config.labels_per_user
    prompts = random_prompts(rng, num_labels)
    response_a, response_b = responses_of_both(jax.random.fold_in(data_key, 1), prompts)
    reward_a, reward_b = true_reward(prompts, response_a), true_reward(prompts, response_b)
    if config.attentive_labels == "bradley_terry":
        preference = bradley_terry_preference(rng, reward_a, reward_b, config.preference_temperature)
    else:
        preference = attentive_preference(rng, reward_a, reward_b)

    # Clean held-out pairs for early stopping; fixed evaluation prompts and reference samples.
    heldout_prompts = random_prompts(rng, config.num_heldout_pairs)
    heldout_a, heldout_b = responses_of_both(jax.random.fold_in(data_key, 2), heldout_prompts)
    heldout_labels = pd.DataFrame(
        {
            "user": 0,
            "prompt": list(heldout_prompts),
            "response_a": list(heldout_a),
            "response_b": list(heldout_b),
            "label": attentive_preference(
                rng, true_reward(heldout_prompts, heldout_a), true_reward(heldout_prompts, heldout_b)
            ),
        }
    )
    heldout_pairs = pairs_from_labels(heldout_labels)
    heldout_reference = [
        sequence_log_probs_of_model(reference, heldout_pairs.chosen_tokens, heldout_pairs.chosen_mask),
        sequence_log_probs_of_model(reference, heldout_pairs.rejected_tokens, heldout_pairs.rejected_mask),
    ]
    eval_prompts = random_prompts(rng, config.num_eval_prompts)
    policy_sample_key, reference_sample_key = jax.random.split(eval_key)
    reference_responses = generate(reference_sample_key, reference, eval_prompts, config)

    def evaluate(step, policy):
        del step
        # The same sampling key for every arm and step: common random numbers pair the arms.
        responses = generate(policy_sample_key, policy, eval_prompts, config)
        rate, reward = win_rate(eval_prompts, responses, reference_responses)
        accuracy = float(heldout_accuracy(policy, heldout_pairs, *heldout_reference))
        return {"win_rate": rate, "mean_reward": reward, "heldout_accuracy": accuracy}

    results = []
    for family_index, family in enumerate(config.families):
        # Users label the same pairs under each P_eta (docs/model.md): attentive with probability eta_j.
        family_rng = np.random.default_rng([seed, family_index])
        user = np.repeat(np.arange(config.num_users), config.labels_per_user)
        eta = np.asarray(
            sample_eta(jax.random.fold_in(eta_key, family_index), config.num_users, P_ETA[family])
        )
        attentive = family_rng.uniform(size=num_labels) < eta[user]
        label = np.where(attentive, preference, family_rng.integers(0, 2, size=num_labels))
        data = pd.DataFrame(
            {
                "user": user,
                "label": label,
                "attentive": attentive,
                "prompt": list(prompts),
                "response_a": list(response_a),
                "response_b": list(response_b),
            }
        )
        result = {"seed": seed, "family": family, "mu": mu, "num_labels": num_labels}
        result.update(run_arms(data, eta, mu, family, seed, config, reference, train_key, evaluate, log))
        reference_win, reference_reward = win_rate(
            eval_prompts, generate(policy_sample_key, reference, eval_prompts, config), reference_responses
        )
        result["reference"] = {"win_rate": reference_win, "mean_reward": reference_reward}
        result["seconds"] = time.time() - started
        results.append(result)
    return results


def train_with_trl(reference, frame: pd.DataFrame, loss_type: str, config: ExperimentConfig, seed: int, evaluate):
    """The same arm through TRL: the reference as a transformers GPT-2, WeightedDPOTrainer on the
    token ids, evaluated (back in JAX, same sampling keys) every ``eval_every`` steps."""
    import tempfile

    import datasets
    import tokenizers
    import torch
    import transformers
    from trl import DPOConfig

    from jaxpref.dpo.model import load_hf_gpt2, save_hf_gpt2
    from jaxpref.dpo.trl_trainer import WeightedDPOTrainer

    def as_ids(column):
        return [np.asarray(value).astype(int).tolist() for value in frame[column]]

    data = datasets.Dataset.from_dict(
        {
            "prompt_ids": as_ids("prompt"),
            "chosen_ids": as_ids("chosen"),
            "rejected_ids": as_ids("rejected"),
            "weight": frame["weight"].tolist(),
            "eps": frame["eps"].tolist(),
        }
    )
    # TRL wants a tokenizer for its pad token only: the data are token ids already.
    vocabulary = {str(index): index for index in range(NUM_DIGITS + 1)}
    backend = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocabulary, unk_token="0"))
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="0", eos_token="0")
    curve = []
    with tempfile.TemporaryDirectory() as directory:
        save_hf_gpt2(reference, directory)
        torch.manual_seed(seed)
        policy = transformers.GPT2LMHeadModel.from_pretrained(directory)

        class Evaluate(transformers.TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step % config.eval_every == 0 or state.global_step == config.dpo_steps:
                    policy.save_pretrained(os.path.join(directory, "policy"), safe_serialization=True)
                    jax_policy = load_hf_gpt2(os.path.join(directory, "policy"))
                    curve.append(dict(evaluate(state.global_step, jax_policy), step=state.global_step))

        args = DPOConfig(
            output_dir=os.path.join(directory, "trl"), beta=config.beta, learning_rate=config.learning_rate,
            warmup_steps=config.warmup_steps, lr_scheduler_type="constant_with_warmup", weight_decay=0.0,
            max_grad_norm=1.0, per_device_train_batch_size=config.batch_size, max_steps=config.dpo_steps,
            seed=seed, use_cpu=True, bf16=False, report_to="none", save_strategy="no", disable_tqdm=True,
            logging_steps=config.eval_every, dataloader_drop_last=True,
        )
        trainer = WeightedDPOTrainer(
            policy, args=args, train_dataset=data, processing_class=tokenizer, loss_type=loss_type,
            callbacks=[Evaluate()],
        )
        trainer.train()
    return curve


def run_arms(data, eta, mu, family, seed, config, reference, train_key, evaluate, log) -> dict:
    """jaxpref's EM on the labels, then DPO on every arm."""
    model = AttentivenessEM(family=EM_FAMILY[family], mu=mu, seed=seed).fit(data)
    labels, users = model.labels_, model.users_
    # A user's marginal flip rate (1 - E[eta_j | data]) / 2 does not depend on the label's
    # direction, unlike the per-label posterior (docs/dpo.md).
    labels = labels.assign(user_flip_rate=(1.0 - labels["eta_mean"]) / 2.0)
    truly_attentive_user = eta >= 0.5
    label_user = labels["user"].to_numpy()

    def filter_quality(keep_user):
        kept = int(keep_user.sum())
        hits = int((keep_user & truly_attentive_user).sum())
        return {
            "precision": hits / max(kept, 1),
            "recall": hits / max(int(truly_attentive_user.sum()), 1),
            "users_kept": kept,
        }

    def kept_by(threshold, statistic="eta_map"):
        return labels[(users[statistic].to_numpy() >= threshold)[label_user]]

    arms = {
        "all_labels": (labels, None, None, "sigmoid"),
        "filter": (kept_by(config.main_threshold), None, None, "sigmoid"),
        "soft_label_weights": (labels, "label_attentive", None, "sigmoid"),
        "soft_user_weights": (labels, "eta_mean", None, "sigmoid"),
        "cdpo_label_flip": (labels, None, "flip_rate", "conservative"),
        "cdpo_user_flip": (labels, None, "user_flip_rate", "conservative"),
        # rDPO divides by 1 - 2 eps; the loss caps flip rates at jaxpref.dpo.losses.ROBUST_MAX_EPS.
        "rdpo_label_flip": (labels, None, "flip_rate", "robust"),
        "rdpo_user_flip": (labels, None, "user_flip_rate", "robust"),
        "oracle_attentive": (labels[labels["attentive"]], None, None, "sigmoid"),
    }
    # The sweep thresholds the posterior mean: MAP eta takes only the two support points under
    # a two-point fit, so a sweep of the MAP rule would repeat one arm.
    for threshold in config.thresholds:
        arms[sweep_arm(threshold)] = (kept_by(threshold, "eta_mean"), None, None, "sigmoid")

    result = {
        "em_params": {k: v for k, v in model.params_.items() if k != "eta_grid"},
        "filter_quality": filter_quality(users["eta_map"].to_numpy() >= config.main_threshold),
        "user_auc_eta_mean": auc(users["eta_mean"].to_numpy(), truly_attentive_user),
        "label_auc_label_attentive": auc(
            labels["label_attentive"].to_numpy(), labels["attentive"].to_numpy()
        ),
        "sweep_quality": {
            f"{t:g}": filter_quality(users["eta_mean"].to_numpy() >= t) for t in config.thresholds
        },
        "arms": {},
    }
    if config.arms:
        arms = {name: arm for name, arm in arms.items() if name in {"all_labels", *config.arms}}
    for name, (arm_labels, weight, eps, loss_type) in arms.items():
        if len(arm_labels) < config.batch_size:
            # e.g. no user's MAP eta reaches a high threshold under a Beta P_eta
            result["arms"][name] = {"num_pairs": len(arm_labels), "skipped": "fewer pairs than one batch"}
            log(f"  {family} seed {seed} {name:<20} skipped: {len(arm_labels)} pairs")
            continue
        pairs = pairs_from_labels(arm_labels, weight=weight, eps=eps)
        train_config = TrainConfig(
            beta=config.beta,
            loss_type=loss_type,
            learning_rate=config.learning_rate,
            warmup_steps=config.warmup_steps,
            batch_size=config.batch_size,
            num_steps=config.dpo_steps,
            log_every=config.eval_every,
            eval_every=config.eval_every,
            progress=False,
        )
        curve = (
            DPOTrainer(reference, config=train_config).fit(train_key, pairs, eval_hook=evaluate).evaluations
        )
        record_arm(result, name, curve, pairs.num_pairs, config, family, seed, log)
        if name in config.trl_arms:
            frame = preference_frame(arm_labels, weight=weight, eps=eps)
            trl_curve = train_with_trl(reference, frame, loss_type, config, seed, evaluate)
            record_arm(result, f"trl_{name}", trl_curve, pairs.num_pairs, config, family, seed, log)
    return result


def record_arm(result, name, curve, num_pairs, config, family, seed, log) -> None:
    """Store an arm's curve with its last-step and early-stopped evaluations."""
    best = max(curve, key=lambda entry: (entry["heldout_accuracy"], -entry["step"]))
    result["arms"][name] = {
        "num_pairs": num_pairs,
        "epochs": config.dpo_steps * config.batch_size / num_pairs,
        "final": curve[-1],
        "early_stopped": best,
        "curve": curve,
    }
    log(
        f"  {family} seed {seed} {name:<20} pairs {num_pairs:5d} win last "
        f"{curve[-1]['win_rate']:.3f} early {best['win_rate']:.3f} (step {best['step']})"
    )


# ----------------------------------------------------------------------------- summaries


MAIN_ARMS = (
    "all_labels",
    "filter",
    "soft_label_weights",
    "soft_user_weights",
    "cdpo_label_flip",
    "cdpo_user_flip",
    "rdpo_label_flip",
    "rdpo_user_flip",
    "oracle_attentive",
)


def curve_metrics(curve: list[dict], reference_win_rate: float) -> dict:
    """Area under the win-rate curve, steps to reach WIN_TARGET, and the plateau.

    The curve starts at step 0 with the reference's own win rate (the policy is the reference
    there); the area is the trapezoid mean win rate over [0, last step]; the plateau is the mean
    of the last two evaluations; steps to the target is the first evaluation step at or above it
    (NaN when never reached).
    """
    steps = np.array([0] + [entry["step"] for entry in curve], dtype=np.float64)
    wins = np.array([reference_win_rate] + [entry["win_rate"] for entry in curve])
    reached = np.nonzero(wins[1:] >= WIN_TARGET)[0]
    area = float(np.sum((wins[1:] + wins[:-1]) / 2 * np.diff(steps)) / steps[-1])
    return {
        "auc": area,
        "plateau": float(wins[-2:].mean()),
        "steps_to_target": float(steps[1:][reached[0]]) if reached.size else float("nan"),
    }


def summarise(replications: list[dict], config: ExperimentConfig) -> dict:
    """Mean, sd and paired differences against all-labels, per family, arm and stopping rule."""
    summary = {}
    for family in config.families:
        runs = [r for r in replications if r["family"] == family]
        table = {
            "reference": {
                "win_rate": [r["reference"]["win_rate"] for r in runs],
                "mean_reward": [r["reference"]["mean_reward"] for r in runs],
            }
        }
        family_summary = {
            "mu": float(np.mean([r["mu"] for r in runs])),
            "precision": float(np.mean([r["filter_quality"]["precision"] for r in runs])),
            "recall": float(np.mean([r["filter_quality"]["recall"] for r in runs])),
            "user_auc": float(np.mean([r["user_auc_eta_mean"] for r in runs])),
            "label_auc": float(np.mean([r["label_auc_label_attentive"] for r in runs])),
            "reference": {k: _mean_sd(v) for k, v in table["reference"].items()},
            "arms": {},
        }
        for arm in runs[0]["arms"]:
            trained = [r for r in runs if "skipped" not in r["arms"][arm]]
            entry = {
                "num_pairs": float(np.mean([r["arms"][arm]["num_pairs"] for r in runs])),
                "epochs": float(np.mean([r["arms"][arm]["epochs"] for r in trained])) if trained else None,
                "seeds_trained": len(trained),
            }
            for rule in ("final", "early_stopped"):
                wins = np.array([r["arms"][arm][rule]["win_rate"] for r in trained])
                baseline = np.array([r["arms"]["all_labels"][rule]["win_rate"] for r in trained])
                entry[rule] = {
                    "win_rate": _mean_sd(wins),
                    "mean_reward": _mean_sd([r["arms"][arm][rule]["mean_reward"] for r in trained]),
                    "minus_all_labels": _mean_sd(wins - baseline),
                    "step": _mean_sd([r["arms"][arm][rule]["step"] for r in trained]),
                }
            if trained:
                metrics = [curve_metrics(r["arms"][arm]["curve"], r["reference"]["win_rate"]) for r in trained]
                baseline_metrics = [
                    curve_metrics(r["arms"]["all_labels"]["curve"], r["reference"]["win_rate"]) for r in trained
                ]
                entry["curve"] = {}
                for name in ("auc", "plateau"):
                    values = np.array([m[name] for m in metrics])
                    entry["curve"][name] = _mean_sd(values)
                    entry["curve"][name + "_minus_all_labels"] = _mean_sd(
                        values - np.array([m[name] for m in baseline_metrics])
                    )
                reach = np.array([m["steps_to_target"] for m in metrics])
                entry["curve"]["steps_to_target"] = {
                    "mean_of_reached": float(np.nanmean(reach)) if np.isfinite(reach).any() else None,
                    "reached": int(np.isfinite(reach).sum()),
                    "seeds": len(metrics),
                }
                entry["curve"]["mean_curve"] = {
                    "step": [0] + [e["step"] for e in trained[0]["arms"][arm]["curve"]],
                    "win_rate": np.mean(
                        [[r["reference"]["win_rate"]] + [e["win_rate"] for e in r["arms"][arm]["curve"]] for r in trained],
                        axis=0,
                    ).tolist(),
                }
            family_summary["arms"][arm] = entry
        summary[family] = family_summary
    return summary


def _mean_sd(values) -> dict:
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return {"mean": float("nan"), "sd": float("nan"), "ci95": float("nan"), "n": 0}
    sd = float(values.std(ddof=1)) if values.size > 1 else 0.0
    # 95% t interval half-width of the mean over seeds.
    from scipy.stats import t as student_t

    half_width = (
        float(student_t.ppf(0.975, values.size - 1) * sd / np.sqrt(values.size)) if values.size > 1 else 0.0
    )
    return {"mean": float(values.mean()), "sd": sd, "ci95": half_width, "n": int(values.size)}


def sweep_arm(threshold: float) -> str:
    return f"sweep_eta_mean_{threshold:g}"


def write_plot(summary: dict, replications: list[dict], config: ExperimentConfig, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = list(summary)
    rows = 3 if config.thresholds else 2  # the third row plots the threshold sweep
    figure, axes = plt.subplots(rows, len(families), figsize=(6 * len(families), 4 * rows), squeeze=False)
    for column, family in enumerate(families):
        arms = summary[family]["arms"]
        shown = [arm for arm in (*MAIN_ARMS, *(f"trl_{a}" for a in MAIN_ARMS)) if arm in arms]
        names = ["reference", *shown]
        axis = axes[1, column]
        for index, arm in enumerate(shown):
            if "curve" in arms[arm] and "mean_curve" in arms[arm]["curve"]:
                mean_curve = arms[arm]["curve"]["mean_curve"]
                style = "-" if index < 6 else "--"
                axis.plot(mean_curve["step"], mean_curve["win_rate"], style, marker=".", label=arm)
        axis.axhline(WIN_TARGET, color="grey", lw=0.8, ls=":")
        axis.set_xlabel("DPO step")
        axis.set_ylabel("win rate vs reference, mean over seeds")
        axis.set_title(f"{family}: win rate against steps")
        axis.legend(fontsize=6)
        axis = axes[0, column]
        for offset, rule in ((-0.2, "final"), (0.2, "early_stopped")):
            means = [summary[family]["reference"]["win_rate"]["mean"]] + [
                arms[a][rule]["win_rate"]["mean"] for a in shown
            ]
            errors = [summary[family]["reference"]["win_rate"]["sd"]] + [
                arms[a][rule]["win_rate"]["sd"] for a in shown
            ]
            axis.bar(
                np.arange(len(names)) + offset,
                means,
                width=0.4,
                yerr=errors,
                capsize=3,
                label="last step" if rule == "final" else "early stopped (clean held-out)",
            )
        axis.set_xticks(np.arange(len(names)), [n.replace("_", "\n") for n in names], fontsize=7)
        axis.axhline(0.5, color="grey", lw=0.8, ls="--")
        axis.set_ylabel("win rate vs reference (true reward), ± sd over seeds")
        axis.set_ylim(0.0, 1.05)
        axis.set_title(f"P_eta = {family}, mu = {summary[family]['mu']:.2f}")
        axis.legend(fontsize=7)
        thresholds = list(config.thresholds)
        if not thresholds:
            continue
        axis = axes[2, column]
        for rule, style in (("final", "-o"), ("early_stopped", "--s")):
            means = [arms[sweep_arm(t)][rule]["win_rate"]["mean"] for t in thresholds]
            errors = [arms[sweep_arm(t)][rule]["win_rate"]["sd"] for t in thresholds]
            axis.errorbar(thresholds, means, yerr=errors, fmt=style, capsize=3, label=f"filter ({rule})")
        for arm, color in (("all_labels", "C3"), ("oracle_attentive", "C2")):
            axis.axhline(
                arms[arm]["final"]["win_rate"]["mean"], color=color, lw=1, label=f"{arm} (last step)"
            )
        twin = axis.twinx()
        kept = [
            np.mean(
                [
                    r["arms"][sweep_arm(t)]["num_pairs"] / r["num_labels"]
                    for r in replications
                    if r["family"] == family
                ]
            )
            for t in thresholds
        ]
        twin.plot(thresholds, kept, ":", color="grey")
        twin.set_ylabel("share of labels kept (dotted)")
        axis.set_xlabel("threshold on posterior mean eta")
        axis.set_ylabel("win rate vs reference, ± sd over seeds")
        axis.set_ylim(0.5, 1.0)
        axis.legend(fontsize=7)
    figure.tight_layout()
    temporary = f"{path}.tmp{os.getpid()}"
    figure.savefig(temporary, dpi=120, format="png")
    os.replace(temporary, path)
    plt.close(figure)


def write_markdown(summary: dict, metadata: dict, config: ExperimentConfig, path: str) -> None:
    setup = (
        f"Device: {metadata['device']}; {len(config.seeds)} seeds; {config.num_users} users x "
        f"{config.labels_per_user} labels; DPO beta {config.beta}, {config.dpo_steps} steps, batch "
        f"{config.batch_size}, lr {config.learning_rate}; {config.num_eval_prompts} evaluation "
        f"prompts; attentive labels: {config.attentive_labels}; run time {metadata['seconds']:.0f} s."
    )
    legend = (
        "Win rate against the reference under the true reward (ties 1/2): mean ± sd over seeds "
        "[95% CI half-width]; 'Δ all' is the paired difference to DPO on all labels. 'last' = "
        "after the fixed number of steps; 'early' = at the evaluation step with the best "
        "implicit-reward accuracy on a clean held-out preference set (same rule for every arm)."
    )
    # Each rule's reward sits beside its own win rate: "last" and "early" are different models.
    header = (
        "| arm | pairs | epochs | win (last) | Δ all (last) | reward (last) | win (early) | Δ all (early) "
        "| reward (early) |"
    )
    lines = [
        f"# DPO on user labels filtered by attentiveness ({metadata['mode']} mode)",
        "",
        setup,
        "",
        legend,
    ]
    for family, block in summary.items():
        title = (
            f"## P_eta = {family}  (mu = {block['mu']:.3f}; filter MAP eta >= {config.main_threshold}: "
            f"precision {block['precision']:.2f}, recall {block['recall']:.2f}; AUC of E[eta] for "
            f"eta >= 0.5: {block['user_auc']:.2f}; label AUC of P(z=1|data): {block['label_auc']:.2f})"
        )
        reference = block["reference"]
        lines += ["", title, "", header, "|---|---|---|---|---|---|---|---|---|"]
        lines.append(
            f"| reference | – | – | {_format(reference['win_rate'])} | – | "
            f"{reference['mean_reward']['mean']:.3f} | – | – | – |"
        )
        for arm, entry in block["arms"].items():
            if not entry["seeds_trained"]:
                lines.append(
                    f"| {arm} | {entry['num_pairs']:.0f} | – | skipped: fewer pairs than a batch ||||||"
                )
                continue
            last, early = entry["final"], entry["early_stopped"]
            cells = [
                arm,
                f"{entry['num_pairs']:.0f}",
                f"{entry['epochs']:.1f}",
                _format(last["win_rate"]),
                _signed(last["minus_all_labels"]),
                f"{last['mean_reward']['mean']:.3f}",
                _format(early["win_rate"]),
                _signed(early["minus_all_labels"]),
                f"{early['mean_reward']['mean']:.3f}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
        lines += [
            "",
            f"Win rate against steps (curves in the PNG): area under the curve (mean win rate over "
            f"steps 0..{config.dpo_steps}, step 0 = the reference), plateau (mean of the last two "
            f"evaluations: a plateau only where the curves have flattened, see the PNG), first evaluation step with win rate >= {WIN_TARGET} (mean over the seeds "
            "that reach it); Δ = paired difference to DPO on all labels, mean ± sd over seeds.",
            "",
            "| arm | AUC | Δ AUC | plateau | Δ plateau | steps to 0.9 (seeds reaching) |",
            "|---|---|---|---|---|---|",
        ]
        for arm, entry in block["arms"].items():
            if "curve" not in entry:
                continue
            curve, reach = entry["curve"], entry["curve"]["steps_to_target"]
            reached = "–" if reach["mean_of_reached"] is None else f"{reach['mean_of_reached']:.0f}"
            lines.append(
                f"| {arm} | {_format(curve['auc'])} | {_signed(curve['auc_minus_all_labels'])} | "
                f"{_format(curve['plateau'])} | {_signed(curve['plateau_minus_all_labels'])} | "
                f"{reached} ({reach['reached']}/{reach['seeds']}) |"
            )
    _write_atomically(path, "\n".join(lines) + "\n")


def _write_atomically(path: str, text: str) -> None:
    """Write to a temporary file beside ``path``, then rename: no half-written outputs."""
    temporary = f"{path}.tmp{os.getpid()}"
    with open(temporary, "w") as handle:
        handle.write(text)
    os.replace(temporary, path)


def _format(stats: dict) -> str:
    return f"{stats['mean']:.3f} ± {stats['sd']:.3f} [{stats['ci95']:.3f}]"


def _signed(stats: dict) -> str:
    return f"{stats['mean']:+.3f} ± {stats['sd']:.3f}"


def main(
    argv=None, config: ExperimentConfig | None = None, output_directory: str = RESULTS_DIRECTORY
) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CPU-sized run (a few minutes on 2 cores)")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (default: mode's)")
    parser.add_argument("--output-directory", default=output_directory, help="where results go")
    parser.add_argument("--from-json", help="re-draw the PNG and markdown of a saved run's JSON")
    parser.add_argument("--steps", type=int, default=None, help="DPO steps per arm (default: mode's)")
    parser.add_argument(
        "--families", default=None, help=f"comma-separated P_eta settings among {sorted(P_ETA)} (default: mode's)"
    )
    parser.add_argument(
        "--attentive-labels", choices=ATTENTIVE_LABELS, default=None,
        help="argmax: attentive labels follow the true reward; bradley_terry: drawn from P(A > B)",
    )
    parser.add_argument("--no-sweep", action="store_true", help="skip the threshold sweep arms")
    parser.add_argument("--arms", default=None, help=f"comma-separated subset of {list(MAIN_ARMS)}")
    parser.add_argument(
        "--trl-arms", default=None, help="comma-separated arms also trained through TRL (needs jaxpref[hf])"
    )
    parser.add_argument("--tag", default="", help="suffix of the output file names (keeps runs apart)")
    arguments = parser.parse_args(argv)
    output_directory = arguments.output_directory
    if arguments.from_json:
        return render(arguments.from_json)
    mode = "quick" if arguments.quick else "full"
    if config is None:
        config = ExperimentConfig.quick() if arguments.quick else ExperimentConfig()
    if arguments.seeds is not None:
        config = dataclasses.replace(config, seeds=tuple(range(arguments.seeds)))
    if arguments.steps is not None:
        config = dataclasses.replace(config, dpo_steps=arguments.steps)
    if arguments.families is not None:
        config = dataclasses.replace(config, families=_listed(parser, "--families", arguments.families, P_ETA))
    if arguments.attentive_labels is not None:
        config = dataclasses.replace(config, attentive_labels=arguments.attentive_labels)
    if arguments.no_sweep:
        config = dataclasses.replace(config, thresholds=())
    if arguments.arms is not None:
        config = dataclasses.replace(config, arms=_listed(parser, "--arms", arguments.arms, MAIN_ARMS))
    if arguments.trl_arms is not None:
        config = dataclasses.replace(
            config, trl_arms=_listed(parser, "--trl-arms", arguments.trl_arms, MAIN_ARMS)
        )
    from rich.console import Console
    from rich.progress import Progress

    console = Console(stderr=True)
    device = f"{jax.devices()[0].device_kind} ({jax.default_backend()}, {jax.device_count()} device(s))"
    console.print(f"[bold]DPO alignment experiment[/bold], {mode} mode on {device}")
    started = time.time()
    replications = []
    with Progress(console=console) as progress:
        task = progress.add_task("seeds", total=len(config.seeds))
        for seed in config.seeds:
            replications.extend(run_seed(seed, config, progress.console.print))
            progress.advance(task)
    summary = summarise(replications, config)
    metadata = {
        "mode": mode,
        "device": device,
        "seconds": time.time() - started,
        "jax": jax.__version__,
        "python": platform.python_version(),
        "config": dataclasses.asdict(config),
    }
    os.makedirs(output_directory, exist_ok=True)
    path = os.path.join(output_directory, f"dpo_alignment_{mode}{arguments.tag}.json")
    _write_atomically(
        path, json.dumps({"metadata": metadata, "summary": summary, "replications": replications}, indent=1)
    )
    results = render(path)
    console.print(f"wrote {path[:-5]}.json/.png/.md in {metadata['seconds']:.0f} s")
    return results


def _listed(parser, flag: str, text: str, allowed) -> tuple[str, ...]:
    """A comma-separated flag value, each item checked against ``allowed``."""
    chosen = tuple(text.split(","))
    unknown = sorted(set(chosen) - set(allowed))
    if unknown:
        parser.error(f"{flag}: unknown {unknown}; choose among {list(allowed)}")
    return chosen


def render(json_path: str) -> dict:
    """Write the PNG and markdown next to a results JSON (also for re-drawing a saved run)."""
    with open(json_path) as handle:
        results = json.load(handle)
    fields = results["metadata"]["config"]
    config = ExperimentConfig(**{name: tuple(v) if isinstance(v, list) else v for name, v in fields.items()})
    stem = json_path.removesuffix(".json")
    # Summarised again from the replications, so that runs saved before a summary statistic
    # existed (e.g. the curve metrics) get it too.
    summary = summarise(results["replications"], config)
    write_plot(summary, results["replications"], config, stem + ".png")
    write_markdown(summary, results["metadata"], config, stem + ".md")
    return results


if __name__ == "__main__":
    main()
