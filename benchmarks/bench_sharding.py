"""Sharded vs single-device EM at scale: agreement and time, 4 devices forced on the host CPU.

Per-user statistics (one row per user, nothing compressed: the path whose cost grows with m;
two_point with estimated support, mu = 0.8 known) and the dense per-label-p table (npmle,
32 nodes) are fitted by `jaxpref.core.driver.fit` on one
device and by `jaxpref.scale.sharding.fit_sharded` over a `Mesh` of 4 devices, in float64, from the
same start. Reported: the largest difference in the fitted weights and mu, the objective
difference, iterations, and the wall times. On this 2-core CPU the 4 "devices" share 2 cores,
so the time ratio shows the partitioning overhead, not a multi-device speed-up; on a GPU/TPU
host the mesh spans real devices (multi-host: `jax.distributed.initialize`, see
`jaxpref.scale.sharding`).

    python -m benchmarks.bench_sharding [--quick] [--out DIR]
"""

from __future__ import annotations

import os

# The device count is fixed when JAX starts: force 4 host devices before importing it.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.common import RESULTS, machine, markdown_table, new_figure, save_figure, write_results  # noqa: E402
from jaxpref.core import dense, driver, em# noqa: E402
from jaxpref.io.data import CountStats, LabelStats, bucket_size  # noqa: E402
from jaxpref.core.families import make_family  # noqa: E402
from jaxpref.scale.sharding import fit_sharded, user_mesh  # noqa: E402
from jaxpref.simulate import eta_distribution, simulate_counts  # noqa: E402

TRUTH = eta_distribution("beta", alpha=3.0, beta=5.0)


def per_user_counts(num_users: int) -> CountStats:
    """One row per user (Poisson label counts, so rows rarely repeat), padded to a bucket."""
    labels = 1 + np.random.default_rng(0).poisson(19, num_users)
    k, _, _ = simulate_counts(jax.random.key(0), num_users, jnp.asarray(labels), jnp.asarray([0.8]), TRUTH)
    rows = bucket_size(num_users)
    pad = rows - num_users
    return CountStats(
        jnp.asarray(np.pad(np.asarray(k, np.float64), (0, pad)))[:, None],
        jnp.asarray(np.pad(labels.astype(np.float64), (0, pad)))[:, None],
        jnp.asarray(np.pad(np.ones(num_users), (0, pad))),
    )


def per_label_table(num_users: int, grid: jax.Array) -> dense.DenseTable:
    """The dense table of per-label p (10 labels per user, p = sigmoid(N(1.4, 1)))."""
    rng = np.random.default_rng(1)
    num_labels = 10 * num_users
    p = 1.0 / (1.0 + np.exp(-rng.normal(1.4, 1.0, num_labels)))
    eta = np.repeat(rng.beta(3.0, 5.0, num_users), 10)
    label = rng.random(num_labels) < 0.5 + eta * (p - 0.5)
    stats = LabelStats(jnp.asarray(np.repeat(np.arange(num_users), 10), jnp.int32), jnp.asarray(label, jnp.float64),
                       jnp.asarray(p), jnp.ones(num_users))
    return dense.dense_table(stats, grid)


def compare(name: str, stats, config: em.EMConfig, mu_start: float, mesh) -> dict:
    start = em.init(config, jnp.asarray([mu_start]))
    outputs, seconds = {}, {}
    for key, run in (("single", lambda: driver.fit(start, stats, config)),
                     ("sharded", lambda: fit_sharded(start, stats, config, mesh))):
        jax.block_until_ready(run())  # compile
        began = time.perf_counter()
        outputs[key] = jax.block_until_ready(run())
        seconds[key] = time.perf_counter() - began
    single, sharded = outputs["single"], outputs["sharded"]
    weights = [np.exp(np.asarray(out.state.family.log_weights)) for out in (single, sharded)]
    return {
        "case": name, "rows": int(stats.multiplicity.shape[0]), "devices": len(mesh.devices.flat),
        "max_weight_diff": float(np.max(np.abs(weights[0] - weights[1]))),
        "mu_diff": float(np.max(np.abs(np.asarray(single.state.mu) - np.asarray(sharded.state.mu)))),
        "objective_rel_diff": float(abs(sharded.objective - single.objective) / abs(single.objective)),
        "iterations": f"{int(single.num_iter)}/{int(sharded.num_iter)}",
        "single_s": seconds["single"], "sharded_s": seconds["sharded"],
        "sharded_over_single": seconds["sharded"] / seconds["single"],
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run at small sizes")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for JSON, markdown and PNG")
    args = parser.parse_args(argv)
    sizes = [2_000] if args.quick else [100_000, 1_000_000]
    mesh = user_mesh()
    rows = []
    with jax.enable_x64(True):
        for num_users in sizes:
            counts_config = em.EMConfig(make_family("two_point"), "known", tol=1e-10, max_iter=2000)
            rows.append(compare(f"per-user counts, m={num_users:.0e}", per_user_counts(num_users), counts_config,
                                0.8, mesh))
            table_config = em.EMConfig(make_family("npmle", 32), "per_label", tol=1e-10, max_iter=2000)
            grid = em.init(table_config, jnp.asarray([0.75])).family.eta_grid
            rows.append(compare(f"dense per-label p, m={num_users:.0e}", per_label_table(num_users, grid),
                                table_config, 0.75, mesh))
    table = markdown_table(rows, list(rows[0]))
    payload = {"machine": machine(), "rows": rows}
    write_results(args.out, "sharding", payload, table)
    plt, figure, axis = new_figure(figsize=(6, 3.5))
    positions = np.arange(len(rows))
    axis.bar(positions - 0.2, [r["single_s"] for r in rows], 0.4, label="1 device")
    axis.bar(positions + 0.2, [r["sharded_s"] for r in rows], 0.4, label=f"{rows[0]['devices']} devices (forced)")
    axis.set_xticks(positions, [r["case"] for r in rows], fontsize=6, rotation=15)
    axis.set_ylabel("fit seconds")
    axis.legend()
    save_figure(plt, figure, args.out / "sharding.png")
    return payload


if __name__ == "__main__":
    main()
