"""Multi-device EM: a fit sharded over 4 (forced host) devices equals the one-device fit.

The device count is fixed when JAX starts, so the sharded run happens in a subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=4``; the test suite's own JAX is untouched.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpref.core import em
from jaxpref.io.data import CountStats, LabelStats
from jaxpref.core.families import make_family
from jaxpref.scale.sharding import shard_stats, user_mesh

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    jax.config.update("jax_enable_x64", True)
    from jaxpref.core import dense, driver, em
    from jaxpref.io.data import CountStats
    from jaxpref.core.families import make_family
    from jaxpref.core.likelihood import LogLikTable
    from jaxpref.scale.sharding import fit_sharded, shard_stats, user_mesh

    rng = np.random.default_rng(0)
    num_rows = 203  # not a multiple of 4: exercises the padding
    n = rng.integers(1, 20, (num_rows, 2)).astype(float)
    k = rng.binomial(n.astype(int), 0.7).astype(float)
    counts = CountStats(jnp.asarray(k), jnp.asarray(n), jnp.asarray(rng.integers(1, 5, num_rows).astype(float)))
    mesh = user_mesh()
    results = {"num_devices": len(jax.devices()),
               "devices_holding_rows": len(shard_stats(counts, mesh).multiplicity.sharding.device_set)}
    cases = {
        "counts_prior": (counts, em.EMConfig(make_family("npmle", 16), "prior", (8.0, 2.0), tol=1e-12, max_iter=3000)),
        "dense_table": (
            dense.dense_table(LogLikTable(jnp.asarray(-rng.gamma(2.0, 3.0, (num_rows, 16))), jnp.ones(num_rows)),
                              chunk_size=8),
            em.EMConfig(make_family("npmle", 16), "per_label", tol=1e-12, max_iter=3000),
        ),
        # chunks of 6 rows do not split over 4 devices: shard_stats re-chunks them (8 rows)
        "dense_table_rechunked": (
            dense.dense_table(LogLikTable(jnp.asarray(-rng.gamma(2.0, 3.0, (num_rows, 16))), jnp.ones(num_rows)),
                              chunk_size=6),
            em.EMConfig(make_family("npmle", 16), "per_label", tol=1e-12, max_iter=3000),
        ),
        # identified parameters: compared to 1e-6 relative
        "two_point_prior": (counts, em.EMConfig(make_family("two_point", support=(0.1, 0.9)), "prior", (8.0, 2.0))),
    }
    sharded_table = shard_stats(cases["dense_table_rechunked"][0], mesh)
    results["table_devices"] = len(sharded_table.scaled.sharding.device_set)
    results["table_chunk"] = sharded_table.scaled.shape[1]
    for name, (stats, config) in cases.items():
        start = em.init(config, jnp.asarray([0.8, 0.7]))
        single = driver.fit(start, stats, config)
        sharded = fit_sharded(start, stats, config, mesh)
        results[name] = {
            key: [np.asarray(out.objective).tolist(), np.exp(np.asarray(out.state.family.log_weights)).tolist(),
                  np.asarray(out.state.mu).tolist(), np.asarray(out.state.family.beta_shape).tolist(),
                  bool(out.converged)]
            for key, out in (("single", single), ("sharded", sharded))
        }
    print(json.dumps(results))
    """
)


def test_sharded_fit_equals_single_device_fit(tmp_path):
    environment = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    environment["PYTHONPATH"] = str(Path(__file__).resolve().parents[2]) + os.pathsep + environment.get("PYTHONPATH", "")
    completed = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=environment,
                               timeout=600, cwd=tmp_path, check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads(completed.stdout.strip().splitlines()[-1])
    assert results["num_devices"] == 4 and results["devices_holding_rows"] == 4
    assert results["table_devices"] == 4 and results["table_chunk"] == 8
    for name in ("counts_prior", "dense_table", "dense_table_rechunked", "two_point_prior"):
        single, sharded = results[name]["single"], results[name]["sharded"]
        assert single[4] and sharded[4], name  # both certified
        np.testing.assert_allclose(sharded[0], single[0], rtol=1e-10)
        np.testing.assert_allclose(sharded[2], single[2], rtol=1e-6)
        if name == "two_point_prior":
            # Identified parameters agree to 1e-6 relative (a weight at its edge, ~1e-13, to 1e-9 absolute);
            # npmle weights on a fine grid are not identified (neighbouring nodes trade mass on a flat
            # ridge), the objective is.
            np.testing.assert_allclose(sharded[1], single[1], rtol=1e-6, atol=1e-9)
            np.testing.assert_allclose(sharded[3], single[3], rtol=1e-6)


def test_padding_rows_are_inert_on_one_device():
    with jax.enable_x64(True):
        stats = CountStats(jnp.asarray([[3.0], [1.0], [4.0]]), jnp.asarray([[5.0], [2.0], [6.0]]), jnp.ones(3))
        config = em.EMConfig(make_family("npmle", 8), "known")
        state = em.init(config, jnp.asarray([0.8]))
        mesh = user_mesh(jax.devices()[:1])
        padded = shard_stats(stats, mesh)
        np.testing.assert_allclose(em.objective(state, padded, config), em.objective(state, stats, config))


def test_label_stats_are_refused():
    stats = LabelStats(jnp.zeros(2, jnp.int32), jnp.ones(2), jnp.full(2, 0.7), jnp.ones(1))
    with pytest.raises(TypeError, match="tabulate LabelStats"):
        shard_stats(stats, user_mesh())
