"""Scale: parquet end to end, replications per second, compile vs run time, float32 vs float64.

1. End to end from parquet: labels per second for streaming ingestion (`jaxpref.scale.streaming`)
   plus the accelerated fit, the share of time in each, and ingestion's speed beside three
   ceilings measured on the same file: reading its bytes cold (evicted from the page cache
   with ``posix_fadvise``) and warm, and a multi-threaded ``pyarrow.parquet.read_table`` of
   the same columns (decoding, no counting); plus `jaxpref.fit_attentiveness` on the streamed
   counts (SEs and the per-user table included).
2. A Table-4-style study: R replications of (simulate, compress, fit) as one jitted computation
   (`jaxpref.study.replicate_fits`: all R vmapped, and in vmapped batches of 8 under `lax.map`)
   vs a Python loop over single fits; replications per second. Note that a vmapped
   `lax.while_loop` runs until its slowest replication converges.
3. Compile time apart from run time, m = 1e3 vs 1e6 users, float32 vs float64; and the
   plain-NumPy EM (`benchmarks.numpy_em`) on the same compressed statistics.

    python benchmarks/bench_scale.py [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

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
from jaxpref.core import driver, em
from jaxpref.estimator import fit_attentiveness
from jaxpref.io.data import compress_counts
from jaxpref.core.families import make_family
from jaxpref.simulate import eta_distribution, simulate_counts
from jaxpref.scale.streaming import stream_counts
from jaxpref.study import replicate_fits

TRUTH = eta_distribution("two_point", support=(0.1, 0.9), weight_hi=0.4)
CONFIG = em.EMConfig(make_family("two_point", support=(0.1, 0.9)), "prior", (8.0, 2.0), tol=1e-7, max_iter=2000)


def write_labels(num_users: int, labels_per_user: int, path: Path) -> None:
    """A parquet file of m * n label rows in random order (users' rows interleaved)."""
    k, _, _ = simulate_counts(jax.random.key(0), num_users, jnp.full(num_users, labels_per_user),
                              jnp.asarray([0.74]), TRUTH)
    k = np.asarray(k)
    order = np.random.default_rng(0).permutation(num_users * labels_per_user)
    users = order // labels_per_user
    # Each user's k ones and n - k zeros, scattered over the file by the permutation.
    labels = (order % labels_per_user < k[users]).astype(np.int8)
    pq.write_table(pa.table({"user": users, "label": labels}), path, row_group_size=1 << 20)


def read_bytes_seconds(path: Path, cold: bool) -> float:
    """Seconds to read the file's bytes; ``cold`` first evicts it from the page cache (fadvise)."""
    with open(path, "rb") as handle:
        if cold:
            os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        start = time.perf_counter()
        while handle.read(1 << 24):
            pass
        return time.perf_counter() - start


def end_to_end(num_users: int, labels_per_user: int, folder: Path) -> dict:
    """Streaming ingestion + fit of a parquet file, beside the machine's read ceilings for it."""
    path = folder / "labels.parquet"
    write_labels(num_users, labels_per_user, path)
    size_mb = path.stat().st_size / 1e6
    cold_read_s = read_bytes_seconds(path, cold=True)
    warm_read_s = min(read_bytes_seconds(path, cold=False) for _ in range(3))
    read_table_s = median_seconds(lambda: pq.read_table(path, columns=["user", "label"]), 3)
    start = time.perf_counter()
    counts = stream_counts(path, progress=False)
    stats, _ = compress_counts(counts.pref_a_counts, counts.label_counts)
    ingest_s = time.perf_counter() - start
    stats = jax.tree.map(jnp.asarray, stats)
    initial = em.init(CONFIG, jnp.asarray([0.75], jnp.float32))
    fit_s = median_seconds(lambda: driver.fit(initial, stats, CONFIG), 3, jax.block_until_ready)
    options = dict(family="two_point", support=(0.1, 0.9), mu_prior=(8.0, 2.0))
    fit_attentiveness(counts, **options)  # compile
    start = time.perf_counter()
    api = fit_attentiveness(counts, **options)
    api_s = time.perf_counter() - start
    labels = num_users * labels_per_user
    total = ingest_s + fit_s
    return {
        "labels": labels, "users": num_users, "file_mb": size_mb,
        "ingest_s": ingest_s, "fit_s": fit_s, "labels_per_s": labels / total, "ingest_share": ingest_s / total,
        "ingest_mb_per_s": size_mb / ingest_s, "cold_read_mb_per_s": size_mb / cold_read_s,
        "warm_read_mb_per_s": size_mb / warm_read_s, "read_table_mb_per_s": size_mb / read_table_s,
        "ingest_over_read_table": ingest_s / read_table_s, "ingest_over_cold_read": ingest_s / cold_read_s,
        "api_fit_s": api_s, "api_users": len(api.users),
    }


def study_loop(key, num_replications: int, num_users: int, labels_per_user: int):
    initial = em.init(CONFIG, jnp.asarray([0.75]))
    estimates = []
    for replication_key in jax.random.split(key, num_replications):
        k, n, _ = simulate_counts(replication_key, num_users, jnp.full(num_users, labels_per_user),
                                  jnp.asarray(0.74), TRUTH)
        stats, _ = compress_counts(np.asarray(k).reshape(-1, 1), np.asarray(n).reshape(-1, 1))
        estimates.append(driver.fit(initial, jax.tree.map(jnp.asarray, stats), CONFIG).state.mu)
    return jax.block_until_ready(estimates)


def compile_and_run(num_users: int, dtype: str) -> dict:
    with jax.enable_x64(dtype == "float64"):
        k, n, _ = simulate_counts(jax.random.key(1), num_users, jnp.full(num_users, 20), jnp.asarray([0.74]), TRUTH)
        counts = np.asarray(k).reshape(-1, 1), np.asarray(n).reshape(-1, 1)
        stats, _ = compress_counts(*counts, np.dtype(dtype))
        stats = jax.tree.map(jnp.asarray, stats)
        initial = em.init(CONFIG, jnp.asarray([0.75], dtype))
        start = time.perf_counter()
        compiled = driver.fit.lower(initial, stats, CONFIG).compile()
        compile_seconds = time.perf_counter() - start
        run_seconds = median_seconds(lambda: compiled(initial, stats), 3, jax.block_until_ready)
        out = compiled(initial, stats)
        stats_numpy = jax.tree.map(np.asarray, stats)
        numpy_seconds = median_seconds(
            lambda: numpy_em.fit(stats_numpy.num_pref_a[:, 0].astype(float), stats_numpy.num_labels[:, 0].astype(float),
                                 stats_numpy.multiplicity.astype(float), "two_point", np.array([0.1, 0.9]), 0.75,
                                 "prior", (8.0, 2.0), tol=1e-7, max_iter=2000), 1)
    return {"m": num_users, "dtype": dtype, "compile_s": compile_seconds, "run_s": run_seconds,
            "numpy_s": numpy_seconds, "numpy_over_jaxpref": numpy_seconds / run_seconds,
            "mu": float(out.state.mu[0])}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run at small sizes")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for JSON, markdown and PNG")
    args = parser.parse_args(argv)
    if args.quick:
        e2e_sizes, study, compile_sizes, dtypes = [(2000, 10)], (8, 500, 10), [1000], ["float64"]
    else:
        e2e_sizes = [(100_000, 20), (1_000_000, 20), (10_000_000, 20)]
        study, compile_sizes = (64, 10_000, 20), [1000, 1_000_000]
        dtypes = ["float32", "float64"]
    with tempfile.TemporaryDirectory() as folder:
        e2e = [end_to_end(m, n, Path(folder)) for m, n in e2e_sizes]
    replications, num_users, labels = study
    key = jax.random.key(2)
    vmapped_s, batched_s = (
        median_seconds(lambda: replicate_fits(key, replications, num_users, labels, 0.74, TRUTH, CONFIG,
                                              batch_size=size), 2)
        for size in (replications, 8)
    )
    loop_s = median_seconds(lambda: study_loop(key, replications, num_users, labels), 1)
    studies = [{"R": replications, "m": num_users, "n": labels, "vmapped_per_s": replications / vmapped_s,
                "batches_of_8_per_s": replications / batched_s, "loop_per_s": replications / loop_s,
                "speedup": loop_s / vmapped_s}]
    compiles = [compile_and_run(m, dtype) for m in compile_sizes for dtype in dtypes]
    table = "\n\n".join([
        "End to end from parquet\n\n" + markdown_table(e2e, list(e2e[0])),
        "Replications (simulate + fit)\n\n" + markdown_table(studies, list(studies[0])),
        "Compile vs run (accelerated fit, compressed counts) and plain NumPy EM\n\n"
        + markdown_table(compiles, list(compiles[0])),
    ])
    payload = {"machine": machine(), "end_to_end": e2e, "replications": studies, "compile": compiles}
    write_results(args.out, "scale", payload, table)
    plot(compiles, e2e, args.out / "scale.png")
    return payload


def plot(compiles, e2e, path: Path) -> None:
    plt, figure, (left, right) = new_figure(ncols=2, figsize=(9, 3.5))
    labels = [f"m={r['m']:.0e} {r['dtype'][-2:]}" for r in compiles]
    positions = np.arange(len(compiles))
    left.bar(positions - 0.2, [r["compile_s"] for r in compiles], 0.4, label="compile")
    left.bar(positions + 0.2, [r["run_s"] for r in compiles], 0.4, label="run")
    left.set_xticks(positions, labels, fontsize=7)
    left.set_ylabel("seconds")
    left.legend()
    right.bar([f"{r['labels']:.0e}" for r in e2e], [r["ingest_s"] for r in e2e], label="ingest")
    right.bar([f"{r['labels']:.0e}" for r in e2e], [r["fit_s"] for r in e2e],
              bottom=[r["ingest_s"] for r in e2e], label="fit")
    right.set_xlabel("labels in the parquet file")
    right.legend()
    save_figure(plt, figure, path)


if __name__ == "__main__":
    main()
