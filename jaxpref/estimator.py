"""The friendly layer: `fit_attentiveness` (function API) and `AttentivenessEM` (estimator).

Both validate options once, build sufficient statistics, run the jitted core of
`jaxpref.core.em`, and return tables keyed by the users' original ids. `AttentivenessEM` is a
thin crowd-kit/sklearn-style shell over `fit_attentiveness`: one implementation.

Example:
    >>> import jax
    >>> from jaxpref.simulate import simulate
    >>> sim = simulate(jax.random.key(0), num_users=300, labels_per_user=20, mu=0.8,
    ...                family="two_point", support=(0.1, 0.9), weight_hi=0.5)
    >>> model = AttentivenessEM(family="two_point", support=(0.1, 0.9), mu=0.8).fit(sim.frame)
    >>> round(model.params_["weights"][1], 1)
    0.5
"""

from __future__ import annotations

import dataclasses
import functools
import math
import statistics
import warnings
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from jaxpref.core import dense, driver, em
from jaxpref.io.data import (
    PreferenceData,
    UserCounts,
    compress_counts,
    label_stats,
    load_preferences,
    user_counts,
    warn_degenerate,
)
from jaxpref.errors import DataError, IdentifiabilityWarning
from jaxpref.core.families import make_family
from jaxpref.core.families.base import Family
from jaxpref.identifiability import warn_if_flat
from jaxpref.core.likelihood import LabelStats
from jaxpref.core.program_cache import cached_jit
from jaxpref.core.posterior import (
    count_label_attentiveness,
    per_label_attentiveness,
    user_posterior,
)
from jaxpref.core.uncertainty import free_parameters, standard_errors
from jaxpref.options import FitOptions, json_key

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["IdentifiabilityWarning", "AttentivenessFit", "fit_attentiveness", "AttentivenessEM"]


@dataclasses.dataclass(frozen=True)
class AttentivenessFit:
    """A fitted attentiveness model.

    Attributes:
        params: ``{"mu", "support", "weights", "alpha", "beta", "eta_grid"}``; ``mu`` is a
            float, a ``{group: mu}`` dict, or None with per-label p.
        standard_errors: ``{name: se}`` from the observed information (NaN on an edge).
        loglik: observed log-likelihood.
        objective: loglik plus the log-prior of mu (equal to loglik without a prior).
        num_iter: EM iterations (SQUAREM: cycles of three EM steps) before the Newton polish.
        converged: whether the certificate ``optimality_gap`` is at most ``gap_tol``.
        optimality_gap: a bound (nats, for the whole data set) on how much the objective could
            still gain: the Newton decrement, or for npmle the Kiefer-Wolfowitz bound
            (`jaxpref.core.polish`; docs/em.md).
        loglik_trace: ``(num_iter,)`` log-likelihood before each iteration.
        aic, bic: information criteria (BIC counts users as the sample size).
        users: per-user table ``user, n_labels, n_pref_a, eta_mean, eta_map, eta_sd,
            prob_attentive``, users in order of first appearance (built on first use).
        data: the validated input: label rows, or per-user counts (then per-label outputs,
            which need the rows, raise `DataError`).
        family, mu_mode, threshold, dtype: the options used.
        state, config: the core's final `EMState` and `EMConfig`.
        log_resp: ``(num_rows, num_nodes)`` log posterior over the nodes of each row of the
            statistics (a distinct count pattern, or a user with per-label p).
        row_of_user: ``(num_users,)`` each user's row of the statistics.
        row_summaries: ``{name: (num_rows,)}`` the per-user summaries of each row.
    """

    params: dict[str, Any]
    standard_errors: dict[str, float]
    loglik: float
    objective: float
    num_iter: int
    converged: bool
    optimality_gap: float
    loglik_trace: np.ndarray
    aic: float
    bic: float
    data: PreferenceData | UserCounts
    family: str
    mu_mode: str
    threshold: float
    dtype: str
    state: em.EMState = dataclasses.field(repr=False)
    config: em.EMConfig = dataclasses.field(repr=False)
    log_resp: np.ndarray = dataclasses.field(repr=False)
    row_of_user: np.ndarray = dataclasses.field(repr=False)
    row_summaries: dict[str, np.ndarray] = dataclasses.field(repr=False)

    @functools.cached_property
    def users(self) -> pd.DataFrame:
        """The per-user table ``user, n_labels, n_pref_a, eta_mean, eta_map, eta_sd, prob_attentive``,
        users in order of first appearance; built on first use from the per-row summaries
        (``row_summaries``, one row per distinct count pattern) and ``row_of_user``, so a fit that is
        only asked for its parameters never holds seven columns of ``num_users`` values."""
        import pandas as pd

        num_pref_a, num_labels = user_counts(self.data)
        # Fresh arrays handed over without a copy (pandas' copy of 1e7 object ids took 2.4 s); the
        # ids are copied from the data, so the table never aliases the caller's.
        return pd.DataFrame(
            {"user": np.array(self.data.user_ids), "n_labels": _per_user_total(num_labels),
             "n_pref_a": _per_user_total(num_pref_a),
             **{name: np.take(value, self.row_of_user) for name, value in self.row_summaries.items()}},
            copy=False,
        )

    def label_attentiveness(self) -> np.ndarray:
        """``(num_labels,)`` P(z_i = 1 | y_i, data) for every input row, in input order."""
        data = self.data
        if isinstance(data, UserCounts):
            raise DataError(
                "this model was fitted on per-user counts, which hold no label rows: per-label outputs "
                "need the rows, so fit on the labels themselves (a DataFrame or file) for labels/filtering"
            )
        if data.p is not None:
            with jax.enable_x64(self.dtype == "float64"):
                return per_label_attentiveness(
                    self.log_resp, np.asarray(self.state.family.eta_grid), data.user_index, data.p, data.label
                )
        return self.count_label_attentiveness(data.user_index, data.group_index, data.label)

    def count_label_attentiveness(
        self, user_index: np.ndarray, group_index: np.ndarray | None, label: np.ndarray
    ) -> np.ndarray:
        """P(z_i = 1 | y_i, data) of labels given by their user's position in ``users``, their
        group's position in the sorted groups (None: one group) and the label (one gap per group).

        Works for fits on rows and on per-user counts (e.g. labels streamed back from a file).
        """
        if self.mu_mode == "per_label":
            raise DataError("with per-label p each label's attentiveness needs its p: use label_attentiveness()")
        with jax.enable_x64(self.dtype == "float64"):
            if_a, if_b = count_label_attentiveness(
                jnp.asarray(self.log_resp), self.state.family.eta_grid, self.state.mu
            )
        rows = self.row_of_user[user_index]
        group = np.zeros_like(rows) if group_index is None else group_index
        return np.where(label > 0, np.asarray(if_a)[rows, group], np.asarray(if_b)[rows, group])

    def wald_intervals(self, level: float = 0.95) -> pd.DataFrame:
        """Wald intervals ``estimate +- z se`` of the free parameters, from `standard_errors`.

        The Beta shapes are positive and skewed, so their intervals are taken on the log scale
        (``exp(log estimate +- z se / estimate)``, by the delta method), where they cover far
        closer to ``level``; the others are clipped to their range.

        Returns:
            A table ``name, estimate, se, lower, upper, scale`` (NaN where the SE is NaN).
        """
        import pandas as pd

        if not 0.0 < level < 1.0:
            raise DataError(f"level={level!r} must lie in (0, 1), e.g. 0.95")
        names, values, _, _ = free_parameters(self.state, self.config)
        z = statistics.NormalDist().inv_cdf(0.5 + level / 2.0)
        rows = []
        for name, value in zip(names, np.asarray(values, np.float64)):
            se = self.standard_errors[name]
            if name in ("alpha", "beta"):
                half = z * se / value
                rows.append((name, value, se, value * math.exp(-half), value * math.exp(half), "log"))
            else:
                low, high = (0.5, 1.0) if name.startswith("mu") else (0.0, 1.0)
                rows.append((name, value, se, max(low, value - z * se), min(high, value + z * se), "natural"))
        return pd.DataFrame(rows, columns=["name", "estimate", "se", "lower", "upper", "scale"])

    @property
    def labels(self) -> pd.DataFrame:
        """The input rows (every original column) plus ``label_attentive``, ``flip_rate``
        and the user's ``eta_mean``."""
        attentive = self.label_attentiveness()
        frame = self.data.frame.copy()
        frame["label_attentive"] = attentive
        frame["flip_rate"] = (1.0 - attentive) / 2.0
        frame["eta_mean"] = self.users["eta_mean"].to_numpy()[self.data.user_index]
        return frame

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary (the CLI's ``--json`` object)."""
        return {
            "family": self.family,
            "params": {key: self.params[key] for key in ("mu", "support", "weights", "alpha", "beta")},
            "standard_errors": {k: (None if math.isnan(v) else v) for k, v in self.standard_errors.items()},
            "loglik": self.loglik,
            "n_iter": self.num_iter,
            "converged": self.converged,
            "optimality_gap": self.optimality_gap,
            "n_users": self.data.num_users,
            "n_labels": self.data.num_labels,
            "aic": self.aic,
            "bic": self.bic,
        }


def _warn_not_identified(mode: str, spec: Family) -> None:
    """mu free with moving nodes is not identified at all; other free-mu fits get the
    data-driven flat-profile check of `jaxpref.identifiability.warn_if_flat`."""
    if mode == "free" and spec.moving_nodes:
        warnings.warn(
            f"mu='free' with family={spec.name!r} and an estimated support is not identified: only "
            "eta * (mu - 1/2) enters the likelihood, so (eta, mu) and (c eta, 1/2 + (mu - 1/2)/c) fit "
            "equally well. Fix mu, give mu_prior=(8, 2), or fix the support.",
            IdentifiabilityWarning,
            stacklevel=3,
        )


def _per_user_total(counts: np.ndarray) -> np.ndarray:
    """``(num_users,)`` totals over groups of ``(num_users, num_groups)`` counts (no sum for one group)."""
    return counts[:, 0].copy() if counts.shape[1] == 1 else counts.sum(axis=1)


def _warn_shape_not_identified(spec: Family, num_labels: np.ndarray) -> None:
    """With n labels per user only the first n moments of P_eta are identified: a P_eta with
    more free parameters than the most labels any user gave (``num_labels``: ``(num_users,
    num_groups)``) is not identified by the data."""
    most = int(num_labels.max() if num_labels.shape[1] == 1 else num_labels.sum(axis=1).max())
    needed = spec.num_shape_parameters
    if needed is not None and most < needed:
        warnings.warn(
            f"family={spec.name!r} has {needed} free parameters but no user gave more than {most} label(s): "
            f"with n labels per user only the first n moments of P_eta are identified, so its parameters are "
            "not. Use a family with fewer parameters (point, or two_point with a fixed support), or data with "
            "more labels per user.",
            IdentifiabilityWarning,
            stacklevel=3,
        )


def _params_dict(state: em.EMState, spec: Family, mode: str, data: PreferenceData | UserCounts) -> dict[str, Any]:
    grid = np.asarray(state.family.eta_grid, np.float64)
    log_weights = np.asarray(state.family.log_weights)
    # A weight the fit set to 0 is stored as log(tiny) (finite, for the E-step): report it as 0.
    empty = log_weights <= np.log(np.finfo(log_weights.dtype).tiny) + 1.0
    weights = np.where(empty, 0.0, np.exp(log_weights.astype(np.float64)))
    mu_values = np.asarray(state.mu, np.float64).tolist()
    if mode == "per_label":
        mu = None
    elif data.group_ids is not None:
        mu = {json_key(g): m for g, m in zip(data.group_ids, mu_values)}
    else:
        mu = mu_values[0]
    family = dict.fromkeys(("support", "weights", "alpha", "beta"))
    family.update(spec.report(grid, weights, np.asarray(state.family.beta_shape, np.float64)))
    return {"mu": mu, **family, "eta_grid": grid.tolist()}


def _to_float64(leaf: Any) -> Any:
    """Float arrays to float64 (integer indices stay as they are)."""
    leaf = jnp.asarray(leaf)
    return leaf.astype(jnp.float64) if jnp.issubdtype(leaf.dtype, jnp.floating) else leaf


# The steps after EM are each one executable: run op by op they compiled some 45 small programs,
# most of a small fit's time on the command line.
@cached_jit(static_argnames=("config",))
def _finish_in_float64(state: em.EMState, stats: Any, config: em.EMConfig) -> tuple[Any, Any]:
    """The polished, certified fit in float64 (state in the family's canonical labelling), and
    the statistics in float64. Call under ``jax.enable_x64(True)``."""
    state, stats = jax.tree.map(_to_float64, (state, stats))
    result = driver.finish(state, stats, config)
    return result._replace(state=result.state._replace(family=config.family.canonical(result.state.family))), stats


@cached_jit(static_argnames=("dtype",))
def _user_summaries(state64: em.EMState, stats: Any, threshold: float, dtype: np.dtype) -> tuple[Any, Array, Any]:
    """The state in the output dtype, the log posterior over nodes and the per-user summaries."""
    state = jax.tree.map(lambda leaf: leaf.astype(dtype), state64)
    log_resp = em.node_log_posterior(state, stats)
    return state, log_resp, user_posterior(log_resp, state.family.eta_grid, jnp.asarray(threshold, dtype))


def fit_attentiveness(data: Any, options: FitOptions | None = None, **option_values: Any) -> AttentivenessFit:
    """Fits the attentiveness model by EM.

    Args:
        data: labels (see `jaxpref.io.data.load_preferences` for accepted inputs), or per-user
            counts as a `jaxpref.io.data.UserCounts` (from `jaxpref.scale.streaming.stream_counts` or
            `jaxpref.io.data.load_counts`; column names are then not used).
        options: a `jaxpref.options.FitOptions` (family, mu, mu_prior, support, num_grid,
            threshold, num_restarts, seed, tol, max_iter, gap_tol, dtype, method, column names);
            None uses its defaults.
        **option_values: the same options as keywords (``family="beta", mu=0.74``), applied
            over ``options``. Both ``"squarem"`` and ``"em"`` end in the same polish, so they
            reach the same optimum; ``num_iter`` counts SQUAREM cycles of three EM steps.

    Returns:
        An `AttentivenessFit`.

    Raises:
        DataError: on bad data or options (the message names the argument and the fix).
    """
    options = (options or FitOptions()).replace(**option_values)
    dtype, seed, num_restarts, threshold = options.dtype, options.seed, options.num_restarts, options.threshold
    float_dtype = np.dtype(dtype)
    spec = make_family(options.family, options.num_grid, options.support)
    if isinstance(data, UserCounts):
        if options.p_column is not None:
            raise DataError("p_column was given with per-user counts: per-label p needs the label rows")
    else:
        data = load_preferences(data, **options.columns)
    mode, mu_start, prior = options.resolve_mu(data)
    _warn_not_identified(mode, spec)
    config = em.EMConfig(family=spec, mu_mode=mode, mu_prior=prior, tol=options.tol, max_iter=options.max_iter,
                         gap_tol=options.gap_tol)

    with jax.enable_x64(dtype == "float64"):
        num_pref_a, num_labels = user_counts(data)
        warn_degenerate(num_pref_a, num_labels, mode)
        _warn_shape_not_identified(spec, num_labels)
        if data.p is None:
            stats, row_of_user = compress_counts(num_pref_a, num_labels, float_dtype)
        else:
            stats, row_of_user = label_stats(data, float_dtype), np.arange(data.num_users)
        stats = jax.tree.map(jnp.asarray, stats)
        if not spec.moving_nodes:
            warn_if_flat(stats, config, seed=seed, num_restarts=num_restarts)
        core_stats = posterior_stats = stats
        if isinstance(stats, LabelStats) and not spec.moving_nodes:
            # Per-label p on a fixed grid: L is fixed, so tabulate it once (in chunks). On a CPU the
            # chunked, pre-exponentiated DenseTable is fastest; on an accelerator the log-space step
            # over the whole table is (16x at 1e7 users x 64 nodes on an H200: benchmarks/README.md).
            grid = em.init(config, mu_start.astype(float_dtype)).family.eta_grid
            table = dense.dense_table(stats, grid)
            posterior_stats = dense.to_log_lik_table(table, stats.multiplicity.shape[0])
            core_stats = table if jax.default_backend() == "cpu" else posterior_stats
        best, _ = driver.fit_restarts(
            jax.random.key(seed), core_stats, config._replace(polish=False), jnp.asarray(mu_start, float_dtype),
            num_restarts, options.method,
        )
        with jax.enable_x64(True):
            # Polish and certify in float64: float32 resolves an objective of 1e6 nats only to ~0.1.
            result, exact_stats = _finish_in_float64(best.state, posterior_stats, config)
            state64 = result.state
            errors = standard_errors(state64, exact_stats, config)
            gap, loglik, objective = (float(value) for value in (result.optimality_gap, result.loglik, result.objective))
        state, log_resp, summaries = _user_summaries(state64, posterior_stats, threshold, float_dtype)
        log_resp = np.asarray(log_resp)
        row_summaries = {name: np.asarray(value, np.float64) for name, value in summaries._asdict().items()}

    # One parameter per free coordinate of the observed information (npmle: nodes in use - 1).
    num_params = len(errors)
    trace = np.asarray(best.loglik_trace, np.float64)[: int(best.num_iter)]
    return AttentivenessFit(
        params=_params_dict(state64, spec, mode, data),
        standard_errors=errors,
        loglik=loglik,
        objective=objective,
        num_iter=int(best.num_iter),
        converged=gap <= options.gap_tol,
        optimality_gap=gap,
        loglik_trace=trace,
        aic=2.0 * num_params - 2.0 * loglik,
        bic=num_params * math.log(data.num_users) - 2.0 * loglik,
        data=data,
        family=options.family,
        mu_mode=mode,
        threshold=threshold,
        dtype=dtype,
        state=state,
        config=config,
        log_resp=log_resp,
        row_of_user=row_of_user,
        row_summaries=row_summaries,
    )


class AttentivenessEM:
    """Estimator of users' attentiveness (crowd-kit / scikit-learn style).

    Args: as `fit_attentiveness` (model options only; column names go to `fit`).

    Attributes (after `fit`):
        params_: fitted parameters; see `AttentivenessFit.params`.
        users_: the per-user table.
        labels_: the input rows plus ``label_attentive``, ``flip_rate``, ``eta_mean``.
        loglik_, bic_, aic_, n_iter_, converged_, standard_errors_: fit diagnostics.
        result_: the full `AttentivenessFit`.

    Example:
        >>> model = AttentivenessEM(family="beta", mu=0.74)  # doctest: +SKIP
        >>> model.fit(df).users_.head()                      # doctest: +SKIP
    """

    def __init__(
        self,
        family: str = "two_point",
        *,
        mu: Any = None,
        mu_prior: tuple[float, float] | None = None,
        support: tuple[float, float] | None = None,
        num_grid: int = 64,
        threshold: float = 0.5,
        num_restarts: int = 4,
        seed: int = 0,
        tol: float = 1e-7,
        max_iter: int = 2000,
        gap_tol: float = 1e-3,
        dtype: str = "float32",
        method: str = "squarem",
    ):
        self.family = family
        self.mu = mu
        self.mu_prior = mu_prior
        self.support = support
        self.num_grid = num_grid
        self.threshold = threshold
        self.num_restarts = num_restarts
        self.seed = seed
        self.tol = tol
        self.max_iter = max_iter
        self.gap_tol = gap_tol
        self.dtype = dtype
        self.method = method

    def get_params(self) -> dict[str, Any]:
        """Model options, as scikit-learn's ``get_params``."""
        return {
            name: getattr(self, name)
            for name in (
                "family", "mu", "mu_prior", "support", "num_grid", "threshold",
                "num_restarts", "seed", "tol", "max_iter", "gap_tol", "dtype", "method",
            )
        }

    def fit(self, data: Any, **columns: str | None) -> AttentivenessEM:
        """Fits on ``data``; ``columns`` are ``user_column=``, ``label_column=``, ``p_column=``,
        ``group_column=``. Returns self."""
        self.result_ = fit_attentiveness(data, **self.get_params(), **columns)
        self.params_ = self.result_.params
        self.users_ = self.result_.users
        self.loglik_ = self.result_.loglik
        self.aic_ = self.result_.aic
        self.bic_ = self.result_.bic
        self.n_iter_ = self.result_.num_iter
        self.converged_ = self.result_.converged
        self.optimality_gap_ = self.result_.optimality_gap
        self.standard_errors_ = self.result_.standard_errors
        return self

    @property
    def labels_(self) -> pd.DataFrame:
        return self.result_.labels

    def fit_predict(self, data: Any, **columns: str | None) -> pd.DataFrame:
        """Fits and returns the per-user table."""
        return self.fit(data, **columns).users_
