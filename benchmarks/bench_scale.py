"""Scale: parquet end to end, replications per second, compile vs run time, float32 vs float64.

1. End to end from parquet: labels per second for streaming ingestion (`jaxpref.streaming`)
   plus the accelerated fit, the share of time in each, and ingestion's speed relative to a
   plain ``pyarrow.parquet.read_table`` of the same columns (this machine's read ceiling).
2. A Table-4-style study: R replications of (simulate, compress, fit) as one jitted, vmapped
   computation vs a Python loop over single fits; replications per second. Note that a vmapped
   `lax.while_loop` runs until its slowest replication converges.
3. Compile time apart from run time, m = 1e3 vs 1e6 users, float32 vs float64; and the
   plain-NumPy EM (`benchmarks.numpy_em`) on the same compressed statistics.

    python benchmarks/bench_scale.py [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import functools
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
from jaxpref import accelerate, em
from jaxpref.data import CountStats, compress_counts
from jaxpref.families import make_family
from jaxpref.simulate import eta_distribution, replicate, simulate_counts
from jaxpref.streaming import stream_counts

TRUTH = eta_distribution("two_point", support=(0.1, 0.9), weight_hi=0.4)
CONFIG = em.EMConfig(make_family("two_point", support=(0.1, 0.9)), "prior", (8.0, 2.0), tol=1e-7, max_iter=2000)


def end_to_end(num_users: int, labels_per_user: int, folder: Path) -> dict:
    k, _, _ = simulate_counts(jax.random.key(0), num_users, jnp.full(num_users, labels_per_user),
                              jnp.asarray([0.74]), TRUTH)
    k = np.asarray(k)
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(num_users), labels_per_user)
    # Labels of a user in random order among its rows: k ones, n - k zeros.
    position = np.tile(np.arange(labels_per_user), num_users)
    labels = (position < np.repeat(k, labels_per_user)).astype(np.int8)
    order = rng.permutation(users.size)
    path = folder / "labels.parquet"
    pq.write_table(pa.table({"user": users[order], "label": labels[order]}), path, row_group_size=1 << 20)
    read_seconds = median_seconds(lambda: pq.read_table(path, columns=["user", "label"]), 3)
    start = time.perf_counter()
    counts = stream_counts(path, progress=False)
    stats, _ = compress_counts(counts.num_pref_a, counts.num_labels)
    ingest_seconds = time.perf_counter() - start
    stats = jax.tree.map(jnp.asarray, stats)
    initial = em.init(CONFIG, jnp.asarray([0.75], jnp.float32))
    jax.block_until_ready(accelerate.fit_accelerated(initial, stats, CONFIG))
    start = time.perf_counter()
    jax.block_until_ready(accelerate.fit_accelerated(initial, stats, CONFIG))
    fit_seconds = time.perf_counter() - start
    total = ingest_seconds + fit_seconds
    return {
        "labels": int(users.size), "users": num_users, "file_mb": path.stat().st_size / 1e6,
        "ingest_s": ingest_seconds, "fit_s": fit_seconds, "labels_per_s": users.size / total,
        "ingest_share": ingest_seconds / total, "read_table_s": read_seconds,
        "ingest_over_read": ingest_seconds / read_seconds,
    }


def equal_n_counts(num_pref_a, labels_per_user: int) -> CountStats:
    """Exact jittable compression when every user has n labels: one row per k = 0..n.

    `jaxpref.data.histogram_counts` allows any n <= max_labels, i.e. (n + 1)^2 rows: 21x more
    E-step work at n = 20, which made the vmapped study slower than a loop over exact fits.
    """
    width = labels_per_user + 1
    multiplicity = jax.ops.segment_sum(jnp.ones(num_pref_a.shape), num_pref_a.astype(jnp.int32), num_segments=width)
    k_values = jnp.arange(width, dtype=multiplicity.dtype)[:, None]
    return CountStats(k_values, jnp.full_like(k_values, labels_per_user), multiplicity)


@functools.partial(jax.jit, static_argnames=("num_replications", "num_users", "labels_per_user"))
def study_vmapped(key, num_replications: int, num_users: int, labels_per_user: int):
    k, _, _ = replicate(key, num_replications, num_users, labels_per_user, 0.74, TRUTH)
    stats = jax.vmap(functools.partial(equal_n_counts, labels_per_user=labels_per_user))(k)
    initial = em.init(CONFIG, jnp.asarray([0.75]))
    return jax.vmap(accelerate.fit_accelerated, in_axes=(None, 0, None))(initial, stats, CONFIG).state.mu


def study_loop(key, num_replications: int, num_users: int, labels_per_user: int):
    initial = em.init(CONFIG, jnp.asarray([0.75]))
    estimates = []
    for replication_key in jax.random.split(key, num_replications):
        k, n, _ = simulate_counts(replication_key, num_users, jnp.full(num_users, labels_per_user),
                                  jnp.asarray(0.74), TRUTH)
        stats, _ = compress_counts(np.asarray(k).reshape(-1, 1), np.asarray(n).reshape(-1, 1))
        estimates.append(accelerate.fit_accelerated(initial, jax.tree.map(jnp.asarray, stats), CONFIG).state.mu)
    return jax.block_until_ready(estimates)


def compile_and_run(num_users: int, dtype: str) -> dict:
    with jax.enable_x64(dtype == "float64"):
        k, n, _ = simulate_counts(jax.random.key(1), num_users, jnp.full(num_users, 20), jnp.asarray([0.74]), TRUTH)
        counts = np.asarray(k).reshape(-1, 1), np.asarray(n).reshape(-1, 1)
        stats, _ = compress_counts(*counts, np.dtype(dtype))
        stats = jax.tree.map(jnp.asarray, stats)
        initial = em.init(CONFIG, jnp.asarray([0.75], dtype))
        start = time.perf_counter()
        compiled = accelerate.fit_accelerated.lower(initial, stats, CONFIG).compile()
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
        e2e_sizes, study, compile_sizes = [(100_000, 20), (1_000_000, 20)], (64, 10_000, 20), [1000, 1_000_000]
        dtypes = ["float32", "float64"]
    with tempfile.TemporaryDirectory() as folder:
        e2e = [end_to_end(m, n, Path(folder)) for m, n in e2e_sizes]
    replications, num_users, labels = study
    key = jax.random.key(2)
    vmapped_s = median_seconds(lambda: study_vmapped(key, replications, num_users, labels), 2, jax.block_until_ready)
    loop_s = median_seconds(lambda: study_loop(key, replications, num_users, labels), 1)
    studies = [{"R": replications, "m": num_users, "n": labels, "vmapped_per_s": replications / vmapped_s,
                "loop_per_s": replications / loop_s, "speedup": loop_s / vmapped_s}]
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
