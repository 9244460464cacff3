"""Multi-device EM: users sharded over a `jax.sharding.Mesh`, sums reduced across devices.

Every EM quantity is a sum over users (rows) of per-row terms, so splitting rows across
devices and all-reducing the sums gives the same fit as one device (up to the order of
floating-point additions). `shard_stats` pads the rows to a multiple of the device count
(padding rows have multiplicity 0) and places them with a ``NamedSharding`` over the
``"users"`` axis; the jitted fit (`jaxpref.core.driver.fit`)
then run sharded as they are: XLA's partitioner keeps the per-row work on each device and
inserts the all-reduces (a ``psum``) for the sums. The small parameter state is replicated.

Multi-host (clusters, TPU pods): call ``jax.distributed.initialize()`` first on every
process; `user_mesh` then spans ``jax.devices()``, all devices of all hosts. Each process
builds the statistics of its own users (e.g. `jaxpref.scale.streaming.stream_counts` on its share of
the parquet files) padded to the same number of rows, and assembles the global arrays with
``jax.make_array_from_process_local_data(NamedSharding(mesh, PartitionSpec("users")), local)``
instead of `shard_stats`; the fit call is unchanged.

Example:
    >>> import jax.numpy as jnp
    >>> from jaxpref.core import em
    >>> from jaxpref.io.data import CountStats
    >>> from jaxpref.core.families import make_family
    >>> stats = CountStats(jnp.array([[9.0], [5.0]]), jnp.array([[10.0], [10.0]]), jnp.array([60.0, 40.0]))
    >>> config = em.EMConfig(family=make_family("npmle", 8), mu_mode="known")
    >>> out = fit_sharded(em.init(config, jnp.array([0.9])), stats, config, user_mesh())
    >>> bool(out.converged)
    True
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxpref.core import dense, driver, em
from jaxpref.io.data import CountStats
from jaxpref.core.likelihood import LogLikTable

__all__ = ["USER_AXIS", "user_mesh", "shard_stats", "fit_sharded"]

USER_AXIS = "users"


def user_mesh(devices: Any = None) -> Mesh:
    """A one-dimensional mesh over ``devices`` (default: all devices, of all hosts)."""
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), (USER_AXIS,))


def _pad_rows(array: Any, multiple: int, value: float) -> Any:
    array = jnp.asarray(array)
    pad = -array.shape[0] % multiple
    if pad == 0:
        return array
    widths = [(0, pad)] + [(0, 0)] * (array.ndim - 1)
    return jnp.pad(array, widths, constant_values=value)


@functools.singledispatch
def shard_stats(stats: Any, mesh: Mesh) -> Any:
    """Pads rows to a multiple of the mesh size and shards them over the ``"users"`` axis
    (dispatched on the statistics' type).

    Args:
        stats: `CountStats`, `LogLikTable` or `jaxpref.core.dense.DenseTable` (each chunk split
            over the devices; its row weights, one float per user, are replicated).
        mesh: a mesh with a ``"users"`` axis (see `user_mesh`).

    Returns:
        The same statistics, padded with inert rows (multiplicity 0) and sharded.

    Raises:
        TypeError: for `LabelStats` (labels of one user must stay on one device: tabulate
            them first with `jaxpref.core.dense.dense_table`).
    """
    raise TypeError(
        f"stats of type {type(stats).__name__} cannot be sharded by user: pass CountStats, LogLikTable "
        "or a DenseTable (tabulate LabelStats with jaxpref.core.dense.dense_table first)"
    )


def _rows(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec(USER_AXIS))


@shard_stats.register
def _(stats: CountStats, mesh: Mesh) -> CountStats:
    size = mesh.shape[USER_AXIS]
    return jax.device_put(CountStats(*(_pad_rows(leaf, size, 0.0) for leaf in stats)), _rows(mesh))


@shard_stats.register
def _(stats: LogLikTable, mesh: Mesh) -> LogLikTable:
    size = mesh.shape[USER_AXIS]
    padded = LogLikTable(_pad_rows(stats.table, size, 0.0), _pad_rows(stats.multiplicity, size, 0.0))
    return jax.device_put(padded, _rows(mesh))


@shard_stats.register
def _(stats: dense.DenseTable, mesh: Mesh) -> dense.DenseTable:
    # The dense sweep scans over chunks: split every chunk over the devices (axis 1), so each
    # scan step works on all devices at once; a sharded chunk axis would move whole chunks.
    table = _chunks_divisible(stats, mesh.shape[USER_AXIS])
    within_chunks = NamedSharding(mesh, PartitionSpec(None, USER_AXIS))
    return dense.DenseTable(
        jax.device_put(table.log_table, within_chunks),
        jax.device_put(table.scaled, within_chunks),
        jax.device_put(table.row_max, within_chunks),
        jax.device_put(table.multiplicity, NamedSharding(mesh, PartitionSpec())),
    )


def _chunks_divisible(table: dense.DenseTable, size: int) -> dense.DenseTable:
    """The same rows re-chunked so the chunk size is a multiple of ``size`` (padding rows inert)."""
    num_chunks, chunk_size, num_grid = table.log_table.shape
    if chunk_size % size == 0:
        return table
    new_chunk = -(-chunk_size // size) * size
    num_rows = num_chunks * chunk_size
    new_rows = -(-num_rows // new_chunk) * new_chunk
    shape = (new_rows // new_chunk, new_chunk)

    def rechunk(array: Any, value: float) -> Any:
        flat = array.reshape(num_rows, *array.shape[2:])
        return _pad_rows(flat, new_rows, value).reshape(*shape, *array.shape[2:])

    return dense.DenseTable(rechunk(table.log_table, 0.0), rechunk(table.scaled, 1.0), rechunk(table.row_max, 0.0),
                            _pad_rows(table.multiplicity, new_rows, 0.0))


def fit_sharded(
    initial_state: em.EMState,
    stats: CountStats | LogLikTable | dense.DenseTable,
    config: em.EMConfig,
    mesh: Mesh,
    method: str = "squarem",
) -> em.FitOutput:
    """Shards ``stats`` over ``mesh`` and runs `jaxpref.core.driver.fit` there.

    Args:
        initial_state: starting parameters (replicated on every device).
        stats: statistics to shard (see `shard_stats`).
        config: static EM configuration.
        mesh: the device mesh (see `user_mesh`).
        method: ``"squarem"`` or ``"em"``.

    Returns:
        The `jaxpref.core.em.FitOutput`, as from one device.
    """
    replicated = NamedSharding(mesh, PartitionSpec())
    state = jax.device_put(initial_state, replicated)
    return driver.fit(state, shard_stats(stats, mesh), config, method=method)
