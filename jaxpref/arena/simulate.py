"""Simulated arenas: Bradley-Terry models and voters of given attentiveness (for tests and studies)."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["simulate_arena"]


def simulate_arena(
    seed: int,
    num_models: int = 20,
    num_voters: int = 200,
    votes_per_voter: int = 20,
    random_share: float = 0.0,
    random_volume: float = 1.0,
    theta_scale: float = 1.0,
    tie_share: float = 0.0,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Votes of attentive voters (eta = 1) and random voters (eta = 0) on uniformly drawn pairs.

    Args:
        seed: NumPy seed.
        num_models: K; strengths theta ~ N(0, theta_scale^2), centred to sum to zero.
        num_voters: voters.
        votes_per_voter: votes of an attentive voter (each voter's count is Poisson around it, at least 1).
        random_share: fraction of voters who answer at random.
        random_volume: a random voter casts this many times more votes (heavy random voters > 1).
        theta_scale: spread of the true strengths.
        tie_share: chance that a vote is reported as a tie instead of its outcome.

    Returns:
        ``(votes, theta, eta)``: the votes in the arena schema (``judge``, ``model_a``, ``model_b``,
        ``winner``), true strengths ``(num_models,)`` indexed like the sorted model names
        ``m000, m001, ...``, and each voter's eta ``(num_voters,)`` (voter ``v0000`` first).
    """
    rng = np.random.default_rng(seed)
    theta = rng.normal(0.0, theta_scale, num_models)
    theta -= theta.mean()
    eta = (rng.random(num_voters) >= random_share).astype(np.float64)
    mean_votes = np.where(eta > 0, votes_per_voter, votes_per_voter * random_volume)
    counts = np.maximum(rng.poisson(mean_votes), 1)
    voter = np.repeat(np.arange(num_voters), counts)
    first = rng.integers(0, num_models, voter.shape[0])
    second = (first + rng.integers(1, num_models, voter.shape[0])) % num_models
    win_prob = 0.5 + eta[voter] * (1.0 / (1.0 + np.exp(-(theta[first] - theta[second]))) - 0.5)
    winner = np.where(rng.random(voter.shape[0]) < win_prob, "model_a", "model_b")
    winner = np.where(rng.random(voter.shape[0]) < tie_share, "tie", winner)
    names = np.asarray([f"m{k:03d}" for k in range(num_models)])
    votes = pd.DataFrame({
        "judge": np.asarray([f"v{j:04d}" for j in range(num_voters)])[voter],
        "model_a": names[first], "model_b": names[second], "winner": winner,
    })
    return votes, theta, eta
