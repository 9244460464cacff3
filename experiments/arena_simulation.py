"""Arena simulation: does modelling voters' attentiveness recover the leaderboard better?

K models with Bradley-Terry strengths theta ~ N(0, 1); voters are attentive (eta = 1) or answer at
random (eta = 0); random voters are heavy (``--random-volume`` times the votes of an attentive
one), the case where plain Bradley-Terry suffers most. For each K and share of random voters we fit

- ``aware``: `jaxpref.arena.fit_leaderboard` with the two_point family (strengths and eta together);
- ``plain``: the same with ``family="none"`` (every voter attentive: plain Bradley-Terry);
- ``arena-rank``: LMArena's arena-rank 0.1.1 BT, when ``--arena-rank-python`` names the Python
  of an environment where it is installed (it pins jax 0.8.1 / numpy 2.3.3);

and report Kendall's tau against the true order, top-5 accuracy (share of the true top 5 in the
estimated top 5), the RMSE of theta (sum-to-zero anchor, like the truth) and the coverage of the
95 % sandwich intervals. Writes ``simulation.csv``/``.json`` and PNG plots to ``--out``.

    python experiments/arena_simulation.py                 # ~4 minutes on 2 cores
    python experiments/arena_simulation.py --quick         # smoke test, ~1 minute
    python experiments/arena_simulation.py --arena-rank-python /path/to/venv/bin/python
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from rich.progress import Progress
from scipy.stats import kendalltau

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jaxpref.arena import fit_leaderboard, simulate_arena
from jaxpref.arena.plots import plot_attentiveness, plot_leaderboard, plot_rank_comparison
from jaxpref.io.atomic import atomic_paths, write_table

RUNNER = Path(__file__).resolve().parent / "arena_rank_runner.py"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small grid for a smoke test")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "arena"))
    parser.add_argument("--models", type=int, nargs="+", default=[20, 50])
    parser.add_argument("--shares", type=float, nargs="+", default=[0.0, 0.2, 0.4, 0.6])
    parser.add_argument("--voters", type=int, default=600)
    parser.add_argument("--votes-per-voter", type=int, default=20)
    parser.add_argument("--random-volume", type=float, default=4.0)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--arena-rank-python", default=None, help="Python with arena-rank installed")
    args = parser.parse_args(argv)
    if args.quick:
        args.models, args.shares, args.voters, args.seeds = [10], [0.0, 0.4], 150, 1
    return args


def metrics(theta_hat: np.ndarray, lower: np.ndarray, upper: np.ndarray, truth: np.ndarray) -> dict:
    top = set(np.argsort(-truth)[:5])
    return {
        "kendall_tau": float(kendalltau(theta_hat, truth).statistic),
        "top5_accuracy": len(top & set(np.argsort(-theta_hat)[:5])) / 5.0,
        "theta_rmse": float(np.sqrt(np.mean((theta_hat - truth) ** 2))),
        "ci_coverage": float(np.mean((lower <= truth) & (truth <= upper))),
    }


def by_model(board: pd.DataFrame, names: list[str], *columns: str) -> list[np.ndarray]:
    indexed = board.set_index("model")
    return [indexed.loc[names, column].to_numpy(np.float64) for column in columns]


def run(args: argparse.Namespace) -> tuple[pd.DataFrame, dict]:
    settings = [(k, share, seed) for k in args.models for share in args.shares for seed in range(args.seeds)]
    rows, examples, files = [], {}, []
    scratch = Path(tempfile.mkdtemp(prefix="arena_sim_"))
    with Progress() as progress:
        task = progress.add_task("arena fits", total=len(settings))
        for k, share, seed in settings:
            votes, truth, _ = simulate_arena(1000 * k + seed, num_models=k, num_voters=args.voters,
                                             votes_per_voter=args.votes_per_voter, random_share=share,
                                             random_volume=args.random_volume)
            names = [f"m{i:03d}" for i in range(k)]
            setting = {"num_models": k, "random_share": share, "seed": seed, "num_votes": len(votes)}
            fits = {}
            for method, family in (("plain", "none"), ("aware", "two_point")):
                start = time.perf_counter()
                fits[method] = fit_leaderboard(votes, family=family)
                theta, lower, upper = by_model(fits[method].leaderboard, names, "theta", "theta_lower", "theta_upper")
                rows.append({**setting, "method": method, **metrics(theta, lower, upper, truth),
                             "converged": fits[method].converged, "seconds": time.perf_counter() - start})
            if args.arena_rank_python:
                path = scratch / f"votes_{k}_{share}_{seed}.parquet"
                votes.to_parquet(path)
                files.append((path, setting, truth, by_model(fits["plain"].leaderboard, names, "theta")[0]))
            if (k, seed) == (args.models[0], 0):
                examples[share] = (fits, truth, names)
            progress.advance(task)
    extras = {"arena_rank": "not run (pass --arena-rank-python)"}
    if files:
        extras = run_arena_rank(args.arena_rank_python, files, rows)
    return pd.DataFrame(rows), {"examples": examples, **extras}


def run_arena_rank(python: str, files: list, rows: list) -> dict:
    """Fits every file with arena-rank in one process; adds its rows and its agreement with plain BT."""
    completed = subprocess.run([python, str(RUNNER)], input=json.dumps([str(f[0]) for f in files]),
                               capture_output=True, text=True, check=True)
    agreement = []
    for (_, setting, truth, plain_theta), fitted in zip(files, json.loads(completed.stdout)):
        order = np.argsort(fitted["models"])  # model names m000, m001, ... sort like the truth
        theta = np.asarray(fitted["theta"])[order]
        lower, upper = np.asarray(fitted["theta_lower"])[order], np.asarray(fitted["theta_upper"])[order]
        rows.append({**setting, "method": "arena-rank", **metrics(theta, lower, upper, truth), "converged": True,
                     "seconds": fitted["seconds"]})
        agreement.append(float(np.max(np.abs(theta - plain_theta))))
    return {"arena_rank": "arena-rank 0.1.1 BradleyTerry (sandwich CIs)",
            "max_abs_theta_difference_plain_vs_arena_rank": max(agreement)}


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    columns = ["kendall_tau", "top5_accuracy", "theta_rmse", "ci_coverage", "seconds"]
    return table.groupby(["num_models", "random_share", "method"], sort=True)[columns].mean().reset_index()


def figure(summary: pd.DataFrame, path: Path) -> None:
    metrics_shown = ["kendall_tau", "top5_accuracy", "theta_rmse", "ci_coverage"]
    figure_, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    for axis, metric in zip(axes, metrics_shown):
        for (k, method), group in summary.groupby(["num_models", "method"]):
            axis.plot(group["random_share"], group[metric], marker="o", label=f"{method}, K={k}",
                      linestyle={"aware": "-", "plain": "--", "arena-rank": ":"}[method])
        axis.set_xlabel("share of random voters")
        axis.set_title(metric)
    axes[-1].axhline(0.95, color="grey", linewidth=0.8)
    axes[0].legend(fontsize=7)
    with atomic_paths([path]) as (temporary,):
        figure_.savefig(temporary, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure_)


def main(argv=None) -> None:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    table, extras = run(args)
    summary = summarise(table)
    write_table(table, out / "simulation_runs.csv")
    write_table(summary, out / "simulation.csv")
    report = {"settings": {key: value for key, value in vars(args).items() if key != "out"},
              "seconds": time.perf_counter() - started,
              **{key: value for key, value in extras.items() if key != "examples"},
              "summary": summary.to_dict(orient="records")}
    with atomic_paths([out / "simulation.json"]) as (temporary,):
        Path(temporary).write_text(json.dumps(report, indent=1))
    figure(summary, out / "metrics_vs_share.png")
    share = max(extras["examples"])
    fits, truth, names = extras["examples"][share]
    plot_leaderboard(fits["aware"], out / "leaderboard.png", max_models=25)
    plot_attentiveness(fits["aware"], out / "eta_histogram.png")
    true_rank = pd.Series(pd.Series(truth, index=names).rank(ascending=False).to_numpy(), index=names)
    plot_rank_comparison(fits["plain"].leaderboard, fits["aware"].leaderboard, out / "ranks_plain_vs_aware.png",
                         truth=true_rank)
    print(summary.to_string(index=False, float_format=lambda value: f"{value:.3f}"))
    print(json.dumps({key: value for key, value in report.items() if key not in ("summary", "settings")}))


if __name__ == "__main__":
    main()
