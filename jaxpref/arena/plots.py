"""Arena plots: the leaderboard with its intervals, the voters' attentiveness, plain against aware ranks.

Each function draws on a new figure and writes a PNG atomically (`jaxpref.io.atomic.atomic_paths`).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from jaxpref.arena.leaderboard import ELO_OFFSET, ELO_SCALE, ArenaResult
from jaxpref.io.atomic import atomic_paths

__all__ = ["plot_leaderboard", "plot_attentiveness", "plot_rank_comparison"]


def _save(figure, path: str | os.PathLike) -> None:
    import matplotlib.pyplot as plt

    with atomic_paths([path]) as (temporary,):
        figure.savefig(temporary, format="png", dpi=120, bbox_inches="tight")
    plt.close(figure)


def plot_leaderboard(result: ArenaResult, path: str | os.PathLike, max_models: int = 40) -> None:
    """Elo scores with sandwich intervals (and bootstrap intervals when fitted), strongest on top."""
    import matplotlib.pyplot as plt

    board = result.leaderboard.head(max_models).iloc[::-1]
    rows = np.arange(len(board))
    figure, axes = plt.subplots(figsize=(7, 0.28 * len(board) + 1.5))
    axes.errorbar(board["elo"], rows, xerr=[board["elo"] - board["elo_lower"], board["elo_upper"] - board["elo"]],
                  fmt="o", color="C0", capsize=2, label="sandwich CI")
    if "bootstrap_lower" in board:
        axes.hlines(rows + 0.25, ELO_OFFSET + ELO_SCALE * board["bootstrap_lower"],
                    ELO_OFFSET + ELO_SCALE * board["bootstrap_upper"], color="C1", label="bootstrap CI")
    axes.set_yticks(rows, board["model"].astype(str))
    axes.set_xlabel("Elo (1000 + 400 / ln 10 x theta)")
    axes.set_title("Attentiveness-aware Bradley-Terry leaderboard")
    axes.legend(loc="lower right")
    _save(figure, path)


def plot_attentiveness(result: ArenaResult, path: str | os.PathLike) -> None:
    """Histogram of the voters' posterior mean eta."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 3.5))
    axes.hist(result.voters["eta_mean"], bins=np.linspace(0.0, 1.0, 41), color="C2")
    axes.set_xlabel("posterior mean attentiveness eta")
    axes.set_ylabel("voters")
    axes.set_title(f"{len(result.voters)} voters")
    _save(figure, path)


def plot_rank_comparison(plain: pd.DataFrame, aware: pd.DataFrame, path: str | os.PathLike,
                         truth: pd.Series | None = None) -> None:
    """Each model's plain Bradley-Terry rank against its attentiveness-aware rank (colour: true rank)."""
    import matplotlib.pyplot as plt

    merged = plain.set_index("model")[["rank"]].join(aware.set_index("model")[["rank"]], lsuffix="_plain",
                                                       rsuffix="_aware")
    figure, axes = plt.subplots(figsize=(5, 5))
    colour = None if truth is None else truth.reindex(merged.index).to_numpy()
    points = axes.scatter(merged["rank_plain"], merged["rank_aware"], c=colour, cmap="viridis")
    if truth is not None:
        figure.colorbar(points, label="true rank")
    limit = len(merged) + 1
    axes.plot([0, limit], [0, limit], color="grey", linewidth=0.8)
    axes.set_xlabel("plain Bradley-Terry rank")
    axes.set_ylabel("attentiveness-aware rank")
    _save(figure, path)
