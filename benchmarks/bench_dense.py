"""Per-iteration cost of the dense per-user EM path vs users m and grid size G.

Per-label p makes the (users x grid) table L uncompressible. Three implementations of one EM
iteration on a fixed L, side by side in one process:

- ``numpy``: plain NumPy log-sum-exp (float64), the baseline (`benchmarks.numpy_em`);
- ``logspace``: jaxpref's general step (`jaxpref.core.em.step` on a `LogLikTable`), jitted;
- ``dense``: `jaxpref.core.dense.step`, two matrix-vector products per user chunk, no exp of L;
  timed per call (``dense_ms``, one jitted step per Python call) and per iteration of a jitted loop
  of `LOOP_STEPS` steps (``dense_loop_ms``: how a fit runs it, inside one `lax.while_loop`, with
  no per-step dispatch).

Restarts: ms per EM iteration of `jaxpref.core.driver.fit_restarts` with the default 4 restarts
(what `fit_attentiveness` runs) against one un-vmapped start (`driver.fit`), per family: on the
dense table npmle is concave (one start runs) and beta is not (five vmapped starts); on per-label
statistics two_point's five starts run one after another.

Bounds: the dense iteration does ``4 m G`` flops and must read the ``m G`` table once, so
its floor is max(flops / peak flops, bytes / bandwidth), with peak flops measured by a large
float32 matrix product and bandwidth by summing a large array on this machine. The ratio
``time / floor`` says how close each implementation is to the compute limit.

    python benchmarks/bench_dense.py [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import numpy_em
from benchmarks.common import (
    RESULTS,
    machine,
    markdown_table,
    median_seconds,
    new_figure,
    save_figure,
    write_results,
)
from jaxpref.core import dense, driver, em
from jaxpref.core.families import make_family
from jaxpref.core.likelihood import LogLikTable
from jaxpref.io.data import LabelStats


def machine_ceilings(size: int) -> dict[str, float]:
    """Peak float32 matmul flop rate and read bandwidth of this machine, measured now."""
    a = jnp.asarray(np.random.default_rng(0).normal(size=(size, size)), jnp.float32)
    matmul = jax.jit(lambda x: x @ x)
    seconds = median_seconds(lambda: matmul(a), 5, jax.block_until_ready)
    big = jnp.asarray(np.random.default_rng(1).normal(size=(1 << 25,)), jnp.float32)
    reduce_seconds = median_seconds(lambda: jnp.sum(big), 10, jax.block_until_ready)
    return {"peak_gflops": 2 * size**3 / seconds / 1e9, "bandwidth_gbs": big.nbytes / reduce_seconds / 1e9}


def random_table(num_users: int, num_grid: int, seed: int = 0) -> np.ndarray:
    """A realistic L: users with 20 labels of random per-label p (a sum of log P(y | eta) terms)."""
    rng = np.random.default_rng(seed)
    grid = np.linspace(0.0, 1.0, num_grid)
    table = np.zeros((num_users, num_grid))
    eta = rng.beta(3.0, 5.0, num_users)
    for _ in range(20):
        p = rng.uniform(0.55, 0.99, num_users)
        chose_a = rng.uniform(size=num_users) < 0.5 + eta * (p - 0.5)
        q = 0.5 + grid[None, :] * (p[:, None] - 0.5)
        table += np.log(np.where(chose_a[:, None], q, 1.0 - q))
    return table


#: Steps of the jitted loop that times ``dense_loop_ms``.
LOOP_STEPS = 20


def time_setting(table: np.ndarray, dtype: str, repeats: int, with_numpy: bool) -> dict:
    num_users, num_grid = table.shape
    row = {"m": num_users, "G": num_grid, "dtype": dtype}
    with jax.enable_x64(dtype == "float64"):
        config = em.EMConfig(make_family("npmle", num_grid), "per_label")
        state = em.init(config, jnp.asarray([0.75], dtype))
        log_table = LogLikTable(jnp.asarray(table, dtype), jnp.ones(num_users, dtype))
        dense_table = dense.dense_table(log_table)
        logspace_step = jax.jit(lambda s: em.step(s, log_table, config))
        dense_step = jax.jit(lambda s: dense.step(s, dense_table, config))
        row["logspace_ms"] = 1e3 * median_seconds(lambda: logspace_step(state), repeats, jax.block_until_ready)
        row["dense_ms"] = 1e3 * median_seconds(lambda: dense_step(state), repeats, jax.block_until_ready)
        dense_loop = jax.jit(
            lambda s: jax.lax.fori_loop(0, LOOP_STEPS, lambda _, s: dense.step(s, dense_table, config)[0], s))
        loop_seconds = median_seconds(lambda: dense_loop(state), repeats, jax.block_until_ready)
        row["dense_loop_ms"] = 1e3 * loop_seconds / LOOP_STEPS
        reference, _ = logspace_step(state)
        fast, _ = dense_step(state)
        row["max_weight_diff"] = float(jnp.max(jnp.abs(jnp.exp(reference.family.log_weights)
                                                       - jnp.exp(fast.family.log_weights))))
    if with_numpy:
        log_weights = np.full(num_grid, -np.log(num_grid))
        ones = np.ones(num_users)
        row["numpy_ms"] = 1e3 * median_seconds(lambda: numpy_em.dense_step(table, ones, log_weights), max(1, repeats // 3))
    return row


#: EM iterations per timed restarts fit (plain EM, no tolerance: every fit runs them all).
RESTART_ITERATIONS = 60


def random_labels(num_users: int, labels_per_user: int = 10, seed: int = 0) -> LabelStats:
    """Per-label statistics of users with Beta(3, 5) attentiveness and random per-label p (float32)."""
    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(num_users), labels_per_user)
    p = rng.uniform(0.55, 0.99, rows.size)
    chose_a = rng.uniform(size=rows.size) < 0.5 + rng.beta(3.0, 5.0, num_users)[rows] * (p - 0.5)
    return LabelStats(jnp.asarray(rows, jnp.int32), jnp.asarray(chose_a, jnp.float32), jnp.asarray(p, jnp.float32),
                      jnp.ones(num_users, jnp.float32))


def time_restarts(table: np.ndarray, repeats: int) -> list[dict]:
    """ms per EM iteration: the default fit's restarts against one un-vmapped start, per family.

    npmle and beta on the dense table of ``table``; two_point (free support) on per-label
    statistics of as many users, whose starts run one after another (`driver.starts_together`).
    """
    num_users, num_grid = table.shape
    mu = jnp.asarray([0.75], jnp.float32)
    dense_stats = dense.dense_table(LogLikTable(jnp.asarray(table, jnp.float32), jnp.ones(num_users, jnp.float32)))
    rows = []
    for family, stats in (("npmle", dense_stats), ("beta", dense_stats), ("two_point", random_labels(num_users))):
        config = em.EMConfig(make_family(family, num_grid), "per_label", tol=0.0, max_iter=RESTART_ITERATIONS,
                             polish=False)
        start = em.init(config, mu)
        row = {"family": family, "statistics": type(stats).__name__, "m": num_users, "G": config.family.num_nodes,
               "concave": config.concave, "together": driver.starts_together(stats)}
        for name, run in (("one_start", lambda: driver.fit(start, stats, config, method="em")),
                          ("default_restarts", lambda: driver.fit_restarts(jax.random.key(0), stats, config, mu, 4,
                                                                           "em")[1])):
            seconds = median_seconds(run, repeats, jax.block_until_ready)
            fits = run()
            row[f"{name}_starts"] = int(np.size(fits.num_iter))
            row[f"{name}_ms_per_iter"] = 1e3 * seconds / int(np.max(fits.num_iter))
        row["restarts_over_one"] = row["default_restarts_ms_per_iter"] / row["one_start_ms_per_iter"]
        rows.append(row)
    return rows


def plot(rows, path: Path) -> None:
    plt, figure, axis = new_figure(figsize=(6, 4))
    for grid_size in sorted({r["G"] for r in rows if r["dtype"] == "float32"}):
        subset = [r for r in rows if r["G"] == grid_size and r["dtype"] == "float32"]
        users = [r["m"] for r in subset]
        axis.loglog(users, [r["dense_ms"] for r in subset], "o-", label=f"dense G={grid_size}")
        axis.loglog(users, [r["logspace_ms"] for r in subset], "x--", label=f"log-space G={grid_size}")
        axis.loglog(users, [r["floor_ms"] for r in subset], ":", color="gray")
    axis.set_xlabel("users m")
    axis.set_ylabel("ms per EM iteration (float32)")
    axis.set_title("dotted: this machine's floor")
    axis.legend(fontsize=7)
    save_figure(plt, figure, path)


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: small sizes, few repeats")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for JSON, markdown and PNG")
    args = parser.parse_args(argv)
    if args.quick:
        sizes, grids, repeats, matmul_size, restart_size = [2000], [16], 3, 256, (2000, 8)
    else:
        sizes, grids, repeats, matmul_size = [10_000, 100_000, 1_000_000], [16, 64, 256], 15, 2048
        restart_size = (100_000, 64)
    ceilings = machine_ceilings(matmul_size)
    rows = []
    for num_grid in grids:
        for num_users in sizes:
            if num_users * num_grid > 64_000_000:
                continue
            table = random_table(num_users, num_grid)
            rows.append(time_setting(table, "float32", repeats, with_numpy=num_users <= 100_000))
            if num_grid == 64 and num_users == 100_000 or args.quick:
                rows.append(time_setting(table, "float64", repeats, with_numpy=False))
    for row in rows:
        itemsize = 4 if row["dtype"] == "float32" else 8
        flops = 4.0 * row["m"] * row["G"]
        row["floor_ms"] = 1e3 * max(flops / (ceilings["peak_gflops"] * 1e9),
                                    itemsize * row["m"] * row["G"] / (ceilings["bandwidth_gbs"] * 1e9))
        row["dense_over_floor"] = row["dense_ms"] / row["floor_ms"]
        row["speedup_vs_logspace"] = row["logspace_ms"] / row["dense_ms"]
        if "numpy_ms" in row:
            row["speedup_vs_numpy"] = row["numpy_ms"] / row["dense_ms"]
            row["loop_speedup_vs_numpy"] = row["numpy_ms"] / row["dense_loop_ms"]
    columns = ["m", "G", "dtype", "numpy_ms", "logspace_ms", "dense_ms", "dense_loop_ms", "floor_ms",
               "dense_over_floor", "speedup_vs_logspace", "speedup_vs_numpy", "loop_speedup_vs_numpy", "max_weight_diff"]
    table = markdown_table(rows, columns)
    table += (f"\n\nMachine ceilings measured in this run: {ceilings['peak_gflops']:.1f} GFLOP/s (float32 matmul), "
              f"{ceilings['bandwidth_gbs']:.1f} GB/s (read).")
    restarts = time_restarts(random_table(*restart_size), max(1, repeats // 5))
    table += "\n\n" + markdown_table(restarts, ["family", "statistics", "m", "G", "concave", "together",
                                                 "one_start_starts", "one_start_ms_per_iter", "default_restarts_starts",
                                                 "default_restarts_ms_per_iter", "restarts_over_one"])
    write_results(args.out, "dense", {"machine": machine(), "ceilings": ceilings, "rows": rows,
                                      "restarts": restarts}, table)
    plot(rows, args.out / "dense.png")
    return rows


if __name__ == "__main__":
    main()
