"""The fitting loop: EM or SQUAREM inside one `lax.while_loop`, the Newton polish, restarts.

`fit` runs the EM map (`jaxpref.core.em.step`, or `jaxpref.core.dense.step` on a fixed table) or
safeguarded SQUAREM cycles (`jaxpref.core.accelerate`) until the objective changes by less than
``config.tol`` per user, then hands the point to `jaxpref.core.polish`, which finishes on the exact
objective with Newton steps and certifies the result: ``converged`` means the bound on the
objective still to gain is at most ``config.gap_tol`` nats. A slow EM step alone never counts.

`fit_restarts` runs several starts (the deterministic default, a boundary start with no attentive
users and mu at its prior mode, and random starts) in one vmapped computation, or one after
another where batching costs more than the starts (`starts_together`), keeps the best and
polishes it; a concave fit runs one start.

Example:
    >>> import jax.numpy as jnp
    >>> from jaxpref.core import em
    >>> from jaxpref.io.data import CountStats
    >>> from jaxpref.core.families import make_family
    >>> stats = CountStats(jnp.array([[9.0], [5.0]]), jnp.array([[10.0], [10.0]]), jnp.array([60.0, 40.0]))
    >>> config = em.EMConfig(family=make_family("two_point", support=(0.0, 1.0)), mu_mode="known")
    >>> result = fit(em.init(config, mu=jnp.array([0.9])), stats, config)
    >>> bool(result.converged), bool(result.optimality_gap <= config.gap_tol)
    (True, True)
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jaxtyping import Array

from jaxpref.core import em, polish
from jaxpref.core.accelerate import squarem_cycle
from jaxpref.core.likelihood import Stats
from jaxpref.core.program_cache import cached_jit
from jaxpref.checks import METHODS
from jaxpref.io.data import LabelStats

__all__ = ["fit", "fit_restarts", "finish", "boundary_start", "starts_together"]

#: EM hands over to the polish once the objective changes by less than this many units in the
#: last place of its float dtype (or by ``tol`` per user, whichever is larger).
RESOLUTION_ULPS = 4.0


def _em_loop(initial_state: em.EMState, stats: Stats, config: em.EMConfig,
             method: str) -> tuple[em.EMState, Array, Array, Array]:
    """EM or SQUAREM until the objective changes by at most ``tol`` per user or by round-off
    (`RESOLUTION_ULPS`), or ``max_iter``.

    Returns:
        ``(state, num_iter, loglik_trace, objective_trace)``.
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r} is unknown: choose one of {', '.join(METHODS)}")
    dtype = initial_state.mu.dtype
    num_users = jnp.sum(stats.multiplicity)
    nan_trace = jnp.full((config.max_iter,), jnp.nan, dtype)

    resolution = RESOLUTION_ULPS * jnp.finfo(dtype).eps

    def keep_going(carry):
        _, _, previous, current, iteration, _, _ = carry
        # A change below a few units in the last place of the objective is round-off, not progress:
        # in float32 at 1e8 users (objective ~1e9 nats) it is ~100 nats, so the per-user tolerance
        # alone never stopped EM (it ran to max_iter); the float64 polish takes over from there.
        threshold = jnp.maximum(config.tol * num_users, resolution * jnp.abs(current))
        changed = jnp.abs(current - previous) > threshold
        return (iteration < config.max_iter) & ((iteration < 2) | changed)

    def body(carry):
        state, step_max, _, current, iteration, loglik_trace, objective_trace = carry
        if method == "squarem":
            new_state, step_max, info = squarem_cycle(state, step_max, stats, config)
        else:
            new_state, info = em.step(state, stats, config)
        return (
            new_state,
            step_max,
            current,
            info.objective,
            iteration + 1,
            loglik_trace.at[iteration].set(info.loglik),
            objective_trace.at[iteration].set(info.objective),
        )

    inf = jnp.asarray(jnp.inf, dtype)
    carry = (initial_state, jnp.ones((), dtype), -inf, -inf, jnp.zeros((), jnp.int32), nan_trace, nan_trace)
    state, _, _, _, iteration, loglik_trace, objective_trace = jax.lax.while_loop(keep_going, body, carry)
    return state, iteration, loglik_trace, objective_trace


def _finish(state: em.EMState, stats: Stats, config: em.EMConfig, num_iter: Array,
            loglik_trace: Array, objective_trace: Array) -> em.FitOutput:
    if config.polish:
        result = polish.polish(state, stats, config)
        state, loglik, objective, gap, num_newton = result
    else:
        loglik, objective = em.objective(state, stats, config)
        gap, num_newton = jnp.full((), jnp.nan, objective.dtype), jnp.zeros((), jnp.int32)
    return em.FitOutput(state, loglik, objective, num_iter, gap <= config.gap_tol, loglik_trace, objective_trace,
                        gap, num_newton)


@functools.partial(jax.jit, static_argnames=("config", "method"))
def fit(initial_state: em.EMState, stats: Stats, config: em.EMConfig,
        method: str = "squarem") -> em.FitOutput:
    """Fits from one start: EM (``method="em"``) or SQUAREM (default), then the Newton polish.

    Vmappable over ``initial_state`` (restarts) and ``stats`` (replications).

    Args:
        initial_state: starting parameters.
        stats: `CountStats`, `LabelStats`, `LogLikTable` or `jaxpref.core.dense.DenseTable`.
        config: static EM configuration.
        method: ``"squarem"`` or ``"em"``.

    Returns:
        A `jaxpref.core.em.FitOutput`; the traces hold the objective at the start of each EM
        iteration (never decreasing), ``converged`` is the certificate's verdict.
    """
    state, num_iter, loglik_trace, objective_trace = _em_loop(initial_state, stats, config, method)
    return _finish(state, stats, config, num_iter, loglik_trace, objective_trace)


@functools.partial(jax.jit, static_argnames="config")
def finish(state: em.EMState, stats: Stats, config: em.EMConfig) -> polish.PolishResult:
    """Polishes and certifies an EM point (`jaxpref.core.polish.polish`), compiled once per model and shape."""
    return polish.polish(state, stats, config)


def boundary_start(config: em.EMConfig, mu: Array) -> em.EMState:
    """A start with (almost) no attentiveness and mu at the mode of its prior.

    EM cannot leave the ridge ``mu = 1/2`` (where eta does not matter) once it is there, so on
    data with little signal (all labels B, one label per user) the default start can end there,
    nats below the optimum at eta = 0. This start reaches that optimum.
    """
    family = config.family.boundary(em.init(config, mu).family)
    if config.mu_mode == "prior":
        a, b = config.mu_prior
        mode = (a - 1.0) / (a + b - 2.0) if a + b > 2.0 else 0.75
        mu = jnp.full_like(mu, min(max(mode, 0.5 + 1e-3), 1.0 - 1e-3))
    elif config.mu_mode == "free":
        mu = jnp.full_like(mu, 0.75)
    return em.EMState(family, mu)


@cached_jit(static_argnames=("config", "num_restarts", "method"))
def fit_restarts(
    key: Array, stats: Stats, config: em.EMConfig, mu: Array, num_restarts: int,
    method: str = "squarem",
) -> tuple[em.FitOutput, em.FitOutput]:
    """Runs ``num_restarts + 1`` EM fits, keeps the best and polishes it.

    Start 0 is the deterministic default, start 1 the `boundary_start`, the others random starts
    drawn from distinct keys (P_eta parameters, and mu when it is estimated). Where
    `starts_together` says so, the starts are vmapped over the axis `em.RESTART_AXIS` (so the
    dense table's exact-pass decision is shared by the starts and stays a `lax.cond`,
    `jaxpref.core.dense`); otherwise they run one after another with `lax.map`.

    When the objective is concave (``config.concave``: a fixed table and free node weights, as
    npmle or a two_point support with mu known or per-label p), every start with positive weights
    reaches the same optimal value, so only the default start runs: restarts would multiply the
    cost of each iteration (2.5x for npmle with the default 5 starts on a dense table of 1e5 users x
    64 nodes, `benchmarks/README.md`) and find nothing better.

    Args:
        key: PRNG key for the random starts.
        stats: the statistics (or a `jaxpref.core.dense.DenseTable`).
        config: static configuration.
        mu: ``(num_groups,)`` the known gap, or the starting gap when it is estimated.
        num_restarts: number of default and random starts (>= 1).
        method: ``"squarem"`` (accelerated EM, the default) or ``"em"`` (plain EM).

    Returns:
        ``(best, all_fits)``: the polished fit of the start with the highest EM objective, and
        the unpolished EM fits of every start stacked along a leading axis (certificate NaN; one
        fit when ``config.concave``).
    """
    unpolished = config._replace(polish=False)

    def one(start):
        state, num_iter, loglik_trace, objective_trace = _em_loop(start, stats, config, method)
        return _finish(state, stats, unpolished, num_iter, loglik_trace, objective_trace)

    if config.concave:
        fits = jax.tree.map(lambda leaf: leaf[None], one(em.init(config, mu)))
    elif starts_together(stats):
        fits = jax.vmap(one, axis_name=em.RESTART_AXIS)(_starts(key, config, mu, num_restarts))
    else:
        fits = jax.lax.map(one, _starts(key, config, mu, num_restarts))
    scores = jnp.where(jnp.isfinite(fits.objective), fits.objective, -jnp.inf)
    best = jax.tree.map(lambda leaf: leaf[jnp.argmax(scores)], fits)
    if config.polish:  # unpolished, the best start's fit is final as it stands
        best = _finish(best.state, stats, config, best.num_iter, best.loglik_trace, best.objective_trace)
    return best, fits


@functools.singledispatch
def starts_together(stats: Stats) -> bool:
    """Whether `fit_restarts` vmaps its starts over these statistics (dispatched on their type).

    True by default: on count rows and dense tables the starts share each read of the statistics,
    and their products batch into matrix products (five npmle starts on a dense table cost 2-3x
    one start per iteration, `benchmarks/README.md`).
    """
    return True


@starts_together.register
def _(stats: LabelStats) -> bool:
    # Per-label rows are scattered to their users and gathered back every iteration. Batched over
    # five starts, XLA's CPU scatter cost 8x one start's and the gather 11x (1e6 labels), so five
    # starts one after another are cheaper than together: a default two_point per-label fit of 1e5
    # users x 10 labels took 4.5 s instead of 8.6 s, with the same optimum.
    return False


def _starts(key: Array, config: em.EMConfig, mu: Array, num_restarts: int) -> em.EMState:
    """The ``num_restarts + 1`` starts of `fit_restarts`, stacked along a leading axis."""
    dtype = mu.dtype
    keys = jax.random.split(key, num_restarts)

    def random_start(restart_key):
        family_key, mu_key = jax.random.split(restart_key)
        state = em.init(config, mu, family_key)
        if config.estimates_mu:
            state = state._replace(mu=jax.random.uniform(mu_key, mu.shape, dtype, 0.55, 0.95))
        return state

    starts = jax.vmap(random_start)(keys)
    starts = jax.tree.map(lambda first, rest: rest.at[0].set(first), em.init(config, mu), starts)
    return jax.tree.map(lambda rest, extra: jnp.concatenate([rest[:1], extra[None], rest[1:]]), starts,
                        boundary_start(config, mu))
