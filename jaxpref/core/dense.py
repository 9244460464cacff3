"""The dense per-user EM path near the compute limit, chunked over users.

When the statistics do not compress (per-label p, many groups) and neither mu nor the
nodes move, the per-user log-likelihood table ``L[j, g]`` is fixed for the whole fit.
Plain EM still pays a log-sum-exp over the ``(num_users, num_grid)`` table every
iteration: an ``exp`` per entry, the dominant cost. Here ``L`` is turned once into

    scaled[j, g] = exp(L[j, g] - row_max[j]),   row_max[j] = max_g L[j, g],

so that with weights ``w = exp(log_weights - shift)`` one EM iteration is two matrix-vector
products per user chunk and no ``exp`` of the table:

    f_j = sum_g scaled[j, g] w_g                     (likelihood of user j, rescaled)
    loglik = sum_j m_j (log f_j + row_max[j] + shift)
    R_g = w_g sum_j scaled[j, g] m_j / f_j           (posterior mass per node)

``R_g`` is all the M-step of a fixed-node family needs. Users are processed in fixed-size
chunks under `lax.scan`, so the chunk stays in cache between the two products and the
working memory is one chunk, whatever the number of users. A chunk holds about `CHUNK_BYTES`
of the table (`default_chunk_size`): 512 users at 64 float32 nodes.

Exactness: a ``scaled`` entry underflows when ``L`` is more than ~87 nats (float32) below
the row's maximum. That only matters when the weights sit where ``scaled`` underflowed, which
shows as a small ``f_j``; a chunk with any ``f_j < sqrt(tiny)`` is recomputed in log space
from the stored ``L`` (behind one `lax.cond`, so the exact branch costs nothing when unused;
under `jaxpref.core.driver.fit_restarts` the starts share that decision, `_for_every_start`).

Example:
    >>> import jax.numpy as jnp
    >>> from jaxpref.core import em
    >>> from jaxpref.core.families import make_family
    >>> from jaxpref.core.likelihood import LogLikTable
    >>> config = em.EMConfig(family=make_family("npmle", 4), mu_mode="per_label")
    >>> state = em.init(config, jnp.array([0.75]))
    >>> table = LogLikTable(jnp.log(jnp.array([[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]])), jnp.ones(2))
    >>> fast, _ = step(state, dense_table(table, chunk_size=8), config)
    >>> slow, _ = em.step(state, table, config)
    >>> bool(jnp.allclose(fast.family.log_weights, slow.family.log_weights, atol=1e-6))
    True
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from jaxpref.core import em
from jaxpref.io.data import CountStats, LabelStats
from jaxpref.core.likelihood import LogLikTable, log_lik_table, prob_pref_a, safe_log

__all__ = [
    "CHUNK_BYTES",
    "DenseTable",
    "default_chunk_size",
    "dense_table",
    "label_log_lik_table",
    "evaluate",
    "step",
    "check_config",
    "table_bytes",
    "to_log_lik_table",
]

#: Bytes of ``scaled`` per chunk. Measured on a 2-core Xeon (2 MiB of L2 per core), per EM
#: iteration at 1e5 users x 64 nodes: 2.1 ms with 128 KiB chunks, 4.9 ms with 1 MiB, 2.5 ms with
#: 32 KiB (loop overhead); the same optimum held at 16 and 256 nodes (benchmarks/README.md).
CHUNK_BYTES = 1 << 17


def default_chunk_size(num_grid: int, dtype: Any = np.float32) -> int:
    """Users per chunk: the largest power of two whose chunk of ``scaled`` fits in `CHUNK_BYTES`."""
    rows = max(1, CHUNK_BYTES // (num_grid * np.dtype(dtype).itemsize))
    return 1 << (rows.bit_length() - 1)


class DenseTable(NamedTuple):
    """A fixed per-user log-likelihood table, chunked and pre-exponentiated.

    Rows are users (or count patterns) padded to a whole number of chunks; padding rows
    have multiplicity 0, ``log_table`` 0 and ``scaled`` 1, so they are finite and inert.

    Attributes:
        log_table: ``(num_chunks, chunk_size, num_grid)`` L, for the exact fallback.
        scaled: ``(num_chunks, chunk_size, num_grid)`` ``exp(L - row_max)``.
        row_max: ``(num_chunks, chunk_size)`` ``max_g L``.
        multiplicity: ``(num_rows,)`` flat row weights (0 for padding); its sum is the
            number of users, as for the other statistics.
    """

    log_table: Float[Array, "num_chunks chunk_size num_grid"]
    scaled: Float[Array, "num_chunks chunk_size num_grid"]
    row_max: Float[Array, "num_chunks chunk_size"]
    multiplicity: Float[Array, " num_rows"]


@functools.partial(jax.jit, static_argnames="chunk_size")
def _from_log_table(table: Array, multiplicity: Array, chunk_size: int) -> DenseTable:
    num_rows, num_grid = table.shape
    num_chunks = -(-num_rows // chunk_size)
    pad = num_chunks * chunk_size - num_rows
    table = jnp.pad(table, ((0, pad), (0, 0)))
    multiplicity = jnp.pad(multiplicity, (0, pad))
    row_max = jnp.max(table, axis=1)
    scaled = jnp.exp(table - row_max[:, None])
    shape = (num_chunks, chunk_size)
    return DenseTable(
        table.reshape(*shape, num_grid), scaled.reshape(*shape, num_grid), row_max.reshape(shape), multiplicity
    )


@functools.partial(jax.jit, static_argnames=("num_rows", "chunk_size"))
def label_log_lik_table(
    row_index: Array, label: Array, p: Array, eta_grid: Array, num_rows: int, chunk_size: int = 1 << 16
) -> Array:
    """``(num_rows, num_grid)`` L from per-label data, scanning over label chunks.

    Same values as `jaxpref.core.likelihood.log_lik_table` on `LabelStats`, but the
    ``(num_labels, num_grid)`` intermediate is never formed: memory is the table plus one
    chunk of labels.

    Args:
        row_index: ``(num_labels,)`` row of each label in ``[0, num_rows)``.
        label: ``(num_labels,)`` 1.0 if the label chose A, else 0.0.
        p: ``(num_labels,)`` per-label probability that an attentive user prefers A.
        eta_grid: ``(num_grid,)`` nodes.
        num_rows: number of rows of the table (static).
        chunk_size: labels per chunk (static).
    """
    num_labels = row_index.shape[0]
    num_chunks = max(1, -(-num_labels // chunk_size))
    pad = num_chunks * chunk_size - num_labels
    # Padding labels go to an extra segment that is dropped at the end.
    rows = jnp.pad(row_index, (0, pad), constant_values=num_rows).reshape(num_chunks, chunk_size)
    labels = jnp.pad(label, (0, pad)).reshape(num_chunks, chunk_size)
    probs = jnp.pad(p, (0, pad), constant_values=0.5).reshape(num_chunks, chunk_size)

    def add_chunk(table, chunk):
        chunk_rows, chunk_labels, chunk_p = chunk
        q = prob_pref_a(eta_grid[None, :], chunk_p[:, None])
        per_label = jnp.where(chunk_labels[:, None] > 0.5, safe_log(q), safe_log(1.0 - q))
        return table + jax.ops.segment_sum(per_label, chunk_rows, num_segments=num_rows + 1), None

    initial = jnp.zeros((num_rows + 1, eta_grid.shape[0]), eta_grid.dtype)
    table, _ = jax.lax.scan(add_chunk, initial, (rows, labels, probs))
    return table[:num_rows]


def dense_table(
    stats: LogLikTable | LabelStats | CountStats,
    eta_grid: Array | None = None,
    mu: Array | None = None,
    chunk_size: int | None = None,
) -> DenseTable:
    """Builds the fixed `DenseTable` once, before EM.

    Args:
        stats: a precomputed `LogLikTable`; `LabelStats` (per-label p; needs ``eta_grid``);
            or `CountStats` with a known mu (needs ``eta_grid`` and ``mu``).
        eta_grid: ``(num_grid,)`` the fixed nodes the fit will use.
        mu: ``(num_groups,)`` the known gaps, for `CountStats`.
        chunk_size: users per chunk (static; memory per chunk is ``chunk_size * num_grid``);
            None picks `default_chunk_size`.

    Returns:
        The `DenseTable`, in the dtype of the statistics.

    Raises:
        ValueError: a missing ``eta_grid`` / ``mu`` or a bad ``chunk_size``.
        TypeError: statistics of another type.
    """
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size={chunk_size!r} must be a positive integer (users per chunk)")
    table = _tabulate(stats, eta_grid, mu)
    if chunk_size is None:
        chunk_size = default_chunk_size(table.shape[1], table.dtype)
    multiplicity = jnp.asarray(stats.multiplicity, table.dtype)
    return _from_log_table(table, multiplicity, chunk_size)


@functools.singledispatch
def _tabulate(stats: Any, eta_grid: Array | None, mu: Array | None) -> Array:
    """``(num_rows, num_grid)`` L of the statistics (dispatched on their type), for `dense_table`."""
    raise TypeError(f"stats of type {type(stats).__name__} cannot be tabulated: pass LogLikTable, LabelStats or CountStats")


@_tabulate.register
def _(stats: LogLikTable, eta_grid: Array | None, mu: Array | None) -> Array:
    return jnp.asarray(stats.table)


@_tabulate.register
def _(stats: LabelStats, eta_grid: Array | None, mu: Array | None) -> Array:
    if eta_grid is None:
        raise ValueError("eta_grid is needed to tabulate LabelStats: pass the fixed grid of the fit")
    grid = jnp.asarray(eta_grid)
    return label_log_lik_table(
        jnp.asarray(stats.row_index), jnp.asarray(stats.label, grid.dtype), jnp.asarray(stats.p, grid.dtype),
        grid, num_rows=int(stats.multiplicity.shape[0]),
    )


@_tabulate.register
def _(stats: CountStats, eta_grid: Array | None, mu: Array | None) -> Array:
    if eta_grid is None or mu is None:
        raise ValueError("eta_grid and mu are needed to tabulate CountStats: a DenseTable is for a fixed grid and a known mu")
    return log_lik_table(jax.tree.map(jnp.asarray, stats), jnp.asarray(eta_grid), jnp.asarray(mu))


def check_config(config: em.EMConfig) -> None:
    """Raises ValueError unless the configuration keeps L fixed (fixed nodes, mu not estimated)."""
    if not config.fixed_table:
        raise ValueError(
            f"a DenseTable holds a fixed likelihood table, but {config.family} with "
            f"mu_mode={config.mu_mode!r} moves the nodes or mu: "
            "use CountStats/LabelStats with jaxpref.core.em, or fix mu and the support"
        )


def _chunk_exact(log_table: Array, multiplicity: Array, log_weights: Array) -> tuple[Array, Array]:
    log_joint = log_table + log_weights[None, :]
    per_row = jax.nn.logsumexp(log_joint, axis=1)
    responsibility = jnp.exp(log_joint - per_row[:, None])
    return jnp.sum(multiplicity * per_row), multiplicity @ responsibility


def _for_every_start(needed: Array) -> Array:
    """``needed`` of any start, when the caller vmaps over the starts (`em.RESTART_AXIS`); else as is.

    Under vmap a `lax.cond` whose predicate differs between starts runs both branches for every
    start (a select): the exact log-space pass then ran on every iteration of a default fit with
    restarts. With the decision shared, the exact pass runs only when some start needs it (and is
    exact for every start).
    """
    try:
        return jax.lax.psum(needed.astype(jnp.int32), em.RESTART_AXIS) > 0
    except NameError:  # not under fit_restarts' vmap: this start decides alone
        return needed


def _sweep(state: em.EMState, table: DenseTable) -> tuple[Array, Array]:
    """``(loglik, node_totals)``: one fast pass over the chunks, then exact fix-ups if needed."""
    log_weights = state.family.log_weights
    shift = jnp.max(log_weights)
    weights = jnp.exp(log_weights - shift)
    threshold = jnp.sqrt(jnp.finfo(table.scaled.dtype).tiny)
    num_chunks, chunk_size, _ = table.scaled.shape
    multiplicity = table.multiplicity.reshape(num_chunks, chunk_size)

    def fast_chunk(_, chunk):
        scaled, row_max, chunk_multiplicity = chunk
        rescaled = scaled @ weights
        real = chunk_multiplicity > 0
        safe = jnp.where(real, rescaled, 1.0)
        loglik = jnp.sum(chunk_multiplicity * (jnp.log(safe) + row_max + shift))
        totals = weights * ((chunk_multiplicity / safe) @ scaled)
        return None, (loglik, totals, jnp.any(real & (rescaled < threshold)))

    _, (logliks, totals, needs_exact) = jax.lax.scan(
        fast_chunk, None, (table.scaled, table.row_max, multiplicity)
    )
    needs_exact = _for_every_start(needs_exact)

    def fix_up():
        # Only chunks flagged by the fast pass are recomputed in log space. The branch sits
        # outside the fast loop: a cond per chunk in the hot loop costs 2-5x on CPU.
        def fix_chunk(_, chunk):
            log_table, chunk_multiplicity, needed, loglik, chunk_totals = chunk
            exact = lambda: _chunk_exact(log_table, chunk_multiplicity, log_weights)
            return None, jax.lax.cond(needed, exact, lambda: (loglik, chunk_totals))

        _, fixed = jax.lax.scan(fix_chunk, None, (table.log_table, multiplicity, needs_exact, logliks, totals))
        return fixed

    logliks, totals = jax.lax.cond(jnp.any(needs_exact), fix_up, lambda: (logliks, totals))
    return jnp.sum(logliks), jnp.sum(totals, axis=0)


def evaluate(state: em.EMState, table: DenseTable, config: em.EMConfig) -> em.EMInfo:
    """Log-likelihood and objective at ``state`` (mu is fixed, so they are equal up to the prior term)."""
    loglik, _ = _sweep(state, table)
    return em.EMInfo(loglik, loglik + em.log_prior(config, state.mu))


def step(state: em.EMState, table: DenseTable, config: em.EMConfig) -> tuple[em.EMState, em.EMInfo]:
    """One EM iteration on a fixed table; same contract as `jaxpref.core.em.step`.

    Args:
        state: current parameters; its ``eta_grid`` must be the grid the table was built on.
        table: the `DenseTable`.
        config: static configuration with fixed nodes and mu (see `check_config`).

    Returns:
        ``(new_state, info)`` with the log-likelihood and objective at the input state.
    """
    check_config(config)
    loglik, node_totals = _sweep(state, table)
    info = em.EMInfo(loglik, loglik + em.log_prior(config, state.mu))
    new_family = config.family.m_step(state.family, node_totals, None)
    return em.EMState(new_family, state.mu), info


@em.step_on.register
def _(table: DenseTable, state: em.EMState, config: em.EMConfig) -> tuple[em.EMState, em.EMInfo]:
    return step(state, table, config)


@log_lik_table.register
def _(table: DenseTable, eta_grid: Array, mu: Array) -> Array:
    # Rows line up with ``table.multiplicity`` (padding rows have multiplicity 0).
    return table.log_table.reshape(-1, table.log_table.shape[-1])


def to_log_lik_table(table: DenseTable, num_rows: int) -> LogLikTable:
    """The first ``num_rows`` rows of L as a `LogLikTable` (for posteriors after a dense fit)."""
    num_grid = table.log_table.shape[-1]
    return LogLikTable(table.log_table.reshape(-1, num_grid)[:num_rows], table.multiplicity[:num_rows])


def table_bytes(num_users: int, num_grid: int, dtype: Any = np.float32) -> int:
    """Bytes a `DenseTable` holds for ``num_users`` users: two tables plus two vectors."""
    itemsize = np.dtype(dtype).itemsize
    return itemsize * num_users * (2 * num_grid + 2)
