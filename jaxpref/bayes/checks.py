"""Diagnostics that speak, and posterior / prior predictive checks of per-user counts.

`convergence_problems` reads an `arviz.InferenceData` and returns one sentence per problem,
each with its fix: r-hat above 1.01, bulk or tail ESS below 400, divergent transitions,
low E-BFMI, saturated tree depth (Vehtari et al. 2021; Betancourt 2017). `pareto_k_problems`
does the same for PSIS-LOO. `fit_bayes` and `compare` raise them as `ConvergenceWarning`.

`predictive_check` compares the observed per-user counts with replicated ones
(``posterior_predictive`` or ``prior_predictive`` of the InferenceData). The statistic is the
chi-square distance between the histogram of the users' shares ``k_jg / n_jg`` (ten bins per
group) and its predictive expectation; the Bayesian p-value is the share of replications at
least as far from the expectation as the data (Gelman, Meng & Stern 1996). A p-value near 0
says the model does not reproduce how users' counts spread (e.g. one mu fitted to groups with
different gaps); near 1/2 is a good fit.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

__all__ = [
    "RHAT_MAX",
    "ESS_MIN",
    "PARETO_K_MAX",
    "ConvergenceWarning",
    "convergence_problems",
    "pareto_k_problems",
    "warn",
    "PredictiveCheck",
    "predictive_check",
    "count_check",
    "plot_predictive_check",
]

RHAT_MAX = 1.01
ESS_MIN = 400.0
PARETO_K_MAX = 0.7
#: E-BFMI below this suggests the momentum resampling explores the energy poorly.
BFMI_MIN = 0.3
#: NumPyro's default maximum NUTS tree depth.
MAX_TREE_DEPTH = 10
NUM_BINS = 10


class ConvergenceWarning(UserWarning):
    """A sampler or PSIS diagnostic says the numbers may not be trustworthy."""


def convergence_problems(idata: Any, var_names: list[str]) -> list[str]:
    """One sentence with its fix per failed MCMC diagnostic (empty when all pass).

    Args:
        idata: `arviz.InferenceData` with ``posterior`` and, for NUTS, ``sample_stats``.
        var_names: parameters whose r-hat and ESS are checked.
    """
    import arviz as az

    problems = []
    more_draws = "run longer chains (num_warmup, num_samples) or more of them (num_chains)"
    if idata.posterior.sizes["chain"] > 1:
        rhat = az.rhat(idata, var_names=var_names)
        worst = {name: float(np.max(rhat[name].values)) for name in var_names}
        bad = {name: value for name, value in worst.items() if value > RHAT_MAX}
        if bad:
            listed = ", ".join(f"{name} {value:.3f}" for name, value in bad.items())
            problems.append(f"r_hat > {RHAT_MAX} ({listed}): the chains disagree; {more_draws}")
    for method in ("bulk", "tail"):
        ess = az.ess(idata, var_names=var_names, method=method)
        low = {name: float(np.min(ess[name].values)) for name in var_names}
        low = {name: value for name, value in low.items() if value < ESS_MIN}
        if low:
            listed = ", ".join(f"{name} {value:.0f}" for name, value in low.items())
            problems.append(f"{method} ESS < {ESS_MIN:.0f} ({listed}): too few effective draws; {more_draws}")
    if "sample_stats" not in idata.groups():
        return problems
    stats = idata.sample_stats
    divergences = int(stats["diverging"].values.sum())
    if divergences:
        problems.append(
            f"{divergences} divergent transitions: the posterior has regions NUTS cannot follow; raise "
            "target_accept (e.g. 0.95 or 0.99), and for form='explicit' use the marginal form"
        )
    if "energy" in stats:
        bfmi = np.atleast_1d(az.bfmi(idata))
        if np.any(bfmi < BFMI_MIN):
            problems.append(
                f"E-BFMI {float(bfmi.min()):.2f} < {BFMI_MIN}: the energy is explored poorly (heavy tails); "
                "reparameterise or use the marginal form"
            )
    if "tree_depth" in stats and float((stats["tree_depth"].values >= MAX_TREE_DEPTH).mean()) > 0.01:
        problems.append(f"NUTS hit its maximum tree depth {MAX_TREE_DEPTH} in over 1% of draws: {more_draws}")
    return problems


def pareto_k_problems(pareto_k: np.ndarray, model: str, user_ids: Any) -> list[str]:
    """The PSIS-LOO warning of one model: users whose Pareto k exceeds `PARETO_K_MAX`."""
    bad = np.flatnonzero(np.asarray(pareto_k) > PARETO_K_MAX)
    if bad.size == 0:
        return []
    shown = ", ".join(repr(user) for user in np.asarray(user_ids)[bad[:5]])
    return [
        f"{model}: {bad.size} users with Pareto k > {PARETO_K_MAX} ({shown}{', ...' if bad.size > 5 else ''}): "
        "PSIS-LOO is unreliable for them; their data are influential (few labels, extreme counts). "
        "Compare with method='waic' as a check, refit leaving those users out, or trust the Bayes factor"
    ]


def warn(problems: list[str], what: str) -> None:
    """Raises each problem as a `ConvergenceWarning` prefixed by ``what``."""
    for problem in problems:
        warnings.warn(f"{what}: {problem}", ConvergenceWarning, stacklevel=3)


class PredictiveCheck(NamedTuple):
    """A posterior (or prior) predictive check of per-user counts.

    Attributes:
        table: one row per group: ``group, chi2, p_value`` (plus a row ``all`` pooling them).
        observed: ``(num_groups, NUM_BINS)`` users per bin of ``k / n`` in the data.
        replicated: ``(num_replications, num_groups, NUM_BINS)`` the same in each replication.
    """

    table: pd.DataFrame
    observed: np.ndarray
    replicated: np.ndarray


def _share_histograms(k: np.ndarray, n: np.ndarray) -> np.ndarray:
    """``(..., num_groups, NUM_BINS)`` users per bin of ``k/n`` (users without labels in a group skipped)."""
    share = np.where(n > 0, k / np.maximum(n, 1), np.nan)
    bins = np.clip(np.floor(share * NUM_BINS), 0, NUM_BINS - 1)
    one_hot = bins[..., None] == np.arange(NUM_BINS)
    return one_hot.sum(axis=-3)


def predictive_check(idata: Any, group: str = "posterior_predictive") -> PredictiveCheck:
    """Chi-square Bayesian p-value of the histogram of users' shares ``k/n``, per group and pooled.

    Args:
        idata: `arviz.InferenceData` from `jaxpref.bayes.model.fit_bayes` (``observed_data.k``,
            ``constant_data.n`` and ``group`` holding ``k`` with dims ``(chain, draw, user, group)``).
        group: ``posterior_predictive`` or ``prior_predictive``.

    Returns:
        A `PredictiveCheck`.
    """
    replicated_k = idata[group]["k"].values
    return count_check(
        idata.observed_data["k"].values,
        idata.constant_data["n"].values,
        replicated_k.reshape((-1,) + replicated_k.shape[2:]),
        [str(name) for name in idata.observed_data["group"].values],
    )


def count_check(observed_k: np.ndarray, n: np.ndarray, replicated_k: np.ndarray, names: list[str]) -> PredictiveCheck:
    """`predictive_check` on arrays.

    Args:
        observed_k, n: ``(num_users, num_groups)`` observed counts and labels.
        replicated_k: ``(num_replications, num_users, num_groups)`` replicated counts.
        names: ``num_groups`` group names.
    """
    observed = _share_histograms(observed_k, n)
    replicated = _share_histograms(replicated_k, n[None])
    expected = replicated.mean(axis=0)
    # Bins no replication ever fills carry no information (and would divide by zero).
    scale = np.where(expected > 0, expected, np.inf)

    def chi2(histograms):
        return np.sum(np.square(histograms - expected) / scale, axis=-1)

    observed_chi2, replicated_chi2 = chi2(observed), chi2(replicated)
    rows = [
        {"group": name, "chi2": float(observed_chi2[g]), "p_value": float(np.mean(replicated_chi2[:, g] >= observed_chi2[g]))}
        for g, name in enumerate(names)
    ]
    if len(names) > 1:
        total, replicated_total = observed_chi2.sum(), replicated_chi2.sum(axis=1)
        rows.append({"group": "all", "chi2": float(total), "p_value": float(np.mean(replicated_total >= total))})
    return PredictiveCheck(pd.DataFrame(rows), observed, replicated)


def plot_predictive_check(check: PredictiveCheck, title: str = "posterior predictive check"):
    """Observed users per bin of ``k/n`` (dots) against the 5-95 % predictive band, one panel per group.

    Returns:
        The matplotlib figure.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = check.table["group"].tolist()[: check.observed.shape[0]]
    figure, axes = plt.subplots(1, len(groups), figsize=(4 * len(groups), 3), squeeze=False)
    centres = (np.arange(NUM_BINS) + 0.5) / NUM_BINS
    lower, median, upper = np.quantile(check.replicated, [0.05, 0.5, 0.95], axis=0)
    for g, (axis, name) in enumerate(zip(axes[0], groups)):
        axis.fill_between(centres, lower[g], upper[g], step="mid", alpha=0.3, label="replicated 5-95 %")
        axis.step(centres, median[g], where="mid", label="replicated median")
        axis.plot(centres, check.observed[g], "o", color="black", label="data")
        p_value = check.table.loc[check.table["group"] == name, "p_value"].iloc[0]
        axis.set(title=f"group {name}: p = {p_value:.2f}", xlabel="share of labels preferring A (k/n)",
                 ylabel="users")
    axes[0, 0].legend(fontsize="small")
    figure.suptitle(title)
    figure.tight_layout()
    return figure
