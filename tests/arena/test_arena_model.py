"""The arena model against independent NumPy/SciPy references: plain Bradley-Terry, the marginal
likelihood vote by vote, vote weights, standard errors; EM monotonicity; better rank recovery."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.optimize import minimize
from scipy.special import expit, logsumexp
from scipy.stats import kendalltau

from jaxpref.arena import fit_leaderboard, load_votes, pair_stats, simulate_arena
from jaxpref.arena.data import PairStats, pad_stats
from jaxpref.arena.leaderboard import _arena_config
from jaxpref.arena.model import init_state, run_em


def _coded(frame):
    votes = load_votes(frame)
    return votes, votes.model_a_index, votes.model_b_index, votes.score_a


def numpy_bradley_terry(frame):
    """Plain BT MLE, vote by vote (a tie = half a win), sum-to-zero, by SciPy's BFGS."""
    votes, a, b, score = _coded(frame)
    num_models = votes.num_models

    def full(free):
        return np.append(free, -free.sum())

    def loss_and_grad(free):
        diff = (full(free)[a] - full(free)[b])
        loss = -np.sum(score * np.log(expit(diff)) + (1 - score) * np.log(expit(-diff)))
        residual = score - expit(diff)
        grad_full = -(np.bincount(a, residual, num_models) - np.bincount(b, residual, num_models))
        return loss, grad_full[:-1] - grad_full[-1]

    result = minimize(loss_and_grad, np.zeros(num_models - 1), jac=True, method="BFGS", options={"gtol": 1e-10})
    return full(result.x)


def numpy_marginal(frame, theta, grid, weights):
    """Per-voter posterior over the nodes and the total log-likelihood, vote by vote."""
    votes, a, b, score = _coded(frame)
    q = 0.5 + grid[None, :] * (expit(theta[a] - theta[b])[:, None] - 0.5)  # (num_votes, num_nodes)
    per_vote = score[:, None] * np.log(q) + (1 - score[:, None]) * np.log(1 - q)
    table = np.zeros((votes.num_voters, grid.shape[0]))
    np.add.at(table, votes.voter_index, per_vote)
    joint = table + np.log(weights)[None, :]
    per_voter = logsumexp(joint, axis=1)
    return np.exp(joint - per_voter[:, None]), per_voter.sum()


@pytest.fixture(scope="module")
def arena():
    votes, theta, eta = simulate_arena(5, num_models=8, num_voters=60, votes_per_voter=15, random_share=0.3,
                                       random_volume=2.0, tie_share=0.1)
    return votes, theta, eta


def test_plain_fit_is_the_bradley_terry_mle(arena):
    votes = arena[0]
    result = fit_leaderboard(votes, family="none")
    assert result.converged and result.fit.optimality_gap <= 1e-3
    reference = numpy_bradley_terry(votes)
    theta = result.leaderboard.set_index("model").loc[result.votes.model_ids, "theta"].to_numpy()
    np.testing.assert_allclose(theta, reference, atol=1e-4)
    # Observed information of plain BT: the Laplacian of the pair weights, inverted on sum-to-zero.
    _, a, b, _ = _coded(votes)
    weight = expit(reference[a] - reference[b]) * expit(reference[b] - reference[a])
    laplacian = np.zeros((len(reference),) * 2)
    np.add.at(laplacian, (a, a), weight)
    np.add.at(laplacian, (b, b), weight)
    np.add.at(laplacian, (a, b), -weight)
    np.add.at(laplacian, (b, a), -weight)
    se = result.leaderboard.set_index("model").loc[result.votes.model_ids, "se_observed"].to_numpy()
    np.testing.assert_allclose(se, np.sqrt(np.diag(np.linalg.pinv(laplacian))), rtol=1e-4)


def test_orientation_of_a_pair_does_not_matter(arena):
    votes = arena[0]
    flipped = votes.rename(columns={"model_a": "model_b", "model_b": "model_a"})
    flipped["winner"] = flipped["winner"].map({"model_a": "model_b", "model_b": "model_a"}).fillna(flipped["winner"])
    fits = [fit_leaderboard(frame, family="two_point") for frame in (votes, flipped)]
    np.testing.assert_allclose(fits[0].leaderboard["theta"], fits[1].leaderboard["theta"], atol=1e-6)
    assert fits[0].fit.objective == pytest.approx(fits[1].fit.objective, abs=1e-8)


@pytest.mark.parametrize("family", ["two_point", "beta"])
def test_certified_fit_matches_the_vote_by_vote_likelihood(arena, family):
    votes = arena[0]
    result = fit_leaderboard(votes, family=family, num_grid=16)
    assert result.converged
    theta = np.asarray(result.fit.state.theta)
    posterior, loglik = numpy_marginal(votes, theta, result.eta_grid, result.eta_weights)
    assert result.fit.objective == pytest.approx(loglik, rel=1e-10)
    np.testing.assert_allclose(result.voters["eta_mean"], posterior @ result.eta_grid, atol=1e-8)
    # A generic optimiser on the NumPy likelihood, started at the fit, finds no more than the
    # certificate allows (theta only, P_eta held: a lower bound on the gain left).
    def loss(free):
        return -numpy_marginal(votes, np.append(free, -free.sum()), result.eta_grid, result.eta_weights)[1]

    better = minimize(loss, theta[:-1], method="BFGS", options={"gtol": 1e-8})
    assert -better.fun - loglik <= 1e-3


def test_vote_weights_match_numpy(arena):
    votes = arena[0]
    result = fit_leaderboard(votes, family="two_point")
    weights = result.vote_weights()
    assert list(weights.columns[:4]) == list(votes.columns) and len(weights) == len(votes)
    coded, a, b, score = _coded(votes)
    theta, grid = np.asarray(result.fit.state.theta), result.eta_grid
    posterior, _ = numpy_marginal(votes, theta, grid, result.eta_weights)
    p = expit(theta[a] - theta[b])[:, None]
    q = 0.5 + grid[None, :] * (p - 0.5)
    if_a, if_b = grid * p / q, grid * (1 - p) / (1 - q)
    expected = np.sum(posterior[coded.voter_index] * (score[:, None] * if_a + (1 - score[:, None]) * if_b), axis=1)
    np.testing.assert_allclose(weights["attentive_weight"], expected, atol=1e-8)


def test_bootstrap_is_seeded_and_brackets_the_estimate(arena):
    votes = arena[0]
    first, second = (fit_leaderboard(votes, bootstrap=16, seed=7) for _ in range(2))
    np.testing.assert_array_equal(first.bootstrap, second.bootstrap)
    board = first.leaderboard
    assert np.all(board["bootstrap_lower"] < board["bootstrap_upper"])
    assert np.all(first.bootstrap.std(axis=0) > 0)


_em = jax.jit(run_em, static_argnames=("config", "num_steps"))


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), random_share=st.floats(0.0, 0.8),
       family=st.sampled_from(["two_point", "beta", "point"]))
def test_em_objective_never_decreases(seed, random_share, family):
    votes, _, _ = simulate_arena(seed, num_models=5, num_voters=12, votes_per_voter=4, random_share=random_share,
                                 tie_share=0.2)
    coded = load_votes(votes)
    config = _arena_config(5, family, 8, 1e-3, 10)
    with jax.enable_x64(True):
        # Padded to one shape (empty entries add nothing), so one compilation serves every example.
        stats = PairStats(*(jnp.asarray(f) for f in pad_stats(pair_stats(coded), 128, 16)))
        _, trace = _em(init_state(config), stats, config, 40)
    trace = np.asarray(trace)
    assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[:-1]))


def test_aware_fit_recovers_ranks_better_with_heavy_random_voters():
    votes, theta, _ = simulate_arena(11, num_models=12, num_voters=400, votes_per_voter=15, random_share=0.4,
                                     random_volume=4.0)
    scores = {}
    for family in ("none", "two_point"):
        board = fit_leaderboard(votes, family=family).leaderboard.sort_values("model")
        scores[family] = (kendalltau(board["theta"], theta).statistic, np.abs(board["theta"] - theta).mean())
    # Random votes shrink plain BT's theta towards 0 by ~(attentive share of votes) = 1/3 here.
    assert scores["two_point"][1] < 0.5 * scores["none"][1], scores
    assert scores["two_point"][0] >= scores["none"][0]


def test_all_attentive_voters_reproduce_plain_bradley_terry():
    votes, _, _ = simulate_arena(13, num_models=8, num_voters=80, votes_per_voter=15, random_share=0.0)
    aware, plain = fit_leaderboard(votes), fit_leaderboard(votes, family="none")
    assert aware.eta_grid.tolist() == [0.0, 1.0] and aware.eta_weights[0] < 1e-3
    np.testing.assert_allclose(aware.leaderboard["theta"], plain.leaderboard["theta"], atol=1e-3)
    assert aware.leaderboard["model"].tolist() == plain.leaderboard["model"].tolist()
