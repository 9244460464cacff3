"""The arena fit for people: leaderboard with confidence intervals, voters' attentiveness, vote weights.

`fit_leaderboard` validates the votes, builds the sparse statistics, runs the certified EM of
`jaxpref.arena.model` in float64 and returns an `ArenaResult` with

- ``leaderboard``: per model, theta (logit scale, sum-to-zero anchor), Elo score
  ``1000 + 400 / ln(10) * theta``, rank (1 = strongest), standard errors from the observed
  information and the voter-clustered sandwich, Wald intervals from the sandwich, and
  percentile intervals of a voter bootstrap when asked for;
- ``voters``: per voter, the core's posterior summaries (`jaxpref.core.posterior.user_posterior`);
- `vote_weights`: each vote's P(attentive | data), the weight handed to DPO.

Standard errors cover theta and P_eta's parameters jointly (the inverse information of all of them,
restricted to theta), so the uncertainty in who is attentive widens theta's intervals. The
bootstrap resamples voters (multinomial voter weights) and refits every replicate by warm-started
EM and Newton steps, all replicates in one jitted ``vmap``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from scipy.stats import norm

from jaxpref.arena.data import ArenaVotes, PairStats, load_votes, pad_stats, pair_stats
from jaxpref.arena.model import (
    ArenaConfig,
    ArenaFit,
    ArenaState,
    fit_arena,
    newton_coordinates,
    newton_step,
    objective,
    posterior,
    run_em,
    state_from,
)
from jaxpref.core.families import REGISTRY, make_family
from jaxpref.core.posterior import per_label_attentiveness, user_posterior
from jaxpref.errors import DataError

__all__ = ["ELO_SCALE", "ELO_OFFSET", "ARENA_FAMILIES", "RANDOM_OR_ATTENTIVE", "ArenaResult", "fit_leaderboard", "theta_covariances",
           "bootstrap_theta"]

#: Elo points per logit (400 points = a factor 10 in odds), and the score of an average model.
ELO_SCALE = 400.0 / math.log(10.0)
ELO_OFFSET = 1000.0
#: The default two_point support: each voter either reads (eta = 1) or answers at random (eta = 0).
RANDOM_OR_ATTENTIVE = (0.0, 1.0)
#: P_eta families offered for arenas; ``"none"`` is plain Bradley-Terry (every voter attentive).
ARENA_FAMILIES = ("two_point", "beta", "point", "none")


@dataclasses.dataclass(frozen=True)
class ArenaResult:
    """A fitted arena.

    Attributes:
        leaderboard: one row per model, sorted by rank (see the module docstring).
        voters: one row per voter: ``voter``, ``num_votes``, ``eta_mean``, ``eta_map``, ``eta_sd``,
            ``prob_attentive``.
        fit: the raw `jaxpref.arena.model.ArenaFit` (state, objective, certificate, trace).
        votes: the validated votes.
        eta_grid, eta_weights: P_eta's nodes and probabilities.
        bootstrap: ``(num_replicates, num_models)`` bootstrap thetas (models in sorted-name order),
            or None.
    """

    leaderboard: pd.DataFrame
    voters: pd.DataFrame
    fit: ArenaFit
    votes: ArenaVotes
    eta_grid: np.ndarray
    eta_weights: np.ndarray
    bootstrap: np.ndarray | None

    @property
    def converged(self) -> bool:
        return bool(self.fit.converged)

    def vote_weights(self) -> pd.DataFrame:
        """The votes (every input column, a copy) with ``attentive_weight`` = P(the vote was attentive
        | data) and the voter's ``eta_mean``: weights for weighted DPO, or a filter.

        A tie is half a win for each side, so its weight is the mean of the two outcomes' weights.
        """
        votes, state = self.votes, self.fit.state
        theta = np.asarray(state.theta)
        with jax.enable_x64(True):
            _, log_resp = posterior(state, _device_stats(votes))
            log_resp = log_resp[: votes.num_voters]
            p = 1.0 / (1.0 + np.exp(-(theta[votes.model_a_index] - theta[votes.model_b_index])))
            log_resp, grid = np.asarray(log_resp), np.asarray(state.family.eta_grid)
            if_a, if_b = (per_label_attentiveness(log_resp, grid, votes.voter_index, p, np.full(p.shape, label))
                          for label in (1, 0))
        out = votes.frame.copy()
        out["attentive_weight"] = votes.score_a * if_a + (1.0 - votes.score_a) * if_b
        out["eta_mean"] = self.voters["eta_mean"].to_numpy()[votes.voter_index]
        return out


@functools.partial(jax.jit, static_argnames=("config",))
def theta_covariances(state: ArenaState, stats: PairStats, config: ArenaConfig) -> tuple[jax.Array, jax.Array]:
    """``(observed, sandwich)`` ``(K, K)`` covariances of theta under the sum-to-zero anchor.

    Observed: ``(-H)^-1`` of the marginal log-likelihood in (theta without its last entry, P_eta's
    unconstrained parameters). Sandwich: ``H^-1 (sum_j m_j s_j s_j^T) H^-1`` with per-voter scores
    ``s_j``, robust to a misspecified P_eta and to dependence between one voter's votes.
    """
    coordinates = newton_coordinates(state, config)
    curvature = -jax.hessian(lambda x: objective(state_from(x, state, config), stats))(coordinates)
    # (num_voters, num_coordinates) per-voter scores.
    scores = jax.jacfwd(lambda x: posterior(state_from(x, state, config), stats)[0])(coordinates)
    meat = (scores * stats.multiplicity[:, None]).T @ scores
    inverse = jnp.linalg.pinv(curvature, hermitian=True)
    num_free = config.num_models - 1
    # theta = A x_free with A = [I; -1^T] (the last entry is minus the sum of the others).
    to_theta = jnp.concatenate([jnp.eye(num_free), -jnp.ones((1, num_free))])
    observed = inverse[:num_free, :num_free]
    sandwich = (inverse @ meat @ inverse)[:num_free, :num_free]
    return to_theta @ observed @ to_theta.T, to_theta @ sandwich @ to_theta.T


@functools.partial(jax.jit, static_argnames=("config", "num_replicates", "em_steps", "newton_steps"))
def bootstrap_theta(
    state: ArenaState, stats: PairStats, config: ArenaConfig, key: jax.Array, num_replicates: int,
    em_steps: int = 50, newton_steps: int = 3,
) -> jax.Array:
    """``(num_replicates, K)`` theta refitted on voters resampled with replacement.

    Each replicate reweights the voters by multinomial counts (as many draws as voters, each
    drawn with probability proportional to its multiplicity; padded voters never), starts from
    ``state`` (the full-data fit) and runs ``em_steps`` EM iterations and ``newton_steps`` safeguarded Newton steps; all replicates run
    in one ``vmap``.
    """
    num_slots = stats.multiplicity.shape[0]
    # Padded voters (multiplicity 0) are never drawn; as many draws count as there are real voters.
    num_real = jnp.sum(stats.multiplicity > 0)
    log_chance = jnp.where(stats.multiplicity > 0, jnp.log(jnp.maximum(stats.multiplicity, 1e-300)), -jnp.inf)

    def replicate(replicate_key):
        draws = jax.random.categorical(replicate_key, log_chance, shape=(num_slots,))
        counted = (jnp.arange(num_slots) < num_real).astype(stats.multiplicity.dtype)
        weights = jnp.zeros((num_slots,), stats.multiplicity.dtype).at[draws].add(counted)
        resampled = stats._replace(multiplicity=weights)
        refit, _ = run_em(state, resampled, config, em_steps)
        refit = jax.lax.fori_loop(0, newton_steps, lambda _, s: newton_step(s, resampled, config)[0], refit)
        return refit.theta

    return jax.vmap(replicate)(jax.random.split(key, num_replicates))


def _device_stats(votes: ArenaVotes) -> PairStats:
    """The votes' statistics, padded to bucket sizes (one compilation for similar sizes), as float64 JAX arrays."""
    return PairStats(*(jnp.asarray(field) for field in pad_stats(pair_stats(votes))))


def _arena_config(num_models: int, family: str, num_grid: int, gap_tol: float, max_rounds: int,
                  support: tuple[float, float] | None = None) -> ArenaConfig:
    if family not in ARENA_FAMILIES:
        raise DataError(f"family={family!r} is not offered for arenas: choose one of {', '.join(ARENA_FAMILIES)}")
    support = support if family in REGISTRY and REGISTRY[family].takes_support else None
    spec = None if family == "none" else make_family(family, num_grid=num_grid, support=support)
    return ArenaConfig(num_models=num_models, family=spec, gap_tol=gap_tol, max_rounds=max_rounds)


def fit_leaderboard(
    data: Any,
    family: str = "two_point",
    support: tuple[float, float] | None = RANDOM_OR_ATTENTIVE,
    num_grid: int = 32,
    bootstrap: int = 0,
    seed: int = 0,
    level: float = 0.95,
    threshold: float = 0.5,
    gap_tol: float = 1e-3,
    max_rounds: int = 200,
    **columns: str,
) -> ArenaResult:
    """Fits the arena: model strengths and voters' attentiveness together.

    Args:
        data: votes (`jaxpref.arena.data.load_votes` accepts: DataFrame, dict, parquet/CSV/JSONL path)
            or `ArenaVotes`.
        family: P_eta's family, ``two_point`` (default), ``beta``, ``point``, or ``none`` for plain
            Bradley-Terry (every voter attentive).
        support: the two_point family's nodes; default ``(0, 1)``: a voter reads (eta = 1) or clicks
            at random (eta = 0). None estimates them, which lets a common eta < 1 trade against a
            wider spread of theta: with few models the votes barely tell the two apart
            (docs/arena.md, "Identifiability").
        num_grid: grid size of the beta family.
        bootstrap: voter-bootstrap replicates (0: none).
        seed: seed of the bootstrap.
        level: confidence level of the intervals, in (0, 1).
        threshold: ``prob_attentive`` is P(eta >= threshold | data).
        gap_tol: certificate tolerance (nats).
        max_rounds: cap on certificate checks (each after 20 EM iterations).
        **columns: ``voter_column``, ``model_a_column``, ``model_b_column``, ``winner_column``.

    Returns:
        `ArenaResult`.

    Raises:
        DataError: bad votes or options, naming the column or argument.
    """
    if not (0.0 < level < 1.0):
        raise DataError(f"level={level!r} must lie in (0, 1), e.g. 0.95")
    if not isinstance(bootstrap, int) or bootstrap < 0:
        raise DataError(f"bootstrap={bootstrap!r} must be a whole number >= 0 (replicates)")
    votes = data if isinstance(data, ArenaVotes) else load_votes(data, **columns)
    config = _arena_config(votes.num_models, family, num_grid, gap_tol, max_rounds, support)
    with jax.enable_x64(True):
        stats = _device_stats(votes)
        fit = fit_arena(stats, config)
        observed, sandwich = (np.asarray(c) for c in theta_covariances(fit.state, stats, config))
        replicates = None
        if bootstrap:
            replicates = np.asarray(bootstrap_theta(fit.state, stats, config, jax.random.key(seed), bootstrap))
        _, log_resp = posterior(fit.state, stats)
        summaries = user_posterior(log_resp[: votes.num_voters], fit.state.family.eta_grid, jnp.asarray(threshold))
    voters = pd.DataFrame({
        "voter": votes.voter_ids,
        "num_votes": np.bincount(votes.voter_index, minlength=votes.num_voters),
        **{name: np.asarray(value, np.float64) for name, value in summaries._asdict().items()},
    })
    leaderboard = _leaderboard(votes, np.asarray(fit.state.theta), observed, sandwich, replicates, level)
    return ArenaResult(leaderboard, voters, fit, votes, np.asarray(fit.state.family.eta_grid),
                       np.exp(np.asarray(fit.state.family.log_weights)), replicates)


def _leaderboard(votes: ArenaVotes, theta: np.ndarray, observed: np.ndarray, sandwich: np.ndarray,
                 replicates: np.ndarray | None, level: float) -> pd.DataFrame:
    z = norm.ppf(0.5 + level / 2.0)
    se = np.sqrt(np.maximum(np.diag(sandwich), 0.0))
    games = np.bincount(votes.model_a_index, minlength=votes.num_models) + np.bincount(
        votes.model_b_index, minlength=votes.num_models)
    frame = pd.DataFrame({
        "model": votes.model_ids,
        "theta": theta,
        "elo": ELO_OFFSET + ELO_SCALE * theta,
        "se_observed": np.sqrt(np.maximum(np.diag(observed), 0.0)),
        "se_sandwich": se,
        "theta_lower": theta - z * se,
        "theta_upper": theta + z * se,
        "elo_lower": ELO_OFFSET + ELO_SCALE * (theta - z * se),
        "elo_upper": ELO_OFFSET + ELO_SCALE * (theta + z * se),
        "num_votes": games,
    })
    if replicates is not None:
        tail = 50.0 * (1.0 - level)
        frame["bootstrap_lower"] = np.percentile(replicates, tail, axis=0)
        frame["bootstrap_upper"] = np.percentile(replicates, 100.0 - tail, axis=0)
    frame["rank"] = frame["theta"].rank(ascending=False, method="min").astype(int)
    return frame.sort_values(["rank", "model"], kind="stable").reset_index(drop=True)
