"""Accelerator figures: the engine's kernels at sizes a GPU is for, with compile and run apart.

1. Dense per-label EM (per-label p, npmle on 64 nodes): one EM iteration on the chunked,
   pre-exponentiated `jaxpref.core.dense.DenseTable` against the log-space step on the same
   table as a `LogLikTable` (`jaxpref.core.em.step`), at m users x 64 nodes; the bytes one
   dense iteration must read, and the bandwidth that implies.
2. A whole certified fit from per-user counts (`jaxpref.core.driver.fit` then the float64
   polish), one gap, two_point support fixed, mu under the Beta(8, 2) prior, at m users each with
   their own row (no compression: the worst case for the engine; compressed counts have at
   most (n + 1) rows whatever m).
3. Compile time against m: the same fit compiled at m = 1e3 and at the largest m, float32 and
   float64 (fixed-size chunks under `lax.scan` keep it flat).
4. `jaxpref.fit_attentiveness` end to end with per-label p (npmle on 64 nodes, 4 restarts, the
   float64 polish, standard errors and the users table): first call (compiling) and second call.

    python benchmarks/bench_gpu.py [--quick] [--out DIR]

Run it where the accelerator is; on a CPU it runs too (``--quick`` sizes), for the smoke test.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.common import RESULTS, machine, markdown_table, median_seconds, write_results
from jaxpref.core import dense, driver, em
from jaxpref.core.families import make_family
from jaxpref.core.likelihood import LogLikTable
from jaxpref.io.data import CountStats

MU_PRIOR = (8.0, 2.0)


def _block(tree):
    return jax.tree.map(lambda leaf: leaf.block_until_ready(), tree)


def dense_iteration(num_users: int, num_grid: int, repeats: int) -> dict:
    """Seconds per EM iteration: dense table vs the log-space step on the same table."""
    config = em.EMConfig(make_family("npmle", num_grid), "per_label")
    key_table, key_weights = jax.random.split(jax.random.key(0))
    # A per-user log-likelihood table like 20 labels' worth (values in a realistic range).
    table = -20.0 * jax.random.uniform(key_table, (num_users, num_grid), jnp.float32, 0.3, 1.0)
    multiplicity = jnp.ones((num_users,), jnp.float32)
    state = em.init(config, jnp.asarray([0.75], jnp.float32), key_weights)
    start = time.perf_counter()
    dense_table = _block(dense.dense_table(LogLikTable(table, multiplicity)))
    tabulate_seconds = time.perf_counter() - start
    log_table = LogLikTable(table, multiplicity)
    row = {"users": num_users, "nodes": num_grid, "tabulate_s": tabulate_seconds}
    for name, stats in (("dense", dense_table), ("log_space", log_table)):
        step = jax.jit(lambda s, t: em.step(s, t, config))
        start = time.perf_counter()
        compiled = step.lower(state, stats).compile()
        row[f"{name}_compile_s"] = time.perf_counter() - start
        row[f"{name}_iteration_ms"] = 1e3 * median_seconds(lambda: compiled(state, stats), repeats, _block)
    # One dense iteration reads the pre-exponentiated table once (4 bytes per entry).
    row["dense_GB_per_s"] = 4.0 * num_users * num_grid / (row["dense_iteration_ms"] / 1e3) / 1e9
    row["log_space_over_dense"] = row["log_space_iteration_ms"] / row["dense_iteration_ms"]
    return row


def counts_fit(num_users: int, labels: int, dtype: str) -> dict:
    """A certified fit from m uncompressed per-user rows: compile, then run, then the polish."""
    float_dtype = jnp.dtype(dtype)
    with jax.enable_x64(dtype == "float64"):
        key_eta, key_k = jax.random.split(jax.random.key(1))
        eta = jnp.where(jax.random.uniform(key_eta, (num_users,)) < 0.4, 0.9, 0.1)
        k = jax.random.binomial(key_k, labels, 0.5 + eta * (0.74 - 0.5)).astype(float_dtype)
        stats = CountStats(k[:, None], jnp.full((num_users, 1), labels, float_dtype), jnp.ones((num_users,), float_dtype))
        stats = _block(stats)
        config = em.EMConfig(make_family("two_point", support=(0.1, 0.9)), "prior", MU_PRIOR)
        start_state = em.init(config, jnp.asarray([0.75], float_dtype))
        run = jax.jit(lambda s, t: driver.fit(s, t, config._replace(polish=False)))
        start = time.perf_counter()
        compiled = run.lower(start_state, stats).compile()
        compile_seconds = time.perf_counter() - start
        start = time.perf_counter()
        output = _block(compiled(start_state, stats))
        run_seconds = time.perf_counter() - start
        with jax.enable_x64(True):
            stats64 = jax.tree.map(lambda leaf: leaf.astype(jnp.float64), stats)
            state64 = jax.tree.map(lambda leaf: leaf.astype(jnp.float64), output.state)
            start = time.perf_counter()
            polished = _block(driver.finish(state64, stats64, config))
            polish_seconds = time.perf_counter() - start
    return {
        "users": num_users, "labels_per_user": labels, "dtype": dtype, "compile_s": compile_seconds,
        "em_run_s": run_seconds, "em_iterations": int(output.num_iter),
        "ms_per_iteration": 1e3 * run_seconds / max(int(output.num_iter), 1),
        "polish_s_incl_compile": polish_seconds, "optimality_gap": float(polished.optimality_gap),
        "mu_hat": float(polished.state.mu[0]),
    }


def per_label_fit(num_users: int, labels: int) -> dict:
    """Seconds of two `fit_attentiveness` calls on label rows with per-label p (first one compiles)."""
    import pandas as pd

    from jaxpref.estimator import fit_attentiveness

    rng = np.random.default_rng(2)
    eta = np.repeat(np.where(rng.uniform(size=num_users) < 0.4, 0.9, 0.1), labels)
    p = 1.0 / (1.0 + np.exp(-rng.normal(1.0, 0.5, num_users * labels)))
    label = (rng.uniform(size=p.size) < 0.5 + eta * (p - 0.5)).astype(np.int8)
    frame = pd.DataFrame({"user": np.repeat(np.arange(num_users), labels), "label": label, "p": p})
    row = {"users": num_users, "labels_per_user": labels, "backend": jax.default_backend()}
    for call in ("first_s", "second_s"):
        start = time.perf_counter()
        fit = fit_attentiveness(frame, family="npmle", p_column="p")
        row[call] = time.perf_counter() - start
    row.update(optimality_gap=fit.optimality_gap, converged=fit.converged, em_iterations=fit.num_iter)
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (the smoke test)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    dense_sizes = [10_000] if args.quick else [1_000_000, 10_000_000]
    fit_sizes = [1_000, 20_000] if args.quick else [1_000, 10_000_000, 100_000_000]
    repeats = 2 if args.quick else 10

    dense_rows = [dense_iteration(m, 64, repeats) for m in dense_sizes]
    fit_rows = [counts_fit(m, 20, dtype) for dtype in ("float32", "float64") for m in fit_sizes]
    label_rows = [per_label_fit(2_000 if args.quick else 1_000_000, 20)]
    table = "\n\n".join([
        f"device: {machine()['device']}",
        markdown_table(dense_rows, ["users", "nodes", "tabulate_s", "dense_compile_s", "dense_iteration_ms",
                                    "dense_GB_per_s", "log_space_compile_s", "log_space_iteration_ms",
                                    "log_space_over_dense"]),
        markdown_table(fit_rows, ["users", "dtype", "compile_s", "em_run_s", "em_iterations", "ms_per_iteration",
                                  "polish_s_incl_compile", "optimality_gap", "mu_hat"]),
        markdown_table(label_rows, ["users", "labels_per_user", "backend", "first_s", "second_s", "em_iterations",
                                    "optimality_gap", "converged"]),
    ])
    write_results(args.out, "bench_gpu", {"machine": machine(), "dense": dense_rows, "counts_fit": fit_rows, "per_label_fit": label_rows}, table)


if __name__ == "__main__":
    main()
