"""Model comparison of P_eta families: PSIS-LOO / WAIC (NumPyro + arviz) or BIC (EM).

``compare(data, families=[...], method=...)`` fits every candidate and returns a ranked
table, best first. The pointwise unit is the user: ``l_j``, the marginal log-likelihood of
all of user j's labels (eta summed out), so leave-one-out means leave one *user* out.

Scores and ties:

- ``loo`` / ``waic``: ``score`` is the elpd (higher is better), ``se`` its standard error,
  ``diff`` = elpd(best) - elpd (>= 0) with ``diff_se`` from the paired per-user
  differences, ``weight`` the stacking weights (`arviz.compare`).
- ``bic``: ``score`` is BIC = p log(num_users) - 2 loglik at the EM estimate (lower is
  better), ``se = 2 sqrt(m var_j l_j)``, ``diff`` = BIC - BIC(best) (>= 0) with
  ``diff_se = 2 sqrt(m var_j(l_j^best - l_j))`` (as in Vuong's test) and
  ``weight = exp(-diff / 2)`` normalised (approximate posterior model probabilities).

A candidate is ``tied_with_best`` when its difference to the best is within noise:
``diff < 2 diff_se``, or below the conventional "small" thresholds, 4 on the elpd scale
(Sivula, Magnusson & Vehtari 2022) and 2 on the BIC scale (Kass & Raftery 1995).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from jaxpref.io.data import load_preferences
from jaxpref.errors import DataError
from jaxpref.options import FAMILIES

__all__ = ["METHODS", "compare", "ranking_json"]

METHODS = ("loo", "waic", "bic")
#: Differences below these are "small" whatever their standard error (elpd, BIC scales).
SMALL_DIFFERENCE = {"loo": 4.0, "waic": 4.0, "bic": 2.0}
COLUMNS = ["family", "rank", "score", "se", "diff", "diff_se", "weight", "num_params", "tied_with_best", "warning"]


def _check_families(families: Sequence[str] | str) -> list[str]:
    if isinstance(families, str):
        families = [part.strip() for part in families.split(",") if part.strip()]
    families = list(families)
    unknown = [name for name in families if name not in FAMILIES]
    if unknown:
        raise DataError(f"families={unknown!r} unknown: choose from {', '.join(FAMILIES)}")
    if len(families) < 2 or len(set(families)) != len(families):
        raise DataError(f"families={families!r} must name at least two distinct families to compare")
    return families


def _bic_table(data, families: list[str], options: dict[str, Any]) -> pd.DataFrame:
    import jax

    from jaxpref.bayes.model import statistics
    from jaxpref.estimator import fit_attentiveness
    from jaxpref.core.likelihood import marginal_loglik

    scores, pointwise, num_params = {}, {}, {}
    num_users = data.num_users
    for family in families:
        fit = fit_attentiveness(data, family=family, **_family_options(family, options))
        with jax.enable_x64(fit.dtype == "float64"):
            stats, row_of_user = statistics(fit.data, np.dtype(fit.dtype))
            family_params = fit.state.family
            per_row, _ = marginal_loglik(stats, family_params.eta_grid, family_params.log_weights, fit.state.mu)
        pointwise[family] = np.asarray(per_row, np.float64)[row_of_user]
        scores[family] = fit.bic
        num_params[family] = round((fit.bic + 2.0 * fit.loglik) / math.log(num_users))
    best = min(scores, key=scores.get)
    rows = []
    for family in families:
        difference = pointwise[best] - pointwise[family]
        rows.append(
            {
                "family": family,
                "score": scores[family],
                "se": 2.0 * math.sqrt(num_users * np.var(pointwise[family])),
                "diff": scores[family] - scores[best],
                "diff_se": 2.0 * math.sqrt(num_users * np.var(difference)),
                "num_params": num_params[family],
                "warning": False,
            }
        )
    table = pd.DataFrame(rows).sort_values("diff", kind="stable").reset_index(drop=True)
    relative = np.exp(-0.5 * table["diff"].to_numpy())
    table["weight"] = relative / relative.sum()
    return table


def _information_table(data, families: list[str], method: str, options: dict[str, Any]) -> pd.DataFrame:
    import warnings

    import arviz as az

    from jaxpref.bayes.model import fit_bayes

    fits = {}
    for family in families:
        fits[family] = fit_bayes(data, family=family, **_family_options(family, options))
    with warnings.catch_warnings():
        # arviz warns about high Pareto k / WAIC variance; that is reported in the "warning" column.
        warnings.simplefilter("ignore", UserWarning)
        table = az.compare({name: fit.inference_data for name, fit in fits.items()}, ic=method, scale="log")
    score_column, penalty_column = f"elpd_{method}", f"p_{method}"
    return pd.DataFrame(
        {
            "family": table.index.to_list(),
            "score": table[score_column].to_numpy(float),
            "se": table["se"].to_numpy(float),
            "diff": table["elpd_diff"].to_numpy(float),
            "diff_se": table["dse"].to_numpy(float),
            "weight": table["weight"].to_numpy(float),
            "num_params": table[penalty_column].to_numpy(float),
            "warning": table["warning"].to_numpy(bool),
        }
    )


def _family_options(family: str, options: dict[str, Any]) -> dict[str, Any]:
    """Per-family options: the two_point support applies to two_point only."""
    options = dict(options)
    if family != "two_point":
        options["support"] = None
    return options


def compare(
    data: Any,
    families: Sequence[str] | str = FAMILIES,
    method: str = "loo",
    *,
    mu: Any = None,
    mu_prior: tuple[float, float] | None = None,
    support: tuple[float, float] | None = None,
    num_grid: int = 32,
    seed: int = 0,
    num_warmup: int = 500,
    num_samples: int = 500,
    num_chains: int = 4,
    user_column: str = "user",
    label_column: str = "label",
    p_column: str | None = None,
    group_column: str | None = None,
) -> pd.DataFrame:
    """Fits each P_eta family and ranks them.

    Args:
        data: labels (see `jaxpref.io.data.load_preferences`).
        families: candidates (a list, or a comma-separated string).
        method: ``loo`` (PSIS-LOO over users), ``waic`` (both NumPyro NUTS, marginal form)
            or ``bic`` (EM).
        mu, mu_prior: as in `jaxpref.fit_attentiveness` (same for every candidate).
        support: fixed support of the two_point candidate; None estimates it.
        num_grid: grid size of beta and npmle.
        seed: seed of EM restarts and NUTS.
        num_warmup, num_samples, num_chains: NUTS settings (loo/waic).
        user_column, label_column, p_column, group_column: column names.

    Returns:
        DataFrame, best first, with columns ``family, rank, score, se, diff, diff_se,
        weight, num_params, tied_with_best, warning`` (see the module docstring;
        ``num_params`` is p_loo / p_waic for loo/waic, the parameter count for bic;
        ``warning`` flags unreliable PSIS/WAIC estimates). ``attrs`` hold ``method``, ``scale``
        (``elpd``: higher is better; ``bic``: lower is better) and ``tie`` (whether any
        candidate is tied with the best).

    Example:
        >>> table = compare(frame, ["point", "two_point", "beta"], method="bic")  # doctest: +SKIP
        >>> table.loc[0, "family"]                                                 # doctest: +SKIP
    """
    if method not in METHODS:
        raise DataError(f"method={method!r} must be one of {', '.join(METHODS)}")
    families = _check_families(families)
    data = load_preferences(
        data, user_column=user_column, label_column=label_column, p_column=p_column, group_column=group_column
    )
    options: dict[str, Any] = {"mu": mu, "mu_prior": mu_prior, "support": support, "num_grid": num_grid, "seed": seed}
    if method == "bic":
        table = _bic_table(data, families, options)
    else:
        options.update(num_warmup=num_warmup, num_samples=num_samples, num_chains=num_chains)
        table = _information_table(data, families, method, options)
    diff_se = np.nan_to_num(table["diff_se"].to_numpy(float))
    within_noise = (table["diff"].to_numpy() < SMALL_DIFFERENCE[method]) | (table["diff"].to_numpy() < 2.0 * diff_se)
    within_noise[0] = False
    table["tied_with_best"] = within_noise
    table["rank"] = np.arange(len(table))
    table = table[COLUMNS]
    table.attrs.update(method=method, scale="bic" if method == "bic" else "elpd", tie=bool(within_noise.any()))
    return table


def ranking_json(table: pd.DataFrame) -> dict[str, Any]:
    """The ``jaxpref compare --json`` object: ``{"ranking": [...], "method", "scale", "tie"}``."""

    def clean(value):
        if isinstance(value, (np.bool_, bool)):
            return bool(value)
        if isinstance(value, (np.integer,)):
            return int(value)
        if isinstance(value, (float, np.floating)):
            return None if not math.isfinite(value) else float(value)
        return value

    ranking = [{key: clean(value) for key, value in row.items()} for row in table.to_dict(orient="records")]
    return {"ranking": ranking, "method": table.attrs["method"], "scale": table.attrs["scale"],
            "tie": table.attrs["tie"]}
