"""Arena leaderboards: Bradley-Terry strengths and voters' attentiveness, estimated together (docs/arena.md).

    >>> from jaxpref.arena import fit_leaderboard, simulate_arena
    >>> votes, _, _ = simulate_arena(0, num_models=5, num_voters=40)
    >>> result = fit_leaderboard(votes)
    >>> result.converged, list(result.leaderboard.columns[:3])
    (True, ['model', 'theta', 'elo'])
"""

from jaxpref.arena.data import ArenaVotes, PairStats, load_votes, pair_stats, read_votes
from jaxpref.arena.leaderboard import ArenaResult, fit_leaderboard
from jaxpref.arena.simulate import simulate_arena

__all__ = ["ArenaVotes", "PairStats", "ArenaResult", "load_votes", "read_votes", "pair_stats", "fit_leaderboard",
           "simulate_arena"]
