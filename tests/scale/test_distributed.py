"""Multi-process EM: two local JAX processes (``jax.distributed``, CPU collectives over gloo, 2 devices
each) fit users sharded over all 4 devices, and agree with the one-process fit.

Each process is a subprocess started with ``XLA_FLAGS=--xla_force_host_platform_device_count=2`` and a
coordinator on a free localhost port. Two ways of placing the data are checked: every process holds
all users and `jaxpref.scale.sharding.fit_sharded` places them (``jax.device_put`` of identical
host data), and each process holds only its own users, assembled with
``jax.make_array_from_process_local_data`` (the multi-host recipe of docs/scale.md). The reference is
`jaxpref.core.driver.fit` on one device in the test process, float64.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxpref.core import driver, em
from jaxpref.core.families import make_family
from jaxpref.io.data import CountStats

NUM_ROWS = 203  # not a multiple of 4: exercises the padding
CONFIGS = {
    "npmle_prior": lambda: em.EMConfig(make_family("npmle", 16), "prior", (8.0, 2.0), tol=1e-12, max_iter=3000),
    "two_point_prior": lambda: em.EMConfig(make_family("two_point", support=(0.1, 0.9)), "prior", (8.0, 2.0)),
}

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax
    jax.config.update("jax_enable_x64", True)
    process_id, port = int(sys.argv[1]), int(sys.argv[2])
    jax.distributed.initialize(f"localhost:{port}", num_processes=2, process_id=process_id,
                               initialization_timeout=120)
    import jax.numpy as jnp, numpy as np
    from jax.sharding import NamedSharding, PartitionSpec
    from jaxpref.core import driver, em
    from jaxpref.io.data import CountStats
    from jaxpref.scale.sharding import USER_AXIS, fit_sharded, user_mesh
    from test_distributed import CONFIGS, counts

    stats = counts()
    mesh = user_mesh()
    rows = NamedSharding(mesh, PartitionSpec(USER_AXIS))
    # This process's users: its share of the rows padded to a multiple of 4 with inert rows (multiplicity 0).
    padded = CountStats(*(np.concatenate([np.asarray(leaf), np.zeros((1,) + leaf.shape[1:])]) for leaf in stats))
    share = padded.multiplicity.shape[0] // jax.process_count()
    own = slice(process_id * share, (process_id + 1) * share)
    local = CountStats(*(leaf[own] for leaf in padded))
    global_stats = CountStats(*(jax.make_array_from_process_local_data(rows, leaf) for leaf in local))
    results = {"processes": jax.process_count(), "devices": jax.device_count(),
               "local_devices": jax.local_device_count(),
               "devices_holding_rows": len(global_stats.multiplicity.sharding.device_set)}
    for name, make_config in CONFIGS.items():
        config = make_config()
        start = em.init(config, jnp.asarray([0.8, 0.7]))
        every_process_all_users = fit_sharded(start, stats, config, mesh)
        own_users_only = driver.fit(jax.device_put(start, NamedSharding(mesh, PartitionSpec())), global_stats, config)
        results[name] = {
            key: {"objective": float(out.objective), "mu": np.asarray(out.state.mu).tolist(),
                  "weights": np.exp(np.asarray(out.state.family.log_weights)).tolist(),
                  "converged": bool(out.converged), "num_iter": int(out.num_iter)}
            for key, out in (("all_users", every_process_all_users), ("own_users", own_users_only))
        }
    print("RESULT " + json.dumps(results), flush=True)
    """
)


def counts() -> CountStats:
    """The users of the test (same in every process): two groups, multiplicities 1-4."""
    rng = np.random.default_rng(0)
    n = rng.integers(1, 20, (NUM_ROWS, 2)).astype(float)
    k = rng.binomial(n.astype(int), 0.7).astype(float)
    return CountStats(k, n, rng.integers(1, 5, NUM_ROWS).astype(float))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


def run_processes(tmp_path: Path) -> list[dict]:
    here = Path(__file__).resolve()
    environment = dict(
        os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu",
        PYTHONPATH=os.pathsep.join([str(here.parents[2]), str(here.parent), os.environ.get("PYTHONPATH", "")]),
    )
    port = free_port()
    processes = [
        subprocess.Popen([sys.executable, "-c", SCRIPT, str(index), str(port)], cwd=tmp_path, env=environment,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for index in range(2)
    ]
    outputs = []
    try:
        for process in processes:
            stdout, stderr = process.communicate(timeout=400)
            assert process.returncode == 0, stderr[-3000:]
            outputs.append(json.loads(next(line[7:] for line in stdout.splitlines() if line.startswith("RESULT "))))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()
    return outputs


def test_two_processes_fit_like_one(tmp_path):
    outputs = run_processes(tmp_path)
    assert outputs[0] == outputs[1]  # every process holds the same replicated fit
    result = outputs[0]
    assert (result["processes"], result["devices"], result["local_devices"]) == (2, 4, 2)
    assert result["devices_holding_rows"] == 4
    stats = counts()
    with jax.enable_x64(True):
        for name, make_config in CONFIGS.items():
            config = make_config()
            stats64 = CountStats(*(jnp.asarray(leaf) for leaf in stats))
            single = driver.fit(em.init(config, jnp.asarray([0.8, 0.7])), stats64, config)
            assert bool(single.converged), name
            for placement in ("all_users", "own_users"):
                sharded = result[name][placement]
                assert sharded["converged"], (name, placement)
                # Only the order of the floating-point sums differs between one device and four.
                np.testing.assert_allclose(sharded["objective"], float(single.objective), rtol=1e-10)
                np.testing.assert_allclose(sharded["mu"], np.asarray(single.state.mu), rtol=1e-6)
                if name == "two_point_prior":
                    # Identified weights (npmle weights on a fine grid trade mass on a flat ridge: not compared).
                    np.testing.assert_allclose(
                        sharded["weights"], np.exp(np.asarray(single.state.family.log_weights)), rtol=1e-6, atol=1e-9
                    )
