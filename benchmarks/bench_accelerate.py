"""Iterations and wall time to convergence: plain EM vs SQUAREM, across Table-4-style settings.

Data: m users with n labels each, simulated from the model (two_point: support (0.1, 0.9), 40%
at 0.9; beta and npmle: Beta(3, 5)), compressed to (k, n) counts. Fits in float64 (float32
round-off stops plain EM early, which would flatter it) from the same default start, tol per user
1e-9, at most 20000 iterations. Each setting runs both methods side by side in one process; times
are medians over repeats after a compile run.

    python benchmarks/bench_accelerate.py            # default (a few minutes on 2 cores)
    python benchmarks/bench_accelerate.py --quick    # smoke run
    python benchmarks/bench_accelerate.py --full     # adds n in {5, 20, 50}
"""

from __future__ import annotations

import argparse
import itertools
import zlib
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.common import (
    RESULTS,
    machine,
    markdown_table,
    median_seconds,
    new_figure,
    save_figure,
    write_results,
)
from jaxpref.core import accelerate, driver, em
from jaxpref.io.data import compress_counts
from jaxpref.core.families import make_family
from jaxpref.simulate import eta_distribution, simulate_counts

PRIORS = {"known": (1.0, 1.0), "prior": (8.0, 2.0), "free": (1.0, 1.0)}


def family_and_truth(name: str, num_grid: int):
    if name == "two_point":
        return make_family("two_point"), eta_distribution("two_point", support=(0.1, 0.9), weight_hi=0.4)
    return make_family(name, num_grid), eta_distribution("beta", alpha=3.0, beta=5.0)


def run_setting(family: str, mode: str, mu: float, num_users: int, labels: int, num_grid: int, repeats: int):
    spec, truth = family_and_truth(family, num_grid)
    key = jax.random.key(zlib.crc32(f"{family}/{mode}/{mu}/{labels}".encode()))
    k, n, _ = simulate_counts(key, num_users, jnp.full(num_users, labels), jnp.asarray([mu]), truth)
    with jax.enable_x64(True):
        stats, _ = compress_counts(np.asarray(k).reshape(-1, 1), np.asarray(n).reshape(-1, 1), np.float64)
        stats = jax.tree.map(jnp.asarray, stats)
        config = em.EMConfig(spec, mode, PRIORS[mode], tol=1e-9, max_iter=20000)
        start = em.init(config, jnp.asarray([mu if mode == "known" else 0.75]))
        runs = {
            "em": lambda: driver.fit(start, stats, config, method="em"),
            "squarem": lambda: driver.fit(start, stats, config),
        }
        row = {"family": family, "mu_mode": mode, "mu": mu, "n": labels, "m": num_users}
        for name, function in runs.items():
            seconds = median_seconds(function, repeats, jax.block_until_ready)
            out = function()
            row[f"{name}_steps"] = int(out.num_iter) * accelerate.EM_STEPS_PER_ITERATION[name]
            row[f"{name}_seconds"] = seconds
            row[f"{name}_objective"] = float(out.objective)
            row[f"{name}_converged"] = bool(out.converged)
    row["speedup"] = row["em_seconds"] / row["squarem_seconds"]
    row["step_ratio"] = row["em_steps"] / row["squarem_steps"]
    row["objective_gain"] = row["squarem_objective"] - row["em_objective"]
    return row


def plot(rows, path: Path) -> None:
    plt, figure, axis = new_figure(figsize=(7, 4))
    labels = [f"{r['family'][:5]}/{r['mu_mode'][:2]}/{r['mu']}/n{r['n']}" for r in rows]
    positions = np.arange(len(rows))
    axis.bar(positions - 0.2, [r["em_steps"] for r in rows], 0.4, label="plain EM")
    axis.bar(positions + 0.2, [r["squarem_steps"] for r in rows], 0.4, label="SQUAREM")
    axis.set_yscale("log")
    axis.set_ylabel("EM steps to convergence")
    axis.set_xticks(positions, labels, rotation=90, fontsize=6)
    axis.legend()
    save_figure(plt, figure, path)


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: few settings, one repeat")
    parser.add_argument("--full", action="store_true", help="also n in {5, 20, 50}")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for JSON, markdown and PNG")
    args = parser.parse_args(argv)
    if args.quick:
        grid = [("two_point", "known", 0.74, 1000, 10), ("npmle", "prior", 0.74, 1000, 10)]
        num_grid, repeats = 8, 1
    else:
        labels = [5, 20, 50] if args.full else [10]
        grid = list(itertools.product(["two_point", "beta", "npmle"], list(PRIORS), [0.6, 0.74, 0.98],
                                      [100_000], labels))
        num_grid, repeats = 64, 3
    rows = [run_setting(f, mode, mu, m, n, num_grid, repeats) for f, mode, mu, m, n in grid]
    columns = ["family", "mu_mode", "mu", "n", "em_steps", "squarem_steps", "step_ratio", "em_seconds",
               "squarem_seconds", "speedup", "em_converged", "squarem_converged", "objective_gain"]
    table = markdown_table(rows, columns)
    speedups = np.array([r["speedup"] for r in rows])
    table += (f"\n\nMedian wall-time speedup {np.median(speedups):.3g}x (geometric mean "
              f"{np.exp(np.mean(np.log(speedups))):.3g}x) over {len(rows)} settings.")
    write_results(args.out, "accelerate", {"machine": machine(), "rows": rows}, table)
    plot(rows, args.out / "accelerate.png")
    return rows


if __name__ == "__main__":
    main()
