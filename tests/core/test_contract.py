"""One contract, every family x every statistics type: the objective never decreases, the fit is
certified, and every way of presenting the same data reaches the same optimum (float64), on one
device and sharded over four.

The statistics types: label rows (`LabelStats` with p = mu on every label), per-user counts,
compressed counts (distinct (k, n) rows with multiplicities), a precomputed `LogLikTable` and the
chunked `DenseTable`. The last two hold a fixed likelihood table, so they apply to the families
whose nodes do not move.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpref.core import dense, driver, em
from jaxpref.io.data import CountStats, LabelStats, compress_counts
from jaxpref.core.families import make_family
from jaxpref.core.likelihood import LogLikTable, log_lik_table, marginal_loglik

MU = 0.8
FAMILIES = {
    "point": make_family("point"),
    "two_point_fixed": make_family("two_point", support=(0.1, 0.9)),
    "two_point_free": make_family("two_point"),
    "beta": make_family("beta", 8),
    "npmle": make_family("npmle", 8),
}


def data(seed=0, num_users=60):
    rng = np.random.default_rng(seed)
    n = rng.integers(1, 12, num_users)
    eta = np.where(rng.uniform(size=num_users) < 0.5, 0.9, 0.2)
    k = rng.binomial(n, 0.5 + eta * (MU - 0.5))
    return k, n


def statistics(spec, k, n):
    """Every statistics type for the same data, in float64 (call inside ``jax.enable_x64``)."""
    per_user = CountStats(jnp.asarray(k[:, None], float), jnp.asarray(n[:, None], float), jnp.ones(k.size))
    compressed, _ = compress_counts(k[:, None], n[:, None], np.float64)
    rows = np.repeat(np.arange(k.size), n)
    labels = (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n) < np.repeat(k, n)).astype(float)
    label_rows = LabelStats(jnp.asarray(rows, jnp.int32), jnp.asarray(labels), jnp.full(labels.size, MU), jnp.ones(k.size))
    stats = {"per_user": per_user, "compressed": jax.tree.map(jnp.asarray, compressed), "labels": label_rows}
    if not spec.moving_nodes:
        grid = em.init(em.EMConfig(spec, "known"), jnp.asarray([MU])).family.eta_grid
        table = LogLikTable(log_lik_table(per_user, grid, jnp.asarray([MU])), per_user.multiplicity)
        stats["log_lik_table"] = table
        stats["dense_table"] = dense.dense_table(table, chunk_size=16)
    return stats


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_statistics_type_reaches_the_same_certified_optimum(family):
    spec = FAMILIES[family]
    k, n = data()
    with jax.enable_x64(True):
        per_user_likelihoods, objectives = {}, {}
        for name, stats in statistics(spec, k, n).items():
            mode = "per_label" if name in ("labels", "log_lik_table", "dense_table") else "known"
            config = em.EMConfig(spec, mode)
            out = driver.fit(em.init(config, jnp.asarray([MU])), stats, config)
            trace = np.asarray(out.objective_trace)[: int(out.num_iter)]
            assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:])), (name, np.diff(trace).min())
            assert float(out.objective) >= trace[-1] - 1e-9 * abs(trace[-1]), name
            assert bool(out.converged) and 0.0 <= float(out.optimality_gap) <= config.gap_tol, name
            reference = statistics(spec, k, n)["per_user"]
            per_user_likelihoods[name] = np.asarray(marginal_loglik(
                reference, out.state.family.eta_grid, out.state.family.log_weights, jnp.asarray([MU]))[0])
            objectives[name] = float(out.objective)
    first = next(iter(objectives))
    for name in objectives:
        # Certified within gap_tol of the optimum, so any two fits are within 2 gap_tol of each other.
        assert abs(objectives[name] - objectives[first]) <= 2e-3, (name, objectives)
        np.testing.assert_allclose(per_user_likelihoods[name], per_user_likelihoods[first], atol=5e-3)


SHARDED_SCRIPT = """
import json, sys
import jax, jax.numpy as jnp
jax.config.update("jax_enable_x64", True)
sys.path.insert(0, sys.argv[1])
from test_contract import FAMILIES, MU, data, statistics
from jaxpref.core import driver, em
from jaxpref.scale.sharding import fit_sharded, user_mesh

k, n = data()
results = {"num_devices": len(jax.devices())}
for family, spec in FAMILIES.items():
    for name in ("per_user", "dense_table"):
        stats = statistics(spec, k, n).get(name)
        if stats is None:
            continue
        config = em.EMConfig(spec, "per_label" if name == "dense_table" else "known")
        start = em.init(config, jnp.asarray([MU]))
        one, four = driver.fit(start, stats, config), fit_sharded(start, stats, config, user_mesh())
        results[f"{family}/{name}"] = [float(one.objective), float(four.objective), bool(four.converged)]
print(json.dumps(results))
"""


@pytest.mark.slow  # ~4 minutes of compiling on 2 cores; tests/scale/test_sharding.py covers sharding in CI
def test_every_family_on_four_sharded_devices_reaches_the_one_device_optimum(tmp_path):
    """The same contract on 4 (forced host) devices: certified, and the one-device objective."""
    environment = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    completed = subprocess.run([sys.executable, "-c", SHARDED_SCRIPT, str(Path(__file__).parent)], env=environment,
                               capture_output=True, text=True, timeout=900, cwd=tmp_path, check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads(completed.stdout.strip().splitlines()[-1])
    assert results.pop("num_devices") == 4
    assert len(results) == 2 * len(FAMILIES) - 2  # moving-node families have no fixed table
    for name, (one, four, converged) in results.items():
        assert converged, name
        assert abs(four - one) <= 2e-3, (name, one, four)
